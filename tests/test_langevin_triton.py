"""Triton Langevin kernels (gensample/ops/langevin_triton.py) against the torch backend.

Run on CPU tensors through the Triton interpreter. Properties checked:

* langevin_step / langevin_step_: bit-identical to ``gensample::langevin_step_torch``
  (the executable specification) for clip modes none/value, with and without clamp,
  with shared and per-chain step/noise, on awkward shapes (C = 1, 3; M = 1, 5, 1003)
  and seeds whose counters cross 2^32 and wrap 2^64; norm clip and grad_norm within
  rtol 1e-6 (the per-chain sum order differs), including chains split over programs;
* mala_accept_: the same decisions, selected state, gradient and energy as the torch
  backend, log_alpha within rtol 1e-6; both outcomes occur in the cases used;
* sgld_step_: bit-identical to the torch backend over a list (stream bases rounded to 4);
* schemas equal the C++ ones (csrc/langevin_ops.cpp) up to int -> SymInt;
* for sm_90 (no GPU needed): the step kernel compiles FMA-free with FP fusion on and
  moves x/grad/out with 16-byte vector accesses; the other kernels compile.
"""
from triton_support import ROOT, compile_check, needs_nvidia_backend, require_interpreted_triton  # noqa: E402,I001  (sets TRITON_INTERPRET first)

import math  # noqa: E402
import re  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

require_interpreted_triton()

import gensample  # noqa: E402,F401
from gensample import random as R  # noqa: E402
from gensample.ops import langevin as L  # noqa: E402

ops = torch.ops.gensample
INF = math.inf

SEEDS = [
    (0x0123456789ABCDEF, 7),
    (2**63 + 0x5EED, 2**32 - 3),  # high seed bit; counters cross 2^32
    (0xFFFFFFFF, 2**64 - 2),  # counters wrap around 2^64
]


def assert_bits(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape)
    bad = (got.view(torch.int32) != want.view(torch.int32)).nonzero()
    assert bad.numel() == 0, (f"{what}: {bad.shape[0]} of {got.numel()} elements differ, first at "
                              f"{bad[:3].tolist()}: {got[tuple(bad[0])].item()!r} vs {want[tuple(bad[0])].item()!r}")


def make_step_inputs(C, M, per_chain, gen):
    x = torch.randn(C, M, generator=gen) * 2.0
    g = torch.randn(C, M, generator=gen) * 3.0
    if per_chain:
        h = torch.rand(C, generator=gen) * 0.5 + 0.01
        s = torch.rand(C, generator=gen) + 0.1
    else:  # what the public API passes for numbers: a full (C,) tensor
        h = torch.full((C,), 0.03)
        s = torch.full((C,), 0.7)
    return x, g, h, s


def run_both(x, g, h, s, seed, clip, mode, lo, hi, want_norm, in_place):
    want, want_norm_t = ops.langevin_step_torch(x, g, h, s, seed, clip, mode, lo, hi, want_norm)
    if in_place:
        got = x.clone()
        got_norm = ops.langevin_step__triton(got, g, h, s, seed, clip, mode, lo, hi, want_norm)
    else:
        got, got_norm = ops.langevin_step_triton(x, g, h, s, seed, clip, mode, lo, hi, want_norm)
    return got, got_norm, want, want_norm_t


SHAPES = [(1, 1), (3, 1), (1, 5), (3, 5), (2, 8), (3, 1003)]


# ----------------------------------------------------------------------------------
# langevin_step: exact modes
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("CM", SHAPES, ids=lambda s: f"C{s[0]}-M{s[1]}")
@pytest.mark.parametrize("mode", [0, 1], ids=["none", "value"])
@pytest.mark.parametrize("variant", [(True, True, False), (False, False, True)],
                         ids=["clamp-perchain-out", "noclamp-shared-inplace"])
