"""Triton tempered-family kernels (gensample/ops/tempered_triton.py) through the interpreter.

The torch backend (gensample/ops/tempered.py) is the specification. With binary states and
dyadic weights/biases (multiples of 2^-6) every Bernoulli GEMM is exact in any summation
order; for Gaussian visible units (real-valued v / sigma) the weights have ONE nonzero,
a power of two, per column, so x @ W is one exact product per hidden unit, and h @ W^T is
exact as before. Then states (v_k, h_k) and a_k equal the torch backend's bit for bit
(persistent and looped paths; per-chain betas including 0 and 1; k = 0, 1, 2; awkward
shapes: B = 1, 3, 33, widths not multiples of the tiles or of 4). AIS log-weights agree
within a bound derived from float32 softplus rounding (``logw_tol``).
"""
import os

from triton_support import ROOT, compile_check, needs_nvidia_backend, require_interpreted_triton  # noqa: E402,I001

import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

require_interpreted_triton()

import gensample  # noqa: E402,F401
from gensample import random as R  # noqa: E402
from gensample.ops import tempered  # noqa: E402
from gensample.ops import tempered_triton as tt  # noqa: E402

from conftest import SEEDS, assert_bits_equal, binary, dyadic, one_per_column  # noqa: E402

ops = torch.ops.gensample


def model(kind, B, nv, nh, seed_i):
    """(v0, W, b, c, b_A, sigma or None) for kind in bern (b_A = 0), base (b_A dyadic), gauss."""
    gen = torch.Generator().manual_seed(B * 1000 + nv * 10 + nh + seed_i)
    vb, hb = dyadic(gen, nv), dyadic(gen, nh)
    if kind == "gauss":
        w = one_per_column(gen, nv, nh)
        sigma = torch.rand(nv, generator=gen) + 0.25
        v0 = torch.randn(B, nv, generator=gen) * sigma + vb
        return v0, w, vb, hb, torch.zeros(nv), sigma
    w = dyadic(gen, nv, nh)
    base = dyadic(gen, nv) if kind == "base" else torch.zeros(nv)
    return binary(gen, B, nv), w, vb, hb, base, None


