"""The verdict rule of studies.base, and a statistic that cannot vary (issue 14:
geometry.clusters_fall_or_stay printed SUPPORTED 0 [0, 0])."""

from __future__ import annotations

import pytest

from layerscope.studies.base import Interval, finding


@pytest.mark.parametrize(("low", "high", "verdict"), [
    (0.1, 0.3, "SUPPORTED"), (-0.3, -0.1, "NOT SUPPORTED"), (-0.1, 0.2, "INCONCLUSIVE")])
def test_the_interval_decides(low, high, verdict):
    f = finding("c", {}, Interval((low + high) / 2, low, high, "effect", "bootstrap"))
    assert f["verdict"] == verdict and "why" not in f
