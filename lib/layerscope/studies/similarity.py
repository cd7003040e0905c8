"""Study 02: how similar are layers before and after fine-tuning? (notebook 02_similarity)

``run_similarity(cfg)`` computes, in one call, the comparisons of Phang et al. (2021, §3 and
Fig. 1): ORIG–ORIG (the untuned encoder with itself), FT–ORIG (fine-tuned layers as rows,
untuned as columns), FT–FT, FT[1]–FT[2] (two fine-tuning seeds), optionally a cross-model
comparison (Fig. 7) and the drift of every layer over fine-tuning checkpoints (similarity of
layer l at step s with layer l untuned). Similarity is CKA (Kornblith et al. 2019; linear as in
Phang et al., or RBF, biased or debiased) or RSA (Merchant et al. 2020, §4), over the pooled
representations of validation examples (``activations``; Phang et al. use the CLS token).

Beyond the papers: the block structure of FT–FT vs ORIG–ORIG (``blocks.find_block_boundary``),
a bootstrap interval and a permutation baseline for any cell, and ``findings()``, which tests the
papers' claims on this run with numbers. Layer convention: 0 = embeddings, i = block i.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import activations as acts
from .. import cache, cka, finetune, models
from .. import similarity_plots as splots
from ..tasks import get_task
from . import _similarity_findings as _f  # noqa: F401  (placeholder, replaced below)
