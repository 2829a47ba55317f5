"""Shared support of the simulated-grid tests (test_cuda_sim.py, test_gibbs_cuda_sim.py,
test_langevin_cuda_sim.py): compiling a driver of tests/cuda_sim/ (g++, AddressSanitizer
and UBSan on where the compiler supports them) and running it with the protocol of
tests/cuda_sim/sim_common.h.

IN: little-endian int64 words (the first the op code), then raw storages;
OUT: int64 n_stats, int64 stats[n_stats], then per output buffer
int64 nbytes, bytes, int64 n, int32 write_counts[n].
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SIM_DIR = ROOT / "tests" / "cuda_sim"
CXX = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("g++")

requires_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++) found")

H100_SMS = 132
MASK64 = (1 << 64) - 1
# Stats every driver writes first: stray stores, misaligned vector accesses, vector accesses.
STRAY, MISALIGNED, VEC = 0, 1, 2


def _asan_supported() -> bool:
    return subprocess.run([CXX, "-fsanitize=address", "-x", "c++", "-", "-o", os.devnull],
                          input=b"int main(){}", capture_output=True).returncode == 0


def compile_driver(tmp_path_factory, source: str, exe_name: str, *, torch_includes: bool, werror: bool) -> Path:
    """Compiles tests/cuda_sim/<source> to a fresh directory; returns the executable."""
    exe = tmp_path_factory.mktemp(Path(source).stem) / exe_name
    cmd = [CXX, "-std=c++17", "-O1", "-g", "-ffp-contract=off", "-Wall", "-Wextra"]
    if werror:
        cmd.append("-Werror")
    cmd += ["-I", str(ROOT / "csrc" / "include")]
    if torch_includes:  # c10::Half / c10::BFloat16, header-only
        import torch.utils.cpp_extension as cpp_ext

        for inc in cpp_ext.include_paths():
            cmd += ["-isystem", inc]
    if _asan_supported():
        cmd += ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    cmd += [str(SIM_DIR / source), "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"sim driver failed to compile:\n{' '.join(cmd)}\n{res.stderr[-8000:]}"
    return exe


def driver_fixture(source: str, exe_name: str, *, torch_includes: bool, werror: bool):
    """A module-scoped fixture named ``sim``: the compiled driver."""

    @pytest.fixture(scope="module", name="sim")
    def sim(tmp_path_factory):
        return compile_driver(tmp_path_factory, source, exe_name, torch_includes=torch_includes, werror=werror)

    return sim


def i64(v: int) -> int:
    """v as a signed int64 word (two's complement)."""
    v &= MASK64
    return v - (1 << 64) if v >= (1 << 63) else v


def f32_word(v: float) -> int:
    """The float32 bit pattern of v, passed in one int64 word."""
    return int(np.array(v, dtype=np.float32).view(np.uint32))


def blob(t: torch.Tensor) -> bytes:
    """The float32 storage of t, contiguous."""
    return t.detach().to(torch.float32).contiguous().numpy().tobytes()


class Result(NamedTuple):
    stats: list
    outs: list  # per output buffer: (raw bytes, int32 write counts)


def run_driver(exe, words, blobs, tmp_path) -> Result:
    """Runs the driver on words + blobs; asserts it succeeded (ASan/UBSan abort otherwise)."""
    inp, out = tmp_path / "in.bin", tmp_path / "out.bin"
    with open(inp, "wb") as f:
        f.write(struct.pack(f"<{len(words)}q", *[i64(w) for w in words]))
        for b in blobs:
            f.write(b)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    res = subprocess.run([str(exe), str(inp), str(out)], capture_output=True, text=True, env=env)
    assert res.returncode == 0, f"{Path(exe).name} failed ({res.returncode}):\n{res.stderr[-8000:]}"
    data = out.read_bytes()
    pos = 0

    def word():
        nonlocal pos
        (v,) = struct.unpack_from("<q", data, pos)
        pos += 8
        return v

    stats = [word() for _ in range(word())]
    outs = []
    while pos < len(data):
        nb = word()
        raw = data[pos:pos + nb]
        pos += nb
        n = word()
        counts = (torch.frombuffer(bytearray(data[pos:pos + 4 * n]), dtype=torch.int32) if n
                  else torch.zeros(0, dtype=torch.int32))
        pos += 4 * n
        outs.append((raw, counts))
    return Result(stats, outs)


def decode(raw: bytes, dtype=torch.float32) -> torch.Tensor:
    return torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.zeros(0, dtype=dtype)


def check_base(stats):
    assert stats[STRAY] == 0, "store outside every output buffer"
    assert stats[MISALIGNED] == 0, "misaligned vector access"


def check_once(name, counts):
    bad = (counts != 1).nonzero().flatten()
    assert bad.numel() == 0, (f"{name}: {bad.numel()} elements not written exactly once, e.g. index "
                              f"{bad[:8].tolist()} written {counts[bad[:8]].tolist()} times")


def check_writes(stats, outs, names):
    """No stray store, no misaligned vector access, and each named output written exactly once."""
    check_base(stats)
    for name, (_, counts) in zip(names, outs):
        check_once(name, counts)
