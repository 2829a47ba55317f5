"""Langevin-family ops (langevin_step, langevin_step_, mala_accept_, sgld_step_) on every
backend: bit-for-bit equality with the torch backend (the specification) on the same
stream for every knob, the spec against the textbook formula fed the stream's noise,
MALA against a float64 textbook computation, SGLD's multi-tensor stream layout,
out=/in-place semantics, bad input, opcheck, torch.compile and reproducibility."""
import math

import pytest
import torch

import gensample
from gensample import random as R
from gensample.ops import langevin as L
from gensample.ops import langevin_step, langevin_step_, mala_accept_, sgld_step_

from conftest import backend_params


def _has_kernel(backend, name):
    if backend == "torch":
        return True
    if backend == "triton":
        return hasattr(torch.ops.gensample, name + "_triton")
    return hasattr(torch.ops.gensample, name)


def _need(backend, name):
    if not _has_kernel(backend, name):
        pytest.skip(f"no {name} kernel for backend {backend} in this build")


def _shape(backend):
    # the triton interpreter is slow: small shapes there; the cpu shape spans several
    # of its 16384-element tasks, with chains that straddle task boundaries
    return (3, 5, 7) if backend == "triton" else (5, 9001)


def _inputs(shape, seed=0, gscale=3.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    grad = torch.randn(shape, generator=g) * gscale
    return x, grad


def _mismatch(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    return int((a != b).sum())


# Every knob (clip_mode "norm" is compared with rtol 1e-6: per-chain sum order).
KNOBS = {
    "plain": dict(step_size=0.1),
    "value_clip": dict(step_size=0.1, grad_clip=0.5),
    "value_clip_clamp": dict(step_size=0.1, grad_clip=0.5, clamp=(-1.0, 1.0)),
    "clamp_only_hi": dict(step_size=0.1, clamp=(None, 0.25)),
    "per_chain": "per_chain",
    "decoupled_noise": dict(step_size=10.0, noise_scale=0.005, grad_clip=0.01, clamp=(-1.0, 1.0)),
    "noise_zero": dict(step_size=0.05, noise_scale=0.0),
    "norm_clip": dict(step_size=0.1, grad_clip=2.0, clip_mode="norm"),
    "norm_clip_clamp": dict(step_size=0.1, grad_clip=50.0, clip_mode="norm", clamp=(-2.0, 2.0)),
}


def _knob(name, C):
    k = KNOBS[name]
    if k == "per_chain":
        g = torch.Generator().manual_seed(3)
        return dict(step_size=torch.rand(C, generator=g) * 0.2, noise_scale=torch.rand(C, generator=g),
                    grad_clip=1.0)
    return dict(k)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("knob", list(KNOBS))
def test_step_matches_torch_backend(backend, knob):
    _need(backend, "langevin_step")
    shape = _shape(backend)
    x, grad = _inputs(shape)
    kw = _knob(knob, shape[0])
    seed = R.seed_pair(12345, 6)
    y_ref, n_ref = langevin_step(x, grad, **kw, seed=seed, backend="torch", return_grad_norm=True)
    y, n = langevin_step(x, grad, **kw, seed=seed, backend=backend, return_grad_norm=True)
    xi = x.clone()
    out, n_i = langevin_step_(xi, grad, **kw, seed=seed, backend=backend, return_grad_norm=True)
    assert out is xi
    torch.testing.assert_close(n, n_ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(n_i, n_ref, rtol=1e-6, atol=0)
    if kw.get("clip_mode") == "norm":
        torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(xi, y_ref, rtol=1e-6, atol=1e-6)
    else:
        assert _mismatch(y, y_ref) == 0
        assert _mismatch(xi, y_ref) == 0
    assert not torch.equal(y, x)


@pytest.mark.parametrize("shape", [(40000, 1), (7001, 3), (2, 3, 4, 5), (2, 20000), (48, 1024)], ids=str)
def test_cpu_chain_layouts(shape):
    """Many tiny chains per task, chains straddling tasks, 3-D events: cpu == spec."""
    if not _has_kernel("cpu", "langevin_step"):
        pytest.skip("extension not built")
    x, grad = _inputs(shape)
    C = shape[0]
    seed = R.seed_pair(8, 2)
    h = torch.rand(C, generator=torch.Generator().manual_seed(0))
    for kw in (dict(grad_clip=0.3, clamp=(-1.0, 2.0)), dict(grad_clip=1.0, clip_mode="norm")):
        ref, nr = langevin_step(x, grad, step_size=h, seed=seed, backend="torch", return_grad_norm=True, **kw)
        y, n = langevin_step(x, grad, step_size=h, seed=seed, backend="cpu", return_grad_norm=True, **kw)
        torch.testing.assert_close(n, nr, rtol=1e-6, atol=0)
        if kw.get("clip_mode") == "norm":
            torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)
        else:
            assert _mismatch(y, ref) == 0


def test_torch_spec_equals_textbook_formula():
    C, M = 6, 37
    x, grad = _inputs((C, M))
    seed = R.seed_pair(99, 1 << 33)
    eps = R.normal_stream(seed, C * M).view(C, M)
    h = torch.rand(C, generator=torch.Generator().manual_seed(1)) * 0.3
    s = torch.rand(C, generator=torch.Generator().manual_seed(2))
    # value clip + clamp, per-chain step and noise
    y = langevin_step(x, grad, step_size=h, noise_scale=s, grad_clip=0.7, clamp=(-1.5, 1.2), seed=seed,
                      backend="torch")
    ref = (x - h[:, None] * grad.clamp(-0.7, 0.7) + s[:, None] * eps).clamp(-1.5, 1.2)
    assert _mismatch(y, ref) == 0
    # default noise sqrt(2 h) (of the float32 h, correctly rounded), no clip, no clamp
    y = langevin_step(x, grad, step_size=0.01, seed=seed, backend="torch")
    h32 = torch.tensor(0.01)
    ref = x - h32 * grad + (2 * h32.double()).sqrt().float() * eps
    assert _mismatch(y, ref) == 0
    # norm clip: per chain g * min(1, c / ||g||)
    y, n = langevin_step(x, grad, step_size=0.01, grad_clip=5.0, clip_mode="norm", seed=seed, backend="torch",
                         return_grad_norm=True)
    nrm = grad.double().norm(dim=1)
    torch.testing.assert_close(n.double(), nrm, rtol=1e-7, atol=0)
    g2 = grad.double() * torch.clamp(5.0 / nrm, max=1.0)[:, None]
    ref = x.double() - 0.01 * g2 + math.sqrt(0.02) * eps.double()
    torch.testing.assert_close(y.double(), ref, rtol=1e-6, atol=1e-6)


def _gauss_mala_state(C, M, h, seed=0):
    """Standard Gaussian target E = |x|^2 / 2 and one proposal from x."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(C, M, generator=g) * 1.3
    grad = x.clone()
    energy = 0.5 * (x * x).sum(1)
    xp = langevin_step(x, grad, step_size=h, seed=R.seed_pair(7, 0), backend="torch")
    gp = xp.clone()
    ep = 0.5 * (xp * xp).sum(1)
    return x, grad, energy, xp, gp, ep


def _mala_ref64(x, grad, energy, xp, gp, ep, h):
    h = h.double()[:, None] if isinstance(h, torch.Tensor) else h
    s2 = 2.0 * h
    x, grad, xp, gp = x.double(), grad.double(), xp.double(), gp.double()
    lq_fwd = -((xp - x + h * grad) ** 2).sum(1, keepdim=True) / (2 * s2)  # log q(x' | x)
    lq_bwd = -((x - xp + h * gp) ** 2).sum(1, keepdim=True) / (2 * s2)  # log q(x | x')
    return (energy.double() - ep.double()) + (lq_bwd - lq_fwd).squeeze(1)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("per_chain", [False, True], ids=["scalar_h", "tensor_h"])
def test_mala_accept_matches_float64_textbook(backend, per_chain):
    _need(backend, "mala_accept_")
    C, M = (16, 5) if backend == "triton" else (300, 171)  # cpu: several tasks, chains straddling them
    h = torch.linspace(0.05, 0.6, C) if per_chain else 0.3
    x, grad, energy, xp, gp, ep = _gauss_mala_state(C, M, h)
    seed = R.seed_pair(2024, 3)
    la64 = _mala_ref64(x, grad, energy, xp, gp, ep, h)
    xs, gs, es = x.clone(), grad.clone(), energy.clone()
    acc, la = mala_accept_(xs, gs, es, xp, gp, ep, step_size=h, seed=seed, backend=backend)
    assert acc.dtype == torch.bool and acc.shape == (C,) and la.dtype == torch.float32 and la.shape == (C,)
    torch.testing.assert_close(la.double(), la64, rtol=1e-4, atol=1e-4)
    u = R.uniform_stream(seed, C).double()
    thresh = torch.exp(la64.clamp(max=0))
    clear = (u - thresh).abs() > 1e-3
    assert int(clear.sum()) > 0.9 * C
    assert torch.equal(acc[clear], (u < thresh)[clear])
    assert 0 < int(acc.sum()) < C  # both outcomes exercised
    # in-place updates only on accepted chains
    a = acc[:, None]
    assert torch.equal(xs, torch.where(a, xp, x))
    assert torch.equal(gs, torch.where(a, gp, grad))
    assert torch.equal(es, torch.where(acc, ep, energy))
    # and the same decisions as the specification (same stream)
    if backend != "torch":
        xs2, gs2, es2 = x.clone(), grad.clone(), energy.clone()
        acc2, la2 = mala_accept_(xs2, gs2, es2, xp, gp, ep, step_size=h, seed=seed, backend="torch")
        torch.testing.assert_close(la, la2, rtol=1e-5, atol=1e-5)
        near = (R.uniform_stream(seed, C) - torch.exp(la2.clamp(max=0))).abs() < 1e-5
        assert torch.equal(acc[~near], acc2[~near])


@pytest.mark.parametrize("backend", backend_params())
def test_mala_nan_proposal_rejects(backend):
    _need(backend, "mala_accept_")
    x, grad, energy, xp, gp, ep = _gauss_mala_state(4, 3, 0.1)
    ep = ep.clone()
    ep[1] = float("nan")
    xp = xp.clone()
    xp[2, 0] = float("nan")
    xs = x.clone()
    acc, la = mala_accept_(xs, grad.clone(), energy.clone(), xp, gp, ep, step_size=0.1,
                           seed=R.seed_pair(1, 0), backend=backend)
    assert not bool(acc[1]) and not bool(acc[2])
    assert torch.isnan(la[1]) and torch.isnan(la[2])
    assert torch.equal(xs[1:3], x[1:3])


def _sgld_ref(params, grads, lr, noise, wd, seed):
    out, base = [], 0
    for p, g in zip(params, grads):
        n = p.numel()
        eps = R.normal_stream(seed, base + n)[base:].view(p.shape)
        t = torch.tensor(wd) * p
        g2 = g + t
        d = torch.tensor(lr) * g2
        th = p - d
        th = th + torch.tensor(noise) * eps
        out.append(th)
        base += (n + 3) // 4 * 4
    return out


@pytest.mark.parametrize("backend", backend_params())
def test_sgld_matches_per_tensor_spec(backend):
    _need(backend, "sgld_step_")
    shapes = [(3,), (5, 7), (1,), (2, 3, 4), ()]
    if backend != "triton":
        shapes.append((20000,))  # spans several cpu tasks
    gen = torch.Generator().manual_seed(5)
    params = [torch.randn(s, generator=gen) for s in shapes]
    grads = [torch.randn(s, generator=gen) for s in shapes]
    seed = R.seed_pair(77, 10)
    ref = _sgld_ref(params, grads, 0.01, math.sqrt(2 * 0.01 * 0.5), 0.1, seed)
    ps = [p.clone() for p in params]
    assert sgld_step_(ps, grads, lr=0.01, noise_scale=math.sqrt(2 * 0.01 * 0.5), weight_decay=0.1, seed=seed,
                      backend=backend) is None
    for p, r in zip(ps, ref):
        assert _mismatch(p, r) == 0
    assert L.sgld_bases([3, 35, 1, 24, 1]) == [0, 4, 40, 44, 68]


def test_sgld_non_float32_and_noncontiguous_params():
    gen = torch.Generator().manual_seed(8)
    p64 = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    pt = torch.randn(6, 4, generator=gen).t()  # non-contiguous
    g64 = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    gt = torch.randn(4, 6, generator=gen)
    seed = R.seed_pair(3, 0)
    ref = _sgld_ref([p64.float(), pt.contiguous()], [g64.float(), gt], 0.1, 0.2, 0.0, seed)
    a, b = p64.clone(), pt.clone()
    sgld_step_([a, b], [g64, gt], lr=0.1, noise_scale=0.2, seed=seed)
    assert torch.equal(a, ref[0].double())
    assert torch.equal(b, ref[1])


@pytest.mark.parametrize("backend", [b for b in ("cpu", "torch")])
def test_out_and_inplace_semantics(backend):
    if not _has_kernel(backend, "langevin_step"):
        pytest.skip("no kernel")
    x, grad = _inputs((4, 3, 5))
    seed = R.seed_pair(5, 0)
    kw = dict(step_size=0.2, grad_clip=1.0, clamp=(-2.0, 2.0), seed=seed, backend=backend)
    y = langevin_step(x, grad, **kw)
    assert y.shape == x.shape and y.dtype == x.dtype and y.data_ptr() != x.data_ptr()
    out = torch.empty_like(x)
    r = langevin_step(x, grad, out=out, **kw)
    assert r is out and torch.equal(out, y)
    xx = x.clone()
    r = langevin_step(xx, grad, out=xx, **kw)
    assert r is xx and torch.equal(xx, y)
    xx = x.clone()
    assert langevin_step_(xx, grad, **kw) is xx and torch.equal(xx, y)
    # non-contiguous x (in place through a float32 copy) and other dtypes (math in float32)
    xt = x.transpose(1, 2).contiguous().transpose(1, 2)
    assert not xt.is_contiguous()
    langevin_step_(xt, grad, **kw)
    assert torch.equal(xt, y)
    for dt in (torch.float64, torch.bfloat16, torch.float16):
        yd = langevin_step(x.to(dt), grad.to(dt), **kw)
        ref = langevin_step(x.to(dt).float(), grad.to(dt).float(), **kw).to(dt)
        assert yd.dtype == dt and torch.equal(yd, ref)
        xd = x.to(dt)
        langevin_step_(xd, grad.to(dt), **kw)
        assert torch.equal(xd, ref)
    # empty chains / empty events
    for shp in ((0, 4), (3, 0)):
        e = torch.zeros(shp)
        ye, ne = langevin_step(e, e, step_size=0.1, seed=seed, backend=backend, return_grad_norm=True)
        assert ye.shape == shp and ne.shape == (shp[0],) and bool((ne == 0).all())


def test_nan_grad_propagates_without_sync():
    # documented: the op does not check values (that would sync); the sampler checks once per run
    x, grad = _inputs((3, 8))
    grad[1, 2] = float("nan")
    for b in ("torch", "cpu"):
        if not _has_kernel(b, "langevin_step"):
            continue
        y = langevin_step(x, grad, step_size=0.1, grad_clip=1.0, seed=R.seed_pair(1, 0), backend=b)
        assert torch.isnan(y[1, 2]) and int(torch.isnan(y).sum()) == 1


def test_bad_input_errors_name_the_argument():
    x, grad = _inputs((4, 6))
    ok = dict(step_size=0.1)
    with pytest.raises(ValueError, match="grad must have exactly x's shape"):
        langevin_step(x, grad[:, :5], **ok)
    with pytest.raises(TypeError, match="grad has dtype"):
        langevin_step(x, grad.double(), **ok)
    with pytest.raises(ValueError, match="grad is on meta"):
        langevin_step(x, grad.to("meta"), **ok)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        langevin_step([1.0], grad, **ok)
    with pytest.raises(TypeError, match="x must be a floating tensor"):
        langevin_step(x.long(), grad.long(), **ok)
    with pytest.raises(ValueError, match="step_size must be > 0"):
        langevin_step(x, grad, step_size=-0.1)
    with pytest.raises(ValueError, match="step_size must be finite and >= 0 for every chain"):
        langevin_step(x, grad, step_size=torch.tensor([0.1, -0.1, 0.1, 0.1]))
    with pytest.raises(ValueError, match=r"step_size must be a number or a tensor of shape \(C,\) = \(4,\)"):
        langevin_step(x, grad, step_size=torch.full((3,), 0.1))
    with pytest.raises(ValueError, match="noise_scale must be >= 0"):
        langevin_step(x, grad, step_size=0.1, noise_scale=-1.0)
    with pytest.raises(ValueError, match="clamp must be"):
        langevin_step(x, grad, step_size=0.1, clamp=(1.0, -1.0))
    with pytest.raises(ValueError, match="clamp must be"):
        langevin_step(x, grad, step_size=0.1, clamp=(1.0, 1.0))
    with pytest.raises(ValueError, match="clip_mode must be one of"):
        langevin_step(x, grad, step_size=0.1, grad_clip=1.0, clip_mode="max")
    with pytest.raises(ValueError, match="grad_clip must be > 0"):
        langevin_step(x, grad, step_size=0.1, grad_clip=0.0)
    with pytest.raises(ValueError, match="x must have at least one dimension"):
        langevin_step(torch.tensor(1.0), torch.tensor(1.0), **ok)
    with pytest.raises(ValueError, match="out must have x's shape"):
        langevin_step(x, grad, out=torch.empty(3, 6), **ok)
    with pytest.raises(ValueError, match="seed must be an int64 tensor"):
        langevin_step(x, grad, seed=torch.tensor([1, 2, 3]), **ok)
    with pytest.raises(ValueError, match="backend must be one of"):
        langevin_step(x, grad, backend="numpy", **ok)
    e = torch.zeros(4)
    with pytest.raises(ValueError, match=r"energy_prop must have shape \(C,\) = \(4,\)"):
        mala_accept_(x, grad, e, x, grad, torch.zeros(3), step_size=0.1)
    with pytest.raises(ValueError, match="x_prop must have exactly x's shape"):
        mala_accept_(x, grad, e, x[:2], grad, e, step_size=0.1)
    with pytest.raises(ValueError, match="step_size must be > 0"):
        mala_accept_(x, grad, e, x, grad, e, step_size=0.0)
    with pytest.raises(ValueError, match="params and grads must have the same length"):
        sgld_step_([x], [], lr=0.1, noise_scale=0.1)
    with pytest.raises(ValueError, match=r"grads\[0\] must have exactly params\[0\]'s shape"):
        sgld_step_([x], [grad[:2]], lr=0.1, noise_scale=0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        sgld_step_([x], [grad], lr=-1.0, noise_scale=0.1)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        sgld_step_([x], [grad], lr=0.1, noise_scale=0.1, weight_decay=-1.0)


def _op_args(C=3, M=20):
    x, grad = _inputs((C, M))
    h = torch.full((C,), 0.1)
    s = torch.full((C,), 0.4)
    seed = R.seed_pair(4, 0)
    e = torch.randn(C)
    return x, grad, h, s, seed, e


@pytest.mark.parametrize("suffix", ["_torch", ""], ids=["torch", "cpu"])
def test_opcheck(suffix):
    if suffix == "" and not _has_kernel("cpu", "langevin_step"):
        pytest.skip("extension not built")
    ops = torch.ops.gensample
    x, grad, h, s, seed, e = _op_args()
    for mode, lo, hi, want in ((0, -math.inf, math.inf, False), (1, -1.0, 1.0, True), (2, -math.inf, 0.5, False)):
        args = (x, grad, h, s, seed, 1.5, mode, lo, hi, want)
        torch.library.opcheck(getattr(ops, "langevin_step" + suffix).default, args)
        torch.library.opcheck(getattr(ops, "langevin_step_" + suffix).default, (x.clone(),) + args[1:])
    torch.library.opcheck(getattr(ops, "mala_accept_" + suffix).default,
                          (x.clone(), grad.clone(), e.clone(), x + 0.1, grad * 0.9, e + 0.5, h, s, seed))
    torch.library.opcheck(getattr(ops, "sgld_step_" + suffix).default,
                          ([x.clone(), grad.clone()], [grad, x], 0.01, 0.1, 0.0, seed))


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_torch_compile_fullgraph(backend):
    if not _has_kernel(backend, "langevin_step"):
        pytest.skip("extension not built")
    import torch._dynamo

    torch._dynamo.reset()
    C, M = 6, 33

    def chain(x, seed, h):
        # a few steps on E = |x|^2 / 2 with norm clip, clamp, per-chain step, in place and not
        g = x.clone()
        y, n = langevin_step(x, g, step_size=h, grad_clip=3.0, clip_mode="norm", clamp=(-3.0, 3.0), seed=seed,
                             backend=backend, return_grad_norm=True)
        langevin_step_(y, y * 0.5, step_size=0.05, noise_scale=0.1, grad_clip=0.2, seed=seed + 1, backend=backend)
        # stand-in energies without reductions (inductor may reorder a sum; our ops are what is tested)
        xp = langevin_step(y, y, step_size=h, seed=seed + 2, backend=backend)
        yy, gg, ee = y.clone(), y.clone(), y[:, 0].clone()
        acc, la = mala_accept_(yy, gg, ee, xp, xp.clone(), xp[:, 1].clone(), step_size=h, seed=seed + 3,
                               backend=backend)
        sgld_step_([yy], [gg], lr=0.01, noise_scale=0.1, seed=seed + 4, backend=backend)
        return yy * 2, n, acc, la, ee

    x = torch.randn(C, M, generator=torch.Generator().manual_seed(0))
    seed = R.seed_pair(11, 0)
    h = torch.linspace(0.05, 0.3, C)
    eager = chain(x, seed, h)
    compiled = torch.compile(chain, fullgraph=True)(x, seed, h)
    for a, b in zip(eager, compiled):
        assert torch.equal(a, b)


def test_generator_reproducibility():
    x, grad = _inputs((4, 50))
    a = langevin_step(x, grad, step_size=0.1, generator=torch.Generator().manual_seed(3))
    b = langevin_step(x, grad, step_size=0.1, generator=torch.Generator().manual_seed(3))
    c = langevin_step(x, grad, step_size=0.1, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(9)
    d = langevin_step(x, grad, step_size=0.1)
    e = langevin_step(x, grad, step_size=0.1)
    torch.manual_seed(9)
    assert torch.equal(langevin_step(x, grad, step_size=0.1), d) and not torch.equal(d, e)
    with pytest.raises(ValueError, match="either seed or generator"):
        langevin_step(x, grad, step_size=0.1, seed=R.seed_pair(1), generator=torch.Generator())
    # the noise is the stream's: mean and variance of (x' - x + h g) / s over many elements
    z = (langevin_step(torch.zeros(1000, 100), torch.zeros(1000, 100), step_size=0.5,
                       generator=torch.Generator().manual_seed(0)) / 1.0).double()
    # 1e5 N(0,1) draws: mean within 5 standard errors (false-failure rate ~6e-7)
    assert abs(float(z.mean())) < 5 / math.sqrt(z.numel())
    assert abs(float(z.var()) - 1.0) < 5 * math.sqrt(2 / z.numel())


def test_cpu_results_do_not_depend_on_thread_count():
    if not _has_kernel("cpu", "langevin_step"):
        pytest.skip("extension not built")
    x, grad = _inputs((64, 3001))
    seed = R.seed_pair(21, 0)
    xp, gp = x + 0.01, grad * 0.99
    e, ep = torch.randn(64), torch.randn(64)
    n0 = torch.get_num_threads()
    outs = []
    try:
        for nt in (1, 2):
            torch.set_num_threads(nt)
            y, n = langevin_step(x, grad, step_size=0.1, grad_clip=40.0, clip_mode="norm", seed=seed,
                                 backend="cpu", return_grad_norm=True)
            acc, la = mala_accept_(x.clone(), grad.clone(), e.clone(), xp, gp, ep, step_size=0.1, seed=seed,
                                   backend="cpu")
            outs.append((y, n, acc, la))
    finally:
        torch.set_num_threads(n0)
    for a, b in zip(*outs):
        assert torch.equal(a, b)
