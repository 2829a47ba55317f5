r"""Triton kernels of the tempered family (``triton`` backend of :mod:`gensample.ops.tempered`).

Ops (schemas as in ``csrc/tempered_ops.cpp``; float32 contiguous tensors, ``seed`` the
int64 ``(seed, offset)`` pair on the data's device, read inside the kernels)::

    gensample::tempered_sweeps_triton(Tensor v, Tensor weight, Tensor visible_bias,
        Tensor hidden_bias, Tensor visible_base, Tensor beta, Tensor? sigma, Tensor seed,
        int k) -> (Tensor v_k, Tensor h_k, Tensor a_k)
    gensample::ais_rbm_triton(Tensor v, Tensor weight, Tensor visible_bias,
        Tensor hidden_bias, Tensor visible_base, Tensor betas, Tensor? sigma,
        Tensor seed) -> (Tensor log_w, Tensor v_K)        # log_w float64 (B,)

The float32 recipe is ``tempered.py``'s (the torch backend is the specification),
mirrored operation for operation with explicitly rounded ``fadd``/``fmul``/``fsub`` and
``gibbs_triton.sigmoid_f32`` (bit-exact ``gs_sigmoid``):

* hidden: ``a = acc + c``; ``t = a * beta``; ``h = u < sigmoid(t)`` (``acc = x @ W``
  with ``x = v`` or ``v / sigma``, the division correctly rounded);
* Bernoulli visible: ``t = (acc + b) * beta + (1 - beta) * b_A``; ``v = u < sigmoid(t)``;
* Gaussian visible: ``v = (b + sigma * (acc * beta)) + sigma * eps``;
* AIS increment (log-weights only): ``sum_j float64(sp(a * beta_k)) - float64(sp(a *
  beta_{k-1}))`` plus ``float64(beta_k - beta_{k-1}) * sum_i float64(b_i - b_A,i) v_i``
  (Bernoulli), accumulated in float64, where ``sp(t) = max(t, 0) + log1p(exp(-|t|))`` in
  float32 with this backend's own ``exp``/``log1p`` (libdevice ``__nv_expf`` /
  ``__nv_log1pf`` on a GPU; under ``TRITON_INTERPRET=1``, where libdevice is unavailable,
  numpy's float32 ``exp`` and ``log1p(y) = log(1 + y) * y / ((1 + y) - 1)``, Goldberg's
  few-ulp formula). So states agree with the other backends bit for bit when the GEMMs
  are exact, log-weights to float32 rounding of the softplus terms.

Random stream (``tempered.py``): ``tempered_sweeps`` half-step ``t`` (``h_0`` at 0,
``v_s`` at ``2s - 1``, ``h_s`` at ``2s``) and ``ais_rbm`` step ``k`` (hidden at ``2k - 2``,
visible at ``2k - 1``) draw from ``substream(seed, t)``, element ``r * n_out + j``; the
kernels add ``t << 32`` to the offset they read from ``seed`` (no host sync). The per-step
inverse temperatures of ``ais_rbm`` are read from ``betas`` on the device too.

Two paths, as in ``gibbs_triton``:

* Persistent (``gibbs_triton.persistent_fits``: padded ``W`` up to 64 x 128 values; for
  AIS see :func:`ais_persistent_fits`): one
  program owns ``BLOCK_B`` chains, loads ``W``, the biases and ``v_0`` once and runs every
  half-step (and, for AIS, every annealing step with its float64 log-weight in
  registers) in a device-side loop; one launch per op call.
* Looped (large layers, e.g. 784 x 500): one fused GEMM + epilogue launch per half-step
  (:func:`_half_kernel`, tiles ``BLOCK_M x BLOCK_N`` with a ``K`` loop of ``tl.dot(...,
  input_precision="ieee")``, ``W`` read through strides for ``W^T``). For AIS the hidden
  launch also writes each tile's float64 row sum of the softplus differences (and, in the
  first column tile, the ``ell`` term) to a ``(B, n_col_tiles)`` buffer, which the next
  visible launch's first column tile adds to ``log_w`` in a fixed order: deterministic,
  no atomics, no extra launch.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton
from triton.language.extra import libdevice

from .gibbs_triton import (_BLOCK_K, _BERN_TILE, _GAUSS_TILE, _check_f32, _check_seed, _dot_dim, _stream_tile,
                           fdiv, persistent_fits, sigmoid_f32)
from .random_triton import fadd, fmul, fsub

__all__ = ["tempered_sweeps_triton", "ais_rbm_triton", "softplus_f32", "ais_persistent_fits"]

_RN_INTRINSICS = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") != "1")


# --- per-element math -----------------------------------------------------------------
@triton.jit
def _log1p(y):
    if _RN_INTRINSICS:
        return libdevice.log1p(y)
    else:
        # Goldberg: log1p(y) = log(u) * y / (u - 1) with u = 1 + y (a few ulp; u == 1 -> y)
        u = 1.0 + y
        d = u - 1.0
        return tl.where(d == 0.0, y, tl.log(u) * (y / tl.where(d == 0.0, 1.0, d)))


@triton.jit
def _exp(x):
    if _RN_INTRINSICS:
        return libdevice.exp(x)
    else:
        return tl.exp(x)


@triton.jit
def softplus_f32(t):
    """``max(t, 0) + log1p(exp(-|t|))`` in float32 (tempered.softplus_f32)."""
    return fadd(tl.maximum(t, 0.0), _log1p(_exp(-tl.abs(t))))


@triton.jit
def _sp_diff64(a, bk, bp):
    """float64(sp(a * bk)) - float64(sp(a * bp)) elementwise (the AIS increment terms)."""
    return softplus_f32(fmul(a, bk)).to(tl.float64) - softplus_f32(fmul(a, bp)).to(tl.float64)


@triton.jit
def _hidden_epi(acc, hb, beta, seed, offset, base, BLOCK_N: tl.constexpr, PHASE0: tl.constexpr):
    """(h, a, t): a = acc + c, t = a * beta, h = u < sigmoid(t). ``beta`` broadcasts."""
    a = fadd(acc, hb[None, :])
    t = fmul(a, beta)
    p = sigmoid_f32(t)
    u = _stream_tile(seed, offset, base, BLOCK_N, PHASE0, False)
    return tl.where(u < p, 1.0, 0.0), a


@triton.jit
def _visible_epi(acc, vb, base_or_sigma, beta, seed, offset, base, BLOCK_N: tl.constexpr, PHASE0: tl.constexpr,
                 GAUSS: tl.constexpr):
    """The visible draw at inverse temperature ``beta`` (broadcasting): Bernoulli with base
    bias ``b_A`` or Gaussian with standard deviations ``sigma`` (``base_or_sigma``)."""
    if GAUSS:
        mean = fadd(vb[None, :], fmul(base_or_sigma[None, :], fmul(acc, beta)))
        eps = _stream_tile(seed, offset, base, BLOCK_N, PHASE0, True)
        return fadd(mean, fmul(base_or_sigma[None, :], eps))
    else:
        one_minus = fsub(tl.zeros_like(beta) + 1.0, beta)
        t = fadd(fmul(fadd(acc, vb[None, :]), beta), fmul(one_minus, base_or_sigma[None, :]))
        p = sigmoid_f32(t)
        u = _stream_tile(seed, offset, base, BLOCK_N, PHASE0, False)
        return tl.where(u < p, 1.0, 0.0)


# --- persistent kernel (small layers) ---------------------------------------------------
@triton.jit
def _persistent_kernel(
    v_ptr, w_ptr, vb_ptr, hb_ptr, base_ptr, sigma_ptr, beta_ptr, seed_ptr,
    vout_ptr, hout_ptr, aout_ptr, logw_ptr,
    B, NV, NH, k,
    AIS: tl.constexpr, GAUSS: tl.constexpr, PHASE0_V: tl.constexpr, PHASE0_H: tl.constexpr,
    BLOCK_B: tl.constexpr, NV_P: tl.constexpr, NH_P: tl.constexpr,
):
    """BLOCK_B chains through a whole tempered_sweeps (``k`` sweeps, per-chain beta) or a
    whole AIS run (``k`` = K annealing steps, beta_i = betas[i]), W held on chip."""
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B).to(tl.int64)
    rmask = rows < B
    iv = tl.arange(0, NV_P).to(tl.int64)
    ih = tl.arange(0, NH_P).to(tl.int64)
    vmask = iv < NV
    hmask = ih < NH
    mv = rmask[:, None] & vmask[None, :]
    mh = rmask[:, None] & hmask[None, :]
    w = tl.load(w_ptr + iv[:, None] * NH + ih[None, :], mask=vmask[:, None] & hmask[None, :], other=0.0)
    wt = tl.trans(w)
    vb = tl.load(vb_ptr + iv, mask=vmask, other=0.0)
    hb = tl.load(hb_ptr + ih, mask=hmask, other=0.0)
    if GAUSS:
        bs = tl.load(sigma_ptr + iv, mask=vmask, other=1.0)  # sigma; padding 1 keeps v / sigma = 0
    else:
        bs = tl.load(base_ptr + iv, mask=vmask, other=0.0)  # b_A
    v = tl.load(v_ptr + rows[:, None] * NV + iv[None, :], mask=mv, other=0.0)
    seed = tl.load(seed_ptr)
    offset = tl.load(seed_ptr + 1)
    vbase = rows * NV
    hbase = rows * NH
    if AIS:
        logw = tl.zeros((BLOCK_B,), dtype=tl.float64)
        diff = fsub(vb, bs).to(tl.float64)  # b - b_A (Bernoulli only)
        for s in range(1, k + 1):
            bk = tl.load(beta_ptr + s)
            bp = tl.load(beta_ptr + s - 1)
            x = v
            if GAUSS:
                x = fdiv(v, bs[None, :])
            acc = tl.dot(x, w, input_precision="ieee")
            off_h = offset + (tl.cast(2 * s - 2, tl.int64) << 32)
            h, a = _hidden_epi(acc, hb, bk, seed, off_h, hbase, NH_P, PHASE0_H)
            inc = tl.sum(tl.where(hmask[None, :], _sp_diff64(a, bk, bp), 0.0), axis=1)
            if not GAUSS:
                ell = tl.sum(v.to(tl.float64) * diff[None, :], axis=1)
                inc = inc + (bk.to(tl.float64) - bp.to(tl.float64)) * ell
            logw = logw + inc
            h = tl.where(hmask[None, :], h, 0.0)
            acc_v = tl.dot(h, wt, input_precision="ieee")
            v = _visible_epi(acc_v, vb, bs, bk, seed, off_h + (1 << 32), vbase, NV_P, PHASE0_V, GAUSS)
            v = tl.where(vmask[None, :], v, 0.0)
        tl.store(logw_ptr + rows, logw, mask=rmask)
        tl.store(vout_ptr + rows[:, None] * NV + iv[None, :], v, mask=mv)
    else:
        beta = tl.load(beta_ptr + rows, mask=rmask, other=0.0)[:, None]
        x = v
        if GAUSS:
            x = fdiv(v, bs[None, :])
        acc = tl.dot(x, w, input_precision="ieee")
        h, a = _hidden_epi(acc, hb, beta, seed, offset, hbase, NH_P, PHASE0_H)
        h = tl.where(hmask[None, :], h, 0.0)
        for s in range(1, k + 1):
            off_v = offset + (tl.cast(2 * s - 1, tl.int64) << 32)
            acc_v = tl.dot(h, wt, input_precision="ieee")
            v = _visible_epi(acc_v, vb, bs, beta, seed, off_v, vbase, NV_P, PHASE0_V, GAUSS)
            v = tl.where(vmask[None, :], v, 0.0)
            x = v
            if GAUSS:
                x = fdiv(v, bs[None, :])
            acc = tl.dot(x, w, input_precision="ieee")
            h, a = _hidden_epi(acc, hb, beta, seed, off_v + (1 << 32), hbase, NH_P, PHASE0_H)
            h = tl.where(hmask[None, :], h, 0.0)
        tl.store(vout_ptr + rows[:, None] * NV + iv[None, :], v, mask=mv)
        tl.store(hout_ptr + rows[:, None] * NH + ih[None, :], h, mask=mh)
        tl.store(aout_ptr + rows[:, None] * NH + ih[None, :], a, mask=mh)


# --- looped path: one fused GEMM + epilogue per half-step --------------------------------
@triton.jit
def _half_kernel(
    x_ptr, w_ptr, vb_ptr, hb_ptr, bs_ptr, beta_ptr, seed_ptr, out_ptr, aout_ptr, part_ptr, logw_ptr,
    B, N, K, s_wk, s_wn, beta_rs, beta_i, step, n_part,
    TO_H: tl.constexpr, GAUSS: tl.constexpr, STORE_A: tl.constexpr, AIS: tl.constexpr,
    PHASE0: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    PART_P: tl.constexpr,
):
    """One half-step tile: out = h (TO_H: x = v or v / sigma, K = n_visible) or v (x = h).

    beta of row r: beta_ptr[r * beta_rs + beta_i] (per-chain: beta_rs = 1, beta_i = 0;
    AIS step i: beta_rs = 0, beta_i = i). AIS: the hidden launch writes its tile's
    increment to part[r, pid_n]; the visible launch's first column tile adds the row's
    n_part partials to log_w[r]."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    col0 = pid_n.to(tl.int64) * BLOCK_N
    cols = col0 + tl.arange(0, BLOCK_N).to(tl.int64)
    rmask = rows < B
    cmask = cols < N
    kk = tl.arange(0, BLOCK_K).to(tl.int64)
    beta = tl.load(beta_ptr + rows * beta_rs + beta_i, mask=rmask, other=0.0)[:, None]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    ell = tl.zeros((BLOCK_M,), dtype=tl.float64)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + kk
        km = ks < K
        xt = tl.load(x_ptr + rows[:, None] * K + ks[None, :], mask=rmask[:, None] & km[None, :], other=0.0)
        if TO_H:
            if GAUSS:
                sg = tl.load(bs_ptr + ks, mask=km, other=1.0)
                xt = fdiv(xt, sg[None, :])
            elif AIS:
                d = fsub(tl.load(vb_ptr + ks, mask=km, other=0.0), tl.load(bs_ptr + ks, mask=km, other=0.0))
                ell += tl.sum(xt.to(tl.float64) * d.to(tl.float64)[None, :], axis=1)
        wt = tl.load(w_ptr + ks[:, None] * s_wk + cols[None, :] * s_wn, mask=km[:, None] & cmask[None, :], other=0.0)
        acc = tl.dot(xt, wt, acc, input_precision="ieee")
    seed = tl.load(seed_ptr)
    offset = tl.load(seed_ptr + 1) + (tl.cast(step, tl.int64) << 32)
    base = rows * N + col0
    o = rows[:, None] * N + cols[None, :]
    m = rmask[:, None] & cmask[None, :]
    if TO_H:
        hb = tl.load(hb_ptr + cols, mask=cmask, other=0.0)
        out, a = _hidden_epi(acc, hb, beta, seed, offset, base, BLOCK_N, PHASE0)
        if STORE_A:
            tl.store(aout_ptr + o, a, mask=m)
        if AIS:
            bp = tl.load(beta_ptr + beta_i - 1)
            inc = tl.sum(tl.where(cmask[None, :], _sp_diff64(a, beta, bp), 0.0), axis=1)
            if not GAUSS:
                first = (pid_n == 0).to(tl.float64)
                inc = inc + first * ((tl.load(beta_ptr + beta_i).to(tl.float64) - bp.to(tl.float64)) * ell)
            tl.store(part_ptr + rows * n_part + pid_n, inc, mask=rmask)
    else:
        vb = tl.load(vb_ptr + cols, mask=cmask, other=0.0)
        bs = tl.load(bs_ptr + cols, mask=cmask, other=0.0)
        out = _visible_epi(acc, vb, bs, beta, seed, offset, base, BLOCK_N, PHASE0, GAUSS)
        if AIS:
            if pid_n == 0:
                ip = tl.arange(0, PART_P).to(tl.int64)
                parts = tl.load(part_ptr + rows[:, None] * n_part + ip[None, :],
                                mask=rmask[:, None] & (ip < n_part)[None, :], other=0.0)
                lw = tl.load(logw_ptr + rows, mask=rmask, other=0.0)
                tl.store(logw_ptr + rows, lw + tl.sum(parts, axis=1), mask=rmask)
    tl.store(out_ptr + o, out, mask=m)


