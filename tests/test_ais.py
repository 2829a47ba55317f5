"""AIS, reverse AIS and log-likelihood evaluation (gensample.evaluation) against exact log Z.

Models: random RBMs small enough to enumerate (n_hidden <= 12), at three weight scales per
kind: easy, medium, and a hard multimodal one (large weights; the test checks that its
exact visible distribution has several well-separated local modes).

Statistics. Each case runs ONE forward and ONE reverse AIS call with R x n chains and
splits the log-weights into R = 100 independent groups of n chains (chains never interact,
so each group is an independent AIS estimate with n chains, built with
``LogZEstimate.from_log_weights``, the code path every estimate goes through):

* coverage: the number X of groups whose 95% interval contains the exact log Z is
  Binomial(R, p). The delta-method normal interval is approximate at n = 64 chains (the
  sample variance of skewed weights is noisy; measured p = 0.86-0.96 on these cases), so
  the test asserts X >= the 1e-4 lower quantile of Binomial(R, 0.85): false-failure rate
  <= 1e-4 per case whenever the true coverage is >= 0.85; a broken interval (stderr off by
  1.6x, or a bias of one stderr) fails it.
* calibration: the spread of the R group estimates matches their reported stderr (ratio
  of variances in [0.5, 2]: the sample variance of R = 100 estimates has relative sd
  0.14, so this is a > 3.5 sigma band).
* bias: AIS is unbiased in Z and biased low in log Z by about se^2/2 (Jensen). n_betas is
  chosen per case so that the weights are well-behaved (Kish ESS >= 0.3 n) and this bias
  (<= 0.01 per 64-chain group) is below the group stderr (0.02-0.16). The pooled estimate
  (all R n chains) must be within z se + se^2 of the exact value (z at 1e-4 two-sided).
* bracketing, in expectation: mean(forward groups) - exact <= z se_mean and
  exact - mean(reverse groups) <= z se_mean (one-sided, z at 1e-4), and
  bracket_log_partition's forward lower CI end <= exact <= reverse upper CI end at level
  1 - 1e-4.
"""
import math

import pytest
import torch

import gensample
from gensample import evaluation as E
from gensample.models.rbm import binary_states

from conftest import fast_backend_for, z_bonferroni

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64
BACKEND = fast_backend_for("ais_rbm")
R = 100  # independent groups per case
RATE = 1e-4


def _bernoulli(nv, nh, scale, seed):
    g = torch.Generator().manual_seed(seed)
    m = gensample.BernoulliRBM(nv, nh, init_std=scale, generator=g, dtype=F64)
    with torch.no_grad():  # centred biases: with large weights the model is multimodal
        m.visible_bias.copy_(torch.randn(nv, generator=g, dtype=F64) * 0.5 - m.weight.sum(1) / 2)
        m.hidden_bias.copy_(torch.randn(nh, generator=g, dtype=F64) * 0.5 - m.weight.sum(0) / 2)
    return m


def _gaussian(nv, nh, scale, seed):
    g = torch.Generator().manual_seed(seed)
    sigma = torch.rand(nv, generator=g, dtype=F64) + 0.5
    m = gensample.GaussianBernoulliRBM(nv, nh, sigma=sigma, init_std=scale, generator=g, dtype=F64)
    with torch.no_grad():
        m.visible_bias.copy_(torch.randn(nv, generator=g, dtype=F64))
        m.hidden_bias.copy_(torch.randn(nh, generator=g, dtype=F64) * 0.5 - (m.weight ** 2).sum(0) / 2)
    return m


# (kind, weight scale, n_betas, chains per group): n_betas grows with the scale so that
# the weights stay well-behaved (ESS >= 0.3 n) and the Jensen bias small against the stderr
CASES = {
    "bern-easy": ("bernoulli", 0.3, 30, 64),
    "bern-medium": ("bernoulli", 1.0, 100, 64),
    "bern-hard": ("bernoulli", 3.0, 300, 64),
    "gauss-easy": ("gaussian", 0.3, 30, 64),
    "gauss-medium": ("gaussian", 1.0, 100, 64),
    "gauss-hard": ("gaussian", 1.3, 400, 48),
}
_RUNS = {}


