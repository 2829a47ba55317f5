"""Triton implementation of gensample's Philox stream (the ``triton`` backend).

The ``@triton.jit`` helpers below mirror ``csrc/include/gensample/random.h`` operation
for operation (and :mod:`gensample.random`, the pure-torch specification), so uniforms
and normals are bit-identical to every other backend:

* Philox words: ``tl.randint4x(seed, n)`` with a 64-bit counter ``n`` is
  Philox4x32-10 on ``(c0, c1, c2, c3) = (low32(n), high32(n), 0, 0)`` under the key
  ``(low32(seed), high32(seed))`` (triton/language/random.py: ``randint4x`` splits the
  counter, ``philox`` splits the seed, ``philox_impl`` runs the same rounds as
  ``philox4x32_10`` in random.h), which is gensample's mapping.
* Float arithmetic in the conversions is written with explicitly rounded float32
  operations (:func:`fmul`, :func:`fadd`, :func:`fsub`) and never contracted into FMA.
  On a GPU these are libdevice's ``__nv_f{mul,add,sub}_rn`` (PTX ``mul.rn.f32`` /
  ``add.rn.f32``), which neither LLVM nor ptxas fuse, so the normals stay exact even
  when the kernel is compiled with FP fusion on: ``torch.compile`` (Inductor) compiles
  user Triton kernels itself and drops the ``enable_fp_fusion=False`` launch option,
  which is still passed on every eager launch as a second guard. Under
  ``TRITON_INTERPRET=1`` they are plain numpy float32 operations (correctly rounded,
  no contraction). ``tl.sqrt_rn`` is the correctly rounded square root.
* Float constants are Python floats rounded to float32 when they meet a float32
  tensor, which equals the C++ ``...f`` literals (checked in the tests).

Ops: ``gensample::philox_uniform_triton(Tensor seed, SymInt numel) -> Tensor`` and
``gensample::philox_normal_triton(Tensor seed, SymInt numel) -> Tensor`` (float32,
1-D, on ``seed``'s device; ``seed`` is the int64 ``(seed, offset)`` pair, read inside
the kernel, so there is no host synchronisation).
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton
from triton.language.extra import libdevice

__all__ = [
    "fmul",
    "fadd",
    "fsub",
    "philox_words",
    "uniform_from_bits",
    "u32_to_float",
    "log_unit",
    "angle_cos_sin",
    "box_muller",
    "uniform4",
    "normal4",
    "normal_lane",
    "interleave4",
    "STREAM_BLOCK",
    "STREAM_WARPS",
]

# True when the kernels are compiled for a GPU: use the libdevice round-to-nearest
# intrinsics there. The interpreter (decided by triton.jit at decoration time, i.e.
# at import, from the same variable) cannot call libdevice; numpy's float32 ops are
# already correctly rounded one by one.
_RN_INTRINSICS = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") != "1")

# Counters per program of the stream kernels (4 outputs each) and their warps.
STREAM_BLOCK = 256
STREAM_WARPS = 4


# --- explicitly rounded float32 arithmetic (gs_mul / gs_add / gs_sub) ---------
@triton.jit
def fmul(a, b):
    if _RN_INTRINSICS:
        return libdevice.mul_rn(a, b)
    else:
        return a * b


@triton.jit
def fadd(a, b):
    if _RN_INTRINSICS:
        return libdevice.add_rn(a, b)
    else:
        return a + b


@triton.jit
def fsub(a, b):
    if _RN_INTRINSICS:
        return libdevice.sub_rn(a, b)
    else:
        return a - b


# --- Philox and conversions (random.h) ----------------------------------------
@triton.jit
def philox_words(seed, counter):
    """The four uint32 words of int64 ``counter`` under the int64 ``seed``."""
    return tl.randint4x(seed, counter)


@triton.jit
def uniform_from_bits(w):
    # (w >> 8) * 2^-24: exact (24-bit integer times a power of two).
    return (w >> 8).to(tl.int32).to(tl.float32) * 5.9604644775390625e-08


@triton.jit
def u32_to_float(w):
    hi = (w >> 16).to(tl.int32).to(tl.float32) * 65536.0  # exact
    lo = (w & 0xFFFF).to(tl.int32).to(tl.float32)
    return fadd(hi, lo)


@triton.jit
def log_unit(x):
    """Natural log of x in [2^-33, 1] (Cephes logf polynomial, explicitly rounded)."""
    bits = x.to(tl.uint32, bitcast=True)
    e = (bits >> 23).to(tl.int32) - 126
    m = ((bits & 0x007FFFFF) | 0x3F000000).to(tl.float32, bitcast=True)
    small = m < 0.70710678118654752440
    e = tl.where(small, e - 1, e)
    m = tl.where(small, fsub(fadd(m, m), 1.0), fsub(m, 1.0))  # exact
    z = fmul(m, m)
    y = fadd(fmul(m, 7.0376836292e-2), -1.1514610310e-1)
    y = fadd(fmul(y, m), 1.1676998740e-1)
    y = fadd(fmul(y, m), -1.2420140846e-1)
    y = fadd(fmul(y, m), 1.4249322787e-1)
    y = fadd(fmul(y, m), -1.6668057665e-1)
    y = fadd(fmul(y, m), 2.0000714765e-1)
    y = fadd(fmul(y, m), -2.4999993993e-1)
    y = fadd(fmul(y, m), 3.3333331174e-1)
    y = fmul(fmul(y, m), z)
    fe = e.to(tl.float32)
    y = fadd(y, fmul(fe, -2.12194440e-4))
    y = fsub(y, fmul(z, 0.5))
    r = fadd(m, y)
    r = fadd(r, fmul(fe, 0.693359375))
    return r


@triton.jit
def angle_cos_sin(w):
    """(cos t, sin t) of the angle encoded by the uint32 word w (see random.h)."""
    q = w >> 30
    s = fsub(((w >> 6) & 0xFFFFFF).to(tl.int32).to(tl.float32) * 5.9604644775390625e-08, 0.5)  # exact
    a = fmul(s, 1.57079637050628662109375)  # float32(pi/2)
    z = fmul(a, a)
    ps = fadd(fmul(z, -1.9515295891e-4), 8.3321608736e-3)
    ps = fadd(fmul(ps, z), -1.6666654611e-1)
    sn = fadd(fmul(fmul(ps, z), a), a)
    pc = fadd(fmul(z, 2.443315711809948e-5), -1.388731625493765e-3)
    pc = fadd(fmul(pc, z), 4.166664568298827e-2)
    cs = fmul(fmul(pc, z), z)
    cs = fsub(cs, fmul(z, 0.5))
    cs = fadd(cs, 1.0)
    odd = (q & 1) != 0
    c0 = tl.where(odd, sn, cs)
    s0 = tl.where(odd, cs, sn)
    c = tl.where(((q + 1) & 2) != 0, -c0, c0)
    s_ = tl.where((q & 2) != 0, -s0, s0)
    return c, s_


@triton.jit
def box_muller(a, b):
    """Two standard normals from the words (a, b): radius from a, angle from b."""
    u = fadd(fmul(u32_to_float(a), 2.3283064365386963e-10), 1.1641532182693481e-10)
    r = tl.sqrt_rn(fmul(log_unit(u), -2.0))
    c, s = angle_cos_sin(b)
    return fmul(r, c), fmul(r, s)


@triton.jit
def uniform4(w0, w1, w2, w3):
    return uniform_from_bits(w0), uniform_from_bits(w1), uniform_from_bits(w2), uniform_from_bits(w3)


@triton.jit
def normal4(w0, w1, w2, w3):
    z0, z1 = box_muller(w0, w1)
    z2, z3 = box_muller(w2, w3)
    return z0, z1, z2, z3


@triton.jit
def normal_lane(w0, w1, w2, w3, lane):
    """Lane ``lane`` (0..3, a tensor) of normal4: one Box-Muller pair instead of two."""
    hi_pair = (lane & 2) != 0
    z_c, z_s = box_muller(tl.where(hi_pair, w2, w0), tl.where(hi_pair, w3, w1))
    return tl.where((lane & 1) != 0, z_s, z_c)


@triton.jit
def interleave4(x0, x1, x2, x3):
    """(..., N) x 4 -> (..., 4N) with out[..., 4j + l] = x_l[..., j]."""
    return tl.interleave(tl.interleave(x0, x2), tl.interleave(x1, x3))


# --- stream kernels -------------------------------------------------------------
@triton.jit
def _philox_stream_kernel(out_ptr, seed_ptr, numel, NORMAL: tl.constexpr, BLOCK: tl.constexpr):
    # One program: BLOCK counters -> 4 * BLOCK consecutive outputs.
    seed = tl.load(seed_ptr)
    offset = tl.load(seed_ptr + 1)
    pid = tl.program_id(0).to(tl.int64)
    c = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    w0, w1, w2, w3 = philox_words(seed, offset + c)  # int64 add wraps mod 2^64
    if NORMAL:
        x0, x1, x2, x3 = normal4(w0, w1, w2, w3)
    else:
        x0, x1, x2, x3 = uniform4(w0, w1, w2, w3)
    out = interleave4(x0, x1, x2, x3)
    idx = pid * (4 * BLOCK) + tl.arange(0, 4 * BLOCK).to(tl.int64)
    tl.store(out_ptr + idx, out, mask=idx < numel)


def _check_seed(seed: torch.Tensor) -> None:
    if not isinstance(seed, torch.Tensor) or seed.dtype != torch.int64 or tuple(seed.shape) != (2,):
        raise ValueError("seed must be an int64 tensor of shape (2,) holding (seed, offset)")


def _stream(seed: torch.Tensor, numel, normal: bool) -> torch.Tensor:
    _check_seed(seed)
    if numel < 0:
        raise ValueError(f"numel must be non-negative, got {numel}")
    out = torch.empty((numel,), dtype=torch.float32, device=seed.device)
    if numel > 0:
        grid = (triton.cdiv(triton.cdiv(numel, 4), STREAM_BLOCK),)
        wrap_triton(_philox_stream_kernel)[grid](
            out, seed, numel, NORMAL=normal, BLOCK=STREAM_BLOCK,
            num_warps=STREAM_WARPS, enable_fp_fusion=False)
    return out


@triton_op("gensample::philox_uniform_triton", mutates_args=())
def philox_uniform_triton(seed: torch.Tensor, numel: int) -> torch.Tensor:
    return _stream(seed, numel, False)


@triton_op("gensample::philox_normal_triton", mutates_args=())
def philox_normal_triton(seed: torch.Tensor, numel: int) -> torch.Tensor:
    return _stream(seed, numel, True)