# --- launchers ---------------------------------------------------------------------------
def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _persistent_config(B: int, nv_p: int, nh_p: int, ais: bool = False) -> tuple[int, int]:
    """(BLOCK_B, num_warps), gibbs_triton._sweeps_config's choice (same tile shapes; the
    tempered epilogue adds a few registers: the a tile and, for AIS, the float64 sums),
    except AIS on 16 x 16 padded layers: 4 warps (ptxas puts a 4-byte local temporary of
    the float64 row sums on the stack at 8 warps)."""
    if ais and nv_p * nh_p <= 256:
        return (32 if B > 16 else 16), 4
    if nv_p * nh_p <= 2048:
        return (32 if B > 16 else 16), 8
    return 16, (8 if nh_p >= nv_p else 16)


# Tiles (BLOCK_M, BLOCK_N, warps) of the looped path, from ptxas -v for sm_90 (no spills;
# tests/test_tempered_triton.py compiles them): the tempered_sweeps half-steps use
# gibbs_triton's tiles (hidden 64 x 64 on 8 warps: ~160 registers; Gaussian visible 32 x 32
# on 4: ~195); AIS adds the float64 softplus sums: its hidden step takes 32 x 64 on 8 warps
# (~195; 64 x 64 spills at 8 and 16 warps) and its Gaussian visible step 32 x 32 on 8
# (~130; 4 warps spill).
_AIS_HIDDEN_TILE = (32, 64, 8)
_AIS_GAUSS_VISIBLE_TILE = (32, 32, 8)


