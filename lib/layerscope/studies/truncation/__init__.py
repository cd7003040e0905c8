"""Study 03: truncation — the fine-tuned head fed intermediate layers (Phang et al. 2021 §4,
Fig. 3), heads retrained per layer (TUNED, TUNEDORIG) and Merchant et al. 2020's ablations.
Notebook ``03_truncation``.

``run`` (config + ``run_truncation``), ``shallower`` (``save_truncated_model``), ``result``
(``TruncationResult``), ``findings`` (claims with paired bootstrap intervals), ``heads`` (the
first-token head and its batched trainer), ``plots``, ``ui`` (widgets). The evaluation rows,
the surgery kernels over them and the scoring on shared bootstrap resamples are shared with
study 04 and live in ``studies.common`` (``evaluation``, ``scoring``).
"""

from .result import TruncationResult
from .run import LINES, TruncationConfig, run_truncation
from .shallower import save_truncated_model

__all__ = ["LINES", "TruncationConfig", "TruncationResult", "run_truncation",
           "save_truncated_model"]
