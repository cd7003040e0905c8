"""The README's short example runs as written: CKA between every layer of two models on your
own sentences, with a figure.

The code is the README's block after the marker, executed as is except for the model names:
the hub is unreachable in tests, so ``minilm-l6`` and ``bert-base-uncased`` become the tiny
random BERT and RoBERTa built from a config (same architectures, 4 blocks of width 32). Until
README.md holds the marked block, the same text is read from EXAMPLE below.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- readme-example: cka between two models"
SENTENCES = ["A gripping, beautifully acted film.", "Dull, and far too long.",
             "The plot made no sense to me.", "I would happily watch it again.",
             "It rained all day in Boston.", "The committee approved the budget on Tuesday."]
OFFLINE = {'"minilm-l6"': '"tiny-bert"', '"bert-base-uncased"': '"tiny-roberta"'}


def _block() -> str:
    readme = (ROOT / "README.md").read_text()
    text = readme[readme.index(MARKER):]
    return re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)


def test_the_example_is_short():
    lines = [ln for ln in _block().splitlines() if ln.strip()]
    assert len(lines) <= 6, lines


def test_the_example_runs_on_two_models_and_writes_the_figure(tmp_path, monkeypatch):
    code = _block()
    for hub_name, tiny in OFFLINE.items():
        assert hub_name in code
        code = code.replace(hub_name, tiny)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_sentences.txt").write_text("\n".join(SENTENCES))
    ns: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(code, "README.md", "exec"), ns)
    a, b, m = ns["a"], ns["b"], np.asarray(ns["m"])
    n = len(SENTENCES)
    assert ns["sentences"] == SENTENCES
    assert a.shape == (5, n, 32) and b.shape == (5, n, 32)  # layers 0..4 of each model
    assert m.shape == (5, 5)
    # layer-0 CLS is the same vector for every sentence in both models: row and column 0 are
    # undefined (NaN) and the warning says so; every other cell is a CKA value in [0, 1]
    assert np.isnan(m[0]).all() and np.isnan(m[:, 0]).all()
    assert np.isfinite(m[1:, 1:]).all() and (m[1:, 1:] >= 0).all() and (m[1:, 1:] <= 1).all()
    undefined = [w for w in caught if w.category.__name__ == "UndefinedCellsWarning"]
    assert len(undefined) == 1
    assert "layer 0 of a and layer 0 of b" in str(undefined[0].message)
    page = (tmp_path / "cka.html").read_text()
    assert "plotly" in page and "tiny-bert" in page and "tiny-roberta" in page
    assert "undefined" in page  # the note under the figure explains the grey cells
