#!/usr/bin/env python
"""Effective samples per second: gensample's samplers against the eager textbook ones.

    python benchmarks/bench_ess.py [--device cpu|cuda] [--quick] [--json PATH|auto]
                                   [--cases gibbs-64x32,pt-bimodal,...] [--render FILE.json]

A sampler's real throughput is not steps per second but effective (independent) samples
per second. For every case, each implementation runs ``C`` chains for ``burn`` untimed
steps, then for ``N`` draws of ``thin`` steps each; the draws are recorded on the device
(into a preallocated buffer, inside the timed region: recording is part of sampling) and
diagnosed afterwards with ``gensample.diagnostics.summary`` (rank-normalized split bulk
ESS, tail ESS at the 5%/95% quantiles, rank R-hat; Vehtari et al. 2021, ArviZ's numbers).

Cases (``--cases``; ``--quick`` shrinks C, N and the models; ``--chains``/``--draws`` override):

* ``gibbs-64x32``: a Bernoulli RBM trained on scikit-learn's bundled digits (binarized at
  8/16; PCD-1, 20 epochs, a second or two on the cpu backend), block Gibbs, C = 128 chains,
  N = 2000 draws of one sweep each. Statistics: the free energy F(v) (scalar) and the 64
  visible units (their bulk ESS min / median over units).
* ``gibbs-64x32-thin10``: the same model, 400 draws of 10 sweeps each (one fused
  ``gibbs_sweeps(k=10)`` call per draw against 10 eager sweeps).
* ``gibbs-784x500``: a 784x500 Bernoulli RBM with random weights N(0, 0.1^2) and biases
  N(0, 0.1^2) (bench_gibbs's model; MNIST-sized, no data set here), C = 64, N = 1000, one
  sweep per draw; F(v) and every 8th visible unit (at most 100 units are diagnosed).
* ``pt-bimodal``: a flip-symmetric bimodal RBM 64x16 (b = -W 1/2, c = -W^T 1/2 give
  E(v, h) = -s^T W t / 4 in spins s = 2v-1, t = 2h-1; W = 0.3 (1 + 0.25 N(0, 1)): two modes,
  all-on and all-off, each of probability exactly 1/2), C = 64 chains started half all-on,
  half all-off. Single-temperature Gibbs (beta = 1, one sweep per draw) against parallel
  tempering with 8 replicas on a geometric ladder from 1 to 0.15 (one round = one sweep of
  every replica + one swap move per draw): gensample.samplers.ParallelTempering and the
  textbook gensample.reference.rbm_parallel_tempering_textbook (each row only when it
  exists). Statistic: the magnetization m(v) = mean_i v_i; also the mode occupancy
  P(m > 1/2) (exact: 1/2), the chains that never left their starting mode, swap rates.
* ``ula-gauss100``, ``mala-gauss100``: ULA (h = 0.12) / MALA (h = 0.05, acceptance ~0.7) on
  gensample.targets.Gaussian.correlated (dim 100, AR(1) correlation rho = 0.5, scales from
  0.5 to 1: condition number ~ 36).
* ``ula-mix100``, ``mala-mix100``: ULA h = 0.25 / MALA h = 0.2 on a 2-component gensample.targets.GaussianMixture
  in dim 100 (identity covariances, means -+ 1.25 (1, ..., 1)/sqrt(100): two overlapping modes).
  Langevin cases: C = 128, N = 800 draws of 5 steps; statistics: the 100 coordinates.
  Energies and gradients by autograd through the target's ``energy`` (float32), the same
  for every implementation.

Implementations:

* ``textbook (eager)``: what PyTorch users write. RBM: gensample.reference.rbm_gibbs_textbook
  with ``(rand_like(p) < p)`` Bernoulli draws (the fastest eager form; bench_gibbs times the
  others); ULA: ``x - h grad + sqrt(2h) randn_like(x)`` with the gradient from
  ``torch.autograd.grad``; MALA: the same proposal, energies and gradients cached, the log
  accept ratio with the Langevin proposal densities, ``torch.rand`` + ``torch.where``; PT: the
  reference's Python loop over temperatures (``thin`` rounds per call).
* ``gensample[<backend>]``: RBM: ``gensample.ops.gibbs_sweeps(v, ..., k=thin,
  check_binary=False)`` per draw; PT: ``ParallelTempering(...).sample(n, thin=thin)`` per
  chunk; ULA/MALA ``step kernels``: ``gensample.samplers.ula_step`` / ``mala_step`` (a
  state with cached energy and gradient), and ``LangevinSampler``:
  ``LangevinSampler(target, n_steps=thin).sample(x)`` once per draw (MALA then evaluates
  E and grad E once more per call). Every backend that runs on the device except the
  pure-torch spec (triton is skipped on CPU: interpreter); PT falls back to the torch spec,
  with a note, when no compiled tempered kernels exist.

Timing: the ``N`` draws are produced in ``--chunks`` chunks; the implementations of a case
take turns chunk by chunk (rotating the order), so a slow phase of the machine hits all of
them alike. steps/s = thin * draws / time per chunk (median over chunks, p20/p80 beside it);
the time behind ESS/s is N / (median draws per second); the plain total is also recorded.
ESS/s = ESS (over all C chains) / that time; ``x ref`` = this ESS/s over the reference's
(the textbook; for PT the textbook PT). ESS per draw = ESS / (C N): implementations of one
sampler sample the same distribution, so they should agree up to the estimator's noise (a
check that the fused kernels do not mix worse).

``--json auto`` writes benchmarks/results/ess-<device>-<model-slug>.json and .md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import common  # noqa: E402  (stdlib only; torch is imported after early_env)

TEXTBOOK = "textbook (eager)"
TEXTBOOK_VARIANT = "rand_compare"  # (rand_like(p) < p): the fastest eager Bernoulli (see bench_gibbs)
PT_W0, PT_W0_QUICK = 0.3, 0.6  # bimodal RBM coupling scale
PT_REPLICAS, PT_REPLICAS_QUICK = 8, 6
PT_BETA_MIN = 0.15
DIGITS_EPOCHS = {False: 20, True: 2}
DIAG_BLOCK = 1 << 21  # elements per diagnostics call
MAX_UNITS = 100  # the "units" statistic uses at most this many visible units (evenly spaced)
RHAT_OK = 1.1  # above this (the classic Gelman-Rubin cut) the chains clearly have not mixed: their ESS means nothing
ALL_CASES = ("gibbs-64x32", "gibbs-64x32-thin10", "gibbs-784x500", "pt-bimodal", "ula-gauss100", "mala-gauss100",
             "ula-mix100", "mala-mix100")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="tiny cases (smoke test, about 20 s)")
    ap.add_argument("--json", default=None, help="results path; 'auto' = benchmarks/results/ess-<device>-<model>.json")
    ap.add_argument("--render", default=None, help="only re-render this results JSON and exit")
    ap.add_argument("--cases", default=",".join(ALL_CASES), help="comma list of " + ", ".join(ALL_CASES))
    ap.add_argument("--chains", type=int, default=None, help="override C for every case")
    ap.add_argument("--draws", type=int, default=None, help="override N for every case")
    ap.add_argument("--chunks", type=int, default=None, help="timing chunks per implementation (default 8, quick 3)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    a.chunks = a.chunks or (3 if a.quick else 8)
    a.case_list = [c.strip() for c in a.cases.split(",") if c.strip()]
    bad = [c for c in a.case_list if c not in ALL_CASES]
    if bad:
        ap.error(f"unknown case(s) {bad}; choose from {', '.join(ALL_CASES)}")
    return a


# ---------------------------------------------------------------------------
# rendering (stdlib only: works from the JSON alone)
# ---------------------------------------------------------------------------


def _fx(x):
    return "-" if x is None else f"{x:.2f}x"


def _fnum(x):
    return common.fmt_num(x) if x is not None else "-"


def _ratio(a, b):
    return a / b if (a is not None and b) else None


def render_ess(results) -> str:
    from common import md_table

    out = []
    groups = common.group_records(results, "ess", lambda r: r["case"])
    for case, recs in groups.items():
        ref = recs[0].get("reference_impl", TEXTBOOK)
        tb = next((r for r in recs if r["impl"] == ref and "error" not in r), None)
        first = recs[0]
        stats = list(first.get("stats", {}).keys()) or ["-"]
        head = ["impl", "steps/s", "p20 to p80", "wall s"]
        for s in stats:
            head += [f"{s}: bulk ESS/s (min)", "x ref", "bulk ESS/draw min / med", "tail ESS/draw min",
                     "R-hat max"]
        rows = []
        for r in recs:
            if "error" in r:
                rows.append([r["impl"], "error: " + str(r["error"])[:90]] + ["-"] * (len(head) - 2))
                continue
            row = [r["impl"], _fnum(r["steps_per_s"]),
                   f"{_fnum(r['steps_per_s_p20'])} to {_fnum(r['steps_per_s_p80'])}", _fnum(r["sampling_wall_s"])]
            for s in stats:
                st = r["stats"].get(s)
                if st is None:
                    row += ["-"] * 5
                    continue
                tbs = tb["stats"].get(s) if tb else None
                mixed = st["rhat_max"] is not None and st["rhat_max"] <= RHAT_OK
                row += [_fnum(st["ess_bulk_min_per_s"]) + ("" if mixed else " (not mixed)"),
                        _fx(_ratio(st["ess_bulk_min_per_s"], tbs["ess_bulk_min_per_s"] if tbs else None)),
                        f"{_fnum(st['ess_bulk_min_per_draw'])} / {_fnum(st['ess_bulk_median_per_draw'])}",
                        _fnum(st["ess_tail_min_per_draw"]), _fnum(st["rhat_max"])]
            rows.append(row)
        c = first
        desc = (f"### {case}: {c['description']}\n\n{c['chains']} chains x {c['draws']} draws "
                f"(thin {c['thin']} {c['step_unit']} per draw, burn-in {c['burn']} {c['step_unit']}); "
                f"steps/s counts {c['step_unit']}. ref (`x ref` = ESS/s over ref's): {ref}.")
        extra = []
        for r in recs:
            for k, v in (r.get("extra") or {}).items():
                extra.append(f"- {r['impl']}: {k} = {v}")
        cmp_lines = []
        if tb:
            for r in recs:
                if r is tb or "error" in r:
                    continue
                for s in stats:
                    a, b = r["stats"].get(s), tb["stats"].get(s)
                    if a and b:
                        pd = "ess_bulk_min_per_draw"
                        cmp_lines.append(
                            f"- {r['impl']} / {ref}, {s}: steps/s {_fx(_ratio(r['steps_per_s'], tb['steps_per_s']))}, "
                            f"bulk ESS per draw (min) {_fx(_ratio(a[pd], b[pd]))}, "
                            f"(median) {_fx(_ratio(a['ess_bulk_median_per_draw'], b['ess_bulk_median_per_draw']))}, "
                            f"bulk ESS/s (min) {_fx(_ratio(a['ess_bulk_min_per_s'], b['ess_bulk_min_per_s']))}")
        out.append(desc + "\n\n" + md_table(head, rows)
                   + ("\n\n" + "\n".join(cmp_lines) if cmp_lines else "")
                   + ("\n\n" + "\n".join(extra) if extra else ""))
    if out:
        out.append(f"`(not mixed)`: R-hat above {RHAT_OK}; the chains have not mixed, so their ESS estimate "
                   "measures nothing (and ESS/s with it).")
    return "\n\n".join(out)


def render_summary(results) -> str:
    """One row per case and implementation: the first statistic of the case, against the reference."""
    from common import md_table

    rows = []
    for case, recs in common.group_records(results, "ess", lambda r: r["case"]).items():
        ref = recs[0].get("reference_impl", TEXTBOOK)
        tb = next((r for r in recs if r["impl"] == ref and "error" not in r), None)
        for r in recs:
            if "error" in r or not r.get("stats"):
                rows.append([case, r["impl"], "error"] + ["-"] * 7)
                continue
            sname = next(iter(r["stats"]))
            st = r["stats"][sname]
            b = tb["stats"].get(sname) if tb else None
            mixed = st["rhat_max"] is not None and st["rhat_max"] <= RHAT_OK
            rows.append([
                case, r["impl"], sname, _fnum(r["steps_per_s"]),
                _fx(_ratio(r["steps_per_s"], tb["steps_per_s"])) if tb else "-",
                _fnum(st["ess_bulk_min_per_s"]) + ("" if mixed else " (not mixed)"),
                _fx(_ratio(st["ess_bulk_min_per_s"], b["ess_bulk_min_per_s"])) if b else "-",
                _fx(_ratio(st["ess_bulk_min_per_draw"], b["ess_bulk_min_per_draw"])) if b else "-",
                _fx(_ratio(st["ess_bulk_median_per_draw"], b["ess_bulk_median_per_draw"])) if b else "-",
                _fnum(st["rhat_max"]),
            ])
    if not rows:
        return ""
    head = ["case", "impl", "statistic", "steps/s", "steps/s x ref", "bulk ESS/s (min)", "ESS/s x ref",
            "ESS/draw (min) x ref", "ESS/draw (median) x ref", "R-hat max"]
    return ("### Summary\n\nref = the eager textbook (for pt-bimodal: the textbook PT). Per-case tables "
            "follow.\n\n" + md_table(head, rows))


def render_all(results) -> str:
    import render

    m = results.get("meta", {})
    load = f"Load average at start: `{m.get('loadavg_start')}`; at end: `{m.get('loadavg_end')}`."
    parts = [render.render_meta(results), load, render_summary(results), render_ess(results),
             render.render_notes(results)]
    return "\n\n".join(p for p in parts if p) + "\n"


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.render:
    with open(ARGS.render) as f:
        print(render_all(json.load(f)), end="")
    raise SystemExit(0)
if ARGS is not None:
    common.early_env(threads=ARGS.threads)

import torch  # noqa: E402

import gensample  # noqa: E402
import gensample.diagnostics as gd  # noqa: E402
from gensample import reference, targets  # noqa: E402
from gensample import random as grandom  # noqa: E402
from gensample.ops import gibbs_sweeps  # noqa: E402
from gensample.samplers import langevin as gl  # noqa: E402

log = common.log
_err = common.err_text


# ---------------------------------------------------------------------------
# models and targets
# ---------------------------------------------------------------------------


_DIGITS_CACHE = {}


def digits_rbm(nh, quick, device, seed):
    """A BernoulliRBM(64, nh) trained with PCD-1 on the binarized scikit-learn digits (cached
    per process: the two gibbs-64x32 cases share one model)."""
    key = (nh, quick, str(device), seed)
    if key not in _DIGITS_CACHE:
        _DIGITS_CACHE[key] = _train_digits_rbm(nh, quick, device, seed)
    return _DIGITS_CACHE[key]


def _train_digits_rbm(nh, quick, device, seed):
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float32)
    data = (x >= 8).float()
    g = torch.Generator().manual_seed(seed)
    rbm = gensample.BernoulliRBM(64, nh, init_std=0.01, generator=g)
    t0 = time.perf_counter()
    rbm.fit(data, epochs=DIGITS_EPOCHS[quick], batch_size=50, lr=0.05, k=1, method="pcd", generator=g,
            progress=False, metrics=())
    train_s = time.perf_counter() - t0
    return [p.detach().to(device).contiguous() for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias)], train_s


def random_rbm(nv, nh, w_std, device, seed):
    g = torch.Generator().manual_seed(seed)
    W = w_std * torch.randn(nv, nh, generator=g)
    b = 0.1 * torch.randn(nv, generator=g)
    c = 0.1 * torch.randn(nh, generator=g)
    return [t.to(device) for t in (W, b, c)]


def bimodal_rbm(nv, nh, w0, device, seed):
    """Flip-symmetric RBM: b = -W 1 / 2, c = -W^T 1 / 2 make E(v, h) = -s^T W t / 4 + const
    (spins s = 2v - 1, t = 2h - 1), so p(v) = p(1 - v): P(m(v) > 1/2) = 1/2 exactly (ties at
    m = 1/2 counted half)."""
    g = torch.Generator().manual_seed(seed)
    W = w0 * (1.0 + 0.25 * torch.randn(nv, nh, generator=g))
    b = -0.5 * W.sum(1)
    c = -0.5 * W.sum(0)
    return [t.to(device) for t in (W, b, c)]


def gauss_target(dim):
    return targets.Gaussian.correlated(dim, rho=0.5, scales=torch.linspace(0.5, 1.0, dim, dtype=torch.float64))


def mix_target(dim):
    u = torch.ones(dim, dtype=torch.float64) / math.sqrt(dim)
    return targets.GaussianMixture(torch.ones(2, dtype=torch.float64), torch.stack([-1.25 * u, 1.25 * u]), 1.0)


# ---------------------------------------------------------------------------
# chains: init() once, burn(n), draws(n, buf, i0) records n draws into buf[:, i0:i0+n]
# ---------------------------------------------------------------------------


class GibbsChain:
    """gensample.ops.gibbs_sweeps (fused) or the textbook eager loop, one draw = thin sweeps."""

    def __init__(self, params, v0, thin, backend=None, beta=1.0):
        self.W, self.b, self.c = params
        self.v = v0.clone()
        self.thin = thin
        self.backend = backend
        self.beta = beta

    def _advance(self, k):
        if self.backend is None:
            self.v = reference.rbm_gibbs_textbook(self.v, self.W, self.b, self.c, k, TEXTBOOK_VARIANT,
                                                  beta=self.beta)[0]
        else:
            self.v = gibbs_sweeps(self.v, self.W, self.b, self.c, k=k, beta=self.beta, check_binary=False,
                                  backend=self.backend)[0]

    def burn(self, n):
        if n:
            self._advance(n)

    def draws(self, n, buf, i0):
        for i in range(i0, i0 + n):
            self._advance(self.thin)
            buf[:, i] = self.v


def _textbook_ula_step(target, x, h, s):
    xg = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(target.energy(xg).sum(), xg)
    return x - h * g + s * torch.randn_like(x)


def _textbook_energy_grad(target, x):
    xg = x.detach().requires_grad_(True)
    e = target.energy(xg)
    (g,) = torch.autograd.grad(e.sum(), xg)
    return e.detach(), g


class _SteppedLangevin:
    """burn / draws / acceptance of a chain advanced one step at a time by ``_step()``
    (``current()``: its state; ``accepted`` / ``steps`` count MALA acceptances)."""

    def burn(self, n):
        for _ in range(n):
            self._step()
        self.accepted.zero_()
        self.steps = 0

    def draws(self, n, buf, i0):
        for i in range(i0, i0 + n):
            for _ in range(self.thin):
                self._step()
            buf[:, i] = self.current()

    def acceptance(self):
        return float(self.accepted) / max(1, self.steps * self.current().shape[0]) if self.mala else None


class TextbookLangevin(_SteppedLangevin):
    """Eager ULA / MALA (energy convention: x' = x - h grad E + sqrt(2h) eps)."""

    def __init__(self, target, x0, h, thin, metropolis):
        self.target, self.x, self.h, self.thin, self.mala = target, x0.clone(), h, thin, metropolis
        self.s = math.sqrt(2 * h)
        self.accepted = torch.zeros((), dtype=torch.float64, device=x0.device)
        self.steps = 0
        if metropolis:
            self.e, self.g = _textbook_energy_grad(target, self.x)

    def _step(self):
        h = self.h
        if not self.mala:
            self.x = _textbook_ula_step(self.target, self.x, h, self.s)
            return
        x, e, g = self.x, self.e, self.g
        xp = x - h * g + self.s * torch.randn_like(x)
        ep, gp = _textbook_energy_grad(self.target, xp)
        # log q(b | a) = -|b - a + h grad E(a)|^2 / (4h)
        lq_fwd = -((xp - x + h * g) ** 2).sum(-1) / (4 * h)
        lq_bwd = -((x - xp + h * gp) ** 2).sum(-1) / (4 * h)
        log_alpha = e - ep + lq_bwd - lq_fwd
        acc = torch.log(torch.rand_like(log_alpha)) < log_alpha
        self.x = torch.where(acc[:, None], xp, x)
        self.e = torch.where(acc, ep, e)
        self.g = torch.where(acc[:, None], gp, g)
        self.accepted += acc.sum()
        self.steps += 1

    def current(self):
        return self.x


class GensampleLangevin(_SteppedLangevin):
    """gensample.samplers.ula_step / mala_step (state with cached energy and gradient)."""

    def __init__(self, target, x0, h, thin, metropolis, backend, seed):
        self.target, self.thin, self.mala = target, thin, metropolis
        self.params = gl.make_params(x0, h, backend=backend, metropolis=metropolis)
        self.state = gl.init_state(x0.clone(), target)
        self.key = grandom.seed_pair(seed, device=x0.device)
        self.t = 0
        self.accepted = torch.zeros((), dtype=torch.float64, device=x0.device)
        self.steps = 0
        self.fn = gl.mala_step if metropolis else gl.ula_step

    def _step(self):
        self.state, info = self.fn(self.state, self.target, self.key, self.t, self.params)
        self.t += 1
        if self.mala:
            self.accepted += info.accepted.sum()
            self.steps += 1

    def current(self):
        return self.state.x


class SamplerLangevin:
    """gensample.LangevinSampler(target, n_steps=thin).sample(x) once per draw (the high-level
    API: no per-step host sync, in-place ULA; MALA re-evaluates E and grad E at the start of
    every call, one extra gradient per draw)."""

    def __init__(self, target, x0, h, thin, metropolis, backend, seed):
        self.mala = metropolis
        self.x = x0.clone()
        self.sampler = gensample.LangevinSampler(target, step_size=h, n_steps=thin, metropolis=metropolis,
                                                 generator=torch.Generator().manual_seed(seed), backend=backend)
        self.acc = []

    def burn(self, n):
        if n:
            self.x, _ = self.sampler.sample(self.x, n_steps=n)

    def draws(self, n, buf, i0):
        for i in range(i0, i0 + n):
            self.x, info = self.sampler.sample(self.x)
            buf[:, i] = self.x
            if self.mala:
                self.acc.append(info.acceptance_rate)

    def acceptance(self):
        return float(torch.stack(self.acc).mean()) if (self.mala and self.acc) else None


class PTChain:
    """Parallel tempering, one draw = ``thin`` rounds; records the beta = 1 visible states.

    gensample: ``ParallelTempering(rbm, betas=..., n_chains=C).sample(n, thin=thin)`` per
    chunk (one tempered_sweeps call for all R * C walkers per round, swaps on the device).
    textbook: ``reference.rbm_parallel_tempering_textbook(v, W, b, c, betas, thin)`` per draw
    (a Python loop over temperatures, state swaps pair by pair)."""

    def __init__(self, impl, params, betas, v0, thin, backend, seed):
        self.impl, self.thin = impl, thin
        self.W, self.b, self.c = params
        self.betas = betas
        if impl == "gensample":
            from gensample.samplers import ParallelTempering

            W = self.W
            rbm = gensample.BernoulliRBM(W.shape[0], W.shape[1], device=W.device, dtype=W.dtype)
            with torch.no_grad():
                rbm.weight.copy_(W)
                rbm.visible_bias.copy_(self.b)
                rbm.hidden_bias.copy_(self.c)
            self.pt = ParallelTempering(rbm, betas=betas, n_chains=v0.shape[0],
                                        generator=torch.Generator().manual_seed(seed), backend=backend)
            self.pt.init(v0)
            self.backend = self.pt.backend
        else:
            self.v = v0.unsqueeze(0).repeat(len(betas), 1, 1)
            self.betas_list = [float(x) for x in betas.cpu()]
            self.acc = torch.zeros(len(betas) - 1, dtype=torch.float64)
            self.n_calls = 0

    def _tb(self, n):
        self.v, info = reference.rbm_parallel_tempering_textbook(self.v, self.W, self.b, self.c, self.betas_list, n)
        self.acc += info["swap_acceptance"] * n
        self.n_calls += n

    def burn(self, n):
        if not n:
            return
        if self.impl == "gensample":
            self.pt.step(n)
            self.pt.reset_diagnostics()
        else:
            self._tb(n)
            self.acc.zero_()
            self.n_calls = 0

    def draws(self, n, buf, i0):
        if self.impl == "gensample":
            buf[:, i0:i0 + n] = self.pt.sample(n, thin=self.thin)
            return
        for i in range(i0, i0 + n):
            self._tb(self.thin)
            buf[:, i] = self.v[0]

    def swap_acceptance(self):
        if self.impl == "gensample":
            return self.pt.diagnostics()["swap_acceptance"]
        return (self.acc / max(1, self.n_calls)).tolist()

    def round_trips(self):
        if self.impl == "gensample":
            d = self.pt.diagnostics()
            return f"{d['round_trips']} ({d['round_trip_rate']:.4f} per system per round)"
        return None


# ---------------------------------------------------------------------------
# the measurement
# ---------------------------------------------------------------------------


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def run_interleaved(chains: dict, bufs: dict, N: int, n_chunks: int, burn: int, device: str) -> dict:
    """Burn in each chain (untimed), then produce N draws per chain in ``n_chunks`` chunks,
    taking turns chunk by chunk (rotating the order). Returns per-impl timing dicts."""
    out = {}
    for name, ch in chains.items():
        t0 = time.perf_counter()
        try:
            ch.burn(burn)
            _sync(device)
            out[name] = {"burn_s": time.perf_counter() - t0, "chunk_s": [], "chunk_draws": []}
        except Exception as e:
            log(traceback.format_exc(limit=4))
            out[name] = {"error": _err(e)}
    live = [n for n in chains if "error" not in out[n]]
    sizes = [N // n_chunks + (1 if i < N % n_chunks else 0) for i in range(n_chunks)]
    i0 = 0
    for k, n in enumerate(sizes):
        if n == 0:
            continue
        j = k % max(1, len(live))
        for name in live[j:] + live[:j]:
            if "error" in out[name]:
                continue
            try:
                _sync(device)
                t0 = time.perf_counter()
                chains[name].draws(n, bufs[name], i0)
                _sync(device)
                out[name]["chunk_s"].append(time.perf_counter() - t0)
                out[name]["chunk_draws"].append(n)
            except Exception as e:
                log(traceback.format_exc(limit=4))
                out[name] = {"error": _err(e)}
        i0 += n
    return out


def diagnose(x) -> dict:
    """Summary of draws x (C, N, *event) (float64 on x's device): bulk/tail ESS min and median
    over the event entries (NaN entries, e.g. a unit that never changed, are ignored), R-hat max."""
    C, N = x.shape[:2]
    x = x.reshape(C, N, -1)
    E = x.shape[2]
    blk = max(1, DIAG_BLOCK // (C * N))  # summary() makes several float64 copies: bound the memory
    parts = {k: [] for k in ("ess_bulk", "ess_tail", "rhat")}
    for j in range(0, E, blk):
        s = gd.summary(x[:, :, j:j + blk].to(torch.float64))
        for k in parts:
            parts[k].append(s[k].reshape(-1))
    eb, et, rh = (torch.cat(parts[k]) for k in ("ess_bulk", "ess_tail", "rhat"))
    ok = torch.isfinite(eb)
    S = x.shape[0] * x.shape[1]
    res = {"n_entries": int(eb.numel()), "n_nan_entries": int((~ok).sum()), "total_draws": S}
    if not bool(ok.any()):
        return dict(res, ess_bulk_min=None, ess_bulk_median=None, ess_tail_min=None, rhat_max=None)
    eb, et, rh = eb[ok], et[torch.isfinite(et)], rh[torch.isfinite(rh)]
    res.update({
        "ess_bulk_min": float(eb.min()), "ess_bulk_median": float(eb.median()),
        "ess_tail_min": float(et.min()) if et.numel() else None,
        "ess_tail_median": float(et.median()) if et.numel() else None,
        "rhat_max": float(rh.max()) if rh.numel() else None,
        "rhat_median": float(rh.median()) if rh.numel() else None,
    })
    return res


def finish_record(rec, timing, stats_fns, buf, draws):
    """Steps/s and the ESS figures of one implementation from its timing and draws."""
    rates = [d / t for d, t in zip(timing["chunk_draws"], timing["chunk_s"])]
    thin = rec["thin"]
    med = statistics.median(rates)
    rec.update({
        "chunk_s": timing["chunk_s"], "chunk_draws": timing["chunk_draws"], "burn_s": timing["burn_s"],
        "draws_per_s": med, "steps_per_s": thin * med,
        "steps_per_s_p20": thin * common.quantile(rates, 0.2), "steps_per_s_p80": thin * common.quantile(rates, 0.8),
        "sampling_wall_s": sum(timing["chunk_s"]), "ess_time_s": draws / med,
    })
    rec["stats"] = {}
    for sname, fn in stats_fns.items():
        d = diagnose(fn(buf))
        S = d["total_draws"]
        for k in ("ess_bulk_min", "ess_bulk_median", "ess_tail_min"):
            v = d.get(k)
            d[k + "_per_draw"] = None if v is None else v / S
        d["ess_bulk_min_per_s"] = None if d["ess_bulk_min"] is None else d["ess_bulk_min"] / rec["ess_time_s"]
        d["ess_bulk_median_per_s"] = None if d["ess_bulk_median"] is None else d["ess_bulk_median"] / rec["ess_time_s"]
        d["ess_tail_min_per_s"] = None if d["ess_tail_min"] is None else d["ess_tail_min"] / rec["ess_time_s"]
        rec["stats"][sname] = d


def measure_case(args, results, case, base, chains, bufs, stats_fns, N, burn, extra_fns=None):
    log(f"== {case}: {', '.join(chains)}")
    t0 = time.perf_counter()
    timing = run_interleaved(chains, bufs, N, args.chunks, burn, args.device)
    for name in chains:
        rec = dict(base, case=case, impl=name, section="ess")
        tm = timing[name]
        if "error" in tm:
            rec["error"] = tm["error"]
            log(f"  {name:34s} error: {tm['error']}")
        else:
            try:
                finish_record(rec, tm, stats_fns, bufs[name], N)
                if extra_fns:
                    rec["extra"] = {k: f(chains[name], bufs[name]) for k, f in extra_fns.items()}
                    rec["extra"] = {k: v for k, v in rec["extra"].items() if v is not None}
                log(f"  {name:34s} {rec['steps_per_s']:10.1f} steps/s  " + "  ".join(
                    f"{s}: ESS/draw {d['ess_bulk_min_per_draw']:.3g} ESS/s {d['ess_bulk_min_per_s']:.3g} "
                    f"R-hat {d['rhat_max'] if d['rhat_max'] is not None else float('nan'):.3f}"
                    for s, d in rec["stats"].items() if d.get("ess_bulk_min") is not None))
            except Exception as e:
                log(traceback.format_exc(limit=4))
                rec["error"] = _err(e)
        results["records"].append(rec)
    log(f"  case took {time.perf_counter() - t0:.1f} s")


def gensample_backends(device, notes):
    out = []
    for b in common.candidate_backends(device, notes, common.gibbs_probe(device, _err, k=1)):
        if b == "torch":
            notes.append("gensample backend `torch` (the pure-torch Philox spec, slow by design) is not timed here")
            continue
        out.append(b)
    return out


# ---------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------


def _size(args, quick_val, full_val, override):
    if override is not None:
        return override
    return quick_val if args.quick else full_val


def _free_energy_stat(params):
    W, b, c = (p.to(torch.float64) for p in params)

    def f(buf):  # (C, N, nv) bool -> (C, N) float64
        C, N, nv = buf.shape
        out = torch.empty(C, N, dtype=torch.float64, device=buf.device)
        step = max(1, (1 << 22) // max(1, C * nv))
        for i in range(0, N, step):
            v = buf[:, i:i + step].to(torch.float64)
            out[:, i:i + step] = -(v @ b) - torch.nn.functional.softplus(v @ W + c).sum(-1)
        return out

    return f


def case_gibbs(args, results, backends, case):
    dev = args.device
    if case.startswith("gibbs-64x32"):
        params, train_s = digits_rbm(32, args.quick, dev, args.seed)
        desc = (f"Bernoulli RBM 64x32 trained on binarized digits (PCD-1, {DIGITS_EPOCHS[args.quick]} epochs, "
                f"{train_s:.1f} s), block Gibbs")
        C = _size(args, 32, 128, args.chains)
        if case.endswith("thin10"):
            N = _size(args, 20, 400, args.draws)
            burn, thin = (10, 10) if args.quick else (200, 10)
        else:
            N = _size(args, 100, 2000, args.draws)
            burn, thin = (10, 1) if args.quick else (200, 1)
    else:
        nv, nh = (784, 500) if not args.quick else (196, 100)
        params = random_rbm(nv, nh, 0.1, dev, args.seed)
        desc = f"Bernoulli RBM {nv}x{nh}, random weights N(0, 0.1^2), biases N(0, 0.1^2), block Gibbs"
        C = _size(args, 16, 64, args.chains)
        N = _size(args, 50, 1000, args.draws)
        burn, thin = (10, 1) if args.quick else (100, 1)
    nv = params[0].shape[0]
    g = torch.Generator().manual_seed(args.seed + 1)
    v0 = (torch.rand(C, nv, generator=g) < 0.5).float().to(dev)
    chains = {TEXTBOOK: GibbsChain(params, v0, thin)}
    for b in backends:
        chains[f"gensample[{b}]"] = GibbsChain(params, v0, thin, backend=b)
    bufs = {n: torch.empty(C, N, nv, dtype=torch.bool, device=dev) for n in chains}
    units = torch.arange(0, nv, max(1, -(-nv // MAX_UNITS)), device=dev)
    stats = {"F(v)": _free_energy_stat(params), "units": lambda buf: buf.index_select(-1, units)}
    base = {"sampler": "gibbs", "description": desc, "chains": C, "draws": N, "burn": burn, "thin": thin,
            "step_unit": "sweeps", "n_visible": nv, "n_hidden": params[0].shape[1], "device": dev}
    torch.manual_seed(args.seed + 2)
    measure_case(args, results, case, base, chains, bufs, stats, N, burn)


def _magnetization(buf):
    return buf.to(torch.float64).mean(-1)


def _occupancy(_chain, buf):
    m = buf.to(torch.float64).mean(-1)
    occ = float(((m > 0.5).double() + 0.5 * (m == 0.5).double()).mean())
    per_chain = ((m > 0.5).double() + 0.5 * (m == 0.5).double()).mean(1)
    stuck = int(((per_chain == 0) | (per_chain == 1)).sum())
    return (f"P(m > 1/2) = {occ:.3f} (exact 0.5); {stuck} of {buf.shape[0]} chains never left their starting "
            f"mode")


def case_pt(args, results, backends, case):
    dev = args.device
    nv, nh = (32, 8) if args.quick else (64, 16)
    w0 = PT_W0_QUICK if args.quick else PT_W0
    params = bimodal_rbm(nv, nh, w0, dev, args.seed)
    n_rep = PT_REPLICAS_QUICK if args.quick else PT_REPLICAS
    betas = torch.logspace(0.0, math.log10(PT_BETA_MIN), n_rep, dtype=torch.float32).to(dev)
    betas[0] = 1.0
    C = _size(args, 16, 64, args.chains)
    N = _size(args, 80, 2000, args.draws)
    burn, thin = (10, 1) if args.quick else (200, 1)
    desc = (f"bimodal (flip-symmetric) Bernoulli RBM {nv}x{nh}, W = {w0} (1 + 0.25 N(0, 1)); PT with {n_rep} "
            f"replicas, geometric betas from 1 to {PT_BETA_MIN}, one sweep of every replica + one swap move "
            f"per round; half the chains start all-on, half all-off")
    g = torch.Generator().manual_seed(args.seed + 1)
    v0 = torch.empty(C, nv)
    v0[: C // 2] = 1.0  # half the chains in each mode: R-hat tells whether they ever mix
    v0[C // 2:] = 0.0
    v0 = v0.to(dev)
    del g
    notes = results["notes"]
    chains = {}
    if hasattr(reference, "rbm_parallel_tempering_textbook"):
        chains[TEXTBOOK + " PT"] = PTChain("textbook", params, betas, v0, thin, None, args.seed)
    else:
        notes.append("pt-bimodal: gensample.reference.rbm_parallel_tempering_textbook not found; no textbook PT row")
    try:
        from gensample.samplers import ParallelTempering  # noqa: F401
        have_gs = True
    except ImportError:
        have_gs = False
        notes.append("pt-bimodal: gensample.samplers.ParallelTempering not found; no gensample PT row")
    if have_gs:
        pt_backends = []
        for b in backends:
            why = _pt_probe(b, dev)
            if why is None:
                pt_backends.append(b)
            else:
                notes.append(f"pt-bimodal: gensample backend `{b}` has no parallel-tempering kernels here ({why})")
        if not pt_backends:
            pt_backends = ["torch"]
            notes.append("pt-bimodal: gensample PT runs on the `torch` backend (the pure-torch tempered_sweeps spec, "
                         "slow by design): no compiled tempered kernels in this build")
        for b in pt_backends:
            chains[f"gensample[{b}] PT"] = PTChain("gensample", params, betas, v0, thin, b, args.seed + 7)
    chains[TEXTBOOK + " Gibbs (beta = 1 only)"] = GibbsChain(params, v0, thin)
    for b in backends:
        chains[f"gensample[{b}] Gibbs (beta = 1 only)"] = GibbsChain(params, v0, thin, backend=b)
    bufs = {n: torch.empty(C, N, nv, dtype=torch.bool, device=dev) for n in chains}
    base = {"sampler": "pt", "description": desc, "chains": C, "draws": N, "burn": burn, "thin": thin,
            "step_unit": "rounds (Gibbs: sweeps)", "n_visible": nv, "n_hidden": nh, "n_replicas": n_rep,
            "betas": [float(x) for x in betas.cpu()], "device": dev, "reference_impl": TEXTBOOK + " PT"}
    torch.manual_seed(args.seed + 2)
    measure_case(args, results, case, base, chains, bufs, {"m(v)": _magnetization}, N, burn,
                 extra_fns={"mode occupancy": _occupancy, "swap acceptance": _swap_acc, "round trips": _round_trips})


def _pt_probe(b, device):
    """None if ParallelTempering runs a round on backend b here, else why not."""
    from gensample.samplers import ParallelTempering

    try:
        rbm = gensample.BernoulliRBM(5, 3, device=device)
        pt = ParallelTempering(rbm, n_replicas=2, n_chains=2, backend=b)
        pt.step(1)
    except Exception as e:
        return _err(e)
    return None


def _swap_acc(chain, _buf):
    if not isinstance(chain, PTChain):
        return None
    return "[" + ", ".join(f"{a:.2f}" for a in chain.swap_acceptance()) + "]"


def _round_trips(chain, _buf):
    return chain.round_trips() if isinstance(chain, PTChain) else None


def _acceptance(chain, _buf):
    a = chain.acceptance()
    return None if a is None else f"{a:.3f}"


def case_langevin(args, results, backends, case):
    dev = args.device
    kind, tname = case.split("-")
    mala = kind == "mala"
    D = 20 if args.quick else 100
    target = gauss_target(D) if tname.startswith("gauss") else mix_target(D)
    # ULA: h * lambda_max(P) well below 2; MALA: a step with acceptance near the usual 0.5 to 0.7
    if tname.startswith("gauss"):
        h = 0.05 if mala else 0.12
        tdesc = f"Gaussian.correlated(dim={D}, rho=0.5, scales 0.5..1)"
    else:
        h = 0.2 if mala else 0.25
        tdesc = f"GaussianMixture(2 components, dim={D}, means -+1.25 (1,...,1)/sqrt({D}), identity covariances)"
    C = _size(args, 16, 128, args.chains)
    N = _size(args, 60, 800, args.draws)
    # thin >= 2: LangevinSampler(metropolis=True, n_steps=1).sample fails (IndexError in its _flush)
    burn, thin = (10, 2) if args.quick else (300, 5)
    desc = f"{kind.upper()} on {tdesc}, step size h = {h}"
    g = torch.Generator().manual_seed(args.seed + 1)
    x0 = torch.randn(C, D, generator=g).to(dev)
    chains = {TEXTBOOK: TextbookLangevin(target, x0, h, thin, mala)}
    for b in backends:
        chains[f"gensample[{b}] step kernels"] = GensampleLangevin(target, x0, h, thin, mala, b, args.seed + 3)
        chains[f"gensample[{b}] LangevinSampler"] = SamplerLangevin(target, x0, h, thin, mala, b, args.seed + 4)
    bufs = {n: torch.empty(C, N, D, dtype=torch.float32, device=dev) for n in chains}
    base = {"sampler": kind, "description": desc, "chains": C, "draws": N, "burn": burn, "thin": thin,
            "step_unit": "steps", "dim": D, "step_size": h, "device": dev}
    torch.manual_seed(args.seed + 2)
    measure_case(args, results, case, base, chains, bufs, {"x": lambda buf: buf}, N, burn,
                 extra_fns={"acceptance rate": _acceptance} if mala else None)


def _uptime() -> str:
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception as e:  # no uptime binary: the load average from /proc
        return f"loadavg {common._read('/proc/loadavg')} ({type(e).__name__})"


def main():
    args = ARGS
    device = args.device
    results, notes, t_start = common.start_run(
        args, "ess", "--quick run: tiny cases; a smoke test, not a measurement", busy_what="CPU timings")
    notes.append(f"machine load at the start (`uptime`): {_uptime()}")
    backends = gensample_backends(device, notes)
    results["backends"] = backends
    for n in notes:
        log("note: " + n)
    handlers = {}
    for case in args.case_list:
        if case.startswith("gibbs"):
            handlers[case] = (lambda c: (lambda: case_gibbs(args, results, backends, c)))(case)
        elif case.startswith("pt"):
            handlers[case] = (lambda c: (lambda: case_pt(args, results, backends, c)))(case)
        else:
            handlers[case] = (lambda c: (lambda: case_langevin(args, results, backends, c)))(case)
    sec_times = common.run_sections(args.case_list, handlers, notes, _err)
    common.finish_meta(results, t_start, sec_times)
    notes.append(f"machine load at the end (`uptime`): {_uptime()}")
    md = render_all(results)
    common.save_results(results, args.json, HERE, "ess", device, md_text=md if args.json else None)
    print(md, end="")
    log(f"total {results['meta']['total_wall_s']:.1f} s")
    return results


if __name__ == "__main__":
    main()
