r"""Triton kernels of the Langevin family (the ``triton`` backend).

Ops (schemas of ``csrc/langevin_ops.cpp`` with a ``_triton`` suffix; see
``specs/LANGEVIN.md`` and :mod:`gensample.ops.langevin` for the math)::

    gensample::langevin_step_triton(Tensor x, Tensor grad, Tensor step_size,
        Tensor noise_scale, Tensor seed, float grad_clip, int clip_mode, float clamp_lo,
        float clamp_hi, bool want_norm) -> (Tensor out, Tensor grad_norm)
    gensample::langevin_step__triton(Tensor(a!) x, ...same...) -> Tensor grad_norm
    gensample::mala_accept__triton(Tensor(a!) x, Tensor(b!) grad, Tensor(c!) energy,
        Tensor x_prop, Tensor grad_prop, Tensor energy_prop, Tensor step_size,
        Tensor noise_scale, Tensor seed) -> (Tensor accepted, Tensor log_alpha)
    gensample::sgld_step__triton(Tensor(a!)[] params, Tensor[] grads, float lr,
        float noise_scale, float weight_decay, Tensor seed) -> ()

(``triton_op`` infers the schema from the annotations: ``int`` becomes ``SymInt``.)

Step, per element :math:`i = c M + j` of ``x`` viewed as ``(C, M)`` (each operation a
separately rounded float32 operation, never contracted into an FMA)::

    g' = g | clamp(g, -clip, clip) | g * scale_c,  scale_c = clip / n_c if n_c > clip else 1
    y  = (x - step_c * g') + noise_c * eps_i,  eps_i = normal stream element i
    y  = clamp(y, lo, hi)                              (only when a bound is finite)

Layout. The step kernel works in the *stream's* frame: a program owns ``BLOCK``
consecutive Philox counters, i.e. ``4 * BLOCK`` consecutive flat elements; every lane of
every Philox call is used and ``x``/``grad``/``out`` move as contiguous runs (16-byte
vector accesses when the pointers are 16-byte aligned and ``numel % 16 == 0``, which
Triton specializes on; checked in the sm_90 PTX by the tests).
The chain of an element is ``i // M``: computed once per counter when ``M % 4 == 0``
(the 4 lanes share a chain), per element otherwise, and not at all when step and noise
are the same for every chain (stride-0 or ``C == 1``) and there is no norm clip.
The explicitly rounded operations are :func:`~gensample.ops.random_triton.fmul` & co
(libdevice ``*_rn`` on a GPU, plain float32 under the interpreter), so the kernel stays
exact even where ``torch.compile`` recompiles it with FP fusion on.

Per-chain reductions (norm clip / ``grad_norm``, MALA's two proposal terms) use a
chain tile of ``BLOCK_C`` chains by ``W`` columns; a chain's columns may be split over
several programs, which write float64 partial sums that a second small kernel adds in a
fixed order. Every sum is accumulated in float64 in a fixed order that depends only on
``(C, M)``: deterministic, no atomics.

MALA: reduce (two float64 sums per chain) -> finalize (``log_alpha``, the uniform
``u_c`` = element ``c`` of the accept seed's uniform stream, the decision, the energy
select) -> select kernel (copies ``x_prop``/``grad_prop`` rows of accepted chains into
``x``/``grad``; rejected rows are neither read nor written). All on the device: no host
synchronisation.

SGLD: one launch for the whole list. A device table holds, per tensor, the addresses
of the parameter and its gradient, its size and its stream base ``base_k`` (the sizes
before it rounded up to multiples of 4), and a second table maps each program to its
tensor and block. The tables depend only on the tensors' addresses and sizes, so they
are built once per list and cached (at most 16 lists; the optimizer's parameters do
not move, gradients re-allocated by ``zero_grad(set_to_none=True)`` usually come back
at the same addresses); building one copies a small pinned host buffer to the device
asynchronously. Traced tensors (``torch.compile``) have no addresses, so there the op
launches one kernel per tensor instead (same numbers). The table kernel cannot infer
16-byte alignment of the addresses it loads, so that is checked on the host
(``ALIGNED``) and asserted in the kernel, whose programs inside a tensor then move
16-byte vectors.
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import List

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton
from triton.language.extra import libdevice

from .random_triton import fadd, fmul, fsub, interleave4, normal4, philox_words, uniform_from_bits

__all__ = [
    "langevin_step_triton",
    "langevin_step__triton",
    "mala_accept__triton",
    "sgld_step__triton",
]

# libdevice's correctly rounded division on a GPU; numpy's (already IEEE) under the
# interpreter. Own constexpr (Inductor regenerates user kernels with their globals).
_RN_DIV = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") != "1")

# Step kernel: Philox counters per program (4 elements each) and warps: 2 counters =
# 8 elements = two 16-byte vectors per input per thread.
_STEP_BLOCK = 256
_STEP_WARPS = 4
# Chain-tiled kernels: elements per tile, widest column chunk, programs to aim for
# (about 4 waves of an H100's 132 SMs) and most column splits.
_TILE = 2048
_MAX_W = 1024
_TARGET_PROGRAMS = 528
_MAX_SPLIT = 1024
# SGLD: Philox counters per program.
_SGLD_BLOCK = 256


# --- helpers ------------------------------------------------------------------------
@triton.jit
def fdiv(a, b):
    if _RN_DIV:
        return libdevice.div_rn(a, b)
    else:
        return a / b


@triton.jit
def fexp(a):
    """float32 exp: libdevice's expf on a GPU (not the ex2.approx of tl.exp)."""
    if _RN_DIV:
        return libdevice.exp(a)
    else:
        return tl.exp(a)


