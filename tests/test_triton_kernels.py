"""Triton backend kernels, run on CPU tensors through the Triton interpreter.

* the stream ops are bit-identical to the executable specification (gensample.random);
* reparam forward/backward agree with a float64 torch formula fed the same noise;
* every kernel also compiles for sm_90 (no GPU needed) and the normal stream has no FMA.
"""
from triton_support import ROOT, compile_check, needs_nvidia_backend, require_interpreted_triton  # noqa: E402,I001  (sets TRITON_INTERPRET first)

import fractions  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import textwrap  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

require_interpreted_triton()

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import gensample  # noqa: E402,F401
from gensample import random as R  # noqa: E402
from gensample.ops import random_triton as rt  # noqa: E402
from gensample.ops import reparam_triton as rp  # noqa: E402

ops = torch.ops.gensample

SEEDS = [
    (0, 0),
    (0x0123456789ABCDEF, 7),
    (2**63 + 0x5EED, 2**32 - 3),  # seed with the high bit set; counters cross 2^32
    (0xFFFFFFFF, 2**64 - 2),  # counters wrap around 2^64
]
NUMELS = [0, 1, 3, 5, 1023, 1025]


# ----------------------------------------------------------------------------------
# references
# ----------------------------------------------------------------------------------
def normal_reference(seed: torch.Tensor, n: int) -> torch.Tensor:
    """The spec: gensample.random.normal_stream."""
    return R.normal_stream(seed, n)


def bits(x: torch.Tensor) -> torch.Tensor:
    return x.view(torch.int32)


