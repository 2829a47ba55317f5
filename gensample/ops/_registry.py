"""Shared ``torch.library`` plumbing of the RBM op families (``gibbs.py``, ``tempered.py``).

Each family lists its op names and fake implementations; the torch-backend copies
(``gensample::<name>_torch``) always get the fakes, the C++ ops (``gensample::<name>``)
only when the extension defines them (an older build lacks the schemas). Triton ops
derive their fake implementations by tracing the launcher.
"""
from __future__ import annotations

import torch

from .. import _backend, _ext
from . import _triton_loader


def register_fakes(fakes: dict, suffix: str) -> None:
    """``register_fake`` each ``fakes[name]`` for ``gensample::<name><suffix>``."""
    for name, fake in fakes.items():
        torch.library.register_fake(f"gensample::{name}{suffix}")(fake)


def cpp_ops_defined(ops) -> bool:
    """The extension is loaded and defines every op in ``ops``."""
    return _ext.loaded() and all(hasattr(torch.ops.gensample, n) for n in ops)


def lookup_op(name: str, backend: str, ops, family: str):
    """The op ``name`` for ``backend``: ``<name>_torch``, ``<name>_triton`` or the C++ op
    (cpu and cuda: dispatched by device). ``family`` names the ops in the stale-build error."""
    if backend == "torch":
        return getattr(torch.ops.gensample, name + "_torch")
    if backend == "triton":
        _triton_loader.require()
        if not hasattr(torch.ops.gensample, name + "_triton"):
            raise _backend.BackendUnavailableError(f"triton backend has no {name} kernel yet")
        return getattr(torch.ops.gensample, name + "_triton")
    if not cpp_ops_defined(ops):  # pragma: no cover - stale build
        raise _backend.BackendUnavailableError(
            f"gensample._C has no {name} kernels (built before the {family} ops); rebuild it with `make build`")
    return getattr(torch.ops.gensample, name)
