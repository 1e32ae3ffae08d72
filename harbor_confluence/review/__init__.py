"""The review queue and the audit log, beside the pipeline: held tickets and approvals
(``queue.py``), the operator's side of them (``service.py``), the checks before an
approved ticket is sent (``vetting.py``), the keyed audit chain (``audit.py``) and the
state directory's integrity key (``integrity.py``).  It uses the pipeline's lower stages
(request, documents, manifest, summary, transport) and ``postgres/`` for a shared store,
never ``catalog/``, ``adapters/``, ``cli/``, ``node/`` or ``sim/``. This package imports
none of its modules: callers name them in full.
"""
