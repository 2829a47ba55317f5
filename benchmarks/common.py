"""Shared benchmark harness for gensample's benchmarks (see benchmarks/README.md).

What is here:

* ``early_env``: process settings that must be fixed before ``import torch``
  (thread counts, a cold in-process inductor cache, THP). Call it first.
* ``Runner``: interleaved timing. Competitors of one case group are timed in the
  same process, round-robin, one block each per round (rotating the order every
  round), so that machine drift hits all of them alike. Each block runs a
  calibrated number of calls; a block's per-call time is a sample; we report the
  median and the 20th/80th percentiles over blocks and keep the raw block times.
* ``peak_memory``: peak bytes allocated by torch's allocator during one call (CPU:
  the profiler's allocation events, ``profile_memory=True``; CUDA:
  ``torch.cuda.max_memory_allocated``), plus, on CPU, the peak-RSS delta from
  ``/proc/self/status`` as a second, cruder opinion.
* ``measure_ceilings``: hardware ceilings measured in the same run (copy
  bandwidth, fp32 GEMM).
* ``metadata``: versions, ``gensample.info()``, CPU/GPU model, threads, THP state.
* ``summarize``/``quantile``/``fmt_*``/``md_table``/``write_json``: helpers shared
  with ``render.py``.

The module imports only the standard library at the top, so ``render.py`` works
without torch and ``early_env`` can run before torch is imported.
"""
from __future__ import annotations

import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time

MB = 1 << 20
GB = 1e9

_INDUCTOR_CACHE = None


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# environment (before torch is imported)
# ---------------------------------------------------------------------------


