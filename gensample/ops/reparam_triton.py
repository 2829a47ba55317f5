r"""Triton kernels of the fused reparameterize + KL op (the ``triton`` backend).

Ops (schemas and contracts exactly those of ``reparam_kl_fwd`` / ``reparam_kl_bwd`` in
``csrc/ops.cpp``; autograd is registered for every backend in ``reparam.py``)::

    gensample::reparam_kl_fwd_triton(Tensor mu, Tensor logvar, Tensor? prior_mu,
        Tensor? prior_logvar, Tensor seed, int n_samples) -> (Tensor z, Tensor kl)
    gensample::reparam_kl_bwd_triton(Tensor? grad_z, Tensor? grad_kl, Tensor mu,
        Tensor logvar, Tensor? prior_mu, Tensor? prior_logvar, Tensor seed,
        int n_samples, bool prior_grads) -> (Tensor, Tensor, Tensor, Tensor)

(``torch.library.triton_op`` infers the schema from the annotations and, in torch 2.13,
ignores a ``schema=`` argument; Python ``int`` becomes ``SymInt``, so ``n_samples`` is
``SymInt n_samples`` here: same arguments, same order, and it accepts plain ints.)

The per-element math mirrors ``csrc/include/gensample/reparam.h``; it runs in float32
for float16/bfloat16/float32 inputs and in float64 for float64 inputs (the KL row sum
is accumulated in that type too). ``eps`` is element ``s*R*D + r*D + d`` of the normal
stream (float32, bit-identical to :func:`gensample.random.normal_stream`).

Tiling. A program owns ``BLOCK_R`` rows and a range of column chunks; for every
(chunk, sample) it draws one Philox call per 4 consecutive stream elements, i.e. the
tile is laid out in the *stream's* frame: row ``r`` of sample ``s`` starts at stream
index ``b = s*R*D + r*D``, whose phase ``b % 4`` shifts the row's columns by 0..3, so
column ``d = 4 * BLOCK_C * k + t - (b % 4)`` for tile position ``t``. Every Philox lane
is used, ``z`` is written as ``4 * BLOCK_C`` contiguous elements per row, and
``mu``/``logvar``/prior are read with their own strides (stride 0 is fine). When
``D % 4 == 0`` the phase is always 0 (``PHASE0``), which lets the compiler emit 16-byte
loads and stores (checked in the PTX for sm_90).
The KL row sum is reduced in registers over the chunk loop (in the sample-0 pass);
when the columns of a row are split over several programs (few rows, long rows), the
programs write float32/float64 partial sums and a second small kernel adds them in a
fixed order (deterministic).

The backward keeps the per-row frame when the phase does not depend on the sample
(``n_samples == 1`` or ``R*D % 4 == 0``); otherwise (several samples and
``R*D % 4 != 0``) it draws one Philox call per element and keeps the lane it needs.

``expm1``: ``triton.language`` has none and libdevice cannot run in the interpreter,
so :func:`expm1` is a portable one: the Taylor polynomial for ``|x| < 1/2`` (degree 8
in float32, 14 in float64; truncation below half an ulp) and ``exp(x) - 1`` outside,
where there is no cancellation. On a GPU ``tl.exp`` in float32 is the hardware
``ex2.approx`` (a few ulp); the KL and z are compared with dtype tolerances, only the
noise has to be bit-exact.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from .random_triton import interleave4, normal4, normal_lane, philox_words

__all__ = ["reparam_kl_fwd_triton", "reparam_kl_bwd_triton", "expm1"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# Elements per tile (BLOCK_R * 4 * BLOCK_C) and the widest column chunk. 512 elements
# on 4 warps is one Philox call (4 elements) per thread: about 80 registers on sm_90
# (ptxas), i.e. ~24 resident warps per SM; 2048 elements per tile needed ~240.
_TILE = 512
_MAX_W = 512
# Programs to aim for when splitting long rows over several programs (about 4 waves of
# an H100's 132 SMs).
_TARGET_PROGRAMS = 528
_MAX_SPLIT = 1024


# --- math helpers -----------------------------------------------------------------
@triton.jit
def _to_ct(x, F64: tl.constexpr):
    """Cast to the compute type (float64 for float64 inputs, else float32)."""
    if F64:
        return x.to(tl.float64)
    else:
        return x.to(tl.float32)


@triton.jit
def expm1(x, F64: tl.constexpr):
    """exp(x) - 1 without cancellation near 0 (x in the compute type)."""
    if F64:
        p = x * (1.0 / 87178291200.0) + (1.0 / 6227020800.0)  # 1/14!, 1/13!
        p = p * x + (1.0 / 479001600.0)
        p = p * x + (1.0 / 39916800.0)
        p = p * x + (1.0 / 3628800.0)
        p = p * x + (1.0 / 362880.0)
        p = p * x + (1.0 / 40320.0)
        p = p * x + (1.0 / 5040.0)
        p = p * x + (1.0 / 720.0)
        p = p * x + (1.0 / 120.0)
        p = p * x + (1.0 / 24.0)
        p = p * x + (1.0 / 6.0)
        p = p * x + 0.5
        p = p * x + 1.0
    else:
        p = x * (1.0 / 40320.0) + (1.0 / 5040.0)  # 1/8!, 1/7!
        p = p * x + (1.0 / 720.0)
        p = p * x + (1.0 / 120.0)
        p = p * x + (1.0 / 24.0)
        p = p * x + (1.0 / 6.0)
        p = p * x + 0.5
        p = p * x + 1.0
    return tl.where(tl.abs(x) < 0.5, x * p, tl.exp(x) - 1.0)


@triton.jit
def _eps_frame(seed, offset, bq, k, BLOCK_C: tl.constexpr):
    """Normals of the (BLOCK_R, 4*BLOCK_C) tile whose row r starts at the stream counter
    bq[r] + k*BLOCK_C: out[r, t] = stream[4*(bq[r] + k*BLOCK_C) + t]."""
    j = tl.arange(0, BLOCK_C).to(tl.int64)
    cnt = offset + (bq + k * BLOCK_C)[:, None] + j[None, :]
    w0, w1, w2, w3 = philox_words(seed, cnt)
    n0, n1, n2, n3 = normal4(w0, w1, w2, w3)
    return interleave4(n0, n1, n2, n3)


@triton.jit
def _eps_elem(seed, offset, i):
    """Normal stream element i (int64 tensor): one Philox call per element."""
    w0, w1, w2, w3 = philox_words(seed, offset + (i >> 2))
    return normal_lane(w0, w1, w2, w3, (i & 3).to(tl.int32))


# --- forward -----------------------------------------------------------------------
@triton.jit
def _tile_setup(seed_ptr, R, D, BLOCK_R: tl.constexpr, W: tl.constexpr):
    """Common preamble of the forward and backward kernels: the seed pair, this
    program's column-chunk index and row block, and the lane offsets of a tile."""
    seed = tl.load(seed_ptr)
    offset = tl.load(seed_ptr + 1)
    pid_r = tl.program_id(0)
    pid_c = tl.program_id(1)
    rows = (pid_r * BLOCK_R + tl.arange(0, BLOCK_R)).to(tl.int64)
    rmask = rows < R
    RD = tl.cast(R, tl.int64) * D
    t = tl.arange(0, W)
    return seed, offset, pid_c, rows, rmask, RD, t


