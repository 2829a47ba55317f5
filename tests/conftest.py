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
