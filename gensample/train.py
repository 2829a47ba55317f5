r"""Training restricted Boltzmann machines: CD-k and persistent CD (PCD-k).

:func:`fit_rbm` (also ``rbm.fit(data, ...)``) trains a :class:`gensample.BernoulliRBM` or
:class:`gensample.GaussianBernoulliRBM` by stochastic gradient ascent on the
log-likelihood, with the negative phase estimated by ``k`` block-Gibbs sweeps (one fused
``gibbs_sweeps`` call per mini-batch for Bernoulli RBMs):

.. math::

    \nabla_W \log p = \mathbb E_{\text{data}}\big[v\, p(h{=}1 \mid v)^\top\big]
                    - \mathbb E_{\text{model}}\big[v\, p(h{=}1 \mid v)^\top\big],

(and likewise :math:`v - \langle v\rangle` for ``visible_bias``, :math:`p(h \mid v)` for
``hidden_bias``; Gaussian visible units use :math:`v/\sigma`), both phases Rao-Blackwellised
over ``h``. Both expectations come out of **one GEMM**: the rows ``[v_data; v_model]``
against ``[p_h(v_data)/B; -p_h(v_model)/M | w]`` where the extra column ``w`` (``1/B`` and
``-1/M``) yields the visible-bias gradient in the same product.

* ``method="cd"``: the chains restart at the data batch every step (CD-k).
* ``method="pcd"``: ``n_chains`` persistent chains (default ``batch_size``), started from
  :meth:`init_chains` noise and kept in the :class:`RBMTrainer`.
* ``sampler="pt"`` (with ``method="pcd"``): PT-PCD (Desjardins et al. 2010). The persistent
  chains are the :math:`\beta = 1` rows of a :class:`gensample.samplers.ParallelTempering`
  with ``n_replicas`` temperatures (``ladder``, ``beta_min``, ``target_accept``; an
  ``"adaptive"`` ladder adapts at every update with a decaying gain); each update runs one
  PT round (``k`` tempered sweeps of all ``n_replicas * n_chains`` rows in one op, then one
  even/odd exchange) and takes the negative phase from the rows at :math:`\beta = 1`
  (their :math:`p(h \mid v)` comes with the sweep, no extra GEMM).

Update (classical momentum, weight decay on ``weight`` only, as in Hinton's guide):
``vel = momentum * vel + lr * (grad - weight_decay * W)``, ``param += vel``.

Reproducibility: every random draw (mini-batch order, initial chains, the seed of each
Gibbs call) comes from the trainer's ``generator`` (a CPU :class:`torch.Generator`).
:meth:`RBMTrainer.state_dict` holds the model's parameters, the persistent chains, the
momentum buffers, the generator state and the epoch/step counters (and, for PT-PCD, the whole
tempering state: walkers, ladder, seed pair, counters), so a run resumed from
a checkpoint continues bit for bit as if it had not stopped (tensor data; a DataLoader
must bring its own reproducible sampler).

Per-epoch metrics (on ``eval_data`` when given, else the training tensor, else the
first 1024 rows seen in the epoch): ``reconstruction_error`` (mean-field, per sample),
``pseudo_likelihood`` (Bernoulli only: exact when cheap, else scikit-learn's one-unit
estimate with a metric-only generator, so metrics never disturb the training stream) and
``log_likelihood`` (exact, when the enumerated layer has at most ``exact_max_units``
units; ``log_partition`` is recorded with it).
"""
from __future__ import annotations

import math
import time
from typing import Iterable

import torch

from ._checks import check_int as _check_int
from ._checks import check_real as _check_real

__all__ = ["RBMTrainer", "fit_rbm", "rbm_gradients"]

METRICS = ("reconstruction_error", "pseudo_likelihood", "log_likelihood")
_METHODS = ("pcd", "cd")
_SAMPLERS = ("gibbs", "pt")


def _param_names(model) -> list[str]:
    names = ["weight", "visible_bias", "hidden_bias"]
    if getattr(model, "learn_sigma", False):
        names.append("log_sigma")
    return names


