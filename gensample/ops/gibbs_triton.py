r"""Triton kernels of the block Gibbs half-steps and of ``gibbs_sweeps`` (``triton`` backend).

Ops (schemas as in ``csrc/gibbs_ops.cpp``; all tensors float32 and contiguous, ``seed`` the
int64 ``(seed, offset)`` pair on the data's device, read inside the kernels)::

    gensample::gibbs_half_step_triton(Tensor x, Tensor weight, Tensor bias, Tensor seed,
        float beta, bool transpose) -> (Tensor state, Tensor prob)
    gensample::gaussian_half_step_triton(Tensor h, Tensor weight, Tensor bias, Tensor sigma,
        Tensor noise_std, Tensor seed) -> (Tensor v, Tensor mean)
    gensample::gibbs_sweeps_triton(Tensor v, Tensor weight, Tensor visible_bias,
        Tensor hidden_bias, Tensor seed, SymInt k, float beta) -> (Tensor v, Tensor h, Tensor h_prob)

The math is ``csrc/include/gensample/gibbs.h``'s, mirrored op for op: :func:`sigmoid_f32`
is ``gs_sigmoid`` with every float operation explicitly rounded (libdevice ``*_rn`` on a
GPU, correctly rounded numpy float32 under ``TRITON_INTERPRET=1``; ``div_rn`` for the
final division), so probabilities and states equal the torch backend's bit for bit
whenever the GEMM is exact (binary inputs, dyadic weights).

Tiling of a half-step. One program computes a ``BLOCK_M x BLOCK_N`` tile of the output
``(B, n_out)``: a K loop of ``tl.dot(x_tile, w_tile, acc, input_precision="ieee")``
(true fp32, never TF32; the interpreter accepts the argument too) over ``BLOCK_K``
slices, with ``W`` read through strides so ``transpose`` needs no copy, followed by the
fused epilogue in registers: bias, ``beta``, sigmoid, the stream draw and the compare.
Only ``state`` and ``prob`` are written. Stream element ``i = r * n_out + j``: the tile's
row ``r`` starts at stream index ``base = r * n_out + col0``; the program makes one
Philox call per 4 consecutive stream elements (``BLOCK_N / 4`` calls per row, all four
lanes used, :func:`_stream_tile`). When ``n_out % 4 != 0`` the row's phase
``base % 4`` shifts the row against the Philox groups: the row then needs one more group
(one extra call per row, ``4 / BLOCK_N`` overhead) and its elements are picked from the
``BLOCK_N + 4`` group-frame values with ``tl.gather`` (``PHASE0`` skips this when
``n_out % 4 == 0``).

``gibbs_sweeps``. Half-step ``t`` (0 .. 2k) draws from ``substream(seed, t)``, i.e.
counters ``offset + t * 2^32 + i // 4``; the kernels add ``t << 32`` to the offset they
read from ``seed`` (no host synchronisation, no per-step seed tensors).

* Persistent kernel, when the padded layer fits on chip:
  ``next_pow2(n_visible) * next_pow2(n_hidden) <= PERSISTENT_MAX_W`` (= 64 * 128 fp32
  values, 32 KiB; padded dimensions are at least 16 for ``tl.dot``). One program owns
  ``BLOCK_B`` chains, loads ``W`` (and its transpose view), both biases and ``v_0`` once,
  then runs all ``2k + 1`` half-steps in registers (a device-side ``for`` over ``k``) and
  writes ``v_k``, ``h_k`` and ``p(h | v_k)`` once. The 32 KiB bound keeps ``W`` plus the
  per-step tiles of 16-32 chains within one SM's registers / shared memory at 8-16 warps
  without spills (ptxas for sm_90, :func:`_sweeps_config`; 784x500 needs 1.5 MiB and
  does not fit). Padded ``W`` entries load as 0, so padded state columns never
  contribute to a product.
* Otherwise a loop of ``2k + 1`` fused half-step launches (the step number is a kernel
  argument, so the sequence is CUDA-graph capturable); only the last hidden step stores
  its probabilities.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton
from triton.language.extra import libdevice

from .random_triton import fadd, fmul, fsub, interleave4, normal4, philox_words, uniform4

__all__ = [
    "gibbs_half_step_triton",
    "gaussian_half_step_triton",
    "gibbs_sweeps_triton",
    "sigmoid_f32",
    "PERSISTENT_MAX_W",
]

_RN_INTRINSICS = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") != "1")

# Padded n_visible * n_hidden (fp32 values) up to which gibbs_sweeps runs persistent.
PERSISTENT_MAX_W = 64 * 128
# tl.dot needs every tile dimension >= 16.
_MIN_DOT = 16
# Half-step tiles (GEMM tile BLOCK_M x BLOCK_N, K slices of BLOCK_K) and warps, from
# ptxas -v for sm_90 (tests/test_gibbs_triton.py checks them for spills): the Bernoulli
# epilogue fits a 64 x 64 tile on 8 warps (about 150 registers); the Gaussian one
# (Box-Muller on the whole group frame, then the per-row shift) needs 32 x 32 on 4 warps
# (about 195 registers; 64 x 64 on 8 warps spills).
_BERN_TILE = (64, 64, 8)
_GAUSS_TILE = (32, 32, 4)
_BLOCK_K = 32


# --- bit-exact sigmoid (gs_sigmoid in csrc/include/gensample/gibbs.h) ----------------
@triton.jit
def fdiv(a, b):
    if _RN_INTRINSICS:
        return libdevice.div_rn(a, b)
    else:
        return a / b


@triton.jit
def sigmoid_f32(a):
    """gs_sigmoid: 1 / (1 + exp(-a)), every float op separately rounded (no FMA)."""
    t = -a
    t = tl.where(t < -87.0, -87.0, t)
    t = tl.where(t > 87.0, 87.0, t)
    fx = tl.floor(fadd(fmul(t, 1.44269504088896341), 0.5))  # in [-125, 126]
    r = fsub(fsub(t, fmul(fx, 0.693359375)), fmul(fx, -2.12194440e-4))
    z = fmul(r, r)
    y = fadd(fmul(r, 1.9875691500e-4), 1.3981999507e-3)  # y = c0 * r + c1 (c0 * r == r * c0)
    y = fadd(fmul(y, r), 8.3334519073e-3)
    y = fadd(fmul(y, r), 4.1665795894e-2)
    y = fadd(fmul(y, r), 1.6666665459e-1)
    y = fadd(fmul(y, r), 5.0000001201e-1)
    e = fadd(fadd(fmul(y, z), r), 1.0)
    two_fx = ((fx.to(tl.int32) + 127) << 23).to(tl.float32, bitcast=True)
    e = fmul(e, two_fx)
    one = tl.zeros_like(e) + 1.0
    return fdiv(one, fadd(one, e))


# --- stream draws in the output tile's frame -------------------------------------------
@triton.jit
def _lanes(w0, w1, w2, w3, NORMAL: tl.constexpr):
    if NORMAL:
        return normal4(w0, w1, w2, w3)
    else:
        return uniform4(w0, w1, w2, w3)


@triton.jit
def _stream_tile(seed, offset, base, BLOCK_N: tl.constexpr, PHASE0: tl.constexpr, NORMAL: tl.constexpr):
    """Stream elements ``base[m] + t`` (t < BLOCK_N) as a (BLOCK_M, BLOCK_N) tile.

    ``base``: int64 (BLOCK_M,) stream index of each row's first tile column. One Philox
    call per group of 4 consecutive elements; with ``PHASE0`` every ``base`` is a
    multiple of 4, otherwise each row takes one extra group and a per-row shift."""
    g0 = base >> 2
    q = tl.arange(0, BLOCK_N // 4).to(tl.int64)
    w0, w1, w2, w3 = philox_words(seed, offset + g0[:, None] + q[None, :])
    x0, x1, x2, x3 = _lanes(w0, w1, w2, w3, NORMAL)
    frame = interleave4(x0, x1, x2, x3)  # frame[m, s] = element 4 * g0[m] + s
    if PHASE0:
        return frame
    else:
        s = tl.arange(0, BLOCK_N)[None, :] + (base & 3).to(tl.int32)[:, None]  # in [0, BLOCK_N + 3)
        inside = tl.gather(frame, tl.minimum(s, BLOCK_N - 1), axis=1)
        e0, e1, e2, e3 = philox_words(seed, offset + g0 + BLOCK_N // 4)
        y0, y1, y2, y3 = _lanes(e0, e1, e2, e3, NORMAL)
        tail = tl.where(s == BLOCK_N, y0[:, None], tl.where(s == BLOCK_N + 1, y1[:, None], y2[:, None]))
        return tl.where(s < BLOCK_N, inside, tail)


@triton.jit
def _step_offset(seed_ptr, step):
    """(seed, offset + step * 2^32): gensample.random.substream, on the device."""
    seed = tl.load(seed_ptr)
    offset = tl.load(seed_ptr + 1) + (tl.cast(step, tl.int64) << 32)  # int64 add wraps mod 2^64
    return seed, offset


@triton.jit
def _bernoulli_epilogue(acc, bias, beta, seed, offset, base, BLOCK_N: tl.constexpr, PHASE0: tl.constexpr):
    a = fmul(fadd(acc, bias[None, :]), beta)  # a * 1.0 == a: no special case for beta == 1
    p = sigmoid_f32(a)
    u = _stream_tile(seed, offset, base, BLOCK_N, PHASE0, False)
    return tl.where(u < p, 1.0, 0.0), p


# --- half-step kernel -----------------------------------------------------------------
@triton.jit
def _half_step_kernel(
    x_ptr, w_ptr, bias_ptr, sigma_ptr, nstd_ptr, seed_ptr, out_ptr, aux_ptr,
    B, N, K, s_xm, s_xk, s_wk, s_wn, beta, step,
    GAUSS: tl.constexpr, STORE_AUX: tl.constexpr, PHASE0: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """out (B, N) = state (or v), aux = prob (or mean); acc = x (B, K) @ Wk (K, N) with
    Wk[k, n] at w_ptr + k * s_wk + n * s_wn."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    col0 = pid_n.to(tl.int64) * BLOCK_N
    cols = col0 + tl.arange(0, BLOCK_N).to(tl.int64)
    rmask = rows < B
    cmask = cols < N
    kk = tl.arange(0, BLOCK_K).to(tl.int64)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + kk
        km = ks < K
        xt = tl.load(x_ptr + rows[:, None] * s_xm + ks[None, :] * s_xk, mask=rmask[:, None] & km[None, :], other=0.0)
        wt = tl.load(w_ptr + ks[:, None] * s_wk + cols[None, :] * s_wn, mask=km[:, None] & cmask[None, :], other=0.0)
        acc = tl.dot(xt, wt, acc, input_precision="ieee")
    seed, offset = _step_offset(seed_ptr, step)
    base = rows * N + col0
    bias = tl.load(bias_ptr + cols, mask=cmask, other=0.0)
    if GAUSS:
        sig = tl.load(sigma_ptr + cols, mask=cmask, other=0.0)
        nstd = tl.load(nstd_ptr + cols, mask=cmask, other=0.0)
        eps = _stream_tile(seed, offset, base, BLOCK_N, PHASE0, True)
        aux = fadd(bias[None, :], fmul(sig[None, :], acc))
        out = fadd(aux, fmul(nstd[None, :], eps))
    else:
        out, aux = _bernoulli_epilogue(acc, bias, beta, seed, offset, base, BLOCK_N, PHASE0)
    o = rows[:, None] * N + cols[None, :]
    m = rmask[:, None] & cmask[None, :]
    tl.store(out_ptr + o, out, mask=m)
    if STORE_AUX:
        tl.store(aux_ptr + o, aux, mask=m)


