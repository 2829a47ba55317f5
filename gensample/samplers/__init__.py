"""Samplers built on gensample's fused kernels.

Langevin family (:mod:`gensample.samplers.langevin`): the state/info/step-kernel shape
of BlackJAX (a pure step on a state tuple, so users can drive steps themselves) and
:class:`LangevinSampler`, which runs whole chains with no per-step host synchronization.

Parallel tempering (:mod:`gensample.samplers.tempering`): :class:`ParallelTempering` for
RBMs, replicas as a batch dimension (one tempered-sweeps call per round for all of them),
vectorized even/odd swap moves on device, geometric/linear/adaptive ladders, swap-rate and
round-trip diagnostics; the pure round kernel :func:`pt_round` on a :class:`PTState`.
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
from .tempering import (
    ParallelTempering,
    PTInfo,
    PTParams,
    PTRoundInfo,
    PTState,
    geometric_ladder,
    linear_ladder,
    pt_round,
    round_trip_update,
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
    "ParallelTempering",
    "PTInfo",
    "PTParams",
    "PTRoundInfo",
    "PTState",
    "geometric_ladder",
    "linear_ladder",
    "pt_round",
    "round_trip_update",
]
