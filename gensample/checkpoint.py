r"""Checkpoints of the command line's models: one format, atomic saves, safe loads.

A checkpoint is a ``torch.save`` of a plain dict (tensors, numbers, strings, lists, dicts;
nothing that needs code to rebuild)::

    {"format": "gensample-checkpoint/1", "gensample": "0.1.0",
     "kind": "rbm" | "grbm" | "vae" | "ebm",
     "config": {...},     # constructor keyword arguments of the model (see MODEL_KINDS)
     "state": {...},      # the model's state_dict
     "training": {...},   # optimiser / trainer state: a resumed run continues bit for bit
     "data": {...},       # where the data came from, its feature count and image shape
     "metrics": [...]}    # one dict per finished epoch

:func:`save` writes to a temporary file in the target directory and ``os.replace``\ s it
into place, so a checkpoint on disk is always complete. :func:`load` reads with
``torch.load(weights_only=True)`` (a checkpoint never executes code) and turns every way a
file can be wrong (missing, not a torch file, truncated, not a gensample checkpoint, a
newer format, the wrong model kind) into one :class:`CheckpointError` naming the file.

:data:`MODEL_KINDS` is the one place that maps a model kind to its constructor and to
the keyword arguments a checkpoint must carry; :func:`build_model` rebuilds a model from
a checkpoint.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import torch
from torch import nn

from ._fileio import atomic_write

FORMAT = "gensample-checkpoint/1"

__all__ = ["FORMAT", "MODEL_KINDS", "CheckpointError", "EnergyMLP", "build_model", "load", "load_model", "load_weights",
           "save"]


class CheckpointError(ValueError):
    """A checkpoint cannot be used; ``fix`` says what to do about it."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


class EnergyMLP(nn.Module):
    r"""The command line's energy model: an MLP :math:`E_\theta(x)` (SiLU, ``depth`` hidden
    layers of ``width`` units) on flattened inputs, one energy per sample (``(B,)``)."""

    def __init__(self, n_inputs: int, width: int = 64, depth: int = 2):
        super().__init__()
        if n_inputs < 1 or width < 1 or depth < 1:
            raise ValueError(f"EnergyMLP needs n_inputs, width, depth >= 1, got {n_inputs}, {width}, {depth}")
        self.n_inputs, self.width, self.depth = n_inputs, width, depth
        layers: list[nn.Module] = []
        d = n_inputs
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.SiLU()]
            d = width
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1)).squeeze(-1)


def _rbm(config: dict, device, backend):
    from .models import BernoulliRBM

    return BernoulliRBM(config["n_visible"], config["n_hidden"], device=device, backend=backend)


def _grbm(config: dict, device, backend):
    from .models import GaussianBernoulliRBM

    return GaussianBernoulliRBM(config["n_visible"], config["n_hidden"], sigma=config.get("sigma", 1.0),
                                learn_sigma=config.get("learn_sigma", False), device=device, backend=backend)


def _vae(config: dict, device, backend):
    from .models import VAE

    return VAE(config["n_inputs"], latent_dim=config["latent_dim"], hidden=config["hidden"], backend=backend).to(device)


def _ebm(config: dict, device, backend):
    return EnergyMLP(config["n_inputs"], width=config["width"], depth=config["depth"]).to(device)


# kind -> (description, constructor(config, device, backend), config keys a checkpoint must have)
MODEL_KINDS: dict[str, tuple[str, Callable[..., nn.Module], tuple[str, ...]]] = {
    "rbm": ("Bernoulli RBM (binary data)", _rbm, ("n_visible", "n_hidden")),
    "grbm": ("Gaussian-Bernoulli RBM (real-valued data)", _grbm, ("n_visible", "n_hidden", "sigma", "learn_sigma")),
    "vae": ("VAE with a Bernoulli decoder (data in [0, 1])", _vae, ("n_inputs", "latent_dim", "hidden")),
    "ebm": ("MLP energy-based model (Langevin negatives)", _ebm, ("n_inputs", "width", "depth")),
}


