"""The CUDA kernels' per-thread logic, run on the CPU over a simulated grid.

This machine has no GPU, so the kernels of csrc/cuda/*.cu cannot run here. Their
whole per-thread programs live in csrc/include/gensample/kernels/*.h as host/device
functions; tests/cuda_sim/sim_driver.cpp (compiled here with g++, AddressSanitizer
on) calls them for every (blockIdx, threadIdx) of the launch that the .cu launcher
would make (same header functions for the launch configuration, SM count given),
does the KL block reduction itself, records every store and checks the alignment
of every vector access. This file drives it and checks:

* philox_uniform / philox_normal: bit-identical to gensample.random's spec stream;
* reparam_kl_fwd: z and kl against a float64 formula fed the same eps;
* reparam_kl_bwd: all four gradients against float64 autograd of the forward;
* every output element written exactly once (outputs start as NaN), no store
  outside the outputs, no misaligned vector access, no out-of-bounds read (ASan).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cuda_sim_support import H100_SMS, VEC, check_writes, decode, driver_fixture, requires_cxx, run_driver
from gensample import random as gs_random

pytestmark = requires_cxx

DTYPE_CODE = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
FWD_STATS = ("blocks", "threads", "tpr", "rows_per_block", "nseg", "nsplit", "aligned", "items",
             "vmu", "vlv", "vpm", "vplv", "vz", "bad_config")
BWD_STATS = ("blocks", "threads", "chunks", "vgz", "vmu", "vlv", "vpm", "vplv", "vout", "bad_config")


sim = driver_fixture("sim_driver.cpp", "gs_sim", torch_includes=True, werror=False)


# ----------------------------------------------------------------------------
# philox_uniform / philox_normal
# ----------------------------------------------------------------------------
RANDOM_CASES = [
    # (numel, sm_count, seed, offset, seed_stride, out_shift)
    (0, H100_SMS, 1, 0, 1, 0),
    (1, H100_SMS, 1, 0, 1, 0),
    (2, H100_SMS, 7, 3, 1, 0),
    (3, H100_SMS, 7, 3, 1, 0),
    (4, H100_SMS, 7, 3, 1, 0),
    (5, H100_SMS, 123456789, 0, 1, 0),
    (1023, H100_SMS, 2**64 - 1, 17, 1, 0),
    (1024, H100_SMS, 0, 0, 1, 0),
    (1025, H100_SMS, 0xDEADBEEFCAFEF00D, 2**32 - 3, 1, 0),  # counter crosses 2^32
    (1025, 1, 42, 2**64 - 100, 1, 0),                     # counter wraps mod 2^64
    (5 * 4 * 256 * 8 + 13, 1, 42, 5, 1, 0),               # several grid-stride rounds
    (4 * 256 * 8 * 3 + 1, 2, 99, 0, 2, 0),                # strided seed tensor
    (1025, H100_SMS, 5, 0, 1, 1),                          # misaligned output: scalar stores
]


def normal_reference(seed: torch.Tensor, n: int) -> torch.Tensor:
    """The spec: gensample.random.normal_stream."""
    return gs_random.normal_stream(seed, n)


def _run_random(sim, tmp_path, normal, numel, sms=H100_SMS, seed=1, offset=0, seed_stride=1, shift=0):
    res = run_driver(sim, [1 if normal else 0, seed, offset, seed_stride, numel, sms, shift], [], tmp_path)
    check_writes(res.stats, res.outs, ["out"])
    return res, decode(res.outs[0][0], torch.float32)


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


@pytest.mark.parametrize("normal", [False, True], ids=["uniform", "normal"])
@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: f"n{c[0]}-sm{c[1]}-s{c[4]}-sh{c[5]}")
def test_random_stream_bit_identical(sim, tmp_path, normal, case):
    numel, sms, seed, offset, seed_stride, shift = case
    res, out = _run_random(sim, tmp_path, normal, numel, sms, seed, offset, seed_stride, shift)
    blocks, threads, vec = res.stats[3:6]
    assert threads == 256
    assert blocks <= sms * 8 and (numel == 0 or blocks >= 1)
    assert bool(vec) == (shift == 0)
    if numel >= 4 and shift == 0:
        assert res.stats[VEC] > 0, "aligned output should use vector stores"
    pair = gs_random.seed_pair(seed, offset)
    ref = normal_reference(pair, numel) if normal else gs_random.uniform_stream(pair, numel)
    assert _bits_equal(out, ref), "stream differs from gensample.random"


def test_normal_stream_matches_spec(sim, tmp_path):
    """Against gensample.random.normal_stream itself (not the sqrt-corrected copy)."""
    seed, offset, n = 2**63 + 99, 2**32 - 1, 4099
    _, out = _run_random(sim, tmp_path, True, n, seed=seed, offset=offset)
    pair = gs_random.seed_pair(seed, offset)
    assert _bits_equal(out, gs_random.normal_stream(pair, n)), "normals differ from gensample.random"


# ----------------------------------------------------------------------------
# reparam_kl_fwd / reparam_kl_bwd: inputs
# ----------------------------------------------------------------------------
class View:
    """A strided view (with its own exact-size storage) and the words describing it."""

    def __init__(self, shape, strides, offset, dtype, gen, scale=1.0, shift=0.0):
        numel_span = sum((s - 1) * st for s, st in zip(shape, strides)) + 1 if all(shape) else 0
        storage_numel = offset + numel_span
        base = (torch.randn(storage_numel, generator=gen, dtype=torch.float64) * scale + shift).to(dtype)
        self.base = base
        self.tensor = torch.as_strided(base, shape, strides, offset)
        self.meta = [1, storage_numel, offset, *strides]
        self.blob = base.view(torch.uint8).numpy().tobytes() if storage_numel else b""


def _absent(ndim):
    return [0, 0, 0] + [0] * ndim


def layout_2d(kind, R, D):
    """(strides, offset) of an (R, D) input view laid out as `kind`."""
    if kind == "contig":
        return (D, 1), 0
    if kind == "transposed":
        return (1, R), 0
    if kind == "chunk":  # second half of a (R, 2D + 4) encoder output: torch.chunk / narrow
        return (2 * D + 4, 1), D + 4
    if kind == "pad1":  # rows padded by one element: row starts off the vector grid
        return (D + 1, 1), 0
    if kind == "offset1":  # contiguous rows, base one element off the vector grid
        return (D, 1), 1
    if kind == "row0":  # (1, D).expand(R, D)
        return (0, 1), 0
    if kind == "col0":  # (R, 1).expand(R, D)
        return (1, 0), 0
    if kind == "scalar0":  # a 0-d value expanded to (R, D)
        return (0, 0), 0
    raise ValueError(kind)


def _tol(dtype):
    return {torch.float32: 2e-5, torch.float64: 1e-11, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]


def _assert_close(name, got, ref, rtol, atol):
    got = got.to(torch.float64)
    err = (got - ref).abs()
    lim = atol + rtol * ref.abs()
    assert not torch.isnan(got).any(), f"{name}: NaN in output"
    bad = err > lim
    if bad.any():
        i = int(bad.flatten().nonzero()[0])
        raise AssertionError(f"{name}: {int(bad.sum())} mismatches, first at flat {i}: got "
                             f"{got.flatten()[i].item()!r}, ref {ref.flatten()[i].item()!r}")


def _eps(seed, offset, S, R, D):
    return normal_reference(gs_random.seed_pair(seed, offset), S * R * D).to(torch.float64).view(S, R, D)


# ----------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------
def run_fwd(sim, tmp_path, *, R, D, S, dtype=torch.float32, mu="contig", lv="contig", pm=None, plv=None,
            sms=H100_SMS, shift=0, seed=1234, offset=0, seed_stride=1, gen_seed=0):
    gen = torch.Generator().manual_seed(gen_seed)
    views = []
    for kind, scale, sh in ((mu, 1.0, 0.0), (lv, 0.5, -0.2), (pm, 0.7, 0.1), (plv, 0.4, 0.2)):
        if kind is None:
            views.append(None)
        else:
            strides, off = layout_2d(kind, R, D)
            views.append(View((R, D), strides, off, dtype, gen, scale, sh))
    words = [2, DTYPE_CODE[dtype], R, D, S, sms, shift, seed, offset, seed_stride]
    blobs = []
    for v in views:
        words += v.meta if v is not None else _absent(2)
    for v in views:
        if v is not None:
            blobs.append(v.blob)
    res = run_driver(sim, words, blobs, tmp_path)
    st = dict(zip(FWD_STATS, res.stats[3:]))
    assert st["bad_config"] == 0
    nseg = st["nseg"]
    check_writes(res.stats, res.outs, ["z", "kl", "ws"] if nseg > 1 else ["z", "kl"])

    z = decode(res.outs[0][0], dtype).view(S, R, D)
    kl = decode(res.outs[1][0], dtype)
    assert kl.shape == (R,)
    f64 = [v.tensor.to(torch.float64) if v is not None else torch.zeros((), dtype=torch.float64) for v in views]
    m, l, pmv, plvv = f64
    eps = _eps(seed, offset, S, R, D)
    z_ref = m + torch.exp(0.5 * l) * eps
    d = l - plvv
    kl_ref = (0.5 * (torch.expm1(d) - d + (m - pmv) ** 2 * torch.exp(-plvv))).expand(R, D).sum(-1)
    tol = _tol(dtype)
    _assert_close("z", z, z_ref, tol, tol)
    # KL terms are >= 0: a relative bound on the sum covers the accumulation error.
    kl_rtol = tol + (D * 2 * 2.0**-24 if dtype != torch.float64 else 0.0)
    _assert_close("kl", kl, kl_ref, kl_rtol, tol)
    return st, res


SIZES = [1, 3, 127, 129]


@pytest.mark.parametrize("S", [1, 2])
@pytest.mark.parametrize("R", SIZES)
@pytest.mark.parametrize("D", SIZES + [4, 8, 132])
def test_fwd_sizes(sim, tmp_path, R, D, S):
    st, res = run_fwd(sim, tmp_path, R=R, D=D, S=S, pm="row0", plv="row0")
    assert st["aligned"] == (D % 4 == 0)
    if D % 4 == 0:
        assert st["vmu"] and st["vlv"] and st["vz"] and st["vpm"]
        assert res.stats[VEC] > 0


@pytest.mark.parametrize("layout", [
    ("transposed", "transposed", None, None),
    ("chunk", "chunk", None, None),
    ("offset1", "contig", "col0", "row0"),
    ("contig", "offset1", "contig", "transposed"),
    ("chunk", "transposed", "scalar0", "scalar0"),
    ("contig", "contig", "row0", None),   # only prior_mu given
    ("contig", "contig", None, "col0"),   # only prior_logvar given
    ("pad1", "contig", "pad1", None),
])
@pytest.mark.parametrize("RD", [(3, 129), (129, 3), (127, 8), (5, 132), (1, 1)])
@pytest.mark.parametrize("S", [1, 2])
def test_fwd_strided(sim, tmp_path, layout, RD, S):
    mu, lv, pm, plv = layout
    R, D = RD
    st, _ = run_fwd(sim, tmp_path, R=R, D=D, S=S, mu=mu, lv=lv, pm=pm, plv=plv, gen_seed=R * 1000 + D)
    if mu == "transposed" and R > 1 and D > 1:
        assert not st["vmu"]
    if mu == "offset1" and R * D > 1:
        assert not st["vmu"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("RD,S,layout", [
    ((3, 129), 2, ("contig", "contig", "row0", "row0")),
    ((129, 4), 1, ("contig", "chunk", None, None)),
    ((127, 8), 2, ("transposed", "contig", "col0", "contig")),
    ((2, 4100), 1, ("contig", "contig", None, None)),      # segmented rows
])
def test_fwd_dtypes(sim, tmp_path, dtype, RD, S, layout):
    mu, lv, pm, plv = layout
    run_fwd(sim, tmp_path, R=RD[0], D=RD[1], S=S, dtype=dtype, mu=mu, lv=lv, pm=pm, plv=plv)


@pytest.mark.parametrize("R,D,S", [(0, 5, 1), (0, 0, 2), (4, 0, 1), (3, 0, 2), (5, 7, 0), (5, 8, 0), (0, 8, 0)])
def test_fwd_empty(sim, tmp_path, R, D, S):
    st, res = run_fwd(sim, tmp_path, R=R, D=D, S=S, pm="row0", plv="contig")
    if R > 0:
        assert (res.outs[1][1] == 1).all()  # kl written (zeros when D == 0)


@pytest.mark.parametrize("case", [
    dict(R=2, D=5000, S=2),              # aligned, long rows split into segments
    dict(R=1, D=4099, S=1),              # general path, segments
    dict(R=3, D=8192, S=1, mu="chunk"),
    dict(R=1, D=4100, S=3, sms=4),       # few SMs: segments and sample splits
])
def test_fwd_segmented_rows(sim, tmp_path, case):
    st, _ = run_fwd(sim, tmp_path, pm="row0", plv="row0", **case)
    assert st["tpr"] == 256 and st["nseg"] > 1


@pytest.mark.parametrize("case", [
    dict(R=3, D=5, S=7),                 # tiny batch, many samples: sample splits
    dict(R=2, D=64, S=5, mu="transposed"),
    dict(R=300, D=12, S=3, sms=1),       # one SM: many items per block
    dict(R=129, D=127, S=2, sms=2),
    dict(R=33, D=33, S=2, shift=1),      # misaligned outputs: scalar stores
    dict(R=40, D=8, S=2, shift=1),
    dict(R=17, D=9, S=2, seed=2**64 - 1, offset=2**64 - 7, seed_stride=3),  # counter wraps
])
def test_fwd_grid_variants(sim, tmp_path, case):
    st, _ = run_fwd(sim, tmp_path, pm="contig", plv="row0", **case)
    if case.get("S", 1) > 1 and case["R"] <= 3:
        assert st["nsplit"] > 1
    if case.get("shift"):
        assert not st["vz"]


# ----------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------
def layout_3d(kind, S, R, D):
    if kind == "contig":
        return (R * D, D, 1), 0
    if kind == "expand0":  # grad of a sum over samples: (R, D) expanded along S
        return (0, D, 1), 0
    if kind == "transposed":  # (S, D, R).transpose(1, 2)
        return (R * D, 1, R), 0
    if kind == "offset1":
        return (R * D, D, 1), 1
    if kind == "zeros":  # torch.zeros(()).expand(S, R, D)
        return (0, 0, 0), 0
    raise ValueError(kind)


def run_bwd(sim, tmp_path, *, R, D, S, dtype=torch.float32, mu="contig", lv="contig", pm=None, plv=None,
            gz="contig", gkl="contig", prior_grads=True, sms=H100_SMS, shift=0, seed=777, offset=0,
            seed_stride=1, gen_seed=1):
    gen = torch.Generator().manual_seed(gen_seed)
    gzv = None
    if gz is not None:
        strides, off = layout_3d(gz, S, R, D)
        gzv = View((S, R, D), strides, off, dtype, gen)
    gklv = None
    if gkl is not None:
        stride, off = {"contig": (1, 0), "strided": (3, 2), "expand0": (0, 0)}[gkl]
        gklv = View((R,), (stride,), off, dtype, gen)
    views = []
    for kind, scale, sh in ((mu, 1.0, 0.0), (lv, 0.5, -0.2), (pm, 0.7, 0.1), (plv, 0.4, 0.2)):
        if kind is None:
            views.append(None)
        else:
            strides, off = layout_2d(kind, R, D)
            views.append(View((R, D), strides, off, dtype, gen, scale, sh))
    words = [3, DTYPE_CODE[dtype], R, D, S, sms, shift, seed, offset, seed_stride, int(prior_grads)]
    words += gzv.meta if gzv is not None else _absent(3)
    words += gklv.meta if gklv is not None else _absent(1)
    for v in views:
        words += v.meta if v is not None else _absent(2)
    blobs = [v.blob for v in [gzv, gklv, *views] if v is not None]
    res = run_driver(sim, words, blobs, tmp_path)
    st = dict(zip(BWD_STATS, res.stats[3:]))
    assert st["bad_config"] == 0
    check_writes(res.stats, res.outs, ["dmu", "dlv", "dpm", "dplv"])
    outs = [decode(raw, dtype) for raw, _ in res.outs]
    n = R * D
    assert outs[0].numel() == n and outs[1].numel() == n
    assert outs[2].numel() == (n if prior_grads else 0) and outs[3].numel() == (n if prior_grads else 0)

    # Reference: float64 autograd of the forward formula with the same eps.
    leaves = [(v.tensor.to(torch.float64) if v is not None else torch.zeros(R, D, dtype=torch.float64))
              .expand(R, D).clone().requires_grad_(True) for v in views]
    m, l, pmv, plvv = leaves
    eps = _eps(seed, offset, S, R, D)
    z = m + torch.exp(0.5 * l) * eps
    d = l - plvv
    kl = (0.5 * (torch.exp(d) - 1.0 - d + (m - pmv) ** 2 * torch.exp(-plvv))).sum(-1)
    loss = torch.zeros((), dtype=torch.float64)
    if gzv is not None:
        loss = loss + (gzv.tensor.to(torch.float64) * z).sum()
    if gklv is not None:
        loss = loss + (gklv.tensor.to(torch.float64) * kl).sum()
    if loss.requires_grad:
        grads = [g if g is not None else torch.zeros(R, D, dtype=torch.float64)
                 for g in torch.autograd.grad(loss, leaves, allow_unused=True)]
    else:
        grads = [torch.zeros(R, D, dtype=torch.float64)] * 4
    # Scale for the absolute tolerance: the gradients sum S terms.
    tol = _tol(dtype)
    atol = tol * max(1.0, float(S))
    names = ["dmu", "dlv", "dpm", "dplv"] if prior_grads else ["dmu", "dlv"]
    for name, got, ref in zip(names, outs, grads):
        _assert_close(name, got.view(R, D), ref, tol, atol)
    return st, res


@pytest.mark.parametrize("S", [1, 2])
@pytest.mark.parametrize("R", SIZES)
@pytest.mark.parametrize("D", SIZES + [4])
def test_bwd_sizes(sim, tmp_path, R, D, S):
    st, res = run_bwd(sim, tmp_path, R=R, D=D, S=S, pm="row0", plv="row0")
    assert st["vmu"] and st["vout"]  # contiguous inputs: every chunk is a contiguous vector
    if (R * D) >= 4:
        assert res.stats[VEC] > 0


@pytest.mark.parametrize("case", [
    dict(mu="transposed", lv="chunk", gz="transposed", gkl="strided"),
    dict(mu="offset1", lv="contig", pm="col0", plv="row0", gz="offset1", gkl="expand0"),
    dict(mu="chunk", lv="chunk", pm="scalar0", plv="contig", gz="expand0", gkl=None),
    dict(gz=None, gkl="contig", pm="row0", plv="row0"),
    dict(gz="contig", gkl=None, prior_grads=False),
    dict(gz=None, gkl=None),
    dict(gz="zeros", gkl="contig", pm="contig", plv=None),
    dict(shift=1, pm="row0", plv="row0"),
    dict(sms=1, seed=2**64 - 1, offset=2**64 - 3, seed_stride=2),
    dict(mu="pad1", lv="contig", pm="pad1", plv="pad1", gz="contig"),
])
@pytest.mark.parametrize("RD", [(3, 3), (5, 129), (129, 5), (64, 8), (1, 1)])
@pytest.mark.parametrize("S", [1, 2, 3])
def test_bwd_strided(sim, tmp_path, case, RD, S):
    run_bwd(sim, tmp_path, R=RD[0], D=RD[1], S=S, **case)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("RD,S,case", [
    ((3, 129), 2, dict(pm="row0", plv="row0")),
    ((129, 4), 1, dict(lv="chunk", gz="expand0")),
    ((127, 7), 3, dict(mu="transposed", pm="col0", plv="contig", prior_grads=False)),
])
def test_bwd_dtypes(sim, tmp_path, dtype, RD, S, case):
    run_bwd(sim, tmp_path, R=RD[0], D=RD[1], S=S, dtype=dtype, **case)


@pytest.mark.parametrize("R,D,S", [(0, 5, 1), (5, 0, 2), (0, 0, 1), (4, 3, 0)])
def test_bwd_empty(sim, tmp_path, R, D, S):
    run_bwd(sim, tmp_path, R=R, D=D, S=S, pm="row0", plv="row0")


def test_bwd_large_grid(sim, tmp_path):
    # More chunks than one wave of a 1-SM grid: grid-stride loop, and RD % 4 != 0 with
    # S = 3 (samples 1 and 2 straddle two Philox groups per chunk).
    st, _ = run_bwd(sim, tmp_path, R=257, D=37, S=3, sms=1, pm="row0", plv="contig")
    assert st["chunks"] > st["blocks"] * st["threads"]