def _model(kind, scale):
    return _bernoulli(16, 10, scale, 1) if kind == "bernoulli" else _gaussian(8, 10, scale, 1)


def _runs(case):
    """(model, exact log Z, forward estimate, reverse estimate) of a case, run once."""
    if case not in _RUNS:
        kind, scale, nb, n = CASES[case]
        m = _model(kind, scale)
        exact = float(m.log_partition())
        fwd = E.ais_log_partition(m, n_chains=R * n, n_betas=nb, generator=torch.Generator().manual_seed(11),
                                  backend=BACKEND)
        rev = E.reverse_ais_log_partition(m, n_chains=R * n, n_betas=nb, generator=torch.Generator().manual_seed(12),
                                          backend=BACKEND)
        _RUNS[case] = (m, exact, fwd, rev)
    return _RUNS[case]


def _groups(est, n):
    lw = est.log_weights.view(R, n)
    return [E.LogZEstimate.from_log_weights(lw[i], est.log_z0, method=est.method, n_betas=est.n_betas) for i in range(R)]


def _binom_lower_quantile(n, p, rate):
    """Largest x with P(Binomial(n, p) < x) <= rate."""
    cdf, x = 0.0, 0
    while True:
        px = math.comb(n, x) * p**x * (1 - p) ** (n - x)
        if cdf + px > rate:
            return x
        cdf += px
        x += 1


# ----------------------------------------------------------------------------
# the hard case is multimodal
# ----------------------------------------------------------------------------
def test_hard_bernoulli_model_is_multimodal():
    m = _model("bernoulli", 3.0)
    lp = m.exact_log_probs()  # (2^16,)
    V = binary_states(16)
    idx = torch.arange(V.shape[0])
    flips = idx[:, None] ^ (1 << torch.arange(16))[None, :]
    is_mode = (lp[:, None] > lp[flips]).all(1)
    mass = torch.exp(lp[is_mode])
    # at least two local modes (no single-bit flip improves them) each holding >= 5% of the mass
    assert int((mass >= 0.05).sum()) >= 2, mass.sort(descending=True).values[:5]


def test_hard_gaussian_model_is_multimodal():
    # a mixture of 2^10 Gaussians N(b + sigma W h, sigma^2): the heaviest components are far
    # apart (several sigmas) and each holds a sizeable weight
    m = _model("gaussian", 1.3)
    W, b, c, s = m.weight.detach(), m.visible_bias.detach(), m.hidden_bias.detach(), m.sigma.detach()
    h = binary_states(10)
    a = h @ W.t()
    logw = h @ c + (a * (b / s) + 0.5 * a * a).sum(-1)
    w = torch.softmax(logw, 0)
    top = w.argsort(descending=True)[:2]
    assert float(w[top].min()) > 0.02, w[top]
    assert float((a[top[0]] - a[top[1]]).norm()) > 3.0  # means differ by > 3 sigma (in units of sigma)


# ----------------------------------------------------------------------------
# (a) coverage and calibration, (b) bracketing, (c) for both kinds
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_interval_coverage_and_calibration(case, direction):
    m, exact, fwd, rev = _runs(case)
    n = CASES[case][3]
    est = fwd if direction == "forward" else rev
    assert est.log_weights.dtype == F64 and est.log_weights.shape == (R * n,)
    assert est.ess >= 0.3 * R * n, "weights degenerate: raise n_betas for this case"
    groups = _groups(est, n)
    covered = sum(g.ci_low <= exact <= g.ci_high for g in groups)
    assert covered >= _binom_lower_quantile(R, 0.85, RATE), (covered, exact, est)
    vals = torch.tensor([g.log_z for g in groups], dtype=F64)
    se2 = torch.tensor([g.stderr**2 for g in groups], dtype=F64).mean()
    ratio = float(vals.var() / se2)
    assert 0.5 <= ratio <= 2.0, ratio
    # the pooled estimate: unbiased up to the Jensen term se^2/2
    z = z_bonferroni(1, RATE)
    assert abs(est.log_z - exact) <= z * est.stderr + est.stderr**2, (est.log_z, exact, est.stderr)