def test_step_bit_identical(CM, mode, variant):
    C, M = CM
    clamp, per_chain, in_place = variant
    gen = torch.Generator().manual_seed(C * 10007 + M * 31 + mode)
    x, g, h, s = make_step_inputs(C, M, per_chain, gen)
    seed = R.seed_pair(*SEEDS[(C + M + mode) % len(SEEDS)])
    lo, hi = (-1.5, 2.25) if clamp else (-INF, INF)
    want_norm = (C + mode) % 2 == 1
    got, got_norm, want, want_norm_t = run_both(x, g, h, s, seed, 1.25, mode, lo, hi, want_norm, in_place)
    assert_bits(got, want, "x'")
    if C * M >= 15:  # the knobs are active in these cases
        if clamp:
            assert ((got == lo) | (got == hi)).any()
        if mode == 1:
            assert (g.abs() > 1.25).any()
    assert got_norm.shape == ((C,) if want_norm else (0,))
    if want_norm:
        torch.testing.assert_close(got_norm, want_norm_t, rtol=1e-6, atol=0)


def test_step_shared_expanded_step_and_one_sided_clamp():
    """Stride-0 (expanded) step/noise take the shared-value path; a one-sided clamp."""
    C, M = 3, 7
    gen = torch.Generator().manual_seed(5)
    x, g, _, _ = make_step_inputs(C, M, False, gen)
    h = torch.tensor([0.2]).expand(C)
    s = torch.tensor([0.3]).expand(C)
    seed = R.seed_pair(99, 2**32 - 1)
    for lo, hi in ((-INF, 0.5), (-0.25, INF)):
        got, _, want, _ = run_both(x, g, h, s, seed, 1.0, 1, lo, hi, False, False)
        assert_bits(got, want, f"x' clamp ({lo}, {hi})")


def test_step_noise_is_the_stream():
    """x = 0, grad = 0, noise 1: the output is exactly the normal stream."""
    C, M = 3, 5
    seed = R.seed_pair(2**63 + 1, 2**64 - 3)
    z = torch.zeros(C, M)
    out, _ = ops.langevin_step_triton(z, z, torch.ones(C), torch.ones(C), seed, 0.0, 0, -INF, INF, False)
    assert_bits(out.reshape(-1), R.normal_stream(seed, C * M), "noise")


def test_step_nan_propagates_like_torch():
    C, M = 2, 6
    x = torch.zeros(C, M)
    g = torch.ones(C, M)
    g[0, 2] = float("nan")
    g[1, 5] = float("inf")
    h, s = torch.full((C,), 0.5), torch.zeros(C)
    seed = R.seed_pair(3, 0)
    for mode in (0, 1):
        got, _, want, _ = run_both(x, g, h, s, seed, 1.0, mode, -2.0, 2.0, False, False)
        assert torch.isnan(got[0, 2]) and torch.isnan(want[0, 2])
        assert torch.equal(got.nan_to_num(7.0), want.nan_to_num(7.0))


# ----------------------------------------------------------------------------------
# langevin_step: norm clip (rtol 1e-6)
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("CM", SHAPES + [(1, 4099), (2, 2500)], ids=lambda s: f"C{s[0]}-M{s[1]}")
def test_step_norm_clip(CM):
    C, M = CM
    gen = torch.Generator().manual_seed(C * 7 + M)
    x, g, h, s = make_step_inputs(C, M, True, gen)
    g[0] *= 0.001  # chain 0 below the threshold (scale 1), the others above
    clip = 1.5
    seed = R.seed_pair(*SEEDS[M % len(SEEDS)])
    got, got_norm, want, want_norm_t = run_both(x, g, h, s, seed, clip, 2, -3.0, 3.0, False, M % 2 == 0)
    assert got_norm.shape == (C,)
    torch.testing.assert_close(got_norm, want_norm_t, rtol=1e-6, atol=0)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert float(got_norm[0]) < clip and (C == 1 or float(got_norm[1:].min()) > clip)


