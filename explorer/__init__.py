"""The HTTP explorer (``releasesim explorer serve``) and its JSON Schema (``api_schema/``).

Serves ``GET /releases``, ``/releases/timeline`` and ``/metrics`` over a read-only store on
127.0.0.1; the queries themselves are ``releasesim.model.explorer``. Imports ``model`` only.
"""
