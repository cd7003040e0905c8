"""Study 06: several tasks' fine-tuned models side by side on the same probe sentences
(Merchant et al. 2020: "dependency parsing reconfigures most of the model, whereas SQuAD and
MNLI appear to involve much shallower processing"; no catastrophic forgetting of syntax).
Notebook ``06_tasks``.

``config`` (``TasksConfig``), ``run`` (``run_tasks``: fine-tuning, the probe sentences' word
states, CKA/RSA per layer), ``layer_change`` (linear CKA with a bootstrap over sentences; the
reconfiguration rule), ``syntax`` (the structural probe per layer, Hewitt & Manning 2019),
``result`` (``TasksResult``), ``findings`` (claims with intervals), ``plots``, ``ui``
(widgets).
"""

from .config import THRESHOLDS, TasksConfig
from .result import TaskCurves, TasksResult
from .run import run_tasks

__all__ = ["THRESHOLDS", "TasksConfig", "TaskCurves", "TasksResult", "run_tasks"]
