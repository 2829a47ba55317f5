"""The demo (``gensample demo`` / ``make demo``) end to end in quick mode, in a temp dir.

One quick run (module-scoped fixture, about 15 s on a quiet 2-core machine) is checked
for: every file written and no temporary left behind, PNGs that decode to real pictures,
``report.json`` with finite numbers in every section, ``report.md`` quoting them and
linking the pictures, and properties of the numbers that a broken stage would violate
(the RBM beats the uniform model, the exact log Z agrees with the AIS interval when AIS
is in the build, MALA accepts a sensible fraction, every speed row was measured).
"""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

from gensample import demo

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"  # does not exist yet: run() creates it
    rep = demo.run(out_dir=str(out), quick=True, seed=0, progress=False)
    return out, rep


def _finite(x) -> bool:
    if isinstance(x, (list, tuple)):
        return all(_finite(v) for v in x)
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_files_written_and_nothing_else(quick_run):
    out, rep = quick_run
    names = sorted(os.listdir(out))
    assert names == sorted([*demo.PNGS, "report.md", "report.json"])  # no .demo-tmp-* left
    assert set(rep["files"]) == set(names)
    for n in names:
        assert os.path.getsize(out / n) > 0


def test_pngs_decode(quick_run):
    from matplotlib import image

    out, _ = quick_run
    for n in demo.PNGS:
        with open(out / n, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", n
        a = image.imread(str(out / n))
        assert a.ndim == 3 and a.shape[0] >= 100 and a.shape[1] >= 100, (n, a.shape)
        assert float(a[..., :3].std()) > 0.02, f"{n} is blank"


def test_report_json(quick_run):
    out, rep = quick_run
    with open(out / "report.json") as f:
        js = json.load(f)
    for key in ("gensample", "torch", "device", "backend", "seed", "quick", "settings", "rbm", "vae", "mala",
                "speed", "speed_skipped", "timings_seconds", "total_seconds"):
        assert key in js, key
    assert js["quick"] is True and js["device"] == "cpu" and js["seed"] == 0
    assert js["rbm"]["test_log_likelihood_exact"] == pytest.approx(rep["rbm"]["test_log_likelihood_exact"])
    for stage in ("load_data", "rbm_train", "rbm_exact_log_z", "rbm_ais", "vae_train", "mala_sample", "speed_table"):
        assert _finite(js["timings_seconds"][stage]) and js["timings_seconds"][stage] >= 0, stage
    assert js["total_seconds"] >= sum(js["timings_seconds"].values()) - 1e-6

    r = js["rbm"]
    for k in ("log_z_exact", "test_log_likelihood_exact", "reconstruction_error", "train_seconds"):
        assert _finite(r[k]), k
    # 2 epochs of PCD already beat the uniform model on 64 binary pixels (-64 log 2 = -44.4
    # nats); a broken sampler or gradient sign would not (the initial model is ~uniform).
    assert -44.0 < r["test_log_likelihood_exact"] < 0
    ais = r["ais"]
    if ais["available"]:
        for k in ("log_z", "stderr", "ci_low", "ci_high", "ess", "test_log_likelihood"):
            assert _finite(ais[k]), k
        assert ais["ci_low"] <= ais["log_z"] <= ais["ci_high"]
        # The 2-epoch model is close to its base rate model: AIS is accurate to well under a nat.
        assert abs(ais["log_z"] - r["log_z_exact"]) < 1.0
    else:
        assert ais["reason"]

    v = js["vae"]
    assert _finite(v["test_elbo_nats"]) and _finite(v["train_elbo_nats"])
    # A Bernoulli decoder on 64 pixels with logits 0 gives -64 log 2 = -44.4; training improves on it.
    assert -44.0 < v["test_elbo_nats"] < 0

    m = js["mala"]
    for k in ("ess_bulk", "ess_tail", "rhat", "mean", "ess_bulk_per_second", "min_ess_bulk_per_second"):
        assert _finite(m[k]), k
    assert 0.05 < m["acceptance"] < 1.0
    assert all(e > 0 for e in m["ess_bulk"]) and all(rh >= 0.99 for rh in m["rhat"])
    assert len(m["mean"]) == 2 and len(m["covariance"]) == 2

    ops = [row["op"] for row in js["speed"]]
    assert ops[:3] == ["reparameterize_kl fwd+bwd", "RBM Gibbs sweeps", "Langevin step (clip + clamp)"]
    assert len(ops) == 4 or any(s.startswith("AIS") for s in js["speed_skipped"])
    for row in js["speed"]:
        assert _finite([row["gensample_ms"], row["textbook_ms"], row["speedup"]]) and row["gensample_ms"] > 0
        assert row["speedup"] == pytest.approx(row["textbook_ms"] / row["gensample_ms"])


def test_report_md(quick_run):
    out, rep = quick_run
    md = (out / "report.md").read_text()
    for n in demo.PNGS:
        assert f"]({n})" in md, n
    assert f"{rep['rbm']['test_log_likelihood_exact']:.3f}" in md
    assert f"{rep['vae']['test_elbo_nats']:.2f}" in md
    assert "| op | size | backend | gensample ms | textbook ms | speed-up |" in md
    assert md.count("\n| ") >= 10


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(device="tpu"), ValueError, "device"),
    (dict(backend="bogus"), ValueError, "backend"),
    (dict(seed=-1), ValueError, "seed"),
])
def test_bad_arguments_fail_fast_and_leave_nothing(tmp_path, kwargs, exc, words):
    out = tmp_path / "never"
    with pytest.raises(exc, match=words):
        demo.run(out_dir=str(out), quick=True, progress=False, **kwargs)
    assert not out.exists()


def test_failure_midway_leaves_no_partial_files(tmp_path, monkeypatch):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")

    def rbm_then_fail(cfg, train, test, device, backend, seed, progress, tmp, timings):
        from gensample import plots

        plots.image_grid(train[:4], os.path.join(tmp, "rbm_samples.png"))  # a stage's output...
        raise RuntimeError("stage failed")  # ...then a failure

    monkeypatch.setattr(demo, "_rbm", rbm_then_fail)
    with pytest.raises(RuntimeError, match="stage failed"):
        demo.run(out_dir=str(out), quick=True, progress=False)
    assert sorted(os.listdir(out)) == ["keep.txt"]


def test_plots_write_atomically(tmp_path):
    from gensample import plots

    p = plots.image_grid(torch.rand(6, 16), str(tmp_path / "g.png"))
    assert os.path.exists(p) and sorted(os.listdir(tmp_path)) == ["g.png"]
    with pytest.raises(ValueError, match="not square"):
        plots.image_grid(torch.rand(3, 10), str(tmp_path / "bad.png"))
    assert sorted(os.listdir(tmp_path)) == ["g.png"]  # no temp file left by the failed call
