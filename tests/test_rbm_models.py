"""BernoulliRBM / GaussianBernoulliRBM: exact quantities against brute-force enumeration,
conditionals against the textbook reference, sampling methods wired to the fused ops,
and input errors.

Everything here is deterministic (float64 enumeration, or the same seed fed to the model
and to the op), so no test has a false-failure rate.
"""
import math

import pytest
import torch

import gensample
from gensample import reference
from gensample.models.rbm import binary_states
from gensample.ops import gaussian_half_step, gibbs_half_step, gibbs_sweeps

from conftest import backend_params

F64 = torch.float64


def _rbm(nv, nh, seed=0, std=1.5, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    m = gensample.BernoulliRBM(nv, nh, init_std=std, generator=g, dtype=dtype)
    with torch.no_grad():
        m.visible_bias.copy_(torch.randn(nv, generator=g, dtype=dtype))
        m.hidden_bias.copy_(torch.randn(nh, generator=g, dtype=dtype))
    return m


def _gbrbm(nv, nh, seed=0, std=0.8, learn_sigma=False, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    sigma = 0.5 + torch.rand(nv, generator=g, dtype=dtype)
    m = gensample.GaussianBernoulliRBM(nv, nh, sigma=sigma, learn_sigma=learn_sigma, init_std=std, generator=g,
                                       dtype=dtype)
    with torch.no_grad():
        m.visible_bias.copy_(torch.randn(nv, generator=g, dtype=dtype))
        m.hidden_bias.copy_(torch.randn(nh, generator=g, dtype=dtype))
    return m


def _energy_loops(m, v, h):
    """E(v, h) written out with explicit sums, one sample at a time."""
    W, b, c = m.weight.detach(), m.visible_bias.detach(), m.hidden_bias.detach()
    out = []
    for vi, hi in zip(v, h):
        e = 0.0
        for i in range(m.n_visible):
            if m.visible_kind == "gaussian":
                s = float(m.sigma[i])
                e += (float(vi[i]) - float(b[i])) ** 2 / (2 * s * s)
            else:
                e -= float(b[i]) * float(vi[i])
        for j in range(m.n_hidden):
            e -= float(c[j]) * float(hi[j])
            for i in range(m.n_visible):
                x = float(vi[i]) / (float(m.sigma[i]) if m.visible_kind == "gaussian" else 1.0)
                e -= x * float(W[i, j]) * float(hi[j])
        out.append(e)
    return torch.tensor(out, dtype=F64)


# ----------------------------------------------------------------------------
# exact quantities
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("gaussian", [False, True], ids=["bernoulli", "gaussian"])
def test_energy_matches_explicit_sums(gaussian):
    m = _gbrbm(4, 3) if gaussian else _rbm(4, 3)
    g = torch.Generator().manual_seed(1)
    v = torch.randn(6, 4, generator=g, dtype=F64) if gaussian else (torch.rand(6, 4, generator=g) < 0.5).to(F64)
    h = (torch.rand(6, 3, generator=g) < 0.5).to(F64)
    torch.testing.assert_close(m.energy(v, h).detach(), _energy_loops(m, v, h), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gaussian", [False, True], ids=["bernoulli", "gaussian"])
def test_free_energy_is_minus_log_sum_over_h(gaussian):
    m = _gbrbm(4, 5) if gaussian else _rbm(4, 5)
    g = torch.Generator().manual_seed(2)
    v = 3 * torch.randn(7, 4, generator=g, dtype=F64) if gaussian else binary_states(4)
    H = binary_states(5)
    e = torch.stack([m.energy(v, h.expand(v.shape[0], 5)) for h in H], 1).detach()
    torch.testing.assert_close(m.free_energy(v).detach(), -torch.logsumexp(-e, 1), rtol=1e-12, atol=1e-12)


def test_free_energy_stable_for_huge_preactivations():
    m = _rbm(3, 2, std=1.0)
    with torch.no_grad():
        m.weight.mul_(1e4)
        m.hidden_bias.fill_(-3e4)
    f = m.free_energy(binary_states(3))
    assert bool(torch.isfinite(f).all())


@pytest.mark.parametrize("nv,nh", [(5, 3), (3, 6), (4, 4)])  # hidden enumerated, visible enumerated, tie
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_log_partition_equals_brute_force(nv, nh, beta):
    m = _rbm(nv, nh, seed=nv * 10 + nh)
    V, H = binary_states(nv), binary_states(nh)
    e = torch.stack([m.energy(V, h.expand(V.shape[0], nh)) for h in H], 1).detach()
    torch.testing.assert_close(m.log_partition(beta=beta), torch.logsumexp(-beta * e.flatten(), 0),
                               rtol=1e-13, atol=1e-12)
    # exact distributions are normalised and consistent with the joint
    lp = m.exact_log_probs(beta=beta)
    torch.testing.assert_close(torch.logsumexp(lp, 0), torch.zeros((), dtype=F64), atol=1e-12, rtol=0)
    joint = m.exact_log_probs(beta=beta, joint=True).view(1 << nh, 1 << nv)  # index idx(v) + 2^nv idx(h)
    torch.testing.assert_close(torch.logsumexp(joint, 0), lp, atol=1e-12, rtol=0)
    torch.testing.assert_close(joint.t(), -beta * e - m.log_partition(beta=beta), atol=1e-12, rtol=0)


def test_log_partition_chunked_enumeration():
    # 14 hidden units (2^14 states) pass through 2^14 * 20 / 2^12 = 80 chunks
    from gensample.models import rbm as rbm_mod

    m = _rbm(20, 14, std=0.3)
    full = m.log_partition()
    old = rbm_mod._CHUNK_ELEMS
    try:
        rbm_mod._CHUNK_ELEMS = 1 << 12
        torch.testing.assert_close(m.log_partition(), full, rtol=1e-14, atol=1e-12)
    finally:
        rbm_mod._CHUNK_ELEMS = old


def test_log_likelihood_bernoulli():
    m = _rbm(6, 4)
    V = binary_states(6)
    ll = m.log_likelihood(V)
    assert ll.dtype == F64
    torch.testing.assert_close(torch.logsumexp(ll, 0), torch.zeros((), dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(ll, m.exact_log_probs(), atol=1e-12, rtol=0)
    # float32 model: computed in float64 from the float32 parameters
    m32 = _rbm(6, 4, dtype=torch.float32)
    ll32 = m32.log_likelihood(V.float())
    m64 = _rbm(6, 4).to(F64)
    m64.load_state_dict({k: v.double() for k, v in m32.state_dict().items()})
    torch.testing.assert_close(ll32, m64.log_likelihood(V), atol=1e-12, rtol=0)


def test_log_partition_too_large():
    with pytest.raises(ValueError, match="at most 25"):
        gensample.BernoulliRBM(30, 26).log_partition()
    with pytest.raises(ValueError, match="method"):
        _rbm(3, 2).log_partition(method="bdmc")
    with pytest.raises(ValueError, match="hidden layer"):
        gensample.GaussianBernoulliRBM(3, 26).log_partition()


def _grid_logz(m, beta=1.0, half_width=24.0, n=1601):
    x = torch.linspace(-half_width, half_width, n, dtype=F64)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    P = torch.stack([X.flatten(), Y.flatten()], 1)
    dx = float(x[1] - x[0])
    return P, dx, torch.logsumexp(-beta * m._free_energy64(P, beta), 0) + 2 * math.log(dx)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_gaussian_log_partition_against_quadrature(beta):
    # 2 visible units: Riemann sum of exp(-beta F(v)) on a fine grid (the integrand is a
    # Gaussian mixture, smooth, and ~0 at the border: error far below 1e-8).
    m = _gbrbm(2, 3, std=0.8)
    _, _, ref = _grid_logz(m, beta)
    torch.testing.assert_close(m.log_partition(beta=beta), ref, rtol=0, atol=1e-8)


def test_gaussian_exact_moments_against_quadrature_and_density():
    m = _gbrbm(2, 3, std=0.8)
    P, dx, log_z = _grid_logz(m)
    w = torch.exp(m.log_likelihood(P)) * dx * dx  # density: integrates to 1
    torch.testing.assert_close(w.sum(), torch.ones((), dtype=F64), atol=1e-8, rtol=0)
    mean, cov = m.exact_moments()
    torch.testing.assert_close(w @ P, mean, atol=1e-8, rtol=0)
    d = P - mean
    torch.testing.assert_close((d * w[:, None]).t() @ d, cov, atol=1e-7, rtol=0)


# ----------------------------------------------------------------------------
# conditionals against the textbook reference
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_probabilities_match_textbook(dtype, beta):
    m = _rbm(7, 5, dtype=dtype)
    g = torch.Generator().manual_seed(3)
    v = (torch.rand(9, 7, generator=g) < 0.5).to(dtype)
    h = (torch.rand(9, 5, generator=g) < 0.5).to(dtype)
    W, b, c = m.weight.detach(), m.visible_bias.detach(), m.hidden_bias.detach()
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-13, "atol": 1e-13}
    torch.testing.assert_close(m.prob_hidden(v, beta).detach(), reference.rbm_prob_hidden_textbook(v, W, c, beta), **tol)
    torch.testing.assert_close(m.prob_visible(h, beta).detach(), reference.rbm_prob_visible_textbook(h, W, b, beta),
                               **tol)
    torch.testing.assert_close(m.free_energy(v).detach(), reference.rbm_free_energy_textbook(v, W, b, c), **tol)


def test_gaussian_conditionals():
    m = _gbrbm(4, 3)
    g = torch.Generator().manual_seed(4)
    v = torch.randn(5, 4, generator=g, dtype=F64)
    h = (torch.rand(5, 3, generator=g) < 0.5).to(F64)
    W, b, c, s = m.weight.detach(), m.visible_bias.detach(), m.hidden_bias.detach(), m.sigma
    torch.testing.assert_close(m.prob_hidden(v, 0.5).detach(), torch.sigmoid(0.5 * (c + (v / s) @ W)))
    torch.testing.assert_close(m.prob_visible(h).detach(), b + s * (h @ W.t()))
    # p(h | v) from the energy: p(h_j = 1 | v) = 1 / (1 + exp(E(v, h with h_j=1) - E(v, h with h_j=0)))
    h1, h0 = h.clone(), h.clone()
    h1[:, 0], h0[:, 0] = 1, 0
    torch.testing.assert_close(m.prob_hidden(v)[:, 0].detach(), torch.sigmoid(m.energy(v, h0) - m.energy(v, h1)).detach())


# ----------------------------------------------------------------------------
# sampling methods = the fused ops on the same seed
# ----------------------------------------------------------------------------
def _gen(seed=11):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("backend", backend_params())
def test_bernoulli_sampling_methods_use_the_ops(backend):
    if backend == "triton":
        pytest.skip("the triton path is tested op by op in tests/test_gibbs_triton.py")
    m = _rbm(6, 4, dtype=torch.float32)
    W, b, c = m.weight.detach(), m.visible_bias.detach(), m.hidden_bias.detach()
    v = (torch.rand(10, 6, generator=_gen(1)) < 0.5).float()
    try:
        ref = gibbs_half_step(v, W, c, beta=0.5, return_prob=True, generator=_gen(), backend=backend)
    except gensample.BackendUnavailableError as e:
        pytest.skip(str(e))
    got = m.sample_hidden(v, beta=0.5, return_prob=True, generator=_gen(), backend=backend)
    assert all(torch.equal(x, y) for x, y in zip(got, ref))
    hv = m.sample_visible(ref[0], generator=_gen(), backend=backend)
    assert torch.equal(hv, gibbs_half_step(ref[0], W, b, transpose=True, generator=_gen(), backend=backend))
    vk = m.gibbs(v, k=3, generator=_gen(), backend=backend)
    vk_ref, hk_ref, hp_ref = gibbs_sweeps(v, W, b, c, k=3, return_hidden_prob=True, generator=_gen(),
                                          backend=backend)
    assert torch.equal(vk, vk_ref)
    out = m.gibbs(v, k=3, return_hidden=True, generator=_gen(), backend=backend)
    assert all(torch.equal(x, y) for x, y in zip(out, (vk_ref, hk_ref, hp_ref)))
    assert set(vk.unique().tolist()) <= {0.0, 1.0}
    # sample(): init drawn from the generator, then gibbs on the same generator
    g1, g2 = _gen(5), _gen(5)
    s = m.sample(10, k=2, generator=g1, backend=backend)
    init = m.init_chains(10, generator=g2)
    assert torch.equal(s, gibbs_sweeps(init, W, b, c, k=2, generator=g2, backend=backend)[0])
    assert s.shape == (10, 6)


@pytest.mark.parametrize("backend", backend_params())
def test_gaussian_gibbs_is_a_loop_of_half_steps(backend):
    if backend == "triton":
        pytest.skip("the triton path is tested op by op in tests/test_gibbs_triton.py")
    m = _gbrbm(5, 3, dtype=torch.float32)
    W, b, c, s = m.weight.detach(), m.visible_bias.detach(), m.hidden_bias.detach(), m.sigma.detach()
    v0 = torch.randn(8, 5, generator=_gen(2))
    try:
        g = _gen()
        h, ph = gibbs_half_step(v0 / s, W, c, beta=0.7, return_prob=True, generator=g, backend=backend)
    except gensample.BackendUnavailableError as e:
        pytest.skip(str(e))
    v = v0
    for _ in range(3):
        v = gaussian_half_step(h, W, b, sigma=s, beta=0.7, generator=g, backend=backend)
        h, ph = gibbs_half_step(v / s, W, c, beta=0.7, return_prob=True, generator=g, backend=backend)
    got = m.gibbs(v0, k=3, beta=0.7, return_hidden=True, generator=_gen(), backend=backend)
    assert all(torch.equal(x, y) for x, y in zip(got, (v, h, ph)))
    vs, mean = m.sample_visible(h, return_mean=True, generator=_gen(), backend=backend)
    torch.testing.assert_close(mean, m.prob_visible(h).detach(), rtol=1e-5, atol=1e-5)
    assert vs.shape == (8, 5)


def test_model_default_backend_and_float64():
    m = _rbm(5, 3)  # float64 parameters: kernels compute in float32, results come back float64
    m.backend = "torch"
    v = (torch.rand(4, 5, generator=_gen(3)) < 0.5).to(F64)
    out = m.gibbs(v, k=2, generator=_gen())
    assert out.dtype == F64
    ref = gibbs_sweeps(v.float(), m.weight.detach().float(), m.visible_bias.detach().float(),
                       m.hidden_bias.detach().float(), k=2, generator=_gen(), backend="torch")[0]
    assert torch.equal(out.float(), ref)


# ----------------------------------------------------------------------------
# pseudo-likelihood, reconstruction error, modules
# ----------------------------------------------------------------------------
def test_pseudo_likelihood_exact_and_stochastic():
    m = _rbm(6, 4)
    V = binary_states(6)[::5]
    lp = m.exact_log_probs()
    idx = (V * 2 ** torch.arange(6, dtype=F64)).sum(1).long()
    terms = []
    for i in range(6):
        flip = V.clone()
        flip[:, i] = 1 - flip[:, i]
        fidx = (flip * 2 ** torch.arange(6, dtype=F64)).sum(1).long()
        terms.append(lp[idx] - torch.logaddexp(lp[idx], lp[fidx]))  # log p(v_i | v_-i)
    terms = torch.stack(terms, 1)
    torch.testing.assert_close(m.pseudo_likelihood(V), terms.sum(1), rtol=1e-12, atol=1e-12)
    g1, g2 = _gen(7), _gen(7)
    st = m.pseudo_likelihood(V, method="stochastic", generator=g1)
    i = torch.randint(0, 6, (V.shape[0],), generator=g2)
    torch.testing.assert_close(st, 6 * terms[torch.arange(V.shape[0]), i], rtol=1e-12, atol=1e-12)
    with pytest.raises(NotImplementedError, match="BernoulliRBM"):
        _gbrbm(3, 2).pseudo_likelihood(torch.zeros(2, 3, dtype=F64))


def test_reconstruction_error():
    m = _rbm(6, 4)
    v = binary_states(6)[:9]
    r = m.prob_visible(m.prob_hidden(v)).detach()
    torch.testing.assert_close(m.reconstruction_error(v), ((v - r) ** 2).sum(1))


def test_module_parameters_and_state_dict():
    m = gensample.GaussianBernoulliRBM(5, 3, sigma=2.0, learn_sigma=True)
    names = {n for n, _ in m.named_parameters()}
    assert names == {"weight", "visible_bias", "hidden_bias", "log_sigma"}
    torch.testing.assert_close(m.sigma, torch.full((5,), 2.0))
    fixed = gensample.GaussianBernoulliRBM(5, 3, sigma=2.0)
    assert "log_sigma" not in {n for n, _ in fixed.named_parameters()} and "log_sigma" in fixed.state_dict()
    b = gensample.BernoulliRBM(5, 3)
    assert b.weight.shape == (5, 3) and b.visible_bias.shape == (5,) and b.hidden_bias.shape == (3,)
    b2 = gensample.BernoulliRBM(5, 3)
    b2.load_state_dict(b.state_dict())
    assert torch.equal(b2.weight, b.weight)
    assert "n_visible=5, n_hidden=3" in repr(b)


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------
def test_bad_inputs_name_the_argument():
    m = _rbm(5, 3, dtype=torch.float32)
    m.backend = "torch"
    v = torch.ones(4, 5)
    with pytest.raises(ValueError, match=r"v must have shape \(batch, 5\)"):
        m.free_energy(torch.ones(4, 6))
    with pytest.raises(ValueError, match=r"v must have shape"):
        m.gibbs(torch.ones(5))
    with pytest.raises(ValueError, match=r"h must have shape \(batch, 3\)"):
        m.prob_visible(torch.ones(4, 5))
    with pytest.raises(ValueError, match="same batch size"):
        m.energy(v, torch.ones(3, 3))
    with pytest.raises(ValueError, match=r"v must be binary.*2 of its 20 entries"):
        bad = v.clone()
        bad[0, 0], bad[1, 1] = 0.5, 2.0
        m.gibbs(bad)
    m.sample_hidden(v * 0.3)  # the half-step accepts mean-field inputs (documented policy)
    with pytest.raises(TypeError, match=r"v has dtype torch.float64 but the model's parameters are torch.float32"):
        m.gibbs(v.double())
    with pytest.raises(TypeError, match="v must be a floating tensor"):
        m.gibbs(v.long())
    with pytest.raises(ValueError, match=r"v is on meta but the model is on cpu"):
        m.free_energy(torch.ones(4, 5, device="meta"))
    with pytest.raises(ValueError, match=r"k must be >= 0, got -1"):
        m.gibbs(v, k=-1)
    with pytest.raises(TypeError, match="k must be an int"):
        m.gibbs(v, k=1.5)
    with pytest.raises(ValueError, match="beta must be finite and > 0"):
        m.prob_hidden(v, beta=-1.0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        m.sample(0)
    with pytest.raises(ValueError, match=r"init must have shape \(3, 5\)"):
        m.sample(3, init=v)
    with pytest.raises(ValueError, match="n_hidden must be a positive int"):
        gensample.BernoulliRBM(4, 0)
    with torch.no_grad():
        m.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="weight must be finite, but 1 of its 15 entries"):
        m.gibbs(v)
    with pytest.raises(ValueError, match="weight must be finite"):
        m.sample_hidden(v)
    g = _gbrbm(3, 2, dtype=torch.float32)
    with pytest.raises(ValueError, match="sigma must be a positive number or a \\(3,\\) tensor"):
        gensample.GaussianBernoulliRBM(3, 2, sigma=torch.ones(4))
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        gensample.GaussianBernoulliRBM(3, 2, sigma=0.0)
    with pytest.raises(TypeError, match="h has dtype torch.float64"):
        g.sample_visible(torch.ones(2, 2, dtype=F64))
