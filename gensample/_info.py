"""``gensample.info()``: what is installed and which backends can run, and why not."""
from __future__ import annotations

import platform

import torch

from . import _backend, _ext


def info() -> dict:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out = {
        "gensample": __import__("gensample").__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "extension": {"loaded": _ext.loaded(), "error": _ext.error(), **_ext.build_info()},
        "backends": {},
        "default_backend": {},
    }
    try:
        import triton

        out["triton"] = triton.__version__
    except Exception:
        out["triton"] = None
    for dev in ("cpu", "cuda"):
        out["backends"][dev] = _backend.available(dev)
        if dev in devices:
            out["default_backend"][dev] = _backend.resolve(None, torch.device(dev))
    return out


def format_info(d: dict | None = None) -> str:
    d = d or info()
    lines = [
        f"gensample {d['gensample']}  torch {d['torch']}  triton {d['triton']}  python {d['python']}",
        f"CUDA device: {d['cuda_device'] or 'none'}   torch threads: {d['torch_threads']}",
        f"extension gensample._C: {'loaded' if d['extension']['loaded'] else 'not loaded'}"
        + (f" (cuda kernels: {d['extension'].get('cuda')})" if d["extension"]["loaded"] else ""),
    ]
    for dev, table in d["backends"].items():
        lines.append(f"backends for {dev} tensors" + (f" (default: {d['default_backend'][dev]})" if dev in d["default_backend"] else ""))
        for name, reason in table.items():
            lines.append(f"  {name:7s} {'available' if reason is None else 'unavailable: ' + reason}")
    return "\n".join(lines)