@pytest.mark.parametrize("case", list(CASES))
def test_bracketing_in_expectation(case):
    m, exact, fwd, rev = _runs(case)
    n = CASES[case][3]
    z = z_bonferroni(1, 2 * RATE)  # one-sided at RATE
    for est, sign in ((fwd, 1.0), (rev, -1.0)):
        vals = torch.tensor([g.log_z for g in _groups(est, n)], dtype=F64)
        se_mean = float(vals.std() / math.sqrt(R))
        # forward: E[log Z_hat] <= log Z;  reverse: E[log Z_hat] >= log Z
        assert sign * (float(vals.mean()) - exact) <= z * se_mean, (est.method, float(vals.mean()), exact, se_mean)
    assert fwd.bound == "lower" and rev.bound == "upper" and rev.exact_start


@pytest.mark.parametrize("case", ["bern-medium", "bern-hard", "gauss-medium"])
def test_bracket_log_partition(case):
    kind, scale, nb, n = CASES[case]
    m, exact, _, _ = _runs(case)
    lo, hi = E.bracket_log_partition(m, n_chains=512, n_betas=nb, level=1 - RATE,
                                     generator=torch.Generator().manual_seed(3), backend=BACKEND)
    assert lo.method == "ais" and hi.method == "reverse_ais"
    assert lo.ci_low <= exact <= hi.ci_high, (lo, exact, hi)
    assert lo.n_chains == hi.n_chains == 512 and lo.n_betas == hi.n_betas == nb


def test_base_rate_model_estimate():
    # a base-rate base model (visible marginals of samples of the model) is much closer to the
    # model than the uniform base: same estimator, smaller stderr at the same cost
    m, exact, fwd, _ = _runs("bern-medium")
    data = E.exact_samples(m, 2000, generator=torch.Generator().manual_seed(4))
    kw = dict(n_chains=2000, n_betas=30, backend=BACKEND)
    est = E.ais_log_partition(m, data=data, generator=torch.Generator().manual_seed(5), **kw)
    uni = E.ais_log_partition(m, generator=torch.Generator().manual_seed(5), **kw)
    z = z_bonferroni(1, RATE)
    assert abs(est.log_z - exact) <= z * est.stderr + est.stderr**2
    assert est.log_z0 == pytest.approx(float(torch.nn.functional.softplus(E.base_rate_bias(data)).sum()) + 10 * math.log(2))
    assert est.stderr < uni.stderr


def test_model_methods():
    m, exact, _, _ = _runs("bern-medium")
    g = lambda: torch.Generator().manual_seed(21)  # noqa: E731
    a = m.log_partition("ais", n_chains=64, n_betas=50, generator=g(), backend=BACKEND)
    b = E.ais_log_partition(m, n_chains=64, n_betas=50, generator=g(), backend=BACKEND)
    assert isinstance(a, E.LogZEstimate) and a == b and float(a) == a.log_z  # same stream: same estimate
    assert torch.equal(a.log_weights, b.log_weights)
    r = m.log_partition("reverse_ais", n_chains=64, n_betas=50, generator=g(), backend=BACKEND)
    assert r.method == "reverse_ais" and r.n_chains == 64
    ex = m.log_partition()  # exact: unchanged float64 tensor
    assert isinstance(ex, torch.Tensor) and ex.dtype == F64 and float(ex) == exact
    v = E.exact_samples(m, 5, generator=g())
    torch.testing.assert_close(m.log_likelihood(v, log_z=a), m.log_likelihood(v) + (exact - a.log_z), rtol=0,
                               atol=1e-12)
    gm, gexact, _, _ = _runs("gauss-easy")
    ga = gm.log_partition("ais", n_chains=64, n_betas=30, generator=g(), backend=BACKEND)
    assert ga.method == "ais" and abs(ga.log_z - gexact) < 10 * ga.stderr + 0.1


