"""``python -m releasesim ...`` runs the ``releasesim`` command."""

from releasesim.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
