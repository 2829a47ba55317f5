"""reparameterize_kl on every backend: values and gradients against the textbook
reference fed the same noise, KL against torch.distributions, the sample
distribution, gradcheck, opcheck, torch.compile, and bad input."""
import math

import pytest
import torch
from scipy import stats
from torch.distributions import Normal, kl_divergence

import gensample
from gensample import random as R
from gensample.reference import reparameterize_kl_textbook

from conftest import backend_params

# Per-dtype tolerances against a float64 reference (outputs are rounded to the dtype).
TOL = {
    torch.float64: dict(atol=1e-10, rtol=1e-10),
    torch.float32: dict(atol=2e-5, rtol=2e-5),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=2e-2, rtol=1.6e-2),
}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# awkward shapes: primes, 1, block size +- 1, empty batch, 1-D, 3-D
SHAPES = [(7, 13), (1, 1), (5, 127), (3, 129), (0, 16), (11,), (2, 3, 17), (4, 0)]


def _seed_for(gen_seed: int):
    return R.draw_seed(torch.Generator().manual_seed(gen_seed), "cpu")


def _eps(seed, n_samples, shape):
    n = n_samples * math.prod(shape)
    eps = R.normal_stream(seed, n).double()
    return eps.view((n_samples, *shape)) if n_samples > 1 else eps.view(shape)


