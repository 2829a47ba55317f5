r"""gensample's one random stream, as executable specification.

Every backend (triton, cuda, cpu, torch) draws the same numbers for the same
``(seed, offset)``. This module is the pure-PyTorch definition of that stream; the
C++/CUDA header ``csrc/include/gensample/random.h`` and the Triton helpers in
``gensample/ops/random_triton.py`` implement the same operations one for one.

The mapping (also in ``docs/random-stream.md``):

* A draw is keyed by a *seed pair*: an ``int64`` tensor of shape ``(2,)`` holding
  ``(seed, offset)``, each read as an unsigned 64-bit integer, on the data's device.
* Philox4x32-10 key: ``k0 = seed mod 2^32``, ``k1 = seed >> 32``.
* Element ``i`` of a draw (flat index into the logical row-major output) uses the
  64-bit counter ``n = offset + i // 4`` as ``(c0, c1, c2, c3) = (n mod 2^32, n >> 32,
  0, 0)`` and lane ``l = i mod 4`` of the four output words ``(w0, w1, w2, w3)``: this
  is Triton's ``tl.randint4x(seed, n)``.
* Uniform: :math:`u = \lfloor w_l / 2^8 \rfloor \cdot 2^{-24} \in [0, 1)`.
* Normal: Box-Muller on the lane pairs ``(w0, w1)`` and ``(w2, w3)``:
  :math:`u = w_{2p} 2^{-32} + 2^{-33}`, :math:`r = \sqrt{-2 \log u}`, angle from
  ``w_{2p+1}`` (quadrant from its top two bits, in-quadrant position from the next 24),
  :math:`z_{2p} = r \cos t`, :math:`z_{2p+1} = r \sin t`. The log, sin and cos are
  gensample's own float32 polynomials, evaluated without fused multiply-add, so
  normals are bit-identical across backends too.

Seeds come from a :class:`torch.Generator` (the global default when ``None``): each
draw takes a fresh 64-bit seed from it, so ``torch.manual_seed`` reproduces a run and
two calls do not share numbers.
"""
from __future__ import annotations

import torch

__all__ = [
    "draw_seed",
    "seed_pair",
    "substream",
    "bernoulli_stream",
    "philox4x32_10",
    "stream_words",
    "uniform_stream",
    "normal_stream",
    "uniform",
    "normal",
]

_M32 = 0xFFFFFFFF
_ROUND_A = 0xD2511F53
_ROUND_B = 0xCD9E8D57
_KEY_A = 0x9E3779B9
_KEY_B = 0xBB67AE85


