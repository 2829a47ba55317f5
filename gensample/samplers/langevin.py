r"""Langevin samplers: ULA and MALA as pure step kernels, and :class:`LangevinSampler`.

Convention: energies :math:`E(x)`, target :math:`p(x) \propto e^{-E(x)}`. Chains are
dim 0: ``x`` of shape ``(C, *event)`` holds ``C`` chains; per-chain quantities have
shape ``(C,)``.

Unadjusted Langevin (ULA), one step with per-chain step :math:`h_c` and noise
:math:`s_c` (default :math:`\sqrt{2 h_c}`)::

    x' = clamp(x - h * clip(grad E(x)) + s * eps)        (gensample.langevin_step)

MALA (Metropolis-adjusted): propose :math:`x' = x - h \nabla E(x) + \sqrt{2h}\,\varepsilon`
and accept with probability :math:`\min(1, \alpha)`,

.. math::

    \log\alpha = E(x) - E(x') + \log q(x \mid x') - \log q(x' \mid x), \quad
    \log q(b \mid a) = -\frac{\lVert b - a + h \nabla E(a)\rVert^2}{4h},

so that the chain is exactly invariant for :math:`p` (ULA is biased by :math:`O(h)`;
see :meth:`gensample.targets.Gaussian.ula_moments`).

The BlackJAX shape: a :class:`LangevinState` ``(x, energy, grad)`` caches the energy and
gradient at ``x``; :func:`ula_step` and :func:`mala_step` are pure functions
``(state, energy_fn, key_seed, t, params) -> (state, info)`` that do not modify their
inputs; :func:`init_state` evaluates the first state. :class:`LangevinSampler` runs a
whole chain in place with no per-step host synchronization.

Random-stream mapping (one seed pair per run, drawn from the generator):

* ULA step ``t`` draws its noise from ``substream(seed, t)``;
* MALA step ``t`` draws its proposal noise from ``substream(seed, 2t)`` and its accept
  uniforms from ``substream(seed, 2t + 1)``.

So ``LangevinSampler(...).sample(x0)`` equals iterating the step kernels with the same
seed pair, and every backend gives the same chain.
"""
from __future__ import annotations

import math
import struct
from typing import Callable, NamedTuple

import torch

from .. import _backend
from .. import random as _random
from .._checks import check_float_tensor, check_int, check_real
from ..ops import langevin as _lops

__all__ = [
    "LangevinState",
    "LangevinInfo",
    "LangevinParams",
    "SampleInfo",
    "LangevinNonFiniteError",
    "LangevinSampler",
    "energy_and_grad",
    "init_state",
    "make_params",
    "ula_step",
    "mala_step",
]

_F32 = torch.float32
EnergyFn = Callable[[torch.Tensor], torch.Tensor]


class LangevinState(NamedTuple):
    """A batch of chains with their cached energy and gradient.

    ``x``: float32 contiguous ``(C, *event)``; ``energy``: float32 ``(C,)`` = :math:`E(x)`;
    ``grad``: float32 ``(C, *event)`` = :math:`\\nabla E(x)`.
    """

    x: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor


class LangevinInfo(NamedTuple):
    """What one step reports, per chain (all on the chains' device, no host sync).

    ``accepted``: bool ``(C,)`` (all True for ULA); ``log_alpha``: float32 ``(C,)`` MALA
    log acceptance ratio (zeros for ULA); ``grad_norm``: float32 ``(C,)`` L2 norm of the
    raw gradient at the step's starting state; ``energy_prop``: MALA proposal energies
    ``(C,)`` (for ULA, the energies of the new state).
    """

    accepted: torch.Tensor
    log_alpha: torch.Tensor
    grad_norm: torch.Tensor
    energy_prop: torch.Tensor