def early_env(threads: int | None = None, thp: bool = False, warm_cache: bool = False) -> None:
    """Fix what torch reads at import / first use. Must run before ``import torch``.

    * ``threads``: OMP/MKL thread counts (``torch.set_num_threads`` is applied later too).
    * inductor compiles in-process (``TORCHINDUCTOR_COMPILE_THREADS=1``) into a fresh,
      empty cache directory unless ``warm_cache``, so first-call times are cold compiles.
    * ``thp``: ``THP_MEM_ALLOC_ENABLE=1`` (transparent huge pages for large CPU tensors).
    """
    global _INDUCTOR_CACHE
    if "torch" in sys.modules:
        log("warning: early_env() called after torch was imported; some settings may not apply")
    if threads:
        for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(v, str(threads))
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
    if thp:
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    if not warm_cache:
        import atexit
        import shutil
        import tempfile

        _INDUCTOR_CACHE = tempfile.mkdtemp(prefix="gensample-bench-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = _INDUCTOR_CACHE
        os.environ["TRITON_CACHE_DIR"] = os.path.join(_INDUCTOR_CACHE, "triton")
        atexit.register(shutil.rmtree, _INDUCTOR_CACHE, ignore_errors=True)


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------


def quantile(xs, q: float) -> float:
    """Linear-interpolation quantile (numpy's default 'linear' method)."""
    s = sorted(xs)
    if not s:
        return float("nan")
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(times_s) -> dict:
    """median / p20 / p80 / min of per-call block times (seconds)."""
    return {
        "median_s": statistics.median(times_s),
        "p20_s": quantile(times_s, 0.2),
        "p80_s": quantile(times_s, 0.8),
        "min_s": min(times_s),
        "n_blocks": len(times_s),
    }


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------


def _sync_fn(device: str):
    if device == "cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None


class Runner:
    """Interleaved block timing of several competitors in one process.

    block_time: target seconds per block (the number of calls per block is calibrated
    from a timed call after warm-up). min_blocks / max_blocks: rounds per group; the
    number of rounds is chosen so the group takes about ``group_budget`` seconds.
    """

    def __init__(self, device="cpu", block_time=0.2, min_blocks=7, max_blocks=40,
                 group_budget=8.0, warmup=2, max_number=100000):
        self.device = device
        self.sync = _sync_fn(device)
        self.block_time = block_time
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.group_budget = group_budget
        self.warmup = warmup
        self.max_number = max_number

    def _block(self, fn, number: int) -> float:
        """Seconds per call over one block of ``number`` calls (gc off)."""
        sync = self.sync
        gc_was = gc.isenabled()
        gc.disable()
        try:
            sync()
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            sync()
            t1 = time.perf_counter()
        finally:
            if gc_was:
                gc.enable()
        return (t1 - t0) / number

    def calibrate(self, fn) -> tuple[int, float]:
        """Warm up, then return (calls per block, estimated seconds per call)."""
        for _ in range(self.warmup):
            fn()
        est = self._block(fn, 1)
        if est < self.block_time / 20:  # refine the estimate of fast calls
            n = max(1, int(self.block_time / 10 / max(est, 1e-9)))
            est = self._block(fn, min(n, self.max_number))
        number = max(1, min(self.max_number, int(round(self.block_time / max(est, 1e-9)))))
        return number, est

    def run_group(self, competitors: dict, label: str = "") -> dict:
        """Time ``{name: fn}`` interleaved. Returns ``{name: {times_s, number_per_block, ...}}``.

        A competitor that raises is dropped from the group with its error recorded.
        """
        names = list(competitors)
        number, est, errors = {}, {}, {}
        for n in names:
            try:
                number[n], est[n] = self.calibrate(competitors[n])
            except Exception as e:  # record, keep the others going
                errors[n] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
                log(f"  [{label}] {n}: failed during warm-up: {errors[n]}")
        live = [n for n in names if n not in errors]
        round_s = sum(number[n] * est[n] for n in live) or 1e-9
        rounds = int(max(self.min_blocks, min(self.max_blocks, self.group_budget // round_s)))
        times = {n: [] for n in live}
        gc.collect()
        for r in range(rounds):
            k = r % len(live) if live else 0
            order = live[k:] + live[:k]  # rotate so nobody always runs after the same neighbour
            for n in order:
                if n in errors:
                    continue
                try:
                    times[n].append(self._block(competitors[n], number[n]))
                except Exception as e:
                    errors[n] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
        out = {}
        for n in names:
            if n in errors and not times.get(n):
                out[n] = {"error": errors[n]}
                continue
            rec = {"times_s": times[n], "number_per_block": number[n], "rounds": rounds}
            rec.update(summarize(times[n]))
            if n in errors:
                rec["error"] = errors[n]
            out[n] = rec
        return out


def time_single(runner: Runner, fn, label="", budget: float | None = 3.0) -> dict:
    """One competitor alone (ceilings), with at most ``budget`` seconds of timing."""
    r = runner
    if budget is not None and budget < runner.group_budget:
        r = Runner(runner.device, runner.block_time, runner.min_blocks, runner.max_blocks, budget,
                   runner.warmup, runner.max_number)
    return r.run_group({"x": fn}, label)["x"]


# ---------------------------------------------------------------------------
# peak memory
# ---------------------------------------------------------------------------


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _peak_rss_delta(fn) -> int | None:
    """Peak-RSS (VmHWM) increase over the RSS before one call, in bytes, or None.

    Crude: freed heap memory that malloc keeps is reused without raising RSS, so this
    can undercount; page-granular; includes everything the process touches.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return None
    before = _rss_kib("VmRSS")
    fn()
    hwm = _rss_kib("VmHWM")
    if before is None or hwm is None:
        return None
    return max(0, hwm - before) * 1024


def _peak_profiler_cpu(fn) -> int | None:
    """Peak of live bytes allocated (by torch's CPU allocator) during one call, above the
    bytes live at its start, from the profiler's allocation events."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    try:
        tree = prof.profiler.kineto_results.experimental_event_tree()
        alloc_tag = torch._C._profiler._EventType.Allocation
    except Exception:
        return None
    stack = list(tree)
    allocs = []
    while stack:
        e = stack.pop()
        stack.extend(e.children)
        if e.tag == alloc_tag and str(e.extra_fields.device).startswith("cpu"):
            allocs.append((e.start_time_ns, e.extra_fields.alloc_size))
    allocs.sort()
    live = peak = 0
    for _, sz in allocs:  # recompute the running total: only what this call allocated counts
        live += sz
        peak = max(peak, live)
    return peak


def peak_memory(fn, device: str = "cpu", warm: bool = True) -> dict:
    """Peak extra memory of one call of ``fn`` (outputs of the call included; inputs and
    anything alive before excluded). See the module docstring for what is measured.
    ``warm=False`` skips the warm-up call (for a fn that was just timed)."""
    import torch

    out = {}
    if warm:
        fn()  # warm: lazy init, compiled-graph caches, allocator pools
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        out["peak_alloc_bytes"] = torch.cuda.max_memory_allocated() - base
        out["peak_method"] = "torch.cuda.max_memory_allocated - memory_allocated before"
        return out
    try:
        # gensample's cpu backend allocates large outputs from its own buffer cache
        # (posix_memalign, invisible to the profiler); its live-bytes high-water mark is
        # added, so the figure is an upper bound (sum of two peaks) that counts them.
        from gensample import _ext

        pool = _ext._C if _ext.loaded() and hasattr(_ext._C, "cpu_pool_reset_peak") else None
        if pool is not None:
            live0 = pool.cpu_pool_stats()["live_bytes"]
            pool.cpu_pool_reset_peak()
        prof = _peak_profiler_cpu(fn)
        pooled = (pool.cpu_pool_reset_peak() - live0) if pool is not None else 0
        out["peak_alloc_bytes"] = prof + pooled
        out["peak_pooled_bytes"] = pooled
        out["peak_method"] = ("profiler profile_memory=True: max running sum of CPU allocations during the call, "
                              "plus the peak of gensample's pooled output bytes")
    except Exception as e:
        out["peak_alloc_bytes"] = None
        out["peak_error"] = f"{type(e).__name__}: {e}"
    gc.collect()
    out["peak_rss_delta_bytes"] = _peak_rss_delta(fn)
    return out


# ---------------------------------------------------------------------------
# hardware ceilings
# ---------------------------------------------------------------------------


def measure_ceilings(runner: Runner, device: str = "cpu", quick: bool = False,
                     extra_copy_numels=()) -> dict:
    """Copy bandwidth (bytes read + written / time) and fp32 GEMM GFLOP/s, measured now.

    CPU: ``dst.copy_(src)`` of 256 MB fp32 (DRAM) and, for each of ``extra_copy_numels``,
    a copy of that many fp32 elements (cache-resident for small ones). CUDA: the same
    device-to-device copies. GEMM: ``torch.mm(a, b, out=c)`` fp32 at 1024^3 and 2048^3
    (on CUDA, TF32 is whatever ``torch.backends.cuda.matmul.allow_tf32`` says; recorded).
    """
    import torch

    dev = torch.device(device)
    res = {"copy": {}, "gemm": {}}
    numels = [64 * MB] + [int(n) for n in extra_copy_numels if int(n) != 64 * MB]
    for numel in numels:
        src = torch.randn(numel, device=dev)
        dst = torch.empty_like(src)
        r = time_single(runner, lambda: dst.copy_(src), f"copy {numel}")
        r["GBps"] = 2 * src.nbytes / r["median_s"] / GB
        r["bytes_moved"] = 2 * src.nbytes
        res["copy"][str(numel)] = r
        log(f"  ceiling copy_ fp32 {src.nbytes / MB:.3g} MB: {r['median_s'] * 1e3:.3f} ms, {r['GBps']:.1f} GB/s")
        del src, dst
    for n in (1024, 2048):
        a = torch.randn(n, n, device=dev)
        b = torch.randn(n, n, device=dev)
        c = torch.empty(n, n, device=dev)
        r = time_single(runner, lambda: torch.mm(a, b, out=c), f"gemm {n}")
        r["GFLOPs"] = 2 * n ** 3 / r["median_s"] / 1e9
        res["gemm"][str(n)] = r
        log(f"  ceiling GEMM fp32 {n}^3: {r['median_s'] * 1e3:.3f} ms, {r['GFLOPs']:.0f} GFLOP/s")
        del a, b, c
    if device == "cuda":
        res["cuda_matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return res


# ---------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cpu_model() -> str:
    # imported here, not at the top: this module must load without torch (render.py, early_env)
    from gensample._sysinfo import cpu_model as _cpu_model

    return _cpu_model()


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = line.split(":", 1)[1].split()
                    return ",".join(x for x in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if x in fl)
    except OSError:
        pass
    return ""


def slug(s: str) -> str:
    s = re.sub(r"\((r|tm)\)", "", s, flags=re.I)
    s = re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")
    return s or "unknown"


def device_slug(device: str) -> str:
    if device == "cuda":
        import torch

        return slug(torch.cuda.get_device_name(0))
    return slug(cpu_model())


def _git(*args):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except Exception:
        return None


def metadata(device: str, argv=None) -> dict:
    import numpy as np
    import torch

    try:
        import triton

        triton_v = triton.__version__
    except Exception as e:
        triton_v = f"not importable ({type(e).__name__})"
    try:
        import gensample

        ginfo = gensample.info()
    except Exception as e:
        ginfo = {"error": f"{type(e).__name__}: {e}"}
    meta = {
        "device": device,
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": triton_v,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(),
        "gensample_info": ginfo,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "thp_sysfs": _read("/sys/kernel/mm/transparent_hugepage/enabled"),
        "thp_defrag_sysfs": _read("/sys/kernel/mm/transparent_hugepage/defrag"),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE", ""),
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "inductor_cache": "cold (fresh temp dir)" if _INDUCTOR_CACHE else "warm (default dir)",
        "inductor_compile_threads": os.environ.get("TORCHINDUCTOR_COMPILE_THREADS"),
        "loadavg_start": _read("/proc/loadavg"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_modified_tracked_files": len((_git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no") or "").splitlines()),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([os.path.relpath(sys.argv[0])] + list(argv if argv is not None else sys.argv[1:])),
    }
    if device == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        meta["gpu_props"] = {"name": p.name, "total_memory": p.total_memory,
                             "multi_processor_count": p.multi_processor_count,
                             "capability": f"{p.major}.{p.minor}"}
    return meta


# ---------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------


def write_json(path: str, obj) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=str)
    os.replace(tmp, path)


def fmt_ms(s) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    ms = s * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    if ms >= 0.1:
        return f"{ms:.3f}"
    return f"{ms:.4f}"


def fmt_num(x, digits=3) -> str:
    """Three significant digits, no exponent below 1e6."""
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "-"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    dec = max(0, digits - 1 - mag)
    return f"{x:.{dec}f}"


def fmt_x(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def fmt_pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def fmt_bytes(b) -> str:
    if b is None:
        return "-"
    return f"{b / MB:.1f}" if b >= 0.1 * MB else f"{b / MB:.3f}"


def md_table(headers, rows) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


# ---------------------------------------------------------------------------
# main() scaffolding shared by the bench_*.py scripts
# ---------------------------------------------------------------------------


def start_run(args, benchmark: str, quick_note: str, busy_what: str = "multi-threaded CPU timings"):
    """Check ``--device``, apply ``--threads``, and open the results dict.

    Returns ``(results, notes, t_start)``; ``notes`` is ``results["notes"]`` with the
    ``--quick`` note and, when the 1-min load average is over half the logical CPUs,
    a busy-machine note.
    """
    import torch

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    results = {"schema": "gensample-bench/1", "benchmark": benchmark, "meta": metadata(device),
               "settings": dict(vars(args)), "notes": [], "records": []}
    notes = results["notes"]
    if args.quick:
        notes.append(quick_note)
    try:
        load1 = float((_read("/proc/loadavg") or "0").split()[0])
    except ValueError:
        load1 = 0.0
    if load1 > 0.5 * (os.cpu_count() or 1):
        notes.append(f"machine was busy at the start (1-min load average {load1:.2f} on {os.cpu_count()} "
                     f"logical CPUs): {busy_what} inflate badly when cores are shared; rerun quiet")
    return results, notes, t_start


def add_harness_args(ap) -> None:
    """The process and Runner options the gibbs/ais scripts share; see ``harness_defaults``."""
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--thp", action="store_true")
    ap.add_argument("--warm-cache", action="store_true")
    ap.add_argument("--block-time", type=float, default=None)
    ap.add_argument("--min-blocks", type=int, default=None)
    ap.add_argument("--max-blocks", type=int, default=None)
    ap.add_argument("--group-budget", type=float, default=None)


def harness_defaults(a, group_budget: float) -> None:
    """Fill the unset Runner options of ``add_harness_args`` (``--quick``: short blocks, 3 rounds)."""
    q = a.quick
    a.block_time = a.block_time or (0.02 if q else 0.2)
    a.min_blocks = a.min_blocks or (3 if q else 7)
    a.max_blocks = a.max_blocks or (3 if q else 30)
    a.group_budget = a.group_budget or (0.3 if q else group_budget)


def gemm_peak(results):
    """Best fp32 GEMM GFLOP/s among the run's ``ceilings.gemm`` records, or None."""
    best = None
    for n, r in ((results.get("ceilings") or {}).get("gemm") or {}).items():
        if r.get("times_s"):
            g = 2 * int(n) ** 3 / summarize(r["times_s"])["median_s"] / 1e9
            best = g if best is None else max(best, g)
    return best


def gemm_ceilings(runner: "Runner", device: str, quick: bool) -> dict:
    """``measure_ceilings``; with ``quick`` only one 1024 GEMM (the copy ceilings allocate 512 MB)."""
    if not quick:
        return measure_ceilings(runner, device, quick=quick)
    import torch

    a = torch.randn(1024, 1024, device=device)
    cc = torch.empty_like(a)
    r = time_single(runner, lambda: torch.mm(a, a, out=cc), "gemm 1024")
    r["GFLOPs"] = 2 * 1024 ** 3 / r["median_s"] / 1e9
    return {"copy": {}, "gemm": {"1024": r}}


def render_with_meta(results, body: str) -> str:
    """render.py's meta and ceilings sections, then ``body``, then the notes."""
    import render

    parts = [render.render_meta(results), render.render_ceilings(results), body, render.render_notes(results)]
    return "\n\n".join(p for p in parts if p) + "\n"


def make_runner(args, device: str) -> "Runner":
    return Runner(device=device, block_time=args.block_time, min_blocks=args.min_blocks,
                  max_blocks=args.max_blocks, group_budget=args.group_budget)


def run_sections(sections, handlers: dict, notes: list, err, log_times: bool = True) -> dict:
    """Run ``handlers[sec]()`` for each section; a failure becomes a note. Returns wall times."""
    import traceback

    sec_times = {}
    for sec in sections:
        t0 = time.perf_counter()
        try:
            if sec not in handlers:
                raise SystemExit(f"unknown section {sec!r}")
            handlers[sec]()
        except SystemExit:
            raise
        except Exception as e:
            log(traceback.format_exc())
            notes.append(f"section {sec} failed: {err(e)}")
        sec_times[sec] = time.perf_counter() - t0
        if log_times:
            log(f"== section {sec} took {sec_times[sec]:.1f} s")
    return sec_times


def copy_ceiling_end(runner: "Runner", device: str, results: dict) -> None:
    """The 256 MB copy again, to see drift over the run (render uses the larger of the two)."""
    import torch

    src = torch.randn(64 * MB, device=device)
    dst = torch.empty_like(src)
    r = time_single(runner, lambda: dst.copy_(src), "copy end")
    r["GBps"] = 2 * src.nbytes / r["median_s"] / GB
    results["ceilings_end"] = {"copy": {str(64 * MB): r}}
    del src, dst


def finish_meta(results: dict, t_start: float, sec_times: dict | None = None) -> None:
    if sec_times is not None:
        results["meta"]["section_wall_s"] = sec_times
    results["meta"]["total_wall_s"] = time.perf_counter() - t_start
    results["meta"]["loadavg_end"] = _read("/proc/loadavg")


def save_results(results: dict, json_arg: str, here: str, benchmark: str, device: str,
                 md_text: str | None = None):
    """Write the JSON (``--json auto``: results/<benchmark>-<device>-<slug>.json), and a .md beside it
    when ``md_text`` is given. Returns the path, or None when ``--json`` is empty."""
    path = json_arg
    if path == "auto":
        path = os.path.join(here, "results", f"{benchmark}-{device}-{device_slug(device)}.json")
    if path:
        write_json(path, results)
        if md_text is not None:
            md = os.path.splitext(path)[0] + ".md"
            with open(md, "w") as f:
                f.write(md_text)
            log(f"wrote {path} and {md}")
        else:
            log(f"wrote {path}")
    return path


def group_records(results: dict, section: str, key) -> dict:
    """The records of ``section`` grouped by ``key(record)``, in run order (empty when none)."""
    groups = {}
    for r in results.get("records", []):
        if r.get("section") == section:
            groups.setdefault(key(r), []).append(r)
    return groups


def inductor_warmup(device: str) -> float:
    """Compile a trivial function once, so the first case's compile time is not inflated by
    inductor's one-off start-up cost (recorded as meta.inductor_warmup_s); returns seconds."""
    import torch

    torch._dynamo.reset()
    t0 = time.perf_counter()
    try:
        torch.compile(lambda x: (x * 2.0).sum(), fullgraph=True, dynamic=False)(torch.ones(8, device=device))
    except Exception as e:
        log(f"inductor warm-up failed: {err_text(e)}")
    dt = time.perf_counter() - t0
    torch._dynamo.reset()
    log(f"== inductor warm-up compile {dt:.2f} s")
    return dt


def candidate_backends(device: str, notes: list, probe=None) -> list:
    """gensample backends to benchmark on ``device``: available by gensample's own dispatch
    rules, minus triton on CPU (the interpreter is a test harness), and, when ``probe`` is
    given, those for which ``probe(b)`` returns None (else its reason goes to ``notes``)."""
    import gensample
    from gensample import _backend

    out = []
    for b in gensample.BACKENDS:
        if b == "triton" and device == "cpu":
            notes.append("gensample backend `triton` skipped on cpu: on CPU tensors it runs under the Triton "
                         "interpreter (TRITON_INTERPRET=1), a test harness, not a benchmark")
            continue
        if (b == "cuda" and device == "cpu") or (b == "cpu" and device == "cuda"):
            continue  # the other device's kernels; nothing to say
        reason = _backend.unavailable_reason(b, device)
        if reason is None and probe is not None:
            reason = probe(b)
        if reason is not None:
            notes.append(f"gensample backend `{b}` skipped on {device}: {reason}")
            continue
        out.append(b)
    return out


def gibbs_probe(device: str, err, k: int = 1):
    """A ``candidate_backends`` probe: None if a backend runs ``gibbs_sweeps`` (``k`` sweeps)
    on a tiny input on ``device``, else ``err(exception)``."""
    import torch

    from gensample.ops import gibbs_sweeps

    def probe(b):
        try:
            v = torch.ones(3, 5, device=device)
            gibbs_sweeps(v, torch.zeros(5, 4, device=device), torch.zeros(5, device=device),
                         torch.zeros(4, device=device), k=k, backend=b)
        except Exception as e:
            return err(e)
        return None
    return probe


def err_text(e: BaseException, first_sentence: bool = True) -> str:
    """``Type: first line of the message`` (at most 300 chars; a long line cut to its first sentence)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if first_sentence and len(msg) > 160 and ". " in msg:  # e.g. NotImplementedError's long explanation
        msg = msg.split(". ")[0] + "."
    return f"{type(e).__name__}: {msg[:300]}"


def parse_sizes(s: str) -> list:
    """``"1K,64K,16M"`` -> element counts (K = 2^10, M = 2^20)."""
    out = []
    for tok in s.split(","):
        tok = tok.strip().upper()
        if not tok:
            continue
        mult = 1
        if tok.endswith("M"):
            mult, tok = 1 << 20, tok[:-1]
        elif tok.endswith("K"):
            mult, tok = 1 << 10, tok[:-1]
        out.append(int(tok) * mult)
    return out


def render_or_setup(args, render_all) -> None:
    """``--render FILE``: print ``render_all`` of that results JSON and exit; otherwise set
    up the process (threads, THP, cache) before the caller imports torch."""
    if args.render:
        with open(args.render) as f:
            print(render_all(json.load(f)), end="")
        raise SystemExit(0)
    early_env(threads=args.threads, thp=args.thp, warm_cache=args.warm_cache)
