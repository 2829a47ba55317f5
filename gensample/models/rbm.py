r"""Restricted Boltzmann machines on gensample's fused block-Gibbs ops.

Two models, both :class:`torch.nn.Module` with parameters ``weight`` ``W``
(n_visible x n_hidden), ``visible_bias`` ``b`` and ``hidden_bias`` ``c``:

* :class:`BernoulliRBM`, binary visible and hidden units,

  .. math:: E(v, h) = -b^\top v - c^\top h - v^\top W h, \qquad
            F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + (v W)_j);

* :class:`GaussianBernoulliRBM`, real visible units with per-unit standard deviation
  :math:`\sigma_i` and binary hidden units,

  .. math:: E(v, h) = \sum_i \frac{(v_i - b_i)^2}{2\sigma_i^2} - c^\top h
                      - \sum_{ij} \frac{v_i}{\sigma_i} W_{ij} h_j, \qquad
            F(v) = \sum_i \frac{(v_i - b_i)^2}{2\sigma_i^2}
                   - \sum_j \operatorname{softplus}\big(c_j + \textstyle\sum_i (v_i/\sigma_i) W_{ij}\big).

The model distribution is :math:`p(v, h) = e^{-E(v, h)} / Z`; every sampling method takes
``beta`` and then samples the tempered distribution :math:`p_\beta \propto e^{-\beta E}`.

Sampling runs on the fused ops of :mod:`gensample.ops.gibbs` (one seed pair per call from
``generator``, drawn with :func:`gensample.random.draw_seed`): ``sample_hidden`` and
``sample_visible`` are one ``gibbs_half_step`` (or ``gaussian_half_step``), ``gibbs`` on a
Bernoulli RBM is one ``gibbs_sweeps`` call (all ``k`` sweeps in one op, no host sync).
Probabilities, free energies and energies are plain differentiable PyTorch, so the
textbook training loop works unchanged::

    v_model = rbm.gibbs(v_data, k=1)                      # or persistent chains
    loss = (rbm.free_energy(v_data) - rbm.free_energy(v_model)).mean()
    loss.backward(); optimizer.step()                     # the CD-k gradient

Exact normalisation (:meth:`log_partition`) sums the smaller binary layer out analytically
and enumerates the other one, in chunks, with log-sum-exp in float64; it is offered while
the enumerated layer has at most 25 units (:data:`MAX_EXACT_UNITS`). The sampling kernels
compute in float32 (probabilities have 24-bit resolution) and return the caller's dtype.
Larger models estimate :math:`\log Z` by annealed importance sampling,
``log_partition(method="ais" | "reverse_ais", ...)`` (:mod:`gensample.evaluation`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import random as _random

__all__ = ["BernoulliRBM", "GaussianBernoulliRBM", "binary_states", "MAX_EXACT_UNITS"]

MAX_EXACT_UNITS = 25
_CHUNK_ELEMS = 1 << 22  # states x units per enumeration chunk (float64: 32 MB)


def _gibbs_ops():
    from ..ops import gibbs  # imported lazily: the ops module registers custom ops

    return gibbs


def binary_states(n: int, start: int = 0, stop: int | None = None, *, dtype=torch.float64,
                  device=None) -> torch.Tensor:
    """All binary vectors of length ``n`` with index in ``[start, stop)``: ``(stop-start, n)``.

    Row ``s`` is the binary expansion of ``s`` with unit ``i`` = bit ``i`` (least
    significant bit first), so ``states @ 2**arange(n)`` gives the index back.
    """
    stop = (1 << n) if stop is None else stop
    idx = torch.arange(start, stop, dtype=torch.int64, device=device)
    bits = torch.arange(n, dtype=torch.int64, device=device)
    return ((idx[:, None] >> bits) & 1).to(dtype)


def _state_index(v: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`binary_states`: int64 index of each binary row of ``v``."""
    w = 2 ** torch.arange(v.shape[-1], dtype=torch.int64, device=v.device)
    return (v.round().to(torch.int64) * w).sum(-1)


