"""Thin ``nn.Module`` wrappers over gensample's functional ops."""
from .latent import GaussianLatent

__all__ = ["GaussianLatent"]
