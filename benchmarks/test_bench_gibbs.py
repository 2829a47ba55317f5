"""Smoke test of benchmarks/bench_gibbs.py: a --quick run on tiny cases finishes, writes a
results JSON with a timed record for every competitor, and renders the tables.

    pytest benchmarks/test_bench_gibbs.py

(Not in the default test run: pytest's ``testpaths`` is ``tests/``. It takes well under 30 s
on a quiet machine; it measures nothing, it only checks that the benchmark works.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def test_bench_gibbs_quick_smoke(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "gibbs.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("TRITON_INTERPRET", None)
    cmd = [sys.executable, os.path.join(HERE, "bench_gibbs.py"), "--quick", "--threads", "1",
           "--cases", "64x32x128x1,64x32x64x3", "--cd-cases", "64x32x64", "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["benchmark"] == "gibbs" and res["ceilings"]["gemm"]
    recs = res["records"]
    cases = {r["case"] for r in recs}
    assert cases == {"64x32 B=128 k=1", "64x32 B=64 k=3", "CD-1 64x32 B=64"}
    for case in cases:
        impls = {r["impl"]: r for r in recs if r["case"] == case}
        assert {"textbook (bernoulli)", "textbook (rand-compare)", "GEMMs only"} <= set(impls)
        for name in res["backends"]:
            assert f"gensample[{name}]" in impls
        for rec in impls.values():
            assert "error" not in rec, rec
            assert rec["median_s"] > 0 and len(rec["times_s"]) >= 3
    assert "### Block Gibbs sweeps" in r.stdout and "### Full CD-1 training step" in r.stdout
    # re-render from the JSON alone
    rr = subprocess.run([sys.executable, os.path.join(HERE, "bench_gibbs.py"), "--render", str(out)],
                        capture_output=True, text=True, timeout=120)
    assert rr.returncode == 0 and "x best eager" in rr.stdout
