"""The CUDA block Gibbs kernels' per-thread logic, run on the CPU over a simulated grid.

No GPU here, so csrc/cuda/gibbs_cuda.cu cannot run; its per-thread programs live in
csrc/include/gensample/kernels/gibbs_thread.h and tests/cuda_sim/gibbs_sim_driver.cpp
(g++, AddressSanitizer on) runs them for every (blockIdx, threadIdx) of the launch the
.cu launcher makes (same launch-configuration functions, SM count given). Checks:

* fused epilogue (after the GEMM, which the test computes exactly: binary inputs, dyadic
  weights) and persistent gibbs_sweeps kernel: bit-identical to the torch backend
  (gensample.ops.gibbs, the spec) on the same stream, substreams included;
* every output element written exactly once (outputs start as NaN), no store outside
  the outputs, aligned vector accesses, no out-of-bounds read (ASan);
* sweep kernel: each phase (load, half-step t) writes exactly its output layer in shared
  memory, once per element, so no thread reads what another writes in the same phase;
  shared memory stays within the 48 KiB the launcher requests.
"""
from __future__ import annotations

import pytest
import torch

import gensample  # noqa: F401  (registers the torch backend ops)
from conftest import SEEDS, binary, dyadic
from conftest import assert_bits_equal as _assert_bits_equal
from cuda_sim_support import (H100_SMS, VEC, blob, check_writes, decode, driver_fixture, f32_word, requires_cxx,
                              run_driver)
from gensample import random as R
from gensample.ops import gibbs as _gibbs  # noqa: F401

pytestmark = requires_cxx

ops = torch.ops.gensample


def assert_bits_equal(name, got, ref):
    """The driver's outputs come back flat: compare them in ``ref``'s shape."""
    _assert_bits_equal(name, got, ref, reshape=True)


EPI_STATS = ("blocks", "threads", "groups", "vec", "bad_config")
SWEEP_STATS = ("fits", "cb", "blocks", "threads", "smem_bytes", "smem_bad", "bad_config", "vec")


sim = driver_fixture("gibbs_sim_driver.cpp", "gibbs_sim", torch_includes=False, werror=True)


def _run(sim, words, tensors, tmp_path):
    """Runs the driver on float32 tensors; the outputs come back as float32 tensors."""
    stats, outs = run_driver(sim, words, [blob(t) for t in tensors], tmp_path)
    return stats, [(decode(raw), counts) for raw, counts in outs]


# ----------------------------------------------------------------------------
# fused epilogue
# ----------------------------------------------------------------------------
EPI_CASES = [
    # (B, N, sm_count, step, beta, shift)
    (1, 1, H100_SMS, 0, 1.0, 0),
    (1, 5, H100_SMS, 0, 1.0, 0),
    (3, 7, H100_SMS, 3, 0.5, 0),
    (5, 33, H100_SMS, 0, 1.0, 1),      # misaligned outputs: scalar path
    (33, 17, 1, 2, 0.5, 0),            # one SM: several grid-stride rounds
    (64, 32, H100_SMS, 1, 1.0, 0),
    (70, 130, 2, 5, 0.0, 0),           # beta = 0: p = 1/2
    (0, 9, H100_SMS, 0, 1.0, 0),
]


def _epilogue(sim, tmp_path, gauss, B, N, sms, step, beta, shift, seed_i=0):
    gen = torch.Generator().manual_seed(B * 131 + N + step)
    n_in = 11
    x, w, bias = binary(gen, B, n_in), dyadic(gen, n_in, N), dyadic(gen, N)
    acc = x @ w  # exact: binary x, dyadic w
    seed_words = list(SEEDS[seed_i % len(SEEDS)])
    seed = R.seed_pair(*seed_words)
    blobs = [acc, bias]
    if gauss:
        sigma = torch.rand(N, generator=gen) + 0.25
        nstd = (sigma.double() / 0.7**0.5).float()
        blobs += [sigma, nstd]
    words = [1 if gauss else 0, B, N, sms, step, f32_word(beta), shift, *seed_words, 1]
    stats, outs = _run(sim, words, blobs, tmp_path)
    st = dict(zip(EPI_STATS, stats[3:]))
    assert st["bad_config"] == 0 and st["threads"] == 256
    assert st["vec"] == (shift == 0)
    if B * N >= 4 and shift == 0:
        assert stats[VEC] > 0, "aligned outputs should use vector access"
    check_writes(stats, outs, ["state", "prob"])
    sub = R.substream(seed, step)
    if gauss:
        ref = ops.gaussian_half_step_torch(x, w.T.contiguous(), bias, sigma, nstd, sub)
    else:
        ref = ops.gibbs_half_step_torch(x, w, bias, sub, beta, False)
    assert_bits_equal("state" if not gauss else "v", outs[0][0], ref[0])
    assert_bits_equal("prob" if not gauss else "mean", outs[1][0], ref[1])


