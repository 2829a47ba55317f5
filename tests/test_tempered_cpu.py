"""The cpu backend of the tempered ops (tempered_sweeps, ais_rbm) against the torch backend.

* Exactness: with binary states and dyadic weights/biases (multiples of 2^-6, |w| <= 2)
  every binary GEMM is exact in any summation order, the Gaussian hidden GEMM is the very
  at::mm call the torch backend makes, and the sigmoid, the recipe and the streams are
  bit-exact by construction: the states (and a_k) equal the torch backend's bit for bit,
  for Bernoulli (uniform base and a visible_base) and Gaussian visible units, per-chain
  betas including 0 and 1, k = 0, 1, 3, awkward widths and batches, on every GEMM path
  (tables, row sums, at::mm: forced with GENSAMPLE_CPU_TEMPERED_GEMM) and block size.
* AIS log-weights: within a bound derived from float32 rounding of the softplus terms
  (each backend has its own float32 exp/log1p; sums in float64).
* Random float weights: a different summation order moves a pre-activation by a few ulp,
  which flips a draw only when the uniform falls within that distance of p: a small
  fraction of states differ (asserted < 1e-4).
* Thread-count independence, opcheck, torch.compile(fullgraph=True) through the cpu backend.
"""
import pytest
import torch

import gensample
from gensample import random as R
from gensample.ops import tempered as T

from conftest import check_equal, gen
from conftest import bernoulli_states as binary
from conftest import dyadic_grid as dyadic

ops = torch.ops.gensample

pytestmark = pytest.mark.skipif(
    gensample._backend.unavailable_reason("cpu", "cpu") is not None or not T._cpp_ops_defined(),
    reason="no cpu backend with the tempered kernels")

# GEMM paths, forced: small-layer tables, binary row sums (the default kernel: bit masks,
# chains 2k and 2k + 1 sharing the rows both have on), binary row sums from index lists,
# grouped tables (4-unit patterns, tile packed), at::mm for the hidden GEMM
PATHS = ["lut", "rowsum", "list", "grouped", "mm"]
ENV = {"lut": ("lut", "0", ""), "rowsum": ("rowsum", "0", ""), "list": ("rowsum", "0", "list"),
       "grouped": ("rowsum", "1", ""), "mm": ("mm", "0", "")}


def betas_with_ends(B, g):
    beta = torch.rand(B, generator=g)
    beta[0::3] = 0.0
    beta[1::3] = 1.0
    return beta


# (n_visible, n_hidden, batch): widths that are not multiples of 8 (one more than a
# 64-column tile, a 64-row chunk), batches 1, 3, 67, 200
SHAPES = [(7, 5, 3), (13, 21, 1), (70, 45, 67), (131, 67, 200)]
KINDS = ["bernoulli", "base", "gaussian"]


def model(nv, nh, kind, g):
    W, b, c = dyadic(nv, nh, g=g), dyadic(nv, g=g), dyadic(nh, g=g)
    extra = {}
    if kind == "base":
        extra["visible_base"] = torch.randn(nv, generator=g)
    elif kind == "gaussian":
        extra["sigma"] = torch.rand(nv, generator=g) + 0.5
    return W, b, c, extra


def start(B, nv, kind, g):
    return torch.randn(B, nv, generator=g) if kind == "gaussian" else binary(B, nv, g=g)


def force_path(monkeypatch, path):
    gemm, grouped, kernel = ENV[path]
    monkeypatch.setenv("GENSAMPLE_CPU_TEMPERED_GEMM", gemm)
    monkeypatch.setenv("GENSAMPLE_CPU_TEMPERED_GROUPED", grouped)
    monkeypatch.setenv("GENSAMPLE_CPU_TEMPERED_KERNEL", kernel)


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    force_path(monkeypatch, request.param)
    return request.param


def block_env(monkeypatch, B):
    # default blocks (B = 200: 64-chain blocks and a partial one), 8 chains per block for
    # B = 67 (nine blocks, a partial last one)
    monkeypatch.setenv("GENSAMPLE_CPU_TEMPERED_BLOCK", "8" if B == 67 else "")
    return "8" if B == 67 else "default"


def skip_gaussian_mm(path, kind):
    if kind == "gaussian" and path == "mm":
        pytest.skip("Gaussian visible units always take the mm path: covered by the other parametrizations")


