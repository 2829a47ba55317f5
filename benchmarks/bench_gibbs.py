#!/usr/bin/env python
"""Benchmark RBM block Gibbs sampling (gensample.ops.gibbs_sweeps) and a full CD-1 step
against the PyTorch ways of doing the same thing.

    python benchmarks/bench_gibbs.py [--device cpu|cuda] [--quick] [--json PATH|auto]
                                     [--no-compile] [--render FILE.json]

Sampling case = k block-Gibbs sweeps of a Bernoulli RBM from binary v0 (the chain of
``gibbs_sweeps``: h0 ~ p(h|v0), then k times v ~ p(v|h), h ~ p(h|v); 2k+1 half-steps),
returning (v_k, h_k, p(h|v_k)). fp32, random weights N(0, 0.1^2), biases N(0, 0.1^2).
Competitors, timed interleaved in one process:
  * textbook (bernoulli):     gensample.reference.rbm_gibbs_textbook, torch.bernoulli(p)
  * textbook (rand-compare):  the same with (torch.rand_like(p) < p)   (fastest eager form)
  * textbook (relu-sign):     the same with relu(sign(p - rand_like(p)))
  * torch.compile / +fbr:     the rand-compare textbook, fullgraph=True, dynamic=False; one
                              compiled first half-step and one compiled sweep, looped k times
                              in Python (a compiled k=100 loop would unroll 200 half-steps);
                              default inductor (in-kernel RNG) and options={"fallback_random": True}
  * sklearn BernoulliRBM.gibbs: fp32 arrays, called k times (2k half-steps: it draws no final h)
  * gensample[<b>]:           gibbs_sweeps(v, W, b, c, k=k, backend=b, return_hidden_prob=True)
                              for every backend that runs on the device (triton skipped on CPU:
                              interpreter; the torch backend, the pure-torch spec, only for small
                              cases, see --torch-backend-max-units)
  * GEMMs only:               the 2k+1 products alone (torch.mm into preallocated outputs), the
                              floor of any implementation that uses ATen's GEMM
CD-1 step (784x500 B=256 and 64x32 B=1024): textbook = sample v_model with the eager loop,
loss = (F(v) - F(v_model)).mean(), backward, torch.optim.SGD step (both RNG variants);
torch.compile(+fbr) of the sampling + loss (backward through AOTAutograd, SGD eager);
gensample = gensample.train.RBMTrainer.step (fused gibbs_sweeps, one GEMM for both phases'
statistics, in-place update).

Derived columns: sweeps/s = k / t; visible samples/s = B k / t; unit updates/s =
B k (n_v + n_h) / t; GFLOP/s = 2 B n_v n_h (2k+1) / t and its fraction of the fp32 GEMM
throughput measured at the start of the run (1024^3 and 2048^3; the larger is used);
x GEMMs = t / (time of the GEMMs alone, same run). --json auto writes
benchmarks/results/gibbs-<device>-<model-slug>.json; the tables go to stdout.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import common  # noqa: E402

TEXTBOOK = {"bernoulli": "textbook (bernoulli)", "rand_compare": "textbook (rand-compare)",
            "relu_sign": "textbook (relu-sign)"}
COMPILE_IMPLS = ("torch.compile", "torch.compile+fbr")
GEMMS = "GEMMs only"
SKLEARN = "sklearn BernoulliRBM.gibbs"

# (n_visible, n_hidden, batch, k)
CPU_CASES = [(784, 500, 64, 1), (784, 500, 256, 1), (784, 500, 1024, 1), (64, 32, 1024, 1), (64, 32, 1024, 100)]
CUDA_EXTRA = [(784, 500, 1024, 100), (64, 32, 4096, 1000)]
QUICK_CASES = [(784, 500, 64, 1), (64, 32, 1024, 1), (64, 32, 256, 20)]
CD_CASES = [(784, 500, 256), (64, 32, 1024)]
QUICK_CD = [(64, 32, 256)]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="small cases, short blocks, no compile (smoke test)")
    ap.add_argument("--json", default=None, help="results path; 'auto' = benchmarks/results/gibbs-<device>-<model>.json")
    ap.add_argument("--render", default=None, help="only re-render this results JSON and exit")
    ap.add_argument("--sections", default="sweeps,cd", help="comma list of sweeps, cd")
    ap.add_argument("--cases", default=None, help="sweep cases, comma list of NVxNHxBxK (e.g. 64x32x1024x100)")
    ap.add_argument("--cd-cases", default=None, help="CD-1 cases, comma list of NVxNHxB")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile competitors")
    ap.add_argument("--compile", action="store_true", help="run the compile competitors even with --quick")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--torch-backend-max-units", type=int, default=None,
                    help="run gensample[torch] only when B (n_v + n_h) (2k+1) <= this (default 2^16)")
    common.add_harness_args(ap)
    a = ap.parse_args(argv)
    q = a.quick
    common.harness_defaults(a, group_budget=8.0)
    if q and not a.compile:
        a.no_compile = True
    if a.torch_backend_max_units is None:
        a.torch_backend_max_units = 1 << 16

    def cases(text, n):
        out = []
        for tok in (text or "").split(","):
            if tok.strip():
                vals = tuple(int(x) for x in tok.strip().lower().split("x"))
                if len(vals) != n:
                    raise SystemExit(f"bad case {tok!r}: expected {n} numbers joined by 'x'")
                out.append(vals)
        return out

    a.case_list = cases(a.cases, 4) or None
    a.cd_case_list = cases(a.cd_cases, 3) or None
    return a


ARGS = parse_args()


def _stats(rec):
    return common.summarize(rec["times_s"]) if rec.get("times_s") else None


def render_gibbs(results) -> str:
    from common import fmt_bytes, fmt_ms, fmt_num, fmt_pct, fmt_x, md_table

    peak = common.gemm_peak(results)
    out = []
    for section, title in (("sweeps", "Block Gibbs sweeps, fp32 (k sweeps = 2k+1 half-steps)"),
                           ("cd", "Full CD-1 training step, fp32")):
        groups = common.group_records(results, section, lambda r: r["case"])
        if not groups:
            continue
        rows = []
        for case, g in groups.items():
            st = {r["impl"]: _stats(r) for r in g}
            eager = [st[TEXTBOOK[v]]["median_s"] for v in TEXTBOOK if st.get(TEXTBOOK[v])]
            comp = [st[i]["median_s"] for i in COMPILE_IMPLS if st.get(i)]
            gem = st.get(GEMMS)
            for r in g:
                s = st[r["impl"]]
                if s is None:
                    rows.append([case, r["impl"], "error: " + str(r.get("error", "?"))[:70]] + ["-"] * 11)
                    continue
                t = s["median_s"]
                B, k, nv, nh = r["batch"], r["k"], r["n_visible"], r["n_hidden"]
                flops = r["flops"]
                rows.append([
                    case, r["impl"], fmt_ms(t), f"{fmt_ms(s['p20_s'])} to {fmt_ms(s['p80_s'])}",
                    fmt_num(k / t) if section == "sweeps" else fmt_num(1 / t),
                    fmt_num(B * k / t / 1e3), fmt_num(B * k * (nv + nh) / t / 1e6),
                    fmt_num(flops / t / 1e9), fmt_pct(flops / t / 1e9 / peak) if peak else "-",
                    fmt_x(t / gem["median_s"]) if gem else "-",
                    fmt_x(min(eager) / t) if eager else "-",
                    fmt_x(min(comp) / t) if comp else "-",
                    fmt_num(r["compile_s"]) if r.get("compile_s") is not None else "-",
                    fmt_bytes(r.get("peak_alloc_bytes")),
                ])
        head = ["case", "impl", "median ms", "p20 to p80 ms", "sweeps/s" if section == "sweeps" else "steps/s",
                "k vis samples/s", "M unit updates/s", "GFLOP/s", "% GEMM peak", "t / GEMMs",
                "x best eager", "x best compile", "compile s", "peak MB"]
        out.append(f"### {title}\n\n" + (f"GEMM peak: **{fmt_num(peak)} GFLOP/s** (fp32 torch.mm, this run). "
                                          if peak else "")
                   + "`t / GEMMs` = this time over the time of the same GEMMs alone (same run); "
                     "`x best eager` / `x best compile` = best textbook (or compiled) median over this one.\n\n"
                   + md_table(head, rows))
    return "\n\n".join(out)


def render_all(results) -> str:
    return common.render_with_meta(results, render_gibbs(results))


common.render_or_setup(ARGS, render_all)

import torch  # noqa: E402
import torch._dynamo  # noqa: E402

import gensample  # noqa: E402
from gensample import reference  # noqa: E402
from gensample.ops import gibbs_sweeps  # noqa: E402
from gensample.train import RBMTrainer  # noqa: E402

log = common.log


def _err(e):
    return common.err_text(e, first_sentence=False)


def _probe(device):
    """None if a backend runs gibbs_sweeps on a tiny input here, else why not."""
    return common.gibbs_probe(device, _err, k=2)

def make_rbm(nv, nh, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = (0.1 * torch.randn(nv, nh, generator=g)).to(device)
    b = (0.1 * torch.randn(nv, generator=g)).to(device)
    c = (0.1 * torch.randn(nh, generator=g)).to(device)
    return W, b, c


# -- compiled textbook pieces (distinct code objects per configuration) --------------------
def _first_default(v, W, c):
    return reference.bernoulli_textbook(reference.rbm_prob_hidden_textbook(v, W, c), "rand_compare")


def _sweep_default(h, W, b, c):
    v = reference.bernoulli_textbook(reference.rbm_prob_visible_textbook(h, W, b), "rand_compare")
    ph = reference.rbm_prob_hidden_textbook(v, W, c)
    return v, reference.bernoulli_textbook(ph, "rand_compare"), ph


def _first_fbr(v, W, c):
    return reference.bernoulli_textbook(reference.rbm_prob_hidden_textbook(v, W, c), "rand_compare")


def _sweep_fbr(h, W, b, c):
    v = reference.bernoulli_textbook(reference.rbm_prob_visible_textbook(h, W, b), "rand_compare")
    ph = reference.rbm_prob_hidden_textbook(v, W, c)
    return v, reference.bernoulli_textbook(ph, "rand_compare"), ph


COMPILE_CONFIGS = [("torch.compile", _first_default, _sweep_default, {}),
                   ("torch.compile+fbr", _first_fbr, _sweep_fbr, {"fallback_random": True})]


def _chain(first, sweep, v, W, b, c, k):
    h = first(v, W, c)
    ph = None
    for _ in range(k):
        v, h, ph = sweep(h, W, b, c)
    return v, h, ph


def _timed_first_call(runner, fn):
    runner.sync()
    t0 = time.perf_counter()
    fn()
    runner.sync()
    c_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn()
    runner.sync()
    return c_s, time.perf_counter() - t0


def _record(results, args, runner, steps, timed, base, compile_info):
    for name in steps:
        rec = dict(base, impl=name)
        rec.update(compile_info.get(name, {}))
        rec.update(timed[name])
        if not args.no_memory and "error" not in timed[name] and name != GEMMS:
            try:
                rec.update(common.peak_memory(steps[name], args.device, warm=False))
            except Exception as e:
                rec["peak_error"] = _err(e)
        results["records"].append(rec)
        if "median_s" in rec:
            log(f"  {name:30s} {rec['median_s'] * 1e3:10.4f} ms  (p20 {rec['p20_s'] * 1e3:.4f}, p80 "
                f"{rec['p80_s'] * 1e3:.4f})" + (f"  peak {rec['peak_alloc_bytes'] / common.MB:.2f} MB"
                                                  if rec.get("peak_alloc_bytes") is not None else ""))
        else:
            log(f"  {name:30s} error: {rec.get('error')}")
    for name, info in compile_info.items():
        if name not in steps:
            results["records"].append(dict(base, impl=name, **info))


def _compile_competitors(args, runner, notes, label, make_step):
    fns, info = {}, {}
    if args.no_compile:
        return fns, info
    for name, first, sweep, opts in COMPILE_CONFIGS:
        try:
            step = make_step(name, first, sweep, opts)
            c_s, second = _timed_first_call(runner, step)
            info[name] = {"compile_s": c_s, "second_call_s": second, "compile_options": opts,
                          "fullgraph": True, "dynamic": False}
            fns[name] = step
            log(f"  {name}: first call (compile) {c_s:.2f} s")
        except Exception as e:
            log(traceback.format_exc(limit=3))
            info[name] = {"error": _err(e), "compile_options": opts}
            notes.append(f"{name} failed for {label}: {_err(e)}")
    return fns, info


def section_sweeps(args, runner, results, backends, cases):
    device, notes = args.device, results["notes"]
    try:
        from sklearn.neural_network import BernoulliRBM as SkRBM
        import numpy as np
    except Exception as e:  # optional competitor
        SkRBM = None
        notes.append(f"scikit-learn competitor skipped: {_err(e)}")
    for nv, nh, B, k in cases:
        case = f"{nv}x{nh} B={B} k={k}"
        log(f"== sweeps {case}")
        torch._dynamo.reset()
        W, b, c = make_rbm(nv, nh, device)
        g = torch.Generator().manual_seed(1)
        v0 = (torch.rand(B, nv, generator=g) < 0.5).float().to(device)
        steps = {}
        for variant, name in TEXTBOOK.items():
            steps[name] = (lambda var: (lambda: reference.rbm_gibbs_textbook(v0, W, b, c, k, var)))(variant)

        def make_step(name, first, sweep, opts):
            f1 = torch.compile(first, fullgraph=True, dynamic=False, options=dict(opts) or None)
            f2 = torch.compile(sweep, fullgraph=True, dynamic=False, options=dict(opts) or None)
            return lambda: _chain(f1, f2, v0, W, b, c, k)

        cfns, cinfo = _compile_competitors(args, runner, notes, case, make_step)
        steps.update(cfns)
        if SkRBM is not None and device == "cpu" and not args.no_sklearn:
            sk = SkRBM(n_components=nh)
            sk.components_ = W.t().contiguous().numpy()
            sk.intercept_hidden_ = c.numpy().copy()
            sk.intercept_visible_ = b.numpy().copy()
            sk.random_state_ = np.random.RandomState(0)
            v_np = v0.numpy().copy()

            def sk_step(sk=sk, v_np=v_np):
                v = v_np
                for _ in range(k):
                    v = sk.gibbs(v)
                return v

            steps[SKLEARN] = sk_step
        for be in backends:
            if be == "torch" and B * (nv + nh) * (2 * k + 1) > args.torch_backend_max_units:
                continue
            steps[f"gensample[{be}]"] = (lambda bb: (lambda: gibbs_sweeps(v0, W, b, c, k=k, backend=bb,
                                                                           return_hidden_prob=True)))(be)
        a_h = torch.empty(B, nh, device=device)
        a_v = torch.empty(B, nv, device=device)
        Wt = W.t()
        h0 = (torch.rand(B, nh, generator=g) < 0.5).float().to(device)

        def gemms():
            torch.mm(v0, W, out=a_h)
            for _ in range(k):
                torch.mm(h0, Wt, out=a_v)
                torch.mm(v0, W, out=a_h)

        steps[GEMMS] = gemms
        timed = runner.run_group(steps, case)
        base = {"section": "sweeps", "case": case, "n_visible": nv, "n_hidden": nh, "batch": B, "k": k,
                "flops": 2 * B * nv * nh * (2 * k + 1), "dtype": "float32", "device": device}
        if SKLEARN in steps:
            base_sk = dict(base, flops=2 * B * nv * nh * 2 * k)
            _record(results, args, runner, {SKLEARN: steps.pop(SKLEARN)}, timed, base_sk, {})
        _record(results, args, runner, steps, timed, base, cinfo)
        del steps
        torch._dynamo.reset()


def section_cd(args, runner, results, backends, cases):
    device, notes = args.device, results["notes"]
    lr = 1e-3
    for nv, nh, B in cases:
        case = f"CD-1 {nv}x{nh} B={B}"
        log(f"== {case}")
        torch._dynamo.reset()
        g = torch.Generator().manual_seed(2)
        data = (torch.rand(B, nv, generator=g) < 0.5).float().to(device)
        steps = {}
        for variant in ("bernoulli", "rand_compare"):
            model = reference.TextbookRBM(nv, nh, init_std=0.1, generator=g, variant=variant).to(device)
            opt = torch.optim.SGD(model.parameters(), lr=lr)

            def tb_step(model=model, opt=opt):
                v_model = model.gibbs(data, 1)
                loss = (model.free_energy(data) - model.free_energy(v_model)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()

            steps[TEXTBOOK[variant]] = tb_step

        def make_step(name, first, sweep, opts):
            model = reference.TextbookRBM(nv, nh, init_std=0.1, generator=g).to(device)
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            fo = dict(opts) or None
            f1 = torch.compile(first, fullgraph=True, dynamic=False, options=fo)
            f2 = torch.compile(sweep, fullgraph=True, dynamic=False, options=fo)
            floss = torch.compile(lambda v, vm, W, b, c: (reference.rbm_free_energy_textbook(v, W, b, c)
                                                          - reference.rbm_free_energy_textbook(vm, W, b, c)).mean(),
                                  fullgraph=True, dynamic=False, options=fo)

            def st():
                with torch.no_grad():
                    vm = _chain(f1, f2, data, model.weight, model.visible_bias, model.hidden_bias, 1)[0]
                loss = floss(data, vm, model.weight, model.visible_bias, model.hidden_bias)
                opt.zero_grad()
                loss.backward()
                opt.step()

            return st

        cfns, cinfo = _compile_competitors(args, runner, notes, case, make_step)
        steps.update(cfns)
        for be in backends:
            if be == "torch" and B * (nv + nh) * 3 > args.torch_backend_max_units:
                continue
            m = gensample.BernoulliRBM(nv, nh, init_std=0.1, generator=g).to(device)
            tr = RBMTrainer(m, batch_size=B, lr=lr, k=1, method="cd", generator=torch.Generator().manual_seed(3),
                            backend=be)
            steps[f"gensample[{be}]"] = (lambda t: (lambda: t.step(data)))(tr)
        W, b, c = make_rbm(nv, nh, device)
        a_h = torch.empty(2 * B, nh, device=device)
        a_v = torch.empty(B, nv, device=device)
        gW = torch.empty(nv, nh + 1, device=device)
        vv = torch.cat([data, data])
        hh = torch.rand(2 * B, nh + 1, generator=g).to(device)

        def gemms():  # forward products of a CD-1 step: v->h, h->v, both phases' p_h, the statistics GEMM
            torch.mm(data, W, out=a_h[:B])
            torch.mm(a_h[:B], W.t(), out=a_v)
            torch.mm(vv, W, out=a_h)
            torch.mm(vv.t(), hh, out=gW)

        steps[GEMMS] = gemms
        timed = runner.run_group(steps, case)
        base = {"section": "cd", "case": case, "n_visible": nv, "n_hidden": nh, "batch": B, "k": 1,
                "flops": 2 * B * nv * nh * 7, "dtype": "float32", "device": device}
        _record(results, args, runner, steps, timed, base, cinfo)
        del steps
        torch._dynamo.reset()


def main():
    args = ARGS
    device = args.device
    results, notes, t_start = common.start_run(
        args, "gibbs", "--quick run: small cases, short blocks, few rounds; a smoke test, not a measurement")
    runner = common.make_runner(args, device)
    backends = common.candidate_backends(device, notes, _probe(device))
    results["backends"] = backends
    if "torch" in backends:
        notes.append(f"gensample[torch] (pure-torch Philox, the executable spec) only runs where "
                     f"B (n_v + n_h) (2k+1) <= {args.torch_backend_max_units}: slow by design")
    notes.append("torch.compile competitors: one compiled first half-step and one compiled sweep (rand-compare "
                 "textbook, fullgraph=True, dynamic=False), looped k times in Python")
    notes.append("sklearn BernoulliRBM.gibbs does 2 half-steps per sweep (no final h); its GFLOP/s counts 2k GEMMs")
    for n in notes:
        log("note: " + n)
    log("== ceilings")
    results["ceilings"] = common.gemm_ceilings(runner, device, args.quick)
    if args.quick:
        cases, cd_cases = QUICK_CASES, QUICK_CD
    else:
        cases = CPU_CASES + (CUDA_EXTRA if device == "cuda" else [])
        cd_cases = CD_CASES
    cases = args.case_list or cases
    cd_cases = args.cd_case_list or cd_cases
    if not args.no_compile:
        results["meta"]["inductor_warmup_s"] = common.inductor_warmup(device)
    sec_times = common.run_sections([s.strip() for s in args.sections.split(",") if s.strip()], {
        "sweeps": lambda: section_sweeps(args, runner, results, backends, cases),
        "cd": lambda: section_cd(args, runner, results, backends, cd_cases),
    }, notes, _err, log_times=False)
    common.finish_meta(results, t_start, sec_times)
    common.save_results(results, args.json, HERE, "gibbs", device)
    print(render_all(results), end="")
    return results


if __name__ == "__main__":
    main()
