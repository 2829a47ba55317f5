r"""Data for the command line: load, check for a model kind, split.

Sources (``--data``):

* ``FILE.npy``: a numeric array ``(N, D)`` or ``(N, H, W)`` (images; flattened to
  ``H*W`` features, the shape kept for pictures); read with ``allow_pickle=False``.
* ``FILE.pt``: a tensor of the same shapes, or a dict with one tensor under ``"data"``
  or ``"x"``; read with ``torch.load(weights_only=True)`` (never runs code).
* ``digits``: scikit-learn's bundled 8x8 digits (1797 images, no download), pixels
  scaled to [0, 1] by ``/ 16``.
* ``gmm``, ``ring``, ``banana``: 2-D toy data, exact draws (seeded) from
  :class:`gensample.targets.GaussianMixture.circle` (8 modes, radius 2, std 0.25),
  :class:`~gensample.targets.Ring`, :class:`~gensample.targets.Banana`.

:func:`check_for_model` checks what a model kind needs (binary values for a Bernoulli
RBM, with ``binarize`` as the offered fix; values in [0, 1] for the VAE's Bernoulli
decoder; finite values everywhere). Every problem is a :class:`DataError` naming the
source and the fix. :func:`split` makes a seeded train/test split.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

__all__ = ["BUILTIN", "DataError", "Dataset", "check_for_model", "load", "split"]

BUILTIN = ("digits", "gmm", "ring", "banana")
TOY_N = 4096  # points drawn for the 2-D toy sets


class DataError(ValueError):
    """Data that cannot be used; ``fix`` says what to do about it."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


@dataclass
class Dataset:
    """``x``: float32 ``(N, D)``; ``source``: what ``--data`` named; ``image_shape``: ``(H, W)``
    when the rows are images (for pictures), else None; ``binarized``: the threshold applied."""

    x: torch.Tensor
    source: str
    image_shape: tuple[int, int] | None = None
    binarized: float | None = None

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    def describe(self) -> dict:
        return {"source": self.source, "n_samples": int(self.x.shape[0]), "n_features": int(self.x.shape[1]),
                "image_shape": list(self.image_shape) if self.image_shape else None, "binarize": self.binarized}


def _digits() -> tuple[torch.Tensor, tuple[int, int]]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("--data digits needs scikit-learn (its bundled digits)",
                        "pip install scikit-learn, or pass your own FILE.npy") from None
    return torch.tensor(load_digits().data, dtype=torch.float32) / 16.0, (8, 8)


def _toy(name: str, seed: int) -> torch.Tensor:
    from . import targets

    t = {"gmm": lambda: targets.GaussianMixture.circle(8, 2.0, 0.25), "ring": lambda: targets.Ring(),
         "banana": lambda: targets.Banana()}[name]()
    return t.sample(TOY_N, generator=torch.Generator().manual_seed(seed)).float()


