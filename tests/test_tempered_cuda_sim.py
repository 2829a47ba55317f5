"""The CUDA tempered-family kernels' per-thread logic, run on the CPU over a simulated grid.

No GPU here, so csrc/cuda/tempered_cuda.cu cannot run; its per-thread programs live in
csrc/include/gensample/kernels/tempered_thread.h, and tests/cuda_sim/tempered_sim_driver.cpp
(g++, AddressSanitizer and UBSan on) runs WHOLE ops the way the .cu launcher does: the same
host loop of GEMMs (computed exactly in the driver: binary states and dyadic weights, or
for Gaussian visible units one power-of-two weight per hidden unit) and fused epilogue
launches, every (blockIdx, threadIdx) of each launch. Checks:

* tempered_sweeps (v_k, h_k, a_k) and ais_rbm's v_K equal the torch backend (the spec)
  bit for bit on the same stream: Bernoulli visible units with and without a base bias,
  Gaussian visible units, per-chain betas including 0 and 1, k in {0, 1, 2}, AIS forward,
  reverse and K = 0 schedules, awkward shapes (B = 1, 3, 33; widths not multiples of 4),
  one SM (several grid-stride rounds) and 132 (H100), aligned (vector) and misaligned
  (scalar) buffers;
* AIS log-weights (float64, the block's deterministic reduction) within the float32
  softplus rounding bound (logw_tol);
* every launch writes each element of its outputs exactly once and nothing else, no
  store outside the buffers, aligned vector accesses, no out-of-bounds access (ASan).
"""
from __future__ import annotations

import pytest
import torch

import gensample  # noqa: F401  (registers the torch backend ops)
from conftest import SEEDS, binary, dyadic, one_per_column
from conftest import assert_bits_equal as _assert_bits_equal
from cuda_sim_support import H100_SMS, VEC, blob, check_base, decode, driver_fixture, f32_word, requires_cxx, run_driver
from gensample import random as R
from gensample.ops import tempered  # noqa: F401

pytestmark = requires_cxx

ops = torch.ops.gensample


def assert_bits_equal(name, got, ref):
    """The driver's outputs come back flat: compare them in ``ref``'s shape."""
    _assert_bits_equal(name, got, ref, reshape=True)


# driver stats after the base three: bad_writes, launches, vec_launches, bad_config
BAD_WRITES, LAUNCHES, VEC_LAUNCHES, BAD_CONFIG = 3, 4, 5, 6

sim = driver_fixture("tempered_sim_driver.cpp", "tempered_sim", torch_includes=False, werror=True)


def model(kind, B, nv, nh, salt):
    gen = torch.Generator().manual_seed(B * 1000 + nv * 10 + nh + salt)
    vb, hb = dyadic(gen, nv), dyadic(gen, nh)
    if kind == "gauss":
        sigma = torch.rand(nv, generator=gen) + 0.25
        v0 = torch.randn(B, nv, generator=gen) * sigma + vb
        return v0, one_per_column(gen, nv, nh), vb, hb, torch.zeros(nv), sigma
    base = dyadic(gen, nv) if kind == "base" else torch.zeros(nv)
    return binary(gen, B, nv), dyadic(gen, nv, nh), vb, hb, base, None


