"""``GaussianLatent``: a drop-in diagonal-Gaussian latent layer for VAEs."""
from __future__ import annotations

import torch
from torch import nn

from ..ops.reparam import reparameterize_kl


class GaussianLatent(nn.Module):
    r"""Maps encoder features to :math:`q(z|x) = \mathcal N(\mu, e^{\ell})`, samples ``z`` and returns the KL.

    With ``in_features`` set, one ``nn.Linear(in_features, 2 * latent_dim)`` produces
    ``(mu, logvar)`` (read in place as the two halves of its output); call it as
    ``z, kl = layer(h)``. With ``in_features=None`` it takes them directly:
    ``z, kl = layer(mu=mu, logvar=logvar)``.

    Args:
        in_features: width of the encoder features, or ``None``.
        latent_dim: dimension of ``z``.
        learn_prior: if true, the prior :math:`\mathcal N(m, e^{p})` has learnable
            ``prior_mu`` and ``prior_logvar`` parameters of shape ``(latent_dim,)``
            (initialised to the standard normal); otherwise the prior is N(0, I).
        n_samples, reduction, logvar_clamp, backend: passed to
            :func:`gensample.reparameterize_kl`.
        mean_in_eval: if true, in ``eval()`` mode ``z`` is ``mu`` (no noise).

    Returns ``(z, kl)`` as :func:`gensample.reparameterize_kl`; the last computed
    ``mu`` and ``logvar`` are kept on ``self.last_mu`` / ``self.last_logvar`` (detached).
    """

    def __init__(self, in_features: int | None, latent_dim: int, *, learn_prior: bool = False,
                 n_samples: int = 1, reduction: str = "none", logvar_clamp=None,
                 mean_in_eval: bool = False, backend: str | None = None):
        super().__init__()
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
        self.latent_dim = latent_dim
        self.proj = nn.Linear(in_features, 2 * latent_dim) if in_features is not None else None
        if learn_prior:
            self.prior_mu = nn.Parameter(torch.zeros(latent_dim))
            self.prior_logvar = nn.Parameter(torch.zeros(latent_dim))
        else:
            self.register_parameter("prior_mu", None)
            self.register_parameter("prior_logvar", None)
        self.n_samples = n_samples
        self.reduction = reduction
        self.logvar_clamp = logvar_clamp
        self.mean_in_eval = mean_in_eval
        self.backend = backend
        self.last_mu = None
        self.last_logvar = None

    def forward(self, h: torch.Tensor | None = None, *, mu: torch.Tensor | None = None,
                logvar: torch.Tensor | None = None, generator: torch.Generator | None = None):
        if self.proj is not None:
            if h is None or mu is not None or logvar is not None:
                raise ValueError("this GaussianLatent has a projection: call it as layer(h), not with mu/logvar")
            mu, logvar = self.proj(h).chunk(2, dim=-1)
        elif mu is None or logvar is None or h is not None:
            raise ValueError("GaussianLatent(in_features=None) takes mu= and logvar= keyword arguments")
        self.last_mu, self.last_logvar = mu.detach(), logvar.detach()
        z, kl = reparameterize_kl(mu, logvar, prior_mu=self.prior_mu, prior_logvar=self.prior_logvar,
                                  n_samples=self.n_samples, reduction=self.reduction,
                                  logvar_clamp=self.logvar_clamp, generator=generator, backend=self.backend)
        if self.mean_in_eval and not self.training:
            z = mu if self.n_samples == 1 else mu.expand(z.shape)
        return z, kl

    def extra_repr(self) -> str:
        inf = self.proj.in_features if self.proj is not None else None
        return (f"in_features={inf}, latent_dim={self.latent_dim}, learn_prior={self.prior_mu is not None}, "
                f"n_samples={self.n_samples}, reduction={self.reduction!r}")
