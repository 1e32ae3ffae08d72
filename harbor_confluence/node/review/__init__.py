"""The node's review page (``/review``): operators sign in and work the queue in a browser.

- ``app``: routes, rendering, sign-in, CSRF and security headers (Starlette + Jinja2)
- ``sessions``: server-side sessions, CSRF tokens, sign-in limits
- ``events``: live updates (server-sent events) fed by the node's ticket changes
- ``listing``: the queue list (pending first, filters, bounded scans, cursors)
- ``views``: what the templates show (request, side-by-side diff, review context)

Importing it needs Jinja2 (the ``[node]`` extra); without it the node serves its API only.
"""

from __future__ import annotations

from .app import ReviewApp, review_routes

__all__ = ["ReviewApp", "review_routes"]
