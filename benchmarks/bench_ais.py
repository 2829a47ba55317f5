#!/usr/bin/env python
"""Benchmark annealed importance sampling (AIS) of an RBM's log Z: gensample's one-op AIS
against the eager textbook loop (Salakhutdinov's RBM_AIS translated to PyTorch).

    PYTHONPATH=. python benchmarks/bench_ais.py [--device cpu|cuda] [--quick] [--json PATH|auto]
                                                [--rounds N] [--betas K] [--render FILE.json]
                                                [--skip-textbook]

The issue's floor case: 100 chains x 10,000 betas (sigmoid schedule) on a 784x500
Bernoulli RBM. The model (documented, seeded): weights N(0, 0.05^2), hidden bias
N(0, 0.05^2) - 1, and two base / visible-marginal settings:

* ``mnist-like``: visible marginals p_i ~ Beta(0.2, 1.34) (mean 0.13, most pixels rarely
  on, like MNIST's); the model's visible bias is logit(p_i), the AIS base is the base-rate
  model (``gensample.evaluation.base_rate_bias`` of 1000 rows drawn from those marginals,
  Salakhutdinov & Murray 2008);
* ``p=0.5``: zero visible bias and the uniform base (p = 0.5 marginals).

Competitors, timed interleaved in one process (one full run per block, rotating order,
``--rounds`` blocks each after a short warm-up run):

* ``textbook (eager)``: ``gensample.reference.rbm_ais_textbook``: per beta, v@W, the
  softplus log-weight terms, h = torch.bernoulli, v = torch.bernoulli (2 GEMMs per beta);
* ``gensample[<b>]``: ``gensample.evaluation.ais_log_partition(rbm, schedule=betas,
  visible_base=..., backend=b)``, the public API: base samples, ONE ``ais_rbm`` op call (no
  per-beta host sync) and the float64 statistics; every backend that runs on the device
  (triton skipped on CPU: interpreter; the torch backend, the pure-torch spec, only with
  ``--torch-backend``: its Philox in torch ops is ~100x slower by design).

Derived: ms per beta = t / K; ratio vs eager = t(textbook) / t; GFLOP/s counts the 2
GEMMs per beta (2 x 2 B n_v n_h FLOP) and its fraction of the fp32 GEMM peak measured in
the same run (``common.measure_ceilings``: torch.mm 1024^3 / 2048^3, the larger);
``t / GEMMs`` is the time over that of the 2K GEMMs of these shapes alone
(torch.mm into preallocated outputs, timed on a shorter loop and scaled to K). Each
competitor's log Z estimate is recorded too (they estimate the same number).
``--json auto`` writes benchmarks/results/ais-<device>-<model-slug>.json and .md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import common  # noqa: E402

TEXTBOOK = "textbook (eager)"
SPARSE_NOTE = ("GFLOP/s and % GEMM peak count the nominal dense FLOPs of 2 GEMMs per beta; the cpu kernel sums "
               "weight rows of the active (1) binary units only, so with sparse states (mnist-like: ~13% of the "
               "visible units on) it can exceed the dense GEMM peak and beat the GEMMs alone (t / GEMMs < 1)")
SETTINGS = ("mnist-like", "p=0.5")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="small model, 50 betas, 1 round (smoke test)")
    ap.add_argument("--json", default=None, help="results path; 'auto' = benchmarks/results/ais-<device>-<model>.json")
    ap.add_argument("--render", default=None, help="only re-render this results JSON and exit")
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"comma list of {SETTINGS}")
    ap.add_argument("--chains", type=int, default=None, help="AIS chains (default 100)")
    ap.add_argument("--betas", type=int, default=None, help="schedule length K+1 (default 10000)")
    ap.add_argument("--shape", default=None, help="NVxNH (default 784x500)")
    ap.add_argument("--rounds", type=int, default=None, help="timed full runs per competitor (default 3)")
    ap.add_argument("--torch-backend", action="store_true", help="also time gensample[torch] (very slow)")
    ap.add_argument("--skip-textbook", action="store_true",
                    help="do not time the eager textbook (quick checks of gensample against the GEMMs alone: t / GEMMs)")
    common.add_harness_args(ap)
    a = ap.parse_args(argv)
    q = a.quick
    common.harness_defaults(a, group_budget=4.0)
    a.chains = a.chains or 100
    a.betas = a.betas or (50 if q else 10000)
    a.rounds = a.rounds or (1 if q else 3)
    a.shape = a.shape or ("64x32" if q else "784x500")
    nv, nh = (int(x) for x in a.shape.lower().split("x"))
    a.nv, a.nh = nv, nh
    a.setting_list = [s.strip() for s in a.settings.split(",") if s.strip()]
    for s in a.setting_list:
        if s not in SETTINGS:
            raise SystemExit(f"unknown setting {s!r}; choose from {SETTINGS}")
    return a


ARGS = parse_args()


def render_ais(results) -> str:
    from common import fmt_ms, fmt_num, fmt_pct, fmt_x, md_table

    peak = common.gemm_peak(results)
    rows = []
    for case, g in common.group_records(results, "ais", lambda r: r["case"]).items():
        st = {r["impl"]: (common.summarize(r["times_s"]) if r.get("times_s") else None) for r in g}
        tb = st.get(TEXTBOOK)
        for r in g:
            s = st[r["impl"]]
            if s is None:
                rows.append([case, r["impl"], "error: " + str(r.get("error", "?"))[:70]] + ["-"] * 8)
                continue
            t, K = s["median_s"], r["n_betas"] - 1
            gflops = r["flops_per_beta"] * K / t / 1e9
            gem = r.get("gemm_only_per_beta_s")
            est = r.get("log_z")
            rows.append([
                case, r["impl"], fmt_num(t), f"{fmt_num(s['p20_s'])} to {fmt_num(s['p80_s'])}",
                fmt_ms(t / K), fmt_x(tb["median_s"] / t) if tb else "-", fmt_num(gflops),
                fmt_pct(gflops / peak) if peak else "-", fmt_x(t / (gem * K)) if gem else "-",
                "-" if est is None else f"{est:.3f} ± {r.get('log_z_stderr', float('nan')):.3f}",
                str(r.get("rounds", "-")),
            ])
    head = ["case", "impl", "median s / run", "p20 to p80 s", "ms / beta", "x eager", "GFLOP/s (2 GEMMs/beta)",
            "% GEMM peak", "t / GEMMs", "log Z ± se", "runs"]
    text = ("### AIS of log Z, fp32 (one run = all betas for all chains)\n\n"
            + (f"GEMM peak: **{fmt_num(peak)} GFLOP/s** (fp32 torch.mm, this run). " if peak else "")
            + "`x eager` = textbook median over this one; `t / GEMMs` = time over that of the 2K GEMMs "
              "of these shapes alone (same run).\n\n" + md_table(head, rows))
    return text


def render_all(results) -> str:
    return common.render_with_meta(results, render_ais(results))


common.render_or_setup(ARGS, render_all)

import torch  # noqa: E402

import gensample  # noqa: E402
from gensample import evaluation as E  # noqa: E402
from gensample.ops.tempered import base_log_partition  # noqa: E402
from gensample.reference import rbm_ais_textbook  # noqa: E402

log = common.log


def _err(e):
    return common.err_text(e, first_sentence=False)


def _probe(device):
    def probe(b):
        try:
            m = gensample.BernoulliRBM(5, 4, device=device)
            E.ais_log_partition(m, n_chains=2, n_betas=3, backend=b)
        except Exception as e:
            return _err(e)
        return None
    return probe


def make_case(setting, nv, nh, device, seed=0):
    """(rbm, visible_base or None): the documented model of the module docstring."""
    g = torch.Generator().manual_seed(seed)
    m = gensample.BernoulliRBM(nv, nh, init_std=0.05, generator=g)
    with torch.no_grad():
        m.hidden_bias.copy_(torch.randn(nh, generator=g) * 0.05 - 1.0)
        base = None
        if setting == "mnist-like":
            torch.manual_seed(seed)  # Beta.sample draws from the global generator
            p = torch.distributions.Beta(torch.tensor(0.2), torch.tensor(1.34)).sample((nv,)).clamp(1e-4, 1 - 1e-4)
            m.visible_bias.copy_(torch.log(p) - torch.log1p(-p))
            data = (torch.rand(1000, nv, generator=g) < p).float()
            base = E.base_rate_bias(data)
    return m.to(device), (None if base is None else base.to(device))


def time_full_runs(comps: dict, rounds: int, sync) -> dict:
    """Interleaved full runs: ``rounds`` blocks of one call per competitor, order rotated."""
    names = list(comps)
    times = {n: [] for n in names}
    errors = {}
    last = {}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            if n in errors:
                continue
            try:
                sync()
                t0 = time.perf_counter()
                out = comps[n]()
                sync()
                times[n].append(time.perf_counter() - t0)
                last[n] = out
                log(f"    {n}: {times[n][-1]:.3f} s")
            except Exception as e:
                errors[n] = _err(e)
                log(f"    {n}: failed: {errors[n]}")
    return times, errors, last


def main():
    args = ARGS
    device = args.device
    results, notes, t_start = common.start_run(
        args, "ais", "--quick run: small model, few betas, one round; a smoke test, not a measurement")
    runner = common.make_runner(args, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    backends = common.candidate_backends(device, notes, _probe(device))
    if "torch" in backends and not args.torch_backend:
        backends.remove("torch")
        notes.append("gensample[torch] (the pure-torch executable spec) not timed: pass --torch-backend")
    results["backends"] = backends
    notes.append(SPARSE_NOTE)
    if args.skip_textbook:
        notes.append("eager textbook not timed (--skip-textbook): no x eager column")
    notes.append(f"torch threads: {torch.get_num_threads()}; load average at start: "
                 f"{(common._read('/proc/loadavg') or '?').strip()}")
    for n in notes:
        log("note: " + n)
    log("== ceilings")
    results["ceilings"] = common.gemm_ceilings(runner, device, args.quick)

    nv, nh, B = args.nv, args.nh, args.chains
    betas = E.ais_schedule(args.betas, "sigmoid", device=device)
    K = args.betas - 1
    flops_per_beta = 2 * (2 * B * nv * nh)

    # the 2 GEMMs per beta alone, these shapes (a shorter loop, scaled per beta)
    W = torch.randn(nv, nh, device=device) * 0.05
    v = (torch.rand(B, nv, device=device) < 0.5).float()
    h = (torch.rand(B, nh, device=device) < 0.5).float()
    oa, ob = torch.empty(B, nh, device=device), torch.empty(B, nv, device=device)
    n_loop = 50 if args.quick else 200

    def gemms():
        for _ in range(n_loop):
            torch.mm(v, W, out=oa)
            torch.mm(h, W.t(), out=ob)

    rg = common.time_single(runner, gemms, "gemms", budget=None if args.quick else 3.0)
    gemm_per_beta = rg["median_s"] / n_loop
    results["gemm_only"] = {"per_beta_s": gemm_per_beta, "record": rg}
    log(f"  2 GEMMs ({B}x{nv}x{nh}) per beta alone: {gemm_per_beta * 1e3:.3f} ms")

    def section():
        for setting in args.setting_list:
            case = f"{nv}x{nh} B={B} K={K} {setting}"
            log(f"== {case}")
            m, base = make_case(setting, nv, nh, device)
            Wd, bd, cd = (p.detach() for p in (m.weight, m.visible_bias, m.hidden_bias))
            comps = {} if args.skip_textbook else {
                TEXTBOOK: lambda: rbm_ais_textbook(Wd, bd, cd, betas, B, visible_base=base)}
            for bk in backends:
                comps[f"gensample[{bk}]"] = (lambda bk=bk: E.ais_log_partition(m, n_chains=B, schedule=betas,
                                                                               visible_base=base, backend=bk))
            short = betas[:: max(1, K // 50)]
            short = torch.cat([short[:-1], betas[-1:]]) if float(short[-1]) != 1.0 else short
            for n, fn in comps.items():  # warm-up on a short schedule (first-call costs, allocator)
                try:
                    if n == TEXTBOOK:
                        rbm_ais_textbook(Wd, bd, cd, short, B, visible_base=base)
                    else:
                        E.ais_log_partition(m, n_chains=B, schedule=short, visible_base=base,
                                            backend=n[len("gensample["):-1])
                except Exception as e:
                    log(f"  warm-up {n} failed: {_err(e)}")
            times, errors, last = time_full_runs(comps, args.rounds, sync)
            log_z0 = base_log_partition(nh, visible_base=base, n_visible=nv)
            for n in comps:
                rec = {"section": "ais", "case": case, "impl": n, "setting": setting, "n_visible": nv,
                       "n_hidden": nh, "n_chains": B, "n_betas": K + 1, "flops_per_beta": flops_per_beta,
                       "gemm_only_per_beta_s": gemm_per_beta, "times_s": times[n], "rounds": len(times[n])}
                if n in errors:
                    rec["error"] = errors[n]
                out = last.get(n)
                if isinstance(out, E.LogZEstimate):
                    rec.update(log_z=out.log_z, log_z_stderr=out.stderr, ess=out.ess)
                elif out is not None:
                    est = E.LogZEstimate.from_log_weights(out[0], log_z0)
                    rec.update(log_z=est.log_z, log_z_stderr=est.stderr, ess=est.ess)
                results["records"].append(rec)
                if times[n]:
                    t = sorted(times[n])[len(times[n]) // 2]
                    log(f"  {n}: median {t:.3f} s, {t / K * 1e3:.3f} ms/beta, log Z {rec.get('log_z', float('nan')):.3f}")

    sec_times = common.run_sections(["ais"], {"ais": section}, notes, _err, log_times=False)
    common.finish_meta(results, t_start, sec_times)
    notes.append(f"load average at end: {results['meta'].get('loadavg_end', '?')}".strip())
    text = render_all(results)
    common.save_results(results, args.json, HERE, "ais", device, md_text=text)
    print(text, end="")
    return results


if __name__ == "__main__":
    main()
