"""``gensample demo`` / ``make demo``: what gensample is for, in a few minutes, on real data.

On scikit-learn's bundled 8x8 digits (no download) and a 2-D analytic target, one run:

1. trains a **Bernoulli RBM** (64 visible, 16 hidden) on the binarized digits with fused
   persistent contrastive divergence (:func:`gensample.train.fit_rbm`), and reports its test
   log-likelihood twice: with ``log Z`` estimated by **annealed importance sampling**
   (:mod:`gensample.evaluation`, a confidence interval) and **exactly** (``2^16`` hidden
   states enumerated), so the AIS interval can be checked against the truth;
2. trains the small **VAE** (:class:`gensample.models.VAE`) with the fused
   reparameterize-plus-KL and reports its test ELBO;
3. samples a **banana-shaped 2-D target** (:class:`gensample.targets.Banana`) with **MALA**:
   a warm-up with :class:`gensample.LangevinSampler` (``metropolis=True``, per-chain step
   sizes adapted toward 0.574 acceptance), then draws with the step sizes fixed through the
   sampler's pure step kernel (:func:`gensample.samplers.langevin.mala_step`, keeping every
   state); reports ESS per second and R-hat (:mod:`gensample.diagnostics`) and the sample
   moments against the exact ones;
4. times gensample against the eager textbook PyTorch code, **in the same run**: the
   reparameterize-KL forward + backward, RBM Gibbs sweeps, a Langevin step, and an AIS run
   (median milliseconds over a few repeats, and the ratio);
5. writes ``rbm_samples.png``, ``rbm_filters.png``, ``vae_reconstructions.png``,
   ``vae_samples.png``, ``mala_scatter.png``, ``report.md`` (every number, the tables, the
   pictures) and ``report.json`` (the same numbers, with a per-stage timing) into ``out_dir``.

Nothing is left half-written: everything goes to a temporary directory inside ``out_dir``
and is moved into place at the end (removed if the run fails).

``quick=True`` shrinks every stage (for the tests: well under a minute); the numbers are
then only a smoke test.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import time

import torch

from ._sysinfo import cpu_model

__all__ = ["run", "FULL", "QUICK", "PNGS"]

# Settings of the full run and the quick (test) run.
FULL = dict(train_threads=1, rbm_hidden=16, rbm_epochs=20, rbm_batch=20, rbm_lr=0.02, rbm_momentum=0.5, rbm_k=1,
            rbm_sample_sweeps=1000, ais_chains=100, ais_betas=10000,
            vae_epochs=30, vae_batch=128,
            mala_chains=128, mala_warmup=300, mala_draws=1000,
            speed_repeat=9, reparam_shape=(4096, 256), gibbs_chains=1024, gibbs_k=20,
            langevin_shape=(4096, 256), ais_speed_chains=100, ais_speed_betas=200)
QUICK = dict(train_threads=1, rbm_hidden=16, rbm_epochs=2, rbm_batch=20, rbm_lr=0.02, rbm_momentum=0.5, rbm_k=1,
             rbm_sample_sweeps=100, ais_chains=32, ais_betas=300,
             vae_epochs=2, vae_batch=128,
             mala_chains=16, mala_warmup=100, mala_draws=200,
             speed_repeat=3, reparam_shape=(512, 128), gibbs_chains=128, gibbs_k=5,
             langevin_shape=(512, 128), ais_speed_chains=16, ais_speed_betas=50)
PNGS = ("rbm_samples.png", "rbm_filters.png", "vae_reconstructions.png", "vae_samples.png", "mala_scatter.png")

# The MALA target: x1 ~ N(0, a^2), x2 | x1 ~ N(b (x1^2 - a^2), sigma^2).
BANANA = dict(a=1.0, b=0.5, sigma=1.0)


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def _load_digits(seed: int):
    """(binarized train, binarized test, continuous train, continuous test); pixel / 16."""
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0  # (1797, 64) in [0, 1]
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    x = x[perm]
    xb = (x >= 0.5).to(torch.float32)
    return xb[:1400], xb[1400:], x[:1500], x[1500:]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stats(times: list[float]) -> dict:
    t = sorted(times)
    q = lambda p: t[min(len(t) - 1, max(0, round(p * (len(t) - 1))))]  # noqa: E731
    return {"median_ms": statistics.median(t), "p10_ms": q(0.1), "p90_ms": q(0.9), "repeat": len(t)}


def _time_pair(fused, textbook, device: torch.device, repeat: int, budget_s: float = 6.0) -> tuple[dict, dict]:
    """Median and 10 %/90 % quantiles (ms) of the two callables, timed **alternately** (one
    call of each per round, after one warm-up call of each) so that both see the same
    machine load. Up to ``repeat`` rounds; after 3 rounds it stops once ``budget_s`` seconds
    are spent (slow eager loops on a busy machine); ``repeat`` says how many were timed."""
    for fn in (fused, textbook):
        fn()
        _sync(device)
    times = ([], [])
    start = time.perf_counter()
    for i in range(repeat):
        if i >= 3 and time.perf_counter() - start > budget_s:
            break
        for fn, out in zip((fused, textbook), times):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            out.append((time.perf_counter() - t0) * 1e3)
    return _stats(times[0]), _stats(times[1])


class _threads:
    """Run a block with ``n`` torch CPU threads (``None``: unchanged), then restore.

    The demo's models are tiny (a 64 x 16 RBM on batches of 20, a 64-128-8 VAE): their
    GEMMs are too small for two threads to pay, and on a shared machine OpenMP's
    spin-waiting makes two threads 10x slower than one. The speed table keeps the default.
    """

    def __init__(self, n):
        self.n, self.old = n, None

    def __enter__(self):
        if self.n is not None:
            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.old is not None:
            torch.set_num_threads(self.old)


def _evaluation_module():
    """``gensample.evaluation`` when this build has it (AIS), else ``None``."""
    try:
        from . import evaluation
    except ImportError:
        return None
    return evaluation if hasattr(evaluation, "ais_log_partition") else None


def _fmt(v, nd=2):
    if v is None:
        return "n/a"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.{nd}f}"


def _say(progress: bool, msg: str) -> None:
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(msg)


# ----------------------------------------------------------------------------
# 1. RBM
# ----------------------------------------------------------------------------
def _rbm(cfg, train, test, device, backend, seed, progress, tmp, timings):
    import gensample
    from . import plots

    gen = torch.Generator().manual_seed(seed)
    rbm = gensample.BernoulliRBM(64, cfg["rbm_hidden"], generator=gen, device=device, backend=backend)
    t0 = time.perf_counter()
    trainer = gensample.train.fit_rbm(
        rbm, train.to(device), epochs=cfg["rbm_epochs"], batch_size=cfg["rbm_batch"], lr=cfg["rbm_lr"],
        k=cfg["rbm_k"], method="pcd", momentum=cfg["rbm_momentum"], generator=gen, progress=progress,
        metrics=("reconstruction_error",), eval_data=test.to(device), backend=backend)
    train_s = time.perf_counter() - t0
    timings["rbm_train"] = train_s

    t0 = time.perf_counter()
    log_z = rbm.log_partition()  # exact: 2^n_hidden states enumerated in float64
    test_d = test.to(device)
    ll_exact = rbm.log_likelihood(test_d, log_z=log_z)
    exact_s = time.perf_counter() - t0
    timings["rbm_exact_log_z"] = exact_s
    out = {"n_visible": 64, "n_hidden": cfg["rbm_hidden"], "method": "pcd", "k": cfg["rbm_k"],
           "epochs": cfg["rbm_epochs"], "batch_size": cfg["rbm_batch"], "lr": cfg["rbm_lr"],
           "momentum": cfg["rbm_momentum"], "steps": trainer.steps, "train_seconds": train_s,
           "n_train": int(train.shape[0]), "n_test": int(test.shape[0]),
           "reconstruction_error": trainer.history[-1]["reconstruction_error"] if trainer.history else None,
           "log_z_exact": float(log_z), "test_log_likelihood_exact": float(ll_exact.mean()),
           "exact_seconds": exact_s}

    # AIS: log Z with a confidence interval, checked against the exact value.
    t0 = time.perf_counter()
    evaluation = _evaluation_module()
    ais = {"available": False, "n_chains": cfg["ais_chains"], "n_betas": cfg["ais_betas"]}
    if evaluation is None:
        ais["reason"] = "not in this build (gensample.evaluation missing): exact log Z only"
    else:
        try:
            est = evaluation.ais_log_partition(rbm, n_chains=cfg["ais_chains"], n_betas=cfg["ais_betas"],
                                               data=train.to(device), generator=torch.Generator().manual_seed(seed + 1),
                                               backend=backend)
            ll = evaluation.evaluate_log_likelihood(rbm, test_d, log_z=est)
            ais.update(available=True, log_z=float(est.log_z), stderr=float(est.stderr),
                       ci_low=float(est.ci_low), ci_high=float(est.ci_high), level=float(est.level),
                       ess=float(est.ess), bound=getattr(est, "bound", "lower"),
                       exact_in_interval=bool(est.ci_low <= float(log_z) <= est.ci_high),
                       error_vs_exact=float(est.log_z) - float(log_z),
                       test_log_likelihood=float(ll.mean), test_log_likelihood_ci=[float(ll.ci_low), float(ll.ci_high)])
        except Exception as exc:  # an unbuilt kernel, say: report it, keep the exact numbers
            from ._backend import BackendUnavailableError

            if not isinstance(exc, (BackendUnavailableError, NotImplementedError, RuntimeError)):
                raise
            ais["reason"] = f"AIS failed: {type(exc).__name__}: {exc}"
    ais["seconds"] = time.perf_counter() - t0
    timings["rbm_ais"] = ais["seconds"]
    out["ais"] = ais

    t0 = time.perf_counter()
    samples = rbm.sample(64, k=cfg["rbm_sample_sweeps"], generator=gen, backend=backend)
    out["sample_sweeps"] = cfg["rbm_sample_sweeps"]
    plots.image_grid(samples, os.path.join(tmp, "rbm_samples.png"), ncol=8,
                     title=f"RBM samples ({cfg['rbm_sample_sweeps']} fused Gibbs sweeps from noise)")
    plots.rbm_filters(rbm.weight, os.path.join(tmp, "rbm_filters.png"),
                      title=f"RBM filters (64 x {cfg['rbm_hidden']} weights)")
    timings["rbm_pictures"] = time.perf_counter() - t0
    return out, rbm


# ----------------------------------------------------------------------------
# 2. VAE
# ----------------------------------------------------------------------------
def _vae(cfg, train, test, device, backend, seed, progress, tmp, timings):
    from tqdm.auto import tqdm

    from . import plots
    from .models import VAE

    torch.manual_seed(seed)
    train, test = train.to(device), test.to(device)
    model = VAE(64, latent_dim=8, hidden=128, backend=backend).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    bs = cfg["vae_batch"]
    n_batches = (train.shape[0] + bs - 1) // bs
    bar = tqdm(range(cfg["vae_epochs"]), desc="VAE (fused reparameterize_kl)", unit="epoch", disable=not progress,
               leave=False)
    t0 = time.perf_counter()
    train_elbo = float("nan")
    for _ in bar:
        perm = torch.randperm(train.shape[0], device=device)
        total = 0.0
        for b in range(n_batches):
            x = train[perm[b * bs:(b + 1) * bs]]
            loss = model.loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * x.shape[0]
        train_elbo = -total / train.shape[0]
        bar.set_postfix(train_elbo=f"{train_elbo:.2f}")
    train_s = time.perf_counter() - t0
    timings["vae_train"] = train_s

    t0 = time.perf_counter()
    model.eval()
    with torch.no_grad():
        test_elbo = model.elbo(test, generator=torch.Generator(device=device).manual_seed(seed)).mean().item()
        recon = model.reconstruct(test[:12])
        samples = model.sample(64, generator=torch.Generator(device=device).manual_seed(seed))
    plots.reconstructions(test[:12], recon, os.path.join(tmp, "vae_reconstructions.png"),
                          title="VAE: test digits (top) and reconstructions (bottom)")
    plots.image_grid(samples, os.path.join(tmp, "vae_samples.png"), ncol=8,
                     title="VAE samples (decoder means of prior draws)")
    timings["vae_eval_pictures"] = time.perf_counter() - t0
    return {"architecture": "64-128-(8)-128-64, Bernoulli decoder", "epochs": cfg["vae_epochs"],
            "batch_size": bs, "n_train": int(train.shape[0]), "n_test": int(test.shape[0]),
            "train_seconds": train_s, "train_elbo_nats": train_elbo, "test_elbo_nats": test_elbo}


# ----------------------------------------------------------------------------
# 3. MALA on a 2-D target
# ----------------------------------------------------------------------------
def _mala(cfg, device, backend, seed, progress, tmp, timings):
    import gensample
    from . import diagnostics, plots
    from .targets import Banana

    target = Banana(**BANANA)
    C, W, T = cfg["mala_chains"], cfg["mala_warmup"], cfg["mala_draws"]
    gen = torch.Generator(device=device).manual_seed(seed + 2)
    x0 = torch.randn(C, 2, generator=gen, device=device) * 2.0  # overdispersed starts

    t0 = time.perf_counter()
    warm = gensample.LangevinSampler(target, step_size=0.1, n_steps=W, metropolis=True, adapt_step_size=True,
                                     generator=gen, backend=backend)
    x, winfo = warm.sample(x0)
    step = winfo.step_size  # per-chain adapted step sizes, fixed from here on (exact MALA)
    warm_s = time.perf_counter() - t0

    from tqdm.auto import tqdm

    from . import random as _random
    from .samplers import langevin as _lv

    # Draws: the pure MALA step kernels (what LangevinSampler runs), keeping every state.
    params = _lv.make_params(x, step, metropolis=True, backend=backend)
    key = _random.draw_seed(gen, device)
    draws = torch.empty(T, C, 2, device=device)
    acc = torch.zeros(C, device=device)
    _sync(device)
    t0 = time.perf_counter()
    state = _lv.init_state(x, target.energy)
    for t in tqdm(range(T), desc="MALA on a banana", unit="step", disable=not progress, leave=False,
                  mininterval=0.5):
        state, info = _lv.mala_step(state, target.energy, key, t, params)
        draws[t] = state.x
        acc += info.accepted
    _sync(device)
    sample_s = time.perf_counter() - t0
    timings["mala_sample"] = warm_s + sample_s

    t0 = time.perf_counter()
    chains = draws.permute(1, 0, 2).contiguous()  # (chains, draws, 2)
    ess_bulk = diagnostics.ess(chains, "bulk")
    ess_tail = diagnostics.ess(chains, "tail")
    rhat = diagnostics.rhat(chains)
    flat = chains.reshape(-1, 2).double().cpu()
    mean = flat.mean(0)
    cov = flat.T.cov()
    mcse = diagnostics.mcse_mean(chains)
    diag_s = time.perf_counter() - t0
    plots.scatter_density(flat, target.energy, os.path.join(tmp, "mala_scatter.png"),
                          extent=(-3.5, 3.5, -3.5, 5.5),
                          title=f"MALA: {C} chains x {T} draws over the banana density")
    timings["mala_diagnostics_pictures"] = time.perf_counter() - t0
    min_bulk = float(ess_bulk.min())
    return {"target": "Banana(a={a}, b={b}, sigma={sigma})".format(**BANANA), "chains": C, "warmup_steps": W,
            "draws": T, "acceptance": float(acc.mean()) / T, "step_size_median": float(step.median()),
            "warmup_seconds": warm_s, "sample_seconds": sample_s, "diagnostics_seconds": diag_s,
            "ess_bulk": ess_bulk.tolist(), "ess_tail": ess_tail.tolist(), "rhat": rhat.tolist(),
            "min_ess_bulk_per_second": min_bulk / sample_s, "ess_bulk_per_second": (ess_bulk / sample_s).tolist(),
            "mean": mean.tolist(), "mcse_mean": mcse.tolist(), "exact_mean": target.mean.tolist(),
            "covariance": cov.tolist(), "exact_covariance": target.covariance.tolist()}


# ----------------------------------------------------------------------------
# 4. speed table: gensample vs the eager textbook, same run
# ----------------------------------------------------------------------------
def _speed(cfg, device, backend, rbm, seed, timings):
    import gensample
    from . import reference
    from ._backend import resolve

    t_all = time.perf_counter()
    torch.manual_seed(seed)
    rep = cfg["speed_repeat"]
    rows = []

    def add(op, shape, fused, textbook, resolved, note=""):
        g, tb = _time_pair(fused, textbook, device, rep)
        rows.append({"op": op, "shape": shape, "backend": resolved, "gensample_ms": g["median_ms"],
                     "gensample_p10_p90_ms": [g["p10_ms"], g["p90_ms"]], "textbook_ms": tb["median_ms"],
                     "textbook_p10_p90_ms": [tb["p10_ms"], tb["p90_ms"]],
                     "repeat": [g["repeat"], tb["repeat"]],
                     "speedup": tb["median_ms"] / g["median_ms"], "note": note})

    # reparameterize + KL, forward + backward
    R, L = cfg["reparam_shape"]
    mu = torch.randn(R, L, device=device, requires_grad=True)
    lv = torch.randn(R, L, device=device, requires_grad=True)

    def reparam_fused():
        z, kl = gensample.reparameterize_kl(mu, lv, backend=backend)
        (z.sum() + kl.sum()).backward()

    def reparam_textbook():
        z, kl = reference.reparameterize_kl_textbook(mu, lv)
        (z.sum() + kl.sum()).backward()

    add("reparameterize_kl fwd+bwd", f"{R}x{L} fp32", reparam_fused, reparam_textbook, resolve(backend, device))

    # Gibbs sweeps on the demo's RBM
    W, b, c = (p.detach() for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))
    B, k = cfg["gibbs_chains"], cfg["gibbs_k"]
    v0 = (torch.rand(B, W.shape[0], device=device) < 0.5).float()
    add("RBM Gibbs sweeps", f"{B} chains, 64x{W.shape[1]}, k={k}",
        lambda: gensample.ops.gibbs_sweeps(v0, W, b, c, k=k, backend=backend),
        lambda: reference.rbm_gibbs_textbook(v0, W, b, c, k=k, variant="bernoulli"), resolve(backend, device),
        "textbook: torch.bernoulli per half-step")

    # one Langevin step with clipping and clamping
    R2, L2 = cfg["langevin_shape"]
    xl = torch.rand(R2, L2, device=device) * 2 - 1
    gl = torch.randn(R2, L2, device=device)
    h, clip, lo, hi = 0.01, 0.03, -1.0, 1.0
    s = math.sqrt(2 * h)
    add("Langevin step (clip + clamp)", f"{R2}x{L2} fp32",
        lambda: gensample.langevin_step(xl, gl, step_size=h, grad_clip=clip, clamp=(lo, hi), backend=backend),
        lambda: (xl - h * gl.clamp(-clip, clip) + s * torch.randn_like(xl)).clamp(lo, hi), resolve(backend, device),
        "textbook: x - h clip(g) + sqrt(2h) randn, clamp")

    # AIS: one whole annealing run
    skip = []
    Bc, K = cfg["ais_speed_chains"], cfg["ais_speed_betas"]
    betas = torch.linspace(0, 1, K, device=device)
    va = (torch.rand(Bc, W.shape[0], device=device) < 0.5).float()
    ais_textbook = getattr(reference, "rbm_ais_textbook", None)
    if ais_textbook is None:
        skip.append("AIS: no textbook reference (gensample.reference.rbm_ais_textbook) in this build")
    else:
        try:
            resolved = resolve(backend, device)
            fused = lambda: gensample.ops.ais_rbm(va, W, b, c, betas=betas, backend=backend)  # noqa: E731
            fused()  # raises here if this build has no kernel for the backend
            add("AIS run (log-weights)", f"{Bc} chains, 64x{W.shape[1]}, {K} betas", fused,
                lambda: ais_textbook(W, b, c, betas, Bc), resolved,
                "uniform base model; textbook: Salakhutdinov's RBM_AIS loop, one Python iteration per beta")
        except Exception as exc:  # an unbuilt kernel or a reference with another signature
            skip.append(f"AIS: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    timings["speed_table"] = time.perf_counter() - t_all
    return rows, skip


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------
def _md_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def speed_table_md(rows) -> str:
    """The speed rows as a markdown table."""
    return _md_table(["op", "size", "backend", "gensample ms", "textbook ms", "speed-up"],
                     [(r["op"], r["shape"], r["backend"], _fmt(r["gensample_ms"], 3), _fmt(r["textbook_ms"], 3),
                       f"{r['speedup']:.2f}x") for r in rows])


def _report_md(rep: dict) -> str:
    r, v, m = rep["rbm"], rep["vae"], rep["mala"]
    ais = r["ais"]
    L = [f"# gensample demo report{' (quick mode: smoke-test sizes)' if rep['quick'] else ''}", "",
         f"gensample {rep['gensample']}, torch {rep['torch']}, device `{rep['device']}`, backend `{rep['backend']}`, "
         f"{rep['torch_threads']} torch threads ({rep['settings']['train_threads']} for the training stages 1-3, "
         f"whose tiny GEMMs do not pay for more), {rep['cpu']}, seed {rep['seed']}. "
         f"Total {rep['total_seconds']:.1f} s.", "",
         *([f"**Busy machine**: 1-minute load average {rep['load_average_start']:.1f} at the start on "
            f"{rep['logical_cpus']} logical CPUs; every timing below (the speed table above all) is inflated. "
            "Rerun on a quiet machine to compare.", ""]
           if rep["load_average_start"] is not None and rep["logical_cpus"]
           and rep["load_average_start"] > rep["logical_cpus"] else []),
         "## Summary", "",
         _md_table(["what", "result"], [
             ("RBM test log-likelihood (exact)", f"{r['test_log_likelihood_exact']:.3f} nats / digit"),
             ("RBM test log-likelihood (AIS)",
              f"{ais['test_log_likelihood']:.3f} nats, {int(100 * ais['level'])}% CI "
              f"[{ais['test_log_likelihood_ci'][0]:.3f}, {ais['test_log_likelihood_ci'][1]:.3f}]"
              if ais["available"] else ais["reason"]),
             ("RBM log Z: exact vs AIS",
              f"{r['log_z_exact']:.3f} vs {ais['log_z']:.3f} [{ais['ci_low']:.3f}, {ais['ci_high']:.3f}] "
              f"({'exact inside the interval' if ais['exact_in_interval'] else 'exact OUTSIDE the interval'})"
              if ais["available"] else f"{r['log_z_exact']:.3f} (exact only)"),
             ("VAE test ELBO", f"{v['test_elbo_nats']:.2f} nats / digit"),
             ("MALA min bulk ESS / s", f"{m['min_ess_bulk_per_second']:.0f}"),
             ("MALA max R-hat", f"{max(m['rhat']):.4f}"),
         ]), "",
         "## 1. Bernoulli RBM on binarized digits (fused PCD)", "",
         f"{r['n_visible']} visible x {r['n_hidden']} hidden units, PCD-{r['k']}, {r['epochs']} epochs of "
         f"{r['n_train']} binarized digits (pixel/16 >= 0.5), batch {r['batch_size']}, lr {r['lr']}, "
         f"momentum {r['momentum']}: {r['steps']} fused updates in {r['train_seconds']:.1f} s. "
         f"Test set: {r['n_test']} digits.", "",
         _md_table(["quantity", "value"], [
             ("log Z, exact (2^%d hidden states enumerated, %.2f s)" % (r["n_hidden"], r["exact_seconds"]),
              f"{r['log_z_exact']:.4f}"),
             ("test log-likelihood, exact", f"{r['test_log_likelihood_exact']:.4f} nats"),
             *([(f"log Z, AIS ({ais['n_chains']} chains x {ais['n_betas']} betas, {ais['seconds']:.2f} s)",
                 f"{ais['log_z']:.4f} +- {ais['stderr']:.4f}"),
                (f"{int(100 * ais['level'])}% interval of log Z (stochastic lower bound)",
                 f"[{ais['ci_low']:.4f}, {ais['ci_high']:.4f}]"),
                ("exact log Z inside the interval", "yes" if ais["exact_in_interval"] else "NO"),
                ("AIS minus exact", f"{ais['error_vs_exact']:+.4f}"),
                ("effective sample size of the AIS weights", f"{ais['ess']:.1f}"),
                ("test log-likelihood, AIS", f"{ais['test_log_likelihood']:.4f} nats, interval "
                 f"[{ais['test_log_likelihood_ci'][0]:.4f}, {ais['test_log_likelihood_ci'][1]:.4f}]")]
               if ais["available"] else [("AIS", ais["reason"])]),
             ("reconstruction error (test, mean-field)", _fmt(r["reconstruction_error"], 4)),
         ]), "",
         f"![RBM samples](rbm_samples.png) ![RBM filters](rbm_filters.png)", "",
         f"Samples: {r['sample_sweeps']} fused Gibbs sweeps from noise. Filters: the weight column of each "
         "hidden unit as an 8x8 image (red positive, blue negative).", "",
         "## 2. VAE with the fused reparameterize-KL", "",
         f"{v['architecture']}, {v['epochs']} epochs of {v['n_train']} digits (pixel/16), batch {v['batch_size']}, "
         f"Adam 2e-3, {v['train_seconds']:.1f} s. Train ELBO {v['train_elbo_nats']:.2f}, "
         f"**test ELBO {v['test_elbo_nats']:.2f} nats / digit** ({v['n_test']} test digits, one sample each).", "",
         "![VAE reconstructions](vae_reconstructions.png)", "", "![VAE samples](vae_samples.png)", "",
         "## 3. MALA on a 2-D banana", "",
         f"Target {m['target']} (exact mean and covariance known). {m['chains']} chains, {m['warmup_steps']} "
         f"warm-up steps adapting each chain's step size (median {m['step_size_median']:.3f}), then "
         f"{m['draws']} draws per chain with the step sizes fixed: acceptance {m['acceptance']:.3f}, "
         f"{m['sample_seconds']:.2f} s of sampling.", "",
         _md_table(["", "x1", "x2"], [
             ("bulk ESS", *(f"{e:.0f}" for e in m["ess_bulk"])),
             ("tail ESS", *(f"{e:.0f}" for e in m["ess_tail"])),
             ("bulk ESS / s", *(f"{e:.0f}" for e in m["ess_bulk_per_second"])),
             ("R-hat (rank-normalized split)", *(f"{e:.4f}" for e in m["rhat"])),
             ("sample mean (MCSE)", *(f"{a:.3f} ({s:.3f})" for a, s in zip(m["mean"], m["mcse_mean"]))),
             ("exact mean", *(f"{a:.3f}" for a in m["exact_mean"])),
             ("sample variance", *(f"{m['covariance'][i][i]:.3f}" for i in range(2))),
             ("exact variance", *(f"{m['exact_covariance'][i][i]:.3f}" for i in range(2))),
         ]), "",
         "![MALA scatter](mala_scatter.png)", "",
         "## 4. Speed: gensample vs the eager textbook PyTorch code (this run)", "",
         f"Median of up to {rep['settings']['speed_repeat']} rounds after a warm-up call, gensample and the "
         "textbook timed alternately in each round so both see the same load (fewer rounds for slow calls: at "
         "least 3, within 6 s per row); speed-up = textbook / gensample. "
         f"Default torch threads ({rep['torch_threads']}). On a busy machine these times inflate: compare "
         "runs on a quiet one.", "",
         speed_table_md(rep["speed"]), ""]
    for row in rep["speed"]:
        if row.get("note"):
            L.append(f"* {row['op']}: {row['note']}.")
    for s in rep["speed_skipped"]:
        L.append(f"* skipped: {s}")
    L += ["", "## Time per stage", "", _md_table(["stage", "seconds"],
                                                 [(k, f"{t:.2f}") for k, t in rep["timings_seconds"].items()]), ""]
    return "\n".join(L)


def _loadavg():
    """1-minute load average (None where the OS does not say)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


