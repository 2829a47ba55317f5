r"""Fused block Gibbs sampling for restricted Boltzmann machines.

Conventions: ``weight`` :math:`W` has shape ``(n_visible, n_hidden)``, ``visible_bias``
:math:`b` shape ``(n_visible,)``, ``hidden_bias`` :math:`c` shape ``(n_hidden,)``. The
Bernoulli-Bernoulli energy is :math:`E(v, h) = -b^\top v - c^\top h - v^\top W h` and
the tempered target is :math:`p_\beta(v, h) \propto e^{-\beta E(v, h)}`, so

.. math::

    p(h_j = 1 \mid v) = \sigma\big(\beta (c_j + (v W)_j)\big), \qquad
    p(v_i = 1 \mid h) = \sigma\big(\beta (b_i + (h W^\top)_i)\big).

For the Gaussian-Bernoulli RBM (per-unit ``sigma``),
:math:`p(v_i \mid h) = \mathcal N\big(b_i + \sigma_i (h W^\top)_i,\ \sigma_i^2 / \beta\big)`.

Each half-step is one GEMM plus one fused epilogue (bias, temperature, sigmoid, the
uniform draw from gensample's Philox stream and the comparison); nothing but the
outputs is written to memory. :func:`gibbs_sweeps` runs ``k`` sweeps in one call.

**Exactness across backends.** The sigmoid is gensample's own float32 sequence
(:func:`sigmoid_f32`; ``gs_sigmoid`` in ``csrc/include/gensample/gibbs.h``), evaluated
with separately rounded operations on every backend, and the uniforms come from the
shared stream, so every backend draws the same states whenever the GEMM is exact (e.g.
binary inputs and dyadic weights); otherwise they differ only where ``u`` lies within
the GEMM's rounding of ``p``.

**Precision.** RBM kernels compute in float32; probabilities have 24-bit resolution.
Inputs of other floating dtypes are cast to float32 and the results cast back.

**No gradients.** These are sampling ops: their outputs do not carry gradients (the
inputs are detached). RBM training takes gradients of free energies evaluated at the
samples (``rbm.free_energy(v) - rbm.free_energy(v_model)``), not through the samples.

This file holds the public functions, their validation, the ``torch.library``
registrations and the torch backend, which is the executable specification of the
kernels in ``csrc/cpu/gibbs_cpu.cpp``, ``csrc/cuda/gibbs_cuda.cu`` and
``gensample/ops/gibbs_triton.py``.
"""
from __future__ import annotations

import math

import torch

from .. import _backend, _ext
from .. import random as _random
from .._checks import check_float_tensor as _check_float_tensor
from .._checks import check_int as _check_int
from .._checks import check_real as _check_real
from .._checks import check_shape as _check_shape
from . import _registry

__all__ = ["gibbs_half_step", "gaussian_half_step", "gibbs_sweeps", "sigmoid_f32"]

_F32 = torch.float32


def _f(v: float, device) -> torch.Tensor:
    return torch.tensor(v, dtype=_F32, device=device)


# ----------------------------------------------------------------------------
# torch backend: the executable specification
# ----------------------------------------------------------------------------
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
          5.0000001201e-1)


def sigmoid_f32(a: torch.Tensor) -> torch.Tensor:
    r"""gensample's bit-exact float32 logistic function :math:`1 / (1 + e^{-a})`.

    Mirrors ``gs_sigmoid`` (``csrc/include/gensample/gibbs.h``) operation for operation,
    each a separately rounded float32 operation: ``t = clamp(-a, -87, 87) = n \ln 2 + r``
    (Cody-Waite), :math:`e^t = 2^n (1 + r + r^2 P(r))` with Cephes' ``expf`` polynomial,
    and a correctly rounded division. Within a few ulp of :func:`torch.sigmoid`.
    ``a`` must be float32 and free of NaN.
    """
    if a.dtype != _F32:
        raise TypeError(f"sigmoid_f32 takes a float32 tensor, got {a.dtype}")
    dev = a.device
    t = torch.clamp(-a, -87.0, 87.0)
    fx = torch.floor(t * _f(1.44269504088896341, dev) + _f(0.5, dev))
    r = (t - fx * _f(0.693359375, dev)) - fx * _f(-2.12194440e-4, dev)
    z = r * r
    y = torch.full_like(r, _EXP_P[0])
    for c in _EXP_P[1:]:
        y = y * r + _f(c, dev)
    e = ((y * z) + r) + _f(1.0, dev)
    two_fx = ((fx.to(torch.int32) + 127) << 23).view(_F32)
    e = e * two_fx
    return _f(1.0, dev) / (_f(1.0, dev) + e)