# ----------------------------------------------------------------------------
# (d) log-likelihood evaluation
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["bern-medium", "gauss-medium"])
def test_evaluate_log_likelihood(case):
    kind, scale, nb, n = CASES[case]
    m, exact, _, _ = _runs(case)
    data = E.exact_samples(m, 300, generator=torch.Generator().manual_seed(6))
    ll = E.evaluate_log_likelihood(m, data, log_z="ais", n_chains=1024, n_betas=nb, level=1 - RATE,
                                   generator=torch.Generator().manual_seed(7), backend=BACKEND)
    exact_ll = m.log_likelihood(data)  # exact log Z
    assert ll.per_sample.dtype == F64 and ll.per_sample.shape == (300,)
    # per-sample values differ from the exact ones by the log Z error only
    torch.testing.assert_close(ll.per_sample, exact_ll + (exact - ll.log_z.log_z), rtol=0, atol=1e-10)
    # the exact mean lies in the interval (level 1 - 1e-4); the difference is the log Z error alone
    assert ll.ci_low <= float(exact_ll.mean()) <= ll.ci_high
    assert abs(ll.mean - float(exact_ll.mean())) <= z_bonferroni(1, RATE) * ll.log_z.stderr + ll.log_z.stderr**2
    s = float(exact_ll.std())
    assert ll.stderr == pytest.approx(math.sqrt(s**2 / 300 + ll.log_z.stderr**2), rel=1e-9)
    # exact and numeric log Z: no log Z uncertainty
    ex = E.evaluate_log_likelihood(m, data, log_z="exact")
    assert ex.mean == pytest.approx(float(exact_ll.mean()), abs=1e-10) and ex.log_z.method == "exact"
    assert ex.stderr == pytest.approx(s / math.sqrt(300), rel=1e-9)
    num = E.evaluate_log_likelihood(m, data, log_z=exact)
    assert num.mean == pytest.approx(ex.mean, abs=1e-12)
    est = E.evaluate_log_likelihood(m, data, log_z=ll.log_z)
    assert est.mean == ll.mean and est.log_z is ll.log_z


# ----------------------------------------------------------------------------
# estimator, schedules, exact samples
# ----------------------------------------------------------------------------
def test_estimator_math_is_stable():
    g = torch.Generator().manual_seed(8)
    lw = torch.randn(500, generator=g, dtype=F64) * 0.7 + 5000.0  # exp overflows float64
    est = E.LogZEstimate.from_log_weights(lw, 3.0, n_betas=7)
    x = (lw - 5000.0)
    w = x.exp()
    ref = 3.0 + 5000.0 + math.log(float(w.mean()))
    assert est.log_z == pytest.approx(ref, abs=1e-10)
    assert est.stderr == pytest.approx(float(w.std() / w.mean()) / math.sqrt(500), rel=1e-10)
    assert est.ess == pytest.approx(float(w.sum() ** 2 / (w * w).sum()), rel=1e-10)
    z = 1.959963984540054
    assert (est.ci_low, est.ci_high) == pytest.approx((est.log_z - z * est.stderr, est.log_z + z * est.stderr))
    rev = E.LogZEstimate.from_log_weights(lw, 3.0, method="reverse_ais")
    assert rev.log_z == pytest.approx(3.0 - 5000.0 - math.log(float(w.mean())), abs=1e-10) and rev.bound == "upper"
    eq = E.LogZEstimate.from_log_weights(torch.full((10,), -2.0, dtype=F64), 1.0)
    assert eq.log_z == pytest.approx(-1.0) and eq.stderr == 0.0 and eq.ess == pytest.approx(10.0)
    one = E.LogZEstimate.from_log_weights(torch.zeros(1, dtype=F64), 0.0)
    assert one.stderr == math.inf
    with pytest.raises(FloatingPointError, match="not finite"):
        E.LogZEstimate.from_log_weights(torch.tensor([0.0, float("nan")], dtype=F64), 0.0)


def test_schedules():
    for kind in E.SCHEDULES:
        b = E.ais_schedule(101, kind)
        assert b.dtype == F64 and b.shape == (101,)
        assert float(b[0]) == 0.0 and float(b[-1]) == 1.0
        assert bool((b[1:] > b[:-1]).all())
    torch.testing.assert_close(E.ais_schedule(5, "linear"), torch.tensor([0, 0.25, 0.5, 0.75, 1], dtype=F64))
    s = E.ais_schedule(201, "sigmoid")
    torch.testing.assert_close(s + s.flip(0), torch.ones(201, dtype=F64))  # symmetric about the middle
    assert float(s[1]) < 1 / 200  # denser than linear at the ends
    sm = E.ais_schedule(14501, "salakhutdinov")  # Salakhutdinov & Murray's 500 / 4000 / 10000 steps
    assert int((sm < 0.5).sum()) == 500 and int(((sm >= 0.5) & (sm < 0.9)).sum()) == 4000
    assert int((sm >= 0.9).sum()) == 10001
    assert float(sm[500]) == 0.5 and float(sm[4500]) == pytest.approx(0.9, abs=1e-15)
    assert E.ais_schedule(4, "salakhutdinov").tolist() == [0.0, 0.5, 0.9, 1.0]


