"""The one-way core: an action's input is validated, its request composed and decided by
policy, sent, and its answer summarised; ``executor.Port`` ties the stages together.
Only ``executor.py`` reaches beside the pipeline, into ``review/`` (the queue, the audit
log, the checks before an approved ticket is sent) and ``secrets/`` (the credential in
force); nothing here imports ``catalog/``, ``adapters/``, ``cli/``, ``node/``, ``sim/`` or
``postgres/``. This package imports none of its modules: callers name them in full.
"""
