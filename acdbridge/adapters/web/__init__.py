"""The daemon's web side on aiohttp (docs/architecture.md, docs/security.md): site.py the app
factory, server.py the middleware and runner, guard.py the connection limits aiohttp lacks,
access.py sign-in, sessions and CSRF, api.py the people's API and the audit page, board.py the
wallboard, metrics.py /metrics (and its credentials) and /healthz."""