@pytest.mark.parametrize("kind", KINDS)
def test_sweeps_match_torch_bit_for_bit(path, kind, monkeypatch):
    skip_gaussian_mm(path, kind)
    for i, (nv, nh, B) in enumerate(SHAPES):
        g = gen(100 + i)
        W, b, c, extra = model(nv, nh, kind, g)
        v = start(B, nv, kind, g)
        beta = betas_with_ends(B, g)
        blk = block_env(monkeypatch, B)
        for k in (0, 1, 3):
            ref = T.tempered_sweeps(v, W, b, c, beta=beta, k=k, generator=gen(9 + k), backend="torch", **extra)
            out = T.tempered_sweeps(v, W, b, c, beta=beta, k=k, generator=gen(9 + k), backend="cpu", **extra)
            for name, x, y in zip(("v", "h", "a"), out, ref):
                check_equal(x, y, f"{name} {kind} {nv}x{nh} B={B} k={k} path={path} block={blk}")


def logw_tol(W, c, K):
    # Each float32 softplus is within a few ulp of the true value on both backends (ours:
    # exp_neg + Cephes log; torch: its own expf/log1pf), |softplus(t)| <= 1 + |a| with
    # |a| <= amax. Per step and hidden unit two terms, each off by at most ~4 ulp = 2^-21
    # relative: |dlog_w| <= 2 K n_h 2^-21 (1 + amax). (The float64 sums in different orders
    # add ~1e-16 relative.) Typical differences are far below this worst case.
    amax = float((W.abs().sum(0) + c.abs()).max())
    return 2 * K * W.shape[1] * 2.0**-21 * (1 + amax)


@pytest.mark.parametrize("kind", KINDS)
def test_ais_matches_torch(path, kind, monkeypatch):
    skip_gaussian_mm(path, kind)
    for i, (nv, nh, B) in enumerate(SHAPES):
        g = gen(200 + i)
        W, b, c, extra = model(nv, nh, kind, g)
        v = start(B, nv, kind, g)
        blk = block_env(monkeypatch, B)
        forward = torch.tensor([0.0, 0.1, 0.37, 0.5, 0.9, 1.0])
        schedules = [forward, forward.flip(0)]  # K = 5: forward and reverse AIS
        if i == 0:
            schedules += [forward[:1], forward[:2]]  # K = 0, 1
        for betas in schedules:
            K = betas.numel() - 1
            ref_w, ref_v = T.ais_rbm(v, W, b, c, betas=betas, generator=gen(5), backend="torch", **extra)
            out_w, out_v = T.ais_rbm(v, W, b, c, betas=betas, generator=gen(5), backend="cpu", **extra)
            what = f"{kind} {nv}x{nh} B={B} K={K} path={path} block={blk}"
            check_equal(out_v, ref_v, "v_K " + what)
            assert out_w.dtype == torch.float64 and out_w.shape == (B,)
            err = float((out_w - ref_w).abs().max())
            assert err <= logw_tol(W, c, K), f"log_w {what}: max |diff| {err}"


def test_ais_log_weights_are_the_float64_sum(monkeypatch):
    # one step from beta_0 to beta_1 with beta_0 = 0: log_w = sum_j softplus(beta_1 a_j)
    # + beta_1 (b - b_A) . v, against a float64 evaluation (tempered_log_density)
    g = gen(3)
    nv, nh, B = 50, 37, 20
    W, b, c = torch.randn(nv, nh, generator=g) * 0.3, torch.randn(nv, generator=g), torch.randn(nh, generator=g)
    base = torch.randn(nv, generator=g)
    v = binary(B, nv, g=g)
    betas = torch.tensor([0.0, 0.75])
    log_w, _ = T.ais_rbm(v, W, b, c, betas=betas, visible_base=base, generator=gen(1), backend="cpu")
    a = v @ W + c
    ref = (T.tempered_log_density(v, a, 0.75, b, visible_base=base)
           - T.tempered_log_density(v, a, 0.0, b, visible_base=base))
    assert float((log_w - ref).abs().max()) < 1e-5


