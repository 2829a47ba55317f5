"""The tempered op family (gensample.ops.tempered) through the torch backend (the spec).

* tempered_sweeps with a zero base is gibbs_sweeps: bit for bit on the same seed, at
  beta = 1 and at an intermediate beta (the recipe adds (1 - beta) * 0).
* beta = 0 samples the base exactly: visible units Bernoulli(sigmoid(b_A)) (or N(b, sigma^2)),
  hidden units Bernoulli(1/2), independent (z-tests and a chi-square of the joint pattern).
* p_beta is stationary at an intermediate beta, per chain: chains started from the exact
  tempered marginal (enumerated from tempered_log_density), 3 sweeps, chi-square of the
  visible histogram per temperature; Gaussian-Bernoulli: moments against the exact mixture.
* ais_rbm: with a constant schedule its final states are those of tempered_sweeps (same
  stream layout) and its log-weights are exactly 0; one step's log-weight is the
  float64 tempered_log_density difference up to float32 softplus rounding.
* tempered_log_density at beta = 1 is -free_energy; base_log_partition.
* opcheck of the torch custom ops, torch.compile(fullgraph=True) through backend="torch",
  bad input.

False-failure rate of every statistical test: 1e-4 (Bonferroni over its sub-tests).
"""
import math

import pytest
import torch

import gensample
from gensample import random as R
from gensample.models.rbm import binary_states
from gensample.ops import gibbs_sweeps
from gensample.ops import tempered as T
from gensample.ops.gibbs import sigmoid_f32

from conftest import z_bonferroni

pytestmark = pytest.mark.usefixtures("one_thread")
ops = torch.ops.gensample
F64 = torch.float64
RATE = 1e-4


def gen(s):
    return torch.Generator().manual_seed(s)


def binary(*shape, g, p=0.4):
    return (torch.rand(shape, generator=g) < p).float()


def rbm(nv, nh, scale, g):
    return (torch.randn(nv, nh, generator=g) * scale, torch.randn(nv, generator=g) * 0.5,
            torch.randn(nh, generator=g) * 0.5)


def _chi2_ppf(df):
    from scipy.stats import chi2

    return chi2.ppf(1 - RATE, df)


# ----------------------------------------------------------------------------
# equals gibbs_sweeps
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [1.0, 0.375])
@pytest.mark.parametrize("k", [0, 1, 4])
def test_zero_base_is_gibbs_sweeps(beta, k):
    g = gen(1)
    W, b, c = rbm(9, 6, 1.0, g)
    v = binary(13, 9, g=g)
    vk, hk, ak = T.tempered_sweeps(v, W, b, c, beta=beta, k=k, generator=gen(5), backend="torch")
    gv, gh, gp = gibbs_sweeps(v, W, b, c, k=k, beta=beta, return_hidden_prob=True, generator=gen(5), backend="torch")
    assert torch.equal(vk, gv) and torch.equal(hk, gh)
    assert torch.equal(sigmoid_f32(ak * beta), gp)
    torch.testing.assert_close(ak, c + vk @ W)  # the untempered pre-activation at v_k
    # a per-chain beta vector with equal entries is the same chain
    vk2, hk2, _ = T.tempered_sweeps(v, W, b, c, beta=torch.full((13,), beta), k=k, generator=gen(5), backend="torch")
    assert torch.equal(vk2, vk) and torch.equal(hk2, hk)


def test_float64_inputs_round_trip():
    g = gen(2)
    W, b, c = rbm(5, 4, 1.0, g)
    v = binary(6, 5, g=g)
    out32 = T.tempered_sweeps(v, W, b, c, beta=0.5, k=2, generator=gen(3), backend="torch")
    out64 = T.tempered_sweeps(v.double(), W.double(), b.double(), c.double(), beta=0.5, k=2, generator=gen(3),
                              backend="torch")
    for x, y in zip(out32, out64):
        assert y.dtype == F64 and torch.equal(x.double(), y)


