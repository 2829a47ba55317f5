#!/usr/bin/env python
"""Benchmark gensample.diagnostics (bulk ESS + tail ESS + rank R-hat) against arviz_stats.

    python benchmarks/bench_diagnostics.py [--device cpu|cuda] [--shape 64x10000x100]
                                           [--dtype float32|float64] [--repeats 3] [--warmup 1]
                                           [--arviz-dims N] [--no-arviz] [--quick] [--json PATH|auto]

Data: stationary AR(1) chains, (chains, draws, dims), with the autocorrelation rising linearly
from 0 (iid) in the first dim to 0.9 in the last, generated once in torch (seeded) in the
requested dtype (float32 by default, what samplers emit; gensample computes in float64).

Competitors, each timed ``--repeats`` times after ``--warmup`` untimed calls (medians reported):
  * gensample summary:      gensample.diagnostics.summary(x): bulk ESS, tail ESS (5%/95%),
                            rank R-hat (+ mean, sd) sharing one sort of the draws
  * gensample 3 calls:      ess(x, "bulk"), ess(x, "tail"), rhat(x) called separately
  * gensample bulk / tail / rhat alone (one repeat each: where the time goes)
  * gensample summary, torch route: the same call with gensample.diagnostics.USE_EXTENSION
                            = False, i.e. the pure-torch implementation (torch.sort ranks,
                            GEMM/FFT lags) that other devices run and that CPU ran before
                            the C++ kernels (one repeat; --no-torch-route skips it)
  * arviz_stats:            arviz_stats.base.array_stats.ess(method="bulk"), ess(method="tail",
                            prob=0.05), rhat(method="rank") on the float64 numpy copy laid out
                            (dims, chains, draws) (conversion not timed). ArviZ loops over dims in
                            Python; ``--arviz-dims N`` times it on the first N dims only and the
                            table also shows that time scaled to all dims (linear in dims).
The issue's floor: (64 chains, 10,000 draws, 100 dims) in under 1 s on the dev machine.
On CPU with the extension built, gensample runs its C++ kernels (csrc/cpu/diagnostics_cpu.cpp);
GENSAMPLE_DIAG_PROFILE=1 prints the kernel's per-phase times to stderr.

--json auto writes benchmarks/results/diagnostics-<device>-<model-slug>.json. The table is
printed to stdout, progress to stderr.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import common  # noqa: E402  (stdlib only; torch is imported after early_env)

FLOOR_S = 1.0


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--shape", default=None, help="CHAINSxDRAWSxDIMS (default 64x10000x100; quick 8x2000x10)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per competitor (default 3, quick 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls before the timed ones (default 1)")
    ap.add_argument("--arviz-dims", type=int, default=None,
                    help="time arviz_stats on the first N dims only (default: all; scaled to all in the table)")
    ap.add_argument("--no-arviz", action="store_true", help="skip arviz_stats")
    ap.add_argument("--no-torch-route", action="store_true", help="skip the pure-torch route (slow on CPU)")
    ap.add_argument("--quick", action="store_true", help="small shape, 2 repeats (smoke test)")
    ap.add_argument("--json", default=None,
                    help="write results here; 'auto' = benchmarks/results/diagnostics-<device>-<model>.json")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    a = ap.parse_args(argv)
    a.shape = a.shape or ("8x2000x10" if a.quick else "64x10000x100")
    a.repeats = a.repeats or (2 if a.quick else 3)
    return a


ARGS = parse_args()
common.early_env(threads=ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import gensample  # noqa: E402
import gensample.diagnostics as gd  # noqa: E402

log = common.log


def make_chains(C, N, D, dtype, device, seed=0):
    """Stationary AR(1): x_t = rho x_{t-1} + e_t, rho = linspace(0, 0.9, D) over the dims."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    rho = torch.linspace(0.0, 0.9, D, dtype=torch.float64)
    e = torch.randn(C, N, D, generator=g, dtype=torch.float64)
    x = torch.empty_like(e)
    x[:, 0] = e[:, 0] / torch.sqrt(1 - rho * rho)
    for t in range(1, N):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    return x.to(device=device, dtype=dtype)


def time_calls(fn, repeats, warmup, sync):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return {"times_s": times, "median_s": statistics.median(times), "min_s": min(times), "repeats": repeats,
            "warmup": warmup}