@pytest.mark.parametrize("C,M", [(0, 5), (3, 0), (0, 0)])
def test_step_empty(C, M):
    x = torch.zeros(C, M)
    h = torch.full((C,), 0.1)
    seed = R.seed_pair(1, 0)
    out, n = ops.langevin_step_triton(x, x, h, h, seed, 1.0, 2, -INF, INF, True)
    want, wn = ops.langevin_step_torch(x, x, h, h, seed, 1.0, 2, -INF, INF, True)
    assert out.shape == (C, M) and torch.equal(n, wn)


def test_public_api_triton_equals_torch():
    """gensample.ops.langevin dispatches to the triton ops: the same numbers as backend='torch'
    (float64 input, per-chain step tensor, value clip, clamp, grad norm)."""
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(3, 2, 5, generator=gen, dtype=torch.float64)
    g = torch.randn(3, 2, 5, generator=gen, dtype=torch.float64) * 4
    h = torch.tensor([0.1, 0.2, 0.05])
    seed = R.seed_pair(123, 4)
    kw = dict(step_size=h, grad_clip=2.0, clamp=(-1.0, 1.0), return_grad_norm=True, seed=seed)
    a, na = L.langevin_step(x, g, backend="triton", **kw)
    b, nb = L.langevin_step(x, g, backend="torch", **kw)
    assert a.dtype == torch.float64 and torch.equal(a, b)
    torch.testing.assert_close(na, nb, rtol=1e-6, atol=0)
    xi = x.clone()
    L.langevin_step_(xi, g, backend="triton", **kw)
    assert torch.equal(xi, b)


# ----------------------------------------------------------------------------------
# MALA
# ----------------------------------------------------------------------------------
def _mala_case(C, M, per_chain, seed_pair, gen):
    """A Gaussian target E = |x|^2 / 2 (grad = x), a Langevin proposal from the torch spec."""
    x = torch.randn(C, M, generator=gen) * 1.3
    g = x.clone()
    e = 0.5 * x.double().square().sum(1).float()
    if per_chain:
        h = torch.rand(C, generator=gen) * 1.2 + 0.05
    else:
        h = torch.full((C,), 0.6 if M < 100 else 0.002)
    s = (h.double() * 2.0).sqrt().float()  # sqrt(2h), correctly rounded
    xp, _ = ops.langevin_step_torch(x, g, h, s, R.substream(seed_pair, 0), 0.0, 0, -INF, INF, False)
    gp = xp.clone()
    ep = 0.5 * xp.double().square().sum(1).float()
    return x, g, e, xp, gp, ep, h, s


@pytest.mark.parametrize("C,M,per_chain", [(1, 1, False), (3, 5, True), (64, 5, True), (3, 1003, False),
                                           (2, 4099, True), (37, 2, False)])
def test_mala_accept_equals_torch(C, M, per_chain):
    gen = torch.Generator().manual_seed(C * 101 + M)
    base = R.seed_pair(0xC0FFEE + C, 2**32 - 1)
    x, g, e, xp, gp, ep, h, s = _mala_case(C, M, per_chain, base, gen)
    seed = R.substream(base, 1)
    tx, tg, te = x.clone(), g.clone(), e.clone()
    acc_t, la_t = ops.mala_accept__torch(tx, tg, te, xp, gp, ep, h, s, seed)
    ax, ag, ae = x.clone(), g.clone(), e.clone()
    acc, la = ops.mala_accept__triton(ax, ag, ae, xp, gp, ep, h, s, seed)
    assert acc.dtype == torch.bool and acc.shape == (C,) and la.shape == (C,) and la.dtype == torch.float32
    torch.testing.assert_close(la, la_t, rtol=1e-6, atol=1e-6)
    assert torch.equal(acc, acc_t), f"decisions differ: {acc.tolist()} vs {acc_t.tolist()}"
    assert_bits(ax, tx, "x")
    assert_bits(ag, tg, "grad")
    assert_bits(ae, te, "energy")
    if C == 64:
        assert 0 < int(acc.sum()) < C, "this case should accept some chains and reject others"
    # rejected chains keep their state, accepted ones take the proposal exactly
    assert torch.equal(ax[~acc], x[~acc]) and torch.equal(ax[acc], xp[acc])