class LangevinParams(NamedTuple):
    """Step parameters as the kernels take them (build with :func:`make_params`).

    ``step_size``, ``noise_scale``: float32 ``(C,)``; ``grad_clip``/``clip_mode``: threshold
    and mode (0 none, 1 value, 2 norm); ``clamp_lo``/``clamp_hi``: state bounds (``-inf``/``inf``
    for none); ``backend``: the resolved gensample backend.
    """

    step_size: torch.Tensor
    noise_scale: torch.Tensor
    grad_clip: float = 0.0
    clip_mode: int = 0
    clamp_lo: float = -math.inf
    clamp_hi: float = math.inf
    backend: str = "torch"


class SampleInfo(NamedTuple):
    """What :meth:`LangevinSampler.sample` returns beside the final states (device tensors).

    * ``acceptance_rate``: float32 ``(C,)``, fraction of accepted steps per chain (1 for ULA);
    * ``energy_trace``: float32 ``(T,)``, mean energy over chains at the start of each step;
    * ``grad_norm_trace``: float32 ``(T,)``, mean over chains of the raw gradient's L2 norm at
      the start of each step;
    * ``step_size``: float32 ``(C,)``, the per-chain step sizes at the end (adapted ones
      with ``adapt_step_size=True``);
    * ``nonfinite``: bool ``(C,)``, chains that met a NaN/Inf energy or gradient (or a NaN MALA
      ratio); all False unless ``check_finite=False`` let a run with NaNs finish;
    * ``state``: the final :class:`LangevinState` for MALA (its energy and gradient are
      cached anyway); ``None`` for ULA, whose run evaluates no gradient at the final state.
    """

    acceptance_rate: torch.Tensor
    energy_trace: torch.Tensor
    grad_norm_trace: torch.Tensor
    step_size: torch.Tensor
    nonfinite: torch.Tensor
    state: LangevinState | None


class LangevinNonFiniteError(FloatingPointError):
    """Chains went non-finite. Attributes: ``n_chains``, ``n_total``, ``chains`` (bool
    ``(C,)``), ``window`` (steps ``[a, b)`` checked), ``first_step`` (first step with a
    non-finite value, or None)."""

    def __init__(self, msg, n_chains, n_total, chains, window, first_step):
        super().__init__(msg)
        self.n_chains, self.n_total, self.chains = n_chains, n_total, chains
        self.window, self.first_step = window, first_step


# ----------------------------------------------------------------------------
# energy evaluation
# ----------------------------------------------------------------------------
def energy_and_grad(energy_fn: EnergyFn, x: torch.Tensor, *, input_dtype: torch.dtype | None = None):
    """``(E(x), grad E(x))`` with ``grad = torch.autograd.grad(E(x).sum(), x)``.

    ``energy_fn`` maps ``(C, *event)`` to per-sample energies ``(C,)`` (``(C, 1)`` is
    accepted and flattened). Returns float32 energies ``(C,)`` (detached) and the
    gradient with ``x``'s dtype and shape. ``input_dtype``: dtype the energy sees
    (``x`` is cast to it; the gradient comes back in ``x``'s dtype).
    """
    C = x.shape[0]
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        xin = xg if input_dtype is None or input_dtype == x.dtype else xg.to(input_dtype)
        e = energy_fn(xin)
        if not isinstance(e, torch.Tensor):
            raise TypeError(f"energy must return a tensor of per-sample energies of shape (C,) = ({C},), "
                            f"got {type(e).__name__}")
        if tuple(e.shape) != (C,):
            if tuple(e.shape) == (C, 1):
                e = e.view(C)
            else:
                raise ValueError(f"energy must return per-sample energies of shape (C,) = ({C},) for a batch of "
                                 f"{C} chains (chains are dim 0 of x), got shape {tuple(e.shape)}; reduce the "
                                 "event dimensions inside the energy, but not the chain dimension")
        if not e.is_floating_point():
            raise TypeError(f"energy must return a floating tensor, got {e.dtype}")
        if not e.requires_grad:
            raise ValueError("energy(x) does not depend differentiably on x (its output has no grad_fn); "
                             "the Langevin drift needs grad E(x)")
        (g,) = torch.autograd.grad(e.sum(), xg)
    return e.detach().to(_F32), g


