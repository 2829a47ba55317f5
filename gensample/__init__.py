"""gensample: fused, hardware-accelerated samplers for generative models.

Four backends per op (``triton``, ``cuda``, ``cpu``, ``torch``) drawing from one
counter-based Philox4x32-10 stream, so every backend gives the same numbers for the
same seed. ``gensample.info()`` lists what is available here.
"""
__version__ = "0.1.0"

from . import _ext  # noqa: F401  (loads the optional extension first)
from . import random
from ._backend import BACKENDS, BackendUnavailableError
from ._ext import cpu_pool_stats, empty_cache
from ._info import format_info, info
from .ops import langevin_step, langevin_step_, reparameterize_kl
from . import nn, models, ops, train  # noqa: E402
from . import diagnostics  # noqa: E402
from . import evaluation  # noqa: E402
from .evaluation import (LogLikelihood, LogZEstimate, ais_log_partition, bracket_log_partition,  # noqa: E402
                         evaluate_log_likelihood, reverse_ais_log_partition)
from .models import BernoulliRBM, GaussianBernoulliRBM  # noqa: E402
from . import targets  # noqa: E402
from .buffer import ReplayBuffer  # noqa: E402
from . import samplers, optim, ebm  # noqa: E402
from .samplers import LangevinSampler, ParallelTempering  # noqa: E402
from .ops import _triton_loader as _tl  # noqa: E402

_tl.preload()
del _tl

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "BernoulliRBM",
    "GaussianBernoulliRBM",
    "LangevinSampler",
    "LogLikelihood",
    "LogZEstimate",
    "ParallelTempering",
    "ReplayBuffer",
    "ais_log_partition",
    "bracket_log_partition",
    "cpu_pool_stats",
    "diagnostics",
    "ebm",
    "empty_cache",
    "evaluate_log_likelihood",
    "evaluation",
    "format_info",
    "info",
    "langevin_step",
    "langevin_step_",
    "models",
    "nn",
    "ops",
    "optim",
    "random",
    "reparameterize_kl",
    "reverse_ais_log_partition",
    "samplers",
    "targets",
    "train",
]
