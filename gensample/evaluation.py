r"""Evaluating RBMs: log Z by annealed importance sampling, a bracketing upper bound by
reverse AIS, and test log-likelihoods with their uncertainty.

**Forward AIS** (Neal 2001; Salakhutdinov & Murray 2008). The tempered family of
:mod:`gensample.ops.tempered` interpolates between a tractable base
:math:`p_0` (:math:`\beta = 0`, log partition :math:`\log Z_0` in closed form) and the
model :math:`p_1`. With a schedule :math:`0 = \beta_0 < \dots < \beta_K = 1` and
:math:`v_0 \sim p_0`, each chain carries the weight

.. math::

    w = \prod_{k=1}^K \frac{p^*_{\beta_k}(v_{k-1})}{p^*_{\beta_{k-1}}(v_{k-1})},
    \qquad v_k \sim T_{\beta_k}(\cdot \mid v_{k-1}),
    \qquad \mathbb E[w] = Z_1 / Z_0,

for any number of steps: :math:`\hat Z = Z_0 \cdot \frac1n \sum_r w_r` is unbiased, and so
(Jensen) :math:`\mathbb E[\log \hat Z] \le \log Z`: forward AIS is a *stochastic lower
bound* of :math:`\log Z` (Grosse et al. 2015; Burda et al. 2015). Its bias is about
:math:`-\tfrac12 \operatorname{se}^2` (second order in the standard error below) and
shrinks as ``n_betas`` grows (the weights concentrate).

**Reverse AIS** (RAISE, Burda et al. 2015; the reverse half of BDMC, Grosse et al. 2015).
Run the same chain backwards, :math:`\beta` from 1 to 0, starting from *exact* samples of
the model: the weights now satisfy :math:`\mathbb E[w] = Z_0 / Z_1`, so
:math:`\log Z_0 - \log \frac1n\sum_r w_r` is a stochastic *upper* bound of :math:`\log Z`.
Exact model samples are available when the smaller layer has at most
:data:`MAX_EXACT_SAMPLE_UNITS` units (it is enumerated, drawn from its exact marginal, and
the other layer from its conditional); otherwise pass ``init=`` samples (e.g. from a long
Gibbs or parallel-tempering run): the result is then only an approximate upper bound
(``exact_start=False``), exact only as far as those samples are exact.

Together they bracket :math:`\log Z` (:func:`bracket_log_partition`); the gap between the
two is a diagnostic of the AIS run itself (a narrow gap means both are accurate).

**Estimator and uncertainty.** From the float64 log-weights :math:`\ell_r`,
with :math:`m = \max_r \ell_r` and :math:`\tilde w_r = e^{\ell_r - m}` (no overflow),

.. math::

    \log \tfrac1n \textstyle\sum_r w_r = m + \log \bar{\tilde w}, \qquad
    \operatorname{se} = \sqrt{\frac{\widehat{\operatorname{Var}}(\tilde w)}{n\,\bar{\tilde w}^2}}
    \quad\text{(delta method: } \operatorname{Var}\log\bar w \approx
    \operatorname{Var}\bar w / \bar w^2\text{)},

with the unbiased sample variance; the interval is :math:`\log\hat Z \pm z_{(1+\text{level})/2}
\operatorname{se}`. The effective sample size of the weights is Kish's
:math:`(\sum_r \tilde w_r)^2 / \sum_r \tilde w_r^2`. The delta method assumes the weights
are not heavy-tailed: when ``ess`` is a small fraction of ``n_chains`` the interval is
optimistic; use more ``n_betas``.

**Schedules** (:func:`ais_schedule`): ``"linear"``; ``"sigmoid"`` (Grosse, Maddison &
Salakhutdinov 2013; used in BDMC), :math:`\beta_k \propto \sigma(\delta(2k/K - 1))` rescaled
to [0, 1]; ``"salakhutdinov"``: linear pieces 0-0.5-0.9-1 with 500, 4000 and 10000 steps in
Salakhutdinov & Murray (2008), here in those proportions (1 : 8 : 20) of ``n_betas``.

**Base model.** Bernoulli RBMs use the tempered family's base visible bias :math:`b_A`:
zeros (uniform base) by default, or the *base-rate model* of the data's visible marginals
(Salakhutdinov & Murray 2008, :func:`base_rate_bias`), which is far closer to a trained
model and needs fewer betas. Gaussian-Bernoulli RBMs use the family's Gaussian base
:math:`v \sim \mathcal N(b, \sigma^2)`.

Every AIS run is ONE :func:`gensample.ops.ais_rbm` call (all ``K`` steps on the device,
no per-beta host synchronization); the statistics are computed in float64 on the device
and read back once.

References: R. M. Neal, *Annealed importance sampling*, Statistics and Computing 11 (2001);
R. Salakhutdinov & I. Murray, *On the quantitative analysis of deep belief networks*, ICML
2008; R. Grosse, C. Maddison & R. Salakhutdinov, *Annealing between distributions by
averaging moments*, NIPS 2013; R. Grosse, Z. Ghahramani & R. Adams, *Sandwiching the
marginal likelihood using bidirectional Monte Carlo* (BDMC), arXiv:1511.02543, 2015;
Y. Burda, R. Grosse & R. Salakhutdinov, *Accurate and conservative estimates of MRF
log-likelihood using reverse annealing* (RAISE), AISTATS 2015.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import torch

from . import random as _random
from ._checks import check_int as _check_int

__all__ = [
    "LogZEstimate",
    "LogLikelihood",
    "ais_schedule",
    "ais_log_partition",
    "reverse_ais_log_partition",
    "bracket_log_partition",
    "evaluate_log_likelihood",
    "base_rate_bias",
    "exact_samples",
    "SCHEDULES",
    "MAX_EXACT_SAMPLE_UNITS",
]

SCHEDULES = ("sigmoid", "linear", "salakhutdinov")
MAX_EXACT_SAMPLE_UNITS = 20
_F64 = torch.float64
_CHUNK_ELEMS = 1 << 22


# ----------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------
def _z_of(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not (0.0 < float(level) < 1.0):
        raise ValueError(f"level must be a number in (0, 1) (the confidence level, e.g. 0.95), got {level!r}")
    return NormalDist().inv_cdf(0.5 + float(level) / 2)


@dataclass(frozen=True)
class LogZEstimate:
    r"""An estimate of :math:`\log Z` with its uncertainty.

    Attributes:
        log_z: the estimate (float).
        stderr: delta-method standard error of ``log_z`` (0 for ``"exact"``; ``inf`` with
            one chain).
        ci_low, ci_high: ``log_z -+ z * stderr`` at ``level``.
        level: confidence level of the interval (0.95).
        method: ``"ais"``, ``"reverse_ais"`` or ``"exact"``.
        n_chains, n_betas: chains and schedule length (``n_betas = K + 1``) of the run.
        ess: Kish effective sample size of the importance weights.
        log_weights: float64 ``(n_chains,)`` log importance weights (on the model's device).
        bound: ``"lower"`` (forward AIS: a stochastic lower bound of log Z), ``"upper"``
            (reverse AIS) or ``"exact"``.
        log_z0: log partition function of the base model (``nan`` for ``"exact"``).
        exact_start: whether the chains started from exact samples of their first
            distribution (always for forward AIS; for reverse AIS only without ``init=``:
            with user samples the upper bound is approximate).
    """

    log_z: float
    stderr: float
    ci_low: float
    ci_high: float
    level: float
    method: str
    n_chains: int
    n_betas: int
    ess: float
    log_weights: torch.Tensor = field(repr=False, compare=False)
    bound: str
    log_z0: float = float("nan")
    exact_start: bool = True

    def __float__(self) -> float:
        return float(self.log_z)

    @classmethod
    def from_log_weights(cls, log_weights: torch.Tensor, log_z0: float, *, method: str = "ais",
                         n_betas: int = 0, level: float = 0.95, exact_start: bool = True) -> "LogZEstimate":
        r"""The estimator of the module docstring from log-weights ``(n,)``: forward
        (``method="ais"``) :math:`\log Z_0 + \operatorname{LME}(\ell)`, reverse
        (``"reverse_ais"``) :math:`\log Z_0 - \operatorname{LME}(\ell)`. One host read."""
        if method not in ("ais", "reverse_ais"):
            raise ValueError(f"method must be 'ais' or 'reverse_ais', got {method!r}")
        z = _z_of(level)
        if not isinstance(log_weights, torch.Tensor) or log_weights.dim() != 1 or log_weights.numel() < 1:
            raise ValueError("log_weights must be a 1-D tensor with at least one entry")
        lw = log_weights.detach().to(_F64)
        n = lw.numel()
        m = lw.max()
        w = torch.exp(lw - m)
        mean = w.mean()
        lme = m + torch.log(mean)
        var = ((w - mean) ** 2).sum() / max(n - 1, 1)
        rel = torch.sqrt(var / n) / mean
        ess = w.sum() ** 2 / (w * w).sum()
        lme_f, rel_f, ess_f, bad = torch.stack([lme, rel, ess, (~torch.isfinite(lw)).sum().to(_F64)]).tolist()
        if bad:
            raise FloatingPointError(f"{int(bad)} of the {n} AIS log-weights are not finite (NaN or inf): check the "
                                     "model parameters and the base model")
        se = float("inf") if n == 1 else rel_f
        log_z = log_z0 + lme_f if method == "ais" else log_z0 - lme_f
        return cls(log_z=log_z, stderr=se, ci_low=log_z - z * se, ci_high=log_z + z * se, level=float(level),
                   method=method, n_chains=n, n_betas=int(n_betas), ess=ess_f, log_weights=lw,
                   bound="lower" if method == "ais" else "upper", log_z0=float(log_z0), exact_start=exact_start)

    @classmethod
    def exact(cls, log_z, *, level: float = 0.95) -> "LogZEstimate":
        """A known value (``method="exact"``, zero-width interval)."""
        v = float(log_z)
        _z_of(level)
        return cls(log_z=v, stderr=0.0, ci_low=v, ci_high=v, level=float(level), method="exact", n_chains=0,
                   n_betas=0, ess=float("nan"), log_weights=torch.zeros(0, dtype=_F64), bound="exact")


@dataclass(frozen=True)
class LogLikelihood:
    r"""Mean log-likelihood of a data set with its uncertainty.

    Attributes:
        mean: :math:`\frac1N \sum_n \log p(v_n)` (a log-density for Gaussian visible units).
        stderr: :math:`\sqrt{s^2 / N + \operatorname{se}(\log \hat Z)^2}`: the standard
            error of the mean over samples (``s`` their standard deviation) and that of
            :math:`\log \hat Z` in quadrature (independent sources).
        ci_low, ci_high: ``mean -+ z * stderr`` at ``level``.
        per_sample: float64 ``(N,)`` :math:`\log p(v_n) = -F(v_n) - \log \hat Z`.
        log_z: the :class:`LogZEstimate` used.
        level: confidence level.
    """

    mean: float
    stderr: float
    ci_low: float
    ci_high: float
    per_sample: torch.Tensor = field(repr=False, compare=False)
    log_z: LogZEstimate
    level: float = 0.95

    def __float__(self) -> float:
        return float(self.mean)


# ----------------------------------------------------------------------------
# schedules and base models
# ----------------------------------------------------------------------------
def ais_schedule(n_betas: int, kind: str = "sigmoid", *, delta: float = 4.0, dtype=_F64,
                 device=None) -> torch.Tensor:
    r"""An annealing schedule :math:`0 = \beta_0 < \beta_1 < \dots < \beta_K = 1` of
    ``n_betas = K + 1`` inverse temperatures.

    * ``"linear"``: :math:`\beta_k = k / K`.
    * ``"sigmoid"`` (Grosse et al. 2013, 2015): :math:`\tilde\beta_k = \sigma(\delta(2k/K - 1))`,
      :math:`\beta_k = (\tilde\beta_k - \tilde\beta_0) / (\tilde\beta_K - \tilde\beta_0)`:
      dense at both ends (``delta`` = 4).
    * ``"salakhutdinov"``: linear on [0, 0.5], [0.5, 0.9], [0.9, 1] with the step counts
      in the proportions 1 : 8 : 20 of Salakhutdinov & Murray (2008)'s 500 / 4000 / 10000
      (their 14,500 steps are ``ais_schedule(14501, "salakhutdinov")``); needs
      ``n_betas >= 4``.

    Computed in float64 (``dtype``); the endpoints are exactly 0 and 1.
    """
    n_betas = _check_int("n_betas", n_betas, 2)
    K = n_betas - 1
    if kind == "linear":
        b = torch.arange(n_betas, dtype=_F64) / K
    elif kind == "sigmoid":
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not (math.isfinite(delta) and delta > 0):
            raise ValueError(f"delta must be a finite number > 0, got {delta!r}")
        s = torch.sigmoid(float(delta) * (2 * torch.arange(n_betas, dtype=_F64) / K - 1))
        b = (s - s[0]) / (s[-1] - s[0])
    elif kind == "salakhutdinov":
        if n_betas < 4:
            raise ValueError(f"the 'salakhutdinov' schedule has three linear pieces: n_betas must be >= 4, got {n_betas}")
        n1 = max(1, round(K * 1 / 29))
        n2 = max(1, round(K * 8 / 29))
        n3 = K - n1 - n2
        if n3 < 1:
            n2 -= 1 - n3
            n3 = 1
        pieces = [torch.linspace(lo, hi, n + 1, dtype=_F64)[:-1] for lo, hi, n in ((0.0, 0.5, n1), (0.5, 0.9, n2),
                                                                                   (0.9, 1.0, n3))]
        b = torch.cat(pieces + [torch.ones(1, dtype=_F64)])
    else:
        raise ValueError(f"schedule kind must be one of {SCHEDULES}, got {kind!r}")
    b[0], b[-1] = 0.0, 1.0
    return b.to(dtype=dtype, device=device)


def base_rate_bias(data: torch.Tensor, *, pseudo_count: float = 5.0) -> torch.Tensor:
    r"""The base-rate model's visible bias (Salakhutdinov & Murray 2008): the log-odds of
    the smoothed visible marginals of binary ``data`` ``(N, n_visible)``,

    .. math:: p_i = \frac{\sum_n v_{n,i} + \alpha}{N + 2\alpha}, \qquad b_{A,i} = \log\frac{p_i}{1 - p_i},

    with ``pseudo_count`` :math:`\alpha` (5: the ``lp = 5`` of Salakhutdinov's code, which adds
    it per 100-case minibatch to the ones only; here once, to both outcomes, so that pixels
    that are always off or on get a finite bias). Any base model keeps AIS unbiased; a
    closer one needs fewer betas. Returned in ``data``'s dtype and device.
    """
    if not isinstance(data, torch.Tensor) or not data.is_floating_point():
        raise TypeError("data must be a floating torch.Tensor of binary visible states (N, n_visible)")
    if data.dim() != 2 or data.shape[0] < 1:
        raise ValueError(f"data must have shape (N, n_visible) with N >= 1, got {tuple(data.shape)}")
    if isinstance(pseudo_count, bool) or not isinstance(pseudo_count, (int, float)) or not pseudo_count > 0:
        raise ValueError(f"pseudo_count must be a number > 0, got {pseudo_count!r}")
    d = data.detach()
    nonbin = int(((d != 0) & (d != 1)).sum())
    if nonbin:
        raise ValueError(f"the base-rate model needs binary data (0/1 values), but {nonbin} of the {d.numel()} entries "
                         "of data are not 0 or 1 (binarize it, or pass visible_base=)")
    p = (d.to(_F64).sum(0) + pseudo_count) / (d.shape[0] + 2 * pseudo_count)
    return (torch.log(p) - torch.log1p(-p)).to(d.dtype)


# ----------------------------------------------------------------------------
# model access
# ----------------------------------------------------------------------------
def _is_gaussian(rbm) -> bool:
    return getattr(rbm, "visible_kind", "binary") == "gaussian"


def _params(rbm):
    for name in ("weight", "visible_bias", "hidden_bias"):
        if not isinstance(getattr(rbm, name, None), torch.Tensor):
            raise TypeError(f"rbm must be a gensample BernoulliRBM or GaussianBernoulliRBM (an object with tensor "
                            f"attributes weight, visible_bias, hidden_bias), got {type(rbm).__name__}")
    W, b, c = (p.detach() for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))
    sigma = rbm.sigma.detach() if _is_gaussian(rbm) else None
    return W, b, c, sigma


def _resolve_betas(n_betas, schedule, device) -> torch.Tensor:
    if isinstance(schedule, torch.Tensor):
        betas = schedule.detach()
        if not betas.is_floating_point() or betas.dim() != 1 or betas.shape[0] < 2:
            raise ValueError(f"schedule must be a 1-D floating tensor of at least 2 betas (0 .. 1), got "
                             f"{betas.dtype} of shape {tuple(betas.shape)}")
        b64 = betas.to(_F64)
        if not bool(torch.isfinite(b64).all()) or not bool(((b64 >= 0) & (b64 <= 1)).all()):
            raise ValueError("schedule betas must lie in [0, 1]")
        if float(b64[0]) != 0.0 or float(b64[-1]) != 1.0:
            raise ValueError(f"schedule must start at beta = 0 (the base) and end at beta = 1 (the model), got "
                             f"{float(b64[0])} .. {float(b64[-1])}")
        if not bool((b64[1:] >= b64[:-1]).all()):
            raise ValueError("schedule must be non-decreasing (reverse AIS reverses it itself)")
        return betas.to(device=device)
    if not isinstance(schedule, str):
        raise TypeError(f"schedule must be one of {SCHEDULES} or a tensor of betas, got {type(schedule).__name__}")
    return ais_schedule(n_betas, schedule, device=device)


def _base(rbm, data, visible_base):
    """(visible_base tensor or None, log Z_0) of the tempered family's base."""
    from .ops.tempered import base_log_partition

    W, b, c, sigma = _params(rbm)
    n_vis, n_hid = W.shape
    if sigma is not None:
        if data is not None or visible_base is not None:
            raise ValueError("data= (base-rate model) and visible_base= apply to Bernoulli visible units only; a "
                             "GaussianBernoulliRBM anneals from the Gaussian base N(visible_bias, sigma^2)")
        return None, base_log_partition(n_hid, sigma=sigma, n_visible=n_vis)
    if data is not None and visible_base is not None:
        raise ValueError("pass data= (base-rate model) or visible_base=, not both")
    if data is not None:
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"data must be a torch.Tensor, got {type(data).__name__}")
        if data.dim() != 2 or data.shape[1] != n_vis:
            raise ValueError(f"data must have shape (N, {n_vis}) (n_visible units), got {tuple(data.shape)}")
        visible_base = base_rate_bias(data.to(device=W.device, dtype=W.dtype))
    elif visible_base is not None:
        if not isinstance(visible_base, torch.Tensor) or tuple(visible_base.shape) != (n_vis,):
            raise ValueError(f"visible_base must be a tensor of shape ({n_vis},) (the base model's visible bias)")
        visible_base = visible_base.detach().to(device=W.device, dtype=W.dtype)
    if visible_base is None:
        return None, base_log_partition(n_hid, n_visible=n_vis)
    return visible_base, base_log_partition(n_hid, visible_base=visible_base)