def _bernoulli_layer(x, weight, bias, seed, beta, transpose):
    acc = x @ weight.T if transpose else x @ weight
    a = (acc + bias) * _f(beta, x.device)  # a * 1.0 == a: beta = 1 needs no special case
    p = sigmoid_f32(a)
    state = _random.bernoulli_stream(seed, p).to(_F32)
    return state, p


def _gibbs_half_step_torch_impl(x, weight, bias, seed, beta, transpose):
    return _bernoulli_layer(x, weight, bias, seed, beta, transpose)


def _gaussian_half_step_torch_impl(h, weight, bias, sigma, noise_std, seed):
    acc = h @ weight.T
    mean = bias + sigma * acc
    eps = _random.normal_stream(seed, mean.numel()).view(mean.shape)
    v = mean + noise_std * eps
    return v, mean


def _gibbs_sweeps_torch_impl(v, weight, visible_bias, hidden_bias, seed, k, beta):
    h, hp = _bernoulli_layer(v, weight, hidden_bias, _random.substream(seed, 0), beta, False)
    for s in range(1, k + 1):
        v, _ = _bernoulli_layer(h, weight, visible_bias, _random.substream(seed, 2 * s - 1), beta, True)
        h, hp = _bernoulli_layer(v, weight, hidden_bias, _random.substream(seed, 2 * s), beta, False)
    return v.clone() if k == 0 else v, h, hp


@torch.library.custom_op("gensample::gibbs_half_step_torch", mutates_args=())
def _gibbs_half_step_torch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, seed: torch.Tensor,
                           beta: float, transpose: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return _gibbs_half_step_torch_impl(x, weight, bias, seed, beta, transpose)


