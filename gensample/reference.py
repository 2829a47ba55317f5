"""Textbook PyTorch references, imported by the tests and the benchmarks alike.

These are what users write today; gensample's ops are checked against them (fed the
same noise) and timed against them.
"""
from __future__ import annotations

import torch


def reparameterize_kl_textbook(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None,
                               prior_mu: torch.Tensor | None = None, prior_logvar: torch.Tensor | None = None):
    """``z = mu + exp(logvar / 2) * eps`` and ``KL(N(mu, e^logvar) || prior)`` summed over the last dim.

    ``eps`` defaults to ``torch.randn_like(mu)``. With no prior this is the classic
    ``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))``.
    """
    std = torch.exp(0.5 * logvar)
    if eps is None:
        eps = torch.randn_like(std)
    z = mu + std * eps
    if prior_mu is None and prior_logvar is None:
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)
    else:
        pm = prior_mu if prior_mu is not None else torch.zeros_like(mu)
        plv = prior_logvar if prior_logvar is not None else torch.zeros_like(mu)
        kl = 0.5 * torch.sum(plv - logvar + (logvar.exp() + (mu - pm).pow(2)) / plv.exp() - 1, dim=-1)
    return z, kl


def reparameterize_kl_distributions(mu: torch.Tensor, logvar: torch.Tensor, validate_args: bool | None = None):
    """The ``torch.distributions`` way: ``Normal(mu, std).rsample()`` plus ``kl_divergence``."""
    from torch.distributions import Normal, kl_divergence

    q = Normal(mu, torch.exp(0.5 * logvar), validate_args=validate_args)
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu), validate_args=validate_args)
    return q.rsample(), kl_divergence(q, p).sum(-1)
