"""Smoke test of benchmarks/bench_langevin.py (not part of the test suite: the repo's
pytest ``testpaths`` is ``tests/``).

    pytest benchmarks/test_bench_langevin.py

Runs ``bench_langevin.py --quick`` on CPU without torch.compile, memory profiling or the
hardware ceilings (about 15 to 30 s on the 2-core dev VM), then checks the JSON: every
section and variant has a timed record for the eager textbook and for gensample's cpu
backend (when this build has its Langevin kernels), and the markdown rendering names them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
torch = pytest.importorskip("torch")


def _has_cpu_kernels():
    sys.path.insert(0, os.path.dirname(HERE))
    import gensample  # noqa: F401
    from gensample import _backend

    return _backend.unavailable_reason("cpu", "cpu") is None and torch._C._dispatch_has_kernel_for_dispatch_key(
        "gensample::langevin_step_", "CPU")


def test_quick_run_writes_complete_results(tmp_path):
    out = tmp_path / "langevin.json"
    cmd = [sys.executable, os.path.join(HERE, "bench_langevin.py"), "--quick", "--no-compile", "--no-memory",
           "--no-ceilings", "--sizes", "16K", "--json", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["benchmark"] == "langevin"
    recs = res["records"]
    step = [r for r in recs if r["section"] == "step"]
    assert {r["variant"] for r in step} == {"plain", "clip+clamp", "norm clip"}
    impls = {r["impl"] for r in step if r.get("times_s")}
    want = {"textbook (eager)"} | ({"gensample[cpu]", "gensample[cpu] in-place"} if _has_cpu_kernels() else set())
    assert want <= impls, impls
    smp = {r["impl"] for r in recs if r["section"] == "sampler" and r.get("times_s")}
    assert "bare network (fwd + input grad)" in smp and "textbook (eager) loop" in smp
    if _has_cpu_kernels():
        assert "gensample[cpu] sampler" in smp
    md = (tmp_path / "langevin.md").read_text()
    assert "Langevin step alone" in md and "MLP-energy sampler" in md
    assert "MLP sampler overhead" in md or not _has_cpu_kernels()
