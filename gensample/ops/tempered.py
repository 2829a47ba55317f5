r"""Tempered block Gibbs for RBMs: per-chain inverse temperatures (parallel tempering)
and whole annealed-importance-sampling runs (AIS) in one op.

**The tempered family.** Both RBM kinds are tempered on the interaction and hidden
terms only, so that :math:`\beta = 0` is a tractable *base* distribution:

* Bernoulli-Bernoulli, with a base visible bias :math:`b_A` (e.g. the data's
  log-odds, Salakhutdinov & Murray 2008; zeros give the uniform base):

  .. math::

      \log p^*_\beta(v, h) = (1 - \beta)\, b_A^\top v + \beta\,(b^\top v + c^\top h + v^\top W h),
      \qquad \log Z_0 = \textstyle\sum_i \operatorname{softplus}(b_{A,i}) + n_h \log 2.

  :math:`p(h_j = 1 \mid v) = \sigma(\beta\, a_j)` with :math:`a = c + vW`, and
  :math:`p(v_i = 1 \mid h) = \sigma(\beta (b_i + (hW^\top)_i) + (1 - \beta) b_{A,i})`.
  With :math:`b_A = 0` this is exactly :func:`gensample.ops.gibbs_sweeps` at ``beta``.
* Gaussian-Bernoulli (per-unit ``sigma``), the visible quadratic left untempered:

  .. math::

      \log p^*_\beta(v, h) = -\sum_i \frac{(v_i - b_i)^2}{2\sigma_i^2}
          + \beta\,\big(c^\top h + (v / \sigma)^\top W h\big),
      \qquad \log Z_0 = \textstyle\sum_i \log(\sqrt{2\pi}\,\sigma_i) + n_h \log 2.

  :math:`p(h_j = 1 \mid v) = \sigma(\beta a_j)` with :math:`a = c + (v/\sigma) W`, and
  :math:`v \mid h \sim \mathcal N(b + \sigma \odot (\beta\, h W^\top), \sigma^2)`.
  (At :math:`\beta = 1` both are the model; the GB family differs from
  ``gibbs``'s ``beta``, which scales the whole energy.)

Summing out :math:`h`, the unnormalized visible log-density is
:math:`\log p^*_\beta(v) = \ell(v) + \sum_j \operatorname{softplus}(\beta a_j)` with
:math:`\ell(v) = (b_A + \beta (b - b_A))^\top v` (Bernoulli) or
:math:`-\sum_i (v_i - b_i)^2 / 2\sigma_i^2` (Gaussian): :func:`tempered_log_density`.

**Float32 recipe (every backend, operation for operation).** ``acc`` is the GEMM,
``x = v / sigma`` (Gaussian) or ``v`` (Bernoulli) is the hidden half-step's input,
``beta`` a float32 scalar of the chain or the step:

* hidden: ``a = acc + c``; ``t = a * beta``; ``p = sigmoid_f32(t)``; ``h = u < p``.
* Bernoulli visible: ``t = (acc + b) * beta + (1 - beta) * b_A`` with ``1 - beta``
  one float32 subtraction; ``v = u < sigmoid_f32(t)``.
* Gaussian visible: ``mean = b + sigma * (acc * beta)``; ``v = mean + sigma * eps``.
* softplus (log-weights only): ``max(t, 0) + log1p(exp(-|t|))`` in float32, each
  backend with its own float32 ``exp``/``log1p`` (so log-weights agree across backends
  to rounding, not bit for bit; the states agree bit for bit when the GEMMs are exact).

**Random stream.** :func:`tempered_sweeps` is laid out exactly like ``gibbs_sweeps``:
half-step ``t`` (``h_0`` at 0, ``v_s`` at ``2s - 1``, ``h_s`` at ``2s``) draws from
``substream(seed, t)``, element ``r * n_out + j`` (uniforms for Bernoulli layers, the
normal stream for a Gaussian visible layer). :func:`ais_rbm` step ``k = 1..K`` draws
its hidden half-step from ``substream(seed, 2k - 2)`` and its visible half-step from
``substream(seed, 2k - 1)``.

**AIS** (Neal 2001; Salakhutdinov & Murray 2008). With a schedule
:math:`0 \le \beta_0, \dots, \beta_K \le 1` and :math:`v_0` drawn from
:math:`p_{\beta_0}`, step :math:`k = 1..K` does

.. math::

    \log w \mathrel{+}= \log p^*_{\beta_k}(v_{k-1}) - \log p^*_{\beta_{k-1}}(v_{k-1}), \qquad
    v_k \sim T_{\beta_k}(\cdot \mid v_{k-1}) \ \ (h \sim p_{\beta_k}(h \mid v),\ v \sim p_{\beta_k}(v \mid h)),

so :math:`\mathbb E[w] = Z_{\beta_K} / Z_{\beta_0}`. The increment is computed as
``float64(beta_k - beta_{k-1}) * ell_diff(v) + sum_j (float64(softplus(t_k)) -
float64(softplus(t_{k-1})))`` with ``t_k = a * beta_k`` (the same float32 ``t`` the
hidden draw uses), ``ell_diff(v) = sum_i float64(b_i - b_A,i) v_i`` (Bernoulli) or 0
(Gaussian), accumulated in float64. A reversed schedule (1 -> 0) from exact samples of
the model is reverse AIS, whose weights estimate :math:`Z_0 / Z_1`.

This file holds the public functions, validation, registration and the torch backend
(the executable specification of ``csrc/cpu/tempered_cpu.cpp``,
``csrc/cuda/tempered_cuda.cu`` and ``gensample/ops/tempered_triton.py``).
"""
from __future__ import annotations

