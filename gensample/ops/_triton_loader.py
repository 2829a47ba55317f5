"""Imports the Triton op modules (registering their ``torch.library.triton_op`` ops)
when triton is importable. Done at ``import gensample`` so that ``torch.compile``
finds the ops registered before it traces."""
from __future__ import annotations

from .. import _backend

_loaded = False
_error: str | None = None


def load() -> bool:
    global _loaded, _error
    if _loaded or _error is not None:
        return _loaded
    err = _backend._triton_import_error()
    if err is not None:
        _error = err
        return False
    try:
        from . import random_triton, reparam_triton  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the install
        _error = f"gensample's triton kernels failed to import ({type(exc).__name__}: {exc})"
        return False
    _loaded = True
    return True


def require() -> None:
    if not load():
        raise _backend.BackendUnavailableError(f"triton backend unavailable: {_error}")