def chain_betas(B):
    """Per-chain inverse temperatures cycling through 0, 1 and values in between."""
    cyc = torch.tensor([0.0, 1.0, 0.5, 0.3, 0.875, 0.1])
    return cyc.repeat(B // 6 + 1)[:B].contiguous()


def logw_tol(K, v0, w, vb, hb, sigma):
    """Bound on |log_w(triton) - log_w(torch)|: each float32 softplus term differs by at most
    8 ulp of max(1, sp) between backends (exp, log1p within 2-4 ulp each, plus the final
    add), i.e. 8 * 2^-24 * (1 + |t|) with |t| <= A = max|c| + max_j sum_i |W_ij| * X, X a
    bound on |x| (1 for binary v; for Gaussian v / sigma <= |b| / sigma + sum_j |W_ij| +
    6.8, the stream's normals lying within sqrt(-2 log 2^-33) < 6.8). Two terms per
    hidden unit per step; the float64 sums add ~1e-16 relative."""
    if sigma is None:
        X = 1.0
    else:
        X = max(float((v0 / sigma).abs().max()) if v0.numel() else 0.0,
                float(vb.abs().max() / sigma.min()) + float(w.abs().sum(1).max()) + 6.8)
    A = float(hb.abs().max()) + float(w.abs().sum(0).max()) * X
    return 2 * K * w.shape[1] * 8 * 2.0**-24 * (1 + A) + 1e-12


# ----------------------------------------------------------------------------------
# tempered_sweeps
# ----------------------------------------------------------------------------------
SWEEP_CASES = [
    # (B, n_visible, n_hidden, kind, persistent)
    (1, 5, 7, "bern", True),
    (3, 33, 20, "base", False),
    (33, 12, 16, "base", True),   # two programs of 32 chains, the second with one
    (33, 40, 17, "gauss", False),  # two Gaussian row tiles; h row phase 1
    (3, 9, 6, "gauss", True),
    (6, 21, 11, "bern", False),
]


def _case_id(c):
    return "B{}-{}x{}-{}-{}".format(*c[:4], "pers" if c[4] else "loop")


@pytest.mark.parametrize("case", SWEEP_CASES, ids=_case_id)
def test_sweeps_bit_exact(case):
    B, nv, nh, kind, persistent = case
    v0, w, vb, hb, base, sigma = model(kind, B, nv, nh, 0)
    beta = chain_betas(B)
    seed = R.seed_pair(*SEEDS[(B + nv) % len(SEEDS)])
    for k in (0, 1, 2):
        got = tt._tempered_sweeps(v0, w, vb, hb, base, beta, sigma, seed, k, persistent=persistent)
        ref = ops.tempered_sweeps_torch(v0, w, vb, hb, base, beta, sigma, seed, k)
        for name, a, r in zip(("v", "h", "a"), got, ref):
            assert_bits_equal(f"{name} (k={k})", a, r)
        vk, hk, ak = got
        # a_k is the untempered pre-activation at v_k: c + x_k W (exact here)
        x = vk if sigma is None else vk / sigma
        assert torch.equal(ak, x @ w + hb)
        assert set(hk.unique().tolist()) <= {0.0, 1.0}
        assert vk.data_ptr() != v0.data_ptr()
    if sigma is None:
        assert set(got[0].unique().tolist()) <= {0.0, 1.0}


def test_sweeps_beta0_is_the_base():
    """beta = 0: p(h = 1) = 1/2 and the Bernoulli visible layer is sigma(b_A), whatever W.
    Triton's states at beta 0 equal a bernoulli_stream draw at those probabilities."""
    gen = torch.Generator().manual_seed(4)
    B, nv, nh = 3, 10, 6
    w, vb, hb, base = dyadic(gen, nv, nh), dyadic(gen, nv), dyadic(gen, nh), dyadic(gen, nv)
    v0 = binary(gen, B, nv)
    seed = R.seed_pair(9, 1)
    vk, hk, _ = tt._tempered_sweeps(v0, w, vb, hb, base, torch.zeros(B), None, seed, 1, persistent=True)
    p_v = tempered.sigmoid_f32(base.expand(B, nv).contiguous())
    p_h = tempered.sigmoid_f32(torch.zeros(B, nh))
    assert (p_h == 0.5).all()
    assert torch.equal(vk, R.bernoulli_stream(R.substream(seed, 1), p_v).float())
    assert torch.equal(hk, R.bernoulli_stream(R.substream(seed, 2), p_h).float())


# ----------------------------------------------------------------------------------
# ais_rbm
# ----------------------------------------------------------------------------------
AIS_CASES = [
    # (B, n_visible, n_hidden, kind, persistent)
    (5, 33, 20, "base", True),
    (33, 12, 16, "bern", False),
    (1, 7, 5, "base", False),
    (3, 9, 6, "gauss", True),
    (4, 20, 33, "gauss", False),  # hidden row phase 1, n_hidden > n_visible
]
SCHEDULES = {
    "forward": torch.tensor([0.0, 0.25, 0.5, 1.0]),
    "reverse": torch.tensor([1.0, 0.6, 0.0]),
    "K0": torch.tensor([0.5]),
}


@pytest.mark.parametrize("case", AIS_CASES, ids=_case_id)
def test_ais_matches_torch(case):
    B, nv, nh, kind, persistent = case
    v0, w, vb, hb, base, sigma = model(kind, B, nv, nh, 1)
    seed = R.seed_pair(*SEEDS[(B + nh) % len(SEEDS)])
    for name, betas in SCHEDULES.items():
        lw, vK = tt._ais_rbm(v0, w, vb, hb, base, betas, sigma, seed, persistent=persistent)
        lw_ref, vK_ref = ops.ais_rbm_torch(v0, w, vb, hb, base, betas, sigma, seed)
        assert lw.dtype == torch.float64 and lw.shape == (B,)
        assert_bits_equal(f"v_K ({name})", vK, vK_ref)
        tol = logw_tol(betas.numel() - 1, v0, w, vb, hb, sigma)
        err = float((lw - lw_ref).abs().max())
        assert err <= tol, f"log_w ({name}): max error {err} > {tol}"
        if name == "K0":
            assert (lw == 0).all() and vK.data_ptr() != v0.data_ptr()


def test_ais_increments_are_nontrivial():
    """Guards the tolerance test above: the log-weights are O(1) numbers (a wrong
    increment, e.g. beta_k and beta_{k-1} swapped or the ell term dropped, is far
    outside the tolerance), and both paths agree on them to rounding."""
    v0, w, vb, hb, base, _ = model("base", 5, 33, 20, 1)
    seed = R.seed_pair(*SEEDS[0])
    betas = SCHEDULES["forward"]
    lw_p, _ = tt._ais_rbm(v0, w, vb, hb, base, betas, None, seed, persistent=True)
    lw_l, _ = tt._ais_rbm(v0, w, vb, hb, base, betas, None, seed, persistent=False)
    ref, _ = ops.ais_rbm_torch(v0, w, vb, hb, base, betas, None, seed)
    assert float(ref.abs().min()) > 0.5
    assert float((lw_p - lw_l).abs().max()) < 1e-4
    no_ell, _ = ops.ais_rbm_torch(v0, w, vb, hb, vb, betas, None, seed)  # b_A = b: ell term 0
    assert float((ref - no_ell).abs().max()) > 1e-2


# ----------------------------------------------------------------------------------
# public API, schema, bad inputs
# ----------------------------------------------------------------------------------
def test_public_api_triton_matches_torch():
    gen = torch.Generator().manual_seed(5)
    w, vb, hb, base = dyadic(gen, 9, 6), dyadic(gen, 9), dyadic(gen, 6), dyadic(gen, 9)
    v0 = binary(gen, 4, 9)
    beta = torch.tensor([0.0, 1.0, 0.5, 0.25])
    betas = torch.linspace(0, 1, 4)
    outs = {}
    for backend in ("triton", "torch"):
        g = torch.Generator().manual_seed(42)
        outs[backend] = (
            tempered.tempered_sweeps(v0.double(), w.double(), vb.double(), hb.double(), beta=beta.double(), k=2,
                                     visible_base=base.double(), generator=g, backend=backend),
            tempered.ais_rbm(v0, w, vb, hb, betas=betas, visible_base=base, generator=g, backend=backend),
        )
    t, r = outs["triton"], outs["torch"]
    for a, b in zip(t[0], r[0]):
        assert a.dtype == b.dtype == torch.float64 and torch.equal(a, b)
    assert torch.equal(t[1][1], r[1][1])
    assert float((t[1][0] - r[1][0]).abs().max()) < 1e-4


def test_opcheck_schema():
    gen = torch.Generator().manual_seed(2)
    w, x, seed = dyadic(gen, 9, 6), binary(gen, 5, 9), R.seed_pair(3, 4)
    vb, hb, base = dyadic(gen, 9), dyadic(gen, 6), torch.zeros(9)
    utils = ("test_schema", "test_autograd_registration")
    torch.library.opcheck(ops.tempered_sweeps_triton, (x, w, vb, hb, base, chain_betas(5), None, seed, 1),
                          test_utils=utils)
    torch.library.opcheck(ops.ais_rbm_triton, (x, w, vb, hb, base, torch.linspace(0, 1, 3), torch.ones(9), seed),
                          test_utils=utils)


def test_bad_inputs():
    w, vb, hb, x = torch.zeros(4, 6), torch.zeros(4), torch.zeros(6), torch.zeros(2, 4)
    seed, base, beta = R.seed_pair(1), torch.zeros(4), torch.ones(2)
    with pytest.raises(ValueError, match="seed"):
        ops.tempered_sweeps_triton(x, w, vb, hb, base, beta, None, seed.int(), 1)
    with pytest.raises(ValueError, match="beta"):
        ops.tempered_sweeps_triton(x, w, vb, hb, base, torch.ones(3), None, seed, 1)
    with pytest.raises(ValueError, match="sigma"):
        ops.tempered_sweeps_triton(x, w, vb, hb, base, beta, torch.ones(5), seed, 1)
    with pytest.raises(ValueError, match="k must be"):
        ops.tempered_sweeps_triton(x, w, vb, hb, base, beta, None, seed, -1)
    with pytest.raises(ValueError, match="visible_base"):
        ops.ais_rbm_triton(x, w, vb, hb, torch.zeros(3), torch.ones(2), None, seed)
    with pytest.raises(TypeError, match="betas"):
        ops.ais_rbm_triton(x, w, vb, hb, base, torch.ones(2, dtype=torch.float64), None, seed)


def test_empty_and_degenerate():
    seed = R.seed_pair(7)
    gen = torch.Generator().manual_seed(1)
    w, vb, hb = dyadic(gen, 4, 6), dyadic(gen, 4), dyadic(gen, 6)
    vk, hk, ak = ops.tempered_sweeps_triton(torch.zeros(0, 4), w, vb, hb, torch.zeros(4), torch.zeros(0), None, seed, 2)
    assert vk.shape == (0, 4) and hk.shape == ak.shape == (0, 6)
    lw, vK = ops.ais_rbm_triton(torch.zeros(0, 4), w, vb, hb, torch.zeros(4), torch.ones(3), None, seed)
    assert lw.shape == (0,) and vK.shape == (0, 4)
    # no hidden units: AIS weights are the ell term only
    v0 = binary(gen, 3, 4)
    w0, hb0, base = torch.zeros(4, 0), torch.zeros(0), dyadic(gen, 4)
    got = ops.ais_rbm_triton(v0, w0, vb, hb0, base, torch.tensor([0.0, 0.5, 1.0]), None, seed)
    ref = ops.ais_rbm_torch(v0, w0, vb, hb0, base, torch.tensor([0.0, 0.5, 1.0]), None, seed)
    assert torch.equal(got[1], ref[1]) and torch.allclose(got[0], ref[0], rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------
# GPU compilation for sm_90 (no GPU needed): no register spills, FMA only in the GEMMs
# (the epilogues stay explicitly rounded with FP fusion on, as under torch.compile)
# ----------------------------------------------------------------------------------
_COMPILE_SCRIPT = textwrap.dedent(r"""
    import re, subprocess, sys, tempfile, warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[1])
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import get_ptxas
    from triton.compiler import ASTSource
    from gensample.ops import tempered_triton as tt, gibbs_triton as gt
    T = GPUTarget("cuda", 90, 32)
    PTXAS = get_ptxas(90).path

    def build(fn, consts, warps):
        types = {"seed_ptr": "*i64", "part_ptr": "*fp64", "logw_ptr": "*fp64"}
        sig = {n: ("constexpr" if n in consts else types.get(n, "*fp32" if n.endswith("_ptr") else "i32"))
               for n in fn.arg_names}
        c = triton.compile(ASTSource(fn, signature=sig, constexprs=consts), target=T,
                           options={"num_warps": warps, "enable_fp_fusion": True})
        d = tempfile.mkdtemp()
        with open(d + "/k.ptx", "w") as f:
            f.write(c.asm["ptx"])
        r = subprocess.run([PTXAS, "-v", "-arch=sm_90a", d + "/k.ptx", "-o", d + "/k.o"], capture_output=True,
                           text=True)
        log = r.stdout + r.stderr
        spills = re.findall(r"(\d+) bytes spill stores", log)
        assert r.returncode == 0 and spills, log[-2000:]
        name = f"{fn.__name__}{consts}"
        assert all(s == "0" for s in spills), f"{name}: register spills\n{log[-2000:]}"
        body = [l.split()[0] for l in c.asm["ptx"].splitlines() if l.startswith("\t") and l.strip()]
        return body, name

    FULL = sys.argv[2] == "full"
    # the looped path's launches as _launch_half configures them (PHASE0 False: the gather variant)
    half = [(True, False, True)] + ([(True, False, False), (False, False, False), (False, True, False),
                                     (False, False, True), (False, True, True), (True, True, True)] if FULL else [])
    for to_h, gauss, ais in half:
        m, n, _, w = tt._tiles(to_h, gauss, ais, 4096, 512, 512)
        body, name = build(tt._half_kernel, dict(TO_H=to_h, GAUSS=gauss, STORE_A=to_h and not ais, AIS=ais,
                                                 PHASE0=False, BLOCK_M=m, BLOCK_N=n, BLOCK_K=gt._BLOCK_K, PART_P=8), w)
        # FMAs only in the fp32 "ieee" dot (one per output and k): the epilogue (sigmoid, visible
        # logits, Gaussian mean) stays explicitly rounded
        fma = sum(op.startswith("fma.rn.f32") for op in body)
        assert fma == m * n * gt._BLOCK_K // (32 * w), (name, fma)
    if FULL:
        for nv, nh in ((64, 32), (64, 128), (128, 64), (16, 16), (20, 12)):
            nv_p, nh_p = gt._dot_dim(nv), gt._dot_dim(nh)
            for ais, gauss in ((False, False), (False, True), (True, False), (True, True)):
                if ais and not tt.ais_persistent_fits(nv, nh, gauss):
                    continue
                bb, w = tt._persistent_config(4096, nv_p, nh_p, ais)
                build(tt._persistent_kernel, dict(AIS=ais, GAUSS=gauss, PHASE0_V=False, PHASE0_H=False, BLOCK_B=bb,
                                                  NV_P=nv_p, NH_P=nh_p), w)
    print("OK")
""")


@needs_nvidia_backend()
def test_kernels_compile_for_sm90():
    """The AIS hidden half-step (the most register-hungry looped variant)."""
    compile_check(_COMPILE_SCRIPT, "quick", timeout=900)


@pytest.mark.slow
@needs_nvidia_backend()
@pytest.mark.skipif(os.environ.get("GENSAMPLE_SLOW_TESTS") != "1",
                    reason="several minutes; GENSAMPLE_SLOW_TESTS=1 runs it")
def test_kernels_compile_for_sm90_all_variants():
    """Every looped variant and every persistent configuration the launchers pick."""
    compile_check(_COMPILE_SCRIPT, "full", timeout=1800)


# ----------------------------------------------------------------------------------
# On a GPU (skipped here): compiled Triton kernels and the CUDA extension vs the torch
# backend on CUDA tensors, and AIS end to end. A subprocess: this module runs Triton
# through the interpreter.
# ----------------------------------------------------------------------------------
_GPU_SCRIPT = textwrap.dedent(r"""
    import sys
    sys.path.insert(0, sys.argv[1])
    import torch
    import gensample
    from gensample import random as R
    from gensample.ops import tempered, tempered_triton as tt
    ops = torch.ops.gensample
    dev = torch.device("cuda")
    gen = torch.Generator().manual_seed(0)

    def dyadic(*shape, scale=2.0):
        m = int(scale * 64)
        return (torch.randint(-m, m + 1, shape, generator=gen).float() / 64).to(dev)

    def binary(*shape):
        return torch.randint(0, 2, shape, generator=gen).float().to(dev)

    def one_per_column(nv, nh):
        w = torch.zeros(nv, nh)
        w[torch.randint(0, nv, (nh,), generator=gen), torch.arange(nh)] = 2.0 ** torch.randint(-2, 2, (nh,),
                                                                                               generator=gen).float()
        return w.to(dev)

    def same(name, got, ref):
        assert got.shape == ref.shape, (name, got.shape, ref.shape)
        bad = int((got.contiguous().view(torch.int32) != ref.contiguous().view(torch.int32)).sum())
        assert bad == 0, f"{name}: {bad} of {ref.numel()} elements differ"

    impls = {"triton": lambda n: getattr(ops, n + "_triton"),
             "triton-looped": lambda n: (lambda *a: (tt._tempered_sweeps if n == "tempered_sweeps" else tt._ais_rbm)(
                 *a, persistent=False))}
    if gensample._ext.loaded() and hasattr(ops, "ais_rbm") and torch._C._dispatch_has_kernel_for_dispatch_key(
            "gensample::ais_rbm", "CUDA"):
        impls["cuda"] = lambda n: getattr(ops, n)
    seed = R.seed_pair(2**63 + 0x5EED, 2**32 - 3, device=dev)
    for B, nv, nh in ((1, 5, 7), (33, 70, 17), (300, 64, 32), (100, 784, 500)):
        for gauss in (False, True):
            w = one_per_column(nv, nh) if gauss else dyadic(nv, nh, scale=2.0 if nv < 200 else 0.25)
            vb, hb, base = dyadic(nv), dyadic(nh), (torch.zeros(nv, device=dev) if gauss else dyadic(nv))
            sigma = (torch.rand(nv, generator=gen) + 0.25).to(dev) if gauss else None
            v0 = (torch.randn(B, nv, generator=gen).to(dev) * sigma + vb) if gauss else binary(B, nv)
            beta = torch.tensor([0.0, 1.0, 0.5, 0.3], device=dev).repeat(B)[:B].contiguous()
            betas = torch.linspace(0, 1, 20, device=dev)
            for k in (0, 1, 3):
                ref = ops.tempered_sweeps_torch(v0, w, vb, hb, base, beta, sigma, seed, k)
                for name, f in impls.items():
                    got = f("tempered_sweeps")(v0, w, vb, hb, base, beta, sigma, seed, k)
                    for part, a, r in zip(("v", "h", "a"), got, ref):
                        same(f"{name} sweeps {part} {B}x{nv}x{nh} gauss={gauss} k={k}", a, r)
            lw_ref, vK_ref = ops.ais_rbm_torch(v0, w, vb, hb, base, betas, sigma, seed)
            for name, f in impls.items():
                lw, vK = f("ais_rbm")(v0, w, vb, hb, base, betas, sigma, seed)
                same(f"{name} ais v_K {B}x{nv}x{nh} gauss={gauss}", vK, vK_ref)
                err = float((lw - lw_ref).abs().max())
                assert err < 1e-4 * 20 * (1 + float(lw_ref.abs().max())), (name, err)
    # the whole AIS run is graph-capturable (no host sync, betas read on the device): persistent
    # and looped sizes
    for B, nv, nh in ((64, 20, 12), (64, 200, 100)):
        w, vb, hb, base, v0 = dyadic(nv, nh, scale=0.5), dyadic(nv), dyadic(nh), dyadic(nv), binary(B, nv)
        betas = torch.linspace(0, 1, 50, device=dev)
        lw_ref, vK_ref = ops.ais_rbm_torch(v0, w, vb, hb, base, betas, None, seed)
        for name in [n for n in impls if n != "triton-looped"]:
            op = getattr(ops, "ais_rbm" + ("_triton" if name == "triton" else ""))
            op(v0, w, vb, hb, base, betas, None, seed)
            torch.cuda.synchronize()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                lw, vK = op(v0, w, vb, hb, base, betas, None, seed)
            g.replay()
            torch.cuda.synchronize()
            same(f"{name} graph replay ais v_K {nv}x{nh}", vK, vK_ref)
            assert float((lw - lw_ref).abs().max()) < 1e-3, name
    # AIS end to end: the triton (and cuda) estimate of log Z of a small RBM brackets the exact value
    nv, nh = 12, 8
    w = (torch.randn(nv, nh, generator=gen) * 0.5).to(dev)
    vb, hb = torch.randn(nv, generator=gen).to(dev) * 0.3, torch.randn(nh, generator=gen).to(dev) * 0.3
    vs = torch.tensor([[(i >> j) & 1 for j in range(nv)] for i in range(2**nv)], dtype=torch.float64, device=dev)
    free = vs @ vb.double() + torch.nn.functional.softplus(vs @ w.double() + hb.double()).sum(1)
    exact = float(torch.logsumexp(free, 0))
    log_z0 = tempered.base_log_partition(nh, n_visible=nv)
    for name in ["triton", "torch"] + (["cuda"] if "cuda" in impls else []):
        g = torch.Generator(device=dev).manual_seed(1)
        v0 = (torch.rand(2000, nv, device=dev, generator=g) < 0.5).float()
        lw, _ = tempered.ais_rbm(v0, w, vb, hb, betas=torch.linspace(0, 1, 1000, device=dev), generator=g,
                                 backend=name)
        est = log_z0 + float(torch.logsumexp(lw, 0)) - float(torch.log(torch.tensor(2000.0)))
        assert abs(est - exact) < 0.05, (name, est, exact)
    print("OK", sorted(impls))
""")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_backends_match_torch():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", _GPU_SCRIPT, str(ROOT)], capture_output=True, text=True, env=env,
                       timeout=900)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-3000:] + r.stderr[-5000:]