@torch.no_grad()
def rbm_gradients(model, v_data: torch.Tensor, v_model: torch.Tensor, ph_model: torch.Tensor | None = None,
                  ph_data: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    r"""Log-likelihood *ascent* directions from a data batch and negative samples.

    ``ph_model`` / ``ph_data`` default to ``model.prob_hidden`` of the samples. Returns
    ``{"weight", "visible_bias", "hidden_bias"[, "log_sigma"]}``; these are exactly
    ``-grad`` of the textbook loss ``(F(v_data) - F(v_model)).mean()`` (tested).

    One GEMM gives the weight and visible-bias statistics of both phases::

        X = [x_data; x_model]                     (B + M, n_v)   x = v (or v / sigma)
        Y = [p_h_data / B, 1/B; -p_h_model / M, -1/M]  (B + M, n_h + 1)
        X^T Y = [dW | d(visible)]                 (n_v, n_h + 1)
    """
    B, M = v_data.shape[0], v_model.shape[0]
    if ph_data is None:
        ph_data = model.prob_hidden(v_data)
    if ph_model is None:
        ph_model = model.prob_hidden(v_model)
    dt = v_data.dtype
    gaussian = getattr(model, "visible_kind", "binary") == "gaussian"
    X = torch.cat([v_data, v_model])
    if gaussian:
        sigma = model.sigma.detach()
        X = X / sigma
    w = torch.cat([torch.full((B, 1), 1.0 / B, dtype=dt, device=X.device),
                   torch.full((M, 1), -1.0 / M, dtype=dt, device=X.device)])
    P = torch.cat([ph_data, ph_model])
    Y = torch.cat([P * w, w], 1)
    G = X.t() @ Y
    nh = P.shape[1]
    out = {"weight": G[:, :nh], "visible_bias": G[:, nh].clone(), "hidden_bias": Y[:, :nh].sum(0)}
    if gaussian:
        out["visible_bias"] = out["visible_bias"] / sigma
        if getattr(model, "learn_sigma", False):
            # -dE/dlog(sigma_i) = (v_i - b_i)^2 / sigma_i^2 - (v_i / sigma_i) (W p_h)_i
            R = (torch.cat([v_data, v_model]) - model.visible_bias.detach()) / sigma
            g = R * R - X * (P @ model.weight.detach().t())
            out["log_sigma"] = (g * w).sum(0)
    return out


class RBMTrainer:
    """Holds the optimisation state of (P)CD training: persistent chains, momentum
    buffers, the generator and counters. See :mod:`gensample.train` and :func:`fit_rbm`."""

    def __init__(self, model, *, batch_size: int, lr: float, k: int = 1, method: str = "pcd",
                 momentum: float = 0.0, weight_decay: float = 0.0, n_chains: int | None = None,
                 generator: torch.Generator | None = None, backend: str | None = None,
                 exact_max_units: int = 20, sampler: str = "gibbs", n_replicas: int = 8,
                 ladder: str = "geometric", beta_min: float = 0.1, target_accept: float = 0.3):
        self.model = model
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.lr = _check_real("lr", lr, positive=True)
        self.k = _check_int("k", k, 0)
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        self.method = method
        self.momentum = _check_real("momentum", momentum, nonneg=True)
        self.weight_decay = _check_real("weight_decay", weight_decay, nonneg=True)
        self.n_chains = _check_int("n_chains", n_chains if n_chains is not None else batch_size, 1)
        if generator is None:  # reproducible under torch.manual_seed
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise TypeError("generator must be a CPU torch.Generator (it drives batch order and Gibbs seeds)")
        self.generator = generator
        self.backend = backend
        self.exact_max_units = exact_max_units
        if sampler not in _SAMPLERS:
            raise ValueError(f"sampler must be one of {_SAMPLERS}, got {sampler!r}")
        self.sampler = sampler
        self.pt = None
        self.pt_options = {"n_replicas": n_replicas, "ladder": ladder, "beta_min": beta_min,
                           "target_accept": target_accept}
        if sampler == "pt":
            if method != "pcd":
                raise ValueError("sampler='pt' (PT-PCD) needs method='pcd': the tempered chains are persistent")
            if self.k < 1:
                raise ValueError("sampler='pt' needs k >= 1 (tempered sweeps per round)")
            self.pt = self._make_pt()
        self.chains: torch.Tensor | None = None
        self.velocity = {n: torch.zeros_like(getattr(model, n)) for n in _param_names(model)}
        self.epoch = 0
        self.steps = 0
        self.history: list[dict] = []

    def _make_pt(self):
        from .samplers.tempering import ParallelTempering

        o = self.pt_options
        return ParallelTempering(self.model, o["n_replicas"], n_chains=self.n_chains, ladder=o["ladder"],
                                 beta_min=o["beta_min"], target_accept=o["target_accept"], swap_every=self.k,
                                 generator=self.generator, backend=self.backend)

    # -- one update ---------------------------------------------------------------------
    @torch.no_grad()
    def step(self, v: torch.Tensor) -> None:
        """One (P)CD-k (or PT-PCD) update from the data batch ``v``."""
        model = self.model
        v = model._v(v)
        if self.sampler == "pt":
            v_model, ph_model = self.pt.negative_phase(adapt=self.pt.ladder == "adaptive")
            self.chains = v_model
            self._update(v, v_model, ph_model)
            return
        if self.method == "pcd":
            if self.chains is None:
                self.chains = model.init_chains(self.n_chains, generator=self.generator)
            start = self.chains
        else:
            start = v
        kw = {}
        if self.method == "pcd" and model.visible_kind == "binary":
            kw["check_binary"] = False  # the persistent chains are sampler output: binary by construction
        v_model, _, ph_model = model.gibbs(start, k=self.k, return_hidden=True, generator=self.generator,
                                           backend=self.backend, **kw)
        if self.method == "pcd":
            self.chains = v_model
        self._update(v, v_model, ph_model)

    def _update(self, v, v_model, ph_model) -> None:
        model = self.model
        grads = rbm_gradients(model, v, v_model, ph_model=ph_model)
        for name, g in grads.items():
            p = getattr(model, name)
            if name == "weight" and self.weight_decay:
                g = g - self.weight_decay * p
            vel = self.velocity[name]
            vel.mul_(self.momentum).add_(g, alpha=self.lr)
            p.add_(vel)
        self.steps += 1

    # -- epochs -----------------------------------------------------------------------------
    def _batches(self, data) -> Iterable[torch.Tensor]:
        if isinstance(data, torch.Tensor):
            n = data.shape[0]
            perm = torch.randperm(n, generator=self.generator).to(data.device)
            for s in range(0, n, self.batch_size):
                yield data[perm[s:s + self.batch_size]]
        else:
            for b in data:
                yield b[0] if isinstance(b, (tuple, list)) else b

    def train_epoch(self, data, progress: bool = True, metrics=METRICS, eval_data=None) -> dict:
        """One pass over ``data``; returns (and appends to ``history``) the epoch's metrics."""
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        total = math.ceil(data.shape[0] / self.batch_size) if isinstance(data, torch.Tensor) else (
            len(data) if hasattr(data, "__len__") else None)
        seen, n_seen = [], 0
        bar = tqdm(self._batches(data), total=total, desc=f"epoch {self.epoch + 1}", disable=not progress,
                   leave=False)
        for v in bar:
            v = v.to(device=self.model.weight.device, dtype=self.model.weight.dtype)
            if eval_data is None and not isinstance(data, torch.Tensor) and n_seen < 1024:
                seen.append(v)
                n_seen += v.shape[0]
            self.step(v)
        self.epoch += 1
        rec = {"epoch": self.epoch, "steps": self.steps, "train_s": time.perf_counter() - t0}
        ev = eval_data if eval_data is not None else (data if isinstance(data, torch.Tensor) else
                                                       (torch.cat(seen)[:1024] if seen else None))
        if ev is not None:
            rec.update(self.evaluate(ev, metrics))
        bar.close()
        if progress:
            shown = {k: round(v, 4) for k, v in rec.items() if k in METRICS}
            tqdm.write(f"epoch {self.epoch}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
        self.history.append(rec)
        return rec

    @torch.no_grad()
    def evaluate(self, data: torch.Tensor, metrics=METRICS) -> dict:
        """Metrics on ``data`` (means per sample); exact ones only where computable."""
        model = self.model
        data = data.to(device=model.weight.device, dtype=model.weight.dtype)
        out = {}
        for m in metrics:
            if m not in METRICS:
                raise ValueError(f"unknown metric {m!r}; choose from {METRICS}")
        if "reconstruction_error" in metrics:
            out["reconstruction_error"] = float(model.reconstruction_error(data).mean())
        if "pseudo_likelihood" in metrics and model.visible_kind == "binary":
            cheap = data.shape[0] * model.n_visible * model.n_hidden <= (1 << 26)
            g = torch.Generator().manual_seed(self.epoch)  # metric-only stream
            pl = model.pseudo_likelihood(data, method="exact" if cheap else "stochastic", generator=g)
            out["pseudo_likelihood"] = float(pl.mean())
        if "log_likelihood" in metrics:
            n_enum = model.n_hidden if model.visible_kind == "gaussian" else min(model.n_visible, model.n_hidden)
            if n_enum <= self.exact_max_units:
                log_z = model.log_partition()
                out["log_partition"] = float(log_z)
                out["log_likelihood"] = float(model.log_likelihood(data, log_z=log_z).mean())
        return out

    def fit(self, data, epochs: int, *, progress: bool = True, metrics=METRICS, eval_data=None) -> "RBMTrainer":
        """``epochs`` more epochs over ``data`` (a tensor ``(N, n_visible)`` or an iterable of
        batches, e.g. a DataLoader yielding tensors or ``(x, y)`` pairs)."""
        _check_int("epochs", epochs, 0)
        if isinstance(data, torch.Tensor):
            self.model._v(data.to(dtype=self.model.weight.dtype, device=self.model.weight.device), "data")
        for _ in range(epochs):
            self.train_epoch(data, progress=progress, metrics=metrics, eval_data=eval_data)
        return self

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs, the model's parameters included."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "chains": None if self.chains is None else self.chains.clone(),
            "velocity": {k: v.clone() for k, v in self.velocity.items()},
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "steps": self.steps,
            "history": [dict(h) for h in self.history],
            "hyper": {"batch_size": self.batch_size, "lr": self.lr, "k": self.k, "method": self.method,
                      "momentum": self.momentum, "weight_decay": self.weight_decay, "n_chains": self.n_chains,
                      "sampler": self.sampler, **({"pt": dict(self.pt_options)} if self.sampler == "pt" else {})},
            "pt": None if self.pt is None else self.pt.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (into this trainer and its model)."""
        pt = state.get("pt")
        if (pt is not None) != (self.sampler == "pt"):
            raise ValueError(f"checkpoint was written with sampler={'pt' if pt is not None else 'gibbs'!r} but this "
                             f"trainer uses sampler={self.sampler!r}; build the trainer with the same sampler")
        self.model.load_state_dict(state["model"])
        dev = self.model.weight.device
        self.chains = None if state["chains"] is None else state["chains"].to(dev).clone()
        for k, v in state["velocity"].items():
            if k not in self.velocity:
                raise ValueError(f"checkpoint has momentum for {k!r}, which this model does not train")
            self.velocity[k] = v.to(dev).clone()
        if pt is not None:
            self.pt.load_state_dict(pt)
        self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self.steps = int(state["steps"])
        self.history = [dict(h) for h in state.get("history", [])]


def fit_rbm(model, data, *, epochs: int, batch_size: int, lr: float, k: int = 1, method: str = "pcd",
            momentum: float = 0.0, weight_decay: float = 0.0, n_chains: int | None = None,
            generator: torch.Generator | None = None, progress: bool = True, metrics=METRICS,
            eval_data: torch.Tensor | None = None, backend: str | None = None,
            trainer: RBMTrainer | None = None, sampler: str = "gibbs", n_replicas: int = 8,
            ladder: str = "geometric", beta_min: float = 0.1, target_accept: float = 0.3) -> RBMTrainer:
    """Train ``model`` with CD-k (``method="cd"``), PCD-k (``"pcd"``) or PT-PCD (``sampler="pt"``);
    see :mod:`gensample.train`.

    Args:
        model: a ``BernoulliRBM`` or ``GaussianBernoulliRBM``.
        data: ``(N, n_visible)`` tensor (shuffled every epoch from ``generator``) or an
            iterable of batches (DataLoader; tensors or ``(x, ...)`` tuples).
        epochs, batch_size, lr, k, momentum, weight_decay: as usual (``k`` sweeps per step;
            weight decay on ``weight`` only).
        n_chains: persistent chains for PCD (default ``batch_size``).
        generator: CPU generator for everything random (default: seeded from the global one).
        progress: tqdm progress bar and one line of metrics per epoch.
        metrics: any of ``("reconstruction_error", "pseudo_likelihood", "log_likelihood")``.
        eval_data: data the metrics are computed on (e.g. a test set).
        backend: gensample backend of the Gibbs ops (default: automatic).
        sampler: ``"gibbs"`` (default) or ``"pt"``: PT-PCD, the persistent chains are the
            :math:`\beta = 1` rows of a parallel-tempering sampler with ``n_replicas``
            temperatures (``ladder`` ``"geometric"`` | ``"linear"`` | ``"adaptive"``,
            hottest ``beta_min``, adaptive ``target_accept``); ``k`` is then the number of
            tempered sweeps per round. Needs ``method="pcd"``.
        trainer: continue with this trainer (e.g. after ``load_state_dict``); the other
            hyperparameters are then ignored.

    Returns the :class:`RBMTrainer`; ``trainer.history`` has one dict per epoch.
    """
    if trainer is None:
        trainer = RBMTrainer(model, batch_size=batch_size, lr=lr, k=k, method=method, momentum=momentum,
                             weight_decay=weight_decay, n_chains=n_chains, generator=generator, backend=backend,
                             sampler=sampler, n_replicas=n_replicas, ladder=ladder, beta_min=beta_min,
                             target_accept=target_accept)
    elif trainer.model is not model:
        raise ValueError("trainer was built for another model")
    return trainer.fit(data, epochs, progress=progress, metrics=metrics, eval_data=eval_data)
