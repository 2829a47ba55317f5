#!/usr/bin/env python
"""Benchmark gensample's Langevin step and LangevinSampler against the PyTorch ways.

    python benchmarks/bench_langevin.py [--device cpu|cuda] [--sizes 1M,16M] [--quick]
                                        [--json PATH|auto] [--no-compile] [--sections step,sampler]

Section ``step`` (the update alone, given x and grad; fp32, rows of 1024 elements = one
32x32 image per chain), per (size, variant), timed interleaved in this one process:
  * textbook (eager):      x - h * g' + s * torch.randn_like(x) (then clamp), g' the clipped grad
  * textbook in-place:     (plain only) preallocated noise buffer, noise.normal_(), x.add_(...)
  * torch.compile:         of the textbook, fullgraph=True, dynamic=False (RNG in-kernel)
  * torch.compile+fbr:     the same with options={"fallback_random": True} (ATen RNG, rest fused)
  * gensample[<b>]:        gensample.langevin_step(x, g, ...) for each backend that runs here
                           (triton skipped on CPU: the interpreter is a test harness; the torch
                           backend, the pure-torch Philox spec, only up to --torch-backend-max-numel)
  * gensample[<b>] in-place: gensample.langevin_step_(x, g, ...)
Variants (the baseline's): plain; "clip+clamp" (value clip 0.01 and clamp (-1, 1)); "norm clip"
(per-chain L2 norm clip at 1.0). h = 0.01, s = sqrt(2h). Effective GB/s counts the minimum
12 bytes per element a fused step moves (read x and grad, write x').

Section ``sampler``: energy = 784-256-256-1 SiLU MLP, batch 256, 60 steps, h = 0.01, default
noise, clamp (-1, 1):
  * bare network:          60 x (forward + torch.autograd.grad w.r.t. x), no update: the floor
  * gensample sampler:     gensample.LangevinSampler(net, ...).sample(x0)
  * textbook loop (eager): 60 x (forward, autograd.grad, x - h g + s randn, clamp)
  * torch.compile / +fbr:  the textbook step compiled (torch._dynamo.config.trace_autograd_ops
                           = True, fullgraph=True), called 60 times
The sampler's overhead = its median / the bare network's median - 1 (issue floor: <= 15% on CPU).

``--json auto`` writes benchmarks/results/langevin-<device>-<model-slug>.json and the rendered
tables beside it (.md). See benchmarks/README.md for the harness, columns and noise caveats.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import common  # noqa: E402  (stdlib only; torch is imported after early_env)

DEFAULT_SIZES = "1M,16M"
QUICK_SIZES = "64K"
BYTES_PER_ELEM = 12
STEP = 0.01
SIGMA = math.sqrt(2 * STEP)
CLIP = 0.01  # IGEBM-style elementwise gradient clip
MAXNORM = 1.0  # per-chain L2 norm clip
ROW = 1024  # elements per chain
CLAMP = (-1.0, 1.0)
MLP_BATCH, MLP_STEPS = 256, 60
TEXTBOOK = "textbook (eager)"
COMPILE_IMPLS = ("torch.compile", "torch.compile+fbr")
VARIANTS = {
    "plain": dict(),
    "clip+clamp": dict(grad_clip=CLIP, clip_mode="value", clamp=CLAMP),
    "norm clip": dict(grad_clip=MAXNORM, clip_mode="norm"),
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--sizes", default=None, help=f"step sizes in elements (default {DEFAULT_SIZES}; quick {QUICK_SIZES})")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma list of " + ", ".join(VARIANTS))
    ap.add_argument("--sections", default="step,sampler", help="comma list of step, sampler")
    ap.add_argument("--mlp-steps", type=int, default=None, help=f"sampler steps (default {MLP_STEPS}; quick 5)")
    ap.add_argument("--quick", action="store_true", help="short blocks, few rounds, small sizes (smoke test)")
    ap.add_argument("--json", default=None,
                    help="write results here; 'auto' = benchmarks/results/langevin-<device>-<model>.json (+ .md)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile competitors")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    ap.add_argument("--no-ceilings", action="store_true",
                    help="skip the copy/GEMM ceilings (no %% copy BW column; for smoke tests)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--thp", action="store_true", help="set THP_MEM_ALLOC_ENABLE=1 (huge pages, CPU)")
    ap.add_argument("--warm-cache", action="store_true", help="use the default inductor cache")
    ap.add_argument("--torch-backend-max-numel", type=int, default=1 << 16,
                    help="run the (slow) torch backend only up to this many elements (default 2^16)")
    ap.add_argument("--block-time", type=float, default=None, help="seconds per block (default 0.2, quick 0.02)")
    ap.add_argument("--min-blocks", type=int, default=None, help="min rounds per group (default 7, quick 2)")
    ap.add_argument("--max-blocks", type=int, default=None, help="max rounds per group (default 40, quick 3)")
    ap.add_argument("--group-budget", type=float, default=None, help="seconds of timing per group (default 10, quick 0.3)")
    a = ap.parse_args(argv)
    q = a.quick
    a.sizes = a.sizes or (QUICK_SIZES if q else DEFAULT_SIZES)
    a.mlp_steps = a.mlp_steps or (5 if q else MLP_STEPS)
    a.block_time = a.block_time or (0.02 if q else 0.2)
    a.min_blocks = a.min_blocks or (2 if q else 7)
    a.max_blocks = a.max_blocks or (3 if q else 40)
    a.group_budget = a.group_budget or (0.3 if q else 10.0)
    return a


parse_sizes = common.parse_sizes


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    common.early_env(threads=ARGS.threads, thp=ARGS.thp, warm_cache=ARGS.warm_cache)

import torch  # noqa: E402
import torch._dynamo  # noqa: E402
from torch import nn  # noqa: E402

import gensample  # noqa: E402

import render  # noqa: E402

log = common.log
GB = common.GB


_err = common.err_text


def _distinct(f, tag):
    """A copy of ``f`` with its own code object, so each torch.compile configuration keeps
    its own dynamo cache entry (interleaved timing without recompiles)."""
    code = f.__code__.replace(co_name=f"{f.__name__}_{tag}")
    return types.FunctionType(code, f.__globals__, code.co_name, f.__defaults__, f.__closure__)


# ---------------------------------------------------------------------------
# textbook references (energy convention: x' = x - h * grad E + s * eps)
# ---------------------------------------------------------------------------


def textbook_plain(x, g):
    return x - STEP * g + SIGMA * torch.randn_like(x)


def textbook_clip_clamp(x, g):
    return (x - STEP * g.clamp(-CLIP, CLIP) + SIGMA * torch.randn_like(x)).clamp(CLAMP[0], CLAMP[1])


def textbook_norm_clip(x, g):
    n = g.norm(dim=1, keepdim=True)
    g = g * (MAXNORM / n).clamp(max=1.0)
    return x - STEP * g + SIGMA * torch.randn_like(x)


TEXTBOOK_FNS = {"plain": textbook_plain, "clip+clamp": textbook_clip_clamp, "norm clip": textbook_norm_clip}


def make_mlp(device):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, 1))
    return net.to(device)


def mlp_textbook_step(net, x):
    x = x.detach().requires_grad_(True)
    e = net(x).sum()
    (gx,) = torch.autograd.grad(e, x)
    return (x.detach() - STEP * gx + SIGMA * torch.randn_like(x)).clamp(CLAMP[0], CLAMP[1])


# ---------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------


def probe(b, device):
    """None if backend b runs langevin_step (every knob), langevin_step_ and the sampler here."""
    try:
        x = torch.randn(4, 8, device=device)
        g = torch.randn(4, 8, device=device)
        for kw in VARIANTS.values():
            y = gensample.langevin_step(x, g, step_size=STEP, backend=b, **kw)
            if y.shape != x.shape or not bool(torch.isfinite(y).all()):
                return "bad output on a probe input"
        gensample.langevin_step_(x.clone(), g, step_size=STEP, backend=b)
        gensample.LangevinSampler(lambda z: (z * z).sum(1), step_size=STEP, n_steps=2, backend=b).sample(x)
    except Exception as e:
        return _err(e)
    return None


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def compile_fn(runner, name, f, opts, call, notes, label, dynamo_patch=None):
    """Compile ``f`` and time its first (cold) and second calls through ``call(cf)``.
    Returns (callable or None, info dict)."""
    try:
        cf = torch.compile(f, fullgraph=True, dynamic=False, options=dict(opts) or None)
        ctx = torch._dynamo.config.patch(**dynamo_patch) if dynamo_patch else _Null()
        with ctx:
            runner.sync()
            t0 = time.perf_counter()
            call(cf)
            runner.sync()
            c_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            call(cf)
            runner.sync()
        info = {"compile_s": c_s, "second_call_s": time.perf_counter() - t0, "compile_options": opts,
                "fullgraph": True, "dynamic": False}
        if dynamo_patch:
            info["dynamo_patch"] = dynamo_patch
        log(f"  {name}: first call (compile) {c_s:.2f} s")
        return cf, info
    except Exception as e:
        log(traceback.format_exc(limit=3))
        notes.append(f"{name} failed for {label}: {_err(e)}")
        return None, {"error": _err(e), "compile_options": opts}


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _record(results, rec, timed, fn, args, device):
    rec.update(timed)
    if not args.no_memory and "error" not in timed:
        try:
            rec.update(common.peak_memory(fn, device, warm=False))
        except Exception as e:
            rec["peak_error"] = _err(e)
    results["records"].append(rec)
    if "median_s" in rec:
        log(f"  {rec['impl']:32s} {rec['median_s'] * 1e3:10.4f} ms  (p20 {rec['p20_s'] * 1e3:.4f}, "
            f"p80 {rec['p80_s'] * 1e3:.4f}, {rec['n_blocks']} blocks x {rec['number_per_block']})"
            + (f"  peak {rec['peak_alloc_bytes'] / common.MB:.1f} MB" if rec.get("peak_alloc_bytes") is not None
               else ""))
    else:
        log(f"  {rec['impl']:32s} error: {rec.get('error')}")


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------


def section_step(args, runner, results, backends):
    device = args.device
    notes = results["notes"]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v!r}; use {list(VARIANTS)}")
    for numel in parse_sizes(args.sizes):
        C = max(1, numel // ROW)
        g0 = torch.Generator().manual_seed(0)
        x = (torch.rand(C, ROW, generator=g0) * 2 - 1).to(device)
        g = torch.randn(C, ROW, generator=g0).to(device)
        size = f"{numel >> 20}M" if numel >= 1 << 20 else f"{numel >> 10}K"
        for vname in variants:
            kw = VARIANTS[vname]
            label = f"{size} {vname}"
            log(f"== step {label}")
            torch._dynamo.reset()
            tb = TEXTBOOK_FNS[vname]
            fns = {TEXTBOOK: (lambda f: (lambda: f(x, g)))(tb)}
            if vname == "plain":
                buf = torch.empty_like(x)
                xx = x.clone()

                def inplace_eager():
                    buf.normal_()
                    xx.add_(g, alpha=-STEP).add_(buf, alpha=SIGMA)

                fns["textbook in-place (eager)"] = inplace_eager
            compile_info = {}
            if not args.no_compile:
                for name, opts in (("torch.compile", {}), ("torch.compile+fbr", {"fallback_random": True})):
                    f = _distinct(tb, name.replace(".", "_").replace("+", "_"))
                    cf, info = compile_fn(runner, name, f, opts, lambda c: c(x, g), notes, label)
                    compile_info[name] = info
                    if cf is not None:
                        fns[name] = (lambda c: (lambda: c(x, g)))(cf)
            for b in backends:
                if b == "torch" and numel > args.torch_backend_max_numel:
                    continue
                fns[f"gensample[{b}]"] = (lambda bb: (lambda: gensample.langevin_step(
                    x, g, step_size=STEP, backend=bb, **kw)))(b)
                xb = x.clone()
                fns[f"gensample[{b}] in-place"] = (lambda bb, xb_: (lambda: gensample.langevin_step_(
                    xb_, g, step_size=STEP, backend=bb, **kw)))(b, xb)
            timed = runner.run_group(fns, label)
            for name in fns:
                rec = {"section": "step", "size": size, "numel": C * ROW, "rows": C, "row": ROW, "variant": vname,
                       "min_bytes_per_elem": BYTES_PER_ELEM, "impl": name, "dtype": "float32", "device": device}
                rec.update(compile_info.get(name, {}))
                _record(results, rec, timed[name], fns[name], args, device)
            for name, info in compile_info.items():
                if name not in fns:
                    results["records"].append({"section": "step", "size": size, "numel": C * ROW, "variant": vname,
                                               "min_bytes_per_elem": BYTES_PER_ELEM, "impl": name,
                                               "dtype": "float32", "device": device, **info})
            del fns
            torch._dynamo.reset()
        del x, g


def section_sampler(args, runner, results, backends):
    device = args.device
    notes = results["notes"]
    T = args.mlp_steps
    net = make_mlp(device)
    x0 = (torch.rand(MLP_BATCH, 784, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
    label = f"MLP 784-256-256-1 B={MLP_BATCH} x {T} steps"
    log(f"== sampler {label}")

    def bare():
        for _ in range(T):
            xg = x0.detach().requires_grad_(True)
            e = net(xg).sum()
            torch.autograd.grad(e, xg)

    def textbook_loop(step=mlp_textbook_step):
        x = x0
        for _ in range(T):
            x = step(net, x)
        return x

    fns = {"bare network (fwd + input grad)": bare}
    for b in backends:
        if b == "torch" and MLP_BATCH * 784 > args.torch_backend_max_numel:
            continue
        sampler = gensample.LangevinSampler(net, step_size=STEP, n_steps=T, clamp=CLAMP, backend=b)
        fns[f"gensample[{b}] sampler"] = (lambda s: (lambda: s.sample(x0)))(sampler)
    fns[TEXTBOOK + " loop"] = textbook_loop
    compile_info = {}
    if not args.no_compile:
        torch._dynamo.reset()
        for name, opts in (("torch.compile", {}), ("torch.compile+fbr", {"fallback_random": True})):
            f = _distinct(mlp_textbook_step, name.replace(".", "_").replace("+", "_"))
            patch = {"trace_autograd_ops": True}
            cf, info = compile_fn(runner, name, f, opts, lambda c: c(net, x0), notes, label, dynamo_patch=patch)
            compile_info[name + " loop"] = info
            if cf is not None:
                def loop(c=cf):
                    with torch._dynamo.config.patch(trace_autograd_ops=True):
                        x = x0
                        for _ in range(T):
                            x = c(net, x)
                    return x

                fns[name + " loop"] = loop
    timed = runner.run_group(fns, label)
    for name in fns:
        rec = {"section": "sampler", "model": "784-256-256-1 SiLU", "batch": MLP_BATCH, "steps": T,
               "impl": name, "is_bare": name.startswith("bare"), "dtype": "float32", "device": device,
               "step_size": STEP, "noise_scale": SIGMA, "clamp": list(CLAMP)}
        rec.update(compile_info.get(name, {}))
        _record(results, rec, timed[name], fns[name], args, device)
    for name, info in compile_info.items():
        if name not in fns:
            results["records"].append({"section": "sampler", "batch": MLP_BATCH, "steps": T, "impl": name,
                                       "dtype": "float32", "device": device, **info})
    torch._dynamo.reset()


def _stats(rec):
    return common.summarize(rec["times_s"]) if rec.get("times_s") else None


def render_step(results) -> str:
    groups = common.group_records(results, "step", lambda r: (r["size"], r["variant"]))
    if not groups:
        return ""
    bw = render.copy_bw(results)
    rows = []
    for (size, variant), g in groups.items():
        st = {r["impl"]: _stats(r) for r in g}
        tb = st.get(TEXTBOOK)
        comp = [st[i]["median_s"] for i in COMPILE_IMPLS if st.get(i)]
        best = min(comp) if comp else None
        for r in g:
            s = st[r["impl"]]
            if s is None:
                rows.append([size, variant, r["impl"], "error: " + str(r.get("error", "?"))[:80]] + ["-"] * 8)
                continue
            t = s["median_s"]
            eff = r["min_bytes_per_elem"] * r["numel"] / t / GB
            rows.append([size, variant, r["impl"], common.fmt_ms(t),
                         f"{common.fmt_ms(s['p20_s'])} to {common.fmt_ms(s['p80_s'])}", common.fmt_num(eff),
                         common.fmt_pct(eff / bw) if bw else "-", common.fmt_x(tb["median_s"] / t) if tb else "-",
                         common.fmt_x(best / t) if best else "-",
                         common.fmt_num(r["compile_s"]) if r.get("compile_s") is not None else "-",
                         common.fmt_bytes(r.get("peak_alloc_bytes"))])
    headers = ["size", "variant", "impl", "median ms", "p20 to p80 ms", "eff GB/s", "% copy BW", "x textbook",
               "x best compile", "compile s", "peak MB"]
    return ("### Langevin step alone, fp32, rows of 1024 (min fused bytes 12 B/elem: read x, grad; write x')\n\n"
            + common.md_table(headers, rows))


def render_sampler(results) -> str:
    recs = [r for r in results.get("records", []) if r.get("section") == "sampler"]
    if not recs:
        return ""
    st = {r["impl"]: _stats(r) for r in recs}
    bare = next((st[r["impl"]] for r in recs if r.get("is_bare") and st[r["impl"]]), None)
    tb = st.get(TEXTBOOK + " loop")
    rows = []
    for r in recs:
        s = st[r["impl"]]
        if s is None:
            rows.append([r["impl"], "error: " + str(r.get("error", "?"))[:80]] + ["-"] * 6)
            continue
        t = s["median_s"]
        rows.append([r["impl"], common.fmt_ms(t), f"{common.fmt_ms(s['p20_s'])} to {common.fmt_ms(s['p80_s'])}",
                     common.fmt_ms(t / r["steps"]),
                     ("-" if r.get("is_bare") else f"{100 * (t / bare['median_s'] - 1):+.1f}%") if bare else "-",
                     common.fmt_x(tb["median_s"] / t) if tb else "-",
                     common.fmt_num(r["compile_s"]) if r.get("compile_s") is not None else "-",
                     common.fmt_bytes(r.get("peak_alloc_bytes"))])
    steps = recs[0].get("steps")
    return (f"### MLP-energy sampler: 784-256-256-1 SiLU, batch {MLP_BATCH}, {steps} steps, h = {STEP}, "
            "clamp (-1, 1)\n\nOverhead = median / bare network median - 1 (the bare network runs the same "
            "forward + input-gradient passes with no update).\n\n"
            + common.md_table(["impl", f"median ms ({steps} steps)", "p20 to p80 ms", "ms / step",
                               "overhead vs bare", "x textbook", "compile s", "peak MB"], rows))


def floors(results) -> list:
    """The issue's CPU speed floors, evaluated on this run's medians."""
    out = []
    bw = render.copy_bw(results)
    recs = results.get("records", [])
    step = {r["impl"]: _stats(r) for r in recs
            if r.get("section") == "step" and r.get("size") == "16M" and r.get("variant") == "clip+clamp"}
    gs = [k for k in step if k.startswith("gensample[") and step[k] and k != "gensample[torch]"]
    if step.get(TEXTBOOK) and gs:
        best_g = min(step[k]["median_s"] for k in gs)
        name = min(gs, key=lambda k: step[k]["median_s"])
        out.append(("16M clip+clamp: gensample vs eager textbook", ">= 5x",
                    step[TEXTBOOK]["median_s"] / best_g, 5.0, name))
        comp = [step[i]["median_s"] for i in COMPILE_IMPLS if step.get(i)]
        if comp:
            out.append(("16M clip+clamp: gensample vs best torch.compile", ">= 3x", min(comp) / best_g, 3.0, name))
        if bw:
            out.append(("16M clip+clamp: eff GB/s / copy BW", ">= 30%", 12 * (16 << 20) / best_g / GB / bw, 0.30,
                        name))
    smp = [r for r in recs if r.get("section") == "sampler" and _stats(r)]
    bare = next((_stats(r) for r in smp if r.get("is_bare")), None)
    ss = [r for r in smp if r["impl"].startswith("gensample[") and r["impl"] != "gensample[torch] sampler"]
    if bare and ss:
        best = min(ss, key=lambda r: _stats(r)["median_s"])
        out.append(("MLP sampler overhead over bare network", "<= 15%", _stats(best)["median_s"] / bare["median_s"] - 1,
                    0.15, best["impl"]))
    return out


def render_floors(results) -> str:
    rows = []
    for what, floor, val, thr, impl in floors(results):
        ok = val <= thr if "<=" in floor else val >= thr
        shown = f"{100 * val:.1f}%" if "%" in floor else f"{val:.2f}x"
        rows.append([what, impl, floor, shown, "met" if ok else "NOT met"])
    if not rows:
        return ""
    return "### Issue floors (this run's medians)\n\n" + common.md_table(["floor", "impl", "target", "measured",
                                                                          "status"], rows)


def render_all(results) -> str:
    parts = [render.render_meta(results), render.render_ceilings(results), render_floors(results),
             render_step(results), render_sampler(results), render.render_notes(results)]
    return "\n\n".join(p for p in parts if p) + "\n"


# ---------------------------------------------------------------------------


def main():
    args = ARGS
    device = args.device
    results, notes, t_start = common.start_run(
        args, "langevin", "--quick run: short blocks, few rounds, small sizes; a smoke test, not a measurement")
    runner = common.make_runner(args, device)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    log(f"gensample {gensample.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"device {device}")
    backends = []
    for b in common.candidate_backends(device, notes):
        why = probe(b, device)
        if why is None:
            backends.append(b)
        else:
            notes.append(f"gensample backend `{b}` skipped on {device}: {why}")
    if "torch" in backends:
        notes.append(f"gensample[torch] (pure-torch Philox, the executable spec) only runs up to "
                     f"{args.torch_backend_max_numel} elements: it is slow by design")
    results["backends"] = backends
    for n in notes:
        log("note: " + n)

    if not args.no_ceilings:
        log("== ceilings")
        extra = sorted({max(1, n // ROW) * ROW for n in parse_sizes(args.sizes)}) if "step" in sections else []
        results["ceilings"] = common.measure_ceilings(runner, device, quick=args.quick, extra_copy_numels=extra)
    if not args.no_compile:
        results["meta"]["inductor_warmup_s"] = common.inductor_warmup(device)
    sec_times = common.run_sections(sections, {
        "step": lambda: section_step(args, runner, results, backends),
        "sampler": lambda: section_sampler(args, runner, results, backends),
    }, notes, _err)

    if not args.no_ceilings:
        common.copy_ceiling_end(runner, device, results)

    common.finish_meta(results, t_start, sec_times)
    results["floors"] = [dict(floor=w, target=f, measured=v, impl=i) for w, f, v, _, i in floors(results)]
    text = render_all(results)
    common.save_results(results, args.json, HERE, "langevin", device,
                        md_text=f"# Langevin benchmark ({device})\n\n" + text)
    print(text, end="")
    log(f"total {results['meta']['total_wall_s']:.1f} s")
    return results


if __name__ == "__main__":
    main()
