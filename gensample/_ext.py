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
