"""The daemon's web side on aiohttp (docs/architecture.md): server.py the app's middleware and
runner, guard.py the connection limits, site.py the app factory, board.py the wallboard, metrics.py
/metrics and /healthz."""