def _from_file(path: str) -> torch.Tensor:
    if not os.path.exists(path):
        raise DataError(f"data file {path} does not exist",
                        f"check the path, or use a built-in set: {', '.join(BUILTIN)}")
    if os.path.isdir(path):
        raise DataError(f"data file {path} is a directory", "pass a .npy or .pt file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        import numpy as np

        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise DataError(f"data file {path} is not a readable .npy array ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:100] if str(exc) else ''})",
                            "save it with numpy.save(path, array) (numeric, no object arrays)") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            raise DataError(f"data file {path} holds dtype {getattr(arr, 'dtype', type(arr).__name__)}, not numbers",
                            "save a numeric (bool, int or float) array")
        return torch.from_numpy(np.ascontiguousarray(arr).astype(np.float32, copy=False))
    if ext == ".pt":
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise DataError(f"data file {path} is not a readable torch file ({type(exc).__name__})",
                            "save a tensor with torch.save(tensor, path)") from None
        if isinstance(obj, dict):
            keys = [k for k in ("data", "x") if isinstance(obj.get(k), torch.Tensor)]
            if not keys:
                raise DataError(f"data file {path} holds a dict without a tensor under 'data' or 'x'",
                                "save the tensor itself, or {'data': tensor}")
            obj = obj[keys[0]]
        if not isinstance(obj, torch.Tensor):
            raise DataError(f"data file {path} holds a {type(obj).__name__}, not a tensor",
                            "save a tensor with torch.save(tensor, path)")
        if obj.is_complex():
            raise DataError(f"data file {path} holds dtype {obj.dtype}", "save a real (float, int or bool) tensor")
        return obj.detach().to(torch.float32)
    raise DataError(f"data file {path} has extension {ext or '(none)'!r}",
                    f"use a .npy or .pt file, or one of {', '.join(BUILTIN)}")


def load(source: str, *, seed: int = 0, binarize: float | None = None) -> Dataset:
    """Load ``source`` (a built-in name or a path) as float32 ``(N, D)`` rows.

    ``binarize``: threshold ``t``; values ``>= t`` become 1, others 0 (for Bernoulli RBMs)."""
    image_shape = None
    if source == "digits":
        x, image_shape = _digits()
    elif source in BUILTIN:
        x = _toy(source, seed)
    else:
        x = _from_file(source)
    if x.dim() == 3:
        image_shape = (int(x.shape[1]), int(x.shape[2]))
        x = x.reshape(x.shape[0], -1)
    elif x.dim() != 2:
        raise DataError(f"data {source} has shape {tuple(x.shape)}; expected (N, D) rows or (N, H, W) images",
                        "reshape it to (samples, features) before saving")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise DataError(f"data {source} has shape {tuple(x.shape)}; need at least 2 samples and 1 feature",
                        "pass a larger data set")
    if not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).any(1).sum())
        raise DataError(f"data {source} has NaN or infinite values in {n_bad} of {x.shape[0]} rows",
                        "drop or impute those rows")
    if image_shape is None:
        r = math.isqrt(x.shape[1])
        if r * r == x.shape[1] and r >= 4:
            image_shape = (r, r)
    if binarize is not None:
        if not math.isfinite(binarize):
            raise DataError(f"--binarize must be a finite threshold, got {binarize}", "e.g. --binarize 0.5")
        x = (x >= binarize).to(torch.float32)
    return Dataset(x.contiguous(), source, image_shape, binarize)


def check_for_model(ds: Dataset, kind: str, *, n_features: int | None = None) -> None:
    """Raise :class:`DataError` when ``ds`` does not suit a model of ``kind`` (``n_features``:
    the width the model was built with, e.g. when resuming)."""
    x = ds.x
    if n_features is not None and x.shape[1] != n_features:
        raise DataError(f"data {ds.source} has {x.shape[1]} features per sample but the model has {n_features} inputs",
                        "use the data the checkpoint was trained on (same number of columns)")
    if kind == "rbm":
        nonbin = (x != 0) & (x != 1)
        if bool(nonbin.any()):
            lo, hi = float(x.min()), float(x.max())
            mid = (lo + hi) / 2
            raise DataError(f"data {ds.source} is not binary ({int(nonbin.sum())} values outside {{0, 1}}, range "
                            f"[{lo:g}, {hi:g}]); a Bernoulli RBM needs 0/1 data",
                            f"add --binarize {mid:g} (values >= threshold become 1), or train a grbm")
    elif kind == "vae":
        if float(x.min()) < 0 or float(x.max()) > 1:
            raise DataError(f"data {ds.source} has values in [{float(x.min()):g}, {float(x.max()):g}]; the VAE's "
                            "Bernoulli decoder needs values in [0, 1]",
                            "rescale the data to [0, 1] (e.g. divide by the maximum), or add --binarize T")
    elif kind not in ("grbm", "ebm"):
        raise ValueError(f"unknown model kind {kind!r}")


def split(x: torch.Tensor, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded shuffle, then ``(train, test)``; ``test`` has ``round(test_fraction * N)`` rows
    (at least 1 when ``test_fraction > 0``, and train keeps at least 1)."""
    if not 0 <= test_fraction < 1:
        raise DataError(f"--test-fraction must be in [0, 1), got {test_fraction}", "e.g. --test-fraction 0.2")
    n = x.shape[0]
    n_test = 0 if test_fraction == 0 else min(n - 1, max(1, round(test_fraction * n)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    x = x[perm]
    return x[n_test:].contiguous(), x[:n_test].contiguous()