def _as_chain(x: torch.Tensor, copy: bool) -> torch.Tensor:
    """float32 contiguous chain buffer with x's values (a fresh copy when ``copy``)."""
    if copy:
        return x.detach().to(dtype=_F32, memory_format=torch.contiguous_format, copy=True)
    return x.detach().to(_F32).contiguous()


def init_state(x: torch.Tensor, energy_fn: EnergyFn) -> LangevinState:
    """The :class:`LangevinState` at ``x`` (one energy + gradient evaluation)."""
    check_float_tensor("x", x, like="x")
    if x.dim() < 1:
        raise ValueError("x must have at least one dimension (chains are dim 0)")
    xc = _as_chain(x, copy=False)
    e, g = energy_and_grad(energy_fn, xc)
    return LangevinState(xc, e, g.to(_F32).contiguous())


# ----------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------


def _round_f32(v: float) -> float:
    return struct.unpack("f", struct.pack("f", v))[0]


def _per_chain(name: str, v, C: int, device: torch.device, *, positive: bool):
    """``(tensor float32 (C,), number or None)`` from a number or a ``(C,)`` tensor."""
    if isinstance(v, torch.Tensor):
        if not v.is_floating_point():
            raise TypeError(f"{name} must be a number or a floating tensor of shape (C,) = ({C},), got {v.dtype}")
        if v.device != device:
            raise ValueError(f"{name} is on {v.device} but the chains are on {device}; put them on one device")
        if v.dim() == 0:
            v = v.expand(C)
        if tuple(v.shape) != (C,):
            raise ValueError(f"{name} must be a number or a tensor of shape (C,) = ({C},) (one value per chain, "
                             f"chains are dim 0 of x), got shape {tuple(v.shape)}")
        t = v.detach().to(_F32).contiguous()
        if device.type == "cpu" and t.numel() and not bool((torch.isfinite(t) & (t >= 0)).all()):
            raise ValueError(f"{name} must be finite and >= 0 for every chain")
        return t, None
    f = _round_f32(check_real(name, v, positive=positive, nonneg=not positive))
    return torch.full((C,), f, dtype=_F32, device=device), f


# Same argument checks (and messages) as the pure ops.
_resolve_clip = _lops._resolve_clip
_resolve_clamp = _lops._resolve_clamp


def make_params(x: torch.Tensor, step_size, *, noise_scale=None, grad_clip=None, clip_mode: str = "value",
                clamp=None, backend: str | None = None, metropolis: bool = False) -> LangevinParams:
    """Validate and expand step parameters for the chains ``x`` (``C = x.shape[0]``).

    ``step_size``/``noise_scale``: numbers or float tensors of shape ``(C,)``;
    ``noise_scale=None`` means :math:`\\sqrt{2h}` (correctly rounded to float32, as
    :func:`gensample.langevin_step` computes it). With ``metropolis=True`` (MALA) the
    noise must be the default and clipping/clamping are refused: they would break the
    proposal density the accept ratio assumes.
    """
    check_float_tensor("x", x, like="x")
    C = x.shape[0]
    if metropolis:
        bad = [n for n, v in (("noise_scale", noise_scale), ("grad_clip", grad_clip), ("clamp", clamp))
               if v is not None]
        if bad:
            raise ValueError(f"metropolis=True (MALA) needs the exact Langevin proposal: {', '.join(bad)} must be "
                             "None (the accept ratio assumes noise sqrt(2 * step_size), no clip, no clamp)")
    h, h_num = _per_chain("step_size", step_size, C, x.device, positive=True)
    if noise_scale is not None:
        s, _ = _per_chain("noise_scale", noise_scale, C, x.device, positive=False)
    elif h_num is not None:
        s = torch.full((C,), _round_f32(math.sqrt(2.0 * h_num)), dtype=_F32, device=x.device)
    else:
        s = (h.double() * 2.0).sqrt().float()
    mode, clip = _resolve_clip(grad_clip, clip_mode)
    lo, hi = _resolve_clamp(clamp)
    return LangevinParams(h, s, clip, mode, lo, hi, _backend.resolve(backend, x.device))