import math

import torch

from .. import _backend
from .. import random as _random
from .._checks import check_float_tensor as _check_float_tensor
from .._checks import check_int as _check_int
from .._checks import check_shape as _check_shape
from . import _registry
from .gibbs import _check_finite, _check_states, _check_weight, _count_nonbinary, _eager, _f32, sigmoid_f32

__all__ = ["tempered_sweeps", "ais_rbm", "tempered_log_density", "softplus_f32", "base_log_partition"]

_F32 = torch.float32
_F64 = torch.float64


# ----------------------------------------------------------------------------
# torch backend: the executable specification
# ----------------------------------------------------------------------------
def softplus_f32(t: torch.Tensor) -> torch.Tensor:
    """``max(t, 0) + log1p(exp(-|t|))`` in float32 (the recipe's softplus)."""
    return torch.clamp_min(t, 0.0) + torch.log1p(torch.exp(-torch.abs(t)))


def _hidden(x, weight, hidden_bias, beta_col, seed):
    a = x @ weight + hidden_bias
    t = a * beta_col
    p = sigmoid_f32(t)
    h = _random.bernoulli_stream(seed, p).to(_F32)
    return h, a, t


def _visible(h, weight, visible_bias, visible_base, sigma, beta_col, seed):
    acc = h @ weight.T
    if sigma is None:
        one_minus = torch.ones_like(beta_col) - beta_col
        t = (acc + visible_bias) * beta_col + one_minus * visible_base
        return _random.bernoulli_stream(seed, sigmoid_f32(t)).to(_F32)
    mean = visible_bias + sigma * (acc * beta_col)
    eps = _random.normal_stream(seed, mean.numel()).view(mean.shape)
    return mean + sigma * eps


def _hidden_input(v, sigma):
    return v if sigma is None else v / sigma


def _tempered_sweeps_torch_impl(v, weight, visible_bias, hidden_bias, visible_base, beta, sigma, seed, k):
    bc = beta.view(-1, 1)
    h, a, _ = _hidden(_hidden_input(v, sigma), weight, hidden_bias, bc, _random.substream(seed, 0))
    for s in range(1, k + 1):
        v = _visible(h, weight, visible_bias, visible_base, sigma, bc, _random.substream(seed, 2 * s - 1))
        h, a, _ = _hidden(_hidden_input(v, sigma), weight, hidden_bias, bc, _random.substream(seed, 2 * s))
    return v.clone() if k == 0 else v, h, a