def assert_bit_identical(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.dtype == torch.float32 and got.shape == want.shape
    bad = (bits(got) != bits(want)).nonzero().flatten()
    assert bad.numel() == 0, (f"{bad.numel()} elements differ, first at {bad[:5].tolist()}: "
                              f"{got[bad[:5]].tolist()} vs {want[bad[:5]].tolist()}")


# ----------------------------------------------------------------------------------
# float constants: Python float -> float32 equals the C++ float literal
# ----------------------------------------------------------------------------------
def _decimal_to_f32(text: str) -> np.float32:
    """Correctly rounded float32 of a decimal literal (what a C++ `...f` literal is)."""
    q = fractions.Fraction(text)
    if q == 0:
        return np.float32(0.0)
    sign = -1 if q < 0 else 1
    q = abs(q)
    e = math.floor(math.log2(q))
    while fractions.Fraction(2) ** e > q:
        e -= 1
    while fractions.Fraction(2) ** (e + 1) <= q:
        e += 1
    scaled = q / fractions.Fraction(2) ** (e - 23)  # in [2^23, 2^24)
    n = math.floor(scaled)
    rem = scaled - n
    if rem > fractions.Fraction(1, 2) or (rem == fractions.Fraction(1, 2) and n % 2 == 1):
        n += 1
    return np.float32(sign * n * 2.0 ** (e - 23))


def test_float_constants_round_like_cpp_literals():
    src = (ROOT / "csrc/include/gensample/random.h").read_text()
    lits = set(re.findall(r"(?<![\w.])(\d+\.\d*(?:e[-+]?\d+)?)f\b", src))
    assert len(lits) >= 20
    py = (ROOT / "gensample/ops/random_triton.py").read_text()
    for lit in sorted(lits):
        assert np.float32(float(lit)) == _decimal_to_f32(lit), lit
        assert lit in py, f"random.h literal {lit} not found in random_triton.py"


# ----------------------------------------------------------------------------------
# streams
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed_off", SEEDS, ids=lambda s: f"s{s[0]:x}_o{s[1]:x}")
def test_uniform_stream_bit_identical(seed_off):
    seed = R.seed_pair(*seed_off)
    for n in NUMELS:
        got = ops.philox_uniform_triton(seed, n)
        assert got.device == seed.device and got.dim() == 1
        assert_bit_identical(got, R.uniform_stream(seed, n))


@pytest.mark.parametrize("seed_off", SEEDS, ids=lambda s: f"s{s[0]:x}_o{s[1]:x}")
def test_normal_stream_bit_identical(seed_off):
    seed = R.seed_pair(*seed_off)
    for n in NUMELS:
        assert_bit_identical(ops.philox_normal_triton(seed, n), normal_reference(seed, n))


def test_normal_stream_matches_spec():
    seed = R.seed_pair(2**63 + 99, 2**32 - 1)
    got = ops.philox_normal_triton(seed, 4099)
    spec = R.normal_stream(seed, 4099)
    assert_bit_identical(got, spec)


@triton.jit
def _pieces_kernel(w_ptr, out_ptr, n, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    m = i < n
    w = tl.load(w_ptr + i, mask=m, other=0).to(tl.uint32, bitcast=True)
    tl.store(out_ptr + i, rt.uniform_from_bits(w), mask=m)
    f = rt.u32_to_float(w)
    tl.store(out_ptr + n + i, f, mask=m)
    u = rt.fadd(rt.fmul(f, 2.3283064365386963e-10), 1.1641532182693481e-10)
    tl.store(out_ptr + 2 * n + i, rt.log_unit(u), mask=m)
    c, s = rt.angle_cos_sin(w)
    tl.store(out_ptr + 3 * n + i, c, mask=m)
    tl.store(out_ptr + 4 * n + i, s, mask=m)


def test_stream_pieces_bit_identical():
    """uniform_from_bits / u32_to_float / log_unit / angle_cos_sin against the spec, on
    hand-picked words (quadrant edges, all-ones, ...) and stream words."""
    w = torch.tensor([0, 1, 0xFF, 0x100, 0xFFFF, 0x10000, 0x3FFFFFFF, 0x40000000, 0x7FFFFFFF, 0x80000000,
                      0xBFFFFFFF, 0xC0000000, 0xFFFFFF00, 0xFFFFFFFF, 0xDEADBEEF, 0x12345678], dtype=torch.int64)
    w = torch.cat([w, R.stream_words(R.seed_pair(5, 0), 60).reshape(-1)])
    n = w.numel()
    out = torch.empty((5, n), dtype=torch.float32)
    _pieces_kernel[(1,)](w.to(torch.int32), out, n, BLOCK=triton.next_power_of_2(n))
    u = R._u32_to_float(w) * 2.0**-32 + 2.0**-33
    c, s = R.angle_cos_sin(w)
    for got, want in zip(out, [R._uniform_from_bits(w), R._u32_to_float(w), R.log_unit(u), c, s]):
        assert_bit_identical(got, want)


def test_schemas_match_csrc_ops():
    """Same arguments, order, optionality and returns as the C++ schemas in csrc/ops.cpp
    (triton_op turns `int` into `SymInt`; that is the only allowed difference)."""
    src = (ROOT / "csrc/ops.cpp").read_text()
    for name in ("philox_uniform", "philox_normal", "reparam_kl_fwd", "reparam_kl_bwd"):
        m = re.search(r'"' + name + r'\((.*?)\) -> (.*?)"\);', src.replace('"\n      "', "").replace('" "', ""), re.S)
        assert m, name
        want = f"({m.group(1)}) -> {m.group(2)}"
        want = re.sub(r"\bint\b", "SymInt", want)
        got = str(getattr(ops, name + "_triton").default._schema).split("::", 1)[1]
        assert got == name + "_triton" + want, (got, want)


def test_stream_errors():
    with pytest.raises(ValueError):
        ops.philox_uniform_triton(torch.zeros(3, dtype=torch.int64), 4)
    with pytest.raises(ValueError):
        ops.philox_normal_triton(torch.zeros(2, dtype=torch.int32), 4)


# ----------------------------------------------------------------------------------
# reparam: float64 reference fed the same noise
# ----------------------------------------------------------------------------------
TOL = {  # (rtol, atol) on outputs of magnitude ~1..10
    torch.float32: (2e-5, 2e-5),
    torch.float64: (1e-12, 1e-12),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}


def ref_forward(mu, lv, pm, plv, seed, S):
    Rr, D = mu.shape
    eps = normal_reference(seed, S * Rr * D).view(S, Rr, D).double()
    m, l = mu.double(), lv.double()
    p = pm.double() if pm is not None else torch.zeros((), dtype=torch.float64)
    q = plv.double() if plv is not None else torch.zeros((), dtype=torch.float64)
    z = m + torch.exp(0.5 * l) * eps
    d = l - q
    kl = (0.5 * (torch.expm1(d) - d + (m - p) ** 2 * torch.exp(-q))).sum(-1)
    return z, kl, eps


def ref_backward(gz, gkl, mu, lv, pm, plv, seed, S):
    Rr, D = mu.shape
    _, _, eps = ref_forward(mu, lv, pm, plv, seed, S)
    m, l = mu.double(), lv.double()
    p = pm.double() if pm is not None else torch.zeros((), dtype=torch.float64)
    q = plv.double() if plv is not None else torch.zeros((), dtype=torch.float64)
    dz_sum = gz.double().sum(0) if gz is not None else torch.zeros(())
    dz_eps = (gz.double() * eps).sum(0) if gz is not None else torch.zeros(())
    dkl = gkl.double()[:, None] if gkl is not None else torch.zeros(())
    em1 = torch.expm1(l - q)
    g = (m - p) * torch.exp(-q)
    full = (Rr, D)
    return ((dz_sum + dkl * g).expand(full), (0.5 * dz_eps * torch.exp(0.5 * l) + 0.5 * dkl * em1).expand(full),
            (-dkl * g).expand(full), (-0.5 * dkl * (em1 + (m - p) * g)).expand(full))


def close(got, want, dtype, scale=1.0):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(got.double(), want.double(), rtol=rtol, atol=atol * scale)


def make_inputs(Rr, D, dtype, layout, prior, gen):
    """mu/logvar (R, D) in the given layout; priors as expanded views (stride 0)."""
    def mat(scale):
        if layout == "contiguous":
            x = torch.randn(Rr, D, generator=gen, dtype=torch.float64)
        elif layout == "transposed":
            x = torch.randn(D, Rr, generator=gen, dtype=torch.float64).t()
        else:  # every other column of a wider tensor (like encoder(x).chunk(2, -1))
            x = torch.randn(Rr, 2 * D, generator=gen, dtype=torch.float64)[:, ::2]
        return (x * scale).to(dtype)

    mu = mat(1.0)
    lv = mat(0.7)
    pm = plv = None
    if prior in ("row", "both"):
        pm = (torch.randn(1, D, generator=gen, dtype=torch.float64) * 0.5).to(dtype).expand(Rr, D)
    if prior in ("col", "both"):
        plv = (torch.randn(Rr, 1, generator=gen, dtype=torch.float64) * 0.4).to(dtype).expand(Rr, D)
    if prior == "full":
        pm = torch.randn(Rr, D, generator=gen, dtype=torch.float64).to(dtype)
        plv = (torch.randn(Rr, D, generator=gen, dtype=torch.float64) * 0.3).to(dtype)
    return mu, lv, pm, plv


@triton.jit
def _expm1_kernel(x_ptr, o_ptr, n, F64: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    m = i < n
    tl.store(o_ptr + i, rp.expm1(tl.load(x_ptr + i, mask=m), F64), mask=m)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_expm1_accuracy(dtype):
    """The portable expm1 (triton has none): relative error within a few ulp everywhere,
    including tiny |x| where exp(x) - 1 would lose every digit."""
    xs = np.concatenate([np.linspace(-4, 4, 4001), np.logspace(-30, 0, 600), -np.logspace(-30, 0, 600),
                         [0.0, 0.5, -0.5, 0.4999999, -0.4999999, 60.0, -60.0]])
    x = torch.tensor(xs, dtype=dtype)
    out = torch.empty_like(x)
    _expm1_kernel[(1,)](x, out, x.numel(), F64=dtype == torch.float64, BLOCK=triton.next_power_of_2(x.numel()))
    want = torch.expm1(x.double())
    rel = (out.double() - want).abs() / want.abs().clamp_min(1e-300)
    assert rel.max().item() < 4 * torch.finfo(dtype).eps
    assert torch.equal(out[x == 0], x[x == 0])


# (R, D, n_samples, dtype, layout, prior). R/D cover 0, 1, primes and the widest column
# chunk (512) +- 1: D = 511/512/513 (one or two chunks, phases 0..3), R*D % 4 == 0 or not.
CASES = [
    (1, 1, 1, torch.float32, "contiguous", None),
    (3, 5, 1, torch.float32, "contiguous", "both"),
    (5, 7, 3, torch.float32, "transposed", "row"),
    (4, 6, 3, torch.float32, "strided", "col"),  # R*D % 4 == 0, D % 4 != 0: shifted frames
    (7, 16, 2, torch.float64, "contiguous", "full"),
    (13, 3, 3, torch.float64, "strided", "both"),
    (2, 511, 1, torch.float32, "contiguous", "both"),
    (1, 512, 3, torch.float32, "contiguous", None),
    (3, 513, 1, torch.float32, "transposed", "row"),
    (1, 1031, 1, torch.float32, "contiguous", "both"),  # columns split over programs
    (257, 5, 1, torch.float32, "contiguous", None),  # rows > one row block
    (11, 17, 3, torch.float16, "contiguous", "both"),
    (4, 513, 3, torch.bfloat16, "strided", "full"),
    (6, 29, 1, torch.bfloat16, "transposed", None),
]


def _case_id(c):
    Rr, D, S, dt, layout, prior = c
    return f"R{Rr}-D{D}-S{S}-{str(dt).split('.')[-1]}-{layout}-{prior}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_reparam_forward(case):
    Rr, D, S, dtype, layout, prior = case
    gen = torch.Generator().manual_seed(Rr * 1000 + D)
    mu, lv, pm, plv = make_inputs(Rr, D, dtype, layout, prior, gen)
    seed = R.seed_pair(2**63 + Rr * 31 + D, 2**32 - 2)
    z, kl = ops.reparam_kl_fwd_triton(mu, lv, pm, plv, seed, S)
    assert z.shape == (S, Rr, D) and z.dtype == dtype and z.is_contiguous()
    assert kl.shape == (Rr,) and kl.dtype == dtype
    rz, rkl, _ = ref_forward(mu, lv, pm, plv, seed, S)
    close(z, rz, dtype, scale=4.0)
    close(kl, rkl, dtype, scale=max(1.0, math.sqrt(D)))


def test_reparam_forward_noise_is_the_stream():
    """With mu = 0, logvar = 0, z is exactly normal_stream (float32)."""
    Rr, D, S = 3, 7, 3
    seed = R.seed_pair(0xABCDEF, 2**32 - 4)
    zero = torch.zeros(Rr, D)
    z, kl = ops.reparam_kl_fwd_triton(zero, zero, None, None, seed, S)
    assert_bit_identical(z.reshape(-1), normal_reference(seed, S * Rr * D))
    assert torch.equal(kl, torch.zeros(Rr))


@pytest.mark.parametrize("Rr,D,S", [(0, 3, 1), (3, 0, 2), (0, 0, 1), (2, 3, 0)])
def test_reparam_empty(Rr, D, S):
    mu = torch.randn(Rr, D)
    lv = torch.randn(Rr, D)
    seed = R.seed_pair(1, 0)
    z, kl = ops.reparam_kl_fwd_triton(mu, lv, None, None, seed, S)
    assert z.shape == (S, Rr, D) and kl.shape == (Rr,)
    _, rkl, _ = ref_forward(mu, lv, None, None, seed, max(S, 1))
    close(kl, rkl, torch.float32)
    gz = torch.randn(S, Rr, D)
    dmu, dlv, dpm, dplv = ops.reparam_kl_bwd_triton(gz, torch.ones(Rr), mu, lv, None, None, seed, S, True)
    assert dmu.shape == dlv.shape == dpm.shape == dplv.shape == (Rr, D)
    want = ref_backward(gz, torch.ones(Rr), mu, lv, None, None, seed, S)
    for g, w in zip((dmu, dlv, dpm, dplv), want):
        close(g, w, torch.float32)


# (R, D, n_samples, dtype, layout, prior, grad_z kind, grad_kl?, prior_grads)
BWD_CASES = [
    (3, 5, 1, torch.float32, "contiguous", "both", "contiguous", True, True),
    (5, 7, 3, torch.float32, "transposed", "row", "contiguous", True, True),  # R*D % 4 != 0, S > 1: per element
    (4, 6, 3, torch.float32, "strided", "col", "permuted", True, False),  # shifted frames shared by samples
    (3, 513, 3, torch.float32, "contiguous", "full", "expanded", False, True),  # grad_z stride 0
    (1, 1031, 1, torch.float32, "contiguous", "both", "contiguous", True, True),
    (7, 16, 2, torch.float64, "strided", "full", "contiguous", True, True),
    (13, 3, 3, torch.float64, "contiguous", "both", "permuted", True, True),
    (11, 17, 3, torch.float16, "contiguous", "both", "contiguous", True, True),
    (4, 513, 1, torch.bfloat16, "transposed", None, "contiguous", True, False),
    (6, 29, 2, torch.float32, "contiguous", "both", None, True, True),  # grad_z None
    (257, 5, 1, torch.float32, "contiguous", "row", "contiguous", False, False),  # grad_kl None
    (1, 1, 1, torch.float32, "contiguous", None, None, False, True),  # neither
]


def _bwd_id(c):
    return _case_id(c[:6]) + f"-gz_{c[6]}-gkl{int(c[7])}-pg{int(c[8])}"


@pytest.mark.parametrize("case", BWD_CASES, ids=_bwd_id)
def test_reparam_backward(case):
    Rr, D, S, dtype, layout, prior, gz_kind, has_gkl, prior_grads = case
    gen = torch.Generator().manual_seed(Rr * 7 + D)
    mu, lv, pm, plv = make_inputs(Rr, D, dtype, layout, prior, gen)
    seed = R.seed_pair(2**63 + 12345 + D, 2**32 - 3)
    if gz_kind == "contiguous":
        gz = torch.randn(S, Rr, D, generator=gen, dtype=torch.float64).to(dtype)
    elif gz_kind == "permuted":
        gz = torch.randn(D, S, Rr, generator=gen, dtype=torch.float64).to(dtype).permute(1, 2, 0)
    elif gz_kind == "expanded":
        gz = torch.randn(1, 1, D, generator=gen, dtype=torch.float64).to(dtype).expand(S, Rr, D)
    else:
        gz = None
    gkl = torch.randn(2 * Rr, generator=gen, dtype=torch.float64).to(dtype)[::2] if has_gkl else None
    dmu, dlv, dpm, dplv = ops.reparam_kl_bwd_triton(gz, gkl, mu, lv, pm, plv, seed, S, prior_grads)
    for g in (dmu, dlv):
        assert g.shape == (Rr, D) and g.dtype == dtype and g.is_contiguous()
    want = ref_backward(gz, gkl, mu, lv, pm, plv, seed, S)
    scale = 4.0 * max(1, S)
    close(dmu, want[0], dtype, scale)
    close(dlv, want[1], dtype, scale)
    if prior_grads:
        assert dpm.shape == dplv.shape == (Rr, D) and dpm.dtype == dtype
        close(dpm, want[2], dtype, scale)
        close(dplv, want[3], dtype, scale)
    else:
        assert dpm.shape == (0,) and dplv.shape == (0,)


def test_reparam_autograd_through_lead_registration():
    """reparam.py registers autograd for the triton ops: gradients flow and match gradcheck-style finite math."""
    Rr, D, S = 3, 5, 2
    gen = torch.Generator().manual_seed(3)
    mu = torch.randn(Rr, D, generator=gen, dtype=torch.float64, requires_grad=True)
    lv = (0.5 * torch.randn(Rr, D, generator=gen, dtype=torch.float64)).requires_grad_()
    seed = R.seed_pair(77, 0)
    z, kl = ops.reparam_kl_fwd_triton(mu, lv, None, None, seed, S)
    (z.sin().sum() + kl.square().sum()).backward()
    m, l = mu.detach().requires_grad_(), lv.detach().requires_grad_()
    rz, rkl, _ = ref_forward(m, l, None, None, seed, S)
    (rz.sin().sum() + rkl.square().sum()).backward()
    torch.testing.assert_close(mu.grad, m.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(lv.grad, l.grad, rtol=1e-10, atol=1e-10)


def test_reparam_errors():
    seed = R.seed_pair(1, 0)
    mu = torch.zeros(2, 3)
    with pytest.raises(ValueError):
        ops.reparam_kl_fwd_triton(mu, torch.zeros(2, 4), None, None, seed, 1)
    with pytest.raises(ValueError):
        ops.reparam_kl_fwd_triton(mu.view(-1), mu.view(-1), None, None, seed, 1)
    with pytest.raises(ValueError):
        ops.reparam_kl_fwd_triton(mu, mu, None, None, torch.zeros(2, dtype=torch.int32), 1)
    with pytest.raises(ValueError):
        ops.reparam_kl_bwd_triton(torch.zeros(2, 2, 3), None, mu, mu, None, None, seed, 1, False)


# ----------------------------------------------------------------------------------
# GPU compilation (no GPU needed): every kernel lowers for sm_90, and the normal
# stream kernel has no FMA even with FP fusion on (what torch.compile uses).
# ----------------------------------------------------------------------------------
_COMPILE_SCRIPT = textwrap.dedent(r"""
    import os, re, sys, warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[1])
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from gensample.ops import random_triton as rt, reparam_triton as rp
    T = GPUTarget("cuda", 90, 32)
    from triton.backends.nvidia.compiler import CUDAOptions
    assert "enable_fp_fusion" in CUDAOptions.__dataclass_fields__  # the launch option we pass is real

    def build(fn, consts, types=None, fusion=False, warps=4):
        types = types or {}
        sig = {n: ("constexpr" if n in consts else types.get(n, "*fp32" if n.endswith("_ptr") else "i32"))
               for n in fn.arg_names}
        return triton.compile(ASTSource(fn, signature=sig, constexprs=consts), target=T,
                              options={"num_warps": warps, "enable_fp_fusion": fusion})

    FULL = sys.argv[2] == "full"
    c = build(rt._philox_stream_kernel, {"NORMAL": True, "BLOCK": 256}, {"seed_ptr": "*i64"}, fusion=True)
    ptx = c.asm["ptx"]
    body = [l.split()[0] for l in ptx.splitlines() if l.startswith("\t") and l.strip()]
    assert not any(op.startswith("fma") for op in body), "fma in the normal stream PTX"
    assert sum(op.startswith("mul.rn") for op in body) > 50, "expected explicitly rounded multiplies"
    seedt = {"seed_ptr": "*i64"}
    for f64, dt in ((False, "*fp32"), (False, "*bf16"), (True, "*fp64")) if FULL else ():
        types = dict(seedt, **{n: dt for n in ("mu_ptr", "lv_ptr", "pm_ptr", "plv_ptr", "z_ptr", "kl_ptr")})
        for flags in ((True, True, False, False), (False, False, True, True)):
            build(rp._reparam_fwd_kernel, dict(HAS_PM=flags[0], HAS_PLV=flags[1], F64=f64, KL_PARTIAL=flags[2],
                                               PHASE0=flags[3], BLOCK_R=4, BLOCK_C=128), types)
        types = dict(seedt, **{n: dt for n in ("gz_ptr", "gkl_ptr", "mu_ptr", "lv_ptr", "pm_ptr", "plv_ptr",
                                               "dmu_ptr", "dlv_ptr", "dpm_ptr", "dplv_ptr")})
        for frame, phase0 in ((True, False), (False, False), (True, True)):
            build(rp._reparam_bwd_kernel, dict(HAS_GZ=True, HAS_GKL=True, HAS_PM=True, HAS_PLV=True,
                                               PRIOR_GRADS=True, FRAME=frame, PHASE0=phase0, F64=f64,
                                               BLOCK_R=16, BLOCK_C=16), types)
    if FULL:
        build(rt._philox_stream_kernel, {"NORMAL": False, "BLOCK": 256}, {"seed_ptr": "*i64"})
        build(rp._kl_reduce_kernel, dict(BLOCK_R=64, BLOCK_S=8))

    # torch.compile (Inductor) does not launch these JITFunctions: it regenerates their
    # source (plus every @triton.jit helper and constexpr global they use) into one module
    # with its own imports and compiles that, dropping launch options such as
    # enable_fp_fusion. Check that the regenerated source compiles, FMA-free for the stream.
    import importlib.util, tempfile
    from torch._inductor.codegen.triton import TritonKernel
    from torch._inductor.codegen.wrapper import user_defined_triton_kernel_transitive_closure_source_code
    tmp = tempfile.mkdtemp()
    def regenerated(fn):
        src = (TritonKernel.gen_common_triton_imports() + "\n@triton.jit\n"
               + user_defined_triton_kernel_transitive_closure_source_code(fn))
        path = os.path.join(tmp, "gen_" + fn.__name__ + ".py")
        with open(path, "w") as f:
            f.write(src)
        spec = importlib.util.spec_from_file_location("gen_" + fn.__name__, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return getattr(mod, fn.__name__)
    c = build(regenerated(rt._philox_stream_kernel), {"NORMAL": True, "BLOCK": 256}, {"seed_ptr": "*i64"}, fusion=True)
    body = [l.split()[0] for l in c.asm["ptx"].splitlines() if l.startswith("\t") and l.strip()]
    assert not any(op.startswith("fma") for op in body), "fma in the regenerated normal stream PTX"
    build(regenerated(rp._reparam_fwd_kernel), dict(HAS_PM=True, HAS_PLV=True, F64=False, KL_PARTIAL=True,
                                                    PHASE0=False, BLOCK_R=8, BLOCK_C=16), seedt, fusion=True)
    for frame in (True, False):
        build(regenerated(rp._reparam_bwd_kernel), dict(HAS_GZ=True, HAS_GKL=True, HAS_PM=True, HAS_PLV=True,
                                                        PRIOR_GRADS=True, FRAME=frame, PHASE0=False, F64=False,
                                                        BLOCK_R=8, BLOCK_C=16), seedt, fusion=True)
    build(regenerated(rp._kl_reduce_kernel), dict(BLOCK_R=64, BLOCK_S=8), fusion=True)
    # one-valued integer arguments are specialized to constexpr 1 by the launcher
    build(rp._reparam_fwd_kernel, dict(HAS_PM=False, HAS_PLV=False, F64=False, KL_PARTIAL=False, PHASE0=False,
                                       BLOCK_R=1, BLOCK_C=1, R=1, D=1, S=1, S_LOOP=1, chunks_per_prog=1,
                                       n_split=1, s_mu_d=1, s_lv_d=1), seedt)
    print("OK")
""")




def _compile_check(mode: str) -> None:
    compile_check(_COMPILE_SCRIPT, mode)


@needs_nvidia_backend()
def test_kernels_compile_for_sm90():
    """The normal stream (FMA-free) and, as torch.compile regenerates them, the reparam kernels."""
    _compile_check("quick")


@pytest.mark.slow
@needs_nvidia_backend()
@pytest.mark.skipif(os.environ.get("GENSAMPLE_SLOW_TESTS") != "1", reason="about 40 s cold; GENSAMPLE_SLOW_TESTS=1 runs it")
def test_kernels_compile_for_sm90_all_variants():
    """Every dtype / flag combination of the reparam kernels."""
    _compile_check("full")