# --- persistent gibbs_sweeps kernel ---------------------------------------------------------
@triton.jit
def _sweeps_kernel(
    v_ptr, w_ptr, vb_ptr, hb_ptr, seed_ptr, vout_ptr, hout_ptr, hp_ptr,
    B, NV, NH, k, beta,
    PHASE0_V: tl.constexpr, PHASE0_H: tl.constexpr,
    BLOCK_B: tl.constexpr, NV_P: tl.constexpr, NH_P: tl.constexpr,
):
    """One program: BLOCK_B chains through all 2k + 1 half-steps, W held on chip."""
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B).to(tl.int64)
    rmask = rows < B
    iv = tl.arange(0, NV_P).to(tl.int64)
    ih = tl.arange(0, NH_P).to(tl.int64)
    vmask = iv < NV
    hmask = ih < NH
    w = tl.load(w_ptr + iv[:, None] * NH + ih[None, :], mask=vmask[:, None] & hmask[None, :], other=0.0)
    wt = tl.trans(w)
    vb = tl.load(vb_ptr + iv, mask=vmask, other=0.0)
    hb = tl.load(hb_ptr + ih, mask=hmask, other=0.0)
    v = tl.load(v_ptr + rows[:, None] * NV + iv[None, :], mask=rmask[:, None] & vmask[None, :], other=0.0)
    seed, offset = _step_offset(seed_ptr, 0)
    vbase = rows * NV
    hbase = rows * NH
    acc = tl.dot(v, w, input_precision="ieee")
    h, hp = _bernoulli_epilogue(acc, hb, beta, seed, offset, hbase, NH_P, PHASE0_H)
    h = tl.where(hmask[None, :], h, 0.0)
    for s in range(1, k + 1):
        off_v = offset + (tl.cast(2 * s - 1, tl.int64) << 32)
        acc_v = tl.dot(h, wt, input_precision="ieee")
        v, _ = _bernoulli_epilogue(acc_v, vb, beta, seed, off_v, vbase, NV_P, PHASE0_V)
        v = tl.where(vmask[None, :], v, 0.0)
        acc_h = tl.dot(v, w, input_precision="ieee")
        h, hp = _bernoulli_epilogue(acc_h, hb, beta, seed, off_v + (1 << 32), hbase, NH_P, PHASE0_H)
        h = tl.where(hmask[None, :], h, 0.0)
    mv = rmask[:, None] & vmask[None, :]
    mh = rmask[:, None] & hmask[None, :]
    tl.store(vout_ptr + rows[:, None] * NV + iv[None, :], v, mask=mv)
    tl.store(hout_ptr + rows[:, None] * NH + ih[None, :], h, mask=mh)
    tl.store(hp_ptr + rows[:, None] * NH + ih[None, :], hp, mask=mh)


