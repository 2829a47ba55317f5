"""A small MLP VAE with a Bernoulli decoder, on gensample's fused latent layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import GaussianLatent


class VAE(nn.Module):
    r"""MLP VAE: ``x -> hidden -> GaussianLatent -> hidden -> logits``.

    The decoder is Bernoulli (inputs in [0, 1]), so
    :math:`\mathrm{ELBO}(x) = \mathbb E_q[\log p(x|z)] - \mathrm{KL}(q(z|x) \| p(z))`, estimated
    with one reparameterized sample. ``reparam="textbook"`` swaps the fused latent for
    the eager textbook code (same architecture), for speed comparisons.
    """

    def __init__(self, n_inputs: int, latent_dim: int = 8, hidden: int = 128, *, backend: str | None = None,
                 reparam: str = "fused"):
        super().__init__()
        if reparam not in ("fused", "textbook"):
            raise ValueError(f"reparam must be 'fused' or 'textbook', got {reparam!r}")
        self.n_inputs, self.latent_dim, self.reparam = n_inputs, latent_dim, reparam
        self.encoder = nn.Sequential(nn.Linear(n_inputs, hidden), nn.SiLU())
        self.latent = GaussianLatent(hidden, latent_dim, backend=backend)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.SiLU(), nn.Linear(hidden, n_inputs))

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None):
        h = self.encoder(x)
        if self.reparam == "fused":
            return self.latent(h, generator=generator)
        from ..reference import reparameterize_kl_textbook

        mu, logvar = self.latent.proj(h).chunk(2, dim=-1)
        return reparameterize_kl_textbook(mu, logvar)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Returns ``(logits, z, kl)``."""
        z, kl = self.encode(x, generator)
        return self.decoder(z), z, kl

    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-example single-sample ELBO estimate (nats)."""
        logits, _, kl = self(x, generator)
        rec = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return rec - kl

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Negative mean ELBO."""
        return -self.elbo(x, generator).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means ``sigmoid(logits)`` for ``n`` draws from the prior."""
        dev = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=dev)
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.latent.proj(self.encoder(x)).chunk(2, dim=-1)
        return torch.sigmoid(self.decoder(mu))
