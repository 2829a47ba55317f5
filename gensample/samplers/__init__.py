"""Samplers built on gensample's fused kernels.

Langevin family (:mod:`gensample.samplers.langevin`): the state/info/step-kernel shape
of BlackJAX (a pure step on a state tuple, so users can drive steps themselves) and
:class:`LangevinSampler`, which runs whole chains with no per-step host synchronization.
"""
from .langevin import (
    LangevinInfo,
    LangevinNonFiniteError,
    LangevinParams,
    LangevinSampler,
    LangevinState,
    SampleInfo,
    energy_and_grad,
    init_state,
    make_params,
    mala_step,
    ula_step,
)

__all__ = [
    "LangevinInfo",
    "LangevinNonFiniteError",
    "LangevinParams",
    "LangevinSampler",
    "LangevinState",
    "SampleInfo",
    "energy_and_grad",
    "init_state",
    "make_params",
    "mala_step",
    "ula_step",
]