# ----------------------------------------------------------------------------
# beta = 0 samples the base
# ----------------------------------------------------------------------------
def test_beta_zero_samples_bernoulli_base():
    g = gen(4)
    nv, nh, B = 6, 5, 20000
    W, b, c = rbm(nv, nh, 2.0, g)
    base = torch.tensor([-2.0, -0.5, 0.0, 0.4, 1.0, 2.5])
    v0 = binary(B, nv, g=g, p=0.9)  # far from the base: one sweep must forget it
    vk, hk, _ = T.tempered_sweeps(v0, W, b, c, beta=0.0, k=1, visible_base=base, generator=gen(6), backend="torch")
    p = torch.cat([torch.sigmoid(base.double()), torch.full((nh,), 0.5, dtype=F64)])
    x = torch.cat([vk, hk], 1).double()
    z = (x.mean(0) - p) / (p * (1 - p) / B).sqrt()
    zc = z_bonferroni(nv + nh + 1, RATE)
    assert bool((z.abs() <= zc).all()), z
    # independence: the joint pattern of (v_0, v_5, h_0, h_1) against the product law
    cols = x[:, [0, 5, nv, nv + 1]]
    idx = (cols.long() * torch.tensor([1, 2, 4, 8])).sum(1)
    counts = torch.bincount(idx, minlength=16).double()
    pc = p[[0, 5, nv, nv + 1]]
    states = binary_states(4)
    expected = B * (states * pc + (1 - states) * (1 - pc)).prod(1)
    stat = float(((counts - expected) ** 2 / expected).sum())
    from scipy.stats import chi2

    assert stat < chi2.ppf(1 - RATE / (nv + nh + 1), 15), stat


def test_beta_zero_samples_gaussian_base():
    g = gen(7)
    nv, nh, B = 4, 5, 20000
    W, b, c = rbm(nv, nh, 2.0, g)
    sigma = torch.tensor([0.5, 1.0, 1.5, 2.0])
    v0 = torch.randn(B, nv, generator=g) * 5 + 3
    vk, hk, _ = T.tempered_sweeps(v0, W, b, c, beta=0.0, k=1, sigma=sigma, generator=gen(8), backend="torch")
    zc = z_bonferroni(2 * nv + nh, RATE)
    vd = vk.double()
    zm = (vd.mean(0) - b.double()) / (sigma.double() / math.sqrt(B))
    # variance: var of the sample variance of a normal is 2 sigma^4 / (B - 1)
    zv = (vd.var(0) - sigma.double() ** 2) / (sigma.double() ** 2 * math.sqrt(2 / (B - 1)))
    zh = (hk.double().mean(0) - 0.5) / math.sqrt(0.25 / B)
    assert bool((torch.cat([zm, zv, zh]).abs() <= zc).all()), (zm, zv, zh)


# ----------------------------------------------------------------------------
# stationarity at intermediate temperatures
# ----------------------------------------------------------------------------
def _tempered_marginal(W, b, c, beta, base):
    nv = W.shape[0]
    V = binary_states(nv)
    a = c.double() + V @ W.double()
    lp = T.tempered_log_density(V, a, beta, b, visible_base=base)
    return V, torch.softmax(lp, 0)


