"""Reference models built on gensample's ops: a VAE (used by the demo) and RBMs."""
from .rbm import BernoulliRBM, GaussianBernoulliRBM
from .vae import VAE

__all__ = ["BernoulliRBM", "GaussianBernoulliRBM", "VAE"]
