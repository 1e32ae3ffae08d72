"""Ports as documents: Dock/Hub export and validated import (``dock.py``), fetching from and
serving a hub (``hub.py``), publisher signatures (``signing.py``), proposed actions
(``drafts.py``) and checks against Atlassian's OpenAPI documents (``speccheck.py``).  It
builds on the core (``pipeline/``, and ``review/`` for the queue and the audit log);
nothing in ``pipeline/``, ``review/`` or ``secrets/`` imports it.  This package imports
none of its modules: callers name them in full.
"""