@torch.library.custom_op("gensample::gaussian_half_step_torch", mutates_args=())
def _gaussian_half_step_torch(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, sigma: torch.Tensor,
                              noise_std: torch.Tensor, seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _gaussian_half_step_torch_impl(h, weight, bias, sigma, noise_std, seed)


@torch.library.custom_op("gensample::gibbs_sweeps_torch", mutates_args=())
def _gibbs_sweeps_torch(v: torch.Tensor, weight: torch.Tensor, visible_bias: torch.Tensor,
                        hidden_bias: torch.Tensor, seed: torch.Tensor, k: int,
                        beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _gibbs_sweeps_torch_impl(v, weight, visible_bias, hidden_bias, seed, k, beta)


# ----------------------------------------------------------------------------
# registration: fake implementations (sampling ops: no autograd)
# ----------------------------------------------------------------------------
def _fake_half_step(x, weight, bias, seed, beta, transpose):
    n_out = weight.shape[0] if transpose else weight.shape[1]
    return x.new_empty((x.shape[0], n_out)), x.new_empty((x.shape[0], n_out))


def _fake_gaussian(h, weight, bias, sigma, noise_std, seed):
    return h.new_empty((h.shape[0], weight.shape[0])), h.new_empty((h.shape[0], weight.shape[0]))


def _fake_sweeps(v, weight, visible_bias, hidden_bias, seed, k, beta):
    B = v.shape[0]
    return v.new_empty((B, weight.shape[0])), v.new_empty((B, weight.shape[1])), v.new_empty((B, weight.shape[1]))


_OPS = ("gibbs_half_step", "gaussian_half_step", "gibbs_sweeps")
_FAKES = {"gibbs_half_step": _fake_half_step, "gaussian_half_step": _fake_gaussian, "gibbs_sweeps": _fake_sweeps}


def _cpp_ops_defined() -> bool:
    # the schemas come with the extension (csrc/gibbs_ops.cpp); an older build lacks them
    return _registry.cpp_ops_defined(_OPS)


_registry.register_fakes(_FAKES, "_torch")
if _cpp_ops_defined():
    _registry.register_fakes(_FAKES, "")
# triton_ops derive their fake implementations by tracing the launcher.


def _op(name: str, backend: str):
    return _registry.lookup_op(name, backend, _OPS, "RBM")


# ----------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------
def _eager() -> bool:
    # value checks read data (a host synchronization, a graph break under torch.compile):
    # they run in eager mode only
    return not torch.compiler.is_compiling()


def _check_finite(name: str, t: torch.Tensor) -> None:
    # NaN and inf propagate through a sum (a cheap reduction); only when the sum is not
    # finite (bad entries, or an overflow of finite ones) are the entries checked.
    # (math.isfinite of the host value: one op and one read per tensor, not three ops;
    # this check runs four times per gibbs_sweeps call.)
    if _eager() and t.numel() and not math.isfinite(float(t.sum())) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} must be finite, but {bad} of its {t.numel()} entries are NaN or infinite")


def _check_weight(weight: torch.Tensor, like: str, dtype, device) -> tuple[int, int]:
    _check_float_tensor("weight", weight, dtype, device, like=like)
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D with shape (n_visible, n_hidden), got shape {tuple(weight.shape)}")
    return weight.shape[0], weight.shape[1]


def _count_nonbinary(v: torch.Tensor) -> int:
    """How many entries of ``v`` are not 0 or 1 (a host synchronization: eager mode only)."""
    if v.device.type == "cpu" and v.dtype == _F32 and _ext.loaded() and hasattr(torch.ops.gensample, "count_nonbinary"):
        return int(torch.ops.gensample.count_nonbinary(v))  # one pass, no temporaries
    return int(torch.count_nonzero(v * (v - 1)))  # v (v - 1) == 0 exactly iff v is 0 or 1


def _check_states(name: str, x, n: int, layer: str) -> None:
    _check_float_tensor(name, x)
    if x.dim() < 1 or x.shape[-1] != n:
        raise ValueError(f"{name} must have shape (..., {n}) ({layer} units last), got shape {tuple(x.shape)}")


def _check_beta(beta, *, positive: bool) -> float:
    return _check_real("beta", beta, positive=positive, nonneg=not positive)


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(_F32).contiguous()


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------
def gibbs_half_step(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    beta: float = 1.0,
    transpose: bool = False,
    return_prob: bool = False,
    generator: torch.Generator | None = None,
    backend: str | None = None,
):
    r"""One Bernoulli half-step of block Gibbs sampling, fused into one GEMM + epilogue.

    Equivalent to (the textbook eager code, which takes 4 to 6 kernels)::

        p = torch.sigmoid(beta * (x @ weight + bias))     # x @ weight.T if transpose
        state = (torch.rand_like(p) < p).to(x.dtype)

    Args:
        x: conditioning states, shape ``(..., n_in)`` with ``n_in = n_visible`` (visible ->
            hidden) or ``n_hidden`` when ``transpose=True`` (hidden -> visible). Any real
            values are accepted (mean-field inputs too), but they must be finite. float16,
            bfloat16, float32 or float64.
        weight: ``(n_visible, n_hidden)``, ``x``'s dtype and device, finite.
        bias: the bias of the layer being drawn, ``(n_out,)``, finite.
        beta: inverse temperature, ``>= 0`` (``beta = 0`` gives ``p = 1/2``).
        transpose: draw the visible layer from hidden states (``x @ weight.T``).
        return_prob: also return :math:`p = \sigma(\beta (x W + b))`.
        generator: source of the seed (default: the global generator of ``x``'s device).
        backend: ``None`` (fastest available), ``"triton"``, ``"cuda"``, ``"cpu"`` or ``"torch"``.

    Returns:
        ``state`` (0/1 values, shape ``(..., n_out)``, ``x``'s dtype), or
        ``(state, prob)``. Computation is in float32 (24-bit probabilities); no gradients.

    Element ``i`` (flat row-major) of ``state`` is ``u_i < p_i`` with ``u_i`` element ``i``
    of the uniform stream of the drawn seed pair (:func:`gensample.random.bernoulli_stream`).
    """
    _check_float_tensor("x", x)
    n_vis, n_hid = _check_weight(weight, "x", x.dtype, x.device)
    if not isinstance(transpose, bool):
        raise TypeError(f"transpose must be a bool, got {type(transpose).__name__}")
    n_in, n_out = (n_hid, n_vis) if transpose else (n_vis, n_hid)
    layer = "hidden" if transpose else "visible"
    _check_states("x", x, n_in, layer)
    _check_float_tensor("bias", bias, x.dtype, x.device, like="x")
    _check_shape("bias", bias, (n_out,), "the bias of the layer being drawn: n_visible if transpose else n_hidden")
    beta = _check_beta(beta, positive=False)
    b = _backend.resolve(backend, x.device)
    _check_finite("weight", weight)
    _check_finite("bias", bias)
    _check_finite("x", x)
    lead = x.shape[:-1]
    x2 = _f32(x.reshape(math.prod(lead), n_in))
    seed = _random.draw_seed(generator, x.device)
    state, prob = _op("gibbs_half_step", b)(x2, _f32(weight), _f32(bias), seed, beta, transpose)
    state = state.view(*lead, n_out).to(x.dtype)
    if return_prob:
        return state, prob.view(*lead, n_out).to(x.dtype)
    return state


def _sigma_tensor(sigma, n_vis: int, dtype, device) -> torch.Tensor:
    if isinstance(sigma, torch.Tensor):
        _check_float_tensor("sigma", sigma, dtype, device, like="h")
        if sigma.dim() == 0:
            sigma = sigma.expand(n_vis)
        _check_shape("sigma", sigma, (n_vis,), "one standard deviation per visible unit, or a scalar")
        s = _f32(sigma)
    else:
        s = torch.full((n_vis,), _check_real("sigma", sigma, positive=True), dtype=_F32, device=device)
    if _eager() and not bool((torch.isfinite(s) & (s > 0)).all()):
        raise ValueError("sigma must be finite and > 0 (every entry)")
    return s


def gaussian_half_step(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    sigma: torch.Tensor | float = 1.0,
    beta: float = 1.0,
    return_mean: bool = False,
    generator: torch.Generator | None = None,
    backend: str | None = None,
):
    r"""Draw the Gaussian visible layer of a Gaussian-Bernoulli RBM given hidden states.

    .. math::

        \mu = b + \sigma \odot (h W^\top), \qquad v = \mu + \frac{\sigma}{\sqrt\beta} \odot \varepsilon,
        \quad \varepsilon \sim \mathcal N(0, I).

    Args:
        h: hidden states ``(..., n_hidden)`` (any finite reals), float16/bfloat16/float32/float64.
        weight: ``(n_visible, n_hidden)``, ``h``'s dtype and device, finite.
        bias: visible bias ``(n_visible,)``, finite.
        sigma: per-unit standard deviation ``(n_visible,)`` or a scalar (tensor or number), > 0.
        beta: inverse temperature, ``> 0``; the noise standard deviation is ``sigma / sqrt(beta)``.
        return_mean: also return :math:`\mu`.
        generator, backend: as in :func:`gibbs_half_step`.

    Returns:
        ``v`` of shape ``(..., n_visible)`` in ``h``'s dtype, or ``(v, mean)``. Element ``i``
        (flat row-major) uses element ``i`` of the normal stream of the drawn seed pair.
        Computed in float32; no gradients.
    """
    _check_float_tensor("h", h)
    n_vis, n_hid = _check_weight(weight, "h", h.dtype, h.device)
    _check_states("h", h, n_hid, "hidden")
    _check_float_tensor("bias", bias, h.dtype, h.device, like="h")
    _check_shape("bias", bias, (n_vis,), "the visible bias")
    beta = _check_beta(beta, positive=True)
    b = _backend.resolve(backend, h.device)
    sigma32 = _sigma_tensor(sigma, n_vis, h.dtype, h.device)
    _check_finite("weight", weight)
    _check_finite("bias", bias)
    _check_finite("h", h)
    noise_std = sigma32 if beta == 1.0 else (sigma32.double() / math.sqrt(beta)).to(_F32)
    lead = h.shape[:-1]
    h2 = _f32(h.reshape(math.prod(lead), n_hid))
    seed = _random.draw_seed(generator, h.device)
    v, mean = _op("gaussian_half_step", b)(h2, _f32(weight), _f32(bias), sigma32, noise_std.contiguous(), seed)
    v = v.view(*lead, n_vis).to(h.dtype)
    if return_mean:
        return v, mean.view(*lead, n_vis).to(h.dtype)
    return v


def gibbs_sweeps(
    v: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    k: int,
    beta: float = 1.0,
    return_hidden_prob: bool = False,
    check_binary: bool = True,
    generator: torch.Generator | None = None,
    backend: str | None = None,
):
    r"""Run ``k`` block Gibbs sweeps of a Bernoulli-Bernoulli RBM in one call.

    The chain (half-step ``t`` draws from ``gensample.random.substream(seed, t)``)::

        h_0 = draw_h(v_0)                              # t = 0
        for s in 1..k:  v_s = draw_v(h_{s-1})          # t = 2s - 1
                        h_s = draw_h(v_s)              # t = 2s
        return v_k, h_k  (and p(h = 1 | v_k))

    so ``(v_k, h_k)`` is a joint sample of the chain and ``p(h | v_k)`` gives the
    Rao-Blackwellised negative-phase statistics. ``k = 0`` returns ``(v_0, h_0)``. No host
    synchronization happens between sweeps; the cpu backend runs all ``2k + 1``
    half-steps of a block of chains in cache on one thread.

    Args:
        v: initial binary visible states ``(..., n_visible)`` (0/1 values). float16,
            bfloat16, float32 or float64.
        weight: ``(n_visible, n_hidden)``; visible_bias ``(n_visible,)``; hidden_bias
            ``(n_hidden,)``: ``v``'s dtype and device, finite.
        k: number of sweeps, ``>= 0``.
        beta: inverse temperature ``>= 0`` (samples :math:`p_\beta \propto e^{-\beta E}`).
        return_hidden_prob: also return :math:`p(h = 1 \mid v_k)`.
        check_binary: raise ``ValueError`` if ``v`` holds values other than 0 and 1 (one
            check per call). ``False`` skips the check; the first half-step then treats
            ``v`` as real-valued (mean-field) input (which must be finite). Value checks
            (binary, finite) run in eager mode only, not inside ``torch.compile``.
        generator, backend: as in :func:`gibbs_half_step`.

    Returns:
        ``(v_k, h_k)`` or ``(v_k, h_k, h_prob)``, in ``v``'s dtype. Computed in float32; no
        gradients.
    """
    _check_float_tensor("v", v)
    n_vis, n_hid = _check_weight(weight, "v", v.dtype, v.device)
    _check_states("v", v, n_vis, "visible")
    _check_float_tensor("visible_bias", visible_bias, v.dtype, v.device, like="v")
    _check_shape("visible_bias", visible_bias, (n_vis,))
    _check_float_tensor("hidden_bias", hidden_bias, v.dtype, v.device, like="v")
    _check_shape("hidden_bias", hidden_bias, (n_hid,))
    k = _check_int("k", k, 0)
    if k >= 2**30:
        raise ValueError(f"k must be < 2^30 (half-step t = 2k must fit the stream's step counter), got {k}")
    beta = _check_beta(beta, positive=False)
    b = _backend.resolve(backend, v.device)
    _check_finite("weight", weight)
    _check_finite("visible_bias", visible_bias)
    _check_finite("hidden_bias", hidden_bias)
    if check_binary and _eager():
        bad = _count_nonbinary(v)
        if bad:
            raise ValueError(f"v must be binary (0/1 values), but {bad} of its {v.numel()} entries are not 0 or 1; "
                             "pass check_binary=False to start from real-valued (mean-field) inputs")
    elif not check_binary:
        _check_finite("v", v)
    lead = v.shape[:-1]
    v2 = _f32(v.reshape(math.prod(lead), n_vis))
    seed = _random.draw_seed(generator, v.device)
    vk, hk, hp = _op("gibbs_sweeps", b)(v2, _f32(weight), _f32(visible_bias), _f32(hidden_bias), seed, k, beta)
    vk = vk.view(*lead, n_vis).to(v.dtype)
    hk = hk.view(*lead, n_hid).to(v.dtype)
    if return_hidden_prob:
        return vk, hk, hp.view(*lead, n_hid).to(v.dtype)
    return vk, hk