@triton.jit
def _clamp(v, lo, hi):
    """langevin.h's clamp: (v < lo ? lo : v) then (v > hi ? hi : v); NaN stays NaN."""
    v = tl.where(v < lo, lo, v)
    return tl.where(v > hi, hi, v)


# --- step ------------------------------------------------------------------------------
@triton.jit
def _step_kernel(
    x_ptr, g_ptr, out_ptr, step_ptr, noise_ptr, scale_ptr, seed_ptr,
    numel, M, clip, lo, hi,
    CLIP_MODE: tl.constexpr, PER_CHAIN: tl.constexpr, M4: tl.constexpr, CLAMP: tl.constexpr,
    IDX64: tl.constexpr, BLOCK: tl.constexpr,
):
    W: tl.constexpr = 4 * BLOCK
    seed = tl.load(seed_ptr)
    offset = tl.load(seed_ptr + 1)
    if IDX64:
        pid = tl.program_id(0).to(tl.int64)
    else:
        pid = tl.program_id(0)
    idx = pid * W + tl.arange(0, W)
    mask = idx < numel
    x = tl.load(x_ptr + idx, mask=mask, other=0.0)
    g = tl.load(g_ptr + idx, mask=mask, other=0.0)
    if PER_CHAIN:
        if M4:  # the 4 lanes of a counter share a chain: one division and gather per counter
            c4 = (pid * W + 4 * tl.arange(0, BLOCK)) // M
            m4 = (pid * W + 4 * tl.arange(0, BLOCK)) < numel
            s4 = tl.load(step_ptr + c4, mask=m4, other=0.0)
            n4 = tl.load(noise_ptr + c4, mask=m4, other=0.0)
            step = interleave4(s4, s4, s4, s4)
            noise = interleave4(n4, n4, n4, n4)
            if CLIP_MODE == 2:
                k4 = tl.load(scale_ptr + c4, mask=m4, other=0.0)
                scale = interleave4(k4, k4, k4, k4)
        else:
            c = idx // M
            step = tl.load(step_ptr + c, mask=mask, other=0.0)
            noise = tl.load(noise_ptr + c, mask=mask, other=0.0)
            if CLIP_MODE == 2:
                scale = tl.load(scale_ptr + c, mask=mask, other=0.0)
    else:
        step = tl.load(step_ptr)
        noise = tl.load(noise_ptr)
    cnt = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    w0, w1, w2, w3 = philox_words(seed, offset + cnt)  # int64 add wraps mod 2^64
    z0, z1, z2, z3 = normal4(w0, w1, w2, w3)
    eps = interleave4(z0, z1, z2, z3)
    if CLIP_MODE == 1:
        g = _clamp(g, -clip, clip)
    if CLIP_MODE == 2:
        g = fmul(g, scale)
    y = fsub(x, fmul(step, g))
    y = fadd(y, fmul(noise, eps))
    if CLAMP:
        y = _clamp(y, lo, hi)
    tl.store(out_ptr + idx, y, mask=mask)


