"""Where tensors live, in what precision they are computed, and the one way back to numpy.

One resolved device per run (DESIGN §6 "Devices"): ``resolve_device("auto")`` picks CUDA, then
Apple's MPS, then the CPU; a study records ``device_record(device, dtype)`` in its result.

The API a study needs, in order::

    device = devices.resolve_device(cfg.device)          # auto | cpu | cuda | cuda:1 | mps
    model = model.to(device)
    batch = devices.to_device(batch, device)             # every tensor of a batch dict
    with devices.autocast(device):                       # bf16/fp16 on CUDA, nothing on CPU/MPS
        logits = model(**batch).logits
    array = devices.to_numpy(logits)                     # detach, to CPU, bf16/fp16 -> float32
    record = devices.device_record(device, devices.compute_dtype(device))

Precision rule. ``autocast(device, "auto")`` computes in bfloat16 on CUDA devices that support it
(Ampere and newer: ``torch.cuda.is_bf16_supported()``), else in float16; on the CPU and MPS it
does nothing, so CPU results stay bit-identical to plain float32. Maths whose accuracy depends
on fp32/fp64 accumulation (CKA Gram matrices, hull distances, bootstrap statistics) is never run
under autocast: the callers of this module only wrap model forward passes.

Numpy. ``to_numpy`` is the one tensor -> numpy conversion in ``lib/layerscope``
(``tests/test_devices.py`` fails on any other ``.numpy()`` call): ``Tensor.numpy()`` refuses CUDA
tensors, tensors that require grad, and bfloat16 (numpy has no bfloat16). ``Tensor.tolist()``
and ``float(tensor)`` copy to the host themselves and are left as they are.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Mapping

import numpy as np
import torch

from .errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:<index>", "mps")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")
_DTYPE_ALIASES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16",
                  "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
                  "auto": "auto", None: "float32", torch.float32: "float32",
                  torch.bfloat16: "bfloat16", torch.float16: "float16"}
_TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# Batch sizes scale with free GPU memory in powers of two, one doubling per 2 GiB free, at most
# MAX_BATCH_SCALE times the CPU default (see ``batch_size_for``).
GIB_PER_DOUBLING = 2
MAX_BATCH_SCALE = 16


# --------------------------------------------------------------------------- which device
def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> tuple[str, ...]:
    """The devices this machine can run on, e.g. ``('cpu',)`` or ``('cpu', 'cuda:0', 'cuda:1')``."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        out.append("mps")
    return tuple(out)


