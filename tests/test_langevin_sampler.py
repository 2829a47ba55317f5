"""LangevinSampler (ULA) and the pure step kernels.

* the sampler equals iterating the pure step kernel with the documented stream mapping,
  bit for bit, for every knob, on every backend (and backends agree with each other);
* ULA on a Gaussian target: the stationary mean and covariance equal the exact O(h)-biased
  values of ``targets.Gaussian.ula_moments`` (many independent chains, z-tests with a
  Bonferroni correction; family-wise false-failure rate 1e-4), and the test has the power to
  reject the unbiased target covariance;
* bad input: wrong energy shape, NaN energies/gradients mid-chain -> an error naming the
  number of chains and the step window.
"""
import math

import pytest
import torch

import gensample
from gensample import _backend, targets
from gensample import random as R
from gensample.samplers import (LangevinNonFiniteError, LangevinSampler, LangevinState, energy_and_grad, init_state,
                                make_params, ula_step)

from conftest import backend_params, fast_backend_for, has_kernels
from conftest import z_bonferroni as _z


pytestmark = pytest.mark.usefixtures("one_thread")


def fast_backend():
    """The cpu backend's kernels when this build has them, else the torch spec."""
    return fast_backend_for("langevin_step_")


def _has_kernels(b):
    return has_kernels(b, "langevin_step_")


class MLP(torch.nn.Module):
    def __init__(self, d, h=16):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = torch.nn.Parameter(torch.randn(d, h, generator=g) / math.sqrt(d))
        self.w2 = torch.nn.Parameter(torch.randn(h, 1, generator=g) / math.sqrt(h))

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        return (torch.nn.functional.silu(x @ self.w1) @ self.w2).squeeze(-1) + 0.5 * (x * x).sum(-1)


