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