# ----------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------
def run(out_dir: str = "gensample-demo", quick: bool = False, device: str = "cpu", backend: str | None = None,
        seed: int = 0, progress: bool = True) -> dict:
    """Run the demo and write its pictures and reports into ``out_dir``.

    Args:
        out_dir: directory for ``report.md``, ``report.json`` and the PNGs (created; existing
            files of the same names are replaced).
        quick: smoke-test sizes (a few seconds per stage) instead of the full run.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:N"``).
        backend: gensample backend for every fused op (``None``: automatic per device).
        seed: seeds every stage.
        progress: progress bars and a summary on the terminal.

    Returns the report as a dict (what ``report.json`` holds), with ``"out_dir"`` and
    ``"files"`` (absolute paths of what was written).
    """
    import gensample
    from ._backend import resolve

    t_start = time.perf_counter()
    load_start = _loadavg()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r} (expected 'cpu' or 'cuda'): {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    resolved = resolve(backend, dev)  # raises ValueError / BackendUnavailableError early
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    cfg = QUICK if quick else FULL

    out_dir = os.path.abspath(os.fspath(out_dir))
    created = not os.path.isdir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".demo-tmp-", dir=out_dir)
    timings: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        xb_train, xb_test, x_train, x_test = _load_digits(seed)
        timings["load_data"] = time.perf_counter() - t0
        _say(progress, f"[1/4] Bernoulli RBM on binarized digits: fused PCD-{cfg['rbm_k']}, "
                       f"{cfg['rbm_epochs']} epochs ...")
        with _threads(cfg["train_threads"]):
            rbm_out, rbm = _rbm(cfg, xb_train, xb_test, dev, backend, seed, progress, tmp, timings)
        a = rbm_out["ais"]
        _say(progress, f"      test log-likelihood: exact {rbm_out['test_log_likelihood_exact']:.3f} nats; "
             + (f"AIS {a['test_log_likelihood']:.3f} [{a['test_log_likelihood_ci'][0]:.3f}, "
                f"{a['test_log_likelihood_ci'][1]:.3f}]" if a["available"] else a["reason"]))
        _say(progress, f"[2/4] VAE with the fused reparameterize-KL, {cfg['vae_epochs']} epochs ...")
        with _threads(cfg["train_threads"]):
            vae_out = _vae(cfg, x_train, x_test, dev, backend, seed, progress, tmp, timings)
        _say(progress, f"      test ELBO {vae_out['test_elbo_nats']:.2f} nats")
        _say(progress, f"[3/4] MALA on a 2-D banana: {cfg['mala_chains']} chains x {cfg['mala_draws']} draws ...")
        with _threads(cfg["train_threads"]):
            mala_out = _mala(cfg, dev, backend, seed, progress, tmp, timings)
        _say(progress, f"      min bulk ESS/s {mala_out['min_ess_bulk_per_second']:.0f}, "
                       f"max R-hat {max(mala_out['rhat']):.4f}")
        _say(progress, "[4/4] speed table: gensample vs the eager textbook ...")
        speed, skipped = _speed(cfg, dev, backend, rbm, seed, timings)

        info = gensample.info()
        load = _loadavg()
        rep = {"schema": "gensample-demo/1", "gensample": gensample.__version__, "torch": torch.__version__,
               "python": platform.python_version(), "cpu": cpu_model(), "device": str(dev), "backend": resolved,
               "requested_backend": backend, "torch_threads": torch.get_num_threads(), "seed": seed,
               "quick": bool(quick), "settings": dict(cfg, banana=BANANA), "logical_cpus": os.cpu_count(),
               "load_average_start": load_start, "load_average_end": load, "extension_loaded": info["extension"]["loaded"],
               "rbm": rbm_out, "vae": vae_out, "mala": mala_out, "speed": speed, "speed_skipped": skipped}
        rep["timings_seconds"] = dict(timings)
        rep["total_seconds"] = time.perf_counter() - t_start
        t0 = time.perf_counter()
        with open(os.path.join(tmp, "report.md"), "w") as f:
            f.write(_report_md(rep))
        rep["timings_seconds"]["report"] = time.perf_counter() - t0
        rep["total_seconds"] = time.perf_counter() - t_start
        with open(os.path.join(tmp, "report.json"), "w") as f:
            json.dump(rep, f, indent=1)
        files = {}
        for name in (*PNGS, "report.md", "report.json"):
            dst = os.path.join(out_dir, name)
            os.replace(os.path.join(tmp, name), dst)
            files[name] = dst
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            try:
                os.rmdir(out_dir)  # only if empty
            except OSError:
                pass
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    rep["out_dir"] = out_dir
    rep["files"] = files
    if progress:
        print()
        print(speed_table_md(speed))
        for s in skipped:
            print(f"  (skipped: {s})")
        print(f"\ndemo finished in {rep['total_seconds']:.1f} s; report: {files['report.md']}")
    return rep
