"""Test configuration: Triton kernels run on CPU tensors through the interpreter."""
import os

# Must be set before triton (and therefore gensample) is imported.
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.pop("GENSAMPLE_BACKEND", None)

import pytest  # noqa: E402
import torch  # noqa: E402

import gensample  # noqa: E402
from gensample import _backend  # noqa: E402

CPU = torch.device("cpu")


def cpu_backends():
    """Backends that can run on CPU tensors here (triton through the interpreter)."""
    return [b for b in gensample.BACKENDS if _backend.unavailable_reason(b, "cpu") is None]


def backend_params(include_missing=True):
    """All four backends as pytest params; the unavailable ones are skipped with the reason."""
    out = []
    for b in gensample.BACKENDS:
        reason = _backend.unavailable_reason(b, "cpu")
        if reason is None:
            out.append(pytest.param(b, id=b))
        elif include_missing:
            out.append(pytest.param(b, id=b, marks=pytest.mark.skip(reason=reason)))
    return out


# ----------------------------------------------------------------------------------
# helpers shared by the Langevin / MALA / SGLD / EBM tests
# ----------------------------------------------------------------------------------
def cpu_kernel(name):
    """This build registers a CPU kernel for gensample::name (not just its schema)."""
    return hasattr(torch.ops.gensample, name) and torch._C._dispatch_has_kernel_for_dispatch_key(
        f"gensample::{name}", "CPU")


def fast_backend_for(op):
    """The cpu backend when this build has a CPU kernel for gensample::op, else the torch spec."""
    if _backend.unavailable_reason("cpu", "cpu") is None and cpu_kernel(op):
        return "cpu"
    return "torch"


def has_kernels(backend, op):
    """``backend`` has kernels for gensample::op in this build (torch always does)."""
    if backend == "torch":
        return True
    if backend == "triton":
        return hasattr(torch.ops.gensample, f"{op}_triton")
    return cpu_kernel(op)


def z_bonferroni(n_tests, rate=1e-4):
    """Two-sided z threshold for ``n_tests`` tests at family-wise false-failure rate ``rate``."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - rate / (2 * n_tests))


@pytest.fixture(scope="module")
def one_thread():
    """Small per-step work: one thread is as fast and immune to the 10-100x OpenMP slowdowns
    of a busy machine. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------
# exact inputs and bit-for-bit comparison, shared by the interpreter (test_*_triton.py) and
# simulator (test_*_cuda_sim.py) tests of the gibbs and tempered kernels
# ---------------------------------------------------------------------------------------------
# (seed, offset) pairs: the seed's high bit set; counters crossing 2^32; the offset wrapping
SEEDS = [(12345, 0), (2**63 + 0x5EED, 2**32 - 3), (0xFFFFFFFF, 2**64 - 2)]


def assert_bits_equal(name, got, ref, reshape=False):
    """float32 ``got`` equals ``ref`` bit for bit (``reshape``: ``got`` is first viewed as ``ref``'s shape)."""
    if reshape:
        got = got.reshape(ref.shape)
    assert got.shape == ref.shape, f"{name}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    diff = got.contiguous().view(torch.int32) != ref.contiguous().view(torch.int32)
    assert not diff.any(), (f"{name}: {int(diff.sum())} of {diff.numel()} elements differ, first at "
                            f"{diff.nonzero()[0].tolist()}: {got[diff][0].item()!r} vs {ref[diff][0].item()!r}")


def dyadic(gen, *shape, scale=2.0):
    """Multiples of 2^-6 in [-scale, scale]: products with 0/1 inputs and their sums are exact."""
    m = int(scale * 64)
    return torch.randint(-m, m + 1, shape, generator=gen).to(torch.float32) / 64


def binary(gen, *shape):
    return torch.randint(0, 2, shape, generator=gen).to(torch.float32)


def one_per_column(gen, nv, nh):
    """W with one nonzero +-2^e (e in -2..1) per column: x @ W is exact for any float x."""
    w = torch.zeros(nv, nh)
    if nv:
        rows = torch.randint(0, nv, (nh,), generator=gen)
        sign = torch.randint(0, 2, (nh,), generator=gen) * 2 - 1
        w[rows, torch.arange(nh)] = 2.0 ** torch.randint(-2, 2, (nh,), generator=gen).float() * sign
    return w


# ---------------------------------------------------------------------------------------------
# exact inputs for the cpu-kernel tests (test_gibbs_ops.py, test_tempered_cpu.py)
# ---------------------------------------------------------------------------------------------
def dyadic_grid(*shape, g, lim=128):
    """Multiples of 2^-6 in [-2, 2]: sums of up to 2^18 of them are exact in float32."""
    return torch.randint(-lim, lim + 1, shape, generator=g).float() / 64


def bernoulli_states(*shape, g, p=0.4):
    return (torch.rand(shape, generator=g) < p).float()


def gen(s=7):
    return torch.Generator().manual_seed(s)


def check_equal(a, b, what):
    """Same shape and dtype, and bit for bit the same float32 values as the torch backend's."""
    assert a.shape == b.shape and a.dtype == b.dtype, what
    mismatches = int((a.view(torch.int32) != b.view(torch.int32)).sum())
    assert mismatches == 0, f"{what}: {mismatches} of {a.numel()} entries differ from the torch backend"
