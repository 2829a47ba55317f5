r"""Fused Gaussian reparameterization + KL: ``z, kl = reparameterize_kl(mu, logvar)``.

.. math::

    z = \mu + e^{\ell / 2} \varepsilon, \quad \varepsilon \sim \mathcal N(0, I), \qquad
    \mathrm{KL}\big(\mathcal N(\mu, e^{\ell}) \,\|\, \mathcal N(m, e^{p})\big)
      = \tfrac12 \sum_j \big[\operatorname{expm1}(d_j) - d_j + (\mu_j - m_j)^2 e^{-p_j}\big],
      \quad d = \ell - p.

One kernel forward (z and the per-row KL in one pass over memory), one kernel
backward. The noise is drawn in-kernel from gensample's Philox stream and is *not*
stored: the backward regenerates it from the saved ``(seed, offset)`` pair, so the
gradient with respect to ``logvar`` stays exact even when ``std`` is tiny next to
``mu`` (where ``(z - mu) / std`` would have lost its digits).

This file holds the public function, input validation, the ``torch.library``
registrations (fake and autograd implementations for every backend) and the torch
backend, which is the executable specification of the kernels in
``csrc/cpu/reparam_cpu.cpp``, ``csrc/cuda/reparam_cuda.cu`` and
``gensample/ops/reparam_triton.py``. The per-element formulas live once in
``csrc/include/gensample/reparam.h``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .. import _backend, _ext
from .._checks import check_float_tensor as _check_float_tensor
from .. import random as _random
from . import _triton_loader

__all__ = ["reparameterize_kl"]

_REDUCTIONS = ("none", "sum", "mean")


# ----------------------------------------------------------------------------
# torch backend: the executable specification
# ----------------------------------------------------------------------------
def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _kl_term(mu, lv, pm, plv):
    d = lv - plv
    diff = mu - pm
    return 0.5 * (torch.expm1(d) - d + diff * diff * torch.exp(-plv))


def _fwd_torch_impl(mu, logvar, prior_mu, prior_logvar, seed, n_samples):
    R, D = mu.shape
    ot = _opmath(mu.dtype)
    eps = _random.normal_stream(seed, n_samples * R * D).view(n_samples, R, D).to(ot)
    m, lv = mu.to(ot), logvar.to(ot)
    pm = prior_mu.to(ot) if prior_mu is not None else torch.zeros((), dtype=ot, device=mu.device)
    plv = prior_logvar.to(ot) if prior_logvar is not None else torch.zeros((), dtype=ot, device=mu.device)
    z = m + torch.exp(lv * 0.5) * eps
    kl = _kl_term(m, lv, pm, plv).sum(-1)
    return z.to(mu.dtype).contiguous(), kl.to(mu.dtype)


def _bwd_torch_impl(grad_z, grad_kl, mu, logvar, prior_mu, prior_logvar, seed, n_samples, prior_grads):
    R, D = mu.shape
    ot = _opmath(mu.dtype)
    m, lv = mu.to(ot), logvar.to(ot)
    zero = torch.zeros((), dtype=ot, device=mu.device)
    pm = prior_mu.to(ot) if prior_mu is not None else zero
    plv = prior_logvar.to(ot) if prior_logvar is not None else zero
    if grad_z is not None:
        eps = _random.normal_stream(seed, n_samples * R * D).view(n_samples, R, D).to(ot)
        gz = grad_z.to(ot)
        dz_sum = gz.sum(0)
        dz_sum_eps = (gz * eps).sum(0)
    else:
        dz_sum = dz_sum_eps = zero
    dkl = grad_kl.to(ot)[:, None] if grad_kl is not None else zero
    d = lv - plv
    em1 = torch.expm1(d)
    diff = m - pm
    g_kl_mu = diff * torch.exp(-plv)
    dmu = dz_sum + dkl * g_kl_mu
    dlv = dz_sum_eps * 0.5 * torch.exp(lv * 0.5) + dkl * 0.5 * em1
    full = (R, D)
    dmu = dmu.expand(full).to(mu.dtype).contiguous()
    dlv = dlv.expand(full).to(mu.dtype).contiguous()
    if prior_grads:
        dpm = (-dkl * g_kl_mu).expand(full).to(mu.dtype).contiguous()
        dplv = (-0.5 * dkl * (em1 + diff * g_kl_mu)).expand(full).to(mu.dtype).contiguous()
    else:
        dpm = mu.new_empty((0,))
        dplv = mu.new_empty((0,))
    return dmu, dlv, dpm, dplv


@torch.library.custom_op("gensample::reparam_kl_fwd_torch", mutates_args=())
def _fwd_torch(mu: torch.Tensor, logvar: torch.Tensor, prior_mu: Optional[torch.Tensor],
               prior_logvar: Optional[torch.Tensor], seed: torch.Tensor,
               n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    return _fwd_torch_impl(mu, logvar, prior_mu, prior_logvar, seed, n_samples)


@torch.library.custom_op("gensample::reparam_kl_bwd_torch", mutates_args=())
def _bwd_torch(grad_z: Optional[torch.Tensor], grad_kl: Optional[torch.Tensor], mu: torch.Tensor,
               logvar: torch.Tensor, prior_mu: Optional[torch.Tensor], prior_logvar: Optional[torch.Tensor],
               seed: torch.Tensor, n_samples: int,
               prior_grads: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _bwd_torch_impl(grad_z, grad_kl, mu, logvar, prior_mu, prior_logvar, seed, n_samples, prior_grads)


# ----------------------------------------------------------------------------
# registration: fake + autograd, shared by every backend's op
# ----------------------------------------------------------------------------
def _fake_fwd(mu, logvar, prior_mu, prior_logvar, seed, n_samples):
    R, D = mu.shape
    return mu.new_empty((n_samples, R, D)), mu.new_empty((R,))


def _fake_bwd(grad_z, grad_kl, mu, logvar, prior_mu, prior_logvar, seed, n_samples, prior_grads):
    R, D = mu.shape
    pshape = (R, D) if prior_grads else (0,)
    return mu.new_empty((R, D)), mu.new_empty((R, D)), mu.new_empty(pshape), mu.new_empty(pshape)


def _setup_context(ctx, inputs, output):
    mu, logvar, prior_mu, prior_logvar, seed, n_samples = inputs
    ctx.save_for_backward(mu, logvar, prior_mu, prior_logvar, seed)
    ctx.n_samples = n_samples
    ctx.set_materialize_grads(False)


def _make_backward(bwd_op):
    def backward(ctx, grad_z, grad_kl):
        mu, logvar, prior_mu, prior_logvar, seed = ctx.saved_tensors
        need = ctx.needs_input_grad
        prior_grads = bool((prior_mu is not None and need[2]) or (prior_logvar is not None and need[3]))
        if grad_z is None and grad_kl is None:
            return None, None, None, None, None, None
        dmu, dlv, dpm, dplv = bwd_op(grad_z, grad_kl, mu, logvar, prior_mu, prior_logvar, seed,
                                     ctx.n_samples, prior_grads)
        return (dmu if need[0] else None, dlv if need[1] else None,
                dpm if (prior_grads and need[2]) else None, dplv if (prior_grads and need[3]) else None,
                None, None)

    return backward


def _register(fwd_name: str, bwd_name: str, fake: bool) -> None:
    if fake:
        torch.library.register_fake(fwd_name)(_fake_fwd)
        torch.library.register_fake(bwd_name)(_fake_bwd)
    bwd_op = getattr(torch.ops.gensample, bwd_name.split("::")[1])
    torch.library.register_autograd(fwd_name, _make_backward(bwd_op), setup_context=_setup_context)


_register("gensample::reparam_kl_fwd_torch", "gensample::reparam_kl_bwd_torch", fake=True)
if _ext.loaded():
    _register("gensample::reparam_kl_fwd", "gensample::reparam_kl_bwd", fake=True)
# triton_op derives its fake implementation by tracing the launcher.
_triton_loader.on_load(lambda: _register("gensample::reparam_kl_fwd_triton", "gensample::reparam_kl_bwd_triton",
                                         fake=False))


def _fwd_op(backend: str):
    if backend == "torch":
        return torch.ops.gensample.reparam_kl_fwd_torch
    if backend == "triton":
        _triton_loader.require()
        return torch.ops.gensample.reparam_kl_fwd_triton
    return torch.ops.gensample.reparam_kl_fwd  # cpu and cuda: dispatched by device


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------
def _prior_view(name: str, p, mu: torch.Tensor, R: int, D: int) -> torch.Tensor | None:
    if p is None:
        return None
    if isinstance(p, (int, float)) and not isinstance(p, bool):
        p = torch.tensor(float(p), dtype=mu.dtype, device=mu.device)
    _check_float_tensor(name, p, mu.dtype, mu.device)
    try:
        ok = torch.broadcast_shapes(p.shape, mu.shape) == mu.shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must be broadcastable to mu's shape {tuple(mu.shape)} without changing it, "
            f"got shape {tuple(p.shape)}")
    return p.expand(mu.shape).reshape(R, D)


def reparameterize_kl(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    prior_mu: torch.Tensor | float | None = None,
    prior_logvar: torch.Tensor | float | None = None,
    n_samples: int = 1,
    reduction: str = "none",
    logvar_clamp: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Sample a diagonal-Gaussian latent by reparameterization and return its KL.

    Equivalent to (but one kernel instead of 8 to 12, and storing no noise)::

        std = torch.exp(0.5 * logvar); z = mu + std * torch.randn_like(std)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)

    Args:
        mu: mean, shape ``(*batch, D)``; float16, bfloat16, float32 or float64 (math is
            done in float32, float64 for float64 inputs). Any strides (e.g. the halves of
            ``encoder(x).chunk(2, -1)``) are read in place.
        logvar: log-variance, exactly ``mu``'s shape, dtype and device (no broadcasting).
        prior_mu, prior_logvar: diagonal Gaussian prior :math:`\mathcal N(m, e^{p})`,
            tensors (or numbers) broadcastable to ``mu``'s shape; ``None`` means 0, i.e.
            the standard normal prior. Both receive gradients.
        n_samples: number of independent draws; ``z`` gets a leading dimension of this
            size when it is greater than 1.
        reduction: ``"none"`` (KL per row, shape ``mu.shape[:-1]``), ``"sum"`` or
            ``"mean"`` (over rows; a scalar).
        logvar_clamp: optional numerical guard ``(lo, hi)``: ``logvar`` is clamped to
            ``[lo, hi]`` first (a hard clamp: zero gradient outside). Off by default, so
            results equal the textbook formula.
        generator: source of the seed (default: the global generator of ``mu``'s device,
            so ``torch.manual_seed`` reproduces a run).
        backend: ``None`` (fastest available), ``"triton"``, ``"cuda"``, ``"cpu"`` or
            ``"torch"``; see :mod:`gensample._backend`.

    Returns:
        ``(z, kl)``: ``z`` of shape ``mu.shape`` (or ``(n_samples, *mu.shape)``) in
        ``mu``'s dtype, and the KL divergence :math:`\mathrm{KL}(q \| p)` summed over the
        last dimension, reduced as requested.

    The noise of element ``i`` of ``z`` (flat row-major index) is element ``i`` of the
    standard-normal stream of the drawn seed pair (see :mod:`gensample.random`); the
    backward pass regenerates it instead of storing it.
    """
    _check_float_tensor("mu", mu)
    _check_float_tensor("logvar", logvar, mu.dtype, mu.device)
    if logvar.shape != mu.shape:
        raise ValueError(f"logvar must have exactly mu's shape {tuple(mu.shape)}, got {tuple(logvar.shape)} "
                         "(no broadcasting between mu and logvar)")
    if mu.dim() < 1:
        raise ValueError("mu must have at least one dimension (the latent dimension is the last one)")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    b = _backend.resolve(backend, mu.device)
    if logvar_clamp is not None:
        lo, hi = logvar_clamp
        if not lo < hi:
            raise ValueError(f"logvar_clamp must be (lo, hi) with lo < hi, got {logvar_clamp!r}")
        logvar = logvar.clamp(lo, hi)

    shape = mu.shape
    D = shape[-1]
    R = math.prod(shape[:-1])
    mu2 = mu.reshape(R, D)
    lv2 = logvar.reshape(R, D)
    pm2 = _prior_view("prior_mu", prior_mu, mu, R, D)
    plv2 = _prior_view("prior_logvar", prior_logvar, mu, R, D)
    seed = _random.draw_seed(generator, mu.device)

    z, kl = _fwd_op(b)(mu2, lv2, pm2, plv2, seed, n_samples)
    z = z.view(shape) if n_samples == 1 else z.view((n_samples, *shape))
    kl = kl.view(shape[:-1])
    if reduction == "sum":
        kl = kl.sum()
    elif reduction == "mean":
        kl = kl.mean()
    return z, kl
