"""The RBM ops (gibbs_half_step, gaussian_half_step, gibbs_sweeps) on every backend.

* Exactness: with binary inputs and dyadic weights/biases (multiples of 2^-6, |w| <= 2)
  every GEMM is exact in any summation order, and the sigmoid and the streams are
  bit-exact by construction, so every backend equals the torch backend (the spec) bit
  for bit: a mismatch count of 0, for awkward shapes (B = 1, 3, 37; widths that are not
  multiples of 4 or 8; both directions; beta 0.5 and 1; k = 0, 1, 3).
* sigmoid_f32 (the spec of gs_sigmoid) is within a few ulp of the true logistic function.
* The stream mapping: half-step t of gibbs_sweeps draws from substream(seed, t), and
  element i of a half-step is u_i < p_i with u the uniform stream (rebuilt by hand here).
* dtype round trips, bad input (errors name the argument), opcheck, torch.compile
  (fullgraph) through the cpu and torch backends, generator reproducibility.
"""
import pytest
import torch

import gensample
from gensample import random as R
from gensample.ops import gibbs as G
from gensample.ops import gaussian_half_step, gibbs_half_step, gibbs_sweeps

from conftest import backend_params, gen
from conftest import bernoulli_states as binary
from conftest import check_equal as _check_equal
from conftest import dyadic_grid as dyadic

ops = torch.ops.gensample


# (n_visible, n_hidden, batch): awkward widths (not multiples of 4 or 8, one unit,
# more than one 64-column tile) and batches (1, 3, 37).
SHAPES = [(7, 5, 3), (13, 21, 1), (1, 9, 37), (70, 3, 5), (66, 67, 4)]
SHAPES_TRITON = [(7, 5, 3), (13, 21, 1), (1, 9, 37)]  # the interpreter is slow


def _shapes(backend):
    return SHAPES_TRITON if backend == "triton" else SHAPES


# ----------------------------------------------------------------------------
# sigmoid_f32: the torch spec of gs_sigmoid
# ----------------------------------------------------------------------------
def test_sigmoid_f32_close_to_true_sigmoid():
    a = torch.cat([torch.linspace(-87, 87, 400001), torch.randn(200000, generator=gen(1)) * 10,
                   torch.tensor([0.0, -0.0, 1e-30, -1e-30])])
    p = G.sigmoid_f32(a)
    ref = torch.sigmoid(a.double())
    ulp = (torch.nextafter(p, torch.tensor(2.0)) - p).double()
    err_ulp = ((p.double() - ref).abs() / ulp).max().item()
    assert err_ulp < 4, err_ulp  # measured 2.4
    # and within a few ulp of ATen's float32 sigmoid
    diff = (p.view(torch.int32) - torch.sigmoid(a).view(torch.int32)).abs().max().item()
    assert diff <= 4, diff
    assert torch.all((p >= 0) & (p <= 1))


def test_sigmoid_f32_saturation_and_symmetry():
    a = torch.tensor([-1e30, -200.0, -87.0, 87.0, 200.0, 1e30, float("inf"), -float("inf")])
    p = G.sigmoid_f32(a)
    # clamped at |a| = 87: the tails are sigmoid(+-87)
    assert torch.equal(p[:3], G.sigmoid_f32(torch.full((3,), -87.0)))
    assert torch.equal(p[3:6], torch.ones(3))
    assert p[6] == 1.0 and p[7] == p[0]
    assert 0 < p[0] < 1e-37
    x = torch.linspace(-20, 20, 4001)
    # p(a) + p(-a) = 1 up to rounding
    assert (G.sigmoid_f32(x) + G.sigmoid_f32(-x) - 1).abs().max() < 2e-7
    with pytest.raises(TypeError, match="float32"):
        G.sigmoid_f32(x.double())


