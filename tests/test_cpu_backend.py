"""The cpu backend's C++ kernels (csrc/cpu/*.cpp), called directly as torch.ops.

* philox_uniform / philox_normal: bit-identical to the executable specification
  (gensample.random.uniform_stream / normal_stream) for awkward sizes, seeds with the
  high bit set and offsets where the 64-bit counter carries into its high word or
  wraps; independent of the thread count; the AVX2 and baseline code paths agree bit
  for bit (GENSAMPLE_CPU_NO_AVX2=1 in a subprocess), and their reparam outputs to a
  few roundings (the AVX2 + FMA copy fuses the formulas' gs_fma).
* reparam_kl_fwd / reparam_kl_bwd: against the formulas written out here in float64
  with the same noise, for every dtype, strided / broadcast inputs, n_samples 1 and 3,
  empty and prime sizes, rows longer than the kernel's tile; outputs' shapes, dtypes
  and layouts; thread-count independence; the safety-net checks.
"""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import gensample._ext as _ext
from gensample import random as R

pytestmark = pytest.mark.skipif(not _ext.loaded(), reason=f"gensample._C not built: {_ext.error()}")

ops = torch.ops.gensample

# (seed, offset): zero; small; seed with the high bit set and an offset 5 counters
# below 2^32 (c0 carries into c1 inside a draw); all-ones seed with the 64-bit
# counter wrapping to 0; a counter with a nonzero high word.
SEEDS = [
    (0, 0),
    (123456789, 7),
    (2**63 + 12345, 2**32 - 5),
    (2**64 - 1, 2**64 - 3),
    (0xDEADBEEFCAFEF00D, 2**33 + 1),
]
NUMELS = [0, 1, 3, 4, 5, 1023, 1025, 100003]


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32)


