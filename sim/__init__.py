"""The simulator: a SimPy world that drives the real release-governance and update code.

Scenario loading lives in ``sim.scenario`` (with ``sim.distributions``); one replication is
one ``sim.world.World``; the runner and CLI sit on top. Nothing here is imported by ``model``.
"""