# ----------------------------------------------------------------------------
# every backend equals the torch backend bit for bit (dyadic weights)
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("transpose", [False, True], ids=["v2h", "h2v"])
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_half_step_matches_torch_exactly(backend, transpose, beta):
    for i, (nv, nh, B) in enumerate(_shapes(backend)):
        g = gen(100 + i)
        W, bv, bh = dyadic(nv, nh, g=g), dyadic(nv, g=g), dyadic(nh, g=g)
        x = binary(B, nh if transpose else nv, g=g)
        bias = bv if transpose else bh
        ref = gibbs_half_step(x, W, bias, beta=beta, transpose=transpose, return_prob=True, generator=gen(5),
                              backend="torch")
        out = gibbs_half_step(x, W, bias, beta=beta, transpose=transpose, return_prob=True, generator=gen(5),
                              backend=backend)
        _check_equal(out[0], ref[0], f"state {nv}x{nh} B={B}")
        _check_equal(out[1], ref[1], f"prob {nv}x{nh} B={B}")


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_gibbs_sweeps_match_torch_exactly(backend, beta):
    ks = (0, 2) if backend == "triton" else (0, 1, 3)
    shapes = _shapes(backend)[: 2 if backend == "triton" and beta != 1.0 else None]  # the interpreter is slow
    for i, (nv, nh, B) in enumerate(shapes):
        g = gen(200 + i)
        W, bv, bh = dyadic(nv, nh, g=g), dyadic(nv, g=g), dyadic(nh, g=g)
        v = binary(B, nv, g=g)
        for k in ks:
            ref = gibbs_sweeps(v, W, bv, bh, k=k, beta=beta, return_hidden_prob=True, generator=gen(9),
                               backend="torch")
            out = gibbs_sweeps(v, W, bv, bh, k=k, beta=beta, return_hidden_prob=True, generator=gen(9),
                               backend=backend)
            for name, a, b in zip(("v", "h", "h_prob"), out, ref):
                _check_equal(a, b, f"{name} {nv}x{nh} B={B} k={k}")
            if k == 0:
                assert torch.equal(out[0], v)


@pytest.mark.parametrize("backend", backend_params())
def test_gaussian_half_step_matches_torch_exactly(backend):
    for i, (nv, nh, B) in enumerate(_shapes(backend)):
        g = gen(300 + i)
        W, bv = dyadic(nv, nh, g=g), dyadic(nv, g=g)
        sigma = (torch.randint(1, 129, (nv,), generator=g).float() / 64)  # dyadic: sigma * acc exact
        h = binary(B, nh, g=g)
        for beta in (2.0,) if backend == "triton" else (1.0, 2.0):
            ref = gaussian_half_step(h, W, bv, sigma=sigma, beta=beta, return_mean=True, generator=gen(3),
                                     backend="torch")
            out = gaussian_half_step(h, W, bv, sigma=sigma, beta=beta, return_mean=True, generator=gen(3),
                                     backend=backend)
            _check_equal(out[0], ref[0], f"v {nv}x{nh} B={B} beta={beta}")
            _check_equal(out[1], ref[1], f"mean {nv}x{nh} B={B} beta={beta}")