def _tiles(to_h: bool, gauss: bool, ais: bool, B: int, N: int, n_in: int) -> tuple[int, int, int, int]:
    if ais and to_h:
        max_m, max_n, warps = _AIS_HIDDEN_TILE
    elif gauss and not to_h:
        max_m, max_n, warps = _AIS_GAUSS_VISIBLE_TILE if ais else _GAUSS_TILE
    else:
        max_m, max_n, warps = _BERN_TILE
    return _dot_dim(B, max_m), _dot_dim(N, max_n), _dot_dim(n_in, _BLOCK_K), warps


def ais_persistent_fits(n_visible: int, n_hidden: int, gauss: bool) -> bool:
    """Does ais_rbm run as one persistent kernel? As tempered_sweeps (padded W up to
    64 x 128 values), except Bernoulli visible units with more than 2048 padded weights and
    n_hidden the wider layer (e.g. 64 x 128): the float64 ell term on top of the softplus
    sums spills registers there (ptxas: 124 bytes at 8 warps, 96 at 16), so those take
    the looped path."""
    if not persistent_fits(n_visible, n_hidden):
        return False
    nv_p, nh_p = _dot_dim(n_visible), _dot_dim(n_hidden)
    return gauss or nv_p * nh_p <= 2048 or nv_p > nh_p


