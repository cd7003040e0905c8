"""Study 04: skipping every contiguous span of blocks of a fine-tuned model, no further tuning
(Phang et al. 2021 §4.1, Fig. 4). Notebook ``04_skipping``.

``run`` (config + ``run_skipping``), ``result`` (``SkippingResult``), ``findings`` (claims with
paired bootstrap intervals), ``plots`` (heatmap, curves, one span), ``ui`` (widgets). The
evaluation rows and scoring, shared with study 03, are ``studies.common.evaluation`` and
``studies.common.scoring``.
"""

from .result import SkippingResult
from .run import SkippingConfig, run_skipping

__all__ = ["SkippingConfig", "SkippingResult", "run_skipping"]
