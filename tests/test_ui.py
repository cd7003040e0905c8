"""The widget explorers as a user meets them: a live progress line while a run works, and an
output area that holds the verdict and the figure, not the libraries' noise.

The kernel test runs an explorer in a real IPython kernel driven by nbclient, which stands in
for JupyterLab: it routes the kernel's output into the Output widget by message id, as the
browser does, so what it collects is what a user would see under the controls. The other tests
are in-process unit tests of ``progress`` and ``quiet``.
"""

from __future__ import annotations

import json
import logging
import re
import warnings

import datasets
import huggingface_hub.utils as hub_utils
import nbformat
import pytest
import transformers as tr

from layerscope import progress
from layerscope.quiet import expected_load_report, quiet_libraries

HEAD_ONLY = ("\x1b[1mBertForSequenceClassification LOAD REPORT\x1b[0m from: tiny-bert\n"
             "Key               | Status  | \n------------------+---------+-\n"
             "classifier.bias   | MISSING | \nclassifier.weight | MISSING | \n"
             "cls.predictions.bias | UNEXPECTED | \n\nNotes:\n- MISSING:\tthose params were "
             "newly initialized because missing from the checkpoint.")
ENCODER_MISSING = HEAD_ONLY.replace("classifier.weight | MISSING",
                                    "bert.encoder.layer.0.output.dense.weight | MISSING")
PYARROW = ("Specifying null_placement in SortOptions is deprecated as of 25.0.0. Specify "
           "null_placement per sort_key instead.")


# --------------------------------------------------------------------------- progress
def test_progress_reports_reach_only_the_installed_reporter():
    seen = []
    progress.report("nobody listens", 1, 2)  # no reporter: nothing happens, nothing raised
    with progress.reporting(lambda line, k, n: seen.append((line, k, n))):
        progress.report("fine-tuning x on y, seed 0: step", 3, 10)
        log = progress.logger(verbose=False)
        log("[similarity] representations: ft (2 of 4)")
        assert list(progress.counted(["a", "b"], "batch")) == ["a", "b"]
        with progress.reporting(lambda *a: None):  # an inner run has its own line
            progress.report("inner", 1, 1)
    progress.report("after the block", 1, 2)
    assert seen == [("fine-tuning x on y, seed 0: step 3 of 10", 3, 10),
                    ("similarity: representations: ft (2 of 4)", None, None),
                    ("similarity: representations: ft (2 of 4) · batch 1 of 2", 1, 2),
                    ("similarity: representations: ft (2 of 4) · batch 2 of 2", 2, 2)]


# --------------------------------------------------------------------------- quiet
def test_load_report_of_a_new_head_is_expected_anything_else_is_not():
    assert expected_load_report(HEAD_ONLY)
    assert not expected_load_report(ENCODER_MISSING)  # a real problem: keep it
    assert not expected_load_report(HEAD_ONLY.replace("| UNEXPECTED", "| MISMATCH"))
    assert not expected_load_report("some other transformers warning")
    old = ("Some weights of BertForSequenceClassification were not initialized from the model "
           "checkpoint at bert-base-uncased and are newly initialized: ['classifier.bias', "
           "'classifier.weight']\nYou should probably TRAIN this model")  # transformers 4
    assert expected_load_report(old)
    assert not expected_load_report(old.replace("'classifier.bias'", "'bert.pooler.x', "
                                                "'bert.embeddings.word_embeddings.weight'"))


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_quiet_libraries_silences_expected_noise_keeps_real_warnings_and_restores():
    logger = logging.getLogger("transformers.modeling_utils")
    records = _Records()
    logger.addHandler(records)
    level = tr.logging.get_verbosity()
    tr.logging.set_verbosity_warning()  # the library's default (the test session quiets it)
    before = (tr.logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled(),
              datasets.utils.are_progress_bars_disabled())
    filters = list(warnings.filters)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with quiet_libraries():
                assert not tr.logging.is_progress_bar_enabled()
                assert hub_utils.are_progress_bars_disabled()
                assert datasets.utils.are_progress_bars_disabled()
                warnings.warn_explicit(PYARROW, FutureWarning, "pyarrow/compute.py", 231,
                                       module="pyarrow.compute")
                warnings.warn("real", UserWarning, stacklevel=1)
                warnings.warn("a real FutureWarning of ours", FutureWarning, stacklevel=1)
                logger.warning(HEAD_ONLY)
                logger.warning(ENCODER_MISSING)
                logger.warning("another transformers warning")
    finally:
        logger.removeHandler(records)
        tr.logging.set_verbosity(level)
    assert [str(w.message) for w in caught] == ["real", "a real FutureWarning of ours"]
    assert records.messages == [ENCODER_MISSING, "another transformers warning"]
    after = (tr.logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled(),
             datasets.utils.are_progress_bars_disabled())
    assert after == before and warnings.filters == filters
    assert not logger.filters