def _seed_table(seed: torch.Tensor, n: int) -> torch.Tensor:
    """Rows ``substream(seed, t)`` for ``t = 0 .. n-1``, computed on seed's device."""
    t = torch.arange(n, dtype=torch.int64, device=seed.device) << 32
    return seed.unsqueeze(0) + torch.stack([torch.zeros_like(t), t], dim=1)


def _step_seed(key_seed: torch.Tensor, t) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        raise TypeError("t must be a Python int (the step number)")
    return _random.substream(key_seed, t)


# ----------------------------------------------------------------------------
# pure step kernels
# ----------------------------------------------------------------------------
def _check_state(state: LangevinState) -> tuple[int, int]:
    if not isinstance(state, tuple) or len(state) != 3:
        raise TypeError("state must be a LangevinState(x, energy, grad); build it with init_state(x, energy_fn)")
    x, e, g = state
    if x.dtype != _F32 or g.dtype != _F32 or not x.is_contiguous() or not g.is_contiguous():
        raise TypeError("state.x and state.grad must be float32 contiguous (init_state builds such a state)")
    if g.shape != x.shape or tuple(e.shape) != (x.shape[0],):
        raise ValueError(f"state shapes do not match: x {tuple(x.shape)}, energy {tuple(e.shape)}, "
                         f"grad {tuple(g.shape)}")
    return x.shape[0], math.prod(x.shape[1:])


def ula_step(state: LangevinState, energy_fn: EnergyFn, key_seed: torch.Tensor, t: int,
             params: LangevinParams) -> tuple[LangevinState, LangevinInfo]:
    r"""One ULA step from ``state`` (not modified): ``x' = langevin_step(x, grad E(x))``
    with the noise of ``substream(key_seed, t)``, then ``E(x')`` and its gradient.

    Returns ``(new_state, info)``; ``info.grad_norm`` is the norm at the old state.
    """
    C, M = _check_state(state)
    x, _, g = state
    op = _lops._op("langevin_step", params.backend)
    y, gn = op(x.view(C, M), g.view(C, M), params.step_size, params.noise_scale, _step_seed(key_seed, t),
               params.grad_clip, params.clip_mode, params.clamp_lo, params.clamp_hi, True)
    y = y.view(x.shape)
    e, gy = energy_and_grad(energy_fn, y)
    info = LangevinInfo(torch.ones(C, dtype=torch.bool, device=x.device), torch.zeros(C, dtype=_F32, device=x.device),
                        gn, e)
    return LangevinState(y, e, gy.to(_F32).contiguous()), info


