"""The daemon's read-only web page (engine/web/server.py) and the views it reads (queries.py)."""