def _ais_rbm_torch_impl(v, weight, visible_bias, hidden_bias, visible_base, betas, sigma, seed):
    B = v.shape[0]
    log_w = torch.zeros(B, dtype=_F64, device=v.device)
    diff = None if sigma is not None else (visible_bias - visible_base).to(_F64)
    K = betas.shape[0] - 1
    for k in range(1, K + 1):
        bk, bp = betas[k], betas[k - 1]
        x = _hidden_input(v, sigma)
        a = x @ weight + hidden_bias
        t_k, t_p = a * bk, a * bp
        inc = (softplus_f32(t_k).to(_F64) - softplus_f32(t_p).to(_F64)).sum(1)
        if diff is not None:
            inc = inc + (bk.to(_F64) - bp.to(_F64)) * (v.to(_F64) @ diff)
        log_w = log_w + inc
        h = _random.bernoulli_stream(_random.substream(seed, 2 * k - 2), sigmoid_f32(t_k)).to(_F32)
        v = _visible(h, weight, visible_bias, visible_base, sigma, bk.view(1, 1).expand(B, 1),
                     _random.substream(seed, 2 * k - 1))
    return log_w, (v.clone() if K == 0 else v)


@torch.library.custom_op("gensample::tempered_sweeps_torch", mutates_args=())
def _tempered_sweeps_torch(v: torch.Tensor, weight: torch.Tensor, visible_bias: torch.Tensor,
                           hidden_bias: torch.Tensor, visible_base: torch.Tensor, beta: torch.Tensor,
                           sigma: torch.Tensor | None, seed: torch.Tensor,
                           k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _tempered_sweeps_torch_impl(v, weight, visible_bias, hidden_bias, visible_base, beta, sigma, seed, k)


@torch.library.custom_op("gensample::ais_rbm_torch", mutates_args=())
def _ais_rbm_torch(v: torch.Tensor, weight: torch.Tensor, visible_bias: torch.Tensor, hidden_bias: torch.Tensor,
                   visible_base: torch.Tensor, betas: torch.Tensor, sigma: torch.Tensor | None,
                   seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _ais_rbm_torch_impl(v, weight, visible_bias, hidden_bias, visible_base, betas, sigma, seed)


# ----------------------------------------------------------------------------
# registration: fake implementations (sampling ops: no autograd)
# ----------------------------------------------------------------------------
def _fake_sweeps(v, weight, visible_bias, hidden_bias, visible_base, beta, sigma, seed, k):
    B = v.shape[0]
    return v.new_empty((B, weight.shape[0])), v.new_empty((B, weight.shape[1])), v.new_empty((B, weight.shape[1]))


def _fake_ais(v, weight, visible_bias, hidden_bias, visible_base, betas, sigma, seed):
    return v.new_empty((v.shape[0],), dtype=_F64), v.new_empty(v.shape)


_OPS = ("tempered_sweeps", "ais_rbm")
_FAKES = {"tempered_sweeps": _fake_sweeps, "ais_rbm": _fake_ais}


def _cpp_ops_defined() -> bool:
    # the schemas come with the extension (csrc/tempered_ops.cpp); an older build lacks them
    return _registry.cpp_ops_defined(_OPS)


_registry.register_fakes(_FAKES, "_torch")
if _cpp_ops_defined():
    _registry.register_fakes(_FAKES, "")


def _has_kernels(name: str, backend: str, device) -> bool:
    if backend == "torch":
        return True
    if backend == "triton":
        return hasattr(torch.ops.gensample, name + "_triton")
    return _cpp_ops_defined() and torch._C._dispatch_has_kernel_for_dispatch_key(
        f"gensample::{name}", "CUDA" if device.type == "cuda" else "CPU")


def _resolve(backend, device, name: str) -> str:
    """``_backend.resolve``; an automatic choice (``backend=None``, no ``GENSAMPLE_BACKEND``)
    whose build lacks the tempered kernels (an extension built before them) falls back to
    the torch backend instead of failing. An explicit backend is never replaced."""
    import os

    b = _backend.resolve(backend, device)
    if backend is None and not os.environ.get("GENSAMPLE_BACKEND", "").strip() and not _has_kernels(name, b, device):
        return "torch"
    return b


def _op(name: str, backend: str):
    return _registry.lookup_op(name, backend, _OPS, "tempered")


# ----------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------
def _check_params(v, weight, visible_bias, hidden_bias, visible_base, sigma):
    """Validate the model tensors; returns (n_vis, n_hid, base32, sigma32 or None)."""
    _check_float_tensor("v", v)
    n_vis, n_hid = _check_weight(weight, "v", v.dtype, v.device)
    _check_states("v", v, n_vis, "visible")
    _check_float_tensor("visible_bias", visible_bias, v.dtype, v.device, like="v")
    _check_shape("visible_bias", visible_bias, (n_vis,))
    _check_float_tensor("hidden_bias", hidden_bias, v.dtype, v.device, like="v")
    _check_shape("hidden_bias", hidden_bias, (n_hid,))
    _check_finite("weight", weight)
    _check_finite("visible_bias", visible_bias)
    _check_finite("hidden_bias", hidden_bias)
    if sigma is not None and visible_base is not None:
        raise ValueError("visible_base applies to Bernoulli visible units only; pass sigma=None or visible_base=None")
    if sigma is None:
        if visible_base is None:
            base32 = torch.zeros(n_vis, dtype=_F32, device=v.device)
        else:
            _check_float_tensor("visible_base", visible_base, v.dtype, v.device, like="v")
            _check_shape("visible_base", visible_base, (n_vis,), "the base model's visible bias")
            _check_finite("visible_base", visible_base)
            base32 = _f32(visible_base)
        sigma32 = None
    else:
        from .gibbs import _sigma_tensor

        sigma32 = _sigma_tensor(sigma, n_vis, v.dtype, v.device)
        base32 = torch.zeros(n_vis, dtype=_F32, device=v.device)
    return n_vis, n_hid, base32, sigma32


def _check_visible_states(v, sigma32, check_binary: bool) -> None:
    if sigma32 is None and check_binary and _eager():
        bad = _count_nonbinary(v)
        if bad:
            raise ValueError(f"v must be binary (0/1 values), but {bad} of its {v.numel()} entries are not 0 or 1")
    else:
        _check_finite("v", v)


def _beta_vector(beta, B: int, device) -> torch.Tensor:
    if isinstance(beta, torch.Tensor):
        _check_float_tensor("beta", beta)
        if beta.device != device:
            raise ValueError(f"beta is on {beta.device} but v is on {device}; put them on one device")
        if beta.dim() == 0:
            beta = beta.expand(B)
        _check_shape("beta", beta, (B,), "one inverse temperature per chain")
        b32 = _f32(beta)
    else:
        from .._checks import check_real

        b32 = torch.full((B,), check_real("beta", beta, nonneg=True), dtype=_F32, device=device)
    if _eager() and not bool(((b32 >= 0) & (b32 <= 1)).all()):
        raise ValueError("beta must lie in [0, 1] (every entry): 0 is the base distribution, 1 the model")
    return b32


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------
def tempered_sweeps(
    v: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    beta: torch.Tensor | float,
    k: int,
    visible_base: torch.Tensor | None = None,
    sigma: torch.Tensor | float | None = None,
    check_binary: bool = True,
    generator: torch.Generator | None = None,
    backend: str | None = None,
):
    r"""``k`` tempered block Gibbs sweeps with one inverse temperature per chain.

    Chain ``r`` samples :math:`p_{\beta_r}` of the tempered family (module docstring):
    Bernoulli visible units when ``sigma is None`` (with base bias ``visible_base``,
    default zeros), Gaussian visible units with standard deviations ``sigma`` otherwise.
    The chain is that of ``gibbs_sweeps``: ``h_0 ~ p(h | v_0)``, then ``k`` times
    ``v ~ p(v | h)``, ``h ~ p(h | v)``.

    Args:
        v: initial visible states ``(B, n_visible)``: binary for Bernoulli units.
        weight, visible_bias, hidden_bias: the RBM, ``v``'s dtype and device.
        beta: ``(B,)`` inverse temperatures in ``[0, 1]`` (or one number for all chains).
        k: sweeps, ``>= 0``.
        visible_base: ``(n_visible,)`` base-model visible bias :math:`b_A` (Bernoulli).
        sigma: ``(n_visible,)`` or scalar standard deviations: Gaussian visible units.
        check_binary: check that a Bernoulli ``v`` is 0/1 (eager mode only).
        generator, backend: seed source and backend, as in ``gibbs_sweeps``.

    Returns:
        ``(v_k, h_k, a_k)`` with :math:`a_k = c + x_k W` the untempered hidden
        pre-activation at ``v_k`` (for :func:`tempered_log_density` at any
        temperature, e.g. replica-exchange moves), all in ``v``'s dtype.
    """
    n_vis, n_hid, base32, sigma32 = _check_params(v, weight, visible_bias, hidden_bias, visible_base, sigma)
    if v.dim() != 2:
        raise ValueError(f"v must be 2-D (chains, n_visible), got shape {tuple(v.shape)}")
    k = _check_int("k", k, 0)
    if k >= 2**30:
        raise ValueError(f"k must be < 2^30 (half-step t = 2k must fit the stream's step counter), got {k}")
    b = _resolve(backend, v.device, "tempered_sweeps")
    beta32 = _beta_vector(beta, v.shape[0], v.device)
    _check_visible_states(v, sigma32, check_binary)
    seed = _random.draw_seed(generator, v.device)
    vk, hk, ak = _op("tempered_sweeps", b)(_f32(v), _f32(weight), _f32(visible_bias), _f32(hidden_bias), base32,
                                            beta32, sigma32, seed, k)
    return vk.to(v.dtype), hk.to(v.dtype), ak.to(v.dtype)


def ais_rbm(
    v: torch.Tensor,
    weight: torch.Tensor,
    visible_bias: torch.Tensor,
    hidden_bias: torch.Tensor,
    *,
    betas: torch.Tensor,
    visible_base: torch.Tensor | None = None,
    sigma: torch.Tensor | float | None = None,
    check_binary: bool = True,
    generator: torch.Generator | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One whole AIS run (all ``K`` annealing steps) in one op, no host synchronization.

    Args:
        v: ``(B, n_visible)`` starting states, drawn from :math:`p_{\beta_0}` by the caller
            (the base model for a forward run, the model for a reverse run).
        betas: ``(K + 1,)`` schedule :math:`\beta_0..\beta_K`, each in ``[0, 1]``
            (any order: increasing for forward AIS, decreasing for reverse AIS).
        visible_base, sigma, check_binary, generator, backend: as in :func:`tempered_sweeps`.

    Returns:
        ``(log_w, v_K)``: float64 ``(B,)`` log importance weights
        :math:`\log \prod_k p^*_{\beta_k}(v_{k-1}) / p^*_{\beta_{k-1}}(v_{k-1})` and the
        final states (``v``'s dtype).
    """
    n_vis, n_hid, base32, sigma32 = _check_params(v, weight, visible_bias, hidden_bias, visible_base, sigma)
    if v.dim() != 2:
        raise ValueError(f"v must be 2-D (chains, n_visible), got shape {tuple(v.shape)}")
    _check_float_tensor("betas", betas)
    if betas.device != v.device:
        raise ValueError(f"betas is on {betas.device} but v is on {v.device}; put them on one device")
    if betas.dim() != 1 or betas.shape[0] < 1:
        raise ValueError(f"betas must be 1-D with at least one entry (beta_0 .. beta_K), got shape {tuple(betas.shape)}")
    if betas.shape[0] - 1 >= 2**30:
        raise ValueError(f"betas may hold at most 2^30 steps, got {betas.shape[0] - 1}")
    betas32 = _f32(betas)
    if _eager() and not bool(((betas32 >= 0) & (betas32 <= 1)).all()):
        raise ValueError("betas must lie in [0, 1] (every entry)")
    b = _resolve(backend, v.device, "ais_rbm")
    _check_visible_states(v, sigma32, check_binary)
    seed = _random.draw_seed(generator, v.device)
    log_w, vK = _op("ais_rbm", b)(_f32(v), _f32(weight), _f32(visible_bias), _f32(hidden_bias), base32, betas32,
                                   sigma32, seed)
    return log_w, vK.to(v.dtype)


def tempered_log_density(
    v: torch.Tensor,
    a: torch.Tensor,
    beta: torch.Tensor | float,
    visible_bias: torch.Tensor,
    *,
    visible_base: torch.Tensor | None = None,
    sigma: torch.Tensor | float | None = None,
) -> torch.Tensor:
    r""":math:`\log p^*_\beta(v) = \ell_\beta(v) + \sum_j \operatorname{softplus}(\beta a_j)`
    in float64, from the visible states ``v`` ``(B, n_visible)`` and their untempered hidden
    pre-activations ``a = c + x W`` ``(B, n_hidden)`` (as returned by
    :func:`tempered_sweeps`); ``beta`` is a number or ``(B,)``. Pure torch (no GEMM)."""
    v64, a64 = v.to(_F64), a.to(_F64)
    beta64 = beta.to(_F64).reshape(-1, 1) if isinstance(beta, torch.Tensor) else torch.tensor(float(beta), dtype=_F64, device=v.device)
    sp = torch.nn.functional.softplus(beta64 * a64).sum(-1)
    b64 = visible_bias.to(_F64)
    if sigma is None:
        base = torch.zeros_like(b64) if visible_base is None else visible_base.to(_F64)
        lin = v64 @ base + beta64.reshape(-1) * (v64 @ (b64 - base))
        return lin + sp
    s64 = sigma.to(_F64) if isinstance(sigma, torch.Tensor) else torch.tensor(float(sigma), dtype=_F64, device=v.device)
    return -(((v64 - b64) / s64) ** 2).sum(-1) / 2 + sp


def base_log_partition(n_hidden: int, *, visible_base: torch.Tensor | None = None, n_visible: int | None = None,
                       sigma: torch.Tensor | float | None = None) -> float:
    r""":math:`\log Z_0` of the tempered family's :math:`\beta = 0` member (float64):
    :math:`\sum_i \operatorname{softplus}(b_{A,i}) + n_h \log 2` (Bernoulli; ``visible_base``
    or, for the uniform base, ``n_visible``) or :math:`\sum_i \log(\sqrt{2\pi}\sigma_i) + n_h
    \log 2` (Gaussian, ``sigma`` a tensor of ``n_visible`` entries or a number with
    ``n_visible``)."""
    hid = n_hidden * math.log(2.0)
    if sigma is not None:
        if isinstance(sigma, torch.Tensor) and sigma.dim() > 0:
            s = sigma.detach().to(_F64)
            return float(torch.log(s * math.sqrt(2 * math.pi)).sum()) + hid
        if n_visible is None:
            raise ValueError("base_log_partition: pass n_visible with a scalar sigma")
        return n_visible * math.log(math.sqrt(2 * math.pi) * float(sigma)) + hid
    if visible_base is not None:
        return float(torch.nn.functional.softplus(visible_base.detach().to(_F64)).sum()) + hid
    if n_visible is None:
        raise ValueError("base_log_partition: pass visible_base or n_visible")
    return n_visible * math.log(2.0) + hid