def test_mala_nan_energy_rejects():
    C, M = 4, 3
    gen = torch.Generator().manual_seed(2)
    base = R.seed_pair(77, 0)
    x, g, e, xp, gp, ep, h, s = _mala_case(C, M, False, base, gen)
    ep = ep.clone()
    ep[1] = float("nan")
    ax, ag, ae = x.clone(), g.clone(), e.clone()
    acc, la = ops.mala_accept__triton(ax, ag, ae, xp, gp, ep, h, s, R.substream(base, 1))
    assert not bool(acc[1]) and torch.isnan(la[1])
    assert torch.equal(ax[1], x[1]) and float(ae[1]) == float(e[1])


def test_mala_public_api():
    gen = torch.Generator().manual_seed(9)
    base = R.seed_pair(5, 0)
    C, M = 16, 4
    x, g, e, xp, gp, ep, h, s = _mala_case(C, M, False, base, gen)
    outs = []
    for backend in ("triton", "torch"):
        ax, ag, ae = x.clone(), g.clone(), e.clone()
        acc, la = L.mala_accept_(ax, ag, ae, xp, gp, ep, step_size=float(h[0]), backend=backend,
                                 seed=R.substream(base, 1))
        outs.append((ax, ag, ae, acc))
    for a, b in zip(*outs):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------------
# SGLD
# ----------------------------------------------------------------------------------
def test_sgld_list_bit_identical():
    wd = 0.01
    gen = torch.Generator().manual_seed(1)
    shapes = [(1,), (5,), (0,), (3, 7), (1003,), (2, 2)]
    params = [torch.randn(s, generator=gen) for s in shapes]
    grads = [torch.randn(s, generator=gen) * 2 for s in shapes]
    seed = R.seed_pair(2**63 + 17, 2**32 - 100)
    want = [p.clone() for p in params]
    ops.sgld_step__torch(want, grads, 1e-3, 0.05, wd, seed)
    got = [p.clone() for p in params]
    ops.sgld_step__triton(got, grads, 1e-3, 0.05, wd, seed)
    for k, (a, b) in enumerate(zip(got, want)):
        assert_bits(a, b, f"params[{k}]")
    # the same list again hits the cached tables and still matches a second torch step
    ops.sgld_step__torch(want, grads, 1e-3, 0.05, wd, R.substream(seed, 1))
    ops.sgld_step__triton(got, grads, 1e-3, 0.05, wd, R.substream(seed, 1))
    for k, (a, b) in enumerate(zip(got, want)):
        assert_bits(a, b, f"params[{k}] (second step)")


def test_sgld_per_tensor_launches_match(monkeypatch):
    """The per-tensor launches (what torch.compile traces) give the same numbers."""
    from gensample.ops import langevin_triton as lt

    gen = torch.Generator().manual_seed(3)
    shapes = [(6,), (0,), (3, 3), (1,)]
    params = [torch.randn(s, generator=gen) for s in shapes]
    grads = [torch.randn(s, generator=gen) for s in shapes]
    seed = R.seed_pair(2**64 - 5, 2**64 - 3)
    want = [p.clone() for p in params]
    ops.sgld_step__torch(want, grads, 0.01, 0.3, 0.1, seed)
    monkeypatch.setattr(lt, "_SGLD_PER_TENSOR", True)
    got = [p.clone() for p in params]
    ops.sgld_step__triton(got, grads, 0.01, 0.3, 0.1, seed)
    for k, (a, b) in enumerate(zip(got, want)):
        assert_bits(a, b, f"params[{k}]")


def test_sgld_noise_follows_stream_bases():
    """theta = 0, grad = 0: tensor k holds normal-stream elements base_k .. base_k + n_k - 1."""
    shapes = [(3,), (6,), (1,), (9,)]
    params = [torch.zeros(s) for s in shapes]
    grads = [torch.zeros(s) for s in shapes]
    seed = R.seed_pair(42, 8)
    ops.sgld_step__triton(params, grads, 0.1, 1.0, 0.0, seed)
    stream = R.normal_stream(seed, 32)
    for p, b in zip(params, L.sgld_bases([p.numel() for p in params])):
        assert_bits(p, stream[b:b + p.numel()], f"base {b}")