# --- per-chain reductions -----------------------------------------------------------------
@triton.jit
def _norm_finalize(sq, clip, rows, rmask, norm_ptr, scale_ptr, WANT_NORM: tl.constexpr, WANT_SCALE: tl.constexpr):
    """norm = float32(sqrt(sum)) (sum in float64); scale = clip / norm if norm > clip else 1."""
    n = tl.sqrt(sq).to(tl.float32)  # float64 sqrt is sqrt.rn.f64 (PTX has no approximate one)
    if WANT_NORM:
        tl.store(norm_ptr + rows, n, mask=rmask)
    if WANT_SCALE:
        clip_v = tl.zeros_like(n) + clip
        big = n > clip_v
        s = tl.where(big, fdiv(clip_v, tl.where(big, n, 1.0)), 1.0)
        tl.store(scale_ptr + rows, s, mask=rmask)


@triton.jit
def _mala_finalize(sq_fwd, sq_bwd, rows, rmask, e_ptr, ep_ptr, noise_ptr, seed_ptr, acc_ptr, la_ptr):
    """log alpha = float32((E - E') + (S_fwd - S_bwd) / (2 s^2)) (in float64);
    accept iff u_c < exp(min(log alpha, 0)) (float32), u_c = uniform stream element c;
    a NaN log alpha rejects."""
    e = tl.load(e_ptr + rows, mask=rmask, other=0.0)
    ep = tl.load(ep_ptr + rows, mask=rmask, other=0.0)
    s = tl.load(noise_ptr + rows, mask=rmask, other=1.0).to(tl.float64)
    la32 = ((e.to(tl.float64) - ep.to(tl.float64)) + (sq_fwd - sq_bwd) / (2.0 * (s * s))).to(tl.float32)
    seed = tl.load(seed_ptr)
    offset = tl.load(seed_ptr + 1)
    w0, w1, w2, w3 = philox_words(seed, offset + (rows >> 2))
    lane = rows & 3
    w = tl.where(lane == 0, w0, tl.where(lane == 1, w1, tl.where(lane == 2, w2, w3)))
    u = uniform_from_bits(w)
    acc = u < fexp(tl.where(la32 > 0.0, 0.0, la32))
    tl.store(acc_ptr + rows, acc, mask=rmask)
    tl.store(la_ptr + rows, la32, mask=rmask)
    tl.store(e_ptr + rows, tl.where(acc, ep, e), mask=rmask)


@triton.jit
def _chain_reduce_kernel(
    a_ptr, b_ptr, ga_ptr, gb_ptr, h_ptr, part_ptr,
    norm_ptr, scale_ptr, e_ptr, ep_ptr, noise_ptr, seed_ptr, acc_ptr, la_ptr,
    C, M, clip, n_chunks, chunks_per_prog, n_split,
    MALA: tl.constexpr, PARTIAL: tl.constexpr, WANT_NORM: tl.constexpr, WANT_SCALE: tl.constexpr,
    BLOCK_C: tl.constexpr, W: tl.constexpr,
):
    """Per-chain float64 sums over the chain tile.

    norm (MALA false): s1 = sum g^2 with g = a.
    MALA: a = x, b = x', ga = grad E(x), gb = grad E(x'), h = step; with d = x' - x,
          s1 = sum ((d + h g)^2)  (S_fwd, of log q(x'|x)),  s2 = sum ((h g' - d)^2)  (S_bwd).
    """
    pid_r = tl.program_id(0)
    pid_c = tl.program_id(1)
    rows = (pid_r * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int64)
    rmask = rows < C
    t = tl.arange(0, W)
    acc1 = tl.zeros([BLOCK_C, W], tl.float64)
    acc2 = tl.zeros([BLOCK_C, W], tl.float64)
    if MALA:
        h = tl.load(h_ptr + rows, mask=rmask, other=0.0)[:, None]
    k_begin = pid_c * chunks_per_prog
    k_end = tl.minimum(k_begin + chunks_per_prog, n_chunks)
    for k in range(k_begin, k_end):
        cols = tl.cast(k, tl.int64) * W + t
        m = rmask[:, None] & (cols < M)[None, :]
        off = rows[:, None] * M + cols[None, :]
        if MALA:
            x = tl.load(a_ptr + off, mask=m, other=0.0)
            xp = tl.load(b_ptr + off, mask=m, other=0.0)
            g = tl.load(ga_ptr + off, mask=m, other=0.0)
            gp = tl.load(gb_ptr + off, mask=m, other=0.0)
            d = fsub(xp, x)
            r1 = fadd(d, fmul(h, g)).to(tl.float64)
            r2 = fsub(fmul(h, gp), d).to(tl.float64)
            acc1 += r1 * r1
            acc2 += r2 * r2
        else:
            g = tl.load(a_ptr + off, mask=m, other=0.0).to(tl.float64)
            acc1 += g * g
    s1 = tl.sum(acc1, axis=1)
    if PARTIAL:
        tl.store(part_ptr + rows * (2 * n_split) + pid_c, s1, mask=rmask)
        if MALA:
            tl.store(part_ptr + rows * (2 * n_split) + n_split + pid_c, tl.sum(acc2, axis=1), mask=rmask)
    else:
        if MALA:
            _mala_finalize(s1, tl.sum(acc2, axis=1), rows, rmask, e_ptr, ep_ptr, noise_ptr, seed_ptr, acc_ptr,
                           la_ptr)
        else:
            _norm_finalize(s1, clip, rows, rmask, norm_ptr, scale_ptr, WANT_NORM, WANT_SCALE)


