#!/usr/bin/env python
"""Render the committed benchmark results (``benchmarks/results/*.json``) into
``docs/benchmarks.md`` (tables) and ``docs/img/benchmark_speedups.png`` (a plot).

    python benchmarks/render_docs.py [--results DIR] [--out docs/benchmarks.md] [--img-dir docs/img]
    python benchmarks/render_docs.py --check     # exit 1 if docs/benchmarks.md is stale

Rerunnable and deterministic: the same JSON files give the same markdown. Every results
file written by a ``benchmarks/bench_<op>.py`` script (schema ``gensample-bench/1``) is
read; for each suite the main run (the file named ``<suite>-<device>-<machine>.json``,
i.e. the shortest name) is tabulated case by case and the other runs are linked.
Per case: the fastest gensample backend, the fastest textbook (eager) reference, the
fastest ``torch.compile`` variant, and the ratios (``x ref`` = reference median /
gensample median: above 1, gensample is faster). Suites the script does not know get
the same generic table, so new suites (ais, ess) render without changes here.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# fields that name a case, per suite (the first ones present are used); others: _DEFAULT_KEYS
_KEYS = {
    "reparam": ("section", "shape", "mode", "kind", "numel"),
    "gibbs": ("section", "case"),
    "langevin": ("section", "size", "variant", "model", "batch", "steps"),
    "diagnostics": ("shape", "dtype"),
}
_DEFAULT_KEYS = ("section", "case", "shape", "size", "mode", "variant", "kind", "model", "batch", "chains", "steps",
                 "n_betas", "dtype")


def _is_gensample(impl: str) -> bool:
    return impl.startswith("gensample")


def _is_reference(impl: str) -> bool:
    """Eager references: the textbook code, ArviZ, the plain ATen generators, sklearn."""
    i = impl.lower()
    return (i.startswith("textbook") or i.startswith("arviz") or "(aten)" in i or "(eager)" in i
            or i.startswith("sklearn"))


def _is_compile(impl: str) -> bool:
    return impl.startswith("torch.compile")


def _rows(res: dict) -> list[dict]:
    """Flatten a results JSON into ``{case, impl, median_s, p20_s, p80_s}`` rows."""
    suite = res.get("benchmark", "?")
    keys = _KEYS.get(suite, _DEFAULT_KEYS)
    out = []
    for rec in res.get("records", []):
        parts = []
        for k in keys:
            if k in rec and rec[k] is not None:
                v = rec[k]
                v = "x".join(str(x) for x in v) if isinstance(v, list) else str(v)
                if k in ("batch", "steps", "numel", "chains", "n_betas") and k not in ("case",):
                    v = f"{k} {v}"
                parts.append(v)
        case = ", ".join(dict.fromkeys(parts)) or "(all)"
        if "impls" in rec:  # diagnostics-style: several implementations per record
            for impl, r in rec["impls"].items():
                if "median_s" in r:
                    out.append({"case": case, "impl": impl, "median_s": r["median_s"], "p20_s": r.get("p20_s"),
                                "p80_s": r.get("p80_s")})
        elif "impl" in rec and rec.get("median_s") is not None:
            out.append({"case": case, "impl": rec["impl"], "median_s": rec["median_s"], "p20_s": rec.get("p20_s"),
                        "p80_s": rec.get("p80_s")})
    return out


def _ms(s) -> str:
    if s is None:
        return ""
    ms = 1e3 * s
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _best(rows, pred):
    c = [r for r in rows if pred(r["impl"])]
    return min(c, key=lambda r: r["median_s"]) if c else None


def summarize(res: dict) -> list[dict]:
    """One dict per case: best gensample / reference / compile rows and the ratios."""
    by_case: dict[str, list] = {}
    for r in _rows(res):
        by_case.setdefault(r["case"], []).append(r)
    out = []
    for case, rows in by_case.items():
        g, ref, comp = _best(rows, _is_gensample), _best(rows, _is_reference), _best(rows, _is_compile)
        if ref is not None:  # like for like when the names say so ("arviz X" vs "gensample X")
            rest = ref["impl"].split(" ", 1)[-1]
            same = _best(rows, lambda i: _is_gensample(i) and i.split(" ", 1)[-1].startswith(rest))
            g = same or g
        out.append({"case": case, "gensample": g, "reference": ref, "compile": comp,
                    "x_ref": (ref["median_s"] / g["median_s"]) if g and ref else None,
                    "x_compile": (comp["median_s"] / g["median_s"]) if g and comp else None})
    return out


def _meta_line(res: dict) -> str:
    m = res.get("meta", {})
    bits = [f"device {m.get('device', '?')}"]
    if m.get("cpu"):
        bits.append(f"{m['cpu']} ({m.get('logical_cpus', '?')} logical CPUs, {m.get('torch_threads', '?')} torch threads)")
    if m.get("gpu"):
        bits.append(str(m["gpu"]))
    bits.append(f"torch {m.get('torch', '?')}")
    if m.get("triton"):
        bits.append(f"triton {m['triton']}")
    if m.get("date") or m.get("timestamp"):
        bits.append(str(m.get("date") or m.get("timestamp")))
    return ", ".join(bits)


def render_suite(path: str, res: dict, others: list[str], out_dir: str) -> str:
    suite = res.get("benchmark", "?")
    rel = os.path.relpath(path, out_dir)
    L = [f"## {suite}", "", f"From [{os.path.basename(path)}]({rel}): {_meta_line(res)}.", ""]
    md = os.path.splitext(path)[0] + ".md"
    if os.path.exists(md):
        L += [f"The suite's own full report (every implementation, bandwidth, memory): "
              f"[{os.path.basename(md)}]({os.path.relpath(md, out_dir)}).", ""]
    rows = []
    for s in summarize(res):
        g, ref, comp = s["gensample"], s["reference"], s["compile"]
        rows.append([s["case"],
                     f"{_ms(g['median_s'])} ({g['impl']})" if g else "",
                     f"{_ms(ref['median_s'])} ({ref['impl']})" if ref else "",
                     f"{_ms(comp['median_s'])} ({comp['impl']})" if comp else "",
                     f"{s['x_ref']:.2f}x" if s["x_ref"] else "",
                     f"{s['x_compile']:.2f}x" if s["x_compile"] else ""])
    L.append("| case | gensample ms | reference ms | torch.compile ms | x ref | x compile |")
    L.append("|---|---|---|---|---|---|")
    L += ["| " + " | ".join(r) + " |" for r in rows]
    notes = res.get("notes") or []
    if notes:
        L += ["", "Notes recorded with the run:", ""] + [f"- {n}" for n in notes]
    if others:
        L += ["", "Other runs of this suite (same tables, other conditions): "
              + ", ".join(f"[{os.path.basename(o)}]({os.path.relpath(o, out_dir)})" for o in others) + "."]
    return "\n".join(L)


def load(results_dir: str) -> dict[str, list[tuple[str, dict]]]:
    """``{suite: [(path, results), ...]}`` with the main run (shortest file name) first."""
    suites: dict[str, list] = {}
    for p in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        try:
            with open(p) as f:
                res = json.load(f)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"render_docs: cannot read {p}: {exc}")
        if not isinstance(res, dict) or "benchmark" not in res:
            continue
        suites.setdefault(res["benchmark"], []).append((p, res))
    for v in suites.values():
        v.sort(key=lambda pr: (len(os.path.basename(pr[0])), pr[0]))
    return suites


def render(results_dir: str, out_path: str, img_dir: str, write_img: bool = True) -> str:
    out_dir = os.path.dirname(os.path.abspath(out_path))
    suites = load(results_dir)
    img = os.path.join(img_dir, "benchmark_speedups.png")
    L = ["# Benchmarks", "",
         "<!-- generated by benchmarks/render_docs.py from benchmarks/results/*.json: do not edit by hand; "
         "rerun `python benchmarks/render_docs.py` (or `make docs`) -->", "",
         "Every number below comes from a committed results file written by `benchmarks/bench_<op>.py` "
         "(or `gensample bench`), one process per suite, on the machine named in each section. "
         "Medians of repeated timed blocks; `reference` is the fastest eager textbook implementation "
         "of the same case (or ArviZ / the ATen generator / scikit-learn where that is the reference), "
         "`x ref` = reference / gensample and `x compile` = torch.compile / gensample (above 1: gensample "
         "is faster). Reproduce a suite with `python benchmarks/bench_<op>.py --json auto`, "
         "or all with `gensample bench --json FILE`.", ""]
    labels, ratios, groups = [], [], []
    for suite, runs in sorted(suites.items()):
        for s in summarize(runs[0][1]):
            if s["x_ref"]:
                labels.append(f"{suite}: {s['case']}"[:70])
                ratios.append(s["x_ref"])
                groups.append(suite)
    if labels:
        L += [f"![gensample vs the eager reference, per case]({os.path.relpath(img, out_dir)})", ""]
    L += ["Suites: " + ", ".join(f"[{s}](#{s})" for s in sorted(suites)) + ".", ""]
    for suite, runs in sorted(suites.items()):
        L.append(render_suite(runs[0][0], runs[0][1], [p for p, _ in runs[1:]], out_dir))
        L.append("")
    text = "\n".join(L)
    if write_img and labels:
        sys.path.insert(0, ROOT)
        from gensample import plots

        plots.bar_speedups(labels, ratios, img, groups=groups,
                           title="gensample vs the fastest eager reference (main run of each suite)")
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=os.path.join(HERE, "results"), help="directory of results JSON files")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"), help="markdown to write")
    ap.add_argument("--img-dir", default=os.path.join(ROOT, "docs", "img"), help="where the PNG plot goes")
    ap.add_argument("--check", action="store_true", help="only check that --out is up to date (exit 1 if not)")
    args = ap.parse_args(argv)
    text = render(args.results, args.out, args.img_dir, write_img=not args.check)
    if args.check:
        try:
            with open(args.out) as f:
                same = f.read() == text
        except OSError:
            same = False
        if not same:
            print(f"{args.out} is stale: run python benchmarks/render_docs.py", file=sys.stderr)
            return 1
        return 0
    tmp = args.out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)
    print(f"wrote {args.out} and {os.path.join(args.img_dir, 'benchmark_speedups.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