def _chunks(n_states: int, n_units: int):
    step = max(1, _CHUNK_ELEMS // max(1, n_units))
    for s in range(0, n_states, step):
        yield s, min(n_states, s + step)


def _check_beta(beta) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise TypeError(f"beta must be a real number, got {type(beta).__name__}")
    beta = float(beta)
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be finite and > 0, got {beta}")
    return beta


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return k


class _RBMBase(nn.Module):
    """Parameters, shape/dtype/device checks and the parts shared by both models."""

    visible_kind = "binary"

    def __init__(self, n_visible: int, n_hidden: int, *, init_std: float = 0.01, generator=None,
                 dtype=None, device=None, backend: str | None = None):
        super().__init__()
        for name, n in (("n_visible", n_visible), ("n_hidden", n_hidden)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"{name} must be a positive int, got {n!r}")
        self.n_visible = n_visible
        self.n_hidden = n_hidden
        self.backend = backend
        fk = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        w = torch.randn(n_visible, n_hidden, generator=generator, dtype=fk["dtype"]) * init_std
        self.weight = nn.Parameter(w.to(device) if device is not None else w)
        self.visible_bias = nn.Parameter(torch.zeros(n_visible, **fk))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden, **fk))

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"

    # -- checks ------------------------------------------------------------------
    def _check_input(self, name: str, x, n: int, what: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        w = self.weight
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor of dtype {w.dtype} (the model's dtype), got {x.dtype}; "
                            f"convert it with {name}.to({w.dtype})")
        if x.dtype != w.dtype:
            raise TypeError(f"{name} has dtype {x.dtype} but the model's parameters are {w.dtype}; "
                            f"cast one of them (e.g. {name}.to(rbm.weight.dtype))")
        if x.device != w.device:
            raise ValueError(f"{name} is on {x.device} but the model is on {w.device}; put them on one device")
        if x.dim() != 2 or x.shape[1] != n:
            raise ValueError(f"{name} must have shape (batch, {n}) ({what}), got {tuple(x.shape)}")
        return x

    def _v(self, v, name="v"):
        return self._check_input(name, v, self.n_visible, "n_visible units")

    def _h(self, h, name="h"):
        return self._check_input(name, h, self.n_hidden, "n_hidden units")

    # -- shared API ---------------------------------------------------------------
    def log_likelihood(self, v: torch.Tensor, log_z=None) -> torch.Tensor:
        r""":math:`\log p(v) = -F(v) - \log Z` per sample, in float64 (a density for
        the Gaussian-Bernoulli model). ``log_z``: ``None`` (exact :meth:`log_partition`),
        a :meth:`log_partition` result (a float64 tensor, a number, or the
        :class:`~gensample.evaluation.LogZEstimate` of ``method="ais"``/``"reverse_ais"``,
        whose ``log_z`` is used). For the mean with a confidence interval that includes the
        uncertainty of an estimated log Z, see :func:`gensample.evaluation.evaluate_log_likelihood`."""
        v = self._v(v)
        if log_z is None:
            log_z = self.log_partition()
        elif not isinstance(log_z, (torch.Tensor, int, float)) or isinstance(log_z, bool):
            est = getattr(log_z, "log_z", None)
            if not isinstance(est, float):
                raise TypeError(f"log_z must be None, a number, a tensor or a LogZEstimate, got {type(log_z).__name__}")
            log_z = est
        with torch.no_grad():
            return -self._free_energy64(v.to(torch.float64)) - log_z

    def _log_partition_estimate(self, method, *, beta, n_chains, n_betas, schedule, data, init, level, generator,
                                backend):
        from .. import evaluation as _ev

        if beta != 1.0:
            raise ValueError(f"method={method!r} estimates log Z of the model (beta = 1); got beta={beta!r} "
                             "(only method='exact' takes another beta)")
        kw = dict(n_betas=n_betas, schedule=schedule, data=data, level=level, generator=generator,
                  backend=self._backend(backend))
        if method == "ais":
            if init is not None:
                raise ValueError("init= is the start of reverse AIS (method='reverse_ais'); forward AIS starts from "
                                 "the base model")
            return _ev.ais_log_partition(self, n_chains=100 if n_chains is None else n_chains, **kw)
        if method == "reverse_ais":
            return _ev.reverse_ais_log_partition(self, n_chains=n_chains, init=init, **kw)
        raise ValueError(f"method must be 'exact', 'ais' or 'reverse_ais', got {method!r}")

    def sample(self, n: int, k: int = 1000, init: torch.Tensor | None = None, *, beta: float = 1.0,
               generator: torch.Generator | None = None, backend: str | None = None) -> torch.Tensor:
        """``n`` visible samples after ``k`` Gibbs sweeps from ``init`` (default: random
        states, see :meth:`init_chains`). Returns ``(n, n_visible)``."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if init is None:
            init = self.init_chains(n, generator=generator)
        else:
            init = self._v(init, "init")
            if init.shape[0] != n:
                raise ValueError(f"init must have shape ({n}, {self.n_visible}), got {tuple(init.shape)}")
        return self.gibbs(init, k=k, beta=beta, generator=generator, backend=backend)

    def reconstruction_error(self, v: torch.Tensor) -> torch.Tensor:
        r"""Mean-field reconstruction error per sample:
        :math:`\lVert v - \mathbb E[v \mid h = p(h{=}1 \mid v)]\rVert^2` (deterministic)."""
        v = self._v(v)
        with torch.no_grad():
            r = self.prob_visible(self.prob_hidden(v))
            return ((v - r) ** 2).sum(-1)

    def _exact_ok(self, n_enum: int, which: str):
        if n_enum > MAX_EXACT_UNITS:
            raise ValueError(f"exact log_partition enumerates the {which} layer, which has {n_enum} units; "
                             f"at most {MAX_EXACT_UNITS} are supported (2^{n_enum} states)")

    def _backend(self, backend):
        return backend if backend is not None else self.backend

    def fit(self, data, **kwargs):
        """Train with :func:`gensample.train.fit_rbm` (same keyword arguments); returns the trainer."""
        from ..train import fit_rbm

        return fit_rbm(self, data, **kwargs)


class BernoulliRBM(_RBMBase):
    r"""Bernoulli-Bernoulli RBM with :math:`E(v, h) = -b^\top v - c^\top h - v^\top W h`.

    Args:
        n_visible, n_hidden: layer sizes.
        init_std: ``weight`` starts N(0, init_std^2) (Hinton's guide: 0.01); biases zero.
        generator: CPU generator for the initial weights.
        dtype, device: of the parameters (sampling kernels compute in float32).
        backend: default gensample backend of the sampling ops (None: automatic).

    Binary policy: :meth:`gibbs` and :meth:`sample` require 0/1 visible states (a
    ``ValueError`` naming ``v`` otherwise); :meth:`sample_hidden` accepts any real ``v``
    (mean-field inputs), as :func:`gensample.ops.gibbs_half_step` does.
    """

    # -- conditionals ---------------------------------------------------------------
    def prob_hidden(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        r""":math:`p(h_j = 1 \mid v) = \sigma(\beta (c_j + (vW)_j))`, differentiable."""
        v = self._v(v)
        a = torch.addmm(self.hidden_bias, v, self.weight)
        return torch.sigmoid(a if beta == 1.0 else _check_beta(beta) * a)

    def prob_visible(self, h: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        r""":math:`p(v_i = 1 \mid h) = \sigma(\beta (b_i + (h W^\top)_i))`, differentiable."""
        h = self._h(h)
        a = torch.addmm(self.visible_bias, h, self.weight.t())
        return torch.sigmoid(a if beta == 1.0 else _check_beta(beta) * a)

    def sample_hidden(self, v: torch.Tensor, *, beta: float = 1.0, return_prob: bool = False,
                      generator: torch.Generator | None = None, backend: str | None = None):
        """Draw ``h ~ p(h | v)`` with one fused ``gibbs_half_step`` (no autograd)."""
        v = self._v(v)
        return _gibbs_ops().gibbs_half_step(v.detach(), self.weight.detach(), self.hidden_bias.detach(), beta=beta,
                                            transpose=False, return_prob=return_prob, generator=generator,
                                            backend=self._backend(backend))

    def sample_visible(self, h: torch.Tensor, *, beta: float = 1.0, return_prob: bool = False,
                       generator: torch.Generator | None = None, backend: str | None = None):
        """Draw ``v ~ p(v | h)`` with one fused ``gibbs_half_step(transpose=True)``."""
        h = self._h(h)
        return _gibbs_ops().gibbs_half_step(h.detach(), self.weight.detach(), self.visible_bias.detach(), beta=beta,
                                            transpose=True, return_prob=return_prob, generator=generator,
                                            backend=self._backend(backend))

    def gibbs(self, v: torch.Tensor, k: int = 1, *, beta: float = 1.0, return_hidden: bool = False,
              check_binary: bool = True, generator: torch.Generator | None = None, backend: str | None = None):
        """``k`` block-Gibbs sweeps from binary ``v`` in one ``gibbs_sweeps`` call.

        Returns ``v_k``, or ``(v_k, h_k, p(h=1 | v_k))`` with ``return_hidden=True``
        (``h_0`` is drawn from ``v``; sweep ``s`` draws ``v_s`` from ``h_{s-1}`` then ``h_s``).
        ``check_binary=False`` skips the 0/1 check of ``v`` (the first half-step then treats
        ``v`` as mean-field input), e.g. for chains that are known to be binary.
        """
        v = self._v(v)
        k = _check_k(k)
        out = _gibbs_ops().gibbs_sweeps(v.detach(), self.weight.detach(), self.visible_bias.detach(),
                                        self.hidden_bias.detach(), k=k, beta=beta, return_hidden_prob=True,
                                        check_binary=check_binary, generator=generator,
                                        backend=self._backend(backend))
        return out if return_hidden else out[0]

    def init_chains(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` visible states drawn Bernoulli(1/2) from gensample's stream."""
        w = self.weight
        u = _random.uniform(n, self.n_visible, generator=generator, device=w.device)
        return (u < 0.5).to(w.dtype)

    # -- energies -----------------------------------------------------------------------
    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + (vW)_j)` per sample.

        Differentiable; ``softplus`` keeps it finite for large pre-activations.
        """
        v = self._v(v)
        return -(v @ self.visible_bias) - F.softplus(torch.addmm(self.hidden_bias, v, self.weight)).sum(-1)

    def _free_energy64(self, v, beta: float = 1.0):
        W, b, c = (p.detach().to(torch.float64) for p in (self.weight, self.visible_bias, self.hidden_bias))
        return -(v @ b) - F.softplus(beta * torch.addmm(c, v, W)).sum(-1) / beta

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r""":math:`E(v, h) = -b^\top v - c^\top h - v^\top W h` per sample."""
        v, h = self._v(v), self._h(h)
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"v and h must have the same batch size, got {v.shape[0]} and {h.shape[0]}")
        return -(v @ self.visible_bias) - (h @ self.hidden_bias) - ((v @ self.weight) * h).sum(-1)

    # -- exact normalisation -----------------------------------------------------------
    @torch.no_grad()
    def log_partition(self, method: str = "exact", *, beta: float = 1.0, n_chains: int | None = None,
                      n_betas: int = 10000, schedule="sigmoid", data: torch.Tensor | None = None,
                      init: torch.Tensor | None = None, level: float = 0.95,
                      generator: torch.Generator | None = None, backend: str | None = None):
        r""":math:`\log Z_\beta = \log \sum_{v,h} e^{-\beta E(v,h)}`, float64 scalar tensor.

        Enumerates the smaller layer (at most 25 units) in chunks and sums the other one
        analytically; with hidden states enumerated,
        :math:`\log Z = \operatorname{LSE}_h \big[\beta c^\top h + \sum_i \operatorname{softplus}(\beta(b_i + (W h)_i))\big]`.

        ``method="ais"`` / ``"reverse_ais"`` estimate :math:`\log Z` (at ``beta = 1``) by
        forward AIS (a stochastic lower bound) or reverse AIS (an upper bound) and return a
        :class:`~gensample.evaluation.LogZEstimate` with a confidence interval: see
        :func:`gensample.evaluation.ais_log_partition` and
        :func:`~gensample.evaluation.reverse_ais_log_partition` for ``n_chains`` (default 100),
        ``n_betas``, ``schedule``, ``data`` (the base-rate base model), ``init`` (reverse AIS
        starts), ``level``, ``generator`` and ``backend``. ``"exact"`` ignores them.
        """
        if method != "exact":
            return self._log_partition_estimate(method, beta=beta, n_chains=n_chains, n_betas=n_betas,
                                                schedule=schedule, data=data, init=init, level=level,
                                                generator=generator, backend=backend)
        beta = _check_beta(beta)
        W, b, c = (p.detach().to(torch.float64) for p in (self.weight, self.visible_bias, self.hidden_bias))
        if self.n_hidden <= self.n_visible:
            n_enum, bias_e, bias_o, Wm = self.n_hidden, c, b, W.t()
            self._exact_ok(n_enum, "hidden")
        else:
            n_enum, bias_e, bias_o, Wm = self.n_visible, b, c, W
            self._exact_ok(n_enum, "visible")
        parts = []
        for s, e in _chunks(1 << n_enum, max(n_enum, Wm.shape[1])):
            x = binary_states(n_enum, s, e, device=W.device)
            parts.append(torch.logsumexp(beta * (x @ bias_e) + F.softplus(beta * torch.addmm(bias_o, x, Wm)).sum(-1), 0))
        return torch.logsumexp(torch.stack(parts), 0)

    @torch.no_grad()
    def exact_log_probs(self, *, beta: float = 1.0, joint: bool = False) -> torch.Tensor:
        r"""Exact :math:`\log p_\beta(v)` of every visible state (index order of
        :func:`binary_states`), or of every joint state ``(v, h)`` with index
        ``idx(v) + 2^{n_visible} idx(h)`` when ``joint=True``. For tiny models (tests)."""
        beta = _check_beta(beta)
        n = self.n_visible + (self.n_hidden if joint else 0)
        if n > 22:
            raise ValueError(f"exact_log_probs enumerates 2^{n} states; at most 2^22 are supported")
        x = binary_states(n, device=self.weight.device)
        log_z = self.log_partition(beta=beta)
        if joint:
            v, h = x[:, : self.n_visible], x[:, self.n_visible:]
            W, b, c = (p.detach().to(torch.float64) for p in (self.weight, self.visible_bias, self.hidden_bias))
            e = -(v @ b) - (h @ c) - ((v @ W) * h).sum(-1)
            return -beta * e - log_z
        return -beta * self._free_energy64(x, beta) - log_z

    # -- pseudo-likelihood ---------------------------------------------------------------
    @torch.no_grad()
    def pseudo_likelihood(self, v: torch.Tensor, method: str = "exact",
                          generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Log pseudo-likelihood per sample, :math:`\sum_i \log p(v_i \mid v_{-i})`.

        ``"exact"`` sums all ``n_visible`` terms, :math:`\log\sigma(F(\tilde v^{(i)}) - F(v))` with
        :math:`\tilde v^{(i)}` = ``v`` with unit ``i`` flipped (cost ``B n_v n_h``, chunked);
        ``"stochastic"`` is scikit-learn's estimate: ``n_visible`` times the term of one
        random unit per sample (``generator`` picks it).
        """
        v = self._v(v)
        W, b, c = (p.detach() for p in (self.weight, self.visible_bias, self.hidden_bias))
        a = torch.addmm(c, v, W)  # (B, nh)
        sp = F.softplus(a).sum(-1)
        if method == "stochastic":
            i = torch.randint(0, self.n_visible, (v.shape[0],), generator=generator).to(v.device)
            s = 1 - 2 * v.gather(1, i[:, None])[:, 0]  # +1 if v_i = 0 (flip up), -1 if 1
            a_f = a + s[:, None] * W[i]
            dF = -s * b[i] - (F.softplus(a_f).sum(-1) - sp)  # F(v~) - F(v)
            return self.n_visible * F.logsigmoid(dF)
        if method != "exact":
            raise ValueError(f"method must be 'exact' or 'stochastic', got {method!r}")
        out = []
        rows = max(1, _CHUNK_ELEMS // (self.n_visible * self.n_hidden))
        for s0 in range(0, v.shape[0], rows):
            vv, aa, spp = v[s0:s0 + rows], a[s0:s0 + rows], sp[s0:s0 + rows]
            s = 1 - 2 * vv  # (r, nv)
            a_f = aa[:, None, :] + s[:, :, None] * W[None]  # (r, nv, nh)
            dF = -s * b - (F.softplus(a_f).sum(-1) - spp[:, None])
            out.append(F.logsigmoid(dF).sum(-1))
        return torch.cat(out) if out else v.new_zeros(0)


class GaussianBernoulliRBM(_RBMBase):
    r"""Gaussian-Bernoulli RBM (real visible units, binary hidden units).

    .. math:: p(h_j = 1 \mid v) = \sigma\big(\beta (c_j + \textstyle\sum_i (v_i/\sigma_i) W_{ij})\big), \qquad
              p(v_i \mid h) = \mathcal N\big(b_i + \sigma_i (W h)_i,\ \sigma_i^2 / \beta\big).

    ``sigma``: a positive number or a ``(n_visible,)`` tensor. It is stored as
    ``log_sigma``: a parameter when ``learn_sigma`` (trained by :func:`gensample.train.fit_rbm`
    and by the free-energy loss), a buffer otherwise. ``sigma`` is the property
    ``exp(log_sigma)``. Other arguments as for :class:`BernoulliRBM`.
    """

    visible_kind = "gaussian"

    def __init__(self, n_visible: int, n_hidden: int, sigma=1.0, learn_sigma: bool = False, *,
                 init_std: float = 0.01, generator=None, dtype=None, device=None, backend: str | None = None):
        super().__init__(n_visible, n_hidden, init_std=init_std, generator=generator, dtype=dtype,
                         device=device, backend=backend)
        w = self.weight
        s = torch.as_tensor(sigma, dtype=w.dtype).to(w.device)
        if s.dim() == 0:
            s = s.expand(n_visible)
        if tuple(s.shape) != (n_visible,):
            raise ValueError(f"sigma must be a positive number or a ({n_visible},) tensor, got shape {tuple(s.shape)}")
        if not bool(torch.isfinite(s).all()) or not bool((s > 0).all()):
            raise ValueError("sigma must be finite and > 0 everywhere")
        ls = s.log().clone()
        self.learn_sigma = bool(learn_sigma)
        if self.learn_sigma:
            self.log_sigma = nn.Parameter(ls)
        else:
            self.register_buffer("log_sigma", ls)

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    def extra_repr(self) -> str:
        return super().extra_repr() + f", learn_sigma={self.learn_sigma}"

    # -- conditionals ---------------------------------------------------------------
    def prob_hidden(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        r""":math:`p(h_j = 1 \mid v) = \sigma(\beta(c_j + \sum_i (v_i/\sigma_i) W_{ij}))`."""
        v = self._v(v)
        a = torch.addmm(self.hidden_bias, v / self.sigma, self.weight)
        return torch.sigmoid(a if beta == 1.0 else _check_beta(beta) * a)

    def prob_visible(self, h: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        r"""The conditional mean :math:`\mathbb E[v_i \mid h] = b_i + \sigma_i (W h)_i`
        (independent of ``beta``, which only scales the variance)."""
        h = self._h(h)
        if beta != 1.0:
            _check_beta(beta)
        return self.visible_bias + self.sigma * (h @ self.weight.t())

    def sample_hidden(self, v: torch.Tensor, *, beta: float = 1.0, return_prob: bool = False,
                      generator: torch.Generator | None = None, backend: str | None = None):
        """``h ~ p(h | v)``: one fused ``gibbs_half_step`` on ``v / sigma``."""
        v = self._v(v)
        x = (v / self.sigma).detach()
        return _gibbs_ops().gibbs_half_step(x, self.weight.detach(), self.hidden_bias.detach(), beta=beta,
                                            transpose=False, return_prob=return_prob, generator=generator,
                                            backend=self._backend(backend))

    def sample_visible(self, h: torch.Tensor, *, beta: float = 1.0, return_mean: bool = False,
                       generator: torch.Generator | None = None, backend: str | None = None):
        """``v ~ N(b + sigma (W h), sigma^2 / beta)``: one fused ``gaussian_half_step``."""
        h = self._h(h)
        return _gibbs_ops().gaussian_half_step(h.detach(), self.weight.detach(), self.visible_bias.detach(),
                                               sigma=self.sigma.detach(), beta=beta, return_mean=return_mean,
                                               generator=generator, backend=self._backend(backend))

    def gibbs(self, v: torch.Tensor, k: int = 1, *, beta: float = 1.0, return_hidden: bool = False,
              generator: torch.Generator | None = None, backend: str | None = None):
        """``k`` block-Gibbs sweeps, a loop of fused half-steps (same chain layout as
        ``gibbs_sweeps``: ``h_0 ~ p(h|v)``, then ``v_s ~ p(v|h_{s-1})``, ``h_s ~ p(h|v_s)``).
        Returns ``v_k`` or ``(v_k, h_k, p(h=1 | v_k))``."""
        v = self._v(v).detach()
        k = _check_k(k)
        beta = _check_beta(beta)
        ops, be = _gibbs_ops(), self._backend(backend)
        W, b, c = self.weight.detach(), self.visible_bias.detach(), self.hidden_bias.detach()
        sigma = self.sigma.detach()
        h, ph = ops.gibbs_half_step(v / sigma, W, c, beta=beta, return_prob=True, generator=generator, backend=be)
        for _ in range(k):
            v = ops.gaussian_half_step(h, W, b, sigma=sigma, beta=beta, generator=generator, backend=be)
            h, ph = ops.gibbs_half_step(v / sigma, W, c, beta=beta, return_prob=True, generator=generator,
                                        backend=be)
        return (v, h, ph) if return_hidden else v

    def init_chains(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` visible states drawn from ``N(b, sigma^2)`` (gensample's stream)."""
        eps = _random.normal(n, self.n_visible, generator=generator, device=self.weight.device)
        return (self.visible_bias.detach() + self.sigma.detach() * eps.to(self.weight.dtype))

    # -- energies -----------------------------------------------------------------------
    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`F(v) = \sum_i (v_i - b_i)^2 / (2\sigma_i^2) - \sum_j \operatorname{softplus}(c_j + \sum_i (v_i/\sigma_i) W_{ij})`."""
        v = self._v(v)
        sigma = self.sigma
        quad = (((v - self.visible_bias) / sigma) ** 2).sum(-1) * 0.5
        return quad - F.softplus(torch.addmm(self.hidden_bias, v / sigma, self.weight)).sum(-1)

    def _free_energy64(self, v, beta: float = 1.0):
        W, b, c, ls = (p.detach().to(torch.float64) for p in (self.weight, self.visible_bias, self.hidden_bias,
                                                              self.log_sigma))
        sigma = ls.exp()
        quad = (((v - b) / sigma) ** 2).sum(-1) * 0.5
        return quad - F.softplus(beta * torch.addmm(c, v / sigma, W)).sum(-1) / beta

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r""":math:`E(v, h) = \sum_i (v_i - b_i)^2/(2\sigma_i^2) - c^\top h - \sum_{ij} (v_i/\sigma_i) W_{ij} h_j`."""
        v, h = self._v(v), self._h(h)
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"v and h must have the same batch size, got {v.shape[0]} and {h.shape[0]}")
        sigma = self.sigma
        quad = (((v - self.visible_bias) / sigma) ** 2).sum(-1) * 0.5
        return quad - (h @ self.hidden_bias) - (((v / sigma) @ self.weight) * h).sum(-1)

    # -- exact normalisation -----------------------------------------------------------
    @torch.no_grad()
    def log_partition(self, method: str = "exact", *, beta: float = 1.0, n_chains: int | None = None,
                      n_betas: int = 10000, schedule="sigmoid", data: torch.Tensor | None = None,
                      init: torch.Tensor | None = None, level: float = 0.95,
                      generator: torch.Generator | None = None, backend: str | None = None):
        r""":math:`\log Z_\beta`, float64 scalar: the hidden layer (at most 25 units) is
        enumerated and the Gaussian integral over ``v`` is analytic. With :math:`a = W h`,

        .. math:: \log Z_\beta = \operatorname{LSE}_h\Big[\beta\big(c^\top h + \sum_i (b_i a_i/\sigma_i
                  + a_i^2/2)\big)\Big] + \sum_i \log\big(\sigma_i\sqrt{2\pi/\beta}\big).

        ``method="ais"`` / ``"reverse_ais"`` estimate :math:`\log Z` (at ``beta = 1``) by
        forward AIS (a stochastic lower bound) or reverse AIS (an upper bound) and return a
        :class:`~gensample.evaluation.LogZEstimate` with a confidence interval: see
        :func:`gensample.evaluation.ais_log_partition` and
        :func:`~gensample.evaluation.reverse_ais_log_partition` for ``n_chains`` (default 100),
        ``n_betas``, ``schedule``, ``init`` (reverse AIS
        starts), ``level``, ``generator`` and ``backend``. ``"exact"`` ignores them.
        (The AIS base is the Gaussian :math:`\mathcal N(b, \sigma^2)`; ``data`` is not used.)
        """
        if method != "exact":
            return self._log_partition_estimate(method, beta=beta, n_chains=n_chains, n_betas=n_betas,
                                                schedule=schedule, data=data, init=init, level=level,
                                                generator=generator, backend=backend)
        beta = _check_beta(beta)
        self._exact_ok(self.n_hidden, "hidden")
        W, b, c, ls = (p.detach().to(torch.float64) for p in (self.weight, self.visible_bias, self.hidden_bias,
                                                              self.log_sigma))
        sigma = ls.exp()
        parts = []
        for s, e in _chunks(1 << self.n_hidden, max(self.n_hidden, self.n_visible)):
            h = binary_states(self.n_hidden, s, e, device=W.device)
            a = h @ W.t()
            parts.append(torch.logsumexp(beta * (h @ c + (a * (b / sigma) + 0.5 * a * a).sum(-1)), 0))
        const = (ls + 0.5 * math.log(2 * math.pi / beta)).sum()
        return torch.logsumexp(torch.stack(parts), 0) + const

    @torch.no_grad()
    def exact_moments(self, *, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Exact mean ``(n_visible,)`` and covariance ``(n_visible, n_visible)`` of ``v`` under
        :math:`p_\beta`: a mixture over the :math:`2^{n_h}` hidden states of Gaussians
        :math:`\mathcal N(b + \sigma \odot W h, \operatorname{diag}(\sigma^2)/\beta)`. float64."""
        beta = _check_beta(beta)
        if self.n_hidden > 20:
            raise ValueError(f"exact_moments enumerates 2^{self.n_hidden} hidden states; at most 2^20 are supported")
        W, b, c, ls = (p.detach().to(torch.float64) for p in (self.weight, self.visible_bias, self.hidden_bias,
                                                              self.log_sigma))
        sigma = ls.exp()
        h = binary_states(self.n_hidden, device=W.device)
        a = h @ W.t()
        logw = beta * (h @ c + (a * (b / sigma) + 0.5 * a * a).sum(-1))
        w = torch.softmax(logw, 0)
        m = b + sigma * a  # (S, nv)
        mean = w @ m
        d = m - mean
        cov = (d * w[:, None]).t() @ d + torch.diag(sigma ** 2 / beta)
        return mean, cov

    def pseudo_likelihood(self, v, method: str = "exact", generator=None):
        raise NotImplementedError("pseudo_likelihood is defined for binary visible units (BernoulliRBM); "
                                  "for a GaussianBernoulliRBM use log_likelihood (exact) or reconstruction_error")
