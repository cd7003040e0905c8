"""One package per study, each ``run.py`` (Config + ``run_*``), ``result.py``, ``findings.py``
(and ``ui.py`` / ``plots.py`` where it needs its own); ``base.py`` is the result protocol.

``similarity`` ↔ notebooks/02_similarity (CKA/RSA between layers, Phang et al. 2021 §3).
"""