@pytest.mark.parametrize("backend", [b for b in backend_params(include_missing=False) if b.values[0] != "torch"])
def test_random_float_weights_tiny_mismatch(backend):
    # With random float weights the GEMMs round differently per backend (summation
    # order), so a probability may differ by a few ulp (~1e-7 relative). A state differs
    # only if u lies between the two probabilities: u is on the 2^-24 grid, so the
    # chance per element is about (few ulp) / 1 < 1e-6, and over the 3 * 2 * 37 * 40
    # draws below even one mismatch has probability < 1e-2 (per shape). We allow 1e-4 of the
    # entries (the contract's bound) and check the probabilities to 1e-5.
    # (40, 24): the cpu backend's table GEMM for small layers; (97, 61): its row sums
    for nv, nh, B in [(40, 24, 37)] + ([] if backend == "triton" else [(97, 61, 37)]):
        g = gen(11)
        W, bv, bh = torch.randn(nv, nh, generator=g), torch.randn(nv, generator=g), torch.randn(nh, generator=g)
        v = binary(B, nv, g=g)
        ref = gibbs_sweeps(v, W, bv, bh, k=1, return_hidden_prob=True, generator=gen(1), backend="torch")
        out = gibbs_sweeps(v, W, bv, bh, k=1, return_hidden_prob=True, generator=gen(1), backend=backend)
        # once a state differs the chains diverge, so compare a single half-step too
        h_ref, p_ref = gibbs_half_step(v, W, bh, return_prob=True, generator=gen(2), backend="torch")
        h_out, p_out = gibbs_half_step(v, W, bh, return_prob=True, generator=gen(2), backend=backend)
        torch.testing.assert_close(p_out, p_ref, atol=1e-5, rtol=1e-5)
        assert (h_out != h_ref).float().mean() < 1e-4
        assert (out[0] != ref[0]).float().mean() < 1e-4 and (out[1] != ref[1]).float().mean() < 1e-4
        if torch.equal(out[0], ref[0]):  # same v_k: p(h | v_k) agrees to GEMM rounding
            torch.testing.assert_close(out[2], ref[2], atol=1e-5, rtol=1e-5)
        mean_field = torch.sigmoid(v.double() @ W.double() + bh.double()).float()
        torch.testing.assert_close(p_out, mean_field, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------
# the stream mapping, rebuilt by hand
# ----------------------------------------------------------------------------
def test_half_step_stream_mapping():
    g = gen(4)
    W, bh = torch.randn(11, 6, generator=g), torch.randn(6, generator=g)
    x = binary(5, 11, g=g)
    state, prob = gibbs_half_step(x, W, bh, beta=0.7, return_prob=True, generator=gen(8), backend="torch")
    seed = R.draw_seed(gen(8))
    p = G.sigmoid_f32((x @ W + bh) * torch.tensor(0.7, dtype=torch.float32))
    u = R.uniform_stream(seed, p.numel()).view(p.shape)
    assert torch.equal(prob, p)
    assert torch.equal(state, (u < p).float())


def test_gaussian_stream_mapping():
    g = gen(5)
    W, bv = torch.randn(9, 4, generator=g), torch.randn(9, generator=g)
    h = binary(3, 4, g=g)
    sigma = torch.rand(9, generator=g) + 0.5
    v, mean = gaussian_half_step(h, W, bv, sigma=sigma, beta=4.0, return_mean=True, generator=gen(2), backend="torch")
    seed = R.draw_seed(gen(2))
    eps = R.normal_stream(seed, 27).view(3, 9)
    m = bv + sigma * (h @ W.T)
    assert torch.equal(mean, m)
    assert torch.equal(v, m + (sigma.double() / 2.0).float() * eps)


@pytest.mark.parametrize("backend", backend_params())
def test_sweeps_half_step_t_uses_substream_t(backend):
    nv, nh, B, k = 9, 6, 4, 2
    g = gen(6)
    W, bv, bh = dyadic(nv, nh, g=g), dyadic(nv, g=g), dyadic(nh, g=g)
    v0 = binary(B, nv, g=g)
    vk, hk, hp = gibbs_sweeps(v0, W, bv, bh, k=k, return_hidden_prob=True, generator=gen(12), backend=backend)
    seed = R.draw_seed(gen(12))
    tr = ops.gibbs_half_step_torch
    h, p = tr(v0, W, bh, R.substream(seed, 0), 1.0, False)
    v = v0
    for s in range(1, k + 1):
        v, _ = tr(h, W, bv, R.substream(seed, 2 * s - 1), 1.0, True)
        h, p = tr(v, W, bh, R.substream(seed, 2 * s), 1.0, False)
    assert torch.equal(vk, v) and torch.equal(hk, h) and torch.equal(hp, p)


# ----------------------------------------------------------------------------
# dtypes, shapes, generators
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16], ids=str)
def test_dtype_round_trip(backend, dtype):
    g = gen(13)
    W, bv, bh = dyadic(6, 5, g=g), dyadic(6, g=g), dyadic(5, g=g)
    v = binary(3, 6, g=g)
    s, p = gibbs_half_step(v.to(dtype), W.to(dtype), bh.to(dtype), return_prob=True, generator=gen(1), backend=backend)
    s32, p32 = gibbs_half_step(v, W, bh, return_prob=True, generator=gen(1), backend="torch")
    assert s.dtype == dtype and p.dtype == dtype
    assert torch.equal(s, s32.to(dtype)) and torch.equal(p, p32.to(dtype))
    out = gibbs_sweeps(v.to(dtype), W.to(dtype), bv.to(dtype), bh.to(dtype), k=2, return_hidden_prob=True,
                       generator=gen(1), backend=backend)
    ref = gibbs_sweeps(v, W, bv, bh, k=2, return_hidden_prob=True, generator=gen(1), backend="torch")
    for a, b in zip(out, ref):
        assert a.dtype == dtype and torch.equal(a, b.to(dtype))
    x = gaussian_half_step(v[:, :5].to(dtype), W.to(dtype), bv.to(dtype), sigma=0.5, generator=gen(1), backend=backend)
    assert x.dtype == dtype and x.shape == (3, 6)