@triton.jit
def _chain_finalize_kernel(
    part_ptr, norm_ptr, scale_ptr, e_ptr, ep_ptr, noise_ptr, seed_ptr, acc_ptr, la_ptr,
    C, clip, n_split,
    MALA: tl.constexpr, WANT_NORM: tl.constexpr, WANT_SCALE: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):
    """Adds the column splits' partial sums in a fixed order, then finalizes."""
    rows = (tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int64)
    rmask = rows < C
    cols = tl.arange(0, BLOCK_S)
    m = rmask[:, None] & (cols < n_split)[None, :]
    base = rows[:, None] * (2 * n_split) + cols[None, :]
    s1 = tl.sum(tl.load(part_ptr + base, mask=m, other=0.0), axis=1)
    if MALA:
        s2 = tl.sum(tl.load(part_ptr + base + n_split, mask=m, other=0.0), axis=1)
        _mala_finalize(s1, s2, rows, rmask, e_ptr, ep_ptr, noise_ptr, seed_ptr, acc_ptr, la_ptr)
    else:
        _norm_finalize(s1, clip, rows, rmask, norm_ptr, scale_ptr, WANT_NORM, WANT_SCALE)


@triton.jit
def _mala_select_kernel(x_ptr, g_ptr, xp_ptr, gp_ptr, acc_ptr, C, M, n_chunks, chunks_per_prog,
                        BLOCK_C: tl.constexpr, W: tl.constexpr):
    """x[c] <- x_prop[c], grad[c] <- grad_prop[c] for the accepted chains (others untouched)."""
    rows = (tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int64)
    rmask = rows < C
    acc = tl.load(acc_ptr + rows, mask=rmask, other=0) != 0
    t = tl.arange(0, W)
    k_begin = tl.program_id(1) * chunks_per_prog
    k_end = tl.minimum(k_begin + chunks_per_prog, n_chunks)
    for k in range(k_begin, k_end):
        cols = tl.cast(k, tl.int64) * W + t
        m = (rmask & acc)[:, None] & (cols < M)[None, :]
        off = rows[:, None] * M + cols[None, :]
        tl.store(x_ptr + off, tl.load(xp_ptr + off, mask=m), mask=m)
        tl.store(g_ptr + off, tl.load(gp_ptr + off, mask=m), mask=m)