def test_sgld_errors():
    seed = R.seed_pair(1, 0)
    with pytest.raises(ValueError):
        ops.sgld_step__triton([torch.zeros(3)], [torch.zeros(4)], 0.1, 0.1, 0.0, seed)
    with pytest.raises(ValueError):
        ops.sgld_step__triton([torch.zeros(3), torch.zeros(2, dtype=torch.float64)],
                              [torch.zeros(3), torch.zeros(2, dtype=torch.float64)], 0.1, 0.1, 0.0, seed)


# ----------------------------------------------------------------------------------
# schemas and errors
# ----------------------------------------------------------------------------------
def test_schemas_match_csrc():
    src = (ROOT / "csrc/langevin_ops.cpp").read_text()
    src = re.sub(r'"\s*\n\s*"', "", src)
    for name in ("langevin_step", "langevin_step_", "mala_accept_", "sgld_step_"):
        m = re.search(r'"' + re.escape(name) + r'\((.*?)\)\s*->\s*(.*?)"\);', src, re.S)
        assert m, name
        rets = re.sub(r"(Tensor)\s+\w+", r"\1", m.group(2))  # inferred schemas name no returns
        want = re.sub(r"\bint\b", "SymInt", f"({m.group(1)}) -> {rets}")
        got = str(getattr(ops, name + "_triton").default._schema).split("::", 1)[1]
        alias = re.compile(r"\(\w+!\)")  # (a!) in the C++ schema, (a0!) when inferred
        assert alias.sub("(!)", got) == alias.sub("(!)", name + "_triton" + want), (got, want)


def test_step_errors():
    x = torch.zeros(2, 3)
    h = torch.full((2,), 0.1)
    seed = R.seed_pair(1, 0)
    with pytest.raises(ValueError, match="clip_mode"):
        ops.langevin_step_triton(x, x, h, h, seed, 1.0, 3, -INF, INF, False)
    with pytest.raises(ValueError, match="grad"):
        ops.langevin_step_triton(x, torch.zeros(2, 4), h, h, seed, 1.0, 1, -INF, INF, False)
    with pytest.raises(ValueError, match="step_size"):
        ops.langevin_step_triton(x, x, torch.ones(3), h, seed, 1.0, 1, -INF, INF, False)
    with pytest.raises(ValueError, match="seed"):
        ops.langevin_step_triton(x, x, h, h, torch.zeros(2, dtype=torch.int32), 1.0, 1, -INF, INF, False)
    with pytest.raises(ValueError, match="clamp"):
        ops.langevin_step_triton(x, x, h, h, seed, 1.0, 1, 1.0, 1.0, False)