@pytest.mark.parametrize("backend", backend_params())
def test_leading_dims_and_empty_batch(backend):
    g = gen(14)
    W, bv, bh = dyadic(6, 5, g=g), dyadic(6, g=g), dyadic(5, g=g)
    v = binary(2, 3, 6, g=g)
    s = gibbs_half_step(v, W, bh, generator=gen(1), backend=backend)
    assert s.shape == (2, 3, 5)
    assert torch.equal(s.reshape(6, 5), gibbs_half_step(v.reshape(6, 6), W, bh, generator=gen(1), backend="torch"))
    vk, hk = gibbs_sweeps(v, W, bv, bh, k=1, generator=gen(1), backend=backend)
    assert vk.shape == (2, 3, 6) and hk.shape == (2, 3, 5)
    e = gibbs_sweeps(v[:0, 0], W, bv, bh, k=2, generator=gen(1), backend=backend)
    assert e[0].shape == (0, 6) and e[1].shape == (0, 5)
    s1 = gibbs_half_step(v[0, 0], W, bh, generator=gen(1), backend=backend)
    assert s1.shape == (5,)


def test_generator_reproducibility():
    g = gen(15)
    W, bv, bh = torch.randn(8, 5, generator=g), torch.randn(8, generator=g), torch.randn(5, generator=g)
    v = binary(16, 8, g=g)
    torch.manual_seed(123)
    a = gibbs_sweeps(v, W, bv, bh, k=3)
    b = gibbs_sweeps(v, W, bv, bh, k=3)
    torch.manual_seed(123)
    c = gibbs_sweeps(v, W, bv, bh, k=3)
    assert all(torch.equal(x, y) for x, y in zip(a, c))
    assert not all(torch.equal(x, y) for x, y in zip(a, b))  # fresh seed per call
    d = gibbs_sweeps(v, W, bv, bh, k=3, generator=gen(99))
    e = gibbs_sweeps(v, W, bv, bh, k=3, generator=gen(99))
    assert all(torch.equal(x, y) for x, y in zip(d, e))
    s1 = gibbs_half_step(v, W, bh, generator=gen(3))
    s2 = gibbs_half_step(v, W, bh, generator=gen(3))
    assert torch.equal(s1, s2)


def test_no_gradients_flow_through_samples():
    W = torch.randn(6, 4, requires_grad=True)
    bv, bh = torch.zeros(6, requires_grad=True), torch.zeros(4, requires_grad=True)
    v = binary(3, 6, g=gen(1))
    vk, hk, hp = gibbs_sweeps(v, W, bv, bh, k=1, return_hidden_prob=True, generator=gen(1))
    s, p = gibbs_half_step(v, W, bh, return_prob=True, generator=gen(1))
    assert not any(t.requires_grad for t in (vk, hk, hp, s, p))


def test_beta_zero_gives_fair_coins():
    W = torch.randn(10, 7, generator=gen(2))
    s, p = gibbs_half_step(binary(4, 10, g=gen(3)), W, torch.randn(7, generator=gen(4)), beta=0.0,
                           return_prob=True, generator=gen(1))
    assert torch.all(p == 0.5)


