r"""Stochastic-gradient Langevin dynamics (SGLD) as a ``torch.optim.Optimizer``.

:class:`SGLD` turns a training loop into a posterior sampler (Welling & Teh, 2011):

.. math::

    \theta \leftarrow \theta - \mathrm{lr}\,\big(\nabla_\theta U(\theta) + \mathrm{wd}\,\theta\big)
      + \sigma \varepsilon, \qquad \sigma = \sqrt{2\,\mathrm{lr}\,T}, \quad \varepsilon \sim \mathcal N(0, I),

where the loss handed to ``backward()`` is the **energy** :math:`U(\theta)`: the negative
log posterior, summed over the data,

.. math::

    U(\theta) = -\sum_{i=1}^{N} \log p(y_i \mid x_i, \theta) - \log p(\theta).

With the defaults (``temperature=1``) the chain samples :math:`p(\theta \mid \mathcal D)
\propto e^{-U(\theta)}` (up to the :math:`O(\mathrm{lr})` bias of the unadjusted
discretization). ``weight_decay=wd`` adds a Gaussian prior :math:`\mathcal N(0, 1/\mathrm{wd})`
on every parameter (its energy :math:`\tfrac{\mathrm{wd}}{2}\lVert\theta\rVert^2`), so the loss
then needs only the likelihood term.

**Mini-batches.** Losses are usually a *mean* over a mini-batch of size :math:`B`. The
unbiased estimate of the summed energy is :math:`N \cdot` (batch mean of the negative log
likelihood) :math:`- \log p(\theta)`: multiply the mean loss by the dataset size ``N``
(not by ``B``)::

    loss = N * F.cross_entropy(model(xb), yb)        # = sum over the data, in expectation
    loss.backward(); opt.step()                       # SGLD(model.parameters(), lr, weight_decay=prior_precision)

Because the energy is a sum over ``N`` points, ``lr`` must shrink like ``1/N``: useful
values are far smaller than for SGD on a mean loss. ``temperature < 1`` sharpens the
posterior ("cold posterior"); ``noise_scale`` overrides :math:`\sigma` altogether
(``noise_scale=0`` is SGD with weight decay).

The update of every parameter of a group with the same device and dtype is one fused
multi-tensor launch (:func:`gensample.ops.sgld_step_`); each launch draws one seed pair
from ``generator``, and the noise of element ``e`` of the ``k``-th tensor is element
``base_k + e`` of that pair's normal stream (``base_k``: the sizes of the earlier
tensors, each rounded up to a multiple of 4).
"""
from __future__ import annotations

import math

import torch

from . import random as _random
from ._checks import check_real
from .ops import langevin as _lops

__all__ = ["SGLD"]


class SGLD(torch.optim.Optimizer):
    """SGLD optimizer; see the module docstring for the convention.

    Args:
        params: iterable of parameters or of parameter-group dicts.
        lr: step size > 0.
        noise_scale: :math:`\\sigma`; default ``sqrt(2 * lr * temperature)``.
        temperature: :math:`T > 0`; the chain targets :math:`e^{-U/T}`.
        weight_decay: ``wd >= 0``: Gaussian prior with precision ``wd``.
        generator: source of the seed pairs (default: the global generator of the
            parameters' device).
        backend: gensample backend (``None``: automatic).

    ``step(closure=None)`` skips parameters whose ``.grad`` is None, refuses sparse
    gradients, and never synchronizes with the host.
    """

    def __init__(self, params, lr: float, *, noise_scale: float | None = None, temperature: float = 1.0,
                 weight_decay: float = 0.0, generator: torch.Generator | None = None, backend: str | None = None):
        check_real("lr", lr, positive=True)
        if noise_scale is not None:
            check_real("noise_scale", noise_scale, nonneg=True)
        check_real("temperature", temperature, positive=True)
        check_real("weight_decay", weight_decay, nonneg=True)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        defaults = dict(lr=lr, noise_scale=noise_scale, temperature=temperature, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.generator = generator
        self.backend = backend

    @staticmethod
    def group_noise_scale(group: dict) -> float:
        """The noise scale a group uses: ``noise_scale`` or ``sqrt(2 * lr * temperature)``."""
        if group["noise_scale"] is not None:
            return float(group["noise_scale"])
        return math.sqrt(2.0 * float(group["lr"]) * float(group["temperature"]))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = check_real("lr", group["lr"], positive=True)
            wd = check_real("weight_decay", group["weight_decay"], nonneg=True)
            sigma = self.group_noise_scale(group)
            buckets: dict[tuple, tuple[list, list]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("SGLD does not support sparse gradients")
                ps, gs = buckets.setdefault((p.device, p.dtype), ([], []))
                ps.append(p)
                gs.append(p.grad)
            for (device, _), (ps, gs) in buckets.items():
                seed = _random.draw_seed(self.generator, device)
                _lops.sgld_step_(ps, gs, lr=lr, noise_scale=sigma, weight_decay=wd, seed=seed, backend=self.backend)
        return loss