def draw_seed(generator: torch.Generator | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """Draw a fresh seed pair ``(seed, 0)`` from ``generator``.

    Returns an ``int64`` tensor of shape ``(2,)`` on ``device``. With
    ``generator=None`` the default generator of ``device`` is used, so
    ``torch.manual_seed`` makes the draw reproducible. A CPU generator may seed a draw
    on another device (the pair is copied there).
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        gen_dev = generator.device
        draw_dev = gen_dev
        if gen_dev.type != "cpu" and (gen_dev.type != device.type or (gen_dev.index or 0) != (device.index or 0)):
            raise ValueError(f"generator is on {gen_dev} but the data is on {device}; pass a generator for {device} or a CPU one")
    else:
        draw_dev = device
    key = torch.randint(-(2**63), 2**63 - 1, (1,), dtype=torch.int64, device=draw_dev, generator=generator)
    pair = torch.cat([key, torch.zeros(1, dtype=torch.int64, device=draw_dev)])
    return pair.to(device) if pair.device != device else pair


def seed_pair(seed: int, offset: int = 0, device: torch.device | str | None = None) -> torch.Tensor:
    """An explicit seed pair from Python integers (read modulo 2^64)."""

    def as_i64(v: int) -> int:
        v = int(v) % (1 << 64)
        return v - (1 << 64) if v >= (1 << 63) else v

    return torch.tensor([as_i64(seed), as_i64(offset)], dtype=torch.int64, device=device)


def substream(seed: torch.Tensor, t: int) -> torch.Tensor:
    """The seed pair of step ``t`` of a multi-step draw: ``(seed, offset + t * 2^32)``.

    An op that draws several times from one seed pair (the half-steps of
    ``gibbs_sweeps``, the steps of a Langevin chain driven from one pair) gives step
    ``t`` (0-based, ``0 <= t < 2^31``) the counters ``offset + t * 2^32 + i // 4``: the
    step number moves into the high counter word, so steps never overlap while one step
    draws fewer than ``2^34`` elements. Kernels compute this on the device; this helper
    is the specification (it runs on ``seed``'s device, no host synchronization).
    """
    _check_seed(seed)
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < 2**31:
        raise ValueError(f"t must be an int in [0, 2^31), got {t!r}")
    return seed + torch.tensor([0, t << 32], dtype=torch.int64, device=seed.device)


def _check_seed(seed: torch.Tensor) -> None:
    if not isinstance(seed, torch.Tensor) or seed.dtype != torch.int64 or seed.shape != (2,):
        raise ValueError("seed must be an int64 tensor of shape (2,) holding (seed, offset)")


def _mulhilo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) 32-bit halves of a * b for a constant a and int64 b holding uint32."""
    a_hi, a_lo = a >> 16, a & 0xFFFF
    p_lo = b * a_lo  # < 2^48
    p_hi = b * a_hi  # < 2^48; a * b = p_hi * 2^16 + p_lo
    hi = (p_hi + (p_lo >> 16)) >> 16
    lo = (((p_hi & 0xFFFF) << 16) + p_lo) & _M32
    return hi, lo


def philox4x32_10(c0, c1, c2, c3, k0: int, k1: int):
    """Philox4x32-10 on int64 tensors holding uint32 values; keys are Python ints."""
    for _ in range(10):
        hi0, lo0 = _mulhilo(_ROUND_A, c0)
        hi1, lo1 = _mulhilo(_ROUND_B, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + _KEY_A) & _M32
        k1 = (k1 + _KEY_B) & _M32
    return c0, c1, c2, c3


def stream_words(seed: torch.Tensor, n_counters: int) -> torch.Tensor:
    """The raw words of counters ``offset .. offset + n_counters - 1``: int64 ``(n, 4)``."""
    _check_seed(seed)
    s, off = (int(v) for v in seed.tolist())
    k0, k1 = s & _M32, (s >> 32) & _M32
    n = torch.arange(n_counters, dtype=torch.int64, device=seed.device) + off  # wraps mod 2^64
    c0 = n & _M32
    c1 = (n >> 32) & _M32
    zero = torch.zeros_like(c0)
    return torch.stack(philox4x32_10(c0, c1, zero, zero, k0, k1), dim=-1)


def _uniform_from_bits(w: torch.Tensor) -> torch.Tensor:
    return (w >> 8).to(torch.float32) * 2.0**-24


def _u32_to_float(w: torch.Tensor) -> torch.Tensor:
    return (w >> 16).to(torch.float32) * 65536.0 + (w & 0xFFFF).to(torch.float32)


_F32 = torch.float32


def _f(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=_F32)


# Constants as float32, matching the C++ float literals (checked in tests).
_LOG_P = [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
          -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1]
_SIN_P = [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1]
_COS_P = [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2]
_SQRTHF = 0.70710678118654752440
_HALF_PI = 1.57079637050628662109375


def log_unit(x: torch.Tensor) -> torch.Tensor:
    """gensample's float32 log for x in [2^-33, 1] (mirrors ``log_unit`` in random.h)."""
    bits = x.view(torch.int32).to(torch.int64)
    e = (bits >> 23) - 126
    m = ((bits & 0x007FFFFF) | 0x3F000000).to(torch.int32).view(_F32)
    small = m < _f(_SQRTHF)
    e = torch.where(small, e - 1, e)
    m = torch.where(small, (m + m) - 1.0, m - 1.0)
    z = m * m
    y = torch.full_like(m, _LOG_P[0])
    for c in _LOG_P[1:]:
        y = y * m + _f(c)
    y = (y * m) * z
    fe = e.to(_F32)
    y = y + fe * _f(-2.12194440e-4)
    y = y - _f(0.5) * z
    r = m + y
    return r + fe * _f(0.693359375)


def angle_cos_sin(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos t, sin t) for the angle word w (mirrors ``angle_cos_sin`` in random.h)."""
    q = w >> 30
    s = ((w >> 6) & 0xFFFFFF).to(_F32) * 2.0**-24 - 0.5
    a = s * _f(_HALF_PI)
    z = a * a
    ps = torch.full_like(z, _SIN_P[0])
    for c in _SIN_P[1:]:
        ps = ps * z + _f(c)
    sn = (ps * z) * a + a
    pc = torch.full_like(z, _COS_P[0])
    for c in _COS_P[1:]:
        pc = pc * z + _f(c)
    cs = (pc * z) * z
    cs = cs - _f(0.5) * z
    cs = cs + 1.0
    odd = (q & 1) != 0
    c0 = torch.where(odd, sn, cs)
    s0 = torch.where(odd, cs, sn)
    c = torch.where(((q + 1) & 2) != 0, -c0, c0)
    s_ = torch.where((q & 2) != 0, -s0, s0)
    return c, s_


def _box_muller(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    u = _u32_to_float(a) * 2.0**-32 + 2.0**-33
    # ATen's float32 sqrt is not correctly rounded on every CPU build (its vectorized
    # path is off by one ulp on ~16% of inputs here); the float64 square root rounded
    # to float32 is the correctly rounded float32 result (53 >= 2 * 24 + 2 bits).
    r = torch.sqrt((log_unit(u) * -2.0).double()).float()
    c, s = angle_cos_sin(b)
    return r * c, r * s


def uniform_stream(seed: torch.Tensor, numel: int) -> torch.Tensor:
    """Elements ``0 .. numel - 1`` of the uniform stream of ``seed``: float32 ``(numel,)``."""
    w = stream_words(seed, (numel + 3) // 4)
    return _uniform_from_bits(w).reshape(-1)[:numel]


def normal_stream(seed: torch.Tensor, numel: int) -> torch.Tensor:
    """Elements ``0 .. numel - 1`` of the standard-normal stream of ``seed``: float32 ``(numel,)``."""
    w = stream_words(seed, (numel + 3) // 4)
    z0, z1 = _box_muller(w[:, 0], w[:, 1])
    z2, z3 = _box_muller(w[:, 2], w[:, 3])
    return torch.stack([z0, z1, z2, z3], dim=-1).reshape(-1)[:numel]


def bernoulli_stream(seed: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Bernoulli(p) draws for float32 ``p`` (any shape): ``u_i < p_i`` with ``u`` the
    uniform stream of ``seed`` over ``p``'s flat row-major index. Returns bool.

    ``u`` lies on the 24-bit grid, so the draw is exact for ``p`` on that grid and
    off by less than ``2^-24`` in probability otherwise (``p = 0`` never fires).
    """
    u = uniform_stream(seed, p.numel()).view(p.shape)
    return u < p


def _shape(size) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        size = tuple(size[0])
    shape = tuple(int(s) for s in size)
    if any(s < 0 for s in shape):
        raise ValueError(f"size must be non-negative, got {shape}")
    return shape


def uniform(*size, generator: torch.Generator | None = None, device=None, dtype=torch.float32,
            backend: str | None = None) -> torch.Tensor:
    """Uniform [0, 1) samples from gensample's stream (24-bit resolution)."""
    from .ops import random_ops

    shape = _shape(size)
    seed = draw_seed(generator, device)
    return random_ops.philox_uniform(seed, shape, backend=backend).to(dtype)


def normal(*size, generator: torch.Generator | None = None, device=None, dtype=torch.float32,
           backend: str | None = None) -> torch.Tensor:
    """Standard normal samples from gensample's stream."""
    from .ops import random_ops

    shape = _shape(size)
    seed = draw_seed(generator, device)
    return random_ops.philox_normal(seed, shape, backend=backend).to(dtype)