def _parse(name) -> torch.device | str | None:
    """``"auto"``, the ``torch.device`` of a cpu/cuda/mps name, or None for anything else."""
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        return None
    key = name.strip().lower()
    if key == "auto":
        return key
    try:
        dev = torch.device(key)
    except (RuntimeError, ValueError):
        return None
    return dev if dev.type in ("cpu", "cuda", "mps") else None


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` for ``name``: ``auto`` (CUDA, then MPS, then the CPU), ``cpu``,
    ``cuda`` (the current CUDA device), ``cuda:<index>``, ``mps``, or a ``torch.device``.

    A device this machine does not have raises ``ConfigError`` naming it and the available ones
    (no silent fallback to the CPU: a run asked to use a GPU should not quietly take hours).
    """
    if not isinstance(name, (str, torch.device)):
        raise ConfigError(f"device={name!r}: use a string, one of {', '.join(DEVICE_CHOICES)}")
    dev = _parse(name)
    if dev == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if dev is None:
        raise ConfigError(f"unknown device {name!r}; valid values: {', '.join(DEVICE_CHOICES)} "
                          f"(available here: {', '.join(available_devices())})")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} is not available: torch {torch.__version__} sees "
                              f"no CUDA GPU (available here: {', '.join(available_devices())}); "
                              f"use device='auto' or 'cpu', or install a CUDA build of torch")
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} is not available: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s) (available here: "
                              f"{', '.join(available_devices())})")
        return torch.device("cuda", index)
    if dev.type == "mps" and not _mps_available():
        raise ConfigError(f"device {name!r} is not available (available here: "
                          f"{', '.join(available_devices())}); use device='auto' or 'cpu'")
    return torch.device(dev.type)  # 'cpu:0' -> 'cpu'


def check_device_name(name) -> str:
    """``name`` if it is a device name ``resolve_device`` understands (auto, cpu, cuda,
    cuda:<index>, mps), else a ``ConfigError``; it does not ask whether this machine has it.

    Configs check names with it when they are built (a typo fails at once, even in a sweep's
    ``--dry-run``) and resolve them when they run: a config written on a laptop may run on a
    GPU worker."""
    if not isinstance(name, str) or _parse(name) is None:
        raise ConfigError(f"device={name!r}: use one of {', '.join(DEVICE_CHOICES)}")
    return name


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def to_device(batch: Mapping, device: str | torch.device) -> dict:
    """A copy of a batch dict with every tensor moved to ``device`` (other values as they are)."""
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v)
            for k, v in batch.items()}


# --------------------------------------------------------------------------- precision
def compute_dtype(device: str | torch.device, dtype: str | torch.dtype | None = "auto") -> str:
    """The compute dtype ``autocast(device, dtype)`` uses, by name: ``float32``, ``bfloat16``
    or ``float16`` (what a result records; also what ``ActivationSpec.dtype`` takes).

    ``auto``: bfloat16 on a CUDA device that supports it, else float16 on CUDA; float32 on the
    CPU and MPS. An explicit dtype is used as asked; bfloat16 on a CUDA device without it raises
    ``ConfigError`` (use float16 there).
    """
    try:
        name = _DTYPE_ALIASES[dtype]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown compute dtype {dtype!r}; valid values: "
                          f"{', '.join(COMPUTE_DTYPES)} (or fp32, bf16, fp16)") from None
    dev = torch.device(device)
    if name == "auto":
        if dev.type != "cuda":
            return "float32"
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if name == "bfloat16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"dtype 'bfloat16' is not supported by {torch.cuda.get_device_name(dev)}"
                          f" (before Ampere); use 'float16' or 'auto'")
    return name


def autocast(device: str | torch.device, dtype: str | torch.dtype | None = "auto"):
    """A context manager computing a forward pass in ``compute_dtype(device, dtype)``.

    float32 is a ``nullcontext`` (no autocast at all, so the numbers are the plain float32
    ones); bfloat16/float16 are ``torch.autocast(device.type, dtype=...)``: matrix products in
    half precision, reductions and softmax kept in float32 by torch's autocast op lists.
    """
    dev = torch.device(device)
    name = compute_dtype(dev, dtype)
    if name == "float32":
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=_TORCH_DTYPES[name])


# --------------------------------------------------------------------------- memory
def batch_size_for(device: str | torch.device, default: int) -> int:
    """Examples per forward pass on ``device``: ``default`` on the CPU and MPS (the sizes tuned
    there stay as they are); on CUDA ``default`` times a power of two, one doubling per
    ``GIB_PER_DOUBLING`` GiB of *free* memory, at most ``MAX_BATCH_SCALE`` times.

    E.g. default 32: 8 GiB free -> 128; 16 GiB -> 256; 32 GiB or more -> 512. A base-size
    encoder at 128 tokens needs about 6 MiB per example for all hidden states in float32 (plus
    the all-span skipping kernel's stacked copies), so this leaves ample headroom; it is a
    throughput choice, not a fit to the last byte.
    """
    if isinstance(default, bool) or not isinstance(default, int) or default < 1:
        raise ConfigError(f"default batch size {default!r}: use a positive int")
    dev = torch.device(device)
    if dev.type != "cuda":
        return default
    free, _total = torch.cuda.mem_get_info(dev)
    doublings = int(free // (GIB_PER_DOUBLING * 2**30)).bit_length() - 1  # floor(log2(ratio))
    scale = min(MAX_BATCH_SCALE, 2 ** max(0, doublings))
    return default * scale


# --------------------------------------------------------------------------- records, numpy
def device_record(device: str | torch.device, dtype: str | torch.dtype | None = "float32"
                  ) -> dict:
    """What a result records about where it ran: flat scalars.

    {device: "cuda:0", device_type: "cuda", device_name: "NVIDIA H200" (the CPU: the platform's
    processor name), compute_dtype: "bfloat16", torch: "2.13.0", cuda: "12.8" or None}.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    elif dev.type == "mps":
        name = f"Apple MPS ({platform.machine()})"
    else:
        name = platform.processor() or platform.machine() or "cpu"
    return {"device": str(dev), "device_type": dev.type, "device_name": name,
            "compute_dtype": compute_dtype(dev, dtype), "torch": str(torch.__version__),
            "cuda": torch.version.cuda if dev.type == "cuda" else None}


def to_numpy(t) -> np.ndarray:
    """``t`` as a numpy array: detached, moved to the CPU, bfloat16/float16 upcast to float32.

    The one tensor -> numpy conversion of the package. A CPU tensor that needs none of this
    shares its memory with the returned array, exactly like ``t.numpy()``, so CPU float32 values
    are unchanged bit for bit. The upcast is exact (every bf16/fp16 value is a float32 value);
    it is done after the move, so only the half-precision bytes cross the bus. Numpy arrays (and
    anything else ``np.asarray`` takes) pass through ``np.asarray``.
    """
    if not torch.is_tensor(t):
        return np.asarray(t)
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.resolve_conj().resolve_neg().numpy()