@pytest.mark.parametrize("steps", [(0.5, 0.5 + 2.0**-10), (0.9, 0.9 - 2.0**-12), (0.25, 0.25)])
def test_ais_small_steps_use_the_taylor_increment(steps):
    # Steps with |a (beta_1 - beta_0)| <= 1/64 take the cubic Taylor series of
    # softplus(t) - softplus(t - dt) (tempered_cpu.cpp): its truncation error is below
    # 3.2e-10 per unit and its float32 evaluation is relative to the small increment, so
    # one step's log-weight matches a float64 evaluation to ~1e-8 here, where the
    # difference of two float32 softplus values (|t| up to ~8) is off by up to ~1e-6 per
    # unit. Dyadic weights: a = c + v W is exact in both. Forward, reverse and zero step.
    g = gen(31)
    nv, nh, B = 40, 296, 16  # 9 vectors of 32 and one of 8: no scalar tail
    W, b, c = dyadic(nv, nh, g=g, lim=8), dyadic(nv, g=g), dyadic(nh, g=g)
    v = binary(B, nv, g=g, p=0.5)
    b0, b1 = steps
    betas = torch.tensor([b0, b1])
    a = v @ W + c
    assert float((a * (b1 - b0)).abs().max()) <= 1 / 64  # every vector takes the series
    log_w, _ = T.ais_rbm(v, W, b, c, betas=betas, generator=gen(2), backend="cpu")
    ref = (T.tempered_log_density(v.double(), a.double(), b1, b.double())
           - T.tempered_log_density(v.double(), a.double(), b0, b.double()))
    err = float((log_w - ref).abs().max())
    assert err <= nh * 1e-10, f"max |log_w - float64| = {err}"


