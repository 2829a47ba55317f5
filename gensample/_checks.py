"""Input validation shared by every op: errors name the argument and what was expected."""
from __future__ import annotations

import math

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_float_tensor(name: str, t, dtype=None, device=None, *, like: str = "mu") -> None:
    """``t`` is a floating tensor, optionally of ``dtype`` and on ``device`` (those of ``like``)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating tensor (float16, bfloat16, float32 or float64), got {t.dtype}")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{name} has dtype {t.dtype} but {like} has dtype {dtype}; cast them to one dtype")
    if device is not None and t.device != device:
        raise ValueError(f"{name} is on {t.device} but {like} is on {device}; put them on one device")


def check_shape(name: str, t: torch.Tensor, shape: tuple, what: str = "") -> None:
    """``t.shape == shape`` exactly (no broadcasting)."""
    if tuple(t.shape) != tuple(shape):
        extra = f" ({what})" if what else ""
        raise ValueError(f"{name} must have shape {tuple(shape)}{extra}, got {tuple(t.shape)}")


def check_int(name: str, v, lo: int | None = None) -> int:
    """A Python int (not bool), at least ``lo``."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return v


def check_real(name: str, v, *, positive: bool = False, nonneg: bool = False) -> float:
    """A finite Python number (not bool), optionally > 0 or >= 0."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    if nonneg and not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v