class _Model:
    """The op's float32 tensors and the derived launch facts."""

    def __init__(self, op, v, weight, visible_bias, hidden_bias, visible_base, sigma, seed):
        if not isinstance(v, torch.Tensor) or v.dim() != 2:
            raise ValueError(f"{op}: v must be a 2-D float32 tensor (B, n_visible)")
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            raise ValueError(f"{op}: weight must be a 2-D float32 tensor (n_visible, n_hidden)")
        self.B, (self.nv, self.nh) = v.shape[0], weight.shape
        dev = v.device
        _check_f32("weight", weight, tuple(weight.shape), dev)
        _check_f32("v", v, (self.B, self.nv), dev)
        _check_f32("visible_bias", visible_bias, (self.nv,), dev)
        _check_f32("hidden_bias", hidden_bias, (self.nh,), dev)
        _check_f32("visible_base", visible_base, (self.nv,), dev)
        if sigma is not None:
            _check_f32("sigma", sigma, (self.nv,), dev)
        _check_seed(seed, dev)
        self.gauss = sigma is not None
        # the visible layer's per-unit parameter: sigma (Gaussian) or b_A (Bernoulli)
        self.bs = sigma if self.gauss else visible_base
        self.v, self.w, self.vb, self.hb, self.seed = v, weight, visible_bias, hidden_bias, seed