def mala_step(state: LangevinState, energy_fn: EnergyFn, key_seed: torch.Tensor, t: int,
              params: LangevinParams) -> tuple[LangevinState, LangevinInfo]:
    r"""One MALA step from ``state`` (not modified).

    Proposal ``x' = x - h grad E(x) + sqrt(2h) eps`` (noise: ``substream(key_seed, 2t)``),
    then accept per chain with :math:`u_c < \min(1, \alpha_c)` (``u``: ``substream(key_seed,
    2t + 1)``). Accepted chains take the proposal's state, energy and gradient.
    ``params`` must carry no clipping/clamping and the default noise (see :func:`make_params`).
    """
    C, M = _check_state(state)
    if params.clip_mode != 0 or params.clamp_lo != -math.inf or params.clamp_hi != math.inf:
        raise ValueError("mala_step needs params without grad_clip or clamp (make_params(..., metropolis=True))")
    x, e, g = state
    t2 = check_int("t", t, 0)
    xp, gn = _lops._op("langevin_step", params.backend)(
        x.view(C, M), g.view(C, M), params.step_size, params.noise_scale, _step_seed(key_seed, 2 * t2),
        0.0, 0, -math.inf, math.inf, True)
    ep, gp = energy_and_grad(energy_fn, xp.view(x.shape))
    xn, gnew, en = x.clone(), g.clone(), e.to(_F32).clone()
    acc, la = _lops._op("mala_accept_", params.backend)(
        xn.view(C, M), gnew.view(C, M), en, xp, gp.to(_F32).contiguous().view(C, M), ep,
        params.step_size, params.noise_scale, _step_seed(key_seed, 2 * t2 + 1))
    return LangevinState(xn, en, gnew), LangevinInfo(acc, la, gn, ep)


# ----------------------------------------------------------------------------
# sampler
# ----------------------------------------------------------------------------
class _Run:
    """Device tensors of one run (static across CUDA-graph replays)."""

    def __init__(self, x, h, s, seeds, T, metropolis, adapt):
        C = x.shape[0]
        dev = x.device
        self.x, self.h, self.s, self.seeds = x, h, s, seeds
        self.log_h = torch.log(h) if adapt else None
        self.energy_trace = torch.empty(T, dtype=_F32, device=dev)
        self.grad_norm_trace = torch.empty(T, dtype=_F32, device=dev)
        self.bad_steps = torch.zeros(T, dtype=torch.bool, device=dev)
        self.bad = torch.zeros(C, dtype=torch.bool, device=dev)
        self.acc_count = torch.zeros(C, dtype=torch.int32, device=dev) if metropolis else None
        self.e = None
        self.g = None
        self.checked = 0  # steps [0, checked) passed a mid-run check


