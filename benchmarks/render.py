#!/usr/bin/env python
"""Render a gensample benchmark results JSON as markdown tables.

    python benchmarks/render.py benchmarks/results/reparam-cpu-amd-epyc.json [more.json ...]

Every derived number (median, p20/p80, Melem/s, GB/s, fractions, speedups) is
recomputed here from the raw per-block times and the ceilings stored in the JSON,
so a results file can be re-rendered (or re-analysed) without rerunning anything.
Needs only the standard library.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import GB, fmt_bytes, fmt_ms, fmt_num, fmt_pct, fmt_x, md_table  # noqa: E402

TEXTBOOK = "textbook (eager)"
COMPILE_IMPLS = ("torch.compile", "torch.compile+fbr")


def _stats(rec):
    if rec.get("times_s"):
        return common.summarize(rec["times_s"])
    return None


def copy_bw(results, numel=None):
    """Copy bandwidth (GB/s) the fractions are quoted against.

    numel=None: the 256 MB figure, the larger of the start- and end-of-run measurements
    (the larger ceiling gives the smaller, more conservative fraction)."""
    c = results.get("ceilings") or {}
    if numel is None:
        vals = []
        for key in ("ceilings", "ceilings_end"):
            r = ((results.get(key) or {}).get("copy") or {}).get(str(64 * common.MB))
            if r and r.get("times_s"):
                vals.append(2 * 4 * 64 * common.MB / common.summarize(r["times_s"])["median_s"] / GB)
        return max(vals) if vals else None
    r = (c.get("copy") or {}).get(str(numel))
    if r and r.get("times_s"):
        return 2 * 4 * numel / common.summarize(r["times_s"])["median_s"] / GB
    return None


def render_meta(results) -> str:
    m = results.get("meta", {})
    gi = m.get("gensample_info") or {}
    ext = (gi.get("extension") or {})
    lines = [
        f"Device: **{m.get('device')}**; CPU {m.get('cpu')} ({m.get('logical_cpus')} logical CPUs, {m.get('cpu_flags')}); "
        f"GPU {m.get('gpu') or 'none'}.",
        f"torch {m.get('torch')} (threads={m.get('torch_threads')}, capability {m.get('torch_cpu_capability')}), "
        f"triton {m.get('triton')}, numpy {m.get('numpy')}, python {m.get('python')}; "
        f"gensample {gi.get('gensample')} (extension {'loaded' if ext.get('loaded') else 'not loaded'}), "
        f"git {str(m.get('git_commit'))[:10]} ({m.get('git_modified_tracked_files', '?')} modified tracked files).",
        f"THP sysfs `{m.get('thp_sysfs')}`, THP_MEM_ALLOC_ENABLE=`{m.get('THP_MEM_ALLOC_ENABLE') or 'unset'}`, "
        f"malloc env {m.get('malloc_env') or 'unset'}; inductor cache {m.get('inductor_cache')}; "
        f"load average at start {m.get('loadavg_start')}.",
        f"Command: `{m.get('command')}`; {m.get('date_utc')}; total wall {fmt_num(m.get('total_wall_s'))} s.",
    ]
    return "\n".join(lines)


def render_ceilings(results) -> str:
    c = results.get("ceilings") or {}
    rows = []
    for numel, r in sorted((c.get("copy") or {}).items(), key=lambda kv: -int(kv[0])):
        s = common.summarize(r["times_s"])
        n = int(numel)
        rows.append([f"copy_ fp32 {4 * n / common.MB:g} MB (read + write)", fmt_ms(s["median_s"]),
                     f"{fmt_ms(s['p20_s'])} to {fmt_ms(s['p80_s'])}", f"{fmt_num(8 * n / s['median_s'] / GB)} GB/s"])
    ce = ((results.get("ceilings_end") or {}).get("copy") or {}).get(str(64 * common.MB))
    if ce:
        s = common.summarize(ce["times_s"])
        rows.append(["copy_ fp32 256 MB, end of run", fmt_ms(s["median_s"]),
                     f"{fmt_ms(s['p20_s'])} to {fmt_ms(s['p80_s'])}",
                     f"{fmt_num(8 * 64 * common.MB / s['median_s'] / GB)} GB/s"])
    for n, r in sorted((c.get("gemm") or {}).items(), key=lambda kv: int(kv[0])):
        s = common.summarize(r["times_s"])
        rows.append([f"GEMM fp32 {n}^3 (torch.mm out=)", fmt_ms(s["median_s"]),
                     f"{fmt_ms(s['p20_s'])} to {fmt_ms(s['p80_s'])}",
                     f"{fmt_num(2 * int(n) ** 3 / s['median_s'] / 1e9)} GFLOP/s"])
    if not rows:
        return ""
    bw = copy_bw(results)
    head = ("### Hardware ceilings (measured in this run)\n\n"
            + (f"Fractions below are quoted against **{fmt_num(bw)} GB/s** (256 MB copy, the larger of the "
               "start and end measurements).\n\n" if bw else ""))
    return head + md_table(["quantity", "median ms", "p20 to p80 ms", "rate"], rows)


def _group_key(r):
    return (r["shape"], r["mode"])


def reparam_rows(results):
    bw = copy_bw(results)
    groups = common.group_records(results, "reparam", _group_key)
    rows = []
    for key in groups:  # insertion order = run order
        g = groups[key]
        st = {r["impl"]: _stats(r) for r in g}
        tb = st.get(TEXTBOOK)
        comp = [st[i]["median_s"] for i in COMPILE_IMPLS if st.get(i)]
        best_comp = min(comp) if comp else None
        for r in g:
            s = st[r["impl"]]
            numel, bpe = r["numel"], r["min_bytes_per_elem"]
            if s is None:
                rows.append([r["shape"], r["mode"], r["impl"], "error: " + str(r.get("error", "?"))[:80]]
                            + ["-"] * 9)
                continue
            t = s["median_s"]
            eff = bpe * numel / t / GB
            same = copy_bw(results, numel)
            rows.append([
                r["shape"], r["mode"], r["impl"], fmt_ms(t), f"{fmt_ms(s['p20_s'])} to {fmt_ms(s['p80_s'])}",
                fmt_num(numel / t / 1e6), fmt_num(eff), fmt_pct(eff / bw) if bw else "-",
                fmt_pct(eff / same) if same else "-",
                fmt_x(tb["median_s"] / t) if tb else "-",
                fmt_x(best_comp / t) if best_comp else "-",
                fmt_num(r["compile_s"]) if r.get("compile_s") is not None else "-",
                fmt_bytes(r.get("peak_alloc_bytes")),
            ])
    return rows


def render_reparam(results) -> str:
    rows = reparam_rows(results)
    if not rows:
        return ""
    headers = ["shape", "mode", "impl", "median ms", "p20 to p80 ms", "Melem/s", "eff GB/s", "% copy BW",
               "% copy BW same size", "x textbook", "x best compile", "compile s", "peak MB"]
    return ("### Reparameterize + KL, fp32 (min fused bytes: fwd 12 B/elem, fwd+bwd 32 B/elem)\n\n"
            + md_table(headers, rows))


def render_generators(results) -> str:
    groups = common.group_records(results, "generators", lambda r: (r["kind"], r["numel"]))
    if not groups:
        return ""
    rows = []
    for (kind, numel), g in groups.items():
        st = {r["impl"]: _stats(r) for r in g}
        aten = next((st[r["impl"]] for r in g if r.get("is_aten")), None)
        for r in g:
            s = st[r["impl"]]
            n = f"{numel / common.MB:g}M" if numel >= common.MB else str(numel)
            if s is None:
                rows.append([kind, n, r["impl"], "error: " + str(r.get("error", "?"))[:80]] + ["-"] * 4)
                continue
            t = s["median_s"]
            rows.append([kind, n, r["impl"], fmt_ms(t), f"{fmt_ms(s['p20_s'])} to {fmt_ms(s['p80_s'])}",
                         fmt_num(numel / t / 1e6), fmt_num(4 * numel / t / GB),
                         fmt_x(aten["median_s"] / t) if aten else "-"])
    return ("### Raw generators (fp32 samples, allocating a fresh output each call)\n\n"
            + md_table(["dist", "n", "impl", "median ms", "p20 to p80 ms", "Msamples/s", "GB/s written",
                        "x ATen"], rows))


def render_notes(results) -> str:
    notes = results.get("notes") or []
    if not notes:
        return ""
    return "### Notes and skipped cases\n\n" + "\n".join(f"- {n}" for n in notes)


def render(results) -> str:
    parts = [render_meta(results), render_ceilings(results), render_reparam(results),
             render_generators(results), render_notes(results)]
    return "\n\n".join(p for p in parts if p) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="results JSON file(s) written by a benchmarks/bench_*.py script")
    args = ap.parse_args(argv)
    for i, path in enumerate(args.json):
        with open(path) as f:
            res = json.load(f)
        if len(args.json) > 1:
            print(f"{'' if i == 0 else chr(10)}## {path}\n")
        print(render(res), end="")


if __name__ == "__main__":
    main()