@pytest.mark.parametrize("gemm", ["rowsum", "mm"])
def test_random_float_weights_rarely_flip_a_state(monkeypatch, gemm):
    force_path(monkeypatch, gemm)
    # The row sums add W's rows in another order than MKL's sgemm: pre-activations differ by
    # a few ulp (~1e-6 here), and a draw differs only if u falls in between, probability
    # ~ 0.25 |dt| ~ 1e-7 per draw; a flipped chain then follows its own path. With ~7e3
    # draws per chain below, the expected fraction of differing states is ~1e-4 at most
    # (typically 0: asserted < 1e-4 of the states).
    g = gen(11)
    nv, nh, B = 100, 70, 48
    W, b, c = torch.randn(nv, nh, generator=g) * 0.2, torch.randn(nv, generator=g), torch.randn(nh, generator=g)
    v = binary(B, nv, g=g)
    betas = torch.linspace(0, 1, 41)
    ref_w, ref_v = T.ais_rbm(v, W, b, c, betas=betas, generator=gen(2), backend="torch")
    out_w, out_v = T.ais_rbm(v, W, b, c, betas=betas, generator=gen(2), backend="cpu")
    frac = float((ref_v != out_v).float().mean())
    assert frac < 1e-4, frac
    same = (ref_v == out_v).all(1)
    assert float((ref_w - out_w)[same].abs().max()) <= logw_tol(W, c, 40)
    beta = betas_with_ends(B, g)
    ref = T.tempered_sweeps(v, W, b, c, beta=beta, k=3, generator=gen(4), backend="torch")
    out = T.tempered_sweeps(v, W, b, c, beta=beta, k=3, generator=gen(4), backend="cpu")
    for x, y in zip(out[:2], ref[:2]):
        assert float((x != y).float().mean()) < 1e-4
    assert torch.allclose(out[2], ref[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gemm", PATHS)
def test_results_do_not_depend_on_thread_count(monkeypatch, gemm):
    # each chain's sums and draws are fixed by its row: any split over threads (the block
    # size follows the thread count) gives the same bits, with random float weights
    force_path(monkeypatch, gemm)
    g = gen(19)
    n0 = torch.get_num_threads()
    try:
        for nv, nh, kind in [(40, 24, "base"), (150, 100, "bernoulli"), (40, 24, "gaussian")]:
            W, b, c = torch.randn(nv, nh, generator=g), torch.randn(nv, generator=g), torch.randn(nh, generator=g)
            extra = {"sigma": torch.rand(nv, generator=g) + 0.5} if kind == "gaussian" else {}
            if kind == "base":
                extra["visible_base"] = torch.randn(nv, generator=g)
            v = start(61, nv, kind, g)
            beta = betas_with_ends(61, g)
            outs = []
            for t in (1, 2):
                torch.set_num_threads(t)
                s = T.tempered_sweeps(v, W, b, c, beta=beta, k=3, generator=gen(3), backend="cpu", **extra)
                a = T.ais_rbm(v, W, b, c, betas=torch.linspace(0, 1, 16), generator=gen(3), backend="cpu", **extra)
                outs.append((*s, *a))
            assert all(torch.equal(x, y) for x, y in zip(*outs)), (nv, nh, kind, gemm)
    finally:
        torch.set_num_threads(n0)


def test_non_binary_start_with_check_binary_false():
    # v_0 need not be binary (check_binary=False): the first hidden GEMM is a real one
    g = gen(23)
    nv, nh, B = 70, 45, 9
    W, b, c = dyadic(nv, nh, g=g), dyadic(nv, g=g), dyadic(nh, g=g)
    v = binary(B, nv, g=g)
    v[::2, 3] = 0.5  # dyadic too: the GEMM stays exact
    beta = betas_with_ends(B, g)
    ref = T.tempered_sweeps(v, W, b, c, beta=beta, k=2, check_binary=False, generator=gen(1), backend="torch")
    out = T.tempered_sweeps(v, W, b, c, beta=beta, k=2, check_binary=False, generator=gen(1), backend="cpu")
    for name, x, y in zip("vha", out, ref):
        check_equal(x, y, name)
    betas = torch.tensor([0.0, 0.5, 1.0])
    ref_w, ref_v = T.ais_rbm(v, W, b, c, betas=betas, check_binary=False, generator=gen(1), backend="torch")
    out_w, out_v = T.ais_rbm(v, W, b, c, betas=betas, check_binary=False, generator=gen(1), backend="cpu")
    check_equal(out_v, ref_v, "v_K")
    assert float((out_w - ref_w).abs().max()) <= logw_tol(W, c, 2)


def test_opcheck():
    g = gen(17)
    W, b, c = torch.randn(7, 5, generator=g), torch.randn(7, generator=g), torch.randn(5, generator=g)
    v = binary(3, 7, g=g)
    seed = R.seed_pair(3, 1)
    base = torch.randn(7, generator=g)
    beta = torch.tensor([0.0, 0.5, 1.0])
    sig = torch.rand(7, generator=g) + 0.5
    torch.library.opcheck(ops.tempered_sweeps, (v, W, b, c, base, beta, None, seed, 2))
    torch.library.opcheck(ops.tempered_sweeps, (torch.randn(3, 7, generator=g), W, b, c, torch.zeros(7), beta, sig,
                                                seed, 1))
    betas = torch.linspace(0, 1, 6)
    torch.library.opcheck(ops.ais_rbm, (v, W, b, c, base, betas, None, seed))
    torch.library.opcheck(ops.ais_rbm, (torch.randn(3, 7, generator=g), W, b, c, torch.zeros(7), betas, sig, seed))


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    g = gen(18)
    W, b, c = dyadic(9, 6, g=g), dyadic(9, g=g), dyadic(6, g=g)
    v = binary(5, 9, g=g)
    beta = betas_with_ends(5, g)
    betas = torch.linspace(0, 1, 5)

    def f(v, W, b, c, beta, betas):
        vk, hk, ak = T.tempered_sweeps(v, W, b, c, beta=beta, k=2, backend="cpu")
        log_w, vK = T.ais_rbm(v, W, b, c, betas=betas, backend="cpu")
        return vk, hk, ak * 2.0 + 1.0, log_w, vK  # exact arithmetic: any fusion gives the same bits

    compiled = torch.compile(f, fullgraph=True, options={"fallback_random": True})
    torch.manual_seed(0)
    e = f(v, W, b, c, beta, betas)
    torch.manual_seed(0)
    out = compiled(v, W, b, c, beta, betas)
    for x, y in zip(out, e):
        assert torch.equal(x, y)


def test_zero_width_layers():
    for nv, nh in [(5, 0), (0, 4)]:
        W, b, c = torch.zeros(nv, nh), torch.randn(nv, generator=gen(1)), torch.randn(nh, generator=gen(2))
        v = binary(3, nv, g=gen(3))
        beta = torch.tensor([0.0, 0.5, 1.0])
        ref = T.tempered_sweeps(v, W, b, c, beta=beta, k=2, generator=gen(1), backend="torch")
        out = T.tempered_sweeps(v, W, b, c, beta=beta, k=2, generator=gen(1), backend="cpu")
        assert all(torch.equal(x, y) for x, y in zip(out, ref))
        betas = torch.linspace(0, 1, 4)
        ref_w, ref_v = T.ais_rbm(v, W, b, c, betas=betas, generator=gen(1), backend="torch")
        out_w, out_v = T.ais_rbm(v, W, b, c, betas=betas, generator=gen(1), backend="cpu")
        assert torch.equal(out_v, ref_v) and torch.allclose(out_w, ref_w, rtol=0, atol=1e-5)