def main():
    args = ARGS
    device = args.device
    results, notes, t_start = common.start_run(args, "diagnostics",
                                               "--quick run: small shape; a smoke test, not a measurement",
                                               busy_what="CPU timings")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    C, N, D = (int(v) for v in args.shape.lower().split("x"))
    log(f"gensample {gensample.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"device {device}, shape {C}x{N}x{D} {args.dtype}")
    x = make_chains(C, N, D, getattr(torch, args.dtype), device)
    rec = {"shape": [C, N, D], "dtype": args.dtype, "impls": {}}

    def gs_three():
        return gd.ess(x, "bulk"), gd.ess(x, "tail"), gd.rhat(x)

    comps = [
        ("gensample summary (bulk+tail ESS, rank R-hat, mean, sd)", lambda: gd.summary(x), args.repeats),
        ("gensample ess bulk + ess tail + rhat (3 calls)", gs_three, args.repeats),
        ("gensample ess bulk alone", lambda: gd.ess(x, "bulk"), 1),
        ("gensample ess tail alone", lambda: gd.ess(x, "tail"), 1),
        ("gensample rhat (rank) alone", lambda: gd.rhat(x), 1),
    ]
    def torch_route(fn):
        def run():
            gd.USE_EXTENSION = False
            try:
                return fn()
            finally:
                gd.USE_EXTENSION = True
        return run

    if not args.no_torch_route:
        comps.append(("gensample summary, torch route (torch.sort; the pre-kernel implementation)",
                      torch_route(lambda: gd.summary(x)), 1))
    rec["route"] = "C++ kernels (diag_rank_summary)" if gd._ext_ok(x) else "torch"
    log(f"route: {rec['route']}")
    small = x[:, : min(N, 256), : min(D, 2)]
    gd.summary(small), gd.ess(small, "tail"), gd.rhat(small)  # first-use costs (MKL, FFT plans), untimed
    for name, fn, reps in comps:
        log(f"== {name}")
        r = time_calls(fn, reps, args.warmup, sync)
        rec["impls"][name] = r
        log(f"   median {r['median_s']:.3f} s  (times {', '.join(f'{t:.3f}' for t in r['times_s'])})")

    ours = gd.summary(x)
    if not args.no_arviz:
        try:
            from arviz_stats.base import array_stats as az

            nd = min(D, args.arviz_dims or D)
            xa = np.ascontiguousarray(np.moveaxis(x[..., :nd].double().cpu().numpy(), (0, 1), (-2, -1)))

            def az_three():
                return (az.ess(xa, method="bulk"), az.ess(xa, method="tail", prob=0.05),
                        az.rhat(xa, method="rank"))

            log(f"== arviz_stats on {nd} of {D} dims")
            r = time_calls(az_three, 1, 0, lambda: None)
            r["dims_timed"] = nd
            r["scaled_to_all_dims_s"] = r["median_s"] * D / nd
            rec["impls"]["arviz_stats ess bulk + ess tail + rhat"] = r
            log(f"   {r['median_s']:.3f} s on {nd} dims, {r['scaled_to_all_dims_s']:.3f} s scaled to {D}")
            ab, at, ar = az_three()
            agree = {}
            for key, ref in (("ess_bulk", ab), ("ess_tail", at), ("rhat", ar)):
                mine = ours[key][:nd].cpu().numpy()
                agree[key] = float(np.max(np.abs(mine / ref - 1)))
            rec["max_rel_diff_vs_arviz"] = agree
            log(f"   max relative difference vs arviz_stats: {agree}")
        except ImportError as e:
            notes.append(f"arviz_stats not importable ({e}); comparison skipped")
    best = rec["impls"]["gensample summary (bulk+tail ESS, rank R-hat, mean, sd)"]["median_s"]
    rec["floor_s"] = FLOOR_S
    rec["meets_floor"] = bool(best < FLOOR_S) if (C, N, D) == (64, 10000, 100) else None
    rec["ess_bulk_range"] = [float(ours["ess_bulk"].min()), float(ours["ess_bulk"].max())]
    results["records"].append(rec)
    common.finish_meta(results, t_start)

    rows = []
    for name, r in rec["impls"].items():
        scaled = r.get("scaled_to_all_dims_s")
        rows.append([name, common.fmt_ms(r["median_s"]), common.fmt_ms(r["min_s"]), r["repeats"],
                     common.fmt_ms(scaled) if scaled is not None else "-",
                     common.fmt_x((scaled or r["median_s"]) / best)])
    out = [f"## diagnostics, {C} chains x {N} draws x {D} dims ({args.dtype}), {device}", "",
           common.md_table(["impl", "median ms", "min ms", "calls", "ms scaled to all dims", "x summary time"], rows),
           "", f"floor: under {FLOOR_S:.0f} s for 64x10000x100; gensample summary median {best:.3f} s"
           + ("" if rec["meets_floor"] is None else f" -> {'MET' if rec['meets_floor'] else 'NOT met'}")]
    if "max_rel_diff_vs_arviz" in rec:
        out.append(f"max relative difference vs arviz_stats: {rec['max_rel_diff_vs_arviz']}")
    for n in notes:
        out.append(f"note: {n}")
    print("\n".join(out))
    common.save_results(results, args.json, HERE, "diagnostics", device)
    log(f"total {results['meta']['total_wall_s']:.1f} s")
    return results


if __name__ == "__main__":
    main()
