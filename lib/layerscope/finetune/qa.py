"""Extractive QA through fine-tuning: the evaluation of a model's windows, and its predictions.

The model is transformers' ``AutoModelForQuestionAnswering`` (a ``qa_outputs`` Linear(H, 2) on
every token: start and end logits), trained on windows (``encoding``: overlapping windows of
``max_length`` tokens, stride ``max_length // 4``; a window without the answer trains on the
CLS target). Evaluation is the recipe's (Devlin et al. 2019 §4.2): per question, the best valid
span over all its windows (``qa.windows.best_spans``: start <= end, at most
``MAX_ANSWER_LENGTH`` = 30 tokens, both in the context, raw start + end logits compared across
windows; vectorised over windows, every valid span searched), its characters cut from the
context, scored by SQuAD v1.1's EM and F1 against every gold answer (``metrics.qa_scores``),
recorded in percent as ``"f1"`` and ``"exact_match"``.

``QAPredictions`` (what ``finetune.predictions`` returns for a QA task) holds, with E questions
in split order and N windows in ``make_windows``' order (a question's windows consecutive, in
context order), T the longest window:

==================  ===========================================================================
start_logits        [N, T] float32 the model's start logits per window; -inf past each window's
end_logits          [N, T] float32 ... and end logits (``lengths`` tokens are real)
lengths             [N] int64 tokens per window
example_index       [N] int64 the question (0..E-1) of each window
offsets             [N, T, 2] int64 character offsets into the question's context; (-1, -1)
                    for tokens outside the context (question, special tokens, padding)
cls_index           [N] int64 the CLS position of each window
ids                 [E] the question ids
contexts            [E] the contexts (what ``offsets`` index)
golds               [E] every gold answer text of each question
text                [E] the predicted answer (the best span's characters)
char_start/char_end [E] int64 its characters (end exclusive); window [E] the window it is in;
token_start/end     [E] int64 its tokens in that window (inclusive)
em, f1              [E] float64 per question: EM 0/1, F1 in [0, 1] (the bootstrap's arrays;
                    ``exact_match``/``f1_score`` are 100 x their means, the recorded metrics)
baseline            the baseline's metrics and rule (``metrics.qa_baseline``)
==================  ===========================================================================

``windows()`` gives the ``qa.windows.QAWindows`` back (without the token features), so a head
on another layer's states is scored with ``best_spans(p.windows(), start, end)`` exactly as here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import metrics
from ..errors import ConfigError
from ..qa.squad_eval import SquadScores
from ..qa.windows import QAWindows, SpanPredictions, best_spans

ARRAYS = ("start_logits", "end_logits", "lengths", "example_index", "offsets", "cls_index",
          "char_start", "char_end", "window", "token_start", "token_end", "em", "f1")
TEXTS = ("ids", "contexts", "golds", "text")


@dataclass(frozen=True)
class QAPredictions:
    """Per-window logits and per-question answers and scores (module docstring)."""

    start_logits: np.ndarray
    end_logits: np.ndarray
    lengths: np.ndarray
    example_index: np.ndarray
    offsets: np.ndarray
    cls_index: np.ndarray
    ids: tuple[str, ...]
    contexts: tuple[str, ...]
    golds: tuple[tuple[str, ...], ...]
    text: tuple[str, ...]
    char_start: np.ndarray
    char_end: np.ndarray
    window: np.ndarray
    token_start: np.ndarray
    token_end: np.ndarray
    em: np.ndarray
    f1: np.ndarray
    baseline: dict

    @property
    def n_questions(self) -> int:
        return len(self.ids)

    @property
    def exact_match(self) -> float:
        return 100.0 * float(self.em.mean())

    @property
    def f1_score(self) -> float:
        return 100.0 * float(self.f1.mean())

    @property
    def metrics(self) -> dict[str, float]:
        return {"f1": self.f1_score, "exact_match": self.exact_match}

    def windows(self) -> QAWindows:
        """The windows these logits belong to (no token features: ``best_spans`` needs none)."""
        return QAWindows({}, self.example_index, self.offsets, self.lengths, self.cls_index,
                         self.contexts)

    def save(self, folder: Path) -> None:
        for name in ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name))
        (folder / "texts.json").write_text(json.dumps(
            {k: getattr(self, k) for k in TEXTS}, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path, baseline: dict) -> QAPredictions:
        texts = json.loads((folder / "texts.json").read_text())
        return cls(**{k: np.load(folder / f"{k}.npy") for k in ARRAYS},
                   ids=tuple(texts["ids"]), contexts=tuple(texts["contexts"]),
                   golds=tuple(tuple(g) for g in texts["golds"]), text=tuple(texts["text"]),
                   baseline=baseline)


def window_order_logits(predictions, window_index, windows: QAWindows
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The Trainer's (start, end) logits of a dataset in any row order (``window_index`` [N]:
    each row's window) as [N, T] arrays in window order, -inf past each window's length (the
    Trainer pads shorter batches with -100: those cells are not tokens)."""
    start, end = (np.asarray(x, dtype=np.float32) for x in predictions)
    order = np.asarray(window_index, dtype=np.int64)
    n, t = windows.offsets.shape[:2]
    if len(order) != n or sorted(order.tolist()) != list(range(n)):
        raise ConfigError(f"{len(order)} rows of logits for {n} windows; evaluate the dataset "
                          "encoded from these windows")
    if start.shape[1] < windows.lengths.max():
        raise ConfigError(f"logits have {start.shape[1]} positions but a window has "
                          f"{windows.lengths.max()} tokens")
    real = np.arange(t)[None, :] < windows.lengths[:, None]
    out = []
    for x in (start, end):
        y = np.full((n, t), -np.inf, dtype=np.float32)
        y[order] = x[:, :t]
        out.append(np.where(real, y, -np.inf).astype(np.float32))
    return out[0], out[1]


def evaluate(windows: QAWindows, golds, start_logits, end_logits
             ) -> tuple[SpanPredictions, SquadScores]:
    """The best span per question over its windows and its EM/F1 (module docstring).
    start_logits, end_logits: [N, T'] in window order; golds: [E] lists of answer texts."""
    spans = best_spans(windows, start_logits, end_logits)
    return spans, metrics.qa_scores(list(spans.text), [list(g) for g in golds])


def predictions_record(windows: QAWindows, rows, start_logits, end_logits,
                       baseline: dict) -> QAPredictions:
    """``QAPredictions`` of window-order logits on the questions ``rows`` (their ``id`` and
    ``answers``) that ``windows`` were made from."""
    golds = [tuple(a["text"]) for a in rows["answers"]]
    spans, scores = evaluate(windows, golds, start_logits, end_logits)
    return QAPredictions(
        start_logits=np.asarray(start_logits, dtype=np.float32),
        end_logits=np.asarray(end_logits, dtype=np.float32), lengths=windows.lengths,
        example_index=windows.example_index, offsets=windows.offsets,
        cls_index=windows.cls_index, ids=tuple(str(i) for i in rows["id"]),
        contexts=windows.contexts, golds=tuple(golds), text=spans.text,
        char_start=spans.char_start, char_end=spans.char_end, window=spans.window,
        token_start=spans.token_start, token_end=spans.token_end,
        em=scores.em_per_question, f1=scores.f1_per_question, baseline=baseline)