def _launch_half(M: _Model, x, to_h, beta, beta_rs, beta_i, step, out, a_out=None, part=None, log_w=None):
    N, n_in = (M.nh, M.nv) if to_h else (M.nv, M.nh)
    s_wk, s_wn = (M.nh, 1) if to_h else (1, M.nh)  # W or W^T, read in place
    ais = part is not None
    bm, bn, bk, warps = _tiles(to_h, M.gauss, ais, M.B, N, n_in)
    grid = (triton.cdiv(M.B, bm), triton.cdiv(N, bn))
    n_part = part.shape[1] if ais else 1
    wrap_triton(_half_kernel)[grid](
        x, M.w, M.vb, M.hb, M.bs, beta, M.seed, out, a_out if a_out is not None else out,
        part if ais else out, log_w if ais else out,
        M.B, N, n_in, s_wk, s_wn, beta_rs, beta_i, step, n_part,
        TO_H=to_h, GAUSS=M.gauss, STORE_A=a_out is not None, AIS=ais, PHASE0=N % 4 == 0,
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, PART_P=_next_pow2(n_part), num_warps=warps, enable_fp_fusion=False)


def _launch_persistent(M: _Model, beta, k, ais, vout, hout, aout, log_w):
    nv_p, nh_p = _dot_dim(M.nv), _dot_dim(M.nh)
    block_b, warps = _persistent_config(M.B, nv_p, nh_p, ais)
    wrap_triton(_persistent_kernel)[(triton.cdiv(M.B, block_b),)](
        M.v, M.w, M.vb, M.hb, M.bs, M.bs, beta, M.seed, vout, hout, aout, log_w,
        M.B, M.nv, M.nh, int(k),
        AIS=ais, GAUSS=M.gauss, PHASE0_V=M.nv % 4 == 0, PHASE0_H=M.nh % 4 == 0,
        BLOCK_B=block_b, NV_P=nv_p, NH_P=nh_p, num_warps=warps, enable_fp_fusion=False)


