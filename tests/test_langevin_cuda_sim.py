"""The CUDA Langevin kernels' per-thread logic, run on the CPU over a simulated grid.

There is no GPU here, so csrc/cuda/langevin_cuda.cu cannot run; its per-thread
programs live in csrc/include/gensample/kernels/langevin_thread.h, and
tests/cuda_sim/langevin_sim_driver.cpp (g++, AddressSanitizer + UBSan) calls them for
every (blockIdx, threadIdx) of the launches the .cu makes (same launch-configuration
functions; SM count given), doing the block reductions itself. Checked here:

* langevin_step (in place or not): bit-identical to the torch backend
  (``gensample::langevin_step_torch``) for clip modes none/value, with and without
  clamp, shared (stride-0) or per-chain step/noise; norm clip and grad_norm within
  rtol 1e-6 (other summation order), including chains split into segments;
* mala_accept_: decisions, state, gradient and energy equal the torch backend's;
  log_alpha within rtol 1e-6; only accepted rows of x/grad are written;
* sgld_step_: bit-identical to the torch backend, lists longer than one launch's table;
* every output element written exactly once (outputs start as NaN), no store outside
  the outputs, no misaligned vector access, vector paths taken when aligned and scalar
  paths when not, no out-of-bounds read (ASan).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gensample  # noqa: F401  (registers the torch-backend spec ops)
from cuda_sim_support import (H100_SMS, VEC, blob, check_base, check_once, decode, driver_fixture, f32_word,
                              requires_cxx, run_driver)
from gensample import random as R
from gensample.ops import langevin as L

pytestmark = requires_cxx

ops = torch.ops.gensample
INF = math.inf
STEP_STATS = ("blocks", "threads", "vec", "per_chain", "nseg", "reduce_blocks", "bad_config")
MALA_STATS = ("nseg", "reduce_blocks", "select_blocks", "vec", "bad_config")
SGLD_MAX_TENSORS = 48  # kSgldMaxTensors


sim = driver_fixture("langevin_sim_driver.cpp", "gs_lsim", torch_includes=True, werror=True)


def assert_bits(got, want, what):
    assert got.shape == want.shape, (what, got.shape, want.shape)
    bad = (got.view(torch.int32) != want.view(torch.int32)).nonzero()
    assert bad.numel() == 0, (f"{what}: {bad.shape[0]} of {got.numel()} elements differ, first at "
                              f"{bad[:3].tolist()}: {got[tuple(bad[0])].item()!r} vs {want[tuple(bad[0])].item()!r}")


# ----------------------------------------------------------------------------------
# langevin_step
# ----------------------------------------------------------------------------------
def run_step(sim, tmp_path, *, C, M, mode, clamp=True, per_chain=True, in_place=False, in_shift=0, out_shift=0,
             sms=H100_SMS, seed=(0x0123456789ABCDEF, 2**32 - 3), seed_stride=1, clip=1.25, want_norm=False,
             gen_seed=0):
    gen = torch.Generator().manual_seed(gen_seed)
    x = torch.randn(C, M, generator=gen) * 2.0
    g = torch.randn(C, M, generator=gen) * 3.0
    if mode == 2 and C > 1:
        g[0] *= 1e-3  # one chain below the threshold
    if per_chain:
        h = torch.rand(C, generator=gen) * 0.5 + 0.01
        s = torch.rand(C, generator=gen) + 0.1
        hs = ss = 1
    else:
        h, s = torch.full((C,), 0.03), torch.full((C,), 0.7)
        hs = ss = 0
    lo, hi = (-1.5, 2.25) if clamp else (-INF, INF)
    words = [0, C, M, mode, int(clamp), sms, int(in_place), in_shift, out_shift, hs, ss, seed[0], seed[1],
             seed_stride, f32_word(clip), f32_word(lo), f32_word(hi), int(want_norm)]
    blobs = [blob(x), blob(g), blob(h if per_chain else h[:1]), blob(s if per_chain else s[:1])]
    stats, outs = run_driver(sim, words, blobs, tmp_path)
    check_base(stats)
    st = dict(zip(STEP_STATS, stats[3:]))
    assert st["bad_config"] == 0 and st["threads"] == 256
    need_norm = want_norm or mode == 2
    check_once("out", outs[0][1])
    if need_norm:
        check_once("grad_norm", outs[1][1])
    if mode == 2:
        check_once("scale", outs[2][1])
    if st["nseg"] > 1 and need_norm:
        check_once("ws", outs[3][1])
    out = decode(outs[0][0]).view(C, M)
    pair = R.seed_pair(*seed)
    want, want_n = ops.langevin_step_torch(x, g, h, s, pair, clip, mode, lo, hi, want_norm)
    if mode == 2:
        torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
    else:
        assert_bits(out, want, "x'")
    if need_norm:
        torch.testing.assert_close(decode(outs[1][0]), want_n, rtol=1e-6, atol=0)
    return st, stats


SHAPES = [(1, 1), (3, 1), (1, 5), (3, 5), (5, 3), (2, 8), (3, 1003)]


@pytest.mark.parametrize("CM", SHAPES, ids=lambda s: f"C{s[0]}-M{s[1]}")
@pytest.mark.parametrize("mode", [0, 1, 2], ids=["none", "value", "norm"])
@pytest.mark.parametrize("variant", [(True, True, False), (False, False, True)],
                         ids=["clamp-perchain-out", "noclamp-shared-inplace"])
def test_step(sim, tmp_path, CM, mode, variant):
    C, M = CM
    clamp, per_chain, in_place = variant
    st, stats = run_step(sim, tmp_path, C=C, M=M, mode=mode, clamp=clamp, per_chain=per_chain, in_place=in_place,
                         want_norm=(C + M) % 2 == 0, gen_seed=C * 1000 + M)
    assert st["vec"] == 1
    assert st["per_chain"] == int((per_chain and C > 1) or mode == 2)
    if C * M >= 4:
        assert stats[VEC] > 0, "aligned data should move as 4-vectors"


@pytest.mark.parametrize("case", [
    dict(C=3, M=1003, in_shift=1),                   # misaligned x/grad: scalar path
    dict(C=4, M=9, out_shift=1),                     # misaligned output
    dict(C=3, M=5, in_shift=1, in_place=True),
    dict(C=3, M=3001, sms=1),                        # several grid-stride rounds per thread
    dict(C=2, M=77, seed=(2**64 - 1, 2**64 - 7), seed_stride=3),  # counters wrap, strided seed
])
@pytest.mark.parametrize("mode", [1, 2], ids=["value", "norm"])
def test_step_grid_variants(sim, tmp_path, case, mode):
    st, _ = run_step(sim, tmp_path, mode=mode, **case)
    if case.get("in_shift") or case.get("out_shift"):
        assert st["vec"] == 0


@pytest.mark.parametrize("case", [dict(C=1, M=20000), dict(C=3, M=9001, sms=4), dict(C=2, M=16387)])
def test_step_norm_segments(sim, tmp_path, case):
    """Chains too long for one block are split into segments summed by the finalize kernel."""
    st, _ = run_step(sim, tmp_path, mode=2, **case)
    assert st["nseg"] > 1


def test_step_want_norm_without_clip(sim, tmp_path):
    run_step(sim, tmp_path, C=3, M=1003, mode=0, want_norm=True)
    run_step(sim, tmp_path, C=1, M=9000, mode=1, want_norm=True)


@pytest.mark.parametrize("C,M", [(0, 5), (3, 0)])
def test_step_empty(sim, tmp_path, C, M):
    st, _ = run_step(sim, tmp_path, C=C, M=M, mode=0, want_norm=False)
    assert st["blocks"] == 0


# ----------------------------------------------------------------------------------
# MALA
# ----------------------------------------------------------------------------------
def run_mala(sim, tmp_path, *, C, M, per_chain=True, sms=H100_SMS, shift=0, gen_seed=0, h_scale=1.0):
    gen = torch.Generator().manual_seed(gen_seed)
    base = R.seed_pair(0xC0FFEE + gen_seed, 2**32 - 1)
    x = torch.randn(C, M, generator=gen) * 1.3
    g = x.clone()  # E = |x|^2 / 2
    e = 0.5 * x.double().square().sum(1).float()
    if per_chain:
        h = (torch.rand(C, generator=gen) * 1.2 + 0.05) * h_scale
    else:
        h = torch.full((C,), 0.6 * h_scale)
    s = (h.double() * 2.0).sqrt().float()  # sqrt(2h), correctly rounded
    xp, _ = ops.langevin_step_torch(x, g, h, s, R.substream(base, 0), 0.0, 0, -INF, INF, False)
    gp = xp.clone()
    ep = 0.5 * xp.double().square().sum(1).float()
    seed = R.substream(base, 1)
    hs = 1 if per_chain else 0
    words = [1, C, M, sms, shift, hs, hs, int(seed[0]), int(seed[1]), 1]
    blobs = [blob(x), blob(g), blob(xp), blob(gp), blob(e), blob(ep), blob(h if per_chain else h[:1]),
             blob(s if per_chain else s[:1])]
    stats, outs = run_driver(sim, words, blobs, tmp_path)
    check_base(stats)
    st = dict(zip(MALA_STATS, stats[3:]))
    assert st["bad_config"] == 0
    tx, tg, te = x.clone(), g.clone(), e.clone()
    acc_t, la_t = ops.mala_accept__torch(tx, tg, te, xp, gp, ep, h, s, seed)
    ax, ag = decode(outs[0][0]).view(C, M), decode(outs[1][0]).view(C, M)
    ae, acc, la = decode(outs[2][0]), decode(outs[3][0], torch.bool), decode(outs[4][0])
    for name, k in (("energy", 2), ("accepted", 3), ("log_alpha", 4)):
        check_once(name, outs[k][1])
    if st["nseg"] > 1:
        check_once("ws", outs[5][1])
    # x / grad: rows of accepted chains written once, the others never
    want_counts = acc_t[:, None].expand(C, M).reshape(-1).to(torch.int32)
    for name, k in (("x", 0), ("grad", 1)):
        assert torch.equal(outs[k][1], want_counts), f"{name}: rows written other than the accepted ones"
    torch.testing.assert_close(la, la_t, rtol=1e-6, atol=1e-6)
    assert torch.equal(acc, acc_t), f"decisions differ: {acc.tolist()} vs {acc_t.tolist()}"
    assert_bits(ax, tx, "x")
    assert_bits(ag, tg, "grad")
    assert_bits(ae, te, "energy")
    return st, acc


@pytest.mark.parametrize("case", [
    dict(C=1, M=1), dict(C=3, M=5), dict(C=64, M=5), dict(C=37, M=2, per_chain=False), dict(C=6, M=8),
    dict(C=3, M=1003), dict(C=5, M=6, shift=1), dict(C=40, M=12, sms=1),
])
def test_mala(sim, tmp_path, case):
    st, acc = run_mala(sim, tmp_path, gen_seed=case["C"] * 7 + case["M"], **case)
    if case["C"] == 64:
        assert 0 < int(acc.sum()) < 64, "this case should accept some chains and reject others"
    if case.get("shift"):
        assert st["vec"] == 0
    elif case["M"] % 4 == 0:
        assert st["vec"] == 1


def test_mala_segments(sim, tmp_path):
    st, _ = run_mala(sim, tmp_path, C=2, M=20000, gen_seed=3, h_scale=0.003)
    assert st["nseg"] > 1


# ----------------------------------------------------------------------------------
# SGLD
# ----------------------------------------------------------------------------------
def run_sgld(sim, tmp_path, sizes, *, lr=1e-3, noise=0.05, wd=0.01, shift=0, seed=(2**63 + 17, 2**32 - 100),
             gen_seed=0):
    gen = torch.Generator().manual_seed(gen_seed)
    params = [torch.randn(n, generator=gen) for n in sizes]
    grads = [torch.randn(n, generator=gen) * 2 for n in sizes]
    words = [2, len(sizes), *sizes, shift, f32_word(lr), f32_word(noise), f32_word(wd), seed[0], seed[1], 1]
    blobs = []
    for p, g in zip(params, grads):
        blobs += [blob(p), blob(g)]
    stats, outs = run_driver(sim, words, blobs, tmp_path)
    check_base(stats)
    launches, bad = stats[3], stats[4]
    assert bad == 0
    want = [p.clone() for p in params]
    ops.sgld_step__torch(want, grads, lr, noise, wd, R.seed_pair(*seed))
    for k, ((raw, counts), w) in enumerate(zip(outs, want)):
        check_once(f"params[{k}]", counts)
        assert_bits(decode(raw), w, f"params[{k}]")
    return launches, stats


def test_sgld_list(sim, tmp_path):
    launches, stats = run_sgld(sim, tmp_path, [1, 5, 0, 21, 1003, 4, 2049])
    assert launches == 1 and stats[VEC] > 0


def test_sgld_no_weight_decay_misaligned(sim, tmp_path):
    launches, stats = run_sgld(sim, tmp_path, [7, 1030], wd=0.0, shift=1)
    assert launches == 1


def test_sgld_long_list_several_launches(sim, tmp_path):
    sizes = [(k * 7) % 13 for k in range(2 * SGLD_MAX_TENSORS + 5)]  # includes empty tensors
    launches, _ = run_sgld(sim, tmp_path, sizes, gen_seed=4)
    nonempty = sum(1 for n in sizes if n)
    assert 2 <= launches <= math.ceil(len(sizes) / SGLD_MAX_TENSORS) and launches >= math.ceil(
        nonempty / SGLD_MAX_TENSORS)


def test_sgld_empty_list(sim, tmp_path):
    launches, _ = run_sgld(sim, tmp_path, [0, 0])
    assert launches == 0