# --- launch configuration ----------------------------------------------------------------
def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _dot_dim(n: int, cap: int | None = None) -> int:
    d = max(_MIN_DOT, _next_pow2(n))
    return min(d, cap) if cap is not None else d


def persistent_fits(n_visible: int, n_hidden: int) -> bool:
    """Does ``gibbs_sweeps`` run as one persistent kernel for this layer size?"""
    return _dot_dim(n_visible) * _dot_dim(n_hidden) <= PERSISTENT_MAX_W


def _sweeps_config(B: int, nv_p: int, nh_p: int) -> tuple[int, int]:
    """(BLOCK_B, num_warps) of the persistent kernel, from ptxas -v for sm_90 (no spills in
    the variants tests/test_gibbs_triton.py compiles): 32 chains per program on 8 warps
    for layers up to 2048 padded weights (64x32 at batch 4096: 128 programs, one wave on
    an H100; about 180-225 registers), else 16 chains on 8 warps when n_hidden is the wider
    layer (64x128: 80-105 registers) and on 16 warps otherwise (128x64: 65-90 registers;
    8 warps spill there)."""
    if nv_p * nh_p <= 2048:
        return (32 if B > 16 else 16), 8
    return 16, (8 if nh_p >= nv_p else 16)


# --- checks -------------------------------------------------------------------------------
def _check_f32(name: str, t: torch.Tensor, shape: tuple, device) -> None:
    if not isinstance(t, torch.Tensor) or t.dtype != torch.float32:
        raise TypeError(f"{name} must be a float32 tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but the states are on {device}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous")


