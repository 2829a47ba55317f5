"""Every CUDA source under csrc/ compiles with nvcc (object only, no GPU needed).

The kernels cannot run on a machine without a GPU, but they must build: each
``csrc/**/*.cu`` is compiled with ``nvcc -c`` against the installed torch's headers,
with the flags the extension build uses (setup.py plus torch's common nvcc flags),
for sm_90 (H100/H200). All files compile in parallel, into a temporary directory.
The check also fails on compiler warnings raised in gensample's own sources and on
register spills reported by ptxas.

A CPU-only torch wheel lacks one generated header, c10/cuda/impl/cuda_cmake_macros.h;
a one-line stub is put on the include path after torch's own (a CUDA build of torch
brings the real one, which then wins). Skipped only when nvcc is absent.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CU_FILES = sorted((ROOT / "csrc").rglob("*.cu"))


def _find_nvcc() -> str | None:
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home and (Path(home) / "bin" / "nvcc").is_file():
            return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc") or (shutil.which("nvcc", path="/usr/local/cuda/bin"))


NVCC = _find_nvcc()
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found (CUDA toolkit absent)")

ARCH = os.environ.get("GENSAMPLE_TEST_CUDA_ARCH", "sm_90")
TIMEOUT_S = 600


def _flags(tmp: Path) -> list[str]:
    import torch.utils.cpp_extension as cpp_ext

    stub = tmp / "stub"
    (stub / "c10" / "cuda" / "impl").mkdir(parents=True, exist_ok=True)
    (stub / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    flags = ["-c", "-O3", "-std=c++17", "-DGENSAMPLE_WITH_CUDA", "-lineinfo", f"-arch={ARCH}", "-Xptxas", "-v"]
    flags += [f for f in cpp_ext.COMMON_NVCC_FLAGS if f not in flags]
    flags += ["-I", str(ROOT / "csrc" / "include")]
    for inc in cpp_ext.include_paths():
        flags += ["-isystem", inc]
    flags += ["-isystem", str(stub)]  # after torch's: a real cuda_cmake_macros.h wins
    return flags


def _compile(src: Path, out_dir: Path, flags: list[str]) -> dict:
    stem = src.relative_to(ROOT).as_posix().replace("/", "_")
    obj = out_dir / (stem + ".o")
    keep = out_dir / (stem + ".keep")  # intermediate files, for the PTX
    keep.mkdir()
    cmd = [NVCC, *flags, "--keep", "--keep-dir", str(keep), str(src), "-o", str(obj)]
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        rc, log = res.returncode, res.stdout + res.stderr
    except subprocess.TimeoutExpired:
        rc, log = -1, f"timed out after {TIMEOUT_S} s"
    ptx = "\n".join(p.read_text() for p in sorted(keep.glob("*.ptx")))
    return {"rc": rc, "log": log, "cmd": " ".join(cmd), "seconds": time.monotonic() - t0, "obj": obj, "ptx": ptx}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Compile all .cu files at once (in parallel); each test then reads its result."""
    tmp = tmp_path_factory.mktemp("nvcc")
    flags = _flags(tmp)
    workers = max(1, min(len(CU_FILES), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {src: pool.submit(_compile, src, tmp, flags) for src in CU_FILES}
        return {src: f.result() for src, f in futures.items()}


def test_cuda_sources_exist():
    names = {p.name for p in CU_FILES}
    assert {"random_cuda.cu", "reparam_cuda.cu"} <= names, names


@pytest.mark.parametrize("src", CU_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_nvcc_compiles(compiled, src):
    r = compiled[src]
    assert r["rc"] == 0, f"nvcc failed ({r['seconds']:.0f} s):\n{r['cmd']}\n{r['log'][-12000:]}"
    assert r["obj"].is_file() and r["obj"].stat().st_size > 0
    # Warnings from gensample's own code (torch's headers are -isystem; nvcc's front
    # end still reports a few of theirs, which are not ours to fix).
    own = [ln for ln in r["log"].splitlines()
           if "warning" in ln.lower() and "/csrc/" in ln and "site-packages" not in ln]
    assert not own, "compiler warnings in gensample sources:\n" + "\n".join(own[:20])
    # Register spills would cost the memory-bound kernels their bandwidth.
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", r["log"])
    assert spills, "ptxas -v reported no kernels"
    assert all(s == "0" and l == "0" for s, l in spills), f"register spills: {spills}\n{r['log'][-4000:]}"


def _ptx_entries(ptx: str) -> dict[str, str]:
    """Kernel name -> its PTX body."""
    parts = re.split(r"^\.visible \.entry |^\.entry |^\.weak \.entry ", ptx, flags=re.M)
    return {p.split("(", 1)[0].strip(): p for p in parts[1:]}


# (source, kernel name fragment, vector stores required, vector loads required)
VECTOR_KERNELS = [
    ("csrc/cuda/random_cuda.cu", "philox_fill_kernel", True, False),
    ("csrc/cuda/reparam_cuda.cu", "reparam_kl_fwd_kernel", True, True),
    ("csrc/cuda/reparam_cuda.cu", "reparam_kl_bwd_kernel", True, True),
    ("csrc/cuda/gibbs_cuda.cu", "gibbs_epilogue_kernel", True, True),
]


@pytest.mark.parametrize("src,kernel,vst,vld", VECTOR_KERNELS, ids=[k[1] for k in VECTOR_KERNELS])
def test_kernels_use_vector_access(compiled, src, kernel, vst, vld):
    """The memory-bound kernels keep their 4-element vector loads/stores (8-32 bytes):
    the optimizer once merged a struct-copy store with its scalar fallback."""
    r = compiled[ROOT / src]
    assert r["rc"] == 0, "compile failed (see test_nvcc_compiles)"
    entries = {k: v for k, v in _ptx_entries(r["ptx"]).items() if kernel in k}
    assert entries, f"no PTX entry matching {kernel}"
    for name, body in entries.items():
        if vst:
            assert re.search(r"st\.global(\.\w+)*\.v[24]\.", body), f"{name}: no vector store"
        if vld:
            assert re.search(r"ld\.global(\.\w+)*\.v[24]\.", body), f"{name}: no vector load"