# --------------------------------------------------------------------------- the explorer
NOISE = ("Map", "LOAD REPORT", "newly initialized", "Writing model shards", "Loading weights",
         "FutureWarning", "null_placement", "Epoch", "<progress", "mtime")

KERNEL_CELLS = [
    # Noise as a new user gets it: the libraries' defaults (the test session quiets them)
    f"PYARROW, HEAD_ONLY = {(PYARROW, HEAD_ONLY)!r}" + """
import warnings, logging
import plotly.graph_objects as go
from layerscope import finetune, ui
cfg = finetune.FinetuneConfig(task="tiny-sentiment", model="tiny-bert", preset="smoke",
                              seed=7, max_steps=30)
box = ui.finetune_explorer(cfg)
status, out = box.children[1], box.children[2]
seen = []
status.observe(lambda ch: seen.append(ch["new"]), names="value")

def noisy(x):  # the noise of a run, and one real warning in the middle of it
    warnings.warn_explicit(PYARROW, FutureWarning, "pyarrow/compute.py", 231,
                           module="pyarrow.compute")
    logging.getLogger("transformers.modeling_utils").warning(HEAD_ONLY)
    warnings.warn("real trouble", UserWarning)
    return go.Figure(go.Scatter(x=[x], y=[x]))

box2 = ui.explorer(noisy, {"x": ui.seed_control(1)})
display(box, box2)
""",
    "box.children[0].children[-1].click()",
    "box2.children[0].children[-1].click()",
    "import json; print(json.dumps({'seen': seen, 'out': out.model_id, "
    "'out2': box2.children[2].model_id}))",
]


@pytest.mark.slow
def test_explorer_in_a_kernel_shows_progress_then_the_figure_without_noise(tmp_path,
                                                                           monkeypatch):
    from nbclient import NotebookClient
    from nbclient.output_widget import OutputWidget

    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path / "home"))  # trains: seed 7 is new
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for var in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(var, raising=False)  # the bars a user gets, unless quieted
    # nbclient's Output-widget mimic echoes each output back to the kernel on the shell
    # channel while it awaits the cell's reply on that channel, and then sometimes misses the
    # reply until the cell's timeout (1 run in 4 here; JupyterLab talks to the kernel through
    # its server, not like this). The outputs are read from the mimic's own state instead.
    monkeypatch.setattr(OutputWidget, "sync_state", lambda self: None)

    live = []  # status values as they reach the frontend, with the cell running then

    class Frontend(NotebookClient):
        def handle_comm_msg(self, outs, msg, cell_index):
            value = msg["content"]["data"].get("state", {}).get("value")
            if isinstance(value, str):
                live.append((cell_index, value))
            super().handle_comm_msg(outs, msg, cell_index)

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in KERNEL_CELLS])
    frontend = Frontend(nb, timeout=300, kernel_name="python3",
                        resources={"metadata": {"path": str(tmp_path)}})
    frontend.execute()
    state = json.loads(nb.cells[-1].outputs[0]["text"])
    outputs = {k: frontend.widget_state[state[k]].get("outputs", []) for k in ("out", "out2")}

    # the status line moved while the click's cell ran: "step k of N", then "done in"
    steps = [v for cell, v in live if cell == 1 and re.search(r"step \d+ of 30, \d+ s", v)]
    assert steps, f"no live step reports; status went {state['seen']}"
    assert any(re.search(r"step \d+ of 30", v) for v in state["seen"])
    assert state["seen"][-1].startswith("done in")

    # the output area: the figure first (right under the controls), and no library noise
    out = outputs["out"]
    assert out and "application/vnd.plotly.v1+json" in out[0].get("data", {}), out[:3]
    rest = json.dumps([o for o in out if "application/vnd.plotly.v1+json" not in
                       o.get("data", {})])
    assert not [n for n in NOISE if n in rest], rest[:3000]

    # a real warning inside a run still shows; the expected ones do not
    text = "".join(o.get("text", "") for o in outputs["out2"] if o["output_type"] == "stream")
    assert "UserWarning: real trouble" in text
    assert "LOAD REPORT" not in text and "FutureWarning" not in text
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs["out2"])