def test_stationary_at_intermediate_beta_per_chain():
    g = gen(9)
    nv, nh, B = 5, 4, 16000
    W, b, c = rbm(nv, nh, 1.5, g)
    base = torch.randn(nv, generator=g)
    betas = (0.3, 0.8)
    starts, beta_vec, probs = [], [], []
    for i, beta in enumerate(betas):
        V, p = _tempered_marginal(W, b, c, beta, base)
        idx = torch.multinomial(p, B // 2, replacement=True, generator=gen(20 + i))
        starts.append(V[idx].float())
        beta_vec.append(torch.full((B // 2,), beta))
        probs.append(p)
    v0, beta = torch.cat(starts), torch.cat(beta_vec)
    vk, _, _ = T.tempered_sweeps(v0, W, b, c, beta=beta, k=3, visible_base=base, generator=gen(10), backend="torch")
    limit = _chi2_ppf(2**nv - 1)
    for i, p in enumerate(probs):
        part = vk[i * (B // 2):(i + 1) * (B // 2)]
        counts = torch.bincount((part.long() * (1 << torch.arange(nv))).sum(1), minlength=2**nv).double()
        expected = (B // 2) * p
        stat = float(((counts - expected) ** 2 / expected).sum())
        assert stat < limit, (betas[i], stat, limit)
    # and the wrong temperature is detected: the beta = 0.3 chains do not follow p_0.8
    counts = torch.bincount((vk[: B // 2].long() * (1 << torch.arange(nv))).sum(1), minlength=2**nv).double()
    assert float(((counts - (B // 2) * probs[1]) ** 2 / ((B // 2) * probs[1])).sum()) > limit


def test_gaussian_stationary_at_intermediate_beta():
    g = gen(11)
    nv, nh, B, beta = 3, 4, 20000, 0.6
    W, b, c = rbm(nv, nh, 1.0, g)
    sigma = torch.tensor([0.7, 1.0, 1.3])
    # exact p_beta(v): mixture over h of N(b + sigma beta W h, sigma^2) with weights
    # exp(beta c.h + sum_i (beta b_i a_i / sigma_i + beta^2 a_i^2 / 2)), a = W h
    H = binary_states(nh)
    a = H @ W.double().t()
    s, b64 = sigma.double(), b.double()
    w = torch.softmax(beta * (H @ c.double()) + (beta * a * (b64 / s) + 0.5 * beta**2 * a * a).sum(-1), 0)
    means = b64 + s * beta * a
    idx = torch.multinomial(w, B, replacement=True, generator=gen(12))
    v0 = (means[idx] + s * torch.randn(B, nv, generator=gen(13), dtype=F64)).float()
    vk, _, _ = T.tempered_sweeps(v0, W, b, c, beta=beta, k=3, sigma=sigma, generator=gen(14), backend="torch")
    mean = w @ means
    var = w @ (means - mean) ** 2 + s**2
    z = (vk.double().mean(0) - mean) / (var / B).sqrt()
    assert bool((z.abs() <= z_bonferroni(nv, RATE)).all()), z


# ----------------------------------------------------------------------------
# ais_rbm
# ----------------------------------------------------------------------------
def test_ais_constant_schedule_is_tempered_sweeps():
    g = gen(15)
    W, b, c = rbm(7, 5, 1.0, g)
    base = torch.randn(7, generator=g)
    v = binary(11, 7, g=g)
    for K in (1, 4):
        betas = torch.full((K + 1,), 0.625)
        log_w, vK = T.ais_rbm(v, W, b, c, betas=betas, visible_base=base, generator=gen(16), backend="torch")
        vs, _, _ = T.tempered_sweeps(v, W, b, c, beta=0.625, k=K, visible_base=base, generator=gen(16),
                                     backend="torch")
        assert torch.equal(vK, vs) and log_w.dtype == F64
        assert torch.equal(log_w, torch.zeros(11, dtype=F64))
    log_w, v0 = T.ais_rbm(v, W, b, c, betas=torch.tensor([0.5]), generator=gen(16), backend="torch")
    assert torch.equal(v0, v) and v0.data_ptr() != v.data_ptr() and torch.equal(log_w, torch.zeros(11, dtype=F64))


@pytest.mark.parametrize("gaussian", [False, True])
def test_ais_one_step_log_weight(gaussian):
    g = gen(17)
    W, b, c = rbm(6, 5, 1.0, g)
    kw = dict(sigma=torch.rand(6, generator=g) + 0.5) if gaussian else dict(visible_base=torch.randn(6, generator=g))
    v = torch.randn(9, 6, generator=g) if gaussian else binary(9, 6, g=g)
    b0, b1 = 0.25, 0.75
    log_w, _ = T.ais_rbm(v, W, b, c, betas=torch.tensor([b0, b1]), generator=gen(18), backend="torch", **kw)
    x = v / kw["sigma"] if gaussian else v
    a = c.double() + x.double() @ W.double()
    ref = (T.tempered_log_density(v, a, b1, b, **kw) - T.tempered_log_density(v, a, b0, b, **kw))
    # float32 a, t and softplus: |error| <= a few ulp of each softplus value (<= 16) per unit
    torch.testing.assert_close(log_w, ref, rtol=0, atol=5 * 2**-20 * 5)


def test_ais_reverse_schedule_runs_and_is_reproducible():
    g = gen(19)
    W, b, c = rbm(6, 4, 1.0, g)
    v = binary(8, 6, g=g)
    betas = torch.linspace(1, 0, 20)
    a = T.ais_rbm(v, W, b, c, betas=betas, generator=gen(1), backend="torch")
    b2 = T.ais_rbm(v, W, b, c, betas=betas, generator=gen(1), backend="torch")
    assert torch.equal(a[0], b2[0]) and torch.equal(a[1], b2[1])
    assert bool(torch.isfinite(a[0]).all()) and bool(((a[1] == 0) | (a[1] == 1)).all())


# ----------------------------------------------------------------------------
# densities
# ----------------------------------------------------------------------------
def test_tempered_log_density_at_one_is_minus_free_energy():
    g = gen(21)
    m = gensample.BernoulliRBM(7, 5, init_std=1.0, generator=g, dtype=F64)
    v = binary(10, 7, g=g).double()
    a = m.hidden_bias.detach() + v @ m.weight.detach()
    base = torch.randn(7, generator=g, dtype=F64)
    for vb in (None, base):  # the base cancels at beta = 1
        lp = T.tempered_log_density(v, a, 1.0, m.visible_bias.detach(), visible_base=vb)
        torch.testing.assert_close(lp, -m.free_energy(v).detach(), rtol=1e-12, atol=1e-12)
    gm = gensample.GaussianBernoulliRBM(4, 5, sigma=torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=F64), init_std=1.0,
                                        generator=g, dtype=F64)
    x = torch.randn(6, 4, generator=g, dtype=F64)
    a = gm.hidden_bias.detach() + (x / gm.sigma.detach()) @ gm.weight.detach()
    lp = T.tempered_log_density(x, a, 1.0, gm.visible_bias.detach(), sigma=gm.sigma.detach())
    torch.testing.assert_close(lp, -gm.free_energy(x).detach(), rtol=1e-12, atol=1e-12)
    # per-chain beta
    a2 = torch.randn(10, 5, dtype=F64, generator=g)
    lp2 = T.tempered_log_density(v, a2, torch.full((10,), 0.5), base)  # zero base, visible bias `base`
    ref = 0.5 * (v @ base) + torch.nn.functional.softplus(0.5 * a2).sum(-1)
    torch.testing.assert_close(lp2, ref)


def test_base_log_partition():
    # the base model's Z: enumerate it
    base = torch.tensor([-1.0, 0.5, 2.0])
    V = binary_states(3)
    ref = float(torch.logsumexp(V @ base.double(), 0)) + 4 * math.log(2)
    assert T.base_log_partition(4, visible_base=base) == pytest.approx(ref, abs=1e-12)
    assert T.base_log_partition(4, n_visible=3) == pytest.approx(7 * math.log(2), abs=1e-12)
    s = torch.tensor([0.5, 2.0])
    assert T.base_log_partition(2, sigma=s) == pytest.approx(math.log(2 * math.pi) + 2 * math.log(2), abs=1e-12)
    assert T.base_log_partition(2, sigma=0.5, n_visible=2) == pytest.approx(
        2 * math.log(0.5 * math.sqrt(2 * math.pi)) + 2 * math.log(2), abs=1e-12)
    with pytest.raises(ValueError, match="n_visible"):
        T.base_log_partition(2, sigma=0.5)


# ----------------------------------------------------------------------------
# opcheck and torch.compile
# ----------------------------------------------------------------------------
def test_opcheck_torch_ops():
    g = gen(23)
    W, b, c = rbm(7, 5, 1.0, g)
    v = binary(3, 7, g=g)
    base = torch.randn(7, generator=g)
    beta = torch.tensor([0.0, 0.5, 1.0])
    seed = R.seed_pair(3, 1)
    sig = torch.rand(7, generator=g) + 0.5
    torch.library.opcheck(ops.tempered_sweeps_torch, (v, W, b, c, base, beta, None, seed, 2))
    torch.library.opcheck(ops.tempered_sweeps_torch, (v, W, b, c, torch.zeros(7), beta, sig, seed, 0))
    betas = torch.linspace(0, 1, 5)
    torch.library.opcheck(ops.ais_rbm_torch, (v, W, b, c, base, betas, None, seed))
    torch.library.opcheck(ops.ais_rbm_torch, (torch.randn(3, 7, generator=g), W, b, c, torch.zeros(7), betas, sig,
                                              seed))


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    g = gen(24)
    W, b, c = rbm(6, 4, 1.0, g)
    v = binary(5, 6, g=g)
    beta = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])

    def f(v, W, b, c, beta):
        vk, hk, ak = T.tempered_sweeps(v, W, b, c, beta=beta, k=2, backend="torch")
        log_w, vK = T.ais_rbm(v, W, b, c, betas=torch.linspace(0, 1, 4), backend="torch")
        return vk, hk, ak * 2.0, log_w, vK  # seeds come from torch's default generator

    # fullgraph=True: dynamo must trace both ops without a graph break (their fake
    # implementations give the output metadata); aot_eager keeps the test short on this
    # 2-core machine (inductor codegen adds ~30 s and tests nothing about the ops)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.manual_seed(0)
    e = f(v, W, b, c, beta)
    torch.manual_seed(0)
    out = compiled(v, W, b, c, beta)
    for x, y in zip(out, e):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)
    assert torch.equal(out[0], e[0]) and torch.equal(out[1], e[1]) and torch.equal(out[4], e[4])


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------
def test_bad_input():
    g = gen(25)
    W, b, c = rbm(5, 3, 1.0, g)
    v = binary(4, 5, g=g)
    kw = dict(backend="torch")
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\]"):
        T.tempered_sweeps(v, W, b, c, beta=torch.tensor([0.5, 1.5, 0.2, 0.1]), k=1, **kw)
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\]"):
        T.tempered_sweeps(v, W, b, c, beta=2.0, k=1, **kw)
    with pytest.raises(ValueError, match="beta"):
        T.tempered_sweeps(v, W, b, c, beta=-0.5, k=1, **kw)
    with pytest.raises(ValueError, match=r"beta must have shape \(4,\)"):
        T.tempered_sweeps(v, W, b, c, beta=torch.ones(3), k=1, **kw)
    with pytest.raises(ValueError, match="k must be >= 0"):
        T.tempered_sweeps(v, W, b, c, beta=1.0, k=-1, **kw)
    with pytest.raises(ValueError, match="binary"):
        T.tempered_sweeps(v * 0.5, W, b, c, beta=1.0, k=1, **kw)
    with pytest.raises(ValueError, match="visible_base applies to Bernoulli"):
        T.tempered_sweeps(v, W, b, c, beta=1.0, k=1, visible_base=torch.zeros(5), sigma=1.0, **kw)
    with pytest.raises(ValueError, match="visible_base"):
        T.tempered_sweeps(v, W, b, c, beta=1.0, k=1, visible_base=torch.zeros(4), **kw)
    with pytest.raises(ValueError, match="hidden_bias"):
        T.tempered_sweeps(v, W, b, torch.zeros(4), beta=1.0, k=1, **kw)
    with pytest.raises(ValueError, match="2-D"):
        T.tempered_sweeps(v[0], W, b, c, beta=1.0, k=1, **kw)
    with pytest.raises(TypeError, match="dtype"):
        T.tempered_sweeps(v.double(), W, b, c, beta=1.0, k=1, **kw)
    with pytest.raises(ValueError, match="weight"):
        T.tempered_sweeps(v, W.clone().fill_(float("nan")), b, c, beta=1.0, k=1, **kw)
    with pytest.raises(ValueError, match=r"betas must lie in \[0, 1\]"):
        T.ais_rbm(v, W, b, c, betas=torch.tensor([0.0, 1.5]), **kw)
    with pytest.raises(ValueError, match="betas must be 1-D"):
        T.ais_rbm(v, W, b, c, betas=torch.zeros(2, 2), **kw)
    with pytest.raises(ValueError, match="betas must be 1-D"):
        T.ais_rbm(v, W, b, c, betas=torch.zeros(0), **kw)
    with pytest.raises(TypeError, match="betas"):
        T.ais_rbm(v, W, b, c, betas=torch.zeros(3, dtype=torch.int64), **kw)
    with pytest.raises(ValueError, match="backend"):
        T.ais_rbm(v, W, b, c, betas=torch.zeros(3), backend="fortran")
