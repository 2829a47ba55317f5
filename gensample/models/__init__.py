"""Small reference models built on gensample's ops (used by the demo and tests)."""
from .vae import VAE

__all__ = ["VAE"]
