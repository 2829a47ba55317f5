r"""Replay buffer of persistent Langevin chains for EBM training (IGEBM / JEM style).

:class:`ReplayBuffer` keeps ``capacity`` states of shape ``sample_shape`` in one
device-resident tensor. ``sample(n)`` draws ``n`` slots uniformly with replacement and
replaces each, with probability ``reinit_prob``, by a fresh draw from ``init``; this is
one gather and one ``torch.where`` (no Python loop, no host synchronization). After
running the chains, ``push(x, idx)`` scatters them back into the slots they came from.

Randomness: every ``sample`` call takes one seed pair from ``generator`` (the default
generator of the buffer's device when ``None``) and draws from gensample's Philox stream:

* ``substream(seed, 0)``: uniform ``(3, n)``: slot index from rows 0 and 1 (48 random
  bits: ``idx = floor((u_0 + 2^{-24} u_1) * capacity)``, bias below ``capacity / 2^48``),
  reinit decision ``u_2 < reinit_prob`` from row 2;
* ``substream(seed, 1)``: the fresh states: ``2u - 1`` (``init="uniform"``, uniform on
  ``(-1, 1)``) or standard normals (``init="normal"``), ``n * prod(sample_shape)`` of them.

A callable ``init`` is called as ``init(n)`` and must return a tensor of shape
``(n, *sample_shape)`` (it draws its own randomness).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from . import random as _random
from ._checks import check_int, check_real

__all__ = ["ReplayBuffer"]

_INITS = ("uniform", "normal")


class ReplayBuffer:
    """Device-resident replay buffer with fused gather + reinit.

    Args:
        capacity: number of stored states.
        sample_shape: shape of one state (e.g. ``(1, 28, 28)`` or ``(2,)``).
        reinit_prob: probability that a sampled slot is replaced by a fresh ``init`` draw.
        init: ``"uniform"`` (on ``(-1, 1)``, the default), ``"normal"``, or a callable
            ``init(n) -> Tensor (n, *sample_shape)``. The storage starts filled from it.
        device, dtype: where and how the states are stored.
        generator: a :class:`torch.Generator` seeding the draws (``None``: the default one).
        backend: gensample backend of the stream draws (``None``: automatic).
    """

    def __init__(self, capacity: int, sample_shape, *, reinit_prob: float = 0.05,
                 init: str | Callable[[int], torch.Tensor] = "uniform", device=None,
                 dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None,
                 backend: str | None = None):
        self.capacity = check_int("capacity", capacity, 1)
        if isinstance(sample_shape, int):
            sample_shape = (sample_shape,)
        try:
            self.sample_shape = tuple(int(s) for s in sample_shape)
        except TypeError:
            raise TypeError(f"sample_shape must be an int or a tuple of ints, got {sample_shape!r}") from None
        if any(s < 1 for s in self.sample_shape):
            raise ValueError(f"sample_shape must have positive sizes, got {self.sample_shape}")
        self.reinit_prob = check_real("reinit_prob", reinit_prob, nonneg=True)
        if self.reinit_prob > 1:
            raise ValueError(f"reinit_prob must be in [0, 1], got {self.reinit_prob}")
        if not (callable(init) or init in _INITS):
            raise ValueError(f"init must be one of {_INITS} or a callable init(n) -> Tensor, got {init!r}")
        if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise TypeError(f"dtype must be a floating dtype, got {dtype}")
        self.init = init
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.generator = generator
        self.backend = backend
        self._numel = math.prod(self.sample_shape)
        self.ptr = 0
        self.storage = self._fresh(self.capacity, _random.draw_seed(generator, self.device))

    # ------------------------------------------------------------------ helpers
    def _fresh(self, n: int, seed: torch.Tensor) -> torch.Tensor:
        from .ops import random_ops

        shape = (n, *self.sample_shape)
        if callable(self.init):
            x = self.init(n)
            if not isinstance(x, torch.Tensor) or tuple(x.shape) != shape:
                got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f"init({n}) must return a tensor of shape {shape}, got {got}")
            return x.to(device=self.device, dtype=self.dtype)
        if self.init == "uniform":
            u = random_ops.philox_uniform(seed, shape, backend=self.backend)
            return (u * 2.0 - 1.0).to(self.dtype)
        return random_ops.philox_normal(seed, shape, backend=self.backend).to(self.dtype)

    def __len__(self) -> int:
        return self.capacity

    # ------------------------------------------------------------------ API
    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` states: returns ``(x, idx)``, ``x`` of shape ``(n, *sample_shape)``
        (a new tensor) and ``idx`` (int64 ``(n,)``) the slots they came from, for
        :meth:`push`. Each row is ``storage[idx]`` or, with probability ``reinit_prob``,
        a fresh ``init`` draw."""
        from .ops import random_ops

        check_int("n", n, 1)
        seed = _random.draw_seed(self.generator, self.device)
        u = random_ops.philox_uniform(_random.substream(seed, 0), (3, n), backend=self.backend)
        v = u[0].double() + u[1].double() * 2.0**-24
        idx = (v * self.capacity).long().clamp_max_(self.capacity - 1)
        x = self.storage.index_select(0, idx)
        if self.reinit_prob > 0:
            reinit = (u[2] < self.reinit_prob).view((n,) + (1,) * len(self.sample_shape))
            x = torch.where(reinit, self._fresh(n, _random.substream(seed, 1)), x)
        return x, idx

    @torch.no_grad()
    def push(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> None:
        """Store states ``x`` (shape ``(n, *sample_shape)``): into slots ``idx`` (scatter;
        with repeated indices one of the writes wins) or, with ``idx=None``, at the next
        ``n`` positions of a ring pointer (oldest first)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 1 + len(self.sample_shape) or tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(f"x must have shape (n, *{self.sample_shape}), got {tuple(x.shape)}")
        n = x.shape[0]
        if idx is None:
            idx = (torch.arange(n, device=self.device) + self.ptr) % self.capacity
            self.ptr = (self.ptr + n) % self.capacity
            if n > self.capacity:  # only the last `capacity` rows survive; keep that explicit
                x, idx = x[-self.capacity:], idx[-self.capacity:]
        else:
            if not isinstance(idx, torch.Tensor) or idx.dtype != torch.int64 or idx.shape != (n,):
                raise ValueError(f"idx must be an int64 tensor of shape ({n},), as returned by sample()")
            idx = idx.to(self.device)
        self.storage.index_copy_(0, idx, x.detach().to(device=self.device, dtype=self.dtype))

    def state_dict(self) -> dict:
        return {"storage": self.storage.clone(), "ptr": self.ptr, "capacity": self.capacity,
                "sample_shape": self.sample_shape, "reinit_prob": self.reinit_prob}

    def load_state_dict(self, state: dict) -> None:
        s = state["storage"]
        if tuple(s.shape) != (self.capacity, *self.sample_shape):
            raise ValueError(f"state_dict storage has shape {tuple(s.shape)}, this buffer holds "
                             f"{(self.capacity, *self.sample_shape)}")
        self.storage.copy_(s)
        self.ptr = int(state.get("ptr", 0)) % self.capacity
        self.reinit_prob = float(state.get("reinit_prob", self.reinit_prob))

    def __repr__(self) -> str:
        return (f"ReplayBuffer(capacity={self.capacity}, sample_shape={self.sample_shape}, "
                f"reinit_prob={self.reinit_prob}, device={self.device}, dtype={self.dtype})")
