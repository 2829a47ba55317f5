"""pytest-benchmark cases for reparameterize_kl (a few representative ones).

    pytest benchmarks/test_bench_reparam.py --benchmark-only

Not part of the test suite: the repo's pytest ``testpaths`` is ``tests/``, and this file
lives under ``benchmarks/``. The full, interleaved benchmark with ceilings, compile
competitors and JSON output is ``benchmarks/bench_reparam.py``; pytest-benchmark times
each case on its own (not interleaved), so compare its numbers only within one session.

Case: 4096x256 fp32, forward + backward (autograd.grad of (z, kl) with random upstream
gradients created once): the eager textbook reference against every gensample backend
that runs on CPU (and on CUDA when available). Triton on CPU (the interpreter) and
backends whose kernels are missing are skipped with the reason.
"""
from __future__ import annotations

import os
import sys

import pytest

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)  # benchmark this checkout's gensample

torch = pytest.importorskip("torch")
pytest.importorskip("pytest_benchmark")

import gensample  # noqa: E402
from gensample import _backend, reference  # noqa: E402

SHAPE = (4096, 256)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _inputs(device):
    g = torch.Generator().manual_seed(0)
    b, d = SHAPE
    mu = torch.randn(b, d, generator=g).to(device).requires_grad_(True)
    lv = (0.5 * torch.randn(b, d, generator=g)).to(device).requires_grad_(True)
    gz = torch.randn(b, d, generator=g).to(device)
    gkl = torch.randn(b, generator=g).to(device)
    return mu, lv, gz, gkl


def _step(f, device):
    mu, lv, gz, gkl = _inputs(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():
        z, kl = f(mu, lv)
        out = torch.autograd.grad((z, kl), (mu, lv), (gz, gkl))
        sync()
        return out

    return step


def _impls():
    out = []
    for dev in DEVICES:
        out.append(pytest.param(dev, "textbook", id=f"{dev}-textbook"))
        for b in gensample.BACKENDS:
            out.append(pytest.param(dev, b, id=f"{dev}-gensample[{b}]"))
    return out


def _skip_reason(device, b):
    if b == "textbook":
        return None
    if b == "triton" and device == "cpu":
        return "triton on CPU runs under the interpreter: not a benchmark"
    reason = _backend.unavailable_reason(b, device)
    if reason is not None:
        return reason
    try:  # kernels may be missing while the extension is being written
        mu = torch.randn(3, 5, device=device, requires_grad=True)
        z, kl = gensample.reparameterize_kl(mu, mu * 0.1, backend=b)
        (z.sum() + kl.sum()).backward()
    except Exception as e:
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
    return None


@pytest.mark.parametrize("device,impl", _impls())
def test_reparam_kl_fwd_bwd_4096x256(benchmark, device, impl):
    why = _skip_reason(device, impl)
    if why is not None:
        pytest.skip(why)
    if impl == "textbook":
        f = reference.reparameterize_kl_textbook
    else:
        f = lambda m, v: gensample.reparameterize_kl(m, v, backend=impl)  # noqa: E731
    step = _step(f, device)
    benchmark.group = f"reparam_kl fwd+bwd {SHAPE[0]}x{SHAPE[1]} fp32 {device}"
    benchmark.extra_info.update({"shape": list(SHAPE), "mode": "fwd+bwd", "min_bytes_per_elem": 32,
                                 "impl": impl, "device": device, "torch_threads": torch.get_num_threads()})
    if impl == "torch":  # the torch backend (pure-torch Philox spec) is slow: a few rounds only
        dmu, dlv = benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    else:  # pytest-benchmark's own calibration (--benchmark-min-rounds, --benchmark-max-time)
        dmu, dlv = benchmark(step)
    assert dmu.shape == SHAPE and dlv.shape == SHAPE
