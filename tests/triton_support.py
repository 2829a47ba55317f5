"""Shared preamble of the Triton kernel tests (test_triton_kernels, test_gibbs_triton,
test_langevin_triton): the interpreter/availability skips and the sm_90 compile check.

    from triton_support import ROOT, compile_check, needs_nvidia_backend, require_interpreted_triton
"""
import os

# Must be set before triton (and therefore gensample) is imported.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def require_interpreted_triton() -> None:
    """Skip the calling test module unless triton imports, runs interpreted and its kernels load."""
    pytest.importorskip("triton")
    from gensample.ops import _triton_loader

    if os.environ.get("TRITON_INTERPRET") != "1":  # pragma: no cover
        pytest.skip("these tests run the Triton kernels on CPU tensors (TRITON_INTERPRET=1)",
                    allow_module_level=True)
    if not _triton_loader.load():  # pragma: no cover
        pytest.skip(f"triton kernels unavailable: {_triton_loader._error}", allow_module_level=True)


def has_nvidia_backend() -> bool:
    import triton

    return (pathlib.Path(triton.__file__).parent / "backends/nvidia/bin/ptxas").exists()


def needs_nvidia_backend():
    """skipif mark for the sm_90 compile checks (they need triton's ptxas, not a GPU)."""
    return pytest.mark.skipif(not has_nvidia_backend(), reason="triton's NVIDIA backend (ptxas) is not installed")


def compile_check(script: str, *args: str, timeout: int = 600) -> None:
    """Run ``script`` (argv: ROOT, *args) in a fresh, non-interpreted Python; it must print OK."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"  # what triton 3.9 defaults to (silences its warning)
    r = subprocess.run([sys.executable, "-c", script, str(ROOT), *args], capture_output=True, text=True,
                       env=env, timeout=timeout)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-3000:] + r.stderr[-5000:]
