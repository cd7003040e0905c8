"""Studies 02-05 on models fine-tuned elsewhere (``finetuned=[checkpoint, ...]``, issue 9).

The checkpoint is a tiny fine-tune copied out of the cache: each study run on it must equal
the same study run on the cached fine-tune itself, and what needs training must be refused.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from layerscope import finetune
from layerscope.errors import ConfigError
from layerscope.studies import geometry as geo
from layerscope.studies import similarity as sim
from layerscope.studies import skipping as skip
from layerscope.studies import truncation as trunc

BASE = dict(task="tiny-sentiment", model="tiny-bert", preset="smoke")
STEPS = 30  # the reference run is trained with max_steps=STEPS, the checkpoint is its copy
CONFIGS = {"similarity": (sim.SimilarityConfig, dict(n_examples=48, n_boot=20, n_perm=10)),
           "truncation": (trunc.TruncationConfig, dict(n_examples=32, n_train=100, n_boot=20,
                                                       head_max_epochs=5)),
           "skipping": (skip.SkippingConfig, dict(n_examples=32, n_boot=20)),
           "geometry": (geo.GeometryConfig, dict(n_train=48, n_test=32, n_folds=2, n_predict=0,
                                                 probe_grid="none", layers=(-2, -1)))}

pytestmark = pytest.mark.usefixtures("private_home")


@pytest.fixture(scope="module")
def checkpoint(private_home, tmp_path_factory) -> str:
    run = finetune.load_or_train(finetune.FinetuneConfig(**BASE, seed=0, max_steps=STEPS),
                                 verbose=False)
    dest = tmp_path_factory.mktemp("elsewhere") / "tiny-ft"
    shutil.copytree(run.model_dir, dest)
    return str(dest)


def both(study: str, checkpoint: str, **extra):
    """(config on the cached fine-tune, the same config on the copied checkpoint)."""
    cls, kw = CONFIGS[study]
    kw = {**BASE, "seeds": (0,), **kw, **extra}
    return cls(**kw, max_steps=STEPS), cls(**kw, finetuned=[checkpoint])


def test_similarity_matrices_equal_the_cached_fine_tunes(checkpoint):
    ref, ext = (sim.run_similarity(c, verbose=False) for c in both("similarity", checkpoint))
    assert set(ext.matrices) == set(ref.matrices) == {"orig_orig", "ft_orig", "ft_ft"}
    for name, m in ref.matrices.items():
        np.testing.assert_array_equal(ext.matrices[name], m, err_msg=name)
    assert ext.finetune_runs[0]["metrics"] == pytest.approx(ref.finetune_runs[0]["metrics"])
    assert ext.finetune_runs[0]["key"] != ref.finetune_runs[0]["key"]


def test_truncation_logits_equal_the_cached_fine_tunes(checkpoint):
    ref, ext = (trunc.run_truncation(c, verbose=False) for c in both("truncation", checkpoint))
    for line in ("untuned", "tuned", "tunedorig"):
        np.testing.assert_allclose(ext.logits[line], ref.logits[line], atol=1e-5,
                                   equal_nan=True, err_msg=line)
    assert ext.parity[0]["max_abs_logit_diff"] < 1e-4  # against the checkpoint's predictions
    assert ext.parity[0]["prediction_agreement"] == 1.0


def test_skipping_logits_equal_the_cached_fine_tunes(checkpoint):
    ref, ext = (skip.run_skipping(c, verbose=False) for c in both("skipping", checkpoint))
    assert ext.spans == ref.spans
    np.testing.assert_allclose(ext.span_logits, ref.span_logits, atol=1e-5)
    assert ext.parity[0]["max_abs_logit_diff"] < 1e-4


def test_geometry_has_orig_and_ft_only_and_says_why(checkpoint):
    ref_cfg, ext_cfg = both("geometry", checkpoint, checkpoint_steps=())
    ext = geo.run_geometry(dataclasses.replace(ext_cfg, checkpoint_steps=None), verbose=False)
    ref = geo.run_geometry(ref_cfg, verbose=False)
    assert ext.states == ("orig", "ft") and ext.steps == ()
    assert any("No checkpoint trace" in n and "finetuned=" in n for n in ext.notes())
    assert not any("No checkpoint trace" in n for n in ref.notes())
    for st in ("orig", "ft"):
        for a, b in zip(ext.geometry[st], ref.geometry[st], strict=True):
            assert a.n_clusters == b.n_clusters
            np.testing.assert_allclose(a.min_distances, b.min_distances, equal_nan=True)


@pytest.mark.parametrize("study", list(CONFIGS))
def test_one_checkpoint_per_seed(study, tmp_path):
    cls, kw = CONFIGS[study]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    with pytest.raises(ConfigError, match=r"finetuned has 1 checkpoint\(s\) but seeds=\(0, 1\) "
                                          r"has 2.*seeds=\(0,\)"):
        cls(**BASE, **kw, seeds=(0, 1), finetuned=[str(a)])
    with pytest.raises(ConfigError, match="names a checkpoint twice"):
        cls(**BASE, **kw, seeds=(0, 1), finetuned=[str(a), str(a)])
    with pytest.raises(ConfigError, match=r"max_steps=30 need\(s\) fine-tuning runs"):
        cls(**BASE, **kw, seeds=(0,), finetuned=[str(a)], max_steps=30)
    with pytest.raises(ConfigError, match="neither a local folder nor a hub id"):
        cls(**BASE, **kw, seeds=(0,), finetuned=["./no-such-folder"])
    cfg = cls(**BASE, **kw, seeds=(0, 1), finetuned=[str(a), str(b)])
    assert [c.checkpoint for c in cfg.finetune_configs()] == [str(a), str(b)]


@pytest.mark.parametrize("study,bad,match", [
    ("similarity", {"checkpoint_steps": (0, 30)}, r"checkpoint_steps=\(0, 30\) need"),
    ("similarity", {"cross_model": "tiny-roberta", "cross_state": "ft"}, "cross_state='orig'"),
    ("truncation", {"drop_top": (2,)}, r"drop_top=\(2,\) need"),
    ("truncation", {"freeze_bottom": (1,)}, r"freeze_bottom=\(1,\) need"),
    ("geometry", {"checkpoint_steps": (0, 30)}, r"checkpoint_steps=\(0, 30\) need"),
])
def test_what_needs_training_is_refused(study, bad, match, tmp_path):
    cls, kw = CONFIGS[study]
    with pytest.raises(ConfigError, match=match):
        cls(**BASE, **kw, seeds=(0,), finetuned=[str(tmp_path)], **bad)
    cls(**BASE, **kw, seeds=(0,), **bad)  # fine without finetuned


def test_cross_model_untuned_works_with_checkpoints(tmp_path):
    cfg = sim.SimilarityConfig(**BASE, seeds=(0,), finetuned=[str(tmp_path)],
                               cross_model="tiny-roberta", cross_state="orig")
    assert cfg.finetune_configs()[0].checkpoint == str(tmp_path)
    assert cfg.finetune_configs("tiny-roberta")[0].checkpoint is None
