"""gensample.optim.SGLD: the update and stream layout, grouping by (device, dtype), and
Bayesian linear regression, where the chains' mean and covariance must match the
closed-form posterior within Monte Carlo error."""
import math
from statistics import NormalDist

import pytest
import torch

from gensample import targets
from gensample import random as R
from gensample.ops import sgld_step_
from gensample.optim import SGLD

from conftest import fast_backend_for


def fast_backend():
    return fast_backend_for("sgld_step_")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_step_is_one_fused_update_per_device_dtype_group():
    """Parameters are bucketed by (device, dtype) in first-seen order; each bucket takes
    one seed pair from the generator and one sgld_step_ call; params without grad are
    skipped."""
    g0 = torch.Generator().manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3, generator=g0))
    b = torch.nn.Parameter(torch.randn(7, generator=g0, dtype=torch.float64))
    c = torch.nn.Parameter(torch.randn(2, 2, generator=g0))
    d = torch.nn.Parameter(torch.randn(3, generator=g0))  # no grad
    for p in (a, b, c):
        p.grad = torch.randn(p.shape, generator=g0, dtype=p.dtype)
    ref = [p.detach().clone() for p in (a, b, c, d)]
    opt = SGLD([a, b, c, d], lr=0.01, temperature=0.5, weight_decay=0.1, generator=torch.Generator().manual_seed(1),
               backend="torch")
    opt.step()
    gen = torch.Generator().manual_seed(1)
    s32 = R.draw_seed(gen)
    s64 = R.draw_seed(gen)
    sigma = math.sqrt(2 * 0.01 * 0.5)
    sgld_step_([ref[0], ref[2]], [a.grad, c.grad], lr=0.01, noise_scale=sigma, weight_decay=0.1, seed=s32,
               backend="torch")
    sgld_step_([ref[1]], [b.grad], lr=0.01, noise_scale=sigma, weight_decay=0.1, seed=s64, backend="torch")
    for p, r in zip((a, b, c, d), ref):
        assert torch.equal(p.detach(), r)


def test_noise_free_is_sgd_with_weight_decay_and_closure():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = SGLD([w], lr=0.1, noise_scale=0.0, weight_decay=0.5, backend=fast_backend())

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.detach()) == 14.0
    w0 = torch.tensor([1.0, -2.0, 3.0])
    torch.testing.assert_close(w.detach(), w0 - 0.1 * (2 * w0 + 0.5 * w0))
    assert SGLD.group_noise_scale(opt.param_groups[0]) == 0.0
    assert SGLD.group_noise_scale(dict(lr=0.02, temperature=2.0, noise_scale=None)) == pytest.approx(math.sqrt(0.08))


def test_backends_agree():
    if fast_backend() != "cpu":
        pytest.skip("no cpu SGLD kernel in this build")
    outs = []
    for b in ("torch", "cpu"):
        g0 = torch.Generator().manual_seed(2)
        ps = [torch.nn.Parameter(torch.randn(s, generator=g0)) for s in ((3, 5), (7,), (1,), (4, 4))]
        for p in ps:
            p.grad = torch.randn(p.shape, generator=g0)
        SGLD(ps, lr=0.05, weight_decay=0.01, generator=torch.Generator().manual_seed(3), backend=b).step()
        outs.append([p.detach() for p in ps])
    for x, y in zip(*outs):
        assert torch.equal(x, y)


def test_bad_arguments():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="lr"):
        SGLD(p, lr=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        SGLD(p, lr=0.1, temperature=0.0)
    with pytest.raises(ValueError, match="weight_decay"):
        SGLD(p, lr=0.1, weight_decay=-1.0)
    with pytest.raises(TypeError, match="generator"):
        SGLD(p, lr=0.1, generator=3)
    p[0].grad = torch.zeros(2).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        SGLD(p, lr=0.1).step()


def test_bayesian_linear_regression_posterior():
    """y = X w + b + N(0, s^2), prior w, b ~ N(0, 1) (weight_decay = 1), s = 0.5, n = 40.
    Posterior: precision A = Z^T Z / s^2 + I with Z = [X, 1], mean A^-1 Z^T y / s^2.

    K = 4000 independent chains are vectorized as one (K, 3) weight and one (K,) bias
    parameter; the loss is the summed energy over chains (chains do not interact). Chains
    start at 0; lr = 1e-4, 1500 steps: the start's influence decays like (1 - lr
    lambda_min)^T < 1e-6. Final states are K independent draws of SGLD's stationary law,
    whose exact covariance (ULA on a Gaussian, ``ula_moments``) differs from the posterior
    by less than a quarter of the Monte Carlo tolerance in every entry (checked below), so
    the O(lr) bias cannot cause a failure. z-tests of 4 means + 10 covariance entries
    against the posterior, Bonferroni: false-failure rate 1e-4."""
    g = torch.Generator().manual_seed(4)
    n, d, s = 40, 3, 0.5
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64) + 0.3 + s * torch.randn(n, generator=g,
                                                                                       dtype=torch.float64)
    Z = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], 1)
    A = Z.T @ Z / s**2 + torch.eye(d + 1, dtype=torch.float64)
    cov = torch.linalg.inv(A)
    mean = cov @ Z.T @ y / s**2
    lr, T, K = 1e-4, 1500, 4000
    lam = torch.linalg.eigvalsh(A)
    assert float((1 - lr * lam.min()) ** T * mean.abs().max()) < 1e-6

    Xf, yf = X.float(), y.float()
    W = torch.nn.Parameter(torch.zeros(K, d))
    B = torch.nn.Parameter(torch.zeros(K))
    opt = SGLD([W, B], lr=lr, weight_decay=1.0, generator=torch.Generator().manual_seed(5), backend=fast_backend())
    for _ in range(T):
        opt.zero_grad(set_to_none=False)
        resid = yf[None, :] - W @ Xf.T - B[:, None]  # (K, n)
        energy = (resid * resid).sum() / (2 * s**2)  # likelihood energy summed over data (and chains)
        energy.backward()
        opt.step()
    theta = torch.cat([W.detach(), B.detach()[:, None]], 1).double()

    d1 = d + 1
    iu = torch.triu_indices(d1, d1)
    z = NormalDist().inv_cdf(1 - 1e-4 / (2 * (d1 + iu.shape[1])))
    se_m = theta.std(0) / math.sqrt(K)
    assert ((theta.mean(0) - mean).abs() <= z * se_m).all(), (theta.mean(0), mean)
    c = theta - mean
    prods = (c[:, :, None] * c[:, None, :])[:, iu[0], iu[1]]
    se = prods.std(0) / math.sqrt(K)
    assert ((prods.mean(0) - cov[iu[0], iu[1]]).abs() <= z * se).all(), (prods.mean(0), cov)
    # the discretization bias is far below the tolerance (so it cannot cause a failure):
    _, V = targets.Gaussian(mean, cov).ula_moments(lr)
    assert ((V - cov)[iu[0], iu[1]].abs() <= 0.25 * z * se).all()
    # and the test has power: a 30% wider posterior would be rejected
    assert ((prods.mean(0) - 1.3 * cov[iu[0], iu[1]]).abs() > z * se).any()