def _check_seed(seed: torch.Tensor, device) -> None:
    if not isinstance(seed, torch.Tensor) or seed.dtype != torch.int64 or tuple(seed.shape) != (2,):
        raise ValueError("seed must be an int64 tensor of shape (2,) holding (seed, offset)")
    if seed.device != device:
        raise ValueError(f"seed is on {seed.device} but the states are on {device}")


def _check_x_w(name: str, x: torch.Tensor, weight: torch.Tensor) -> tuple[int, int, int]:
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D float32 tensor (B, n_in)")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError("weight must be a 2-D float32 tensor (n_visible, n_hidden)")
    _check_f32("weight", weight, tuple(weight.shape), x.device)
    return x.shape[0], weight.shape[0], weight.shape[1]


# --- launchers ------------------------------------------------------------------------------
def _half_step(x, weight, bias, seed, beta, transpose, step, store_aux=True, sigma=None, noise_std=None,
               out=None, aux=None):
    """Launch one fused half-step; returns (out, aux). Bernoulli unless sigma is given."""
    B, n_in = x.shape
    nv, nh = weight.shape
    N = nv if transpose else nh
    s_wk, s_wn = (1, nh) if transpose else (nh, 1)  # Wk = W^T or W, read in place
    if out is None:
        out = torch.empty((B, N), dtype=torch.float32, device=x.device)
    if aux is None:
        aux = torch.empty((B, N) if store_aux else (0,), dtype=torch.float32, device=x.device)
    if B == 0 or N == 0:
        return out, aux
    gauss = sigma is not None
    max_m, max_n, warps = _GAUSS_TILE if gauss else _BERN_TILE
    block_m = _dot_dim(B, max_m)
    block_n = _dot_dim(N, max_n)
    block_k = _dot_dim(n_in, _BLOCK_K)
    grid = (triton.cdiv(B, block_m), triton.cdiv(N, block_n))
    wrap_triton(_half_step_kernel)[grid](
        x, weight, bias, sigma if gauss else bias, noise_std if gauss else bias, seed, out,
        aux if store_aux else out,
        B, N, n_in, x.stride(0), x.stride(1), s_wk, s_wn, float(beta), int(step),
        GAUSS=gauss, STORE_AUX=bool(store_aux), PHASE0=N % 4 == 0,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=warps, enable_fp_fusion=False)
    return out, aux