def _inputs(shape, dtype, prior=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = (torch.randn(shape, generator=g, dtype=torch.float64) * 2).to(dtype)
    lv = (torch.randn(shape, generator=g, dtype=torch.float64) * 1.5).to(dtype)
    if not prior:
        return mu, lv, None, None
    d = shape[-1]
    pm = (torch.randn(d, generator=g, dtype=torch.float64)).to(dtype)
    plv = (torch.randn(d, generator=g, dtype=torch.float64) * 0.5).to(dtype)
    return mu, lv, pm, plv


def _ref64(mu, lv, eps, pm=None, plv=None):
    """Textbook formula in float64 (expm1 form of the KL for accuracy)."""
    mu, lv = mu.double(), lv.double()
    pm = torch.zeros_like(mu) if pm is None else pm.double().expand_as(mu)
    plv = torch.zeros_like(mu) if plv is None else plv.double().expand_as(mu)
    z = mu + torch.exp(0.5 * lv) * eps
    d = lv - plv
    kl = 0.5 * (torch.expm1(d) - d + (mu - pm) ** 2 * torch.exp(-plv)).sum(-1)
    return z, kl


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("prior", [False, True], ids=["std-prior", "prior"])
def test_forward_backward_match_reference(backend, dtype, shape, prior):
    mu, lv, pm, plv = _inputs(shape, dtype, prior)
    leaves = [t.clone().requires_grad_(True) if t is not None else None for t in (mu, lv, pm, plv)]
    z, kl = gensample.reparameterize_kl(leaves[0], leaves[1], prior_mu=leaves[2], prior_logvar=leaves[3],
                                        generator=torch.Generator().manual_seed(11), backend=backend)
    eps = _eps(_seed_for(11), 1, shape)
    ref_leaves = [t.double().requires_grad_(True) if t is not None else None for t in (mu, lv, pm, plv)]
    zr, klr = _ref64(ref_leaves[0], ref_leaves[1], eps, ref_leaves[2], ref_leaves[3])
    assert z.shape == shape and z.dtype == dtype
    assert kl.shape == shape[:-1] and kl.dtype == dtype
    tol = TOL[dtype]
    torch.testing.assert_close(z.double(), zr.detach(), **tol)
    kl_tol = dict(atol=tol["atol"] * max(shape[-1], 1), rtol=tol["rtol"] * 4)
    torch.testing.assert_close(kl.double(), klr.detach(), **kl_tol)

    # backward with non-trivial upstream gradients for both outputs
    g = torch.Generator().manual_seed(5)
    gz = torch.randn(shape, generator=g, dtype=torch.float64)
    gkl = torch.randn(shape[:-1], generator=g, dtype=torch.float64)
    (z.double() * gz).sum().add((kl.double() * gkl).sum()).backward()
    (zr * gz).sum().add((klr * gkl).sum()).backward()
    for name, a, b in zip(("mu", "logvar", "prior_mu", "prior_logvar"), leaves, ref_leaves):
        if a is None:
            continue
        assert a.grad is not None, name
        assert a.grad.shape == a.shape and a.grad.dtype == dtype
        gtol = dict(atol=tol["atol"] * 10 * max(math.prod(shape[:-1]), 1), rtol=tol["rtol"] * 10)
        torch.testing.assert_close(a.grad.double(), b.grad, **gtol, msg=f"grad {name}")


@pytest.mark.parametrize("backend", backend_params())
def test_n_samples_and_reductions(backend):
    mu, lv, _, _ = _inputs((6, 10), torch.float32)
    mu.requires_grad_(True)
    lv.requires_grad_(True)
    z, kl = gensample.reparameterize_kl(mu, lv, n_samples=3, reduction="sum",
                                        generator=torch.Generator().manual_seed(2), backend=backend)
    assert z.shape == (3, 6, 10) and kl.shape == ()
    eps = _eps(_seed_for(2), 3, (6, 10))
    muv, lvv = mu.detach().double().requires_grad_(True), lv.detach().double().requires_grad_(True)
    zr, klr = _ref64(muv, lvv, eps)
    torch.testing.assert_close(z.double(), zr.detach(), atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(kl.double(), klr.sum().detach(), atol=1e-4, rtol=1e-5)
    (z.sum() + kl).backward()
    (zr.sum() + klr.sum()).backward()
    torch.testing.assert_close(mu.grad.double(), muv.grad, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(lv.grad.double(), lvv.grad, atol=1e-4, rtol=1e-5)
    _, klm = gensample.reparameterize_kl(mu, lv, reduction="mean", backend=backend)
    torch.testing.assert_close(klm.double(), klr.mean().detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", backend_params())
def test_noncontiguous_inputs_match_contiguous(backend):
    h = torch.randn(9, 2 * 21, dtype=torch.float32)
    mu, lv = h.chunk(2, dim=-1)  # row stride 42
    assert not mu.is_contiguous()
    mut = torch.randn(21, 9).t()  # column-major
    pm = torch.randn(1, 21)
    for a, b in [(mu, lv), (mut, lv)]:
        z1, kl1 = gensample.reparameterize_kl(a, b, prior_mu=pm, generator=torch.Generator().manual_seed(4),
                                              backend=backend)
        z2, kl2 = gensample.reparameterize_kl(a.contiguous(), b.contiguous(), prior_mu=pm.contiguous(),
                                              generator=torch.Generator().manual_seed(4), backend=backend)
        assert torch.equal(z1, z2) and torch.equal(kl1, kl2)


@pytest.mark.parametrize("backend", backend_params())
def test_backends_agree_on_the_same_stream(backend):
    mu, lv, pm, plv = _inputs((33, 65), torch.float32, prior=True)
    z, kl = gensample.reparameterize_kl(mu, lv, prior_mu=pm, prior_logvar=plv, n_samples=2,
                                        generator=torch.Generator().manual_seed(9), backend=backend)
    zt, klt = gensample.reparameterize_kl(mu, lv, prior_mu=pm, prior_logvar=plv, n_samples=2,
                                          generator=torch.Generator().manual_seed(9), backend="torch")
    # same noise bit for bit; z differs at most by exp's last-ulp differences between
    # libms: |dz| <= 2 ulp of |mu| + |std * eps| (the two terms of the sum)
    std_eps = (zt.double() - mu.double()).abs()
    bound = 2 * torch.finfo(torch.float32).eps * (mu.double().abs() + std_eps)
    assert ((z.double() - zt.double()).abs() <= bound).all()
    torch.testing.assert_close(kl, klt, atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize("general", [False, True])
def test_kl_equals_torch_distributions(general):
    mu, lv, pm, plv = _inputs((50, 12), torch.float64, prior=general)
    _, kl = gensample.reparameterize_kl(mu, lv, prior_mu=pm, prior_logvar=plv)
    q = Normal(mu, torch.exp(0.5 * lv))
    p = Normal(pm if general else torch.zeros_like(mu), torch.exp(0.5 * plv) if general else torch.ones_like(mu))
    torch.testing.assert_close(kl, kl_divergence(q, p).sum(-1), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("backend", backend_params())
def test_standardized_samples_are_standard_normal(backend):
    # KS test: a correct sampler fails it with probability alpha = 1e-3 (fixed seed).
    mu, lv, _, _ = _inputs((200, 100), torch.float32)
    z, _ = gensample.reparameterize_kl(mu, lv, generator=torch.Generator().manual_seed(123), backend=backend)
    u = ((z.double() - mu.double()) / torch.exp(0.5 * lv.double())).flatten().numpy()
    assert stats.kstest(u, "norm").pvalue > 1e-3


def test_tiny_std_gradient_is_exact():
    # std = exp(-10) ~ 4.5e-5 next to mu = 100: (z - mu) / std would keep ~1 digit in float32.
    mu = torch.full((64, 32), 100.0, requires_grad=True)
    lv = torch.full((64, 32), -20.0, requires_grad=True)
    for backend in ("torch", None):
        mu.grad = lv.grad = None
        z, _ = gensample.reparameterize_kl(mu, lv, generator=torch.Generator().manual_seed(1), backend=backend)
        z.sum().backward()
        eps = _eps(_seed_for(1), 1, (64, 32))
        expected = 0.5 * math.exp(-10.0) * eps
        torch.testing.assert_close(lv.grad.double(), expected, atol=0, rtol=1e-6)
        # the naive recovery is far off, which is why the noise is regenerated
        naive = 0.5 * math.exp(-10.0) * (z.detach().double() - 100.0) / math.exp(-10.0)
        assert (naive - expected).abs().max() > 1e-6


def _gradcheck_backends():
    return [p for p in backend_params() if p.values[0] in ("torch", "cpu")]


@pytest.mark.parametrize("backend", _gradcheck_backends())
def test_gradcheck_float64(backend):
    mu, lv, pm, plv = (t.requires_grad_(True) for t in _inputs((3, 5), torch.float64, prior=True))
    gen_seed = 17

    def f(mu, lv, pm, plv):
        return gensample.reparameterize_kl(mu, lv, prior_mu=pm, prior_logvar=plv, n_samples=2,
                                           generator=torch.Generator().manual_seed(gen_seed), backend=backend)

    assert torch.autograd.gradcheck(f, (mu, lv, pm, plv))


@pytest.mark.parametrize("backend", _gradcheck_backends())
def test_opcheck(backend):
    from gensample.ops.reparam import _fwd_op

    op = _fwd_op(backend)
    mu, lv, pm, plv = _inputs((4, 6), torch.float32, prior=True)
    pm2, plv2 = pm.expand(4, 6), plv.expand(4, 6)
    seed = R.seed_pair(3, 1)
    cases = [
        (mu, lv, None, None, seed, 1),
        (mu.requires_grad_(True), lv.requires_grad_(True), pm2, plv2, seed, 2),
    ]
    for args in cases:
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("backend", _gradcheck_backends())
def test_torch_compile_fullgraph_vae_loss_matches_eager(backend):
    torch._dynamo.reset()
    enc = torch.nn.Linear(10, 8)
    dec = torch.nn.Linear(4, 10)
    x = torch.rand(16, 10)

    def loss_fn(x):
        mu, lv = enc(x).chunk(2, dim=-1)
        z, kl = gensample.reparameterize_kl(mu, lv, reduction="mean", backend=backend)
        rec = torch.nn.functional.binary_cross_entropy_with_logits(dec(z), x, reduction="sum") / x.shape[0]
        return rec + kl

    # fallback_random makes inductor draw the seed with ATen's generator, as eager does
    compiled = torch.compile(loss_fn, fullgraph=True, options={"fallback_random": True})
    torch.manual_seed(0)
    le = loss_fn(x)
    ge = torch.autograd.grad(le, list(enc.parameters()))
    torch.manual_seed(0)
    lc = compiled(x)
    gc = torch.autograd.grad(lc, list(enc.parameters()))
    torch.testing.assert_close(lc, le, atol=1e-5, rtol=1e-5)
    for a, b in zip(gc, ge):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_logvar_clamp_guard():
    mu = torch.zeros(2, 3)
    lv = torch.tensor([[-50.0, 0.0, 50.0]] * 2, requires_grad=True)
    z, kl = gensample.reparameterize_kl(mu, lv, logvar_clamp=(-10.0, 10.0), generator=torch.Generator().manual_seed(0))
    z2, kl2 = gensample.reparameterize_kl(mu, lv.detach().clamp(-10, 10), generator=torch.Generator().manual_seed(0))
    assert torch.equal(z, z2) and torch.equal(kl, kl2)
    kl.sum().backward()
    assert lv.grad[0, 0] == 0 and lv.grad[0, 2] == 0 and lv.grad[0, 1] == 0.0  # d/dlv at lv=0 is expm1(0)/2 = 0


@pytest.mark.parametrize("backend", backend_params())
def test_generator_reproducibility(backend):
    mu, lv, _, _ = _inputs((5, 8), torch.float32)
    torch.manual_seed(3)
    a, _ = gensample.reparameterize_kl(mu, lv, backend=backend)
    b, _ = gensample.reparameterize_kl(mu, lv, backend=backend)
    torch.manual_seed(3)
    a2, _ = gensample.reparameterize_kl(mu, lv, backend=backend)
    assert torch.equal(a, a2) and not torch.equal(a, b)


# ----------------------------------------------------------------------------
# bad input: a clear error naming the argument
# ----------------------------------------------------------------------------
BAD = [
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 5)), ValueError, "logvar"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(4)), ValueError, "logvar"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(1, 4)), ValueError, "no broadcasting"),
    (dict(mu=torch.zeros(3, 4, dtype=torch.int64), logvar=torch.zeros(3, 4, dtype=torch.int64)), TypeError, "mu"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4, dtype=torch.int32)), TypeError, "logvar"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4, dtype=torch.float64)), TypeError, "logvar"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4, device="meta")), ValueError, "device"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4), prior_mu=torch.zeros(5)), ValueError, "prior_mu"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4), prior_logvar=torch.zeros(2, 3, 4)), ValueError, "prior_logvar"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4), prior_mu=torch.zeros(4, dtype=torch.float64)), TypeError, "prior_mu"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4), n_samples=0), ValueError, "n_samples"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4), n_samples=1.5), ValueError, "n_samples"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4), reduction="avg"), ValueError, "reduction"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4), backend="tpu"), ValueError, "backend"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4), backend="cuda"), gensample.BackendUnavailableError, "cuda"),
    (dict(mu=torch.zeros(3, 4), logvar=torch.zeros(3, 4), logvar_clamp=(1.0, -1.0)), ValueError, "logvar_clamp"),
    (dict(mu=torch.zeros(()), logvar=torch.zeros(())), ValueError, "mu"),
    (dict(mu=[0.0], logvar=torch.zeros(1)), TypeError, "mu"),
]


@pytest.mark.parametrize("kwargs,exc,match", BAD)
def test_bad_input_raises_clear_error(kwargs, exc, match):
    mu = kwargs.pop("mu")
    lv = kwargs.pop("logvar")
    with pytest.raises(exc, match=match):
        gensample.reparameterize_kl(mu, lv, **kwargs)


def test_env_var_forces_backend(monkeypatch):
    monkeypatch.setenv("GENSAMPLE_BACKEND", "cuda")
    with pytest.raises(gensample.BackendUnavailableError, match="GENSAMPLE_BACKEND"):
        gensample.reparameterize_kl(torch.zeros(2, 2), torch.zeros(2, 2))
    monkeypatch.setenv("GENSAMPLE_BACKEND", "nope")
    with pytest.raises(ValueError, match="GENSAMPLE_BACKEND"):
        gensample.reparameterize_kl(torch.zeros(2, 2), torch.zeros(2, 2))
    monkeypatch.setenv("GENSAMPLE_BACKEND", "torch")
    z, _ = gensample.reparameterize_kl(torch.zeros(2, 2), torch.zeros(2, 2))
    assert z.shape == (2, 2)