@triton.jit
def _reparam_fwd_kernel(
    mu_ptr, lv_ptr, pm_ptr, plv_ptr, seed_ptr, z_ptr, kl_ptr,
    R, D, S, S_LOOP, n_chunks, chunks_per_prog, n_split,
    s_mu_r, s_mu_d, s_lv_r, s_lv_d, s_pm_r, s_pm_d, s_plv_r, s_plv_d,
    HAS_PM: tl.constexpr, HAS_PLV: tl.constexpr, F64: tl.constexpr, KL_PARTIAL: tl.constexpr,
    PHASE0: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    W: tl.constexpr = 4 * BLOCK_C
    seed, offset, pid_c, rows, rmask, RD, t = _tile_setup(seed_ptr, R, D, BLOCK_R, W)
    k_begin = pid_c * chunks_per_prog
    k_end = tl.minimum(k_begin + chunks_per_prog, n_chunks)
    acc = _to_ct(tl.zeros([BLOCK_R], tl.float32), F64)
    for k in range(k_begin, k_end):
        col0 = tl.cast(k, tl.int64) * W
        for s in range(0, S_LOOP):
            b = s * RD + rows * D  # stream index of (s, r, 0)
            bq = b >> 2
            if PHASE0:  # D % 4 == 0: every row starts a Philox group (lets the compiler vectorize)
                ph = rows * 0
            else:
                ph = b & 3
            eps = _to_ct(_eps_frame(seed, offset, bq, k, BLOCK_C), F64)
            d = col0 + t[None, :] - ph[:, None]
            m = rmask[:, None] & (d >= 0) & (d < D)
            mu = _to_ct(tl.load(mu_ptr + rows[:, None] * s_mu_r + d * s_mu_d, mask=m, other=0.0), F64)
            lv = _to_ct(tl.load(lv_ptr + rows[:, None] * s_lv_r + d * s_lv_d, mask=m, other=0.0), F64)
            z = mu + tl.exp(lv * 0.5) * eps
            zoff = (bq * 4)[:, None] + col0 + t[None, :]  # == b + d, written so that it is visibly aligned
            tl.store(z_ptr + zoff, z.to(z_ptr.dtype.element_ty), mask=m & ((rows * 0 + s) < S)[:, None])
            if s == 0:
                if HAS_PM:
                    pm = _to_ct(tl.load(pm_ptr + rows[:, None] * s_pm_r + d * s_pm_d, mask=m, other=0.0), F64)
                    diff = mu - pm
                else:
                    diff = mu
                if HAS_PLV:
                    plv = _to_ct(tl.load(plv_ptr + rows[:, None] * s_plv_r + d * s_plv_d, mask=m, other=0.0),
                                 F64)
                    dd = lv - plv
                    term = 0.5 * (expm1(dd, F64) - dd + diff * diff * tl.exp(-plv))
                else:
                    term = 0.5 * (expm1(lv, F64) - lv + diff * diff)
                acc += tl.sum(tl.where(m, term, 0.0), axis=1)
    if KL_PARTIAL:
        tl.store(kl_ptr + rows * n_split + pid_c, acc, mask=rmask)
    else:
        tl.store(kl_ptr + rows, acc.to(kl_ptr.dtype.element_ty), mask=rmask)


@triton.jit
def _kl_reduce_kernel(part_ptr, kl_ptr, R, n_split, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    rows = (tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)).to(tl.int64)
    cols = tl.arange(0, BLOCK_S)
    m = (rows < R)[:, None] & (cols < n_split)[None, :]
    p = tl.load(part_ptr + rows[:, None] * n_split + cols[None, :], mask=m, other=0.0)
    tl.store(kl_ptr + rows, tl.sum(p, axis=1).to(kl_ptr.dtype.element_ty), mask=rows < R)


# --- backward ----------------------------------------------------------------------
@triton.jit
def _reparam_bwd_kernel(
    gz_ptr, gkl_ptr, mu_ptr, lv_ptr, pm_ptr, plv_ptr, seed_ptr,
    dmu_ptr, dlv_ptr, dpm_ptr, dplv_ptr,
    R, D, S, n_chunks, chunks_per_prog,
    s_gz_s, s_gz_r, s_gz_d, s_gkl,
    s_mu_r, s_mu_d, s_lv_r, s_lv_d, s_pm_r, s_pm_d, s_plv_r, s_plv_d,
    HAS_GZ: tl.constexpr, HAS_GKL: tl.constexpr, HAS_PM: tl.constexpr, HAS_PLV: tl.constexpr,
    PRIOR_GRADS: tl.constexpr, FRAME: tl.constexpr, PHASE0: tl.constexpr, F64: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    W: tl.constexpr = 4 * BLOCK_C
    seed, offset, pid_c, rows, rmask, RD, t = _tile_setup(seed_ptr, R, D, BLOCK_R, W)
    if FRAME and not PHASE0:
        ph = (rows * D) & 3  # the same for every sample (S == 1 or R*D % 4 == 0)
    else:
        ph = rows * 0
    if HAS_GKL:
        dkl = _to_ct(tl.load(gkl_ptr + rows * s_gkl, mask=rmask, other=0.0), F64)[:, None]
    k_begin = pid_c * chunks_per_prog
    k_end = tl.minimum(k_begin + chunks_per_prog, n_chunks)
    for k in range(k_begin, k_end):
        col0 = tl.cast(k, tl.int64) * W
        d = col0 + t[None, :] - ph[:, None]
        m = rmask[:, None] & (d >= 0) & (d < D)
        mu = _to_ct(tl.load(mu_ptr + rows[:, None] * s_mu_r + d * s_mu_d, mask=m, other=0.0), F64)
        lv = _to_ct(tl.load(lv_ptr + rows[:, None] * s_lv_r + d * s_lv_d, mask=m, other=0.0), F64)
        if HAS_PM:
            pm = _to_ct(tl.load(pm_ptr + rows[:, None] * s_pm_r + d * s_pm_d, mask=m, other=0.0), F64)
            diff = mu - pm
        else:
            diff = mu
        if HAS_PLV:
            plv = _to_ct(tl.load(plv_ptr + rows[:, None] * s_plv_r + d * s_plv_d, mask=m, other=0.0), F64)
            em1 = expm1(lv - plv, F64)
            g_kl_mu = diff * tl.exp(-plv)
        else:
            em1 = expm1(lv, F64)
            g_kl_mu = diff
        dz_sum = tl.zeros_like(mu)
        dz_sum_eps = tl.zeros_like(mu)
        if HAS_GZ:
            for s in range(0, S):
                gz = _to_ct(tl.load(gz_ptr + s * s_gz_s + rows[:, None] * s_gz_r + d * s_gz_d, mask=m, other=0.0),
                            F64)
                b = s * RD + rows * D
                if FRAME:
                    eps = _to_ct(_eps_frame(seed, offset, b >> 2, k, BLOCK_C), F64)
                else:
                    eps = _to_ct(_eps_elem(seed, offset, b[:, None] + d), F64)
                dz_sum += gz
                dz_sum_eps += gz * eps
        if HAS_GKL:
            dmu = dz_sum + dkl * g_kl_mu
            dlv = dz_sum_eps * 0.5 * tl.exp(lv * 0.5) + dkl * 0.5 * em1
        else:
            dmu = dz_sum
            dlv = dz_sum_eps * 0.5 * tl.exp(lv * 0.5)
        out = rows[:, None] * D + d
        tl.store(dmu_ptr + out, dmu.to(dmu_ptr.dtype.element_ty), mask=m)
        tl.store(dlv_ptr + out, dlv.to(dlv_ptr.dtype.element_ty), mask=m)
        if PRIOR_GRADS:
            if HAS_GKL:
                dpm = -dkl * g_kl_mu
                dplv = -0.5 * dkl * (em1 + diff * g_kl_mu)
            else:
                dpm = tl.zeros_like(mu)
                dplv = tl.zeros_like(mu)
            tl.store(dpm_ptr + out, dpm.to(dpm_ptr.dtype.element_ty), mask=m)
            tl.store(dplv_ptr + out, dplv.to(dplv_ptr.dtype.element_ty), mask=m)


# --- launch configuration ------------------------------------------------------------
def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _config(R: int, D: int, shifted: bool, n_samples: int) -> tuple[int, int, int, int, int, int]:
    """(BLOCK_R, BLOCK_C, num_warps, n_chunks, chunks_per_prog, n_split) for an (R, D) problem.

    ``shifted``: columns are shifted by the row phase (0..3), so a row spans D + 3 tile
    positions unless D % 4 == 0 (then the phase is always 0)."""
    span = D + (3 if (shifted and D % 4 != 0) else 0)
    W = min(max(_next_pow2(span), 4), _MAX_W)
    block_c = W // 4
    block_r = max(1, min(_TILE // W, _next_pow2(R)))
    tile = block_r * W
    num_warps = max(1, min(4, tile // 128))
    n_chunks = triton.cdiv(span, W)
    n_rb = triton.cdiv(R, block_r)
    split = 1
    if n_chunks > 1 and n_rb * max(1, min(n_samples, 4)) < _TARGET_PROGRAMS // 2:
        split = min(n_chunks, triton.cdiv(_TARGET_PROGRAMS, n_rb), _MAX_SPLIT)
    cpp = triton.cdiv(n_chunks, split)
    split = triton.cdiv(n_chunks, cpp) if n_chunks > 0 else 1
    return block_r, block_c, num_warps, n_chunks, cpp, split


def _check_inputs(mu, logvar, prior_mu, prior_logvar, seed, n_samples):
    if mu.dim() != 2:
        raise ValueError(f"mu must be 2-D (R, D), got shape {tuple(mu.shape)}")
    if mu.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"mu must be float16, bfloat16, float32 or float64, got {mu.dtype}")
    if logvar.shape != mu.shape or logvar.dtype not in _FLOAT_DTYPES or logvar.device != mu.device:
        raise ValueError(f"logvar must be a float tensor of mu's shape {tuple(mu.shape)} on {mu.device}")
    for name, p in (("prior_mu", prior_mu), ("prior_logvar", prior_logvar)):
        if p is not None and (p.shape != mu.shape or p.dtype not in _FLOAT_DTYPES or p.device != mu.device):
            raise ValueError(f"{name} must be a float tensor of mu's shape {tuple(mu.shape)} on {mu.device} "
                             "(an expanded view is fine)")
    if seed.dtype != torch.int64 or tuple(seed.shape) != (2,) or seed.device != mu.device:
        raise ValueError("seed must be an int64 tensor of shape (2,) holding (seed, offset), on mu's device")
    if n_samples < 0:
        raise ValueError(f"n_samples must be non-negative, got {n_samples}")


def _strides2(t: Optional[torch.Tensor]):
    return (t.stride(0), t.stride(1)) if t is not None else (0, 0)


# --- ops ---------------------------------------------------------------------------
@triton_op("gensample::reparam_kl_fwd_triton", mutates_args=())
def reparam_kl_fwd_triton(mu: torch.Tensor, logvar: torch.Tensor, prior_mu: Optional[torch.Tensor],
                          prior_logvar: Optional[torch.Tensor], seed: torch.Tensor,
                          n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    _check_inputs(mu, logvar, prior_mu, prior_logvar, seed, n_samples)
    R, D = mu.shape
    z = torch.empty((n_samples, R, D), dtype=mu.dtype, device=mu.device)
    if R == 0:
        return z, torch.empty((0,), dtype=mu.dtype, device=mu.device)
    if D == 0:
        return z, torch.zeros((R,), dtype=mu.dtype, device=mu.device)
    f64 = mu.dtype == torch.float64
    block_r, block_c, num_warps, n_chunks, cpp, split = _config(R, D, True, n_samples)
    if split > 1:
        kl_out = torch.empty((R, split), dtype=torch.float64 if f64 else torch.float32, device=mu.device)
    else:
        kl_out = torch.empty((R,), dtype=mu.dtype, device=mu.device)
    grid = (triton.cdiv(R, block_r), split)
    wrap_triton(_reparam_fwd_kernel)[grid](
        mu, logvar, prior_mu if prior_mu is not None else mu,
        prior_logvar if prior_logvar is not None else mu, seed, z, kl_out,
        R, D, n_samples, max(n_samples, 1), n_chunks, cpp, split,
        mu.stride(0), mu.stride(1), logvar.stride(0), logvar.stride(1),
        *_strides2(prior_mu), *_strides2(prior_logvar),
        HAS_PM=prior_mu is not None, HAS_PLV=prior_logvar is not None, F64=f64, KL_PARTIAL=split > 1,
        PHASE0=D % 4 == 0, BLOCK_R=block_r, BLOCK_C=block_c, num_warps=num_warps, enable_fp_fusion=False)
    if split == 1:
        return z, kl_out
    kl = torch.empty((R,), dtype=mu.dtype, device=mu.device)
    block_s = _next_pow2(split)
    red_r = max(1, min(_next_pow2(R), 4096 // block_s))
    wrap_triton(_kl_reduce_kernel)[(triton.cdiv(R, red_r),)](
        kl_out, kl, R, split, BLOCK_R=red_r, BLOCK_S=block_s, num_warps=4)
    return z, kl


@triton_op("gensample::reparam_kl_bwd_triton", mutates_args=())
def reparam_kl_bwd_triton(grad_z: Optional[torch.Tensor], grad_kl: Optional[torch.Tensor], mu: torch.Tensor,
                          logvar: torch.Tensor, prior_mu: Optional[torch.Tensor],
                          prior_logvar: Optional[torch.Tensor], seed: torch.Tensor, n_samples: int,
                          prior_grads: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    _check_inputs(mu, logvar, prior_mu, prior_logvar, seed, n_samples)
    R, D = mu.shape
    if grad_z is not None and (tuple(grad_z.shape) != (n_samples, R, D) or grad_z.device != mu.device):
        raise ValueError(f"grad_z must have shape {(n_samples, R, D)} on {mu.device}, got {tuple(grad_z.shape)}")
    if grad_kl is not None and (tuple(grad_kl.shape) != (R,) or grad_kl.device != mu.device):
        raise ValueError(f"grad_kl must have shape {(R,)} on {mu.device}, got {tuple(grad_kl.shape)}")
    dmu = torch.empty((R, D), dtype=mu.dtype, device=mu.device)
    dlv = torch.empty((R, D), dtype=mu.dtype, device=mu.device)
    if prior_grads:
        dpm = torch.empty((R, D), dtype=mu.dtype, device=mu.device)
        dplv = torch.empty((R, D), dtype=mu.dtype, device=mu.device)
    else:
        dpm = torch.empty((0,), dtype=mu.dtype, device=mu.device)
        dplv = torch.empty((0,), dtype=mu.dtype, device=mu.device)
    if R == 0 or D == 0:
        return dmu, dlv, dpm, dplv
    has_gz = grad_z is not None and n_samples > 0
    frame = has_gz and (n_samples == 1 or (R * D) % 4 == 0)
    block_r, block_c, num_warps, n_chunks, cpp, split = _config(R, D, frame, n_samples)
    gz_strides = (grad_z.stride(0), grad_z.stride(1), grad_z.stride(2)) if has_gz else (0, 0, 0)
    grid = (triton.cdiv(R, block_r), split)
    wrap_triton(_reparam_bwd_kernel)[grid](
        grad_z if has_gz else mu, grad_kl if grad_kl is not None else mu, mu, logvar,
        prior_mu if prior_mu is not None else mu, prior_logvar if prior_logvar is not None else mu, seed,
        dmu, dlv, dpm if prior_grads else dmu, dplv if prior_grads else dlv,
        R, D, n_samples, n_chunks, cpp,
        *gz_strides, grad_kl.stride(0) if grad_kl is not None else 0,
        mu.stride(0), mu.stride(1), logvar.stride(0), logvar.stride(1),
        *_strides2(prior_mu), *_strides2(prior_logvar),
        HAS_GZ=has_gz, HAS_GKL=grad_kl is not None, HAS_PM=prior_mu is not None,
        HAS_PLV=prior_logvar is not None, PRIOR_GRADS=bool(prior_grads), FRAME=frame,
        PHASE0=D % 4 == 0,
        F64=mu.dtype == torch.float64, BLOCK_R=block_r, BLOCK_C=block_c,
        num_warps=num_warps, enable_fp_fusion=False)
    return dmu, dlv, dpm, dplv