@pytest.fixture
def threads():
    """Restores torch's thread count after a test that changes it."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------
# streams
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("numel", NUMELS)
@pytest.mark.parametrize("seed,offset", SEEDS, ids=[f"s{i}" for i in range(len(SEEDS))])
def test_stream_bit_identical_to_spec(seed, offset, numel):
    pair = R.seed_pair(seed, offset)
    u = ops.philox_uniform(pair, numel)
    n = ops.philox_normal(pair, numel)
    for out in (u, n):
        assert out.dtype == torch.float32 and out.shape == (numel,) and out.device.type == "cpu"
    assert torch.equal(_bits(u), _bits(R.uniform_stream(pair, numel)))
    assert torch.equal(_bits(n), _bits(R.normal_stream(pair, numel)))


def test_stream_seed_tensor_strided():
    """The seed pair may be a strided view; it is read as (seed, offset) as uint64."""
    base = torch.tensor([2**62 + 9, -1, 2**32 - 1, -1], dtype=torch.int64)
    pair = base[::2]
    assert torch.equal(_bits(ops.philox_normal(pair, 777)), _bits(R.normal_stream(pair.contiguous(), 777)))


def test_stream_thread_count_independent(threads):
    pair = R.seed_pair(2**63 + 1, 2**32 - 1000)
    numel = 3 * 12288 + 4 * 1000 + 3  # several parallel tasks, ragged end
    out = {}
    for t in (1, 2):
        torch.set_num_threads(t)
        out[t] = (ops.philox_uniform(pair, numel), ops.philox_normal(pair, numel))
    assert torch.equal(_bits(out[1][0]), _bits(out[2][0]))
    assert torch.equal(_bits(out[1][1]), _bits(out[2][1]))
    assert torch.equal(_bits(out[2][1]), _bits(R.normal_stream(pair, numel)))


def test_normals_look_normal():
    z = ops.philox_normal(R.seed_pair(5, 0), 1 << 20).double()
    assert abs(z.mean().item()) < 5e-3
    assert abs(z.var().item() - 1) < 5e-3
    assert torch.isfinite(z).all() and z.abs().max().item() < 6.7


# ----------------------------------------------------------------------------
# reparam + KL: references in float64 with the stream's noise
# ----------------------------------------------------------------------------
TOL = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=2e-5, atol=2e-5),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
    torch.bfloat16: dict(rtol=1.6e-2, atol=2e-2),
}
DTYPES = list(TOL)


def _eps(pair, S, Rr, D, ot=torch.float64):
    return R.normal_stream(pair, S * Rr * D).to(ot).view(S, Rr, D)


def _d(t, Rr, D, ot=torch.float64):
    return torch.zeros(Rr, D, dtype=ot) if t is None else t.to(ot).expand(Rr, D)


def ref_fwd(mu, lv, pm, plv, pair, S, ot=torch.float64):
    """The formulas, computed in ot (float64 unless a test needs the kernel's own overflow)."""
    Rr, D = mu.shape
    m, l, p, q = mu.to(ot), lv.to(ot), _d(pm, Rr, D, ot), _d(plv, Rr, D, ot)
    z = m + torch.exp(0.5 * l) * _eps(pair, S, Rr, D, ot)
    d = l - q
    kl = (0.5 * (torch.expm1(d) - d + (m - p) ** 2 * torch.exp(-q))).sum(-1)
    return z, kl


def ref_bwd(gz, gkl, mu, lv, pm, plv, pair, S, ot=torch.float64):
    Rr, D = mu.shape
    m, l, p, q = mu.to(ot), lv.to(ot), _d(pm, Rr, D, ot), _d(plv, Rr, D, ot)
    if gz is not None:
        g = gz.to(ot)
        dz_sum, dz_sum_eps = g.sum(0), (g * _eps(pair, S, Rr, D, ot)).sum(0)
    else:
        dz_sum = dz_sum_eps = torch.zeros(Rr, D, dtype=ot)
    dkl = gkl.to(ot)[:, None] if gkl is not None else torch.zeros(Rr, 1, dtype=ot)
    d = l - q
    em1 = torch.expm1(d)
    g_kl_mu = (m - p) * torch.exp(-q)
    dmu = dz_sum + dkl * g_kl_mu
    dlv = dz_sum_eps * 0.5 * torch.exp(0.5 * l) + dkl * 0.5 * em1
    dpm = -dkl * g_kl_mu
    dplv = -0.5 * dkl * (em1 + (m - p) * g_kl_mu)
    return dmu, dlv, dpm.expand(Rr, D), dplv.expand(Rr, D)


def make_inputs(Rr, D, dtype, layout, prior, seed=0):
    g = torch.Generator().manual_seed(seed + 1000 * Rr + D)

    def rn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    if layout == "contiguous":
        mu, lv = rn(Rr, D), rn(Rr, D, scale=0.7)
    elif layout == "chunked":  # encoder(x).chunk(2, -1): row stride 2 D
        enc = rn(Rr, 2 * D)
        mu, lv = enc[:, :D], enc[:, D:]
    elif layout == "transposed":  # column stride R
        mu, lv = rn(D, Rr).t(), rn(D, Rr, scale=0.7).t()
    else:
        raise ValueError(layout)
    if prior == "none":
        pm = plv = None
    elif prior == "row":  # prior (D,) broadcast over rows: row stride 0
        pm, plv = rn(D).expand(Rr, D), rn(D, scale=0.5).expand(Rr, D)
    elif prior == "scalar":  # both strides 0
        pm, plv = rn(1).reshape(()).expand(Rr, D), rn(1, scale=0.5).reshape(()).expand(Rr, D)
    elif prior == "full":
        pm, plv = rn(Rr, D), rn(Rr, D, scale=0.5)
    elif prior == "mu_only":
        pm, plv = rn(D).expand(Rr, D), None
    elif prior == "logvar_only":
        pm, plv = None, rn(D, scale=0.5).expand(Rr, D)
    else:
        raise ValueError(prior)
    return mu, lv, pm, plv


# (R, D): empty, 1, primes, a row longer than the 512-element tile (partial chunk),
# several chunks, many short rows per tile, a ragged last tile.
SHAPES = [(0, 5), (4, 0), (1, 1), (7, 13), (3, 517), (2, 1031), (37, 3), (300, 7)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("Rr,D", SHAPES)
def test_fwd_matches_formula(dtype, Rr, D):
    for layout, prior, S in [("contiguous", "none", 1), ("chunked", "row", 3), ("transposed", "scalar", 1),
                             ("contiguous", "full", 2), ("chunked", "mu_only", 1), ("contiguous", "logvar_only", 1)]:
        mu, lv, pm, plv = make_inputs(Rr, D, dtype, layout, prior)
        pair = R.seed_pair(2**63 + Rr, 2**32 - 3)
        z, kl = ops.reparam_kl_fwd(mu, lv, pm, plv, pair, S)
        assert z.shape == (S, Rr, D) and z.dtype == dtype and z.is_contiguous()
        assert kl.shape == (Rr,) and kl.dtype == dtype
        zr, klr = ref_fwd(mu, lv, pm, plv, pair, S)
        msg = f"{layout} prior={prior} S={S}"
        torch.testing.assert_close(z.double(), zr, **TOL[dtype], msg=lambda m: f"z ({msg}): {m}")
        torch.testing.assert_close(kl.double(), klr, **TOL[dtype], msg=lambda m: f"kl ({msg}): {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_fwd_bwd_extreme_values(dtype):
    """Large / tiny log-variances, infinities and NaN propagate like the formula (computed
    in the kernel's math precision, so that it overflows where the kernel does)."""
    # ... and log-variances on both sides of +-ln 2 and +-2 ln 2, where the standard-prior
    # path switches between q (q + 2) and exp(lv / 2)^2 - 1 for expm1(lv) (cpu_kernels.h),
    # and on both sides of |lv| = 172, where 16-value groups leave its fast exponent
    # scaling (a group with any value beyond, or a NaN, takes the clamped one: -180 and
    # -200 give subnormal standard deviations).
    vals = [0.0, 1e-30, -80.0, 80.0, 170.0, -170.0, 300.0, -300.0, 1e4, -1e4, math.inf, -math.inf, math.nan, 0.3,
            0.6931, 0.6932, -0.6931, -0.6932, 1.3862, 1.3864, -1.3862, -1.3864, 1e-7, -1e-7, 88.0, 89.0, -104.0,
            171.9, -171.9, 172.1, -172.1, -180.0, -200.0]
    Rr, D = 2, len(vals)
    lv = torch.tensor([vals, vals[::-1]], dtype=dtype)
    mu = torch.linspace(-3, 3, Rr * D, dtype=dtype).view(Rr, D)
    pair = R.seed_pair(11, 0)
    for pm, plv in [(None, None), (torch.zeros(Rr, D, dtype=dtype), lv.flip(1).clamp(-50, 50))]:
        z, kl = ops.reparam_kl_fwd(mu, lv, pm, plv, pair, 1)
        zr, klr = ref_fwd(mu, lv, pm, plv, pair, 1, ot=dtype)
        torch.testing.assert_close(z, zr.to(dtype), equal_nan=True, **TOL[dtype])
        torch.testing.assert_close(kl, klr.to(dtype), equal_nan=True, **TOL[dtype])
        gz = torch.ones(1, Rr, D, dtype=dtype)
        gkl = torch.ones(Rr, dtype=dtype)
        out = ops.reparam_kl_bwd(gz, gkl, mu, lv, pm, plv, pair, 1, pm is not None)
        ref = ref_bwd(gz, gkl, mu, lv, pm, plv, pair, 1, ot=dtype)
        for k in range(2 if pm is None else 4):
            torch.testing.assert_close(out[k], ref[k].to(dtype), equal_nan=True, **TOL[dtype])


def test_fwd_noise_is_the_stream():
    """mu = lv = 0 gives z = eps exactly: z[s, r, d] is stream element s R D + r D + d."""
    Rr, D, S = 13, 517, 3
    enc = torch.zeros(Rr, 2 * D)
    pair = R.seed_pair(0xFEEDFACE, 2**32 - 200)
    z, kl = ops.reparam_kl_fwd(enc[:, :D], enc[:, D:], None, None, pair, S)
    assert torch.equal(_bits(z.reshape(-1)), _bits(R.normal_stream(pair, S * Rr * D)))
    assert torch.equal(kl, torch.zeros(Rr))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("Rr,D", [(0, 5), (4, 0), (1, 1), (7, 13), (3, 517), (37, 3), (300, 7)])
def test_bwd_matches_formula(dtype, Rr, D):
    g = torch.Generator().manual_seed(7)
    cases = [
        # layout, prior, S, grad_z kind, grad_kl kind, prior_grads
        ("contiguous", "none", 1, "dense", "dense", False),
        ("chunked", "row", 3, "dense", "dense", True),
        ("transposed", "scalar", 1, "expanded", None, True),
        ("contiguous", "full", 2, None, "strided", True),
        ("chunked", "mu_only", 1, "transposed", "dense", True),
        ("contiguous", "logvar_only", 3, "expanded", "strided", False),
        ("contiguous", "none", 1, "dense", None, True),
    ]
    for layout, prior, S, gzk, gklk, pg in cases:
        mu, lv, pm, plv = make_inputs(Rr, D, dtype, layout, prior)
        pair = R.seed_pair(99 + Rr, 2**64 - 7)
        if gzk is None:
            gz = None
        elif gzk == "dense":
            gz = torch.randn(S, Rr, D, generator=g).to(dtype)
        elif gzk == "expanded":  # backward of z.sum(): all strides 0
            gz = torch.ones((), dtype=dtype).expand(S, Rr, D)
        else:  # "transposed": non-contiguous last two dims
            gz = torch.randn(S, D, Rr, generator=g).to(dtype).transpose(1, 2)
        if gklk is None:
            gkl = None
        elif gklk == "dense":
            gkl = torch.randn(Rr, generator=g).to(dtype)
        else:
            gkl = torch.randn(2 * Rr, generator=g).to(dtype)[::2]
        out = ops.reparam_kl_bwd(gz, gkl, mu, lv, pm, plv, pair, S, pg)
        ref = ref_bwd(gz, gkl, mu, lv, pm, plv, pair, S)
        msg = f"{layout} prior={prior} S={S} grad_z={gzk} grad_kl={gklk} prior_grads={pg}"
        for k, name in enumerate(["dmu", "dlv", "dpm", "dplv"]):
            o = out[k]
            assert o.dtype == dtype, (name, msg)
            if k >= 2 and not pg:
                assert o.shape == (0,), (name, msg)
                continue
            assert o.shape == (Rr, D) and o.is_contiguous(), (name, msg)
            torch.testing.assert_close(o.double(), ref[k], **TOL[dtype], msg=lambda m: f"{name} ({msg}): {m}")


def test_bwd_without_any_grad_is_zero():
    mu, lv, pm, plv = make_inputs(5, 9, torch.float32, "contiguous", "row")
    dmu, dlv, dpm, dplv = ops.reparam_kl_bwd(None, None, mu, lv, pm, plv, R.seed_pair(1), 2, True)
    for t in (dmu, dlv, dpm, dplv):
        assert t.shape == (5, 9) and torch.equal(t, torch.zeros(5, 9))


def test_reparam_thread_count_independent(threads):
    Rr, D, S = 300, 600, 2
    mu, lv, pm, plv = make_inputs(Rr, D, torch.float32, "chunked", "row")
    pair = R.seed_pair(31337, 5)
    gz = torch.randn(S, Rr, D, generator=torch.Generator().manual_seed(3))
    gkl = torch.randn(Rr, generator=torch.Generator().manual_seed(4))
    out = {}
    for t in (1, 2):
        torch.set_num_threads(t)
        out[t] = ops.reparam_kl_fwd(mu, lv, pm, plv, pair, S) + ops.reparam_kl_bwd(
            gz, gkl, mu, lv, pm, plv, pair, S, True)
    for a, b in zip(out[1], out[2]):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------
# AVX2 and baseline code paths agree bit for bit
# ----------------------------------------------------------------------------
_CHILD = r"""
import json, sys, torch
import gensample._ext
from gensample import random as R
torch.manual_seed(0)
ops = torch.ops.gensample
out = {}
for i, (s, o) in enumerate(json.loads(sys.argv[1])):
    pair = R.seed_pair(s, o)
    out[f"u{i}"] = ops.philox_uniform(pair, 5003)
    out[f"n{i}"] = ops.philox_normal(pair, 5003)
for dt in (torch.float32, torch.float64, torch.bfloat16):
    enc = torch.randn(37, 2 * 523, dtype=torch.float64).to(dt)
    mu, lv = enc[:, :523], enc[:, 523:]
    pm = torch.randn(523, dtype=torch.float64).to(dt).expand(37, 523)
    plv = (0.5 * torch.randn(523, dtype=torch.float64)).to(dt).expand(37, 523)
    gz = torch.randn(2, 37, 523, dtype=torch.float64).to(dt)
    gkl = torch.randn(37, dtype=torch.float64).to(dt)
    pair = R.seed_pair(2**63 + 3, 2**32 - 9)
    for j, t in enumerate(ops.reparam_kl_fwd(mu, lv, pm, plv, pair, 2)
                          + ops.reparam_kl_bwd(gz, gkl, mu, lv, pm, plv, pair, 2, True)
                          + ops.reparam_kl_fwd(mu, lv, None, None, pair, 1)
                          + ops.reparam_kl_bwd(gz[:1], gkl, mu, lv, None, None, pair, 1, False)):
        out[f"r{dt}{j}"] = t
torch.save(out, sys.argv[2])
"""


def _run_child(tmp_path, name, no_avx2):
    path = tmp_path / f"{name}.pt"
    env = dict(os.environ, OMP_NUM_THREADS="2")
    env.pop("GENSAMPLE_CPU_NO_AVX2", None)
    if no_avx2:
        env["GENSAMPLE_CPU_NO_AVX2"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(os.path.dirname(os.path.abspath(_ext.__file__))),
                                                     env.get("PYTHONPATH", "")] if p)
    res = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(SEEDS), str(path)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return torch.load(path)


_STREAM_CHILD = r"""
import sys, torch
import gensample._ext
from gensample import random as R
ops = torch.ops.gensample
out = {}
for dt, (Rr, D) in [(torch.float32, (300, 1031)), (torch.float64, (129, 1029)), (torch.float32, (1111, 257))]:
    g = torch.Generator().manual_seed(Rr)
    enc = torch.randn(Rr, 2 * D, dtype=torch.float64, generator=g).to(dt)
    mu, lv = enc[:, :D], enc[:, D:]
    pm = torch.randn(D, dtype=torch.float64, generator=g).to(dt).expand(Rr, D)
    plv = (0.5 * torch.randn(D, dtype=torch.float64, generator=g)).to(dt).expand(Rr, D)
    gz = torch.randn(2, Rr, D, dtype=torch.float64, generator=g).to(dt)
    gkl = torch.randn(Rr, dtype=torch.float64, generator=g).to(dt)
    pair = R.seed_pair(2**40 + Rr, 77)
    for j, t in enumerate(ops.reparam_kl_fwd(mu, lv, None, None, pair, 2)
                          + ops.reparam_kl_bwd(gz, gkl, mu, lv, None, None, pair, 2, False)
                          + ops.reparam_kl_fwd(mu, lv, pm, plv, pair, 1)
                          + ops.reparam_kl_bwd(gz[:1], gkl, mu, lv, pm, plv, pair, 1, True)):
        out[f"{dt}{Rr}_{j}"] = t.clone()
torch.save(out, sys.argv[1])
"""


def test_streaming_stores_give_the_same_bits(tmp_path):
    """Outputs of GENSAMPLE_CPU_STREAM_MB or more are written with streaming stores
    (output_pool.cpp); with the threshold at 1 MiB these shapes (odd widths: unaligned
    heads and tails in every row) stream, and must equal the ordinary stores bit for bit."""
    res = {}
    for mb in ("1", "0"):
        path = tmp_path / f"stream{mb}.pt"
        env = dict(os.environ, OMP_NUM_THREADS="2", GENSAMPLE_CPU_STREAM_MB=mb)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [os.path.dirname(os.path.dirname(os.path.abspath(_ext.__file__))), env.get("PYTHONPATH", "")]
            if p)
        r = subprocess.run([sys.executable, "-c", _STREAM_CHILD, str(path)], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        res[mb] = torch.load(path)
    assert res["1"].keys() == res["0"].keys() and len(res["1"]) == 36
    for k in res["1"]:
        assert torch.equal(res["1"][k], res["0"][k]), k


def test_avx2_and_baseline_paths_agree(tmp_path):
    fast = _run_child(tmp_path, "default", no_avx2=False)
    base = _run_child(tmp_path, "baseline", no_avx2=True)
    assert fast.keys() == base.keys()
    for k in fast:
        a, b = fast[k], base[k]
        assert a.dtype == b.dtype and a.shape == b.shape, k
        if k[0] in "un":  # the stream: bit for bit, and equal to the spec
            assert torch.equal(_bits(a), _bits(b)), k
            i = int(k[1:])
            spec = (R.uniform_stream if k[0] == "u" else R.normal_stream)(R.seed_pair(*SEEDS[i]), 5003)
            assert torch.equal(_bits(a), _bits(spec)), k
        else:  # same formulas; the AVX2 copy fuses their gs_fma (one rounding instead of two)
            eps = torch.finfo(a.dtype).eps
            scale = b.double().abs().max().item() if b.numel() else 0.0
            torch.testing.assert_close(a, b, rtol=8 * eps, atol=8 * eps * scale, msg=k)


# ----------------------------------------------------------------------------
# safety-net checks
# ----------------------------------------------------------------------------
def test_checks():
    mu = torch.randn(3, 4)
    lv = torch.randn(3, 4)
    seed = R.seed_pair(1)
    with pytest.raises(RuntimeError, match="seed must be int64"):
        ops.philox_normal(seed.int(), 4)
    with pytest.raises(RuntimeError, match=r"shape \(2,\)"):
        ops.philox_uniform(torch.zeros(3, dtype=torch.int64), 4)
    with pytest.raises(RuntimeError, match="numel must be >= 0"):
        ops.philox_uniform(seed, -1)
    with pytest.raises(RuntimeError, match="2-D"):
        ops.reparam_kl_fwd(mu[0], lv[0], None, None, seed, 1)
    with pytest.raises(RuntimeError, match="dtype"):
        ops.reparam_kl_fwd(mu, lv.double(), None, None, seed, 1)
    with pytest.raises(RuntimeError, match="shape"):
        ops.reparam_kl_fwd(mu, lv[:2], None, None, seed, 1)
    with pytest.raises(RuntimeError, match="prior_mu"):
        ops.reparam_kl_fwd(mu, lv, torch.zeros(3, 5), None, seed, 1)
    with pytest.raises(RuntimeError, match="n_samples"):
        ops.reparam_kl_fwd(mu, lv, None, None, seed, 0)
    with pytest.raises(RuntimeError, match="float32, float64, float16 or bfloat16"):
        ops.reparam_kl_fwd(mu.int(), lv.int(), None, None, seed, 1)
    with pytest.raises(RuntimeError, match="grad_z must have shape"):
        ops.reparam_kl_bwd(torch.zeros(2, 3, 4), None, mu, lv, None, None, seed, 1, False)
    with pytest.raises(RuntimeError, match="grad_kl must have shape"):
        ops.reparam_kl_bwd(None, torch.zeros(4), mu, lv, None, None, seed, 1, False)
    with pytest.raises(RuntimeError, match="grad_kl has dtype"):
        ops.reparam_kl_bwd(None, torch.zeros(3, dtype=torch.float64), mu, lv, None, None, seed, 1, False)
