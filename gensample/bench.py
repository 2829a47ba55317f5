"""``gensample bench``: run the benchmark suites and merge their results.

Each suite is a script ``benchmarks/bench_<op>.py`` (``--quick``, ``--json PATH``,
``--device``); it runs in its own subprocess (a crash or a leaked thread setting stays
there), writes its results JSON into a temporary directory, and prints its own markdown
tables, which are shown here. The merged JSON is::

    {"schema": "gensample-bench-merged/1",
     "meta": {device, command, date, versions: {gensample, torch, triton, numpy, python},
              cpu, gpu, logical_cpus, gensample_info},
     "suites": {op: <the suite's own results JSON>},
     "skipped": {op: reason}, "failed": {op: {"returncode", "stderr_tail"}}}

Where the scripts are: the ``benchmarks/`` directory of a source checkout (next to the
``gensample`` package), else the installed copy (package ``gensample.benchmarks``, see
``pyproject.toml``), which is copied to a temporary directory first (the scripts put
their parent directory on ``sys.path``; the package directory must not shadow the
standard library there).
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from ._fileio import atomic_write
from ._sysinfo import cpu_model

OPS = ("reparam", "gibbs", "langevin", "diagnostics", "ais", "ess")

__all__ = ["OPS", "BenchError", "find_benchmarks", "run_suites", "compact_table", "metadata"]


class BenchError(RuntimeError):
    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


def find_benchmarks() -> tuple[str, bool]:
    """``(directory, installed)``: the directory holding ``bench_*.py`` and ``common.py``."""
    pkg = os.path.dirname(os.path.abspath(__file__))
    src = os.path.join(os.path.dirname(pkg), "benchmarks")
    if os.path.isfile(os.path.join(src, "common.py")):
        return src, False
    try:
        spec = importlib.util.find_spec("gensample.benchmarks")
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if os.path.isfile(os.path.join(loc, "common.py")):
            return loc, True
    raise BenchError("the benchmark scripts (benchmarks/bench_*.py) are not in this installation",
                     "run from a gensample source checkout, or reinstall it with `pip install .` from one")


def metadata(device: str, argv: list[str] | None = None) -> dict:
    import numpy as np
    import torch

    import gensample

    try:
        import triton

        triton_v = triton.__version__
    except Exception as exc:
        triton_v = f"not importable ({type(exc).__name__})"
    gpu = None
    if device.startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    return {
        "device": device,
        "command": " ".join(["gensample"] + list(argv or [])),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {"gensample": gensample.__version__, "torch": torch.__version__, "triton": triton_v,
                     "numpy": np.__version__, "python": platform.python_version(), "torch_cuda": torch.version.cuda},
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "gpu": gpu,
        "gensample_info": gensample.info(),
    }


def _fmt_s(v) -> str:
    if not isinstance(v, (int, float)):
        return str(v)
    return f"{v * 1e3:.3g} ms" if v < 1 else f"{v:.3g} s"


def compact_table(op: str, results: dict, max_rows: int = 40) -> str:
    """A markdown table of a suite's records (every record's timing entries, median first),
    for suites whose script printed nothing."""
    rows = []
    for rec in results.get("records", []):
        label = ", ".join(f"{k}={v}" for k, v in rec.items()
                          if isinstance(v, (str, int, float, list)) and k not in ("times_s",) and len(str(v)) < 40)
        timed = {}
        if isinstance(rec.get("impls"), dict):
            timed = {k: v for k, v in rec["impls"].items() if isinstance(v, dict)}
        elif "times_s" in rec or "median_s" in rec:
            timed = {rec.get("impl", rec.get("name", "?")): rec}
        for impl, r in timed.items():
            med = r.get("median_s")
            if med is None and r.get("times_s"):
                ts = sorted(r["times_s"])
                med = ts[len(ts) // 2]
            rows.append(f"| {label[:80]} | {impl} | {_fmt_s(med)} |")
    if not rows:
        return f"(suite {op}: no timing records)"
    more = f"\n... {len(rows) - max_rows} more rows in the JSON" if len(rows) > max_rows else ""
    return "| case | impl | median |\n|---|---|---|\n" + "\n".join(rows[:max_rows]) + more


def run_suites(ops: list[str], *, quick: bool, device: str, extra_args: list[str] | None = None,
               timeout: float | None = None, echo=print, progress: bool = True) -> dict:
    """Run the suites; returns the merged results dict (without ``meta``)."""
    bdir, installed = find_benchmarks()
    merged = {"suites": {}, "skipped": {}, "failed": {}}
    with tempfile.TemporaryDirectory(prefix="gensample-bench-") as tmp:
        if installed:  # see the module docstring: run a copy outside the package directory
            copy = os.path.join(tmp, "benchmarks")
            shutil.copytree(bdir, copy, ignore=shutil.ignore_patterns("__pycache__", "results"))
            bdir = copy
        for op in ops:
            script = os.path.join(bdir, f"bench_{op}.py")
            if not os.path.isfile(script):
                why = f"benchmarks/bench_{op}.py is not in this build"
                merged["skipped"][op] = why
                echo(f"skipped {op}: {why}")
                continue
            out_json = os.path.join(tmp, f"{op}.json")
            cmd = [sys.executable, script, "--json", out_json, "--device", device.split(":")[0]]
            if quick:
                cmd.append("--quick")
            cmd += list(extra_args or [])
            echo(f"running {op}{' (quick)' if quick else ''}: {' '.join(os.path.basename(c) if c == script else c for c in cmd[1:])}")
            t0 = time.perf_counter()
            env = dict(os.environ)
            if device.startswith("cuda:"):
                env["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
            try:
                proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if progress else subprocess.PIPE,
                                      text=True, timeout=timeout, env=env)
            except subprocess.TimeoutExpired:
                merged["failed"][op] = {"returncode": None, "stderr_tail": f"timed out after {timeout} s"}
                echo(f"failed {op}: timed out after {timeout} s")
                continue
            wall = time.perf_counter() - t0
            if proc.returncode != 0 or not os.path.isfile(out_json):
                tail = (proc.stderr or "").strip().splitlines()[-5:] if proc.stderr else []
                merged["failed"][op] = {"returncode": proc.returncode, "stderr_tail": "\n".join(tail)}
                echo(f"failed {op}: exit code {proc.returncode}" + (f" ({tail[-1]})" if tail else ""))
                continue
            with open(out_json) as f:
                res = json.load(f)
            res.setdefault("meta", {})["gensample_bench_wall_s"] = wall
            merged["suites"][op] = res
            table = (proc.stdout or "").strip()
            echo(f"\n## {op} ({wall:.1f} s)\n")
            echo(table if table else compact_table(op, res))
            echo("")
    return merged


def write_json(path: str, obj) -> None:
    """Atomic JSON write (temporary file beside ``path``, then ``os.replace``)."""
    def w(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, default=str)
            f.write("\n")

    atomic_write(path, w)