def test_exact_samples_bernoulli_both_branches():
    # chi-square of exact samples against the exact visible marginal; hidden enumerated
    # (nv >= nh) and visible enumerated (nv < nh)
    from scipy.stats import chi2

    for nv, nh in ((5, 3), (3, 6)):
        m = _bernoulli(nv, nh, 1.0, 5)
        N = 20000
        v = E.exact_samples(m, N, generator=torch.Generator().manual_seed(9))
        assert v.dtype == F64 and v.shape == (N, nv) and bool(((v == 0) | (v == 1)).all())
        counts = torch.bincount((v.long() * (1 << torch.arange(nv))).sum(1), minlength=1 << nv).double()
        expected = N * m.exact_log_probs().exp()
        stat = float(((counts - expected) ** 2 / expected).sum())
        assert stat < chi2.ppf(1 - RATE, (1 << nv) - 1), (nv, nh, stat)


def test_exact_samples_gaussian_moments():
    m = _gaussian(3, 5, 1.0, 6)
    N = 40000
    v = E.exact_samples(m, N, generator=torch.Generator().manual_seed(10))
    mean, cov = m.exact_moments()
    z = z_bonferroni(3, RATE)
    se = (torch.diag(cov) / N).sqrt()
    assert bool(((v.mean(0) - mean).abs() <= z * se).all()), (v.mean(0), mean, se)


def test_reverse_ais_with_init_is_marked_approximate():
    m, exact, _, _ = _runs("bern-easy")
    init = E.exact_samples(m, 256, generator=torch.Generator().manual_seed(13))
    r = E.reverse_ais_log_partition(m, init=init, n_betas=30, generator=torch.Generator().manual_seed(14),
                                    backend=BACKEND)
    assert r.n_chains == 256 and not r.exact_start and r.bound == "upper"
    assert abs(r.log_z - exact) <= z_bonferroni(1, RATE) * r.stderr + r.stderr**2