def _check_chains(n_chains) -> int:
    return _check_int("n_chains", n_chains, 1)


def _sample_base(rbm, n, visible_base, generator):
    W, b, c, sigma = _params(rbm)
    n_vis = W.shape[0]
    if sigma is not None:
        eps = _random.normal(n, n_vis, generator=generator, device=W.device).to(W.dtype)
        return b + sigma * eps
    u = _random.uniform(n, n_vis, generator=generator, device=W.device)
    if visible_base is None:
        return (u < 0.5).to(W.dtype)
    return (u < torch.sigmoid(visible_base.float())).to(W.dtype)


# ----------------------------------------------------------------------------
# exact samples (reverse AIS starts)
# ----------------------------------------------------------------------------
def _categorical(logp: torch.Tensor, n: int, generator) -> torch.Tensor:
    """``n`` draws of indices from unnormalized float64 log-probabilities (inverse CDF with
    48-bit uniforms from gensample's stream)."""
    p = torch.exp(logp - logp.max())
    cdf = torch.cumsum(p, 0)
    cdf = cdf / cdf[-1]
    u2 = _random.uniform(n, 2, generator=generator, device=logp.device, dtype=_F64)
    u = u2[:, 0] + u2[:, 1] * 2.0**-24
    return torch.searchsorted(cdf, u, right=True).clamp_max(logp.numel() - 1)


