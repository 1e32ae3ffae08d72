"""The credential, beside the pipeline: credential objects that never print their value and
sign only their origin (``credentials.py``), the hidden token store (``store.py``) and
which credential is in force (``auth.py``).  It uses the pipeline's request building and
manifest (and ``postgres/`` only to check a database URL), never ``review/``,
``catalog/``, ``adapters/``, ``cli/``, ``node/`` or ``sim/``.  Imports are absolute, so
``import secrets`` anywhere in the package is still the standard library's.  This package
imports none of its modules: callers name them in full.
"""
