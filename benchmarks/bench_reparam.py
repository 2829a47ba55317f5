#!/usr/bin/env python
"""Benchmark gensample.reparameterize_kl (fused reparameterize + KL) and the raw Philox
generators against the PyTorch ways of doing the same thing.

    python benchmarks/bench_reparam.py [--device cpu|cuda] [--shapes 128x64,4096x256,65536x512]
                                       [--quick] [--json PATH|auto] [--no-compile]

Competitors, per (shape, mode), timed interleaved in this one process:
  * textbook (eager):  gensample.reference.reparameterize_kl_textbook
  * distributions:     gensample.reference.reparameterize_kl_distributions
  * torch.compile:     of the textbook, fullgraph=True, dynamic=False (default inductor: RNG in-kernel)
  * torch.compile+fbr: the same with options={"fallback_random": True} (ATen RNG, rest fused)
  * gensample[<b>]:    gensample.reparameterize_kl(mu, logvar, backend=b) for each backend that
                       runs on the device (triton is skipped on CPU: the interpreter is not a
                       benchmark; the torch backend, the pure-torch spec, only up to
                       --torch-backend-max-numel elements)
Modes: fwd (z, kl per row) and fwd+bwd (torch.autograd.grad of (z, kl) w.r.t. (mu, logvar)
with random upstream gradients created once).

Raw generators: gensample.ops.random_ops.philox_normal / philox_uniform(seed_pair(1), (n,))
against torch.randn / torch.rand (ATen's generator).

--json auto writes benchmarks/results/reparam-<device>-<model-slug>.json. The tables are
printed to stdout; benchmarks/render.py re-renders any results JSON. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
# Benchmark this checkout's gensample (the repo root), and import the shared harness.
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import common  # noqa: E402  (stdlib only; torch is imported after early_env)

DEFAULT_SHAPES = "128x64,4096x256,65536x512"
QUICK_SHAPES = "128x64,4096x256"
DEFAULT_GEN_SIZES = "1M,16M"
QUICK_GEN_SIZES = "1M"
TEXTBOOK = "textbook (eager)"
DISTRIBUTIONS = "torch.distributions (eager)"
MODES = {"fwd": 12, "fwd+bwd": 32}  # minimum bytes per element a fused kernel must move


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--shapes", default=None,
                    help=f"comma list of BxD (default {DEFAULT_SHAPES}; with --quick {QUICK_SHAPES})")
    ap.add_argument("--modes", default="fwd,fwd+bwd", help="comma list of fwd, fwd+bwd")
    ap.add_argument("--gen-sizes", default=None,
                    help=f"raw generator sizes, e.g. 1M,16M (default {DEFAULT_GEN_SIZES}; quick {QUICK_GEN_SIZES})")
    ap.add_argument("--sections", default="reparam,generators", help="comma list of reparam, generators")
    ap.add_argument("--quick", action="store_true", help="short blocks, few rounds, small shapes (smoke test)")
    ap.add_argument("--json", default=None,
                    help="write results here; 'auto' = benchmarks/results/reparam-<device>-<model>.json")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile competitors")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--thp", action="store_true", help="set THP_MEM_ALLOC_ENABLE=1 (huge pages, CPU)")
    ap.add_argument("--warm-cache", action="store_true", help="use the default inductor cache (compile s may be warm)")
    ap.add_argument("--torch-backend-max-numel", type=int, default=1 << 20,
                    help="run the (slow) torch backend only up to this many elements (default 2^20)")
    ap.add_argument("--block-time", type=float, default=None, help="seconds per block (default 0.2, quick 0.05)")
    ap.add_argument("--min-blocks", type=int, default=None, help="min rounds per group (default 7, quick 3)")
    ap.add_argument("--max-blocks", type=int, default=None, help="max rounds per group (default 40, quick 5)")
    ap.add_argument("--group-budget", type=float, default=None,
                    help="target seconds of timing per group (default 10, quick 1); min-blocks wins")
    a = ap.parse_args(argv)
    q = a.quick
    a.shapes = a.shapes or (QUICK_SHAPES if q else DEFAULT_SHAPES)
    a.gen_sizes = a.gen_sizes or (QUICK_GEN_SIZES if q else DEFAULT_GEN_SIZES)
    a.block_time = a.block_time or (0.05 if q else 0.2)
    a.min_blocks = a.min_blocks or (3 if q else 7)
    a.max_blocks = a.max_blocks or (5 if q else 40)
    a.group_budget = a.group_budget or (1.0 if q else 10.0)
    return a


def parse_shapes(s):
    out = []
    for tok in s.split(","):
        tok = tok.strip().lower()
        if tok:
            b, d = tok.split("x")
            out.append((int(b), int(d)))
    return out


parse_sizes = common.parse_sizes


ARGS = parse_args()
common.early_env(threads=ARGS.threads, thp=ARGS.thp, warm_cache=ARGS.warm_cache)

import torch  # noqa: E402
import torch._dynamo  # noqa: E402

import gensample  # noqa: E402
from gensample import reference  # noqa: E402
from gensample.ops import random_ops  # noqa: E402

import render  # noqa: E402

log = common.log


# ---------------------------------------------------------------------------
# which gensample backends can be benchmarked here
# ---------------------------------------------------------------------------


_err = common.err_text


def probe_reparam(b, device):
    """None if backend b runs reparameterize_kl forward and backward here, else why not."""
    try:
        mu = torch.randn(3, 5, device=device, requires_grad=True)
        lv = torch.randn(3, 5, device=device, requires_grad=True)
        z, kl = gensample.reparameterize_kl(mu, lv, backend=b)
        (z.sum() + kl.sum()).backward()
        if z.shape != mu.shape or kl.shape != (3,) or mu.grad is None or lv.grad is None:
            return f"unexpected output shapes z {tuple(z.shape)} kl {tuple(kl.shape)}"
        if not bool(torch.isfinite(z).all()):
            return "non-finite z on a probe input"
    except Exception as e:
        return _err(e)
    return None


def probe_generator(b, device):
    try:
        s = gensample.random.seed_pair(1, device=device)
        n = random_ops.philox_normal(s, (10,), backend=b)
        u = random_ops.philox_uniform(s, (10,), backend=b)
        if n.shape != (10,) or u.shape != (10,):
            return "unexpected output shape"
    except Exception as e:
        return _err(e)
    return None


# ---------------------------------------------------------------------------
# reparam section
# ---------------------------------------------------------------------------


# Two distinct functions (distinct code objects), so the two torch.compile configurations
# keep separate dynamo cache entries and can be timed interleaved without recompiling.
def _textbook_compile_default(mu, logvar):
    return reference.reparameterize_kl_textbook(mu, logvar)


def _textbook_compile_fbr(mu, logvar):
    return reference.reparameterize_kl_textbook(mu, logvar)


COMPILE_CONFIGS = [
    ("torch.compile", _textbook_compile_default, {}),
    ("torch.compile+fbr", _textbook_compile_fbr, {"fallback_random": True}),
]


def _make_step(f, mode, mu, lv, mu_g, lv_g, gz, gkl):
    if mode == "fwd":
        return lambda: f(mu, lv)

    def step():
        z, kl = f(mu_g, lv_g)
        return torch.autograd.grad((z, kl), (mu_g, lv_g), (gz, gkl))

    return step


def section_reparam(args, runner, results, backends):
    device = args.device
    notes = results["notes"]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"unknown mode {m!r}; use {list(MODES)}")
    for (bsz, lat) in parse_shapes(args.shapes):
        numel = bsz * lat
        shape = f"{bsz}x{lat}"
        g = torch.Generator(device="cpu").manual_seed(0)
        mu = torch.randn(bsz, lat, generator=g).to(device)
        lv = (0.5 * torch.randn(bsz, lat, generator=g)).to(device)
        mu_g = mu.clone().requires_grad_(True)
        lv_g = lv.clone().requires_grad_(True)
        gz = torch.randn(bsz, lat, generator=g).to(device)  # upstream gradients, created once
        gkl = torch.randn(bsz, generator=g).to(device)
        for mode in modes:
            bpe = MODES[mode]
            label = f"{shape} {mode}"
            log(f"== reparam {label}")
            torch._dynamo.reset()
            fns = {
                TEXTBOOK: reference.reparameterize_kl_textbook,
                DISTRIBUTIONS: reference.reparameterize_kl_distributions,
            }
            compile_info = {}
            if not args.no_compile:
                for name, f, opts in COMPILE_CONFIGS:
                    try:
                        cf = torch.compile(f, fullgraph=True, dynamic=False, options=dict(opts) or None)
                        step = _make_step(cf, mode, mu, lv, mu_g, lv_g, gz, gkl)
                        runner.sync()
                        t0 = time.perf_counter()
                        step()
                        runner.sync()
                        c_s = time.perf_counter() - t0
                        t0 = time.perf_counter()
                        step()
                        runner.sync()
                        compile_info[name] = {"compile_s": c_s, "second_call_s": time.perf_counter() - t0,
                                              "compile_options": opts, "fullgraph": True, "dynamic": False}
                        fns[name] = cf
                        log(f"  {name}: first call (compile) {c_s:.2f} s")
                    except Exception as e:
                        log(traceback.format_exc(limit=3))
                        compile_info[name] = {"error": _err(e), "compile_options": opts}
                        notes.append(f"{name} failed for {label}: {_err(e)}")
            for b in backends:
                if b == "torch" and numel > args.torch_backend_max_numel:
                    continue
                fns[f"gensample[{b}]"] = (lambda bb: (lambda m, v: gensample.reparameterize_kl(m, v, backend=bb)))(b)
            steps = {name: _make_step(f, mode, mu, lv, mu_g, lv_g, gz, gkl) for name, f in fns.items()}
            timed = runner.run_group(steps, label)
            for name in fns:
                rec = {"section": "reparam", "shape": shape, "batch": bsz, "latent": lat, "numel": numel,
                       "mode": mode, "min_bytes_per_elem": bpe, "impl": name, "dtype": "float32",
                       "device": device}
                rec.update(compile_info.get(name, {}))
                rec.update(timed[name])
                if not args.no_memory and "error" not in timed[name]:
                    try:
                        rec.update(common.peak_memory(steps[name], device, warm=False))
                    except Exception as e:
                        rec["peak_error"] = _err(e)
                results["records"].append(rec)
                if "median_s" in rec:
                    log(f"  {name:30s} {rec['median_s'] * 1e3:10.4f} ms  (p20 {rec['p20_s'] * 1e3:.4f}, "
                        f"p80 {rec['p80_s'] * 1e3:.4f}, {rec['n_blocks']} blocks x {rec['number_per_block']})"
                        + (f"  peak {rec['peak_alloc_bytes'] / common.MB:.1f} MB"
                           if rec.get("peak_alloc_bytes") is not None else ""))
                else:
                    log(f"  {name:30s} error: {rec.get('error')}")
            for name, info in compile_info.items():  # failed compiles still get a row
                if name not in fns:
                    results["records"].append({"section": "reparam", "shape": shape, "batch": bsz, "latent": lat,
                                               "numel": numel, "mode": mode, "min_bytes_per_elem": bpe,
                                               "impl": name, "dtype": "float32", "device": device, **info})
            del steps, fns
            torch._dynamo.reset()
        del mu, lv, mu_g, lv_g, gz, gkl


def section_generators(args, runner, results, backends):
    device = args.device
    seed = gensample.random.seed_pair(1, device=device)
    for kind in ("normal", "uniform"):
        aten = torch.randn if kind == "normal" else torch.rand
        gfun = random_ops.philox_normal if kind == "normal" else random_ops.philox_uniform
        for n in parse_sizes(args.gen_sizes):
            label = f"{kind} {n}"
            log(f"== generators {label}")
            fns = {f"torch.{'randn' if kind == 'normal' else 'rand'} (ATen)":
                   (lambda a, nn: (lambda: a(nn, device=device)))(aten, n)}
            for b in backends:
                if b == "torch" and n > args.torch_backend_max_numel:
                    continue
                fns[f"gensample[{b}]"] = (lambda bb, nn: (lambda: gfun(seed, (nn,), backend=bb)))(b, n)
            timed = runner.run_group(fns, label)
            for i, name in enumerate(fns):
                rec = {"section": "generators", "kind": kind, "numel": n, "impl": name, "is_aten": i == 0,
                       "dtype": "float32", "device": device, "seed": [1, 0]}
                rec.update(timed[name])
                results["records"].append(rec)
                if "median_s" in rec:
                    log(f"  {name:30s} {rec['median_s'] * 1e3:10.4f} ms  {n / rec['median_s'] / 1e6:8.1f} M/s")
                else:
                    log(f"  {name:30s} error: {rec.get('error')}")


# ---------------------------------------------------------------------------


def main():
    args = ARGS
    device = args.device
    results, notes, t_start = common.start_run(
        args, "reparam", "--quick run: short blocks and few rounds; a smoke test, not a measurement")
    runner = common.make_runner(args, device)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    log(f"gensample {gensample.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"device {device}")

    # Which gensample backends run here (probe each on a tiny input; skip with a note if not).
    cands = common.candidate_backends(device, notes)
    rep_backends, gen_backends = [], []
    for b in cands:
        why = probe_reparam(b, device)
        if why is None:
            rep_backends.append(b)
        else:
            notes.append(f"gensample backend `{b}` skipped for reparameterize_kl on {device}: {why}")
        why = probe_generator(b, device)
        if why is None:
            gen_backends.append(b)
        else:
            notes.append(f"gensample backend `{b}` skipped for the raw generators on {device}: {why}")
    if "torch" in cands:
        notes.append(f"gensample[torch] (pure-torch Philox, the executable spec) is only run up to "
                     f"{args.torch_backend_max_numel} elements: it is slow by design")
    results["backends"] = {"reparam": rep_backends, "generators": gen_backends}
    for n in notes:
        log("note: " + n)

    log("== ceilings")
    extra = sorted({b * d for b, d in parse_shapes(args.shapes)}) if "reparam" in sections else []
    results["ceilings"] = common.measure_ceilings(runner, device, quick=args.quick, extra_copy_numels=extra)

    def reparam():
        if not args.no_compile:
            results["meta"]["inductor_warmup_s"] = common.inductor_warmup(device)
        section_reparam(args, runner, results, rep_backends)

    sec_times = common.run_sections(sections, {
        "reparam": reparam,
        "generators": lambda: section_generators(args, runner, results, gen_backends),
    }, notes, _err)

    common.copy_ceiling_end(runner, device, results)
    common.finish_meta(results, t_start, sec_times)
    common.save_results(results, args.json, HERE, "reparam", device)
    print(render.render(results), end="")
    log(f"total {results['meta']['total_wall_s']:.1f} s")
    return results


if __name__ == "__main__":
    main()