# --- SGLD ---------------------------------------------------------------------------------
@triton.jit
def _sgld_kernel(tab_ptr, prog_ptr, seed_ptr, lr, noise, wd, ELEM: tl.constexpr, ALIGNED: tl.constexpr,
                 BLOCK: tl.constexpr):
    """t = wd theta; g2 = g + t; d = lr g2; theta = theta - d; theta = theta + noise eps,
    eps = stream element base_k + e (each a separately rounded float32 operation).

    tab: int64 (K, 5) = (theta address, grad address, numel, base_k // 4, first program);
    prog: int32 (P,) = tensor index of each program. ALIGNED: every address is a multiple
    of 16 bytes; then the programs whose block lies inside their tensor (all but one per
    tensor) move 16-byte vectors (unmasked accesses, alignment asserted)."""
    W: tl.constexpr = 4 * BLOCK
    p = tl.program_id(0)
    k = tl.load(prog_ptr + p).to(tl.int64)
    th_ptr = tl.load(tab_ptr + 5 * k).to(tl.pointer_type(ELEM))
    gr_ptr = tl.load(tab_ptr + 5 * k + 1).to(tl.pointer_type(ELEM))
    numel = tl.load(tab_ptr + 5 * k + 2)
    cbase = tl.load(tab_ptr + 5 * k + 3)
    j = p - tl.load(tab_ptr + 5 * k + 4)  # block index inside tensor k
    if ALIGNED:
        th_ptr = tl.multiple_of(th_ptr, 16)
        gr_ptr = tl.multiple_of(gr_ptr, 16)
    idx = j * W + tl.arange(0, W).to(tl.int64)
    mask = idx < numel
    full = (j + 1) * W <= numel
    if full:
        th = tl.load(th_ptr + idx).to(tl.float32)
        g = tl.load(gr_ptr + idx).to(tl.float32)
    else:
        th = tl.load(th_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(gr_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    seed = tl.load(seed_ptr)
    offset = tl.load(seed_ptr + 1)
    cnt = cbase + j * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    w0, w1, w2, w3 = philox_words(seed, offset + cnt)
    z0, z1, z2, z3 = normal4(w0, w1, w2, w3)
    eps = interleave4(z0, z1, z2, z3)
    g2 = fadd(g, fmul(tl.zeros_like(th) + wd, th))
    y = fsub(th, fmul(tl.zeros_like(th) + lr, g2))
    y = fadd(y, fmul(tl.zeros_like(th) + noise, eps))
    if full:
        tl.store(th_ptr + idx, y.to(ELEM))
    else:
        tl.store(th_ptr + idx, y.to(ELEM), mask=mask)


@triton.jit
def _sgld_one_kernel(th_ptr, gr_ptr, seed_ptr, numel, cbase, lr, noise, wd, BLOCK: tl.constexpr):
    """_sgld_kernel for one tensor (the per-tensor launches used under torch.compile)."""
    W: tl.constexpr = 4 * BLOCK
    j = tl.program_id(0).to(tl.int64)
    idx = j * W + tl.arange(0, W).to(tl.int64)
    mask = idx < numel
    th = tl.load(th_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(gr_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    seed = tl.load(seed_ptr)
    offset = tl.load(seed_ptr + 1)
    w0, w1, w2, w3 = philox_words(seed, offset + (cbase + j * BLOCK + tl.arange(0, BLOCK).to(tl.int64)))
    z0, z1, z2, z3 = normal4(w0, w1, w2, w3)
    eps = interleave4(z0, z1, z2, z3)
    g2 = fadd(g, fmul(tl.zeros_like(th) + wd, th))
    y = fsub(th, fmul(tl.zeros_like(th) + lr, g2))
    y = fadd(y, fmul(tl.zeros_like(th) + noise, eps))
    tl.store(th_ptr + idx, y.to(th_ptr.dtype.element_ty), mask=mask)


# --- launch configuration -------------------------------------------------------------------
def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _chain_config(C: int, M: int) -> tuple[int, int, int, int, int, int]:
    """(BLOCK_C, W, num_warps, n_chunks, chunks_per_prog, n_split) of a chain-tiled (C, M) kernel."""
    W = min(max(_next_pow2(M), 4), _MAX_W)
    block_c = max(1, min(_TILE // W, _next_pow2(C)))
    num_warps = max(1, min(8, block_c * W // 256))
    n_chunks = triton.cdiv(M, W)
    n_rb = triton.cdiv(C, block_c)
    split = 1
    if n_chunks > 1 and n_rb < _TARGET_PROGRAMS // 2:
        split = min(n_chunks, triton.cdiv(_TARGET_PROGRAMS, n_rb), _MAX_SPLIT)
    cpp = triton.cdiv(n_chunks, split)
    split = triton.cdiv(n_chunks, cpp)
    return block_c, W, num_warps, n_chunks, cpp, split


_I32_MAX = 2**31 - 1


def _chain_reduce(C, M, *, mala, a, b=None, ga=None, gb=None, h=None, clip=0.0, norm=None, scale=None,
                  energy=None, energy_prop=None, noise=None, seed=None, accepted=None, log_alpha=None):
    """Launch the per-chain reduction (+ the fixed-order finalize when columns are split)."""
    block_c, W, nw, n_chunks, cpp, split = _chain_config(C, M)
    dev = a.device
    part = torch.empty((C, 2 * split), dtype=torch.float64, device=dev) if split > 1 else a
    dummy = a
    ptrs = dict(
        norm_ptr=norm if norm is not None else dummy, scale_ptr=scale if scale is not None else dummy,
        e_ptr=energy if energy is not None else dummy, ep_ptr=energy_prop if energy_prop is not None else dummy,
        noise_ptr=noise if noise is not None else dummy, seed_ptr=seed if seed is not None else dummy,
        acc_ptr=accepted if accepted is not None else dummy, la_ptr=log_alpha if log_alpha is not None else dummy)
    flags = dict(MALA=mala, WANT_NORM=norm is not None, WANT_SCALE=scale is not None)
    wrap_triton(_chain_reduce_kernel)[(triton.cdiv(C, block_c), split)](
        a, b if b is not None else a, ga if ga is not None else a, gb if gb is not None else a,
        h if h is not None else a, part, *ptrs.values(),
        C, M, clip, n_chunks, cpp, split, PARTIAL=split > 1, **flags,
        BLOCK_C=block_c, W=W, num_warps=nw, enable_fp_fusion=False)
    if split > 1:
        block_s = _next_pow2(split)
        red_c = max(1, min(_next_pow2(C), 2048 // block_s))
        wrap_triton(_chain_finalize_kernel)[(triton.cdiv(C, red_c),)](
            part, *ptrs.values(), C, clip, split, **flags, BLOCK_C=red_c, BLOCK_S=block_s, num_warps=4,
            enable_fp_fusion=False)


# --- argument checks ----------------------------------------------------------------------------
def _check_seed(seed: torch.Tensor, device: torch.device, op: str) -> None:
    if not isinstance(seed, torch.Tensor) or seed.dtype != torch.int64 or tuple(seed.shape) != (2,):
        raise ValueError(f"{op}: seed must be an int64 tensor of shape (2,) holding (seed, offset)")
    if seed.device != device:
        raise ValueError(f"{op}: seed is on {seed.device} but the data is on {device}")


def _check_f32(t: torch.Tensor, name: str, op: str, shape=None, device=None, contiguous=True) -> None:
    if not isinstance(t, torch.Tensor) or t.dtype != torch.float32:
        raise TypeError(f"{op}: {name} must be a float32 tensor, got "
                        f"{t.dtype if isinstance(t, torch.Tensor) else type(t).__name__}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    if device is not None and t.device != device:
        raise ValueError(f"{op}: {name} is on {t.device} but x is on {device}")
    if contiguous and not t.is_contiguous():
        raise ValueError(f"{op}: {name} must be contiguous")


def _chains(x: torch.Tensor) -> tuple[int, int]:
    C = x.shape[0] if x.dim() > 0 else 1
    M = x.numel() // C if C > 0 else 0
    return C, M


def _check_step(x, grad, step_size, noise_scale, seed, clip_mode, grad_clip, clamp_lo, clamp_hi, op):
    _check_f32(x, "x", op)
    if x.dim() == 0:
        raise ValueError(f"{op}: x must have a chain dimension (dim 0), got a 0-d tensor")
    _check_f32(grad, "grad", op, shape=x.shape, device=x.device)
    C, _ = _chains(x)
    _check_f32(step_size, "step_size", op, shape=(C,), device=x.device, contiguous=False)
    _check_f32(noise_scale, "noise_scale", op, shape=(C,), device=x.device, contiguous=False)
    _check_seed(seed, x.device, op)
    if clip_mode not in (0, 1, 2):
        raise ValueError(f"{op}: clip_mode must be 0 (none), 1 (value) or 2 (norm), got {clip_mode}")
    if clip_mode != 0 and not grad_clip > 0:
        raise ValueError(f"{op}: grad_clip must be positive with clip_mode {clip_mode}, got {grad_clip}")
    if not clamp_lo < clamp_hi:
        raise ValueError(f"{op}: clamp_lo must be below clamp_hi, got {clamp_lo} >= {clamp_hi}")


def _launch_step(x, grad, out, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi,
                 want_norm) -> torch.Tensor:
    C, M = _chains(x)
    numel = x.numel()
    need_norm = want_norm or clip_mode == 2
    grad_norm = torch.empty((C if need_norm else 0,), dtype=torch.float32, device=x.device)
    if numel == 0:
        if need_norm:
            grad_norm.zero_()
        return grad_norm
    scale = torch.empty((C,), dtype=torch.float32, device=x.device) if clip_mode == 2 else None
    if need_norm:
        _chain_reduce(C, M, mala=False, a=grad, clip=float(grad_clip), norm=grad_norm, scale=scale)
    uniform = C == 1 or (step_size.stride(0) == 0 and noise_scale.stride(0) == 0)
    per_chain = clip_mode == 2 or not uniform
    clamp = not (math.isinf(clamp_lo) and clamp_lo < 0 and math.isinf(clamp_hi) and clamp_hi > 0)
    grid = (triton.cdiv(triton.cdiv(numel, 4), _STEP_BLOCK),)
    wrap_triton(_step_kernel)[grid](
        x, grad, out, step_size, noise_scale, scale if scale is not None else step_size, seed,
        numel, M, float(grad_clip), float(clamp_lo), float(clamp_hi),
        CLIP_MODE=int(clip_mode), PER_CHAIN=per_chain, M4=M % 4 == 0, CLAMP=clamp,
        IDX64=numel + 4 * _STEP_BLOCK > _I32_MAX, BLOCK=_STEP_BLOCK, num_warps=_STEP_WARPS,
        enable_fp_fusion=False)
    return grad_norm


@triton_op("gensample::langevin_step_triton", mutates_args=())
def langevin_step_triton(x: torch.Tensor, grad: torch.Tensor, step_size: torch.Tensor, noise_scale: torch.Tensor,
                         seed: torch.Tensor, grad_clip: float, clip_mode: int, clamp_lo: float, clamp_hi: float,
                         want_norm: bool) -> tuple[torch.Tensor, torch.Tensor]:
    _check_step(x, grad, step_size, noise_scale, seed, clip_mode, grad_clip, clamp_lo, clamp_hi,
                "langevin_step")
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    grad_norm = _launch_step(x, grad, out, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi,
                             want_norm)
    return out, grad_norm


@triton_op("gensample::langevin_step__triton", mutates_args=("x",))
def langevin_step__triton(x: torch.Tensor, grad: torch.Tensor, step_size: torch.Tensor, noise_scale: torch.Tensor,
                          seed: torch.Tensor, grad_clip: float, clip_mode: int, clamp_lo: float, clamp_hi: float,
                          want_norm: bool) -> torch.Tensor:
    _check_step(x, grad, step_size, noise_scale, seed, clip_mode, grad_clip, clamp_lo, clamp_hi,
                "langevin_step_")
    return _launch_step(x, grad, x, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi,
                        want_norm)


# --- MALA -------------------------------------------------------------------------------------
@triton_op("gensample::mala_accept__triton", mutates_args=("x", "grad", "energy"))
def mala_accept__triton(x: torch.Tensor, grad: torch.Tensor, energy: torch.Tensor, x_prop: torch.Tensor,
                        grad_prop: torch.Tensor, energy_prop: torch.Tensor, step_size: torch.Tensor,
                        noise_scale: torch.Tensor, seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    op = "mala_accept_"
    _check_f32(x, "x", op)
    if x.dim() == 0:
        raise ValueError(f"{op}: x must have a chain dimension (dim 0), got a 0-d tensor")
    C, M = _chains(x)
    for name, t in (("grad", grad), ("x_prop", x_prop), ("grad_prop", grad_prop)):
        _check_f32(t, name, op, shape=x.shape, device=x.device)
    for name, t in (("energy", energy), ("energy_prop", energy_prop)):
        _check_f32(t, name, op, shape=(C,), device=x.device)
    for name, t in (("step_size", step_size), ("noise_scale", noise_scale)):
        _check_f32(t, name, op, shape=(C,), device=x.device, contiguous=False)
    _check_seed(seed, x.device, op)
    accepted = torch.empty((C,), dtype=torch.bool, device=x.device)
    log_alpha = torch.empty((C,), dtype=torch.float32, device=x.device)
    if C == 0:
        return accepted, log_alpha
    h = step_size if step_size.is_contiguous() else step_size.contiguous()
    s = noise_scale if noise_scale.is_contiguous() else noise_scale.contiguous()
    _chain_reduce(C, M, mala=True, a=x, b=x_prop, ga=grad, gb=grad_prop, h=h, energy=energy,
                  energy_prop=energy_prop, noise=s, seed=seed, accepted=accepted, log_alpha=log_alpha)
    if M > 0:
        block_c, W, nw, n_chunks, cpp, split = _chain_config(C, M)
        wrap_triton(_mala_select_kernel)[(triton.cdiv(C, block_c), split)](
            x, grad, x_prop, grad_prop, accepted, C, M, n_chunks, cpp, BLOCK_C=block_c, W=W, num_warps=nw)
    return accepted, log_alpha


# --- SGLD -------------------------------------------------------------------------------------
_TL_DTYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16,
              torch.float64: tl.float64}
_TABLES: "OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor, int, bool]]" = OrderedDict()
_TABLES_MAX = 16
# Force the per-tensor launches (tests; torch.compile always uses them).
_SGLD_PER_TENSOR = False


def _sgld_tables(params: List[torch.Tensor],
                 grads: List[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """(tensor table, program table, programs, all 16-byte aligned) for the list, cached by
    addresses and sizes."""
    dev = params[0].device
    key = (dev, tuple((p.data_ptr(), g.data_ptr(), p.numel()) for p, g in zip(params, grads)))
    hit = _TABLES.get(key)
    if hit is not None:
        _TABLES.move_to_end(key)
        return hit
    per_prog = 4 * _SGLD_BLOCK
    rows, progs, base, first = [], [], 0, 0
    for k, (p, g) in enumerate(zip(params, grads)):
        n = p.numel()
        nb = triton.cdiv(n, per_prog)
        rows.append([p.data_ptr(), g.data_ptr(), n, base // 4, first])
        progs.append(torch.full((nb,), k, dtype=torch.int32))
        first += nb
        base += (n + 3) // 4 * 4
    tab = torch.tensor(rows, dtype=torch.int64)
    prog = torch.cat(progs) if progs else torch.zeros(0, dtype=torch.int32)
    if dev.type == "cuda":
        tab = tab.pin_memory().to(dev, non_blocking=True)
        prog = prog.pin_memory().to(dev, non_blocking=True)
    aligned = all(p.data_ptr() % 16 == 0 and g.data_ptr() % 16 == 0 for p, g in zip(params, grads))
    entry = (tab, prog, first, aligned)
    _TABLES[key] = entry
    if len(_TABLES) > _TABLES_MAX:
        _TABLES.popitem(last=False)
    return entry


@triton_op("gensample::sgld_step__triton", mutates_args=("params",))
def sgld_step__triton(params: List[torch.Tensor], grads: List[torch.Tensor], lr: float, noise_scale: float,
                      weight_decay: float, seed: torch.Tensor) -> None:
    op = "sgld_step_"
    if len(params) != len(grads):
        raise ValueError(f"{op}: params and grads must have the same length, got {len(params)} and {len(grads)}")
    if len(params) == 0:
        return
    dtype, dev = params[0].dtype, params[0].device
    if dtype not in _TL_DTYPES:
        raise TypeError(f"{op}: params must be floating point, got {dtype}")
    for i, (p, g) in enumerate(zip(params, grads)):
        if p.dtype != dtype or p.device != dev:
            raise ValueError(f"{op}: params[{i}] is {p.dtype} on {p.device}; every parameter must be "
                             f"{dtype} on {dev} (one launch per device and dtype)")
        if g.dtype != dtype or g.device != dev or g.shape != p.shape:
            raise ValueError(f"{op}: grads[{i}] must be {dtype} on {dev} with shape {tuple(p.shape)}, got "
                             f"{g.dtype} on {g.device} with shape {tuple(g.shape)}")
        if not (p.is_contiguous() and g.is_contiguous()):
            raise ValueError(f"{op}: params[{i}] and grads[{i}] must be contiguous")
    _check_seed(seed, dev, op)
    if torch.compiler.is_compiling() or _SGLD_PER_TENSOR:
        # Traced tensors have no addresses for the table: one launch per tensor.
        base = 0
        for p, g in zip(params, grads):
            n = p.numel()
            if n > 0:
                wrap_triton(_sgld_one_kernel)[(triton.cdiv(n, 4 * _SGLD_BLOCK),)](
                    p, g, seed, n, base // 4, float(lr), float(noise_scale), float(weight_decay),
                    BLOCK=_SGLD_BLOCK, num_warps=4, enable_fp_fusion=False)
            base += (n + 3) // 4 * 4
        return
    tab, prog, n_prog, aligned = _sgld_tables(params, grads)
    if n_prog == 0:
        return
    wrap_triton(_sgld_kernel)[(n_prog,)](
        tab, prog, seed, float(lr), float(noise_scale), float(weight_decay), ELEM=_TL_DTYPES[dtype],
        ALIGNED=aligned, BLOCK=_SGLD_BLOCK, num_warps=4, enable_fp_fusion=False)
