"""Optional loading of the compiled extension ``gensample._C``.

Importing gensample never fails because the extension is missing: the torch backend
(and, on GPU, the triton backend) still work, and :func:`gensample.info` says why the
cpu/cuda backends are unavailable.
"""
from __future__ import annotations

import os

_C = None
_error: str | None = None
_build_info: dict = {}

if os.environ.get("GENSAMPLE_DISABLE_EXT", "0") == "1":
    _error = "disabled by GENSAMPLE_DISABLE_EXT=1"
else:
    import importlib
    import importlib.util

    try:
        import torch  # noqa: F401  (the extension links against libtorch)

        if importlib.util.find_spec(__package__ + "._C") is None:
            raise ImportError("not built")
        _C = importlib.import_module(__package__ + "._C")
        _build_info = dict(_C.build_info())
    except Exception as exc:  # ImportError, or an undefined symbol from a stale build
        _C = None
        _error = (
            f"extension gensample._C not importable ({type(exc).__name__}: {exc}); "
            "build it with `pip install --no-build-isolation -e .` (or `make build`)"
        )


def loaded() -> bool:
    return _C is not None


def error() -> str | None:
    return _error


def has_cuda_kernels() -> bool:
    return bool(_build_info.get("cuda", False))


def build_info() -> dict:
    return dict(_build_info)


def empty_cache() -> None:
    """Release the large CPU output buffers the cpu backend keeps for reuse.

    The cpu backend keeps freed outputs of 1 MiB or more (up to
    ``GENSAMPLE_CPU_POOL_MB``, default 1024 MiB; 0 disables) and reuses them for outputs
    of the same size, because the first-touch page faults of fresh large buffers cost
    more than the fused kernels on many machines. No-op without the extension.
    """
    if _C is not None:
        _C.cpu_pool_clear()


def cpu_pool_stats() -> dict:
    """``{"cached_bytes", "capacity_bytes"}`` of that cache (empty without the extension)."""
    return dict(_C.cpu_pool_stats()) if _C is not None else {}
