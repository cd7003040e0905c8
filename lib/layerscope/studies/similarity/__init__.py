"""Study 02: CKA/RSA between every pair of layers before and after fine-tuning
(Phang et al. 2021 §3; Merchant et al. 2020 §4). Notebook ``02_similarity``.

``run`` (config + ``run_similarity``), ``result`` (``SimilarityResult``), ``findings`` (claims
with bootstrap intervals), ``comparisons`` (the one table of comparisons), ``ui`` (widgets).
"""

from .comparisons import COMPARISON_NAMES, COMPARISONS, PHANG_PANELS
from .result import SimilarityResult, grid_figure
from .run import MEASURES, SimilarityConfig, run_similarity, similarity_matrix

__all__ = ["COMPARISON_NAMES", "COMPARISONS", "PHANG_PANELS", "SimilarityResult", "grid_figure",
           "MEASURES", "SimilarityConfig", "run_similarity", "similarity_matrix"]