def _tempered_sweeps(v, weight, visible_bias, hidden_bias, visible_base, beta, sigma, seed, k, persistent=None):
    """tempered_sweeps; ``persistent=None`` picks the path (tests force either one)."""
    M = _Model("tempered_sweeps", v, weight, visible_bias, hidden_bias, visible_base, sigma, seed)
    _check_f32("beta", beta, (M.B,), v.device)
    if k < 0:
        raise ValueError(f"tempered_sweeps: k must be >= 0, got {k}")
    if persistent is None:
        persistent = persistent_fits(M.nv, M.nh)
    vk = torch.empty((M.B, M.nv), dtype=torch.float32, device=v.device)
    hk = torch.empty((M.B, M.nh), dtype=torch.float32, device=v.device)
    ak = torch.empty((M.B, M.nh), dtype=torch.float32, device=v.device)
    if M.B == 0:
        return vk, hk, ak
    if M.nv == 0 or M.nh == 0:
        persistent = False
    if persistent:
        _launch_persistent(M, beta, k, False, vk, hk, ak, vk)
        return vk, hk, ak
    if k == 0:
        vk.copy_(v)
    if M.nh > 0:
        _launch_half(M, v, True, beta, 1, 0, 0, hk, a_out=ak if k == 0 else None)
    for s in range(1, k + 1):
        if M.nv > 0:
            _launch_half(M, hk, False, beta, 1, 0, 2 * s - 1, vk)
        if M.nh > 0:
            _launch_half(M, vk, True, beta, 1, 0, 2 * s, hk, a_out=ak if s == k else None)
    return vk, hk, ak


