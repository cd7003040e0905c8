"""Input checks shared by every measure (CKA, RSA, probes, DirectProbe): one wording each.

Arrays in (numpy, torch or array-likes), tensors out. Shapes: one representation x: [n, d]
(examples x features); a stack of layers: [L, n, d] or a sequence of [n, d_l]; labels: [n].
Layer index 0 is the embedding output, i the output of block i (HF ``hidden_states[i]``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from ..devices import to_numpy
from ..errors import ConfigError, UndefinedError, check_choice

Tensor = torch.Tensor
F64 = torch.float64
UNDEFINED = ("raise", "nan")  # what a measure does with a layer constant across examples
# What a public layer x layer matrix (cka_matrix, rsa_matrix) does with one: "warn" (NaN cells
# and a warning naming the layers; the default, so a real model's layer-0 CLS never stops a
# whole matrix), "nan" (NaN cells, silently: callers that report undefined cells themselves) or
# "raise".
MATRIX_UNDEFINED = ("warn", *UNDEFINED)
DEFAULT_RTOL = 1e-5  # a layer is "constant" when ||X - mean||_F <= rtol * ||X||_F

__all__ = ["UNDEFINED", "DEFAULT_RTOL", "check_choice", "to_tensor", "as_single", "as_stack",
           "same_examples", "layer_label", "check_finite", "is_constant", "constant_message",
           "constant_error", "MATRIX_UNDEFINED", "UndefinedCellsWarning", "warn_undefined_cells",
           "as_labels"]


class UndefinedCellsWarning(UserWarning):
    """Some cells of a layer x layer matrix are undefined (NaN); the message names the layers
    and says why."""


def warn_undefined_cells(out: Tensor, la, lb, measure: str, rtol: float = DEFAULT_RTOL) -> None:
    """One ``UndefinedCellsWarning`` naming the constant layers behind the NaN rows/columns of
    a layer x layer matrix ``out`` computed with undefined="nan".

    There the only NaN cells are the rows (layers of a) and columns (layers of b) of constant
    layers, so the all-NaN rows/columns name them. When every cell is NaN that cannot tell a's
    layers from b's, so those are checked one by one.
    """
    nan = torch.isnan(out)
    if not nan.any():
        return
    if nan.all():
        bad_a = [i for i, x in enumerate(la) if is_constant(x, rtol)]
        bad_b = [] if lb is None else [j for j, y in enumerate(lb) if is_constant(y, rtol)]
    else:
        bad_a = torch.nonzero(nan.all(1)).flatten().tolist()
        bad_b = [] if lb is None else torch.nonzero(nan.all(0)).flatten().tolist()
    named = [f"layer{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))} of {name}"
             for bad, name in ((bad_a, "a"), (bad_b, "b")) if bad]
    cells = "its row/column is" if len(bad_a) + len(bad_b) == 1 else "their rows/columns are"
    warnings.warn(
        f"{measure} is undefined for {' and '.join(named)}: constant across examples (every "
        "example has the same representation, e.g. the layer-0 CLS vector of BERT-style "
        f"models), so {cells} NaN; the other cells are computed as usual. Pass"
        " undefined='nan' to silence this, or undefined='raise' for an error.",
        UndefinedCellsWarning, stacklevel=3)  # the caller of cka_matrix/rsa_matrix


def to_tensor(x, what: str) -> Tensor:
    """numpy/torch/array-like -> float32 or float64 tensor (other float types become float32)."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()
    t = x.detach() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    if t.is_complex() or t.dtype == torch.bool:
        raise ConfigError(f"{what} has dtype {t.dtype}; expected real-valued features")
    return t if t.dtype in (torch.float32, F64) else t.to(torch.float32)


def as_single(x, name: str) -> Tensor:
    """One representation [n, d]."""
    t = to_tensor(x, name)
    if t.ndim != 2:
        raise ConfigError(f"{name} must be [n, d] (examples x features); got shape"
                          f" {tuple(t.shape)}. Pool tokens first (e.g. CLS or masked mean).")
    return t


