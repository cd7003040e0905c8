"""One module per analysis notebook: ``run_*(config) -> Result`` with ``.figure()``.

``similarity`` ↔ notebooks/02_similarity (CKA/RSA between layers, Phang et al. 2021 §3).
"""
