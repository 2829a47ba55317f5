r"""Parallel tempering (replica exchange) for RBMs, with replicas as a batch dimension.

**Target.** ``R`` inverse temperatures :math:`1 = \beta_0 \ge \beta_1 \ge \dots \ge
\beta_{R-1} \ge 0` of the tempered family of :mod:`gensample.ops.tempered` (Bernoulli
visible units with an optional base bias :math:`b_A`, or Gaussian visible units), and
``C`` independent PT *systems* ("chains"), each made of ``R`` walkers. The product
:math:`\prod_c \prod_k p_{\beta_k}` is invariant for every move below, so the walkers at
:math:`\beta_0 = 1` sample the model.

**Layout.** All ``B = R * C`` walkers live in one ``(B, n_visible)`` tensor; row
``r * C + c`` is walker ``r`` of system ``c``. Walkers keep their states and exchange
*temperatures*: ``state.walker[k, c]`` is the walker holding temperature ``k`` in system
``c`` and ``state.index[r * C + c]`` its inverse (the temperature index of each row).

**One round** (:func:`pt_round`, no host synchronization):

1. ``swap_every`` tempered Gibbs sweeps of all ``B`` rows in ONE
   :func:`gensample.ops.tempered_sweeps` call with the per-row vector
   ``beta = betas[index]``; it returns ``(v, a)`` with :math:`a = c + xW` untempered.
2. Even/odd replica exchange: in round ``t`` the pairs ``(k, k + 1)`` with
   ``k % 2 == parity`` (parity alternates) propose to swap temperatures. With
   :math:`x, y` the states at :math:`\beta_k, \beta_{k+1}` and
   :math:`\log p^*_\beta` = :func:`gensample.ops.tempered_log_density` (from ``(v, a)``:
   no GEMM),

   .. math::

       \log\alpha_k = \big[\log p^*_{\beta_{k+1}}(x) - \log p^*_{\beta_k}(x)\big]
                    + \big[\log p^*_{\beta_k}(y) - \log p^*_{\beta_{k+1}}(y)\big],

   accepted when :math:`u < e^{\log\alpha_k}` (float64) with ``u`` from gensample's
   stream. The move is its own inverse and satisfies detailed balance for the product
   target (Swendsen & Wang 1986; Geyer 1991); with equal betas :math:`\log\alpha = 0`
   exactly and every proposal is accepted. Alternating the parity (deterministic
   even/odd schedule, "DEO") gives non-reversible index walks with more round trips
   (Syed et al. 2022).
3. Diagnostics: per-pair accept counts, each walker's round trips (its temperature
   index walking ``0 -> R-1 -> 0``), and the per-temperature mean of the tempered free
   energy :math:`F_{\beta_k}(v) = -\log p^*_{\beta_k}(v)` (unnormalized).

Cost per round beyond the sweeps: two float64 passes of :math:`\operatorname{softplus}
(\beta a)` over ``(B, n_hidden)`` (each row at its own and at its partner's temperature),
and ``O(B)`` bookkeeping.

**Random stream.** One seed pair ``key`` (drawn from ``generator`` at :meth:`init`),
advanced on the device by ``(2 * swap_every + 2) * 2^32`` per round: round ``t``'s
sweeps use ``substream(key_t, 0 .. 2 * swap_every)`` (the layout of
``tempered_sweeps``) and its swap uniforms element ``k * C + c`` of
``substream(key_t, 2 * swap_every + 1)``. So every backend runs the same chain (the
states agree bit for bit when the sweeps' GEMMs are exact).

**Ladders.** ``"geometric"``: :math:`\beta_k = \beta_{\min}^{k/(R-1)}`; ``"linear"``:
:math:`\beta_k = 1 - (1 - \beta_{\min}) k/(R-1)` (allows :math:`\beta_{\min} = 0`, the
tractable base distribution); ``"adaptive"``: starts geometric and, during burn-in
(:meth:`ParallelTempering.adapt`), runs a Robbins-Monro recursion on the log gaps
:math:`s_k = \log(\log\beta_k - \log\beta_{k+1})`,

.. math::

    s_k \leftarrow s_k + \gamma_t\,(\bar\alpha_k - \alpha^\star), \qquad
    \gamma_t = \gamma\,(t + 1)^{-0.6},

for the pairs proposed in round ``t`` (:math:`\bar\alpha_k` = the mean over systems of
:math:`\min(1, \alpha_k)`): a pair accepting more than the target widens its gap. The
hottest temperature is free to move (it settles where ``R - 1`` gaps of acceptance
:math:`\alpha^\star` end, but not below ``BETA_FLOOR`` = 1e-4, where the replica is
essentially the base distribution); :math:`\beta_0 = 1` stays. The ladder is frozen afterwards,
so sampling is exact again (adaptation breaks invariance while it runs).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .. import _backend
from .. import random as _random
from .._checks import check_float_tensor, check_int, check_real
from ..ops import random_ops as _random_ops
from ..ops import tempered as _tempered

__all__ = [
    "PTState",
    "PTRoundInfo",
    "PTInfo",
    "PTParams",
    "ParallelTempering",
    "geometric_ladder",
    "linear_ladder",
    "pt_round",
    "round_trip_update",
]

_F32 = torch.float32
_F64 = torch.float64
_LADDERS = ("geometric", "linear", "adaptive")
BETA_FLOOR = 1e-4  # the adaptive ladder's smallest inverse temperature (about the base distribution)


class PTState(NamedTuple):
    """State of ``C`` PT systems of ``R`` walkers (``B = R * C`` rows, all on one device).

    * ``v``: float32 ``(B, n_visible)`` walker states (row ``r * C + c``: walker ``r`` of system ``c``);
    * ``a``: float32 ``(B, n_hidden)`` untempered hidden pre-activations :math:`c + xW` at ``v``;
    * ``index``: int64 ``(B,)`` temperature index of each row (0: :math:`\\beta = 1`);
    * ``walker``: int64 ``(R, C)``, the walker holding temperature ``k`` in system ``c``;
    * ``key``: int64 ``(2,)`` seed pair of the next round;
    * ``parity``: int64 ``()`` swap parity of the next round;
    * ``phase``: int8 ``(B,)`` round-trip phase (0: not yet at index 0; 1: left 0, heading up;
      2: reached ``R - 1`` since, heading down); ``round_trips``: int64 ``(B,)`` completed trips;
    * ``n_accepted``/``n_proposed``: int64 ``(R - 1,)`` swap counts per adjacent pair;
    * ``accept_prob_sum``: float64 ``(R - 1,)`` summed mean :math:`\\min(1, \\alpha_k)` of proposed rounds;
    * ``energy_sum``: float64 ``(R,)`` summed per-temperature mean free energy; ``n_rounds``: int64 ``()``.
    """

    v: torch.Tensor
    a: torch.Tensor
    index: torch.Tensor
    walker: torch.Tensor
    key: torch.Tensor
    parity: torch.Tensor
    phase: torch.Tensor
    round_trips: torch.Tensor
    n_accepted: torch.Tensor
    n_proposed: torch.Tensor
    accept_prob_sum: torch.Tensor
    energy_sum: torch.Tensor
    n_rounds: torch.Tensor


class PTRoundInfo(NamedTuple):
    r"""What one :func:`pt_round` reports (device tensors).

    ``log_alpha``: float64 ``(R - 1, C)`` swap log ratio of the pairs proposed this round
    (NaN in the rows of the other pairs); ``accepted``: bool ``(R - 1, C)``;
    ``proposed``: bool ``(R - 1,)``; ``energy``: float64 ``(R,)`` mean over systems of the
    tempered free energy :math:`F_{\beta_k}(v) = -\log p^*_{\beta_k}(v)` of the states at
    each temperature before the swap (no extra pass: the swap computes it).
    """

    log_alpha: torch.Tensor
    accepted: torch.Tensor
    proposed: torch.Tensor
    energy: torch.Tensor


class PTInfo(NamedTuple):
    """Summary of :meth:`ParallelTempering.step` over its rounds (device tensors).

    ``swap_acceptance``: float64 ``(R - 1,)`` accepted / proposed swaps per adjacent pair;
    ``accept_prob``: float64 ``(R - 1,)`` mean :math:`\\min(1, \\alpha_k)` over proposals (a
    lower-variance estimate of the same rate); ``round_trips``: int64 ``()`` trips completed;
    ``energy``: float64 ``(R,)`` mean tempered free energy per temperature; ``betas``: float32 ``(R,)``
    the ladder; ``samples``: ``(C, n_visible)`` the states at :math:`\\beta = 1` after the
    last round (model dtype).
    """

    swap_acceptance: torch.Tensor
    accept_prob: torch.Tensor
    round_trips: torch.Tensor
    energy: torch.Tensor
    betas: torch.Tensor
    samples: torch.Tensor


class PTParams(NamedTuple):
    """Model and ladder as :func:`pt_round` takes them (float32 contiguous tensors).

    ``visible_base``: ``(n_visible,)`` (zeros for the uniform base; unused with ``sigma``);
    ``sigma``: ``(n_visible,)`` or None (Bernoulli); ``betas``: ``(R,)`` non-increasing,
    ``betas[0] == 1``; ``k``: sweeps per round; ``backend``: of ``tempered_sweeps``;
    ``rng_backend``: of the swap uniforms; ``stride``/``swap_offset``: int64 ``(2,)`` key
    increments (per round, and of the swap substream).
    """

    weight: torch.Tensor
    visible_bias: torch.Tensor
    hidden_bias: torch.Tensor
    visible_base: torch.Tensor
    sigma: torch.Tensor | None
    betas: torch.Tensor
    k: int
    backend: str
    rng_backend: str
    stride: torch.Tensor
    swap_offset: torch.Tensor


# ----------------------------------------------------------------------------
# ladders
# ----------------------------------------------------------------------------
def geometric_ladder(n_replicas: int, beta_min: float, *, device=None) -> torch.Tensor:
    r""":math:`\beta_k = \beta_{\min}^{k/(R-1)}`, ``k = 0..R-1`` (float32, decreasing from 1)."""
    n = check_int("n_replicas", n_replicas, 2)
    bm = check_real("beta_min", beta_min)
    if not 0 < bm <= 1:
        raise ValueError(f"beta_min must be in (0, 1] for a geometric ladder (log beta must be finite), got "
                         f"{beta_min}; use ladder='linear' for beta_min = 0")
    k = torch.arange(n, dtype=_F64)
    return torch.exp(k / (n - 1) * math.log(bm)).to(_F32).to(device)


def linear_ladder(n_replicas: int, beta_min: float, *, device=None) -> torch.Tensor:
    r""":math:`\beta_k = 1 - (1 - \beta_{\min})\,k/(R-1)` (float32, decreasing from 1; ``beta_min`` may be 0)."""
    n = check_int("n_replicas", n_replicas, 2)
    bm = check_real("beta_min", beta_min)
    if not 0 <= bm <= 1:
        raise ValueError(f"beta_min must be in [0, 1], got {beta_min}")
    k = torch.arange(n, dtype=_F64)
    b = 1.0 - (1.0 - bm) * k / (n - 1)
    b[-1] = bm
    return b.to(_F32).to(device)


def _check_betas(betas) -> torch.Tensor:
    check_float_tensor("betas", betas, like="betas")
    if betas.dim() != 1 or betas.shape[0] < 2:
        raise ValueError(f"betas must be 1-D with at least 2 inverse temperatures (n_replicas >= 2), got shape "
                         f"{tuple(betas.shape)}")
    b = betas.detach().to(_F32)
    if not bool(torch.isfinite(b).all()) or not bool(((b >= 0) & (b <= 1)).all()):
        raise ValueError(f"betas must lie in [0, 1] (every entry), got {b.tolist()}")
    if float(b[0]) != 1.0:
        raise ValueError(f"betas[0] must be 1 (the model, whose samples PT returns), got {float(b[0])}; order the "
                         "ladder from cold (beta = 1) to hot")
    if bool((b[1:] > b[:-1]).any()):
        raise ValueError(f"betas must be sorted in non-increasing order (betas[0] = 1 cold ... betas[-1] hot), got "
                         f"{b.tolist()}")
    return b.contiguous()


# ----------------------------------------------------------------------------
# pure pieces
# ----------------------------------------------------------------------------
def round_trip_update(phase: torch.Tensor, trips: torch.Tensor, index: torch.Tensor, n_temps: int):
    """One update of the round-trip counters from each walker's new temperature ``index``.

    A round trip is a walk ``0 -> n_temps - 1 -> 0``: phase 1 (was at 0) turns into phase 2
    at the top, and phase 2 completes a trip back at 0 (then phase 1 again). Returns new
    ``(phase, trips)``; no host synchronization.
    """
    at0 = index == 0
    top = index == n_temps - 1
    trips = trips + (at0 & (phase == 2)).to(trips.dtype)
    one = torch.ones_like(phase)
    phase = torch.where(at0, one, torch.where(top & (phase == 1), one + 1, phase))
    return phase, trips


def pt_round(state: PTState, params: PTParams) -> tuple[PTState, PTRoundInfo]:
    """One PT round from ``state`` (not modified): sweeps of all rows in one
    ``tempered_sweeps`` call, then one even/odd exchange (see the module docstring)."""
    R, C = state.walker.shape
    B = R * C
    betas = params.betas
    beta_rows = betas[state.index]
    op = _tempered._op("tempered_sweeps", params.backend)
    v, _, a = op(state.v, params.weight, params.visible_bias, params.hidden_bias, params.visible_base, beta_rows,
                 params.sigma, state.key, params.k)
    # Each row takes part in at most one proposed pair (k, k + 1), k % 2 == parity: log p*_beta
    # at its own temperature and at its partner's (rows without a partner: their own again).
    idx, parity = state.index, state.parity
    partner = torch.where((idx - parity) % 2 == 0, idx + 1, idx - 1)
    partner = torch.where((partner >= 0) & (partner < R), partner, idx)
    kw = {"visible_base": None, "sigma": params.sigma} if params.sigma is not None else \
        {"visible_base": params.visible_base}
    v64, a64 = v.to(_F64), a.to(_F64)  # converted once for both evaluations
    lp = lambda beta: _tempered.tempered_log_density(v64, a64, beta, params.visible_bias, **kw)  # noqa: E731
    L_self = lp(beta_rows)
    D = lp(betas[partner]) - L_self
    walker = state.walker

    def by_temp(x):  # (B,) rows -> (R, C) by temperature index
        return torch.gather(x.view(R, C), 0, walker)

    D = by_temp(D)
    pairs = torch.arange(R - 1, device=v.device)
    proposed = (pairs % 2) == parity
    # pair k: [log p*_{k+1}(x) - log p*_k(x)] + [log p*_k(y) - log p*_{k+1}(y)]
    log_alpha = torch.where(proposed[:, None], D[:-1] + D[1:], torch.full_like(D[1:], math.nan))
    u = _random_ops.philox_uniform(state.key + params.swap_offset, (R - 1, C), backend=params.rng_backend)
    accepted = (u.to(_F64) < torch.exp(log_alpha)) & proposed[:, None]
    none = torch.zeros(1, C, dtype=torch.bool, device=v.device)
    acc_lo = torch.cat([accepted, none])   # temperature k swaps with k + 1
    acc_hi = torch.cat([none, accepted])   # temperature k swaps with k - 1
    new_walker = torch.where(acc_lo, walker.roll(-1, 0), torch.where(acc_hi, walker.roll(1, 0), walker))
    temps = torch.arange(R, device=v.device).view(R, 1).expand(R, C)
    new_index = torch.empty_like(walker).scatter_(0, new_walker, temps).view(B)
    phase, trips = round_trip_update(state.phase, state.round_trips, new_index, R)
    energy = -by_temp(L_self).mean(1)
    p_acc = torch.exp(torch.clamp(log_alpha, max=0.0)).mean(1)
    new = PTState(
        v=v, a=a, index=new_index, walker=new_walker, key=state.key + params.stride, parity=1 - state.parity,
        phase=phase, round_trips=trips,
        n_accepted=state.n_accepted + accepted.sum(1),
        n_proposed=state.n_proposed + proposed.to(torch.int64) * C,
        accept_prob_sum=state.accept_prob_sum + torch.where(proposed, p_acc, torch.zeros_like(p_acc)),
        energy_sum=state.energy_sum + energy,
        n_rounds=state.n_rounds + 1,
    )
    return new, PTRoundInfo(log_alpha, accepted, proposed, energy)


def _tempered_backend(backend: str | None, device: torch.device) -> str:
    """The backend for tempered_sweeps: ``backend`` if given, else the automatic choice when
    it has tempered kernels in this build, else the torch specification."""
    b = _backend.resolve(backend, device)
    if backend is not None or b == "torch":
        return b
    if b == "triton":
        ok = hasattr(torch.ops.gensample, "tempered_sweeps_triton")
    else:
        ok = _tempered._cpp_ops_defined() and torch._C._dispatch_has_kernel_for_dispatch_key(
            "gensample::tempered_sweeps", "CPU" if b == "cpu" else "CUDA")
    return b if ok else "torch"


# ----------------------------------------------------------------------------
# the sampler
# ----------------------------------------------------------------------------
class ParallelTempering:
    r"""Parallel tempering for a :class:`gensample.BernoulliRBM` or
    :class:`gensample.GaussianBernoulliRBM` (see the module docstring for the math).

    Args:
        rbm: the model (its parameters are read at every :meth:`step`, so PT can follow a
            model being trained).
        n_replicas: ``R >= 2`` temperatures (with ``ladder``); or give ``betas``.
        betas: ``(R,)`` explicit ladder, non-increasing, ``betas[0] == 1``, entries in ``[0, 1]``.
        n_chains: ``C`` independent PT systems (so ``R * C`` rows per sweep).
        ladder: ``"geometric"`` (default), ``"linear"`` or ``"adaptive"`` (geometric start,
            adapted by :meth:`adapt` and during ``sample(burn_in=...)``).
        beta_min: the hottest inverse temperature of the initial ladder (default 0.1).
        target_accept: swap acceptance the adaptive ladder aims at (default 0.3).
        adapt_rate: :math:`\gamma` of the Robbins-Monro gain (default 1.0).
        swap_every: tempered Gibbs sweeps per round (between exchanges).
        visible_base: ``(n_visible,)`` base visible bias :math:`b_A` of the Bernoulli family
            (default zeros: uniform base; :math:`\beta = 0` then samples :math:`p_A`).
        generator: source of the initial states and the seed pair (default: global).
        backend: gensample backend of ``tempered_sweeps`` (None: the fastest one with
            tempered kernels in this build).
    """

    def __init__(self, rbm, n_replicas: int | None = None, *, betas: torch.Tensor | None = None, n_chains: int = 1,
                 ladder: str = "geometric", beta_min: float = 0.1, target_accept: float = 0.3,
                 adapt_rate: float = 1.0, swap_every: int = 1, visible_base: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, backend: str | None = None):
        kind = getattr(rbm, "visible_kind", None)
        if kind not in ("binary", "gaussian") or not hasattr(rbm, "weight"):
            raise TypeError(f"rbm must be a gensample BernoulliRBM or GaussianBernoulliRBM, got {type(rbm).__name__}")
        self.rbm = rbm
        self.gaussian = kind == "gaussian"
        dev = rbm.weight.device
        if ladder not in _LADDERS:
            raise ValueError(f"ladder must be one of {_LADDERS}, got {ladder!r}")
        self.ladder = ladder
        if betas is not None:
            b = _check_betas(betas)
            if n_replicas is not None and check_int("n_replicas", n_replicas) != b.shape[0]:
                raise ValueError(f"n_replicas={n_replicas} but betas has {b.shape[0]} entries; give one of them")
            if b.device != dev:
                raise ValueError(f"betas is on {b.device} but the model is on {dev}; put them on one device")
        else:
            if n_replicas is None:
                raise ValueError("give n_replicas (with ladder and beta_min) or an explicit betas tensor")
            n = check_int("n_replicas", n_replicas)
            if n < 2:
                raise ValueError(f"n_replicas must be >= 2 (parallel tempering exchanges between temperatures), "
                                 f"got {n}")
            b = (linear_ladder if ladder == "linear" else geometric_ladder)(n, beta_min, device=dev)
        self.target_accept = check_real("target_accept", target_accept, positive=True)
        if not self.target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
        self.adapt_rate = check_real("adapt_rate", adapt_rate, positive=True)
        self.n_replicas = b.shape[0]
        self.n_chains = check_int("n_chains", n_chains, 1)
        self.swap_every = check_int("swap_every", swap_every, 1)
        if 2 * self.swap_every + 2 >= 2**30:
            raise ValueError(f"swap_every must be < 2^29, got {swap_every}")
        self._betas = b.clone()
        self._log_gaps = None  # adaptive-ladder state, created on the first adapt()
        self._adapt_t = torch.zeros((), dtype=torch.int64, device=dev)
        nv = rbm.n_visible
        if visible_base is not None:
            if self.gaussian:
                raise ValueError("visible_base applies to Bernoulli visible units only (GaussianBernoulliRBM's "
                                 "base is N(b, sigma^2))")
            check_float_tensor("visible_base", visible_base, like="visible_base")
            if tuple(visible_base.shape) != (nv,):
                raise ValueError(f"visible_base must have shape ({nv},) (the base model's visible bias), got "
                                 f"{tuple(visible_base.shape)}")
            if visible_base.device != dev:
                raise ValueError(f"visible_base is on {visible_base.device} but the model is on {dev}")
            if not bool(torch.isfinite(visible_base).all()):
                raise ValueError("visible_base must be finite")
            self.visible_base = visible_base.detach().to(_F32).contiguous()
        else:
            self.visible_base = torch.zeros(nv, dtype=_F32, device=dev)
        self.generator = generator
        self.backend = _tempered_backend(backend, dev)
        self.rng_backend = _backend.resolve(backend, dev)
        s = 2 * self.swap_every + 2
        self._stride = torch.tensor([0, s << 32], dtype=torch.int64, device=dev)
        self._swap_offset = torch.tensor([0, (s - 1) << 32], dtype=torch.int64, device=dev)
        self.state: PTState | None = None

    def __repr__(self) -> str:
        return (f"ParallelTempering({type(self.rbm).__name__}, n_replicas={self.n_replicas}, "
                f"n_chains={self.n_chains}, ladder={self.ladder!r}, swap_every={self.swap_every}, "
                f"backend={self.backend!r})")

    @property
    def betas(self) -> torch.Tensor:
        """The current ladder, float32 ``(R,)`` (a copy)."""
        return self._betas.clone()

    # ------------------------------------------------------------------ params / init
    def params(self) -> PTParams:
        """The model's current parameters and the ladder as :func:`pt_round` takes them."""
        m = self.rbm
        f = _tempered._f32
        sigma = f(m.sigma) if self.gaussian else None
        return PTParams(f(m.weight), f(m.visible_bias), f(m.hidden_bias), self.visible_base, sigma, self._betas,
                        self.swap_every, self.backend, self.rng_backend, self._stride, self._swap_offset)

    def init(self, v0: torch.Tensor | None = None) -> PTState:
        """Start the ``R * C`` walkers: ``v0`` of shape ``(R * C, n_visible)`` (row ``r * C + c``:
        walker ``r`` of system ``c``) or ``(C, n_visible)`` (copied to every temperature);
        default the model's :meth:`init_chains` noise. Walker ``r`` starts at temperature ``r``."""
        m = self.rbm
        R, C = self.n_replicas, self.n_chains
        B = R * C
        dev = m.weight.device
        if v0 is None:
            v = m.init_chains(B, generator=self.generator)
        else:
            v = m._v(v0, "v0")
            if v.shape[0] == C and C != B:
                v = v.repeat(R, 1)
            elif v.shape[0] != B:
                raise ValueError(f"v0 must have shape ({B}, {m.n_visible}) (n_replicas * n_chains rows) or "
                                 f"({C}, {m.n_visible}) (one state per chain), got {tuple(v0.shape)}")
            if not self.gaussian:
                bad = int(torch.count_nonzero(v * (v - 1)))
                if bad:
                    raise ValueError(f"v0 must be binary (0/1 values) for a BernoulliRBM, but {bad} entries are not")
            elif not bool(torch.isfinite(v).all()):
                raise ValueError("v0 must be finite")
        v = v.detach().to(_F32).contiguous().clone()
        p = self.params()
        x = v / p.sigma if p.sigma is not None else v
        a = torch.addmm(p.hidden_bias, x, p.weight)
        i64 = dict(dtype=torch.int64, device=dev)
        index = torch.arange(R, **i64).repeat_interleave(C)
        walker = torch.arange(R, **i64).view(R, 1).expand(R, C).contiguous()
        phase = (index == 0).to(torch.int8)
        self.state = PTState(v, a, index, walker, _random.draw_seed(self.generator, dev),
                             torch.zeros((), **i64), phase, torch.zeros(B, **i64), torch.zeros(R - 1, **i64),
                             torch.zeros(R - 1, **i64), torch.zeros(R - 1, dtype=_F64, device=dev),
                             torch.zeros(R, dtype=_F64, device=dev), torch.zeros((), **i64))
        return self.state

    def reset_diagnostics(self) -> None:
        """Zero the swap counts, round trips (phases restart) and energy sums of the state."""
        s = self._require_state()
        self.state = s._replace(phase=(s.index == 0).to(torch.int8), round_trips=torch.zeros_like(s.round_trips),
                                n_accepted=torch.zeros_like(s.n_accepted), n_proposed=torch.zeros_like(s.n_proposed),
                                accept_prob_sum=torch.zeros_like(s.accept_prob_sum),
                                energy_sum=torch.zeros_like(s.energy_sum), n_rounds=torch.zeros_like(s.n_rounds))

    def _require_state(self) -> PTState:
        if self.state is None:
            self.init()
        return self.state

    # ------------------------------------------------------------------ running
    def _adapt_update(self, info: PTRoundInfo) -> None:
        if self._log_gaps is None:
            lb = torch.log(self._betas.to(_F64))
            gaps = lb[:-1] - lb[1:]
            if not bool(torch.isfinite(lb).all()) or not bool((gaps > 0).all()):
                raise ValueError("the adaptive ladder needs distinct betas > 0 (it adapts log-beta gaps); start "
                                 "from a geometric ladder or strictly decreasing positive betas")
            self._log_gaps = torch.log(gaps)
        gamma = self.adapt_rate * (self._adapt_t.to(_F64) + 1.0) ** -0.6
        rate = torch.exp(torch.clamp(info.log_alpha, max=0.0)).mean(1)  # NaN for pairs not proposed
        step = torch.where(info.proposed, gamma * (rate - self.target_accept), torch.zeros_like(rate))
        # one gap spans at most the whole range [log BETA_FLOOR, 0]; betas stop at BETA_FLOOR
        span = -math.log(BETA_FLOOR)
        self._log_gaps = torch.clamp(self._log_gaps + step, min=math.log(span) - 20.0, max=math.log(span))
        lb = torch.cat([torch.zeros(1, dtype=_F64, device=rate.device), -torch.cumsum(torch.exp(self._log_gaps), 0)])
        self._betas.copy_(torch.exp(torch.clamp(lb, min=-span)).to(_F32))
        self._betas[0] = 1.0
        self._adapt_t += 1

    def step(self, n_rounds: int = 1, *, adapt: bool = False) -> tuple[PTState, PTInfo]:
        """Run ``n_rounds`` rounds (sweeps + one even/odd exchange each) from the current state
        (initialised by :meth:`init` on first use). With ``adapt=True`` the ladder adapts after
        every round (burn-in only: see :meth:`adapt`). Returns ``(state, info)`` with the
        summary :class:`PTInfo` of these rounds; no host synchronization."""
        n_rounds = check_int("n_rounds", n_rounds, 1)
        s0 = self._require_state()
        p = self.params()
        s = s0
        for _ in range(n_rounds):
            s, info = pt_round(s, p)
            if adapt:
                self._adapt_update(info)
        self.state = s
        return s, self._summary(s0, s)

    def _summary(self, s0: PTState, s: PTState) -> PTInfo:
        n_prop = (s.n_proposed - s0.n_proposed).to(_F64)
        denom = torch.clamp(n_prop, min=1.0)
        acc = (s.n_accepted - s0.n_accepted).to(_F64) / denom
        prop_rounds = torch.clamp(n_prop / self.n_chains, min=1.0)
        ap = (s.accept_prob_sum - s0.accept_prob_sum) / prop_rounds
        n = torch.clamp((s.n_rounds - s0.n_rounds).to(_F64), min=1.0)
        return PTInfo(acc, ap, (s.round_trips - s0.round_trips).sum(), (s.energy_sum - s0.energy_sum) / n,
                      self._betas.clone(), self.beta1_samples(s))

    def beta1_samples(self, state: PTState | None = None) -> torch.Tensor:
        """The ``C`` rows currently at :math:`\\beta = 1` (model dtype), ``(C, n_visible)``."""
        s = state if state is not None else self._require_state()
        return s.v.index_select(0, self._beta1_rows(s)).to(self.rbm.weight.dtype)

    def _beta1_rows(self, s: PTState) -> torch.Tensor:
        C = self.n_chains
        return s.walker[0] * C + torch.arange(C, device=s.walker.device)

    def negative_phase(self, adapt: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One round, then ``(v, p(h = 1 | v))`` of the ``C`` rows at :math:`\\beta = 1` (model
        dtype): the PT-PCD negative phase (``p(h|v) = sigmoid(a)``, no extra GEMM)."""
        s, _ = self.step(1, adapt=adapt)
        rows = self._beta1_rows(s)
        dt = self.rbm.weight.dtype
        return s.v.index_select(0, rows).to(dt), torch.sigmoid(s.a.index_select(0, rows)).to(dt)

    def adapt(self, n_rounds: int, *, target_accept: float | None = None) -> PTInfo:
        """Burn in for ``n_rounds`` rounds while adapting the ladder toward ``target_accept``
        (default: the constructor's), then freeze it and reset the diagnostics. Returns the
        summary of the adaptation rounds (``info.betas`` is the adapted ladder)."""
        if target_accept is not None:
            t = check_real("target_accept", target_accept, positive=True)
            if not t < 1:
                raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
            self.target_accept = t
        _, info = self.step(n_rounds, adapt=True)
        self.reset_diagnostics()
        return info

    def sample(self, n: int, *, thin: int = 1, burn_in: int = 0) -> torch.Tensor:
        """``n`` draws of the ``C`` chains at :math:`\\beta = 1`: ``(C, n, n_visible)`` (the
        ``(chains, draws, ...)`` layout of :mod:`gensample.diagnostics`), one draw every ``thin``
        rounds after ``burn_in`` rounds (which adapt the ladder when ``ladder="adaptive"``,
        then freeze it and reset the diagnostics). Diagnostics: :meth:`diagnostics`."""
        n = check_int("n", n, 1)
        thin = check_int("thin", thin, 1)
        burn_in = check_int("burn_in", burn_in, 0)
        if burn_in:
            if self.ladder == "adaptive":
                self.adapt(burn_in)
            else:
                self.step(burn_in)
                self.reset_diagnostics()
        s = self._require_state()
        out = torch.empty(self.n_chains, n, self.rbm.n_visible, dtype=_F32, device=s.v.device)
        p = self.params()
        for i in range(n):
            for _ in range(thin):
                s, _ = pt_round(s, p)
            out[:, i] = s.v.index_select(0, self._beta1_rows(s))
        self.state = s
        return out.to(self.rbm.weight.dtype)

    __call__ = sample

    def diagnostics(self) -> dict:
        """Diagnostics accumulated since :meth:`init` or the last reset (host numbers: one sync).

        ``swap_acceptance`` (R - 1 rates), ``accept_prob`` (mean min(1, alpha) per pair),
        ``round_trips`` (total over walkers), ``round_trip_rate`` (trips per system per round),
        ``energy`` (R mean tempered free energies), ``betas``, ``n_rounds``."""
        s = self._require_state()
        n = int(s.n_rounds)
        prop = s.n_proposed.to(_F64)
        return {
            "swap_acceptance": (s.n_accepted.to(_F64) / prop.clamp(min=1)).tolist(),
            "accept_prob": (s.accept_prob_sum / (prop / self.n_chains).clamp(min=1)).tolist(),
            "round_trips": int(s.round_trips.sum()),
            "round_trip_rate": float(s.round_trips.sum()) / max(1, n * self.n_chains),
            "energy": (s.energy_sum / max(1, n)).tolist(),
            "betas": self._betas.tolist(),
            "n_rounds": n,
        }

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The walkers, counters, key and ladder (adaptation included): :meth:`load_state_dict`
        continues the run exactly."""
        return {
            "state": None if self.state is None else {k: v.clone() for k, v in self.state._asdict().items()},
            "betas": self._betas.clone(),
            "log_gaps": None if self._log_gaps is None else self._log_gaps.clone(),
            "adapt_t": self._adapt_t.clone(),
            "target_accept": self.target_accept,
        }

    def load_state_dict(self, sd: dict) -> None:
        dev = self.rbm.weight.device
        b = sd["betas"].to(dev)
        if b.shape != self._betas.shape:
            raise ValueError(f"checkpoint has {b.shape[0]} temperatures, this sampler {self.n_replicas}")
        self._betas = b.clone()
        self._log_gaps = None if sd["log_gaps"] is None else sd["log_gaps"].to(dev).clone()
        self._adapt_t = sd["adapt_t"].to(dev).clone()
        self.target_accept = float(sd["target_accept"])
        st = sd["state"]
        if st is None:
            self.state = None
            return
        s = PTState(**{k: v.to(dev).clone() for k, v in st.items()})
        if tuple(s.walker.shape) != (self.n_replicas, self.n_chains):
            raise ValueError(f"checkpoint has walkers {tuple(s.walker.shape)}, this sampler "
                             f"({self.n_replicas}, {self.n_chains})")
        self.state = s
