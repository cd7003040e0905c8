"""Study 05: how fine-tuning changes the geometry of each layer (Zhou & Srikumar 2022 §4;
Merchant et al. 2020 probing and out-of-domain). Notebook ``05_geometry``.

``config`` (``GeometryConfig``), ``run`` (``run_geometry``), ``result`` (``GeometryResult``),
``dynamics`` (DirectProbe summaries, folds, PCA paths), ``cross_task``, ``out_of_domain``,
``findings`` (claims with intervals), ``plots`` (2-D paths), ``ui`` (widgets).
"""

from .config import PROBE_GRIDS, GeometryConfig
from .dynamics import LayerGeometry
from .result import GeometryResult
from .run import run_geometry

__all__ = ["PROBE_GRIDS", "GeometryConfig", "LayerGeometry", "GeometryResult", "run_geometry"]