def build_model(kind: str, config: dict, *, device="cpu", backend: str | None = None) -> nn.Module:
    """A fresh model of ``kind`` from its constructor ``config``."""
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"unknown model kind {kind!r}", f"use one of {', '.join(MODEL_KINDS)}")
    return MODEL_KINDS[kind][1](config, device, backend)


def save(path: str | os.PathLike, *, kind: str, config: dict, state: dict, training: dict | None = None,
         data: dict | None = None, metrics: list | None = None) -> str:
    """Write a checkpoint atomically (temporary file in the same directory, then
    ``os.replace``); returns the path."""
    from . import __version__

    if kind not in MODEL_KINDS:
        raise ValueError(f"kind must be one of {tuple(MODEL_KINDS)}, got {kind!r}")
    obj = {"format": FORMAT, "gensample": __version__, "kind": kind, "config": dict(config),
           "state": {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in state.items()},
           "training": training or {}, "data": data or {}, "metrics": list(metrics or [])}
    def w(tmp):
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, w)


def load(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read and validate a checkpoint (``torch.load(weights_only=True)``, on the CPU).

    ``kind``: the model kind(s) the caller can use; anything else is a
    :class:`CheckpointError` (as is a missing, corrupted or foreign file)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist", "check the path (train writes DIR/checkpoint.pt)")
    if os.path.isdir(path):
        hint = os.path.join(path, "checkpoint.pt")
        raise CheckpointError(f"checkpoint {path} is a directory",
                              f"pass the file, e.g. {hint}" if os.path.exists(hint) else "pass a checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, pickled code refused by weights_only, ...
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if len(why) > 120:
            why = why[:117] + "..."
        raise CheckpointError(f"checkpoint {path} is corrupted or not a torch checkpoint ({type(exc).__name__}: {why})",
                              "re-run `gensample train` or point to an intact checkpoint.pt") from None
    if not isinstance(obj, dict) or "format" not in obj:
        raise CheckpointError(f"{path} is a torch file but not a gensample checkpoint",
                              "use a checkpoint written by `gensample train`")
    if obj["format"] != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {obj['format']!r}; this gensample reads {FORMAT!r}",
                              "re-train with this version of gensample")
    k = obj.get("kind")
    if k not in MODEL_KINDS:
        raise CheckpointError(f"checkpoint {path} holds an unknown model kind {k!r}",
                              f"use a checkpoint of one of {', '.join(MODEL_KINDS)}")
    missing = [n for n in ("config", "state", "training", "data", "metrics") if not isinstance(obj.get(n), (dict, list))]
    missing += [c for c in MODEL_KINDS[k][2] if c not in obj.get("config", {})]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete (missing {', '.join(missing)})",
                              "re-run `gensample train` to write a fresh checkpoint")
    if kind is not None:
        wanted = (kind,) if isinstance(kind, str) else tuple(kind)
        if k not in wanted:
            raise CheckpointError(f"checkpoint {path} holds a {k} model ({MODEL_KINDS[k][0]}), not {' or '.join(wanted)}",
                                  f"use `gensample train {k} --resume {path}`, or a {' or '.join(wanted)} checkpoint")
    return obj


def load_model(obj: dict, *, device="cpu", backend: str | None = None) -> nn.Module:
    """The model of a loaded checkpoint, with its weights (a state that does not fit the
    configuration is a :class:`CheckpointError`)."""
    return load_weights(build_model(obj["kind"], obj["config"], device=device, backend=backend), obj)


def load_weights(model: nn.Module, obj: dict) -> nn.Module:
    """Load a checkpoint's weights into ``model`` (built from its config); a state that does
    not fit is a :class:`CheckpointError`."""
    try:
        model.load_state_dict(obj["state"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint weights do not fit a {obj['kind']} model with {obj['config']} ({first})",
                              "the checkpoint is damaged; re-run `gensample train`") from None
    return model
