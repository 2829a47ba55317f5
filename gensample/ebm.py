r"""Energy-based model training: contrastive divergence with Langevin negatives.

For an energy :math:`E_\theta(x)` with model density :math:`p_\theta(x) \propto e^{-E_\theta(x)}`,
the gradient of the negative log likelihood is

.. math::

    \nabla_\theta\, \mathbb E_{\text{data}}[-\log p_\theta(x)]
      = \mathbb E_{\text{data}}[\nabla_\theta E_\theta(x)] - \mathbb E_{p_\theta}[\nabla_\theta E_\theta(x)],

estimated with negatives :math:`x^-` drawn by short-run Langevin chains started from a
replay buffer of earlier negatives (Du & Mordatch 2019, "IGEBM"; Grathwohl et al. 2020,
"JEM"). The loss (to minimize) is

.. math::

    L = \overline{E(x^+)} - \overline{E(x^-)} + \alpha\,\big(\overline{E(x^+)^2} + \overline{E(x^-)^2}\big),

with bars the batch means; the energy-squared term (weight ``alpha``) keeps the energies
near 0 so they cannot drift without bound. The negatives are detached: no gradient
flows through the sampler.

:func:`contrastive_divergence_loss` computes :math:`L` from given positives and negatives;
:class:`ContrastiveDivergence` draws the negatives too (buffer -> Langevin -> buffer).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .buffer import ReplayBuffer
from .samplers.langevin import LangevinSampler, SampleInfo

__all__ = ["CDStats", "contrastive_divergence_loss", "ContrastiveDivergence"]


class CDStats(NamedTuple):
    """Detached statistics of one loss evaluation (device tensors, no host sync):
    mean positive energy, mean negative energy, the regularizer's value, and the
    Langevin run's :class:`~gensample.samplers.SampleInfo` (None when negatives were given)."""

    energy_pos: torch.Tensor
    energy_neg: torch.Tensor
    reg: torch.Tensor
    sample_info: SampleInfo | None = None


def _energies(energy: Callable, x: torch.Tensor, name: str) -> torch.Tensor:
    e = energy(x)
    n = x.shape[0]
    if isinstance(e, torch.Tensor) and tuple(e.shape) == (n, 1):
        e = e.view(n)
    if not isinstance(e, torch.Tensor) or tuple(e.shape) != (n,):
        got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
        raise ValueError(f"energy({name}) must return per-sample energies of shape ({n},), got {got}")
    return e


def contrastive_divergence_loss(energy: Callable, x_pos: torch.Tensor, x_neg: torch.Tensor, *,
                                alpha: float = 1.0) -> tuple[torch.Tensor, CDStats]:
    r"""``L = mean E(x+) - mean E(x-) + alpha * (mean E(x+)^2 + mean E(x-)^2)``.

    Args:
        energy: the model, mapping ``(B, *event)`` to energies ``(B,)`` (or ``(B, 1)``).
        x_pos: data batch. x_neg: negatives (detached here).
        alpha: weight of the energy-squared regularizer (IGEBM uses 1).

    Returns:
        ``(loss, stats)``: the scalar loss (differentiable in the model's parameters) and
        :class:`CDStats`.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    e_pos = _energies(energy, x_pos, "x_pos")
    e_neg = _energies(energy, x_neg.detach(), "x_neg")
    reg = (e_pos * e_pos).mean() + (e_neg * e_neg).mean()
    loss = e_pos.mean() - e_neg.mean() + alpha * reg
    return loss, CDStats(e_pos.detach().mean(), e_neg.detach().mean(), reg.detach())


class ContrastiveDivergence:
    """Persistent contrastive divergence with a replay buffer and Langevin negatives.

    Each :meth:`loss` call: ``x0, idx = buffer.sample(n)``; ``x_neg, info =
    sampler.sample(x0)``; ``buffer.push(x_neg, idx)``; then
    :func:`contrastive_divergence_loss`. The sampler must use the same energy as the loss.
    While sampling, the model's parameters do not receive gradients (only ``x`` does), and
    ``nn.Module`` energies are put in eval mode (restored afterwards) unless
    ``eval_during_sampling=False``.

    Args:
        energy: the model.
        sampler: a :class:`gensample.LangevinSampler` whose ``energy`` is ``energy``.
        buffer: a :class:`gensample.ReplayBuffer` whose ``sample_shape`` is the data's event shape.
        alpha: regularizer weight.
        n_neg: negatives per loss call (default: the positive batch size).
    """

    def __init__(self, energy: Callable, sampler: LangevinSampler, buffer: ReplayBuffer, *, alpha: float = 1.0,
                 n_neg: int | None = None, eval_during_sampling: bool = True):
        if not isinstance(sampler, LangevinSampler):
            raise TypeError(f"sampler must be a gensample.LangevinSampler, got {type(sampler).__name__}")
        if sampler.energy is not energy:
            raise ValueError("sampler.energy must be the model being trained (the same object as energy)")
        if not isinstance(buffer, ReplayBuffer):
            raise TypeError(f"buffer must be a gensample.ReplayBuffer, got {type(buffer).__name__}")
        self.energy, self.sampler, self.buffer = energy, sampler, buffer
        self.alpha = float(alpha)
        self.n_neg = n_neg
        self.eval_during_sampling = eval_during_sampling

    def negatives(self, n: int) -> tuple[torch.Tensor, SampleInfo]:
        """Draw ``n`` negatives from the buffer through the sampler; pushes them back."""
        x0, idx = self.buffer.sample(n)
        module = self.energy if isinstance(self.energy, torch.nn.Module) else None
        was_training = module.training if module is not None else False
        params = list(module.parameters()) if module is not None else []
        flags = [p.requires_grad for p in params]
        try:
            if module is not None and self.eval_during_sampling:
                module.eval()
            for p in params:  # no parameter graph while sampling: only grad wrt x is needed
                p.requires_grad_(False)
            x, info = self.sampler.sample(x0)
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)
            if module is not None and was_training:
                module.train()
        x = x.detach()
        self.buffer.push(x, idx)
        return x, info

    def loss(self, x_pos: torch.Tensor) -> tuple[torch.Tensor, CDStats]:
        """Contrastive-divergence loss of a data batch with fresh Langevin negatives."""
        n = self.n_neg or x_pos.shape[0]
        x_neg, info = self.negatives(n)
        loss, st = contrastive_divergence_loss(self.energy, x_pos, x_neg.to(x_pos.dtype), alpha=self.alpha)
        return loss, st._replace(sample_info=info)

    def state_dict(self) -> dict:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.buffer.load_state_dict(state["buffer"])