KNOBS = {
    "plain": dict(),
    "decoupled": dict(noise_scale=0.05),
    "value_clip_clamp": dict(grad_clip=0.3, clamp=(-1.0, 1.0)),
    "norm_clip": dict(grad_clip=0.5, clip_mode="norm"),
    "per_chain_step": dict(step_size=torch.linspace(0.01, 0.2, 6)),
}


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_sampler_equals_step_kernel_loop(backend, knob):
    """sample(x0) == iterating ula_step with substream(seed, t), bit for bit (norm clip:
    rtol 1e-6, its per-chain sum order is backend-defined)."""
    if not _has_kernels(backend):
        pytest.skip(f"no langevin kernels for {backend} in this build")
    if backend == "triton" and knob not in ("value_clip_clamp", "norm_clip"):
        pytest.skip("triton interpreter: two knobs suffice (test_langevin_triton covers every knob)")
    kw = dict(step_size=0.1)
    kw.update(KNOBS[knob])
    energy = MLP(12)
    x0 = torch.randn(6, 3, 4, generator=torch.Generator().manual_seed(1))
    T = 7
    s = LangevinSampler(energy, n_steps=T, generator=torch.Generator().manual_seed(2), backend=backend, **kw)
    x, info = s.sample(x0)
    assert x.shape == x0.shape and x.dtype == x0.dtype
    seed = R.draw_seed(torch.Generator().manual_seed(2))
    params = make_params(x0, kw.pop("step_size"), backend=backend, **kw)
    st = init_state(x0, energy)
    es, gns = [], []
    for t in range(T):
        es.append(st.energy.mean())
        st, inf = ula_step(st, energy, seed, t, params)
        gns.append(inf.grad_norm.mean())
    tol = dict(rtol=1e-6, atol=1e-6) if knob == "norm_clip" else dict(rtol=0, atol=0)
    torch.testing.assert_close(x, st.x, **tol)
    torch.testing.assert_close(info.energy_trace, torch.stack(es), **tol)
    torch.testing.assert_close(info.grad_norm_trace, torch.stack(gns), **tol)
    assert torch.equal(info.acceptance_rate, torch.ones(6))
    assert info.state is None and not bool(info.nonfinite.any())
    if "clamp" in kw:
        assert float(x.abs().max()) <= 1.0
    # x0 untouched
    assert torch.equal(x0, torch.randn(6, 3, 4, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_backends_give_the_same_chain(backend):
    if _backend.unavailable_reason(backend, "cpu") is not None or not _has_kernels(backend):
        pytest.skip(f"{backend} backend unavailable here")
    energy = MLP(8)
    x0 = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
    kw = dict(step_size=0.05, n_steps=5, grad_clip=1.0, clamp=(-2.0, 2.0))
    a, ia = LangevinSampler(energy, generator=torch.Generator().manual_seed(4), backend="torch", **kw).sample(x0)
    b, ib = LangevinSampler(energy, generator=torch.Generator().manual_seed(4), backend=backend, **kw).sample(x0)
    assert torch.equal(a, b)
    assert torch.equal(ia.energy_trace, ib.energy_trace)


def test_seed_table_is_substream():
    from gensample.samplers.langevin import _seed_table

    seed = R.seed_pair(2**63 + 5, 2**40 + 3)
    tab = _seed_table(seed, 9)
    for t in range(9):
        assert torch.equal(tab[t], R.substream(seed, t))


def test_ula_gaussian_stationary_moments_match_biased_exact():
    """20k chains, d = 3, h = 0.4 (h * lambda_max = 0.98: a large, visible bias). Chains
    start at exact target draws; after T steps the law is N(m, V_h) up to a residual
    (1 - h lambda_min)^(2T) < 1e-8 of the initial difference. z-tests on 3 means and 6
    covariance entries with Bonferroni: false-failure rate 1e-4."""
    t = targets.Gaussian([1.0, -2.0, 0.5], [[1.0, 0.5, 0.2], [0.5, 1.5, -0.3], [0.2, -0.3, 0.8]])
    h = 0.4
    lam = torch.linalg.eigvalsh(t.precision)
    T = 100
    assert float((1 - h * lam.min()) ** (2 * T)) < 1e-8 and float(h * lam.max()) < 2
    m_h, V_h = t.ula_moments(h)
    C = 20_000
    x0 = t.sample(C, generator=torch.Generator().manual_seed(5)).float()
    x, info = LangevinSampler(t, step_size=h, n_steps=T, generator=torch.Generator().manual_seed(6),
                              backend=fast_backend()).sample(x0)
    x = x.double()
    z = _z(9)
    assert ((x.mean(0) - m_h).abs() <= z * x.std(0) / math.sqrt(C)).all(), (x.mean(0), m_h)
    c = x - m_h
    iu = torch.triu_indices(3, 3)
    prods = (c[:, :, None] * c[:, None, :])[:, iu[0], iu[1]]
    se = prods.std(0) / math.sqrt(C)
    dev = prods.mean(0) - V_h[iu[0], iu[1]]
    assert (dev.abs() <= z * se).all(), (prods.mean(0), V_h)
    # power: the unbiased covariance is rejected
    assert ((prods.mean(0) - t.covariance[iu[0], iu[1]]).abs() > z * se).any()
    # the energy trace is the mean energy of the chains: near its stationary value d/2 * (1 + O(h))
    e_exact = 0.5 * float(torch.trace(t.precision @ V_h))
    assert abs(float(info.energy_trace[-20:].mean()) - e_exact) < 0.05 * e_exact


def test_energy_and_grad_contract():
    t = targets.Banana()
    x = torch.randn(7, 2, dtype=torch.float64)
    e, g = energy_and_grad(t, x)
    assert e.dtype == torch.float32 and e.shape == (7,)
    torch.testing.assert_close(g, t.grad(x))
    # (C, 1) outputs are accepted
    e2, _ = energy_and_grad(lambda z: t(z)[:, None], x)
    torch.testing.assert_close(e2, e)
    # reduced precision inputs: the energy sees input_dtype
    seen = []
    e3, g3 = energy_and_grad(lambda z: (seen.append(z.dtype), t(z))[1], x.float(), input_dtype=torch.float64)
    assert seen == [torch.float64] and g3.dtype == torch.float32


def test_non_float32_chains_return_their_dtype():
    t = targets.Gaussian.correlated(3, 0.5)
    x0 = torch.zeros(4, 3, dtype=torch.float64)
    x, info = LangevinSampler(t, step_size=0.1, n_steps=3, backend=fast_backend(),
                              generator=torch.Generator().manual_seed(0)).sample(x0)
    assert x.dtype == torch.float64 and info.energy_trace.shape == (3,)
    xb, _ = LangevinSampler(t, step_size=0.1, n_steps=3, backend=fast_backend()).sample(x0.to(torch.bfloat16))
    assert xb.dtype == torch.bfloat16


def test_wrong_energy_shape_is_a_clear_error():
    x0 = torch.zeros(8, 3)
    for bad, shape in ((lambda x: x.sum(), "()"), (lambda x: x, "(8, 3)"), (lambda x: x.sum(1)[:4], "(4,)")):
        s = LangevinSampler(bad, step_size=0.1, n_steps=2, backend="torch")
        with pytest.raises(ValueError, match=r"shape \(C,\) = \(8,\).*got shape " + re_escape(shape)):
            s.sample(x0)
    with pytest.raises(ValueError, match="does not depend differentiably"):
        LangevinSampler(lambda x: torch.zeros(x.shape[0]), step_size=0.1, n_steps=2, backend="torch").sample(x0)
    with pytest.raises(TypeError, match="tensor"):
        LangevinSampler(lambda x: 1.0, step_size=0.1, n_steps=2, backend="torch").sample(x0)


def re_escape(s):
    import re

    return re.escape(s)


class NaNAfter:
    """E(x) = |x|^2 / 2, but chains [0, k) get NaN energies from call ``start`` on."""

    def __init__(self, k, start):
        self.k, self.start, self.calls = k, start, 0

    def __call__(self, x):
        e = 0.5 * (x * x).sum(-1)
        if self.calls >= self.start:
            # a constant per-chain factor: NaN energy and gradient in chains [0, k) only
            scale = torch.where(torch.arange(x.shape[0]) < self.k, float("nan"), 1.0)
            e = e * scale
        self.calls += 1
        return e


@pytest.mark.parametrize("metropolis", [False, True])
def test_nan_mid_chain_names_chain_count_and_window(metropolis):
    C, T = 64, 30
    s = LangevinSampler(NaNAfter(3, 12), step_size=0.1, n_steps=T, metropolis=metropolis, backend=fast_backend(),
                        check_every=10)
    with pytest.raises(LangevinNonFiniteError, match=r"3 of 64 chains went non-finite.*steps \[10, 20\)") as ei:
        s.sample(torch.zeros(C, 2))
    err = ei.value
    assert err.n_chains == 3 and err.window == (10, 20)
    # ULA evaluates at x_0..x_{T-1}: call 12 is step 12; MALA's call 0 is the initial state, call 1+t step t
    assert err.first_step == (11 if metropolis else 12)
    assert err.chains[:3].all() and not err.chains[3:].any()
    # a failure after the last mid-run check is reported in the final window
    s = LangevinSampler(NaNAfter(2, 26), step_size=0.1, n_steps=T, metropolis=metropolis, backend=fast_backend(),
                        check_every=10)
    with pytest.raises(LangevinNonFiniteError, match=r"2 of 64 chains.*steps \[20, 30\)") as ei:
        s.sample(torch.zeros(C, 2))
    assert ei.value.first_step == (25 if metropolis else 26)
    # checked once at the end by default: the window is the whole run
    s = LangevinSampler(NaNAfter(5, 4), step_size=0.1, n_steps=T, metropolis=metropolis, backend=fast_backend())
    with pytest.raises(LangevinNonFiniteError, match=r"5 of 64 chains.*steps \[0, 30\)"):
        s.sample(torch.zeros(C, 2))
    # check_finite=False finishes and reports the chains
    s = LangevinSampler(NaNAfter(5, 4), step_size=0.1, n_steps=T, metropolis=metropolis, backend=fast_backend(),
                        check_finite=False)
    x, info = s.sample(torch.zeros(C, 2))
    assert int(info.nonfinite.sum()) == 5 and bool(info.nonfinite[:5].all())
    if metropolis:  # NaN proposals are rejected: the chains themselves stay finite
        assert bool(torch.isfinite(x).all())
        assert float(info.acceptance_rate[:5].max()) <= 4 / T


def test_bad_arguments():
    t = targets.Banana()
    with pytest.raises(ValueError, match="step_size"):
        LangevinSampler(t, step_size=-0.1, n_steps=3)
    with pytest.raises(ValueError, match="n_steps"):
        LangevinSampler(t, step_size=0.1, n_steps=0)
    with pytest.raises(ValueError, match="clip_mode"):
        LangevinSampler(t, step_size=0.1, n_steps=3, grad_clip=1.0, clip_mode="l2")
    with pytest.raises(ValueError, match="clamp"):
        LangevinSampler(t, step_size=0.1, n_steps=3, clamp=(1.0, -1.0))
    with pytest.raises(ValueError, match="metropolis"):
        LangevinSampler(t, step_size=0.1, n_steps=3, metropolis=True, grad_clip=1.0)
    with pytest.raises(ValueError, match="adapt_step_size"):
        LangevinSampler(t, step_size=0.1, n_steps=3, adapt_step_size=True)
    with pytest.raises(TypeError, match="energy"):
        LangevinSampler(3, step_size=0.1, n_steps=3)
    s = LangevinSampler(t, step_size=torch.ones(4) * 0.1, n_steps=2, backend="torch")
    with pytest.raises(ValueError, match=r"step_size must be a number or a tensor of shape \(C,\) = \(5,\)"):
        s.sample(torch.zeros(5, 2))
    with pytest.raises(TypeError, match="x0"):
        s.sample(torch.zeros(4, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="LangevinState"):
        ula_step("x", t, R.seed_pair(0), 0, make_params(torch.zeros(2, 2), 0.1, backend="torch"))


def test_exports():
    assert gensample.LangevinSampler is LangevinSampler
    assert gensample.samplers.LangevinState is LangevinState
    assert callable(gensample.langevin_step) and callable(gensample.langevin_step_)
    for name in ("LangevinSampler", "ReplayBuffer", "targets", "optim", "ebm", "langevin_step", "langevin_step_",
                 "reparameterize_kl", "random", "nn", "models"):
        assert name in gensample.__all__ and hasattr(gensample, name)
