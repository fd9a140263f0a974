"""The real release-governance and update modules of releasesim.

This package is the product's truth: the same functions serve an operator at a
shell (``releasesim gov ...``) and every simulated node. It must not import
simpy, ``sim`` or ``reports``; time, storage, the release source and the binary
slot are passed in.
"""