def _gibbs_sweeps(v, weight, visible_bias, hidden_bias, seed, k, beta, persistent=None):
    """gibbs_sweeps; ``persistent=None`` picks the path (tests force either one)."""
    B, nv, nh = _check_x_w("v", v, weight)
    _check_f32("v", v, (B, nv), v.device)
    _check_f32("visible_bias", visible_bias, (nv,), v.device)
    _check_f32("hidden_bias", hidden_bias, (nh,), v.device)
    _check_seed(seed, v.device)
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if persistent is None:
        persistent = persistent_fits(nv, nh)
    dev = v.device
    if B == 0 or nv == 0 or nh == 0 or not persistent:
        h, hp = _half_step(v, weight, hidden_bias, seed, beta, False, 0, store_aux=k == 0)
        vk = v.clone() if k == 0 else None
        for s in range(1, k + 1):
            vk, _ = _half_step(h, weight, visible_bias, seed, beta, True, 2 * s - 1, store_aux=False, out=vk)
            h, hp = _half_step(vk, weight, hidden_bias, seed, beta, False, 2 * s, store_aux=s == k, out=h)
        return vk, h, hp
    nv_p, nh_p = _dot_dim(nv), _dot_dim(nh)
    block_b, warps = _sweeps_config(B, nv_p, nh_p)
    vk = torch.empty((B, nv), dtype=torch.float32, device=dev)
    hk = torch.empty((B, nh), dtype=torch.float32, device=dev)
    hp = torch.empty((B, nh), dtype=torch.float32, device=dev)
    wrap_triton(_sweeps_kernel)[(triton.cdiv(B, block_b),)](
        v, weight, visible_bias, hidden_bias, seed, vk, hk, hp, B, nv, nh, int(k), float(beta),
        PHASE0_V=nv % 4 == 0, PHASE0_H=nh % 4 == 0, BLOCK_B=block_b, NV_P=nv_p, NH_P=nh_p,
        num_warps=warps, enable_fp_fusion=False)
    return vk, hk, hp


# --- ops ----------------------------------------------------------------------------------------
@triton_op("gensample::gibbs_half_step_triton", mutates_args=())
def gibbs_half_step_triton(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, seed: torch.Tensor,
                           beta: float, transpose: bool) -> tuple[torch.Tensor, torch.Tensor]:
    B, nv, nh = _check_x_w("x", x, weight)
    n_in, n_out = (nh, nv) if transpose else (nv, nh)
    _check_f32("x", x, (B, n_in), x.device)
    _check_f32("bias", bias, (n_out,), x.device)
    _check_seed(seed, x.device)
    return _half_step(x, weight, bias, seed, beta, transpose, 0)


@triton_op("gensample::gaussian_half_step_triton", mutates_args=())
def gaussian_half_step_triton(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, sigma: torch.Tensor,
                              noise_std: torch.Tensor, seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    B, nv, nh = _check_x_w("h", h, weight)
    _check_f32("h", h, (B, nh), h.device)
    for name, t in (("bias", bias), ("sigma", sigma), ("noise_std", noise_std)):
        _check_f32(name, t, (nv,), h.device)
    _check_seed(seed, h.device)
    return _half_step(h, weight, bias, seed, 1.0, True, 0, sigma=sigma, noise_std=noise_std)


@triton_op("gensample::gibbs_sweeps_triton", mutates_args=())
def gibbs_sweeps_triton(v: torch.Tensor, weight: torch.Tensor, visible_bias: torch.Tensor,
                        hidden_bias: torch.Tensor, seed: torch.Tensor, k: int,
                        beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _gibbs_sweeps(v, weight, visible_bias, hidden_bias, seed, k, beta)
