"""Backend selection: the one place where gensample decides which kernels run.

``backend=None`` picks the fastest available backend for the tensors' device;
``backend="triton" | "cuda" | "cpu" | "torch"`` (or the environment variable
``GENSAMPLE_BACKEND``, used when ``backend`` is None) forces one, and an unavailable
forced backend raises :class:`BackendUnavailableError` saying why.

| backend | device | kernels |
|---|---|---|
| ``cuda``   | CUDA tensors | C++/CUDA kernels in ``gensample._C`` |
| ``triton`` | CUDA tensors (CPU tensors under ``TRITON_INTERPRET=1``, for tests) | Triton |
| ``cpu``    | CPU tensors | C++ kernels in ``gensample._C``, ``at::parallel_for`` |
| ``torch``  | any | pure PyTorch: the executable specification |
"""
from __future__ import annotations

import functools
import os

import torch

from . import _ext

BACKENDS = ("triton", "cuda", "cpu", "torch")
# Preference order when backend is None.
_AUTO_ORDER = {"cuda": ("cuda", "triton", "torch"), "cpu": ("cpu", "torch")}


class BackendUnavailableError(RuntimeError):
    """A forced backend cannot run here (the message says why)."""


def triton_interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.lru_cache(maxsize=None)
def _triton_import_error() -> str | None:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the install
        return f"triton not importable ({type(exc).__name__}: {exc}); pip install triton"
    return None


def unavailable_reason(backend: str, device_type: str) -> str | None:
    """None if ``backend`` can run on tensors of ``device_type``, else the reason."""
    if backend == "torch":
        return None
    if backend == "cpu":
        if device_type != "cpu":
            return f"the cpu backend runs on CPU tensors, not {device_type}"
        if not _ext.loaded():
            return _ext.error()
        return None
    if backend == "cuda":
        if device_type != "cuda":
            return f"the cuda backend runs on CUDA tensors, not {device_type}"
        if not _ext.loaded():
            return _ext.error()
        if not _ext.has_cuda_kernels():
            return "gensample._C was built without CUDA kernels (no CUDA toolkit or CPU-only torch at build time; GENSAMPLE_CUDA=1 forces them)"
        return None
    if backend == "triton":
        err = _triton_import_error()
        if err:
            return err
        from .ops import _triton_loader

        if not _triton_loader.load():
            return _triton_loader._error
        if device_type == "cuda":
            return None
        if device_type == "cpu" and triton_interpret():
            return None
        return f"the triton backend runs on CUDA tensors (CPU tensors only under TRITON_INTERPRET=1), not {device_type}"
    raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")


def resolve(backend: str | None, device: torch.device) -> str:
    """The backend to run for tensors on ``device``."""
    if backend is None:
        env = os.environ.get("GENSAMPLE_BACKEND", "").strip().lower()
        backend = env or None
        source = "GENSAMPLE_BACKEND"
    else:
        source = "backend"
    if backend is not None:
        if not isinstance(backend, str) or backend not in BACKENDS:
            raise ValueError(f"{source} must be one of {BACKENDS} or None, got {backend!r}")
        reason = unavailable_reason(backend, device.type)
        if reason is not None:
            raise BackendUnavailableError(f"{source}={backend!r} is unavailable for {device.type} tensors: {reason}")
        return backend
    for cand in _AUTO_ORDER.get(device.type, ("torch",)):
        if unavailable_reason(cand, device.type) is None:
            return cand
    return "torch"


def available(device_type: str) -> dict[str, str | None]:
    """Backend -> None (available) or the reason it is not, for ``device_type``."""
    return {b: unavailable_reason(b, device_type) for b in BACKENDS}
