"""The ``gensample`` command line end to end (in-process ``cli.main([...])`` for speed, plus
one real ``python -m gensample`` subprocess and the console script when it is on PATH).

Tiny sizes: data files of ~100 rows, one or two epochs, a few Langevin steps, one
benchmark suite on a toy shape. Every bad input of the contract is checked to give ONE
line ``gensample <cmd>: error: ... (fix: ...)``, exit status 2, no traceback, and no
output files.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from gensample import checkpoint as ckpt_mod
from gensample import cli
from gensample import data as gdata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------
# fixtures: tiny data files
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    f = {}
    f["bin"] = d / "bin.npy"  # 16 features: a 4x4 image, binary
    np.save(f["bin"], (rng.random((96, 16)) < 0.3).astype(np.float32))
    f["bin8"] = d / "bin8.npy"
    np.save(f["bin8"], (rng.random((40, 8)) < 0.5).astype(np.uint8))
    f["real"] = d / "real.npy"
    np.save(f["real"], rng.random((96, 16)).astype(np.float64) * 3.0)
    f["img01"] = d / "img01.npy"  # (N, 4, 4) images in [0, 1]
    np.save(f["img01"], rng.random((96, 4, 4)).astype(np.float32))
    f["pts"] = d / "pts.pt"  # 2-D points as a torch file
    torch.save(torch.randn(128, 2, generator=torch.Generator().manual_seed(0)), f["pts"])
    f["garbage"] = d / "garbage.npy"
    f["garbage"].write_bytes(b"this is not an npy file\x00\x01\x02" * 10)
    f["objects"] = d / "objects.npy"
    np.save(f["objects"], np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    f["4d"] = d / "4d.npy"
    np.save(f["4d"], np.zeros((5, 2, 2, 2), dtype=np.float32))
    f["nan"] = d / "nan.npy"
    np.save(f["nan"], np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]))
    f["txt"] = d / "data.csv"
    f["txt"].write_text("1,2\n3,4\n")
    f["notckpt"] = d / "tensor.pt"
    torch.save(torch.zeros(3), f["notckpt"])
    return {k: str(v) for k, v in f.items()}


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, cmd, *needles):
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gensample {cmd}: error: "), lines[0]
    assert "(fix: " in lines[0] and "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def rbm_run(files, tmp_path_factory):
    """A 1-epoch rbm checkpoint (shared by the sample and error tests)."""
    out = tmp_path_factory.mktemp("rbm") / "run"
    assert cli.main(["train", "rbm", "--data", files["bin"], "--epochs", "1", "--hidden", "6", "--batch-size", "16",
                     "--out", str(out), "--quiet"]) == 0
    return out


# ---------------------------------------------------------------------------------------------
# help, entry points, packaging
# ---------------------------------------------------------------------------------------------

LEAVES = [["info"], ["demo"], ["train", "rbm"], ["train", "grbm"], ["train", "vae"], ["train", "ebm"], ["sample"],
          ["bench"]]


@pytest.mark.parametrize("cmd", [[], ["train"]] + LEAVES, ids=lambda c: " ".join(c) or "top")
def test_help_on_every_command(capsys, cmd):
    assert cli.main(cmd + ["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gensample")
    if cmd in LEAVES:
        for opt in ("--device", "--backend", "--seed", "--out", "--debug", "--quiet", "--threads"):
            assert opt in out, (cmd, opt)


def test_python_m_gensample_help():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m", "gensample", "--help"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    for c in ("info", "demo", "train", "sample", "bench"):
        assert c in p.stdout


def test_console_script():
    exe = shutil.which("gensample") or shutil.which("gensample", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("the gensample console script is not installed on PATH")
    p = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "usage: gensample" in p.stdout


def test_pyproject_packages_complete():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        cfg = tomllib.load(f)
    st = cfg["tool"]["setuptools"]
    on_disk = {"gensample"} | {
        "gensample." + os.path.relpath(dp, os.path.join(ROOT, "gensample")).replace(os.sep, ".")
        for dp, _, fs in os.walk(os.path.join(ROOT, "gensample")) if "__init__.py" in fs and dp != os.path.join(ROOT, "gensample")}
    assert set(st["packages"]) == on_disk | {"gensample.benchmarks"}
    assert os.path.isfile(os.path.join(ROOT, st["package-dir"]["gensample.benchmarks"], "common.py"))
    assert cfg["project"]["scripts"]["gensample"] == "gensample.cli:main"
    assert set(cfg["project"]["optional-dependencies"]["cli"]) == {"rich", "matplotlib", "scikit-learn"}


# ---------------------------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------------------------


def test_info(capsys, tmp_path):
    code, out, _ = run(capsys, "info", "--json", "--out", tmp_path / "i")
    assert code == 0
    d = json.loads(out)
    assert d["backends"]["cpu"]["torch"] is None and set(d["backends"]["cpu"]) == {"triton", "cuda", "cpu", "torch"}
    assert json.loads((tmp_path / "i" / "info.json").read_text()) == d
    code, out, _ = run(capsys, "info")
    assert code == 0 and "backends for cpu tensors" in out and "unavailable" in out  # cuda is never available on CPU


# ---------------------------------------------------------------------------------------------
# demo: delegation to gensample.demo.run (the demo itself is tests/test_demo.py's)
# ---------------------------------------------------------------------------------------------


def test_demo_delegates_to_demo_run(capsys, monkeypatch, tmp_path):
    from gensample import demo

    calls = []

    def fake_run(out_dir="gensample-demo", quick=False, device="cpu", backend=None, seed=0, progress=True):
        calls.append(dict(out_dir=out_dir, quick=quick, device=device, backend=backend, seed=seed, progress=progress))
        os.makedirs(out_dir, exist_ok=True)
        open(os.path.join(out_dir, "report.md"), "w").close()
        return {}

    monkeypatch.setattr(demo, "run", fake_run)
    code, out, _ = run(capsys, "demo", "--quick", "--out", tmp_path / "d", "--seed", "5", "--backend", "torch", "--quiet")
    assert code == 0 and f"wrote {tmp_path / 'd' / 'report.md'}" in out
    assert calls == [dict(out_dir=str(tmp_path / "d"), quick=True, device="cpu", backend="torch", seed=5, progress=False)]
    code, _, err = run(capsys, "demo", "--device", "tpu", "--out", tmp_path / "e")
    assert_one_line_error(code, err, "demo", "unknown device")
    assert len(calls) == 1 and not (tmp_path / "e").exists()


# ---------------------------------------------------------------------------------------------
# train, resume, sample
# ---------------------------------------------------------------------------------------------


def _load(p):
    return torch.load(p, weights_only=True)


def test_train_rbm_resume_is_bit_identical(capsys, files, tmp_path):
    common = ["--data", files["bin"], "--hidden", "6", "--batch-size", "16", "--seed", "3", "--quiet"]
    assert run(capsys, "train", "rbm", "--epochs", "2", "--out", tmp_path / "a", *common)[0] == 0
    assert run(capsys, "train", "rbm", "--epochs", "1", "--out", tmp_path / "b", *common)[0] == 0
    code, out, _ = run(capsys, "train", "rbm", "--epochs", "2", "--resume", tmp_path / "b" / "checkpoint.pt", "--quiet")
    assert code == 0 and "2 epochs" in out
    a, b = _load(tmp_path / "a" / "checkpoint.pt"), _load(tmp_path / "b" / "checkpoint.pt")
    assert a["kind"] == "rbm" and a["format"] == ckpt_mod.FORMAT and a["config"] == {"n_visible": 16, "n_hidden": 6}
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), k
    assert torch.equal(a["training"]["chains"], b["training"]["chains"])
    assert [h["log_likelihood"] for h in a["metrics"]] == [h["log_likelihood"] for h in b["metrics"]]
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m["final"]["log_likelihood_method"] == "exact" and np.isfinite(m["final"]["log_likelihood"])
    assert m["final"]["log_likelihood"] < 0 and m["data"]["n_train"] + m["data"]["n_test"] == 96
    assert sorted(os.listdir(tmp_path / "a")) == ["checkpoint.pt", "metrics.json"]  # no temporary files left


def test_rbm_ais_log_likelihood(capsys, files, tmp_path):
    """With gensample.evaluation: the AIS log-likelihood and its interval against the exact
    one (6 hidden units); without it: --ll ais is a one-line error before any training."""
    argv = ["train", "rbm", "--data", files["bin"], "--epochs", "1", "--hidden", "6", "--batch-size", "16",
            "--ll", "ais", "--ais-chains", "64", "--ais-betas", "500", "--out", tmp_path / "r", "--quiet"]
    if not cli._ais_available():
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, "train rbm", "not in this build", "--ll exact")
        assert not (tmp_path / "r").exists()
        return
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    f = json.loads((tmp_path / "r" / "metrics.json").read_text())["final"]
    lo, hi, ais, exact = (f["log_likelihood_ais_ci_low"], f["log_likelihood_ais_ci_high"], f["log_likelihood_ais"],
                          f["log_likelihood"])
    assert lo <= ais <= hi and np.isfinite(exact)
    # 64 chains x 500 temperatures on a 16x6 model near its base rate: AIS is accurate to
    # well under 0.5 nats; the interval (+-1.96 se) is widened by 0.5 against rare misses.
    assert lo - 0.5 <= exact <= hi + 0.5, (lo, ais, hi, exact)


def test_sample_rbm(capsys, rbm_run, tmp_path):
    code, out, _ = run(capsys, "sample", rbm_run / "checkpoint.pt", "--n", "10", "--steps", "5", "--out", tmp_path / "s")
    assert code == 0
    x = np.load(tmp_path / "s" / "samples.npy")
    assert x.shape == (10, 16) and set(np.unique(x)) <= {0.0, 1.0}
    import matplotlib.image

    img = matplotlib.image.imread(tmp_path / "s" / "samples.png")  # a 4x4 image grid
    assert img.ndim == 3 and img.shape[0] > 50
    # same seed -> same samples
    assert run(capsys, "sample", rbm_run / "checkpoint.pt", "--n", "10", "--steps", "5", "--out", tmp_path / "t")[0] == 0
    assert np.array_equal(np.load(tmp_path / "t" / "samples.npy"), x)


def test_train_grbm(capsys, files, tmp_path):
    code, out, _ = run(capsys, "train", "grbm", "--data", files["real"], "--epochs", "1", "--hidden", "4",
                       "--batch-size", "32", "--ll", "exact", "--out", tmp_path, "--quiet")
    assert code == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert np.isfinite(m["final"]["log_likelihood"]) and m["config"]["sigma"] == 1.0


def test_train_resume_and_sample_vae(capsys, files, tmp_path):
    common = ["--data", files["img01"], "--hidden", "16", "--latent", "2", "--batch-size", "32", "--quiet"]
    assert run(capsys, "train", "vae", "--epochs", "2", "--out", tmp_path / "a", *common)[0] == 0
    code, out, _ = run(capsys, "train", "vae", "--epochs", "1", "--out", tmp_path, *common)
    assert code == 0 and "test_elbo" in out
    assert run(capsys, "train", "vae", "--epochs", "2", "--resume", tmp_path / "checkpoint.pt", "--quiet")[0] == 0
    a, b = _load(tmp_path / "a" / "checkpoint.pt"), _load(tmp_path / "checkpoint.pt")
    for k in a["state"]:  # batch order, latent noise and Adam's moments all restored
        assert torch.equal(a["state"][k], b["state"][k]), k
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["data"]["image_shape"] == [4, 4] and np.isfinite(m["final"]["test_elbo"])
    code, out, err = run(capsys, "sample", tmp_path / "checkpoint.pt", "--n", "4", "--steps", "3")
    assert code == 0 and "unused" in err
    x = np.load(tmp_path / "samples.npy")
    assert x.shape == (4, 16) and x.min() >= 0 and x.max() <= 1
    assert (tmp_path / "samples.png").stat().st_size > 0


def test_train_ebm_resume_and_sample(capsys, files, tmp_path):
    common = ["--data", files["pts"], "--hidden", "16", "--batch-size", "64", "--langevin-steps", "3",
              "--buffer", "256", "--quiet"]
    assert run(capsys, "train", "ebm", "--epochs", "2", "--out", tmp_path / "a", *common)[0] == 0
    assert run(capsys, "train", "ebm", "--epochs", "1", "--out", tmp_path / "b", *common)[0] == 0
    assert run(capsys, "train", "ebm", "--epochs", "2", "--resume", tmp_path / "b" / "checkpoint.pt", "--quiet")[0] == 0
    a, b = _load(tmp_path / "a" / "checkpoint.pt"), _load(tmp_path / "b" / "checkpoint.pt")
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), k
    assert torch.equal(a["training"]["cd"]["buffer"]["storage"], b["training"]["cd"]["buffer"]["storage"])
    assert np.isfinite(a["metrics"][-1]["cd_loss"])
    code, out, _ = run(capsys, "sample", tmp_path / "a" / "checkpoint.pt", "--n", "50", "--steps", "4")
    assert code == 0
    x = np.load(tmp_path / "a" / "samples.npy")
    assert x.shape == (50, 2) and np.isfinite(x).all()
    assert (tmp_path / "a" / "samples.png").stat().st_size > 0  # 2-D scatter


def test_digits_and_split():
    pytest.importorskip("sklearn")
    ds = gdata.load("digits")
    assert tuple(ds.x.shape) == (1797, 64) and ds.image_shape == (8, 8) and float(ds.x.max()) == 1.0
    b = gdata.load("digits", binarize=0.5)
    assert set(b.x.unique().tolist()) == {0.0, 1.0}
    tr, te = gdata.split(ds.x, 0.2, 0)
    tr2, te2 = gdata.split(ds.x, 0.2, 0)
    assert te.shape[0] == 359 and tr.shape[0] == 1438 and torch.equal(te, te2)
    assert torch.equal(torch.cat([tr, te]).sum(0), ds.x.sum(0))  # a permutation of the rows


def test_checkpoint_save_is_atomic_and_validated(tmp_path):
    p = tmp_path / "c.pt"
    ckpt_mod.save(p, kind="ebm", config={"n_inputs": 2, "width": 4, "depth": 1},
                  state=ckpt_mod.EnergyMLP(2, 4, 1).state_dict())
    assert os.listdir(tmp_path) == ["c.pt"]
    obj = ckpt_mod.load(p, kind="ebm")
    m = ckpt_mod.load_model(obj)
    assert m(torch.zeros(3, 2)).shape == (3,)
    with pytest.raises(ckpt_mod.CheckpointError, match="holds a ebm model"):
        ckpt_mod.load(p, kind=("rbm", "grbm"))
    obj["state"]["net.0.weight"] = torch.zeros(5, 5)
    with pytest.raises(ckpt_mod.CheckpointError, match="do not fit"):
        ckpt_mod.load_model(obj)


# ---------------------------------------------------------------------------------------------
# bad input: one line, exit 2, no traceback, no output files
# ---------------------------------------------------------------------------------------------

BAD_TRAIN = [
    ("missing file", ["rbm", "--data", "{tmp}/nope.npy"], "does not exist"),
    ("malformed npy", ["rbm", "--data", "{garbage}"], "not a readable .npy"),
    ("object npy", ["vae", "--data", "{objects}"], "not a readable .npy"),
    ("unknown extension", ["grbm", "--data", "{txt}"], "extension '.csv'"),
    ("4-d array", ["grbm", "--data", "{4d}"], "shape (5, 2, 2, 2)"),
    ("nan values", ["ebm", "--data", "{nan}"], "NaN"),
    ("non-binary rbm", ["rbm", "--data", "{real}"], "--binarize"),
    ("vae out of range", ["vae", "--data", "{real}"], "[0, 1]"),
    ("unknown device", ["rbm", "--data", "{bin}", "--device", "tpu"], "unknown device 'tpu'"),
    ("cpu:1 device", ["rbm", "--data", "{bin}", "--device", "cpu:1"], "unknown device"),
    ("unknown backend", ["rbm", "--data", "{bin}", "--backend", "fast"], "unknown backend 'fast'"),
    ("unavailable backend", ["rbm", "--data", "{bin}", "--backend", "cuda"], "unavailable for cpu tensors"),
    ("binarize on grbm", ["grbm", "--data", "{bin}", "--binarize", "0.5"], "--binarize"),
    ("exact ll too big", ["grbm", "--data", "{real}", "--hidden", "30", "--ll", "exact"], "2^30"),
    ("bad epochs", ["rbm", "--epochs", "-1"], "--epochs"),
    ("bad lr", ["vae", "--lr", "0"], "--lr"),
]


@pytest.mark.parametrize("case", BAD_TRAIN, ids=[c[0] for c in BAD_TRAIN])
def test_bad_train_input(capsys, files, tmp_path, case):
    _, argv, needle = case
    argv = [a.format(tmp=tmp_path, **files) for a in argv]
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", *argv, "--out", out)
    assert_one_line_error(code, err, f"train {argv[0]}", needle)
    assert not out.exists()


def test_cuda_device_unavailable(capsys, files, tmp_path):
    if torch.cuda.is_available():
        code, _, err = run(capsys, "train", "rbm", "--data", files["bin"], "--device", "cuda:99", "--out", tmp_path / "r")
        assert_one_line_error(code, err, "train rbm", "cuda:99")
    else:
        code, _, err = run(capsys, "train", "rbm", "--data", files["bin"], "--device", "cuda", "--out", tmp_path / "r")
        assert_one_line_error(code, err, "train rbm", "CUDA is not available", "--device cpu")
    assert not (tmp_path / "r").exists()


def test_resume_with_wrong_kind_or_data(capsys, files, rbm_run, tmp_path):
    ck = rbm_run / "checkpoint.pt"
    code, _, err = run(capsys, "train", "vae", "--resume", ck, "--out", tmp_path / "r")
    assert_one_line_error(code, err, "train vae", "holds a rbm model", "gensample train rbm --resume")
    code, _, err = run(capsys, "train", "rbm", "--resume", ck, "--data", files["bin8"], "--epochs", "3",
                       "--out", tmp_path / "r")
    assert_one_line_error(code, err, "train rbm", "8 features", "16 inputs")
    assert not (tmp_path / "r").exists()


def test_corrupted_checkpoints(capsys, files, rbm_run, tmp_path):
    good = (rbm_run / "checkpoint.pt").read_bytes()
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good[: len(good) // 2])
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(2048))
    cases = [(trunc, "corrupted"), (noise, "corrupted"), (files["notckpt"], "not a gensample checkpoint"),
             (tmp_path / "missing.pt", "does not exist"), (rbm_run, "is a directory")]
    before = sorted(os.listdir(tmp_path))
    for path, needle in cases:
        code, _, err = run(capsys, "sample", path, "--n", "4")
        assert_one_line_error(code, err, "sample", needle)
        code, _, err = run(capsys, "train", "rbm", "--resume", path, "--out", tmp_path / "r")
        assert_one_line_error(code, err, "train rbm", needle)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


@pytest.mark.parametrize("argv,needle", [(["--n", "0"], "--n must be a positive"), (["--n", "-3"], "got -3"),
                                         (["--steps", "0"], "--steps")])
def test_bad_sample_counts(capsys, rbm_run, tmp_path, argv, needle):
    code, _, err = run(capsys, "sample", rbm_run / "checkpoint.pt", *argv, "--out", tmp_path / "s")
    assert_one_line_error(code, err, "sample", needle)
    assert not (tmp_path / "s").exists()


def test_debug_shows_the_exception(capsys, files):
    with pytest.raises(cli.CLIError, match="unknown device"):
        cli.main(["train", "rbm", "--data", files["bin"], "--device", "tpu", "--debug"])


# ---------------------------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------------------------


def test_bench_unknown_op_and_missing_scripts(capsys, monkeypatch):
    from gensample import bench

    code, _, err = run(capsys, "bench", "--ops", "reparam,warp")
    assert_one_line_error(code, err, "bench", "warp", "reparam, gibbs")
    monkeypatch.setattr(bench, "__file__", "/nonexistent/site-packages/gensample/bench.py")
    code, _, err = run(capsys, "bench", "--ops", "diagnostics")
    assert_one_line_error(code, err, "bench", "not in this installation")


def test_bench_quick_merges_json(capsys, monkeypatch, tmp_path):
    """One tiny diagnostics suite, run from an 'installed' copy of the scripts (copied out
    of the package directory first), with a missing suite skipped."""
    from gensample import bench

    src = os.path.join(ROOT, "benchmarks")
    inst = tmp_path / "site" / "gensample" / "benchmarks"
    inst.mkdir(parents=True)
    for f in ("common.py", "render.py", "bench_diagnostics.py"):
        shutil.copy(os.path.join(src, f), inst / f)
    monkeypatch.setattr(bench, "find_benchmarks", lambda: (str(inst), True))
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    js = tmp_path / "b.json"
    code, out, err = run(capsys, "bench", "--ops", "diagnostics,ais", "--quick", "--json", js, "--quiet",
                         "--suite-args", "--shape 2x100x2 --repeats 1 --warmup 0 --no-arviz")
    assert code == 0, err
    assert "skipped ais: benchmarks/bench_ais.py is not in this build" in out
    assert "## diagnostics" in out and "gensample summary" in out
    d = json.loads(js.read_text())
    assert d["meta"]["versions"]["torch"] == torch.__version__ and d["meta"]["device"] == "cpu"
    assert d["meta"]["cpu"] and "gensample" in d["meta"]["versions"]
    assert d["skipped"] == {"ais": "benchmarks/bench_ais.py is not in this build"} and d["failed"] == {}
    rec = d["suites"]["diagnostics"]["records"][0]
    assert rec["shape"] == [2, 100, 2] and rec["impls"]
    assert not list(inst.glob("*.json"))  # results went to a temporary directory


def test_compact_table_for_suites_that_print_nothing():
    from gensample import bench

    res = {"records": [{"shape": [2, 100, 2], "impls": {"a": {"times_s": [0.003, 0.001, 0.002]},
                                                       "b": {"median_s": 2.5}}}]}
    t = bench.compact_table("x", res).splitlines()
    assert t[0] == "| case | impl | median |" and len(t) == 4
    assert t[2].endswith("| a | 2 ms |") and t[3].endswith("| b | 2.5 s |")
    assert bench.compact_table("x", {"records": []}) == "(suite x: no timing records)"