def test_non_binary_start_with_check_binary_false():
    # the first half-step then treats v as real-valued (mean-field) input; backends agree
    g = gen(16)
    W, bv, bh = dyadic(12, 7, g=g), dyadic(12, g=g), dyadic(7, g=g)
    v = torch.randint(0, 5, (6, 12), generator=g).float() / 4  # quarters: products stay exact
    backends = [b for b in gensample.BACKENDS if gensample._backend.unavailable_reason(b, "cpu") is None]
    ref = gibbs_sweeps(v, W, bv, bh, k=2, check_binary=False, return_hidden_prob=True, generator=gen(5),
                       backend="torch")
    for b in backends:
        out = gibbs_sweeps(v, W, bv, bh, k=2, check_binary=False, return_hidden_prob=True, generator=gen(5),
                           backend=b)
        for x, y in zip(out, ref):
            assert torch.equal(x, y), b


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------
def test_bad_input_errors():
    W, bv, bh = torch.randn(6, 4), torch.zeros(6), torch.zeros(4)
    v = binary(3, 6, g=gen(1))
    h = binary(3, 4, g=gen(2))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 6\)"):
        gibbs_half_step(h, W, bh)
    with pytest.raises(ValueError, match="bias must have shape"):
        gibbs_half_step(h, W, bh, transpose=True)
    with pytest.raises(ValueError, match="weight must be 2-D"):
        gibbs_half_step(v, W[0], bh)
    with pytest.raises(TypeError, match="weight has dtype torch.float64"):
        gibbs_half_step(v, W.double(), bh)
    with pytest.raises(TypeError, match="x must be a floating tensor"):
        gibbs_half_step(v.long(), W, bh)
    with pytest.raises(TypeError, match="bias has dtype"):
        gibbs_half_step(v, W, bh.double())
    with pytest.raises(ValueError, match="weight is on meta"):
        gibbs_half_step(v, W.to("meta"), bh)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        gibbs_half_step(v, W, bh, beta=-1.0)
    with pytest.raises(ValueError, match="weight must be finite"):
        gibbs_half_step(v, W.index_fill(0, torch.tensor([2]), float("nan")), bh)
    with pytest.raises(ValueError, match="bias must be finite"):
        gibbs_half_step(v, W, torch.tensor([0.0, float("inf"), 0.0, 0.0]))
    with pytest.raises(ValueError, match="x must be finite"):
        gibbs_half_step(v.index_fill(1, torch.tensor([0]), float("nan")), W, bh)
    # gibbs_sweeps
    with pytest.raises(ValueError, match="k must be >= 0"):
        gibbs_sweeps(v, W, bv, bh, k=-1)
    with pytest.raises(TypeError, match="k must be an int"):
        gibbs_sweeps(v, W, bv, bh, k=1.5)
    vb = v.clone()
    vb[1, 2] = 0.5
    with pytest.raises(ValueError, match=r"v must be binary .* 1 of its 18 entries"):
        gibbs_sweeps(vb, W, bv, bh, k=1)
    gibbs_sweeps(vb, W, bv, bh, k=1, check_binary=False)  # allowed when asked
    with pytest.raises(ValueError, match="v must be binary"):
        gibbs_sweeps(v * float("nan"), W, bv, bh, k=1)
    with pytest.raises(ValueError, match="visible_bias must have shape"):
        gibbs_sweeps(v, W, bh, bh, k=1)
    with pytest.raises(ValueError, match="hidden_bias must have shape"):
        gibbs_sweeps(v, W, bv, bv, k=1)
    with pytest.raises(ValueError, match="weight must be finite"):
        gibbs_sweeps(v, W * float("nan"), bv, bh, k=1)
    with pytest.raises(ValueError, match="visible_bias must be finite"):
        gibbs_sweeps(v, W, bv - float("inf"), bh, k=1)
    with pytest.raises(ValueError, match="v must have shape"):
        gibbs_sweeps(h, W, bv, bh, k=1)
    with pytest.raises(ValueError, match="backend must be one of"):
        gibbs_sweeps(v, W, bv, bh, k=1, backend="gpu")
    # gaussian_half_step
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        gaussian_half_step(h, W, bv, sigma=torch.zeros(6))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        gaussian_half_step(h, W, bv, sigma=-1.0)
    with pytest.raises(ValueError, match="sigma must have shape"):
        gaussian_half_step(h, W, bv, sigma=torch.ones(4))
    with pytest.raises(ValueError, match="beta must be > 0"):
        gaussian_half_step(h, W, bv, beta=0.0)
    with pytest.raises(ValueError, match=r"h must have shape \(\.\.\., 4\)"):
        gaussian_half_step(v, W, bv)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        gibbs_half_step(v, W, bh, generator=3)


def test_cpu_kernel_checks_direct_calls():
    if gensample._backend.unavailable_reason("cpu", "cpu") is not None:
        pytest.skip("no cpu backend")
    seed = R.seed_pair(1, 0)
    W = torch.randn(6, 4)
    with pytest.raises(RuntimeError, match="x must be float32"):
        ops.gibbs_half_step(torch.zeros(3, 6, dtype=torch.float64), W, torch.zeros(4), seed, 1.0, False)
    with pytest.raises(RuntimeError, match="bias must have shape"):
        ops.gibbs_half_step(torch.zeros(3, 6), W, torch.zeros(5), seed, 1.0, False)
    with pytest.raises(RuntimeError, match="k must be in"):
        ops.gibbs_sweeps(torch.zeros(3, 6), W, torch.zeros(6), torch.zeros(4), seed, -1, 1.0)


# ----------------------------------------------------------------------------
# opcheck and torch.compile
# ----------------------------------------------------------------------------
def _compile_backends():
    return [b for b in ("cpu", "torch") if gensample._backend.unavailable_reason(b, "cpu") is None]