def as_stack(a, name: str) -> list[Tensor]:
    """[L, n, d] tensor/array or a sequence of [n, d_l] arrays -> list of L tensors [n, d_l]."""
    if isinstance(a, (Tensor, np.ndarray)):
        t = to_tensor(a, name)
        if t.ndim != 3:
            raise ConfigError(f"{name} must be a stack of layers [L, n, d] or a sequence of"
                              f" [n, d] arrays; got shape {tuple(t.shape)}. For a single layer"
                              " pass [x] or use the single-pair function (e.g. linear_cka).")
        layers = list(t.unbind(0))
    elif isinstance(a, Sequence) and not isinstance(a, (str, bytes)):
        layers = [to_tensor(x, f"layer {i} of {name}") for i, x in enumerate(a)]
    else:
        raise ConfigError(f"{name} must be a [L, n, d] tensor/array or a sequence of [n, d]"
                          f" arrays; got {type(a).__name__}")
    if not layers:
        raise ConfigError(f"{name} holds no layers")
    for i, x in enumerate(layers):
        if x.ndim != 2 or x.shape[1] == 0:
            raise ConfigError(f"layer {i} of {name} must be [n, d] with d >= 1; got shape"
                              f" {tuple(x.shape)}. Pool tokens first (e.g. CLS or masked mean).")
        if x.shape[0] != layers[0].shape[0]:
            raise ConfigError(f"layer {i} of {name} has {x.shape[0]} examples but layer 0 has"
                              f" {layers[0].shape[0]}; every layer must hold the same examples")
    return layers


def same_examples(la, lb, names) -> int:
    """The number of examples n, checking that `lb` (if given) has the same n as `la`."""
    n = la[0].shape[0]
    if lb is not None and lb[0].shape[0] != n:
        raise ConfigError(f"{names[0]} has {n} examples but {names[1]} has {lb[0].shape[0]};"
                          " both must hold representations of the same examples, in the same"
                          " order")
    return n


def layer_label(i: int, na: int, names: tuple[str, str], single: bool) -> str:
    """How an error names input i of the concatenation la + lb ("x", or "layer 2 of b")."""
    name, j = (names[0], i) if i < na else (names[1], i - na)
    return name if single else f"layer {j} of {name}"


def check_finite(x: Tensor, what: str) -> None:
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ConfigError(f"{what} contains {bad} NaN/inf values; check the extraction (fp16"
                          " overflow?) or drop that layer")


def is_constant(x: Tensor, rtol: float = DEFAULT_RTOL) -> bool:
    """Every row (example) of x [n, d] is (numerically) the same: ||X - mean|| <= rtol ||X||."""
    x = x.to(F64)
    return bool(torch.linalg.vector_norm(x - x.mean(0)) <= rtol * torch.linalg.vector_norm(x))


def constant_message(what: str, measure: str) -> str:
    return (f"{what} is constant across examples (every example has the same representation,"
            f" e.g. the layer-0 CLS vector of BERT-style models), so {measure} with it is"
            " undefined. Drop it (constant_layers() lists such layers) or pass undefined='nan'"
            " to get NaN in its row/column")


def constant_error(what: str, measure: str) -> UndefinedError:
    return UndefinedError(constant_message(what, measure))


def as_labels(y, n: int, what: str = "labels", *, min_classes: int = 2) -> np.ndarray:
    """Integer class labels [n] -> int64 numpy array; checks length and number of classes."""
    arr = to_numpy(y)  # a tensor: detached and moved to the CPU first
    if arr.ndim != 1:
        raise ConfigError(f"{what} must be a 1-D array of class ids; got shape {arr.shape}")
    if len(arr) != n:
        raise ConfigError(f"{what} has {len(arr)} entries but there are {n} examples; give one"
                          " label per example, in the same order")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ConfigError(f"{what} must be integer class ids; got non-integer values (a"
                              " regression target? probes and DirectProbe need classes)")
    elif arr.dtype.kind not in "iu":
        raise ConfigError(f"{what} must be integer class ids; got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        raise ConfigError(f"{what} holds negative ids ({int(arr.min())}); -1 marks examples"
                          " without a label at this granularity: drop them first")
    k = len(np.unique(arr))
    if k < min_classes:
        raise ConfigError(f"{what} holds {k} distinct class(es); at least {min_classes} needed")
    return arr
