"""Triton RBM kernels (gensample/ops/gibbs_triton.py) through the interpreter on CPU tensors.

* the Triton sigmoid equals the torch spec ``sigmoid_f32`` bit for bit on a dense grid;
* with binary inputs and dyadic weights/biases (multiples of 2^-6, |w| <= 2) every GEMM
  is exact in any summation order, so states and probabilities of the half-steps and of
  ``gibbs_sweeps`` (persistent and looped paths, k = 0, 1, 2) equal the torch backend's
  bit for bit, for awkward shapes (masks, row phases n_out % 4 != 0, several tiles);
* the Gaussian half-step (normal stream) is exact too;
* every kernel variant compiles for sm_90 without register spills, with fused
  multiply-adds only in the GEMM (the epilogue stays explicitly rounded even with FP
  fusion on, as under torch.compile).
"""
import os

from triton_support import ROOT, compile_check, needs_nvidia_backend, require_interpreted_triton  # noqa: E402,I001  (sets TRITON_INTERPRET first)

import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

require_interpreted_triton()

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import gensample  # noqa: E402,F401
from gensample import random as R  # noqa: E402
from gensample.ops import gibbs as gibbs_ops  # noqa: E402
from gensample.ops import gibbs_triton as gt  # noqa: E402

from conftest import SEEDS, assert_bits_equal, binary, dyadic  # noqa: E402

ops = torch.ops.gensample


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