def chain_betas(B):
    cyc = torch.tensor([0.0, 1.0, 0.5, 0.3, 0.875, 0.1])
    return cyc.repeat(B // 6 + 1)[:B].contiguous()


def logw_tol(K, v0, w, vb, hb, sigma):
    """As in test_tempered_triton.py: each float32 softplus term may differ by 8 ulp of
    max(1, sp) <= 8 * 2^-24 * (1 + A) between libm/libdevice and torch's exp/log1p, with
    |t| <= A = max|c| + max_j sum_i |W_ij| X (X bounds |x|: 1 for binary v; Gaussian
    |b| / sigma + sum_j |W_ij| + 6.8, the stream's normals staying below 6.8); two terms per
    hidden unit per step."""
    if sigma is None:
        X = 1.0
    else:
        X = max(float((v0 / sigma).abs().max()) if v0.numel() else 0.0,
                float(vb.abs().max() / sigma.min()) + float(w.abs().sum(1).max()) + 6.8)
    A = (float(hb.abs().max()) if hb.numel() else 0.0) + (float(w.abs().sum(0).max()) if w.numel() else 0.0) * X
    return 2 * K * w.shape[1] * 8 * 2.0**-24 * (1 + A) + 1e-12


def _words_seed(i):
    return list(SEEDS[i % len(SEEDS)])


def _run(sim, tmp_path, op, kind, B, nv, nh, steps, sms, shift, seed_i, tensors):
    words = [op, int(kind == "gauss"), B, nv, nh, steps, sms, shift, *_words_seed(seed_i), 1]
    res = run_driver(sim, words, [blob(t) for t in tensors], tmp_path)
    st = res.stats
    check_base(st)
    assert st[BAD_WRITES] == 0, f"{st[BAD_WRITES]} elements written other than exactly once by their launch"
    assert st[BAD_CONFIG] == 0
    return st, res.outs


SWEEP_CASES = [
    # (B, n_visible, n_hidden, kind, sm_count, shift)
    (1, 5, 7, "bern", H100_SMS, 0),
    (3, 33, 20, "base", H100_SMS, 0),
    (33, 12, 16, "base", 1, 0),      # one SM: grid-stride rounds; vector path (widths % 4 == 0)
    (33, 70, 17, "gauss", H100_SMS, 0),
    (6, 9, 6, "gauss", 2, 1),        # misaligned buffers: scalar path
    (5, 21, 11, "bern", H100_SMS, 1),
]


@pytest.mark.parametrize("case", SWEEP_CASES, ids=lambda c: "B{}-{}x{}-{}-sm{}-sh{}".format(*c))
def test_sweeps_bit_exact(sim, tmp_path, case):
    B, nv, nh, kind, sms, shift = case
    v0, w, vb, hb, base, sigma = model(kind, B, nv, nh, 0)
    beta = chain_betas(B)
    for k in (0, 1, 2):
        tensors = [v0, w, vb, hb, base, beta] + ([sigma] if sigma is not None else [])
        st, outs = _run(sim, tmp_path, 0, kind, B, nv, nh, k, sms, shift, B + k, tensors)
        assert st[LAUNCHES] == 2 * k + 1
        if shift == 0 and (B * nh) % 4 == 0:
            assert st[VEC] > 0, "aligned buffers should use 16-byte accesses"
        if shift:
            assert st[VEC_LAUNCHES] == 0
        ref = ops.tempered_sweeps_torch(v0, w, vb, hb, base, beta, sigma, R.seed_pair(*_words_seed(B + k)), k)
        for name, (raw, _), r in zip(("v", "h", "a"), outs, ref):
            assert_bits_equal(f"{name} (k={k})", decode(raw), r)


AIS_CASES = [
    # (B, n_visible, n_hidden, kind, sm_count, shift)
    (5, 33, 20, "base", H100_SMS, 0),
    (33, 12, 16, "bern", 1, 0),      # one SM: 16 blocks, each taking several chains
    (1, 7, 5, "base", H100_SMS, 1),
    (3, 9, 6, "gauss", H100_SMS, 0),
    (4, 20, 33, "gauss", 2, 1),
    (3, 300, 257, "base", H100_SMS, 0),  # rows wider than the block's 128 threads x 4
]
SCHEDULES = {
    "forward": torch.tensor([0.0, 0.25, 0.5, 1.0]),
    "reverse": torch.tensor([1.0, 0.6, 0.0]),
    "K0": torch.tensor([0.5]),
}


@pytest.mark.parametrize("case", AIS_CASES, ids=lambda c: "B{}-{}x{}-{}-sm{}-sh{}".format(*c))
def test_ais_matches_torch(sim, tmp_path, case):
    B, nv, nh, kind, sms, shift = case
    v0, w, vb, hb, base, sigma = model(kind, B, nv, nh, 1)
    if nv > 100:
        w = w / 8  # keeps |t| (and so the softplus rounding bound) moderate
    for i, (name, betas) in enumerate(SCHEDULES.items()):
        K = betas.numel() - 1
        tensors = [v0, w, vb, hb, base, betas] + ([sigma] if sigma is not None else [])
        st, outs = _run(sim, tmp_path, 1, kind, B, nv, nh, K, sms, shift, B + i, tensors)
        assert st[LAUNCHES] == 2 * K
        assert st[7] == min(B, sms * 16) and st[8] == 128  # AIS hidden launch: blocks, threads
        lw, vK = decode(outs[0][0], torch.float64), decode(outs[1][0])
        lw_ref, vK_ref = ops.ais_rbm_torch(v0, w, vb, hb, base, betas, sigma, R.seed_pair(*_words_seed(B + i)))
        assert_bits_equal(f"v_K ({name})", vK, vK_ref)
        tol = logw_tol(K, v0, w, vb, hb, sigma)
        err = float((lw - lw_ref).abs().max())
        assert err <= tol, f"log_w ({name}): max error {err} > {tol}"
        if K:
            assert float(lw_ref.abs().max()) > 100 * tol  # the comparison is not vacuous


def test_ais_no_hidden_units(sim, tmp_path):
    """n_hidden = 0: the weights are the ell term alone (the row kernel still runs)."""
    gen = torch.Generator().manual_seed(3)
    B, nv = 3, 6
    v0, vb, base = binary(gen, B, nv), dyadic(gen, nv), dyadic(gen, nv)
    betas = torch.tensor([0.0, 0.5, 1.0])
    w, hb = torch.zeros(nv, 0), torch.zeros(0)
    st, outs = _run(sim, tmp_path, 1, "base", B, nv, 0, 2, H100_SMS, 0, 0, [v0, w, vb, hb, base, betas])
    lw_ref, vK_ref = ops.ais_rbm_torch(v0, w, vb, hb, base, betas, None, R.seed_pair(*_words_seed(0)))
    assert_bits_equal("v_K", decode(outs[1][0]), vK_ref)
    assert torch.allclose(decode(outs[0][0], torch.float64), lw_ref, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------
# persistent kernel (one launch per op for small layers; W and the chains in shared memory)
# ----------------------------------------------------------------------------------
PERSIST_STATS = ("fits", "cb", "blocks", "threads", "smem_bytes", "smem_bad", "bad_config")
PERSIST_CASES = [
    # (B, n_visible, n_hidden, kind, sm_count)
    (1, 5, 7, "bern", H100_SMS),
    (33, 12, 16, "base", H100_SMS),   # 8 chains per block: 5 blocks, the last one partial
    (70, 20, 9, "gauss", 1),          # one SM: 35 chains per block
    (9, 33, 20, "base", 2),
    (20, 30, 24, "gauss", H100_SMS),
]


def _persist(sim, tmp_path, ais, kind, B, nv, nh, steps, sms, seed_i, tensors):
    words = [2, int(ais), int(kind == "gauss"), B, nv, nh, steps, sms, *_words_seed(seed_i), 1]
    res = run_driver(sim, words, [blob(t) for t in tensors], tmp_path)
    check_base(res.stats)
    st = dict(zip(PERSIST_STATS, res.stats[3:]))
    assert st["bad_config"] == 0 and st["threads"] == 256
    assert st["smem_bad"] == 0, "a phase wrote shared memory outside its outputs (or twice)"
    assert st["fits"] == 1 and 8 <= st["cb"] <= 64 and st["smem_bytes"] <= 48 * 1024
    for name, (_, counts) in zip(("out0", "out1", "out2"), res.outs):
        assert (counts == 1).all(), f"{name}: not every element written exactly once"
    return st, res.outs


@pytest.mark.parametrize("case", PERSIST_CASES, ids=lambda c: "B{}-{}x{}-{}-sm{}".format(*c))
def test_persistent_sweeps_bit_exact(sim, tmp_path, case):
    B, nv, nh, kind, sms = case
    v0, w, vb, hb, base, sigma = model(kind, B, nv, nh, 2)
    beta = chain_betas(B)
    for k in (0, 1, 2):
        bs = sigma if sigma is not None else base
        _, outs = _persist(sim, tmp_path, False, kind, B, nv, nh, k, sms, B + k, [v0, w, vb, hb, bs, beta])
        ref = ops.tempered_sweeps_torch(v0, w, vb, hb, base, beta, sigma, R.seed_pair(*_words_seed(B + k)), k)
        for name, (raw, _), r in zip(("v", "h", "a"), outs, ref):
            assert_bits_equal(f"persistent {name} (k={k})", decode(raw), r)


@pytest.mark.parametrize("case", PERSIST_CASES, ids=lambda c: "B{}-{}x{}-{}-sm{}".format(*c))
def test_persistent_ais_matches_torch(sim, tmp_path, case):
    B, nv, nh, kind, sms = case
    v0, w, vb, hb, base, sigma = model(kind, B, nv, nh, 3)
    for i, name in enumerate(("forward", "reverse")):
        betas = SCHEDULES[name]
        K = betas.numel() - 1
        bs = sigma if sigma is not None else base
        _, outs = _persist(sim, tmp_path, True, kind, B, nv, nh, K, sms, B + i, [v0, w, vb, hb, bs, betas])
        lw, vK = decode(outs[0][0], torch.float64), decode(outs[1][0])
        lw_ref, vK_ref = ops.ais_rbm_torch(v0, w, vb, hb, base, betas, sigma, R.seed_pair(*_words_seed(B + i)))
        assert_bits_equal(f"persistent v_K ({name})", vK, vK_ref)
        tol = logw_tol(K, v0, w, vb, hb, sigma)
        err = float((lw - lw_ref).abs().max())
        assert err <= tol, f"persistent log_w ({name}): max error {err} > {tol}"


def test_persistent_launch_falls_back_for_large_layers(sim, tmp_path):
    """784x500 (and anything whose W leaves no room for 8 chains) takes the GEMM loop."""
    from cuda_sim_support import run_driver as rd
    gen = torch.Generator().manual_seed(0)
    nv, nh = 120, 100
    t = [binary(gen, 4, nv), dyadic(gen, nv, nh), dyadic(gen, nv), dyadic(gen, nh), torch.zeros(nv), torch.ones(4)]
    res = rd(sim, [2, 0, 0, 4, nv, nh, 1, H100_SMS, 1, 0, 1], [blob(x) for x in t], tmp_path)
    assert res.stats[3] == 0 and res.stats[5] == 0  # fits, blocks