@pytest.mark.parametrize("backend", _compile_backends())
def test_opcheck(backend):
    suffix = "_torch" if backend == "torch" else ""
    g = gen(17)
    W, bv, bh = torch.randn(7, 5, generator=g), torch.randn(7, generator=g), torch.randn(5, generator=g)
    v = binary(3, 7, g=g)
    seed = R.seed_pair(3, 1)
    torch.library.opcheck(getattr(ops, "gibbs_half_step" + suffix), (v, W, bh, seed, 0.5, False))
    torch.library.opcheck(getattr(ops, "gibbs_half_step" + suffix), (binary(3, 5, g=g), W, bv, seed, 1.0, True))
    sig = torch.rand(7, generator=g) + 0.5
    torch.library.opcheck(getattr(ops, "gaussian_half_step" + suffix), (binary(3, 5, g=g), W, bv, sig, sig * 2, seed))
    torch.library.opcheck(getattr(ops, "gibbs_sweeps" + suffix), (v, W, bv, bh, seed, 2, 1.0))


def test_torch_compile_fullgraph():
    # one graph calling every compilable backend (one compile keeps the test short)
    backends = _compile_backends()
    torch._dynamo.reset()
    g = gen(18)
    W, bv, bh = dyadic(9, 6, g=g), dyadic(9, g=g), dyadic(6, g=g)
    v = binary(5, 9, g=g)

    def f(v, W, bv, bh):
        out = []
        for b in backends:
            vk, hk, hp = gibbs_sweeps(v, W, bv, bh, k=2, return_hidden_prob=True, backend=b)
            out += [vk, hk, hp * 2.0 + 1.0]  # exact arithmetic: any fusion gives the same bits
        return out

    compiled = torch.compile(f, fullgraph=True, options={"fallback_random": True})
    torch.manual_seed(0)
    e = f(v, W, bv, bh)
    torch.manual_seed(0)
    c = compiled(v, W, bv, bh)
    assert len(c) == 3 * len(backends)
    for x, y in zip(c, e):
        assert torch.equal(x, y)


@pytest.mark.parametrize("backend", [b for b in backend_params(include_missing=False) if b.values[0] != "triton"])
def test_zero_width_layers(backend):
    for nv, nh in [(5, 0), (0, 4)]:
        W, bv, bh = torch.zeros(nv, nh), torch.randn(nv, generator=gen(1)), torch.randn(nh, generator=gen(2))
        v = binary(3, nv, g=gen(3))
        ref = gibbs_sweeps(v, W, bv, bh, k=2, return_hidden_prob=True, generator=gen(1), backend="torch")
        out = gibbs_sweeps(v, W, bv, bh, k=2, return_hidden_prob=True, generator=gen(1), backend=backend)
        assert all(torch.equal(a, b) for a, b in zip(out, ref))


@pytest.mark.parametrize("rowsum", ["0", "1"])
def test_cpu_gemm_paths_match_torch_exactly(monkeypatch, rowsum):
    # larger layers run either the half-step loop (at::mm) or the binary row-sum blocks
    # (chosen by chains per block; GENSAMPLE_CPU_GIBBS_ROWSUM forces one): both exact
    if gensample._backend.unavailable_reason("cpu", "cpu") is not None:
        pytest.skip("no cpu backend")
    monkeypatch.setenv("GENSAMPLE_CPU_GIBBS_ROWSUM", rowsum)
    for i, (nv, nh, B) in enumerate([(70, 45, 37), (131, 67, 5), (300, 200, 600)]):
        g = gen(300 + i)
        W, bv, bh = dyadic(nv, nh, g=g), dyadic(nv, g=g), dyadic(nh, g=g)
        v = binary(B, nv, g=g)
        for k in (1, 3):
            ref = gibbs_sweeps(v, W, bv, bh, k=k, beta=0.5, return_hidden_prob=True, generator=gen(9),
                               backend="torch")
            out = gibbs_sweeps(v, W, bv, bh, k=k, beta=0.5, return_hidden_prob=True, generator=gen(9),
                               backend="cpu")
            for name, a, b in zip(("v", "h", "h_prob"), out, ref):
                _check_equal(a, b, f"{name} {nv}x{nh} B={B} k={k} rowsum={rowsum}")