def exact_samples(rbm, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""``n`` independent exact samples of the model's visible units ``(n, n_visible)``.

    The smaller layer (at most :data:`MAX_EXACT_SAMPLE_UNITS` units) is enumerated: its
    exact marginal (the other layer summed out analytically, float64) is sampled by the
    inverse CDF, then the other layer from its conditional. Bernoulli, hidden enumerated:
    :math:`\log p^*(h) = c^\top h + \sum_i \operatorname{softplus}(b_i + (Wh)_i)`, then
    :math:`v \sim \mathcal B(\sigma(b + Wh))`; visible enumerated: :math:`\log p^*(v) = -F(v)`.
    Gaussian (hidden always enumerated): :math:`\log p^*(h) = c^\top h + \sum_i (b_i a_i/\sigma_i
    + a_i^2/2)` with :math:`a = Wh`, then :math:`v \sim \mathcal N(b + \sigma a, \sigma^2)`.
    Random numbers from gensample's stream (``generator``).
    """
    from .models.rbm import binary_states

    n = _check_int("n", n, 1)
    W, b, c, sigma = _params(rbm)
    n_vis, n_hid = W.shape
    dev, dt = W.device, W.dtype
    W64, b64, c64 = W.to(_F64), b.to(_F64), c.to(_F64)
    F = torch.nn.functional
    enum_hidden = sigma is not None or n_hid <= n_vis
    n_enum = n_hid if enum_hidden else n_vis
    if n_enum > MAX_EXACT_SAMPLE_UNITS:
        which = "hidden" if enum_hidden else "visible"
        raise ValueError(f"exact model samples enumerate the {which} layer, which has {n_enum} units; at most "
                         f"{MAX_EXACT_SAMPLE_UNITS} are supported: pass init= samples (e.g. from a long Gibbs or "
                         "parallel-tempering run)")
    n_other = n_vis if enum_hidden else n_hid
    step = max(1, _CHUNK_ELEMS // max(1, n_other))
    parts = []
    for s in range(0, 1 << n_enum, step):
        x = binary_states(n_enum, s, min(1 << n_enum, s + step), device=dev)
        if sigma is not None:
            a = x @ W64.t()
            s64 = sigma.to(_F64)
            parts.append(x @ c64 + (a * (b64 / s64) + 0.5 * a * a).sum(-1))
        elif enum_hidden:
            parts.append(x @ c64 + F.softplus(torch.addmm(b64, x, W64.t())).sum(-1))
        else:
            parts.append(x @ b64 + F.softplus(torch.addmm(c64, x, W64)).sum(-1))
    idx = _categorical(torch.cat(parts), n, generator)
    bits = torch.arange(n_enum, device=dev)
    x = ((idx[:, None] >> bits) & 1).to(_F64)
    if not enum_hidden:
        return x.to(dt)
    a = x @ W64.t()
    if sigma is not None:
        eps = _random.normal(n, n_vis, generator=generator, device=dev).to(_F64)
        s64 = sigma.to(_F64)
        return (b64 + s64 * a + s64 * eps).to(dt)
    u = _random.uniform(n, n_vis, generator=generator, device=dev).to(_F64)
    return (u < torch.sigmoid(b64 + a)).to(dt)


# ----------------------------------------------------------------------------
# AIS
# ----------------------------------------------------------------------------
def _run(rbm, v0, betas, visible_base, generator, backend):
    from .ops.tempered import ais_rbm

    W, b, c, sigma = _params(rbm)
    if backend is None:
        backend = getattr(rbm, "backend", None)
    return ais_rbm(v0, W, b, c, betas=betas.to(device=W.device), visible_base=visible_base, sigma=sigma,
                   check_binary=False, generator=generator, backend=backend)[0]


def ais_log_partition(rbm, *, n_chains: int = 100, n_betas: int = 10000, schedule="sigmoid",
                      data: torch.Tensor | None = None, visible_base: torch.Tensor | None = None,
                      level: float = 0.95, generator: torch.Generator | None = None,
                      backend: str | None = None) -> LogZEstimate:
    r"""Forward AIS estimate of :math:`\log Z` (a stochastic lower bound; module docstring).

    Args:
        rbm: a :class:`~gensample.BernoulliRBM` or :class:`~gensample.GaussianBernoulliRBM`.
        n_chains: independent AIS chains (importance samples).
        n_betas: schedule length ``K + 1`` (ignored when ``schedule`` is a tensor).
        schedule: ``"sigmoid"``, ``"linear"``, ``"salakhutdinov"`` (:func:`ais_schedule`) or a
            non-decreasing tensor of betas from 0 to 1.
        data: binary data ``(N, n_visible)`` for the base-rate base model (Bernoulli only).
        visible_base: an explicit base visible bias ``(n_visible,)`` instead (Bernoulli only).
        level: confidence level of the interval.
        generator: seeds everything (base samples and the annealing run).
        backend: backend of :func:`gensample.ops.ais_rbm` (default: the model's, else automatic).

    Returns:
        :class:`LogZEstimate` with ``method="ais"``, ``bound="lower"``.
    """
    n_chains = _check_chains(n_chains)
    z = _z_of(level)  # noqa: F841 (validates early)
    W = _params(rbm)[0]
    betas = _resolve_betas(n_betas, schedule, W.device)
    base, log_z0 = _base(rbm, data, visible_base)
    v0 = _sample_base(rbm, n_chains, base, generator)
    log_w = _run(rbm, v0, betas, base, generator, backend)
    return LogZEstimate.from_log_weights(log_w, log_z0, method="ais", n_betas=betas.shape[0], level=level)


def reverse_ais_log_partition(rbm, *, n_chains: int | None = None, n_betas: int = 10000, schedule="sigmoid",
                              data: torch.Tensor | None = None, visible_base: torch.Tensor | None = None,
                              init: torch.Tensor | None = None, level: float = 0.95,
                              generator: torch.Generator | None = None, backend: str | None = None) -> LogZEstimate:
    r"""Reverse AIS (RAISE-style) estimate of :math:`\log Z`: a stochastic *upper* bound.

    The chains start from samples of the model and anneal :math:`\beta` from 1 to 0 (the
    schedule reversed); their weights estimate :math:`Z_0 / Z_1`, so
    :math:`\log Z_0 - \operatorname{LME}(\ell)` over-estimates :math:`\log Z` in expectation.

    Args:
        init: ``(n_chains, n_visible)`` start samples of the model. Default: exact samples
            (:func:`exact_samples`), available when the smaller layer has at most
            :data:`MAX_EXACT_SAMPLE_UNITS` units; larger models need ``init`` (from a long
            Gibbs or parallel-tempering run), and the bound is then only approximate
            (``exact_start=False`` in the result): it holds as far as ``init`` follows the model.
        n_chains: chains (default 100, or ``init``'s row count).
        Other arguments as in :func:`ais_log_partition`.

    Returns:
        :class:`LogZEstimate` with ``method="reverse_ais"``, ``bound="upper"``.
    """
    z = _z_of(level)  # noqa: F841
    W = _params(rbm)[0]
    n_vis = W.shape[0]
    betas = _resolve_betas(n_betas, schedule, W.device)
    base, log_z0 = _base(rbm, data, visible_base)
    if init is None:
        n_chains = _check_chains(100 if n_chains is None else n_chains)
        v0 = exact_samples(rbm, n_chains, generator=generator)
        exact = True
    else:
        if not isinstance(init, torch.Tensor) or not init.is_floating_point():
            raise TypeError("init must be a floating torch.Tensor of model samples (n_chains, n_visible)")
        if init.dim() != 2 or init.shape[1] != n_vis or init.shape[0] < 1:
            raise ValueError(f"init must have shape (n_chains, {n_vis}) (model samples), got {tuple(init.shape)}")
        if n_chains is not None and _check_chains(n_chains) != init.shape[0]:
            raise ValueError(f"n_chains={n_chains} but init has {init.shape[0]} rows; pass one or make them agree")
        n_chains = init.shape[0]
        v0 = init.detach().to(device=W.device, dtype=W.dtype)
        if not _is_gaussian(rbm):
            nonbin = int(((v0 != 0) & (v0 != 1)).sum())
            if nonbin:
                raise ValueError(f"init must hold binary visible states, but {nonbin} entries are not 0 or 1")
        exact = False
    log_w = _run(rbm, v0, torch.flip(betas, (0,)), base, generator, backend)
    return LogZEstimate.from_log_weights(log_w, log_z0, method="reverse_ais", n_betas=betas.shape[0], level=level,
                                         exact_start=exact)


def bracket_log_partition(rbm, *, n_chains: int = 100, n_betas: int = 10000, schedule="sigmoid",
                          data: torch.Tensor | None = None, visible_base: torch.Tensor | None = None,
                          init: torch.Tensor | None = None, level: float = 0.95,
                          generator: torch.Generator | None = None,
                          backend: str | None = None) -> tuple[LogZEstimate, LogZEstimate]:
    r"""Sandwich :math:`\log Z` (BDMC, Grosse et al. 2015): ``(lower, upper)`` from a forward
    and a reverse AIS run with the same schedule and base. In expectation
    ``lower.log_z <= log Z <= upper.log_z``; ``(lower.ci_low, upper.ci_high)`` is a
    conservative interval, and ``upper.log_z - lower.log_z`` measures how well the
    annealing mixes (it shrinks to 0 with more betas). ``init`` as in
    :func:`reverse_ais_log_partition` (its rows set the reverse run's chain count)."""
    lower = ais_log_partition(rbm, n_chains=n_chains, n_betas=n_betas, schedule=schedule, data=data,
                              visible_base=visible_base, level=level, generator=generator, backend=backend)
    upper = reverse_ais_log_partition(rbm, n_chains=None if init is not None else n_chains, n_betas=n_betas,
                                      schedule=schedule, data=data, visible_base=visible_base, init=init,
                                      level=level, generator=generator, backend=backend)
    return lower, upper


# ----------------------------------------------------------------------------
# log-likelihood
# ----------------------------------------------------------------------------
def _as_estimate(rbm, log_z, level, ais_kwargs) -> LogZEstimate:
    if isinstance(log_z, LogZEstimate):
        return log_z
    if isinstance(log_z, str):
        if log_z == "exact":
            return LogZEstimate.exact(rbm.log_partition(), level=level)
        if log_z == "ais":
            return ais_log_partition(rbm, level=level, **ais_kwargs)
        if log_z == "reverse_ais":
            return reverse_ais_log_partition(rbm, level=level, **ais_kwargs)
        raise ValueError(f"log_z must be 'exact', 'ais', 'reverse_ais', a LogZEstimate or a number, got {log_z!r}")
    if isinstance(log_z, torch.Tensor):
        if log_z.numel() != 1:
            raise ValueError(f"log_z must be a scalar, got a tensor of shape {tuple(log_z.shape)}")
        return LogZEstimate.exact(float(log_z), level=level)
    if isinstance(log_z, bool) or not isinstance(log_z, (int, float)):
        raise TypeError(f"log_z must be 'exact', 'ais', 'reverse_ais', a LogZEstimate or a number, got "
                        f"{type(log_z).__name__}")
    if not math.isfinite(float(log_z)):
        raise ValueError(f"log_z must be finite, got {log_z}")
    return LogZEstimate.exact(float(log_z), level=level)


def evaluate_log_likelihood(rbm, data: torch.Tensor, *, log_z="ais", n_chains: int = 100, n_betas: int = 10000,
                            schedule="sigmoid", base_data: torch.Tensor | None = None, level: float = 0.95,
                            generator: torch.Generator | None = None, backend: str | None = None) -> LogLikelihood:
    r"""Mean log-likelihood of ``data`` ``(N, n_visible)`` under ``rbm`` with a confidence
    interval: :math:`\log p(v_n) = -F(v_n) - \log\hat Z` (float64), and

    .. math:: \operatorname{se} = \sqrt{s^2 / N + \operatorname{se}(\log\hat Z)^2}.

    Args:
        log_z: a :class:`LogZEstimate`, a number (treated as exact), ``"exact"``
            (enumeration), ``"ais"`` (forward AIS: the usual, slightly optimistic-in-expectation
            log-likelihood, since :math:`\log\hat Z` is biased low) or ``"reverse_ais"`` (a
            conservative log-likelihood).
        n_chains, n_betas, schedule, generator, backend: of the AIS run, when one is made.
        base_data: binary data for the base-rate base model of a Bernoulli RBM (default:
            ``data`` itself; any base keeps AIS unbiased).
    """
    _z = _z_of(level)
    v = rbm._v(data, "data") if hasattr(rbm, "_v") else data
    if v.shape[0] < 1:
        raise ValueError("data must hold at least one sample")
    kw = dict(n_chains=n_chains, n_betas=n_betas, schedule=schedule, generator=generator, backend=backend)
    if not _is_gaussian(rbm) and isinstance(log_z, str) and log_z in ("ais", "reverse_ais"):
        kw["data"] = v if base_data is None else base_data
    est = _as_estimate(rbm, log_z, level, kw)
    with torch.no_grad():
        per = rbm.log_likelihood(v, log_z=est.log_z)
    n = per.shape[0]
    mean = per.mean()
    var = per.var() if n > 1 else torch.zeros((), dtype=per.dtype, device=per.device)
    mean_f, var_f = torch.stack([mean, var]).tolist()
    se = math.sqrt(var_f / n + est.stderr**2)
    return LogLikelihood(mean=mean_f, stderr=se, ci_low=mean_f - _z * se, ci_high=mean_f + _z * se,
                         per_sample=per, log_z=est, level=float(level))
