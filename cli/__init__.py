"""The ``releasesim`` command line: every command group, argument types and the demo.

The top of the layers: it may import ``releasesim.explorer``, ``releasesim.reports``,
``releasesim.sim`` and ``releasesim.model``; nothing imports it. Command modules import
their heavy dependencies (pandas, matplotlib, the simulator) inside the command that needs
them, so ``--help`` and the operator commands start fast.
"""