@pytest.mark.parametrize("case", EPI_CASES, ids=lambda c: "B{}-N{}-sm{}-t{}-b{}-sh{}".format(*c))
def test_bernoulli_epilogue(sim, tmp_path, case):
    _epilogue(sim, tmp_path, False, *case, seed_i=case[0])


@pytest.mark.parametrize("case", EPI_CASES[1:6], ids=lambda c: "B{}-N{}-sm{}-t{}-sh{}".format(*c[:4], c[5]))
def test_gaussian_epilogue(sim, tmp_path, case):
    _epilogue(sim, tmp_path, True, *case, seed_i=case[1])


# ----------------------------------------------------------------------------
# persistent gibbs_sweeps kernel
# ----------------------------------------------------------------------------
SWEEP_CASES = [
    # (B, n_visible, n_hidden, sm_count)
    (1, 5, 7, H100_SMS),
    (5, 33, 20, H100_SMS),
    (33, 12, 16, H100_SMS),     # 8 chains per block: 5 blocks, the last one partial
    (70, 64, 32, 1),            # digits size, one SM: 35 chains per block
    (20, 100, 90, H100_SMS),    # W takes most of the 48 KiB (room for 16 chains)
    (9, 3, 1, 2),
    (300, 20, 8, H100_SMS),     # vector path, several blocks, the last one partial
]


def _sweeps(sim, tmp_path, B, nv, nh, sms, k, beta, seed_i):
    gen = torch.Generator().manual_seed(B * 1000 + nv * 10 + nh + k)
    w, vb, hb, v0 = dyadic(gen, nv, nh), dyadic(gen, nv), dyadic(gen, nh), binary(gen, B, nv)
    seed_words = list(SEEDS[seed_i % len(SEEDS)])
    words = [2, B, nv, nh, k, f32_word(beta), sms, *seed_words, 1]
    stats, outs = _run(sim, words, [v0, w, vb, hb], tmp_path)
    st = dict(zip(SWEEP_STATS, stats[3:]))
    return st, stats, outs, (v0, w, vb, hb, R.seed_pair(*seed_words))


@pytest.mark.parametrize("case", SWEEP_CASES, ids=lambda c: "B{}-{}x{}-sm{}".format(*c))
def test_sweeps_kernel(sim, tmp_path, case):
    B, nv, nh, sms = case
    for k, beta in ((0, 1.0), (1, 0.5), (3, 1.0)):
        st, stats, outs, (v0, w, vb, hb, seed) = _sweeps(sim, tmp_path, B, nv, nh, sms, k, beta, B + nv)
        assert st["fits"] == 1 and st["bad_config"] == 0 and st["threads"] == 256
        assert 8 <= st["cb"] <= 64 and st["smem_bytes"] <= 48 * 1024
        assert st["smem_bad"] == 0, "a phase wrote shared memory outside its output layer (or twice)"
        assert st["vec"] == (nv % 4 == 0 and nh % 4 == 0)
        if st["vec"]:
            assert stats[VEC] > 0, "the vector path should use 16-byte accesses"
        check_writes(stats, outs, ["v", "h", "h_prob"])
        ref = ops.gibbs_sweeps_torch(v0, w, vb, hb, seed, k, beta)
        for name, (got, _), r in zip(("v", "h", "h_prob"), outs, ref):
            assert_bits_equal(f"{name} (k={k}, beta={beta})", got, r)


def test_sweep_launch_falls_back_for_large_layers(sim, tmp_path):
    """784x500 (and anything whose W leaves no room for 8 chains) takes the GEMM loop."""
    st, *_ = _sweeps(sim, tmp_path, 4, 120, 100, H100_SMS, 1, 1.0, 0)
    assert st["fits"] == 0 and st["blocks"] == 0
    st, *_ = _sweeps(sim, tmp_path, 0, 5, 7, H100_SMS, 1, 1.0, 0)
    assert st["fits"] == 0  # no chains: nothing to launch