# ----------------------------------------------------------------------------
# (e) bad input
# ----------------------------------------------------------------------------
def test_bad_input():
    m = _bernoulli(6, 4, 0.5, 2)
    gm = _gaussian(4, 3, 0.5, 2)
    kw = dict(n_betas=10, backend=BACKEND)
    with pytest.raises(ValueError, match="n_chains"):
        E.ais_log_partition(m, n_chains=0, **kw)
    with pytest.raises(TypeError, match="n_chains"):
        E.ais_log_partition(m, n_chains=2.5, **kw)
    with pytest.raises(ValueError, match="n_betas"):
        E.ais_log_partition(m, n_betas=1)
    with pytest.raises(ValueError, match="schedule kind"):
        E.ais_log_partition(m, schedule="cosine", **kw)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        E.ais_log_partition(m, schedule=torch.tensor([0.0, 0.5, 1.5]), **kw)
    with pytest.raises(ValueError, match="start at beta = 0"):
        E.ais_log_partition(m, schedule=torch.tensor([0.1, 0.5, 1.0]), **kw)
    with pytest.raises(ValueError, match="non-decreasing"):
        E.ais_log_partition(m, schedule=torch.tensor([0.0, 0.6, 0.5, 1.0]), **kw)
    with pytest.raises(ValueError, match="1-D"):
        E.ais_log_partition(m, schedule=torch.zeros(2, 2), **kw)
    with pytest.raises(ValueError, match="level"):
        E.ais_log_partition(m, level=1.5, **kw)
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        E.ais_log_partition(m, data=torch.zeros(5, 7, dtype=F64), **kw)
    with pytest.raises(ValueError, match="binary data"):
        E.ais_log_partition(m, data=torch.full((5, 6), 0.5, dtype=F64), **kw)
    with pytest.raises(ValueError, match="Bernoulli visible units only"):
        E.ais_log_partition(gm, data=torch.zeros(5, 4, dtype=F64), **kw)
    with pytest.raises(ValueError, match="visible_base"):
        E.ais_log_partition(m, visible_base=torch.zeros(5, dtype=F64), **kw)
    with pytest.raises(TypeError, match="BernoulliRBM or GaussianBernoulliRBM"):
        E.ais_log_partition(object(), **kw)
    big = gensample.BernoulliRBM(30, 25)
    with pytest.raises(ValueError, match="pass init="):
        E.reverse_ais_log_partition(big, **kw)
    with pytest.raises(ValueError, match="pass init="):
        big.log_partition("reverse_ais", **kw)
    with pytest.raises(ValueError, match=r"init must have shape \(n_chains, 6\)"):
        E.reverse_ais_log_partition(m, init=torch.zeros(4, 5, dtype=F64), **kw)
    with pytest.raises(ValueError, match="binary"):
        E.reverse_ais_log_partition(m, init=torch.full((4, 6), 0.3, dtype=F64), **kw)
    with pytest.raises(ValueError, match="n_chains=3 but init has 4 rows"):
        E.reverse_ais_log_partition(m, n_chains=3, init=torch.zeros(4, 6, dtype=F64), **kw)
    with pytest.raises(ValueError, match="method must be"):
        m.log_partition("bdmc")
    with pytest.raises(ValueError, match="beta = 1"):
        m.log_partition("ais", beta=0.5, **kw)
    with pytest.raises(ValueError, match="init= is the start of reverse AIS"):
        m.log_partition("ais", init=torch.zeros(4, 6, dtype=F64), **kw)
    with pytest.raises(ValueError, match=r"shape \(batch, 6\)"):
        E.evaluate_log_likelihood(m, torch.zeros(3, 5, dtype=F64), log_z="exact")
    with pytest.raises(ValueError, match="log_z must be"):
        E.evaluate_log_likelihood(m, torch.zeros(3, 6, dtype=F64), log_z="bogus")
    with pytest.raises(TypeError, match="log_z must be"):
        m.log_likelihood(torch.zeros(3, 6, dtype=F64), log_z="ais")
    with pytest.raises(ValueError, match="pseudo_count"):
        E.base_rate_bias(torch.zeros(3, 6), pseudo_count=0)


def test_textbook_reference_agrees():
    # the eager reference (benchmark competitor) estimates the same log Z
    from gensample.ops.tempered import base_log_partition
    from gensample.reference import rbm_ais_textbook

    m, exact, _, _ = _runs("bern-medium")
    base = E.base_rate_bias(E.exact_samples(m, 500, generator=torch.Generator().manual_seed(30)))
    W, b, c = (p.detach().float() for p in (m.weight, m.visible_bias, m.hidden_bias))
    log_w, v = rbm_ais_textbook(W, b, c, E.ais_schedule(60), 2000, visible_base=base.float(),
                                generator=torch.Generator().manual_seed(31))
    assert log_w.dtype == F64 and v.shape == (2000, 16) and bool(((v == 0) | (v == 1)).all())
    est = E.LogZEstimate.from_log_weights(log_w, base_log_partition(10, visible_base=base.float()))
    assert abs(est.log_z - exact) <= z_bonferroni(1, RATE) * est.stderr + est.stderr**2 + 1e-4, (est, exact)


def test_one_op_call_per_run(monkeypatch):
    # the whole annealing run is one ais_rbm op call (no per-beta host round trips)
    from gensample.ops import tempered

    m, _, _, _ = _runs("bern-easy")  # (computed before counting)
    calls = []
    real = tempered._op

    def counting(name, backend):
        calls.append(name)
        return real(name, backend)

    monkeypatch.setattr(tempered, "_op", counting)
    E.ais_log_partition(m, n_chains=8, n_betas=200, backend=BACKEND)
    E.reverse_ais_log_partition(m, n_chains=8, n_betas=200, backend=BACKEND)
    ll = E.evaluate_log_likelihood(m, E.exact_samples(m, 10), log_z="reverse_ais", n_chains=8, n_betas=20,
                                   backend=BACKEND)
    assert calls == ["ais_rbm"] * 3 and ll.log_z.method == "reverse_ais" and ll.log_z.bound == "upper"