@pytest.mark.parametrize("rowsum", ["0", "1"])
def test_cpu_results_do_not_depend_on_thread_count(monkeypatch, rowsum):
    monkeypatch.setenv("GENSAMPLE_CPU_GIBBS_ROWSUM", rowsum)
    # each chain's sums and draws are fixed by its row: any split over threads gives the same bits,
    # for the table GEMM (64 x 32) and the row sums (300 x 200), with random float weights
    if gensample._backend.unavailable_reason("cpu", "cpu") is not None:
        pytest.skip("no cpu backend")
    g = gen(19)
    n0 = torch.get_num_threads()
    try:
        for nv, nh in [(64, 32), (300, 200)]:
            W, bv, bh = torch.randn(nv, nh, generator=g), torch.randn(nv, generator=g), torch.randn(nh, generator=g)
            v = binary(203, nv, g=g, p=0.5)
            outs = []
            for t in (1, 2):
                torch.set_num_threads(t)
                outs.append(gibbs_sweeps(v, W, bv, bh, k=3, return_hidden_prob=True, generator=gen(3), backend="cpu"))
            assert all(torch.equal(a, b) for a, b in zip(*outs))
    finally:
        torch.set_num_threads(n0)


_ISA_CHILD = r"""
import sys, torch
import gensample
from gensample.ops import gibbs_sweeps, gibbs_half_step
g = torch.Generator().manual_seed(21)
out = {}
for nv, nh in [(64, 32), (70, 45), (131, 67)]:  # table GEMM, row sums, row sums with tails
    W = torch.randn(nv, nh, generator=g)
    bv, bh = torch.randn(nv, generator=g), torch.randn(nh, generator=g)
    v = (torch.rand(37, nv, generator=g) < 0.5).float()
    out[f"s{nv}"] = gibbs_sweeps(v, W, bv, bh, k=3, beta=0.7, return_hidden_prob=True,
                                 generator=torch.Generator().manual_seed(1), backend="cpu")
    out[f"h{nv}"] = gibbs_half_step(v, W, bh, return_prob=True, generator=torch.Generator().manual_seed(2),
                                    backend="cpu")
torch.save(out, sys.argv[1])
"""


def test_cpu_avx2_and_baseline_isa_agree(tmp_path):
    # the hot loops are compiled twice (AVX2 and baseline x86-64) with the same operations:
    # random float weights give the same bits on both paths
    import os
    import subprocess
    import sys

    if gensample._backend.unavailable_reason("cpu", "cpu") is not None:
        pytest.skip("no cpu backend")
    root = os.path.dirname(os.path.dirname(os.path.abspath(gensample.__file__)))
    res = {}
    for name, no_avx2 in [("default", False), ("baseline", True)]:
        env = dict(os.environ, OMP_NUM_THREADS="2", TRITON_INTERPRET="0", GENSAMPLE_CPU_GIBBS_ROWSUM="1", PYTHONPATH=os.pathsep.join(
            p for p in [root, os.environ.get("PYTHONPATH", "")] if p))
        env.pop("GENSAMPLE_CPU_NO_AVX2", None)
        if no_avx2:
            env["GENSAMPLE_CPU_NO_AVX2"] = "1"
        path = tmp_path / f"{name}.pt"
        r = subprocess.run([sys.executable, "-c", _ISA_CHILD, str(path)], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        res[name] = torch.load(path)
    assert res["default"].keys() == res["baseline"].keys()
    for key in res["default"]:
        for a, b in zip(res["default"][key], res["baseline"][key]):
            assert torch.equal(a.view(torch.int32), b.view(torch.int32)), key


def test_count_nonbinary_counts_every_non_binary_entry():
    # the cpu validation kernel (one pass, no temporaries) against the torch expression
    if gensample._backend.unavailable_reason("cpu", "cpu") is not None:
        pytest.skip("no cpu backend")
    specials = torch.tensor([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, float("nan"), float("inf"), -float("inf"),
                             1.0 + 2**-23, 1.0 - 2**-24, 2**-149])
    assert torch.ops.gensample.count_nonbinary(specials) == 9
    g = gen(77)
    v = binary(300, 333, g=g)  # more than one parallel chunk
    assert torch.ops.gensample.count_nonbinary(v) == 0
    v.view(-1)[torch.randperm(v.numel(), generator=g)[:123]] = 0.25
    assert torch.ops.gensample.count_nonbinary(v) == 123
    with pytest.raises(ValueError, match="123 of its"):
        gibbs_sweeps(v, torch.zeros(333, 4), torch.zeros(333), torch.zeros(4), k=1, backend="cpu")
