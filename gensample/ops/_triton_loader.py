"""Loads the Triton op modules (registering their ``torch.library.triton_op`` ops).

Importing triton and ``torch._inductor`` (which ``triton_op`` needs) costs over a
second, and Triton kernels can only run on CUDA tensors (or CPU tensors under
``TRITON_INTERPRET=1``). So ``import gensample`` loads them eagerly only when one of
those holds (``preload``), and registration hooks (autograd for each op family) run
right after the load. Loading happens before any ``torch.compile`` tracing in those
cases, so compiled graphs find the ops registered.
"""
from __future__ import annotations

import os

from .. import _backend

_loaded = False
_error: str | None = None
_hooks: list = []


def on_load(fn) -> None:
    """Run ``fn()`` once the triton ops are registered (now, if they already are)."""
    _hooks.append(fn)
    if _loaded:
        fn()


def load() -> bool:
    global _loaded, _error
    if _loaded or _error is not None:
        return _loaded
    err = _backend._triton_import_error()
    if err is not None:
        _error = err
        return False
    try:
        import importlib
        import pkgutil

        from . import __path__ as ops_path

        # every gensample/ops/*_triton.py module registers its triton_ops on import
        for mod in sorted(m.name for m in pkgutil.iter_modules(ops_path) if m.name.endswith("_triton")):
            importlib.import_module(f"{__package__}.{mod}")
    except Exception as exc:  # pragma: no cover - depends on the install
        _error = f"gensample's triton kernels failed to import ({type(exc).__name__}: {exc})"
        return False
    _loaded = True
    for fn in _hooks:
        fn()
    return True


def preload() -> None:
    """Load at import time where the triton backend can run at all."""
    import torch

    if os.environ.get("TRITON_INTERPRET", "0") == "1" or torch.cuda.is_available():
        load()


def require() -> None:
    if not load():
        raise _backend.BackendUnavailableError(f"triton backend unavailable: {_error}")