def _ais_rbm(v, weight, visible_bias, hidden_bias, visible_base, betas, sigma, seed, persistent=None):
    """ais_rbm; ``persistent=None`` picks the path (tests force either one)."""
    M = _Model("ais_rbm", v, weight, visible_bias, hidden_bias, visible_base, sigma, seed)
    if not isinstance(betas, torch.Tensor) or betas.dim() != 1 or betas.shape[0] < 1:
        raise ValueError("ais_rbm: betas must be a 1-D float32 tensor (K + 1,) with K >= 0")
    _check_f32("betas", betas, tuple(betas.shape), v.device)
    K = betas.shape[0] - 1
    if persistent is None:
        persistent = ais_persistent_fits(M.nv, M.nh, M.gauss)
    log_w = torch.zeros(M.B, dtype=torch.float64, device=v.device)
    vk = torch.empty((M.B, M.nv), dtype=torch.float32, device=v.device)
    if M.B == 0:
        return log_w, vk
    if K == 0:
        vk.copy_(v)
        return log_w, vk
    if persistent and M.nv > 0 and M.nh > 0:
        _launch_persistent(M, betas, K, True, vk, vk, vk, log_w)
        return log_w, vk
    if M.nh == 0 or M.nv == 0:
        # degenerate layers: no GEMM work; the torch recipe in O(K) small ops (no hidden
        # units: every increment is the ell term; no visible units: v stays empty)
        from .tempered import _ais_rbm_torch_impl

        return _ais_rbm_torch_impl(v, weight, visible_bias, hidden_bias, visible_base, betas, sigma, seed)
    _, bn, _, _ = _tiles(True, M.gauss, True, M.B, M.nh, M.nv)
    part = torch.empty((M.B, triton.cdiv(M.nh, bn)), dtype=torch.float64, device=v.device)
    h = torch.empty((M.B, M.nh), dtype=torch.float32, device=v.device)
    x = v
    for s in range(1, K + 1):
        _launch_half(M, x, True, betas, 0, s, 2 * s - 2, h, part=part, log_w=log_w)
        _launch_half(M, h, False, betas, 0, s, 2 * s - 1, vk, part=part, log_w=log_w)
        x = vk
    return log_w, vk


# --- ops -----------------------------------------------------------------------------------
@triton_op("gensample::tempered_sweeps_triton", mutates_args=())
def tempered_sweeps_triton(v: torch.Tensor, weight: torch.Tensor, visible_bias: torch.Tensor,
                           hidden_bias: torch.Tensor, visible_base: torch.Tensor, beta: torch.Tensor,
                           sigma: torch.Tensor | None, seed: torch.Tensor,
                           k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _tempered_sweeps(v, weight, visible_bias, hidden_bias, visible_base, beta, sigma, seed, k)


@triton_op("gensample::ais_rbm_triton", mutates_args=())
def ais_rbm_triton(v: torch.Tensor, weight: torch.Tensor, visible_bias: torch.Tensor, hidden_bias: torch.Tensor,
                   visible_base: torch.Tensor, betas: torch.Tensor, sigma: torch.Tensor | None,
                   seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _ais_rbm(v, weight, visible_bias, hidden_bias, visible_base, betas, sigma, seed)

# triton_ops derive their fake implementations by tracing the launcher.
