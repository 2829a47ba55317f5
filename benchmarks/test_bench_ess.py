"""Smoke test of benchmarks/bench_ess.py (not part of the test suite: the repo's pytest
``testpaths`` is ``tests/``).

    pytest benchmarks/test_bench_ess.py

Runs ``bench_ess.py --quick`` on CPU on three tiny cases (RBM Gibbs on the digits model, the
bimodal RBM with single-temperature Gibbs and parallel tempering, MALA on the correlated
Gaussian; about 15 to 40 s on the 2-core dev VM), then checks the JSON: every case has a
timed record with ESS figures for the eager textbook and for gensample, the markdown names
them, ``--render`` reproduces the tables from the JSON alone, and on the bimodal RBM the
single-temperature Gibbs chains (started half in each mode) never mix (R-hat far above 1),
while parallel tempering, where it ran, mixes better (smaller R-hat).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
pytest.importorskip("torch")


def test_quick_run_writes_complete_results(tmp_path):
    out = tmp_path / "ess.json"
    cmd = [sys.executable, os.path.join(HERE, "bench_ess.py"), "--quick", "--threads", "1",
           "--cases", "gibbs-64x32,pt-bimodal,mala-gauss100", "--chains", "8", "--draws", "60", "--json", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("TRITON_INTERPRET", None)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["benchmark"] == "ess" and res["backends"]
    recs = res["records"]
    assert {r["case"] for r in recs} == {"gibbs-64x32", "pt-bimodal", "mala-gauss100"}
    by = {(r["case"], r["impl"]): r for r in recs}
    b = res["backends"][0]
    want = [("gibbs-64x32", "textbook (eager)"), ("gibbs-64x32", f"gensample[{b}]"),
            ("pt-bimodal", "textbook (eager) Gibbs (beta = 1 only)"),
            ("pt-bimodal", f"gensample[{b}] Gibbs (beta = 1 only)"),
            ("mala-gauss100", "textbook (eager)"), ("mala-gauss100", f"gensample[{b}] step kernels"),
            ("mala-gauss100", f"gensample[{b}] LangevinSampler")]
    for key in want:
        r = by[key]
        assert "error" not in r, (key, r.get("error"))
        assert r["steps_per_s"] > 0 and len(r["chunk_s"]) == 3 and sum(r["chunk_draws"]) == 60
        for st in r["stats"].values():
            assert st["total_draws"] == 8 * 60
            assert 0 < st["ess_bulk_min"] <= st["ess_bulk_median"]
            assert st["ess_bulk_min_per_s"] > 0 and st["rhat_max"] >= 0.9
    assert set(by["gibbs-64x32", "textbook (eager)"]["stats"]) == {"F(v)", "units"}
    # the bimodal RBM: Gibbs at beta = 1 never leaves the starting modes (half the chains
    # in each): R-hat of the magnetization far above 1 and ESS per draw near 0
    gibbs = by["pt-bimodal", "textbook (eager) Gibbs (beta = 1 only)"]["stats"]["m(v)"]
    assert gibbs["rhat_max"] > 1.3, gibbs
    assert "8 of 8 chains never left" in by["pt-bimodal", "textbook (eager) Gibbs (beta = 1 only)"]["extra"][
        "mode occupancy"]
    for impl in ("textbook (eager) PT", f"gensample[{b}] PT", "gensample[torch] PT"):
        r = by.get(("pt-bimodal", impl))
        if r is not None and "error" not in r:
            assert r["stats"]["m(v)"]["rhat_max"] < gibbs["rhat_max"], (impl, r["stats"])
    md = (tmp_path / "ess.md").read_text()
    assert "### gibbs-64x32" in md and "### pt-bimodal" in md and "bulk ESS/s" in md and "x ref" in md
    rr = subprocess.run([sys.executable, os.path.join(HERE, "bench_ess.py"), "--render", str(out)],
                        capture_output=True, text=True, timeout=120)
    assert rr.returncode == 0 and "### mala-gauss100" in rr.stdout
