"""The shipped scenario files (TOML data only), installed as package data ``releasesim.scenarios``.

This file holds no code: it only makes the folder a package so that
``importlib.resources.files("releasesim.scenarios")`` finds the scenarios in a checkout
and in an installed wheel alike.
"""
