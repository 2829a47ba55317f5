"""Raw draws from gensample's Philox stream on every backend.

``philox_uniform(seed, shape)`` / ``philox_normal(seed, shape)`` return float32 tensors
on ``seed``'s device; the same ``seed`` pair gives the same numbers on every backend
(see :mod:`gensample.random` for the mapping).
"""
from __future__ import annotations

import torch

from .. import _backend, _ext
from .. import random as _random
from . import _triton_loader

if _ext.loaded():

    @torch.library.register_fake("gensample::philox_uniform")
    def _fake_uniform(seed, numel):
        return seed.new_empty((numel,), dtype=torch.float32)

    @torch.library.register_fake("gensample::philox_normal")
    def _fake_normal(seed, numel):
        return seed.new_empty((numel,), dtype=torch.float32)


def _draw(kind: str, seed: torch.Tensor, shape, backend: str | None) -> torch.Tensor:
    _random._check_seed(seed)
    shape = tuple(int(s) for s in shape)
    numel = 1
    for s in shape:
        numel *= s
    b = _backend.resolve(backend, seed.device)
    if b == "torch":
        flat = _random.uniform_stream(seed, numel) if kind == "uniform" else _random.normal_stream(seed, numel)
    elif b == "triton":
        _triton_loader.require()
        op = torch.ops.gensample.philox_uniform_triton if kind == "uniform" else torch.ops.gensample.philox_normal_triton
        flat = op(seed, numel)
    else:
        op = torch.ops.gensample.philox_uniform if kind == "uniform" else torch.ops.gensample.philox_normal
        flat = op(seed, numel)
    return flat.view(shape)


def philox_uniform(seed: torch.Tensor, shape, *, backend: str | None = None) -> torch.Tensor:
    """Uniforms in [0, 1) (24-bit grid) for the seed pair ``seed``, shaped ``shape``."""
    return _draw("uniform", seed, shape, backend)


def philox_normal(seed: torch.Tensor, shape, *, backend: str | None = None) -> torch.Tensor:
    """Standard normals for the seed pair ``seed``, shaped ``shape``."""
    return _draw("normal", seed, shape, backend)