# ----------------------------------------------------------------------------------
# sm_90 compilation (no GPU needed)
# ----------------------------------------------------------------------------------
_COMPILE_SCRIPT = textwrap.dedent(r"""
    import sys, warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[1])
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from gensample.ops import langevin_triton as lt
    T = GPUTarget("cuda", 90, 32)

    def build(fn, consts, types, fusion=False, warps=4):
        sig = {n: ("constexpr" if n in consts else types.get(n, "*fp32" if n.endswith("_ptr") else "i32"))
               for n in fn.arg_names}
        attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(fn.arg_names)
                 if n.endswith("_ptr") or n == "numel"}
        return triton.compile(ASTSource(fn, signature=sig, constexprs=consts, attrs=attrs), target=T,
                              options={"num_warps": warps, "enable_fp_fusion": fusion})

    def ops_of(c):  # opcodes, predicates ("@%p1") dropped
        lines = [l.split() for l in c.asm["ptx"].splitlines() if l.startswith("\t") and l.strip()]
        return [t[1] if t[0].startswith("@") and len(t) > 1 else t[0] for t in lines]

    st = {"seed_ptr": "*i64", "numel": "i32", "M": "i32", "clip": "fp32", "lo": "fp32", "hi": "fp32"}
    for mode, per_chain, m4 in ((2, True, True), (1, True, False)):
        c = build(lt._step_kernel, dict(CLIP_MODE=mode, PER_CHAIN=per_chain, M4=m4, CLAMP=True, IDX64=False,
                                        BLOCK=lt._STEP_BLOCK), st, fusion=True)
        body = ops_of(c)
        assert not any(o.startswith("fma") for o in body), f"fma in the step kernel (mode {mode})"
        assert sum(o.startswith("ld.global") and ".v4." in o for o in body) >= 2, "no 16-byte vector loads"
        assert any(o.startswith("st.global") and ".v4." in o for o in body), "no 16-byte vector stores"
    rt = {"clip": "fp32", "C": "i32", "M": "i32"}
    rt = dict(rt, seed_ptr="*i64", part_ptr="*fp64", acc_ptr="*i1")
    for mala, partial in ((False, True), (True, False)):
        build(lt._chain_reduce_kernel, dict(MALA=mala, PARTIAL=partial, WANT_NORM=True, WANT_SCALE=True,
                                            BLOCK_C=2, W=1024), rt)
    build(lt._chain_finalize_kernel, dict(MALA=True, WANT_NORM=False, WANT_SCALE=False, BLOCK_C=64, BLOCK_S=8), rt)
    build(lt._mala_select_kernel, dict(BLOCK_C=2, W=1024), {"acc_ptr": "*i1"})
    build(lt._sgld_one_kernel, dict(BLOCK=lt._SGLD_BLOCK), {"seed_ptr": "*i64", "numel": "i64", "cbase": "i64",
                                                          "lr": "fp32", "noise": "fp32", "wd": "fp32"})
    c = build(lt._sgld_kernel, dict(ELEM=tl.float32, ALIGNED=True, BLOCK=lt._SGLD_BLOCK),
              {"tab_ptr": "*i64", "prog_ptr": "*i32", "seed_ptr": "*i64", "lr": "fp32", "noise": "fp32",
               "wd": "fp32"}, fusion=True)
    body = ops_of(c)
    assert not any(o.startswith("fma") for o in body), "fma in the SGLD kernel"
    assert any(o.startswith("ld.global") and ".v4." in o for o in body), "SGLD: no 16-byte vector loads"
    # one-valued integer arguments are specialized to constexpr 1 by the launcher (C = M = 1)
    build(lt._step_kernel, dict(CLIP_MODE=2, PER_CHAIN=True, M4=False, CLAMP=True, IDX64=False,
                                BLOCK=lt._STEP_BLOCK, numel=1, M=1), st)
    build(lt._chain_reduce_kernel, dict(MALA=True, PARTIAL=False, WANT_NORM=False, WANT_SCALE=False, BLOCK_C=1,
                                        W=4, C=1, M=1, n_chunks=1, chunks_per_prog=1, n_split=1), rt)
    # torch.compile (Inductor) regenerates user kernels' source (with their @triton.jit
    # helpers and constexpr globals) and compiles it with FP fusion on: still FMA-free.
    import importlib.util, os, tempfile
    from torch._inductor.codegen.triton import TritonKernel
    from torch._inductor.codegen.wrapper import user_defined_triton_kernel_transitive_closure_source_code
    src = (TritonKernel.gen_common_triton_imports() + "\n@triton.jit\n"
           + user_defined_triton_kernel_transitive_closure_source_code(lt._step_kernel))
    path = os.path.join(tempfile.mkdtemp(), "gen_step.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("gen_step", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = build(mod._step_kernel, dict(CLIP_MODE=2, PER_CHAIN=True, M4=True, CLAMP=True, IDX64=False,
                                     BLOCK=lt._STEP_BLOCK), st, fusion=True)
    assert not any(o.startswith("fma") for o in ops_of(c)), "fma in the regenerated step kernel"
    print("OK")
""")



@needs_nvidia_backend()
def test_kernels_compile_for_sm90():
    compile_check(_COMPILE_SCRIPT)
