"""Functional ops. Each op family is one module: public function, validation,
``torch.library`` registration and the torch (reference) backend; the Triton kernels
sit beside it in ``<op>_triton.py`` and the C++/CUDA kernels under ``csrc/``."""
from . import random_ops
from .gibbs import gaussian_half_step, gibbs_half_step, gibbs_sweeps
from .langevin import langevin_step, langevin_step_, mala_accept_, sgld_step_
from .reparam import reparameterize_kl
from .tempered import ais_rbm, tempered_log_density, tempered_sweeps

__all__ = [
    "random_ops",
    "reparameterize_kl",
    "gibbs_half_step",
    "gaussian_half_step",
    "gibbs_sweeps",
    "langevin_step",
    "langevin_step_",
    "mala_accept_",
    "sgld_step_",
    "tempered_sweeps",
    "ais_rbm",
    "tempered_log_density",
]