# ----------------------------------------------------------------------------------
# sigmoid
# ----------------------------------------------------------------------------------
@triton.jit
def _sigmoid_kernel(a_ptr, p_ptr, n, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    a = tl.load(a_ptr + i, mask=i < n, other=0.0)
    tl.store(p_ptr + i, gt.sigmoid_f32(a), mask=i < n)


def test_sigmoid_bit_exact():
    gen = torch.Generator().manual_seed(1)
    a = torch.cat([
        torch.linspace(-100.0, 100.0, 20001),
        torch.randn(20000, generator=gen) * 8,
        torch.randn(4000, generator=gen) * 1e-3,
        torch.tensor([0.0, -0.0, 87.0, -87.0, 86.99999, -86.99999, 87.00001, -87.00001, 1e-30, -1e-30,
                      3.4e38, -3.4e38, float("inf"), float("-inf"), 0.5, -0.5, 88.7, -88.7]),
    ]).to(torch.float32)
    p = torch.empty_like(a)
    _sigmoid_kernel[(triton.cdiv(a.numel(), 4096),)](a, p, a.numel(), BLOCK=4096)
    assert_bits_equal("sigmoid", p, gibbs_ops.sigmoid_f32(a))
    assert (p - torch.sigmoid(a.double()).float()).abs().max() < 1e-6  # and it is a sigmoid


# ----------------------------------------------------------------------------------
# Bernoulli half-step
# ----------------------------------------------------------------------------------
# (B, n_visible, n_hidden): single rows, row phases 1..3, several tiles in both output dims.
HALF_SHAPES = [(1, 5, 7), (5, 33, 20), (33, 70, 17), (70, 16, 130), (3, 1, 1)]


@pytest.mark.parametrize("shape", HALF_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("transpose", [False, True], ids=["v2h", "h2v"])
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_half_step_bit_exact(shape, transpose, beta):
    B, nv, nh = shape
    gen = torch.Generator().manual_seed(B * 1000 + nv * 10 + nh + int(transpose))
    n_in, n_out = (nh, nv) if transpose else (nv, nh)
    w = dyadic(gen, nv, nh)
    b = dyadic(gen, n_out)
    x = binary(gen, B, n_in)
    seed = R.seed_pair(*SEEDS[(B + nv) % len(SEEDS)])
    s1, p1 = ops.gibbs_half_step_triton(x, w, b, seed, beta, transpose)
    s2, p2 = ops.gibbs_half_step_torch(x, w, b, seed, beta, transpose)
    assert_bits_equal("prob", p1, p2)
    assert_bits_equal("state", s1, s2)
    assert set(s1.unique().tolist()) <= {0.0, 1.0}


def test_half_step_mean_field_and_beta0():
    """Real-valued (dyadic) inputs are exact too; beta = 0 gives p = 1/2 everywhere."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randint(0, 5, (9, 21), generator=gen).to(torch.float32) / 4
    w, b = dyadic(gen, 21, 11), dyadic(gen, 11)
    seed = R.seed_pair(77, 3)
    for beta in (1.0, 0.0):
        s1, p1 = ops.gibbs_half_step_triton(x, w, b, seed, beta, False)
        s2, p2 = ops.gibbs_half_step_torch(x, w, b, seed, beta, False)
        assert_bits_equal("prob", p1, p2)
        assert_bits_equal("state", s1, s2)
    assert (p1 == 0.5).all()


def test_half_step_float_weights():
    """Random float weights: the GEMMs round differently (numpy's vs ATen's summation
    order), so probabilities agree to a few ulp and a state may differ only where the
    uniform u (24-bit grid) falls between the two probabilities: chance about
    (few ulp of p) per element, below 1e-6 here, so the bound 1e-4 fails with
    probability far below 1e-3 while still catching any systematic error (a wrong
    stream element flips about half the states)."""
    gen = torch.Generator().manual_seed(3)
    x = binary(gen, 33, 70)
    w, b = torch.randn(70, 45, generator=gen) * 0.3, torch.randn(45, generator=gen)
    seed = R.seed_pair(5, 9)
    s1, p1 = ops.gibbs_half_step_triton(x, w, b, seed, 1.0, False)
    s2, p2 = ops.gibbs_half_step_torch(x, w, b, seed, 1.0, False)
    assert (p1 - p2).abs().max() < 1e-6
    assert (s1 != s2).float().mean() < 1e-4


def test_half_step_empty():
    gen = torch.Generator().manual_seed(0)
    w, seed = dyadic(gen, 4, 6), R.seed_pair(1)
    s, p = ops.gibbs_half_step_triton(torch.zeros(0, 4), w, dyadic(gen, 6), seed, 1.0, False)
    assert s.shape == p.shape == (0, 6)
    b = dyadic(gen, 6)
    s, p = ops.gibbs_half_step_triton(torch.zeros(3, 0), torch.zeros(0, 6), b, seed, 1.0, False)
    s2, p2 = ops.gibbs_half_step_torch(torch.zeros(3, 0), torch.zeros(0, 6), b, seed, 1.0, False)
    assert_bits_equal("prob (no inputs)", p, p2)
    assert_bits_equal("state (no inputs)", s, s2)


# ----------------------------------------------------------------------------------
# Gaussian half-step
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 5, 7), (5, 33, 20), (33, 70, 17), (40, 36, 3)],
                         ids=lambda s: "x".join(map(str, s)))
def test_gaussian_half_step_bit_exact(shape):
    B, nv, nh = shape
    gen = torch.Generator().manual_seed(B + nv + nh)
    w, b, h = dyadic(gen, nv, nh), dyadic(gen, nv), binary(gen, B, nh)
    sigma = torch.rand(nv, generator=gen) + 0.25
    noise_std = (sigma.double() / 0.5**0.5).float()  # beta = 0.5
    seed = R.seed_pair(*SEEDS[B % len(SEEDS)])
    v1, m1 = ops.gaussian_half_step_triton(h, w, b, sigma, noise_std, seed)
    v2, m2 = ops.gaussian_half_step_torch(h, w, b, sigma, noise_std, seed)
    assert_bits_equal("mean", m1, m2)
    assert_bits_equal("v", v1, v2)


# ----------------------------------------------------------------------------------
# gibbs_sweeps: persistent and looped paths
# ----------------------------------------------------------------------------------
SWEEP_SHAPES = [(1, 5, 7), (5, 33, 20), (33, 12, 16), (33, 70, 17)]


@pytest.mark.parametrize("shape", SWEEP_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "looped"])
def test_sweeps_bit_exact(shape, persistent):
    B, nv, nh = shape
    gen = torch.Generator().manual_seed(B * 7 + nv + nh)
    w, vb, hb = dyadic(gen, nv, nh), dyadic(gen, nv), dyadic(gen, nh)
    v0 = binary(gen, B, nv)
    seed = R.seed_pair(*SEEDS[nv % len(SEEDS)])
    assert gt.persistent_fits(nv, nh)
    for k, beta in ((0, 1.0), (1, 0.5), (2, 1.0)):
        got = gt._gibbs_sweeps(v0, w, vb, hb, seed, k, beta, persistent=persistent)
        ref = ops.gibbs_sweeps_torch(v0, w, vb, hb, seed, k, beta)
        for name, a, r in zip(("v", "h", "h_prob"), got, ref):
            assert_bits_equal(f"{name} (k={k}, beta={beta})", a, r)
        assert got[0].data_ptr() != v0.data_ptr()  # a new tensor even for k = 0


def test_sweeps_op_picks_looped_path_for_large_layers():
    gen = torch.Generator().manual_seed(11)
    nv, nh = 70, 130  # padded 128 x 256 > PERSISTENT_MAX_W
    assert not gt.persistent_fits(nv, nh) and gt.persistent_fits(64, 128)
    w, vb, hb = dyadic(gen, nv, nh, scale=0.5), dyadic(gen, nv), dyadic(gen, nh)
    v0 = binary(gen, 6, nv)
    seed = R.seed_pair(3, 2**32 - 1)
    got = ops.gibbs_sweeps_triton(v0, w, vb, hb, seed, 2, 1.0)
    ref = ops.gibbs_sweeps_torch(v0, w, vb, hb, seed, 2, 1.0)
    for name, a, r in zip(("v", "h", "h_prob"), got, ref):
        assert_bits_equal(name, a, r)


def test_public_api_triton_matches_torch():
    gen = torch.Generator().manual_seed(5)
    w, vb, hb = dyadic(gen, 9, 6), dyadic(gen, 9), dyadic(gen, 6)
    v0 = binary(gen, 2, 3, 9)
    outs = {}
    for backend in ("triton", "torch"):
        g = torch.Generator().manual_seed(42)
        outs[backend] = (
            gensample.ops.gibbs_half_step(v0, w, hb, beta=0.5, return_prob=True, generator=g, backend=backend),
            gensample.ops.gibbs_sweeps(v0.double(), w.double(), vb.double(), hb.double(), k=3,
                                       return_hidden_prob=True, generator=g, backend=backend),
            gensample.ops.gaussian_half_step(v0[..., :6], w, vb, sigma=0.5, beta=2.0, return_mean=True,
                                             generator=g, backend=backend),
        )
    for a, r in zip(torch.utils._pytree.tree_leaves(outs["triton"]), torch.utils._pytree.tree_leaves(outs["torch"])):
        assert a.dtype == r.dtype and torch.equal(a, r)


def test_opcheck_schema():
    """Schema and autograd registration (fake tensors need real data under the interpreter;
    the GPU test below runs the fake-tensor check)."""
    gen = torch.Generator().manual_seed(2)
    w, x, seed = dyadic(gen, 9, 6), binary(gen, 5, 9), R.seed_pair(3, 4)
    utils = ("test_schema", "test_autograd_registration")
    torch.library.opcheck(ops.gibbs_half_step_triton, (x, w, dyadic(gen, 6), seed, 0.5, False), test_utils=utils)
    torch.library.opcheck(ops.gibbs_sweeps_triton, (x, w, dyadic(gen, 9), dyadic(gen, 6), seed, 2, 1.0),
                          test_utils=utils)
    torch.library.opcheck(ops.gaussian_half_step_triton, (binary(gen, 5, 6), w, dyadic(gen, 9), torch.ones(9),
                                                          torch.ones(9), seed), test_utils=utils)


def test_bad_inputs():
    w, b, x = torch.zeros(4, 6), torch.zeros(6), torch.zeros(2, 4)
    seed = R.seed_pair(1)
    with pytest.raises(ValueError, match="seed"):
        ops.gibbs_half_step_triton(x, w, b, seed.to(torch.int32), 1.0, False)
    with pytest.raises(ValueError, match="bias"):
        ops.gibbs_half_step_triton(x, w, torch.zeros(4), seed, 1.0, False)
    with pytest.raises(ValueError, match="x"):
        ops.gibbs_half_step_triton(x, w, b, seed, 1.0, True)
    with pytest.raises(TypeError, match="weight"):
        ops.gibbs_half_step_triton(x, w.double(), b, seed, 1.0, False)
    with pytest.raises(ValueError, match="k"):
        ops.gibbs_sweeps_triton(x, w, torch.zeros(4), b, seed, -1, 1.0)
    with pytest.raises(ValueError, match="noise_std"):
        ops.gaussian_half_step_triton(torch.zeros(2, 6), w, torch.zeros(4), torch.ones(4), torch.ones(5), seed)


# ----------------------------------------------------------------------------------
# GPU compilation for sm_90 (no GPU needed)
# ----------------------------------------------------------------------------------
_COMPILE_SCRIPT = textwrap.dedent(r"""
    import re, subprocess, sys, tempfile, warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[1])
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import get_ptxas
    from triton.compiler import ASTSource
    from gensample.ops import gibbs_triton as gt
    T = GPUTarget("cuda", 90, 32)
    PTXAS = get_ptxas(90).path

    def build(fn, consts, warps):
        types = {"seed_ptr": "*i64", "beta": "fp32"}
        sig = {n: ("constexpr" if n in consts else types.get(n, "*fp32" if n.endswith("_ptr") else "i32"))
               for n in fn.arg_names}
        # FP fusion on: what torch.compile uses; the epilogue must stay FMA-free anyway.
        c = triton.compile(ASTSource(fn, signature=sig, constexprs=consts), target=T,
                           options={"num_warps": warps, "enable_fp_fusion": True})
        ptx = c.asm["ptx"]
        body = [l.split()[0] for l in ptx.splitlines() if l.startswith("\t") and l.strip()]
        d = tempfile.mkdtemp()
        with open(d + "/k.ptx", "w") as f:
            f.write(ptx)
        r = subprocess.run([PTXAS, "-v", "-arch=sm_90a", d + "/k.ptx", "-o", d + "/k.o"], capture_output=True,
                           text=True)
        log = r.stdout + r.stderr
        spills = re.findall(r"(\d+) bytes spill stores", log)
        assert r.returncode == 0 and spills, log[-2000:]
        name = f"{fn.__name__}{consts}"
        assert all(s == "0" for s in spills), f"{name}: register spills\n{log[-2000:]}"
        return body, name

    def fmas(body):
        return sum(op.startswith("fma") for op in body)

    FULL = sys.argv[2] == "full"
    bm, bn, bw = gt._BERN_TILE
    gm, gn, gw = gt._GAUSS_TILE
    half_variants = [(False, False), (True, False)] + ([(False, True), (True, True)] if FULL else [])
    for gauss, phase0 in half_variants:
        m, n, w = (gm, gn, gw) if gauss else (bm, bn, bw)
        body, name = build(gt._half_step_kernel, dict(GAUSS=gauss, STORE_AUX=True, PHASE0=phase0, BLOCK_M=m,
                                                      BLOCK_N=n, BLOCK_K=gt._BLOCK_K), w)
        # the fp32 "ieee" dot: one FMA per (output, k) per thread; nothing else fused
        assert fmas(body) == m * n * gt._BLOCK_K // (32 * w), (name, fmas(body))
        if not gauss:
            assert sum(op.startswith("div.rn") for op in body) == m * n // (32 * w), name
    sweep_variants = [(64, 32, False)]
    if FULL:
        sweep_variants += [(64, 32, True), (16, 16, False), (64, 128, False), (64, 128, True), (128, 64, False),
                           (128, 64, True)]
    for nv_p, nh_p, phase0 in sweep_variants:
        bb, w = gt._sweeps_config(4096, nv_p, nh_p)
        body, name = build(gt._sweeps_kernel, dict(PHASE0_V=phase0, PHASE0_H=phase0, BLOCK_B=bb, NV_P=nv_p,
                                                   NH_P=nh_p), w)
        assert fmas(body) == 3 * bb * nv_p * nh_p // (32 * w), (name, fmas(body))
    if FULL:
        # torch.compile (Inductor) regenerates user kernels from their source (plus the jit
        # helpers and constexpr globals they use) with fusion on: still FMA-free epilogues.
        import importlib.util, os
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

        body, name = build(regenerated(gt._half_step_kernel), dict(GAUSS=False, STORE_AUX=True, PHASE0=False,
                                                                   BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=gt._BLOCK_K), bw)
        assert fmas(body) == bm * bn * gt._BLOCK_K // (32 * bw), (name, fmas(body))
        assert sum(op.startswith("div.rn") for op in body) == bm * bn // (32 * bw), name
        bb, w = gt._sweeps_config(4096, 64, 32)
        body, name = build(regenerated(gt._sweeps_kernel), dict(PHASE0_V=False, PHASE0_H=True, BLOCK_B=bb, NV_P=64,
                                                                NH_P=32), w)
        assert fmas(body) == 3 * bb * 64 * 32 // (32 * w), (name, fmas(body))
    print("OK")
""")


def _compile_check(mode: str) -> None:
    compile_check(_COMPILE_SCRIPT, mode, timeout=900)


@needs_nvidia_backend()
def test_kernels_compile_for_sm90():
    """The row-phase (gather) variants of the half-steps and the digits-size persistent kernel."""
    _compile_check("quick")


@pytest.mark.slow
@needs_nvidia_backend()
@pytest.mark.skipif(os.environ.get("GENSAMPLE_SLOW_TESTS") != "1", reason="about 1-2 min; GENSAMPLE_SLOW_TESTS=1 runs it")
def test_kernels_compile_for_sm90_all_variants():
    _compile_check("full")


# ----------------------------------------------------------------------------------
# On a GPU (skipped here): compiled Triton kernels and the CUDA extension vs the torch
# backend on CUDA tensors, bit for bit. A subprocess, because this module runs Triton
# through the interpreter.
# ----------------------------------------------------------------------------------
_GPU_SCRIPT = textwrap.dedent(r"""
    import sys
    sys.path.insert(0, sys.argv[1])
    import torch
    import gensample
    from gensample import random as R
    from gensample.ops import gibbs_triton as gt
    ops = torch.ops.gensample
    dev = torch.device("cuda")
    gen = torch.Generator().manual_seed(0)

    def dyadic(*shape, scale=2.0):
        m = int(scale * 64)
        return (torch.randint(-m, m + 1, shape, generator=gen).float() / 64).to(dev)

    def binary(*shape):
        return torch.randint(0, 2, shape, generator=gen).float().to(dev)

    def same(name, got, ref):
        got, ref = got.contiguous(), ref.contiguous()
        assert got.shape == ref.shape, (name, got.shape, ref.shape)
        bad = int((got.view(torch.int32) != ref.view(torch.int32)).sum())
        assert bad == 0, f"{name}: {bad} of {ref.numel()} elements differ"

    has_cuda_ops = gensample._ext.loaded() and hasattr(ops, "gibbs_sweeps")
    impls = {"triton": lambda n: getattr(ops, n + "_triton")}
    if has_cuda_ops:
        impls["cuda"] = lambda n: getattr(ops, n)
    seed = R.seed_pair(2**63 + 0x5EED, 2**32 - 3, device=dev)
    for B, nv, nh in ((1, 5, 7), (33, 70, 17), (1024, 784, 500), (4096, 64, 32), (300, 128, 64)):
        w = dyadic(nv, nh, scale=2.0 if nv < 200 else 0.25)
        vb, hb, v0 = dyadic(nv), dyadic(nh), binary(B, nv)
        for tr in (False, True):
            x = binary(B, nh) if tr else v0
            ref = ops.gibbs_half_step_torch(x, w, vb if tr else hb, seed, 0.5, tr)
            for name, f in impls.items():
                got = f("gibbs_half_step")(x, w, vb if tr else hb, seed, 0.5, tr)
                same(f"{name} half_step {B}x{nv}x{nh} t={tr}", got[0], ref[0])
                same(f"{name} half_step prob {B}x{nv}x{nh} t={tr}", got[1], ref[1])
        sigma = (torch.rand(nv, generator=gen) + 0.5).to(dev)
        h = binary(B, nh)
        ref = ops.gaussian_half_step_torch(h, w, vb, sigma, sigma * 2, seed)
        for name, f in impls.items():
            got = f("gaussian_half_step")(h, w, vb, sigma, sigma * 2, seed)
            same(f"{name} gaussian v", got[0], ref[0])
            same(f"{name} gaussian mean", got[1], ref[1])
        for k in (0, 1, 3):
            ref = ops.gibbs_sweeps_torch(v0, w, vb, hb, seed, k, 1.0)
            outs = {name: f("gibbs_sweeps")(v0, w, vb, hb, seed, k, 1.0) for name, f in impls.items()}
            outs["triton-looped"] = gt._gibbs_sweeps(v0, w, vb, hb, seed, k, 1.0, persistent=False)
            if gt.persistent_fits(nv, nh):
                outs["triton-persistent"] = gt._gibbs_sweeps(v0, w, vb, hb, seed, k, 1.0, persistent=True)
            for name, got in outs.items():
                for part, a, r in zip(("v", "h", "h_prob"), got, ref):
                    same(f"{name} sweeps {part} {B}x{nv}x{nh} k={k}", a, r)
    # the sweeps are graph-capturable (no host sync, no allocation in the loop)
    v0, w, vb, hb = binary(64, 64), dyadic(64, 32), dyadic(64), dyadic(32)
    for name, f in impls.items():
        op = f("gibbs_sweeps")
        op(v0, w, vb, hb, seed, 2, 1.0)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            out = op(v0, w, vb, hb, seed, 2, 1.0)
        g.replay()
        torch.cuda.synchronize()
        ref = ops.gibbs_sweeps_torch(v0, w, vb, hb, seed, 2, 1.0)
        for part, a, r in zip(("v", "h", "h_prob"), out, ref):
            same(f"{name} graph replay {part}", a, r)
    # fake tensors and torch.compile through the triton ops (Inductor regenerates the kernels)
    utils = ("test_schema", "test_faketensor", "test_autograd_registration")
    torch.library.opcheck(ops.gibbs_sweeps_triton, (v0, w, vb, hb, seed, 2, 1.0), test_utils=utils)
    torch.library.opcheck(ops.gibbs_half_step_triton, (v0, w, hb, seed, 0.5, False), test_utils=utils)
    f = torch.compile(lambda v: ops.gibbs_sweeps_triton(v, w, vb, hb, seed, 2, 0.5), fullgraph=True)
    ref = ops.gibbs_sweeps_torch(v0, w, vb, hb, seed, 2, 0.5)
    for part, a, r in zip(("v", "h", "h_prob"), f(v0), ref):
        same(f"torch.compile triton sweeps {part}", a, r)
    print("OK", sorted(impls))
""")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_backends_bit_exact():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", _GPU_SCRIPT, str(ROOT)], capture_output=True, text=True, env=env,
                       timeout=900)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-3000:] + r.stderr[-5000:]