class LangevinSampler:
    r"""Run ``C`` Langevin chains for ``n_steps`` steps with gensample's fused kernels.

    Args:
        energy: ``nn.Module`` or callable mapping a batch ``(C, *event)`` to per-sample
            energies ``(C,)`` (``(C, 1)`` is accepted); :math:`p(x) \propto e^{-E(x)}`.
            Gradients are ``torch.autograd.grad(energy(x).sum(), x)``.
        step_size: :math:`h > 0`, a number or a float tensor ``(C,)`` (per chain).
        n_steps: number of steps per :meth:`sample` call.
        noise_scale: :math:`s`; default :math:`\sqrt{2h}` (true Langevin). Image EBMs
            decouple them (e.g. ``step_size=10, noise_scale=0.005``).
        grad_clip, clip_mode: clip the gradient elementwise (``"value"``) or per chain
            (``"norm"``) at ``grad_clip``; ``None`` does not clip.
        clamp: ``(lo, hi)`` bounds of the state, e.g. ``(-1, 1)`` for images.
        metropolis: MALA (exact for :math:`p`) instead of ULA. Incompatible with
            ``noise_scale``, ``grad_clip`` and ``clamp``.
        adapt_step_size: MALA only: adapt each chain's step toward ``target_accept`` by
            Robbins-Monro on :math:`\log h_c`: :math:`\log h_c \mathrel{+}= \gamma_t
            (\min(1, \alpha_c) - \text{target})`, :math:`\gamma_t = \text{adapt\_rate}
            \cdot (t + 1)^{-0.6}`. Adaptation breaks exact invariance: use it for warm-up,
            then sample with ``info.step_size`` fixed.
        target_accept: acceptance target (0.574, optimal for MALA in high dimension).
        adapt_rate: :math:`\gamma` scale of the adaptation (default 1.0).
        check_finite: raise :class:`LangevinNonFiniteError` when chains meet a NaN/Inf energy
            or gradient (naming how many chains and which step window); ``False`` lets the
            run finish and reports the chains in ``info.nonfinite``.
        check_every: check every ``N`` steps (one host sync each); ``None`` (default):
            once at the end of the run.
        cuda_graph: on CUDA, capture the ``n_steps`` steps into one CUDA graph on the
            first call and replay it on later calls with the same shape, dtype, device and
            step count (ignored on other devices). The energy must be capturable: static
            shapes, no host syncs or CPU-side randomness (dropout draws its mask from
            the capture-time generator state). ``check_every`` must be ``None``.
        generator: source of the run's seed pair (default: the global generator of the
            chains' device, so ``torch.manual_seed`` reproduces a run).
        backend: gensample backend of the step kernels (``None``: automatic).

    ``sample(x0)`` never synchronizes with the host per step: step sizes, traces,
    acceptance counts and the non-finite flags stay on the device.
    """

    def __init__(self, energy: EnergyFn, *, step_size, n_steps: int, noise_scale=None, grad_clip=None,
                 clip_mode: str = "value", clamp=None, metropolis: bool = False, adapt_step_size: bool = False,
                 target_accept: float = 0.574, adapt_rate: float = 1.0, check_finite: bool = True,
                 check_every: int | None = None, cuda_graph: bool = False,
                 generator: torch.Generator | None = None, backend: str | None = None):
        if not callable(energy):
            raise TypeError(f"energy must be an nn.Module or a callable, got {type(energy).__name__}")
        self.energy = energy
        self.n_steps = check_int("n_steps", n_steps, 1)
        for nm, v in (("step_size", step_size), ("noise_scale", noise_scale)):
            if v is not None and not isinstance(v, torch.Tensor):
                check_real(nm, v, positive=(nm == "step_size"), nonneg=(nm == "noise_scale"))
        self.step_size, self.noise_scale = step_size, noise_scale
        self.grad_clip, self.clip_mode = grad_clip, clip_mode
        _resolve_clip(grad_clip, clip_mode)
        self.clamp = clamp
        _resolve_clamp(clamp)
        self.metropolis = bool(metropolis)
        if self.metropolis:
            bad = [n for n, v in (("noise_scale", noise_scale), ("grad_clip", grad_clip), ("clamp", clamp))
                   if v is not None]
            if bad:
                raise ValueError(f"metropolis=True (MALA) needs the exact Langevin proposal: {', '.join(bad)} "
                                 "must be None")
        self.adapt_step_size = bool(adapt_step_size)
        if self.adapt_step_size and not self.metropolis:
            raise ValueError("adapt_step_size=True needs metropolis=True (ULA accepts every step, so there is "
                             "no acceptance rate to adapt to)")
        self.target_accept = check_real("target_accept", target_accept, positive=True)
        if not self.target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
        self.adapt_rate = check_real("adapt_rate", adapt_rate, positive=True)
        self.check_finite = bool(check_finite)
        self.check_every = None if check_every is None else check_int("check_every", check_every, 1)
        self.cuda_graph = bool(cuda_graph)
        if self.cuda_graph and self.check_every is not None:
            raise ValueError("cuda_graph=True needs check_every=None (a mid-run check synchronizes)")
        self.generator = generator
        self.backend = backend
        self._graph = None

    def __repr__(self) -> str:
        kind = "MALA" if self.metropolis else "ULA"
        return (f"LangevinSampler({kind}, step_size={self.step_size}, n_steps={self.n_steps}, "
                f"noise_scale={self.noise_scale}, grad_clip={self.grad_clip}, clamp={self.clamp})")

    # ------------------------------------------------------------------ run
    def sample(self, x0: torch.Tensor, *, n_steps: int | None = None) -> tuple[torch.Tensor, SampleInfo]:
        """Run the chains from ``x0`` (``(C, *event)``, not modified). Returns ``(x, info)``:
        the final states in ``x0``'s dtype and a :class:`SampleInfo`."""
        check_float_tensor("x0", x0, like="x0")
        if x0.dim() < 1 or x0.shape[0] < 1:
            raise ValueError(f"x0 must have shape (C, *event) with C >= 1 chains, got {tuple(x0.shape)}")
        T = self.n_steps if n_steps is None else check_int("n_steps", n_steps, 1)
        params = make_params(x0, self.step_size, noise_scale=self.noise_scale, grad_clip=self.grad_clip,
                             clip_mode=self.clip_mode, clamp=self.clamp, backend=self.backend,
                             metropolis=self.metropolis)
        seed = _random.draw_seed(self.generator, x0.device)
        seeds = _seed_table(seed, (2 if self.metropolis else 1) * T)
        in_dtype = None if x0.dtype == _F32 else x0.dtype
        if self.cuda_graph and x0.device.type == "cuda":
            run = self._graphed(x0, params, seeds, T, in_dtype)
        else:
            run = _Run(_as_chain(x0, copy=True), params.step_size.clone(), params.noise_scale.clone(), seeds, T,
                       self.metropolis, self.adapt_step_size)
            self._loop(run, params, T, in_dtype, check=self.check_finite)
        C = x0.shape[0]
        if self.check_finite:
            self._check(run, run.checked, T)
        if self.metropolis:
            acc = run.acc_count.to(_F32) / T
            state = LangevinState(run.x, run.e, run.g)
        else:
            acc = torch.ones(C, dtype=_F32, device=x0.device)
            state = None
        x = run.x if in_dtype is None else run.x.to(in_dtype)
        info = SampleInfo(acc, run.energy_trace, run.grad_norm_trace, run.h, run.bad, state)
        if self.cuda_graph and x0.device.type == "cuda":  # static buffers: hand out copies
            x = x.clone()
            info = SampleInfo(*(v.clone() if isinstance(v, torch.Tensor) else v for v in info[:5]),
                              LangevinState(*(v.clone() for v in state)) if state is not None else None)
        return x, info

    __call__ = sample

    def _loop(self, run: _Run, params: LangevinParams, T: int, in_dtype, check: bool) -> None:
        x = run.x
        C = x.shape[0]
        M = math.prod(x.shape[1:])
        x2 = x.view(C, M)
        b = params.backend
        fn = self.energy
        window = self.check_every or 64
        t0 = 0
        es, gns, fs = [], [], []
        run.bad.zero_()
        run.checked = 0
        if self.metropolis:
            run.acc_count.zero_()
            prop = _lops._op("langevin_step", b)
            accept = _lops._op("mala_accept_", b)
            e, g = energy_and_grad(fn, x, input_dtype=in_dtype)
            g = g.to(_F32).contiguous()
            run.e, run.g = e, g
            g2 = g.view(C, M)
            accs = []
            for t in range(T):
                xp, gn = prop(x2, g2, run.h, run.s, run.seeds[2 * t], 0.0, 0, -math.inf, math.inf, True)
                ep, gp = energy_and_grad(fn, xp.view(x.shape), input_dtype=in_dtype)
                es.append(e.clone())
                acc, la = accept(x2, g2, e, xp, gp.to(_F32).contiguous().view(C, M), ep, run.h, run.s,
                                 run.seeds[2 * t + 1])
                gns.append(gn)
                fs.append(la + gn)
                accs.append(acc)
                if self.adapt_step_size:
                    gamma = self.adapt_rate * (t + 1) ** -0.6
                    alpha = la.clamp(max=0.0).exp().nan_to_num_(nan=0.0)
                    run.log_h.add_(alpha.sub_(self.target_accept).mul_(gamma))
                    torch.exp(run.log_h, out=run.h)
                    torch.sqrt(run.h * 2.0, out=run.s)
                if t + 1 - t0 == window or t + 1 == T:
                    run.acc_count.add_(torch.stack(accs).sum(0, dtype=torch.int32))
                    accs = []
                    self._flush(run, t0, es, gns, torch.stack(fs))
                    es, gns, fs = [], [], []
                    if check and self.check_every is not None and t + 1 < T:
                        self._check(run, t0, t + 1)
                        run.checked = t + 1
                    t0 = t + 1
        else:
            step = _lops._op("langevin_step_", b)
            h, s = run.h, run.s
            clip, mode, lo, hi = params.grad_clip, params.clip_mode, params.clamp_lo, params.clamp_hi
            for t in range(T):
                e, g = energy_and_grad(fn, x, input_dtype=in_dtype)
                gn = step(x2, g.to(_F32).contiguous().view(C, M), h, s, run.seeds[t], clip, mode, lo, hi, True)
                es.append(e)
                gns.append(gn)
                if t + 1 - t0 == window or t + 1 == T:
                    ee = torch.stack(es)
                    self._flush(run, t0, es, gns, ee + torch.stack(gns), stacked_e=ee)
                    es, gns = [], []
                    if check and self.check_every is not None and t + 1 < T:
                        self._check(run, t0, t + 1)
                        run.checked = t + 1
                    t0 = t + 1

    @staticmethod
    def _flush(run: _Run, t0: int, es, gns, f: torch.Tensor, stacked_e=None) -> None:
        # f: (steps in the window, chains), any value that is non-finite iff the step went bad
        t1 = t0 + len(es)
        ee = torch.stack(es) if stacked_e is None else stacked_e
        run.energy_trace[t0:t1] = ee.mean(1)
        run.grad_norm_trace[t0:t1] = torch.stack(gns).mean(1)
        ok = torch.isfinite(f)
        run.bad_steps[t0:t1] = ~ok.all(1)
        run.bad.logical_or_(~ok.all(0))

    def _check(self, run: _Run, a: int, b: int) -> None:
        n = int(run.bad.sum())  # the one host sync per check
        if n == 0:
            return
        C = run.bad.shape[0]
        idx = torch.nonzero(run.bad_steps[a:b]).flatten()
        first = a + int(idx[0]) if idx.numel() else None
        what = "NaN/Inf energy or gradient" + (" (or MALA acceptance ratio)" if self.metropolis else "")
        where = f"at step {first} (first non-finite step)" if first is not None else ""
        raise LangevinNonFiniteError(
            f"LangevinSampler: {n} of {C} chains went non-finite ({what}) within steps [{a}, {b}) {where}. "
            "Lower step_size, set grad_clip or clamp, or check the energy function; pass check_finite=False "
            "to finish the run and read info.nonfinite.",
            n, C, run.bad.clone(), (a, b), first)

    # ------------------------------------------------------------------ CUDA graphs
    def _graphed(self, x0, params, seeds, T, in_dtype) -> _Run:  # pragma: no cover - needs a GPU
        key = (tuple(x0.shape), x0.dtype, x0.device, T, params.backend)
        if self._graph is None or self._graph[0] != key:
            run = _Run(_as_chain(x0, copy=True), params.step_size.clone(), params.noise_scale.clone(),
                       seeds.clone(), T, self.metropolis, self.adapt_step_size)
            side = torch.cuda.Stream(device=x0.device)
            side.wait_stream(torch.cuda.current_stream(x0.device))
            with torch.cuda.stream(side):  # warm-up (autograd, allocator, lazy inits) off the capture
                self._loop(run, params, min(T, 2), in_dtype, check=False)
            torch.cuda.current_stream(x0.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._loop(run, params, T, in_dtype, check=False)
            self._graph = (key, graph, run)
        _, graph, run = self._graph
        run.x.copy_(x0.detach().to(_F32))
        run.seeds.copy_(seeds)
        run.h.copy_(params.step_size)
        run.s.copy_(params.noise_scale)
        if run.log_h is not None:
            run.log_h.copy_(torch.log(params.step_size))
        graph.replay()
        return run
