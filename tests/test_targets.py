"""gensample.targets: analytic gradients, exact samplers and moments, ULA's biased moments.

Distributional checks use z-scores of sample moments against the exact ones, with a
Bonferroni-corrected threshold: each test's false-failure rate is at most 1e-4 (stated
per test), with a seeded generator (so a run is deterministic; the rate bounds the chance
that a given seed fails although the code is right).
"""
import math

import pytest
import torch

from gensample import targets

TARGETS = {
    "gaussian": lambda: targets.Gaussian([0.5, -1.0, 2.0], [[2.0, 0.6, 0.2], [0.6, 1.0, -0.3], [0.2, -0.3, 0.5]]),
    "correlated": lambda: targets.Gaussian.correlated(4, rho=0.8, scales=[1.0, 2.0, 0.5, 1.5]),
    "mixture": lambda: targets.GaussianMixture([0.2, 0.5, 0.3], [[-2.0, 0.0], [1.0, 1.0], [2.0, -2.0]],
                                               [[[0.5, 0.1], [0.1, 0.3]], [[1.0, -0.4], [-0.4, 0.8]],
                                                [[0.2, 0.0], [0.0, 0.2]]]),
    "circle": lambda: targets.GaussianMixture.circle(8, 2.0, 0.3),
    "banana": lambda: targets.Banana(a=1.2, b=0.7, sigma=0.8),
    "ring": lambda: targets.Ring(radius=2.0, width=0.4),
    "ring_small": lambda: targets.Ring(radius=0.3, width=1.0),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Moderate float64 tensors: one thread avoids OpenMP stalls on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _z_bound(n_tests: int, rate: float = 1e-4) -> float:
    """Two-sided normal quantile for a family-wise false-failure rate ``rate``."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - rate / (2 * n_tests))


@pytest.mark.parametrize("name", sorted(TARGETS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grad_matches_autograd(name, dtype):
    t = TARGETS[name]()
    g = torch.Generator().manual_seed(0)
    x = (t.sample(64, generator=g) + 0.3 * torch.randn(64, t.dim, dtype=torch.float64, generator=g)).to(dtype)
    x.requires_grad_(True)
    e = t.energy(x)
    assert e.shape == (64,) and e.dtype == dtype
    (ga,) = torch.autograd.grad(e.sum(), x)
    gm = t.grad(x.detach())
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gm, ga, **tol)
    assert t(x.detach()).shape == (64,)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_sample_moments_match_exact(name):
    """Sample mean and covariance of exact draws vs the closed forms (rate <= 1e-4)."""
    t = TARGETS[name]()
    n = 200_000
    x = t.sample(n, generator=torch.Generator().manual_seed(1))
    assert x.shape == (n, t.dim) and x.dtype == torch.float64
    d = t.dim
    m = x.mean(0)
    c = x - t.mean
    # covariance entries as means of products; their standard errors from the sample.
    prods = c[:, :, None] * c[:, None, :]
    cov_hat = prods.mean(0)
    se_m = x.std(0) / math.sqrt(n)
    se_c = prods.std(0) / math.sqrt(n)
    z = _z_bound(d + d * (d + 1) // 2)
    assert ((m - t.mean).abs() <= z * se_m).all(), (m, t.mean)
    iu = torch.triu_indices(d, d)
    dev = (cov_hat - t.covariance)[iu[0], iu[1]].abs()
    assert (dev <= z * se_c[iu[0], iu[1]]).all(), (cov_hat, t.covariance)


@pytest.mark.parametrize("name", ["banana", "ring", "circle"])
def test_energy_is_negative_log_density_of_samples(name):
    """E differs from -log p by a constant: check via a histogram-free identity.

    For exact samples x ~ p and any test function f with E_p[grad f] finite, Stein's identity
    E_p[grad f(x) - f(x) grad E(x)] = 0 holds; with f = x_i (so grad f = e_i) it reads
    E_p[grad E(x)] = 0 and E_p[x_i grad_j E(x)] = delta_ij. Rate <= 1e-4.
    """
    t = TARGETS[name]()
    n = 400_000
    x = t.sample(n, generator=torch.Generator().manual_seed(2))
    g = t.grad(x)
    d = t.dim
    stats = torch.cat([g, (x[:, :, None] * g[:, None, :]).reshape(n, -1)], dim=1)
    expect = torch.cat([torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64).reshape(-1)])
    se = stats.std(0) / math.sqrt(n)
    z = _z_bound(stats.shape[1])
    assert ((stats.mean(0) - expect).abs() <= z * se).all(), (stats.mean(0), expect)


def test_ula_moments_solve_lyapunov_and_expand():
    t = TARGETS["gaussian"]()
    P = t.precision
    for h, s in [(0.05, None), (0.2, None), (0.1, 0.3)]:
        m, V = t.ula_moments(h, s)
        s2 = 2 * h if s is None else s * s
        A = torch.eye(3, dtype=torch.float64) - h * P
        torch.testing.assert_close(A @ V @ A.T + s2 * torch.eye(3, dtype=torch.float64), V, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(m, t.mean)
    # first-order expansion: V = Sigma + h/2 I + O(h^2)
    h = 1e-4
    _, V = t.ula_moments(h)
    torch.testing.assert_close(V, t.covariance + 0.5 * h * torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-6)
    lam_max = float(torch.linalg.eigvalsh(P).max())
    with pytest.raises(ValueError, match="unstable"):
        t.ula_moments(2.01 / lam_max)


def test_ula_moments_match_simulated_chain():
    """A plain float64 ULA loop over 20k chains: stationary moments equal ula_moments(h),
    not the target's (the bias h/2 per unit precision is far larger than the MC error).
    Rate <= 1e-4 (Bonferroni over 2 + 3 moments)."""
    t = targets.Gaussian([1.0, -1.0], [[1.0, 0.5], [0.5, 0.8]])
    h = 0.3
    m_ula, v_ula = t.ula_moments(h)
    g = torch.Generator().manual_seed(3)
    C = 20_000
    x = t.sample(C, generator=g)
    for _ in range(200):
        x = x - h * t.grad(x) + math.sqrt(2 * h) * torch.randn(x.shape, dtype=torch.float64, generator=g)
    c = x - m_ula
    prods = (c[:, :, None] * c[:, None, :]).reshape(C, -1)[:, [0, 1, 3]]
    z = _z_bound(5)
    assert ((x.mean(0) - m_ula).abs() <= z * x.std(0) / math.sqrt(C)).all()
    v_flat = v_ula.reshape(-1)[[0, 1, 3]]
    se = prods.std(0) / math.sqrt(C)
    assert ((prods.mean(0) - v_flat).abs() <= z * se).all(), (prods.mean(0), v_flat)
    # and the unbiased covariance is rejected: the test has power.
    s_flat = t.covariance.reshape(-1)[[0, 1, 3]]
    assert ((prods.mean(0) - s_flat).abs() > z * se).any()


def test_bad_input():
    t = targets.Banana()
    with pytest.raises(ValueError, match="shape"):
        t.energy(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="positive definite"):
        targets.Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="weights"):
        targets.GaussianMixture([1.0, -1.0], [[0.0], [1.0]], 1.0)
