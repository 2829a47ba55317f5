"""Pictures for the demo, the command line and the docs (matplotlib, Agg, no display).

Every function draws on its own :class:`matplotlib.figure.Figure` (no ``pyplot``, so
the global matplotlib backend and any open figures of the caller are left alone) and
writes one PNG **atomically**: the file is written to a temporary name in the target
directory and renamed over ``path``, so a reader never sees half a picture and a failed
call leaves nothing behind. Each returns the path it wrote.

Inputs are torch tensors or numpy arrays (CPU or CUDA; copied to the host).
"""
from __future__ import annotations

import math
import os

from ._fileio import atomic_write

__all__ = ["image_grid", "rbm_filters", "reconstructions", "scatter_density", "bar_speedups", "save_figure"]


def _np(x):
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().to("cpu", dtype=torch.float64).numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    import numpy as np

    return np.asarray(x, dtype=np.float64)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def save_figure(fig, path: str) -> str:
    """Write ``fig`` as a PNG to ``path`` atomically (temp file + ``os.replace``)."""
    def w(tmp):
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png")

    return atomic_write(path, w, prefix=".tmp-", suffix=".png")


def _image_shape(n_pixels: int, shape):
    if shape is not None:
        h, w = shape
        if h * w != n_pixels:
            raise ValueError(f"shape {tuple(shape)} does not hold {n_pixels} pixels")
        return h, w
    s = math.isqrt(n_pixels)
    if s * s != n_pixels:
        raise ValueError(f"images of {n_pixels} pixels are not square; pass shape=(height, width)")
    return s, s


def _tile(images, nrow: int | None, shape, pad: float = 0.5):
    """``(N, H*W)`` or ``(N, H, W)`` -> one mosaic array with a ``pad``-valued 1-pixel border."""
    import numpy as np

    a = _np(images)
    if a.ndim == 3:
        n, h, w = a.shape
    elif a.ndim == 2:
        n = a.shape[0]
        h, w = _image_shape(a.shape[1], shape)
        a = a.reshape(n, h, w)
    else:
        raise ValueError(f"images must have shape (N, H*W) or (N, H, W), got {a.shape}")
    if n < 1:
        raise ValueError("images is empty")
    ncol = nrow if nrow is not None else math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncol)
    out = np.full((nrows * (h + 1) + 1, ncol * (w + 1) + 1), pad)
    for i in range(n):
        r, c = divmod(i, ncol)
        out[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = a[i]
    return out


def image_grid(images, path: str, *, ncol: int | None = None, shape=None, title: str | None = None,
               cmap: str = "gray_r", vmin: float = 0.0, vmax: float = 1.0) -> str:
    """A mosaic of images in ``[vmin, vmax]`` (default: ink on white for digits).

    ``images``: ``(N, H*W)`` (square unless ``shape=(H, W)``) or ``(N, H, W)``;
    ``ncol`` images per row (default ``ceil(sqrt(N))``).
    """
    m = _tile(images, ncol, shape, pad=vmin + 0.25 * (vmax - vmin))
    scale = 0.12
    fig = _figure(max(2.5, m.shape[1] * scale), max(2.5, m.shape[0] * scale + (0.4 if title else 0)))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.88 if title else 0.96))
    ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def rbm_filters(weight, path: str, *, shape=None, title: str | None = None) -> str:
    """The RBM's receptive fields: column ``j`` of ``weight`` ``(n_visible, n_hidden)`` as
    an image, on a diverging colour map symmetric about 0 (red positive, blue negative)."""
    w = _np(weight).T  # (n_hidden, n_visible)
    lim = float(abs(w).max()) or 1.0
    m = _tile(w, None, shape, pad=0.0)
    fig = _figure(max(3.0, m.shape[1] * 0.13 + 0.8), max(3.0, m.shape[0] * 0.13 + 0.5))
    ax = fig.add_axes((0.02, 0.02, 0.80, 0.86 if title else 0.94))
    im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_axis_off()
    cax = fig.add_axes((0.85, 0.1, 0.03, 0.7))
    fig.colorbar(im, cax=cax)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def reconstructions(originals, recons, path: str, *, shape=None, title: str | None = None) -> str:
    """Two rows: ``originals`` on top, their reconstructions below (``(N, H*W)`` each)."""
    import numpy as np

    a, b = _np(originals), _np(recons)
    if a.shape != b.shape:
        raise ValueError(f"originals {a.shape} and recons {b.shape} must have the same shape")
    n = a.shape[0]
    both = np.concatenate([a, b], 0)
    m = _tile(both, n, shape, pad=0.25)
    fig = _figure(max(3.0, m.shape[1] * 0.13 + 1.0), max(1.6, m.shape[0] * 0.13 + (0.5 if title else 0.1)))
    ax = fig.add_axes((0.12, 0.02, 0.86, 0.80 if title else 0.96))
    ax.imshow(m, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    h = (m.shape[0] - 1) / 2
    ax.set_yticks([h / 2, h + h / 2], ["data", "recon."], fontsize=8)
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def scatter_density(samples, energy, path: str, *, extent=None, title: str | None = None, grid: int = 200,
                    max_points: int = 4000) -> str:
    r"""2-D samples over the density :math:`p(x) \propto e^{-E(x)}` (filled contours).

    ``samples``: ``(N, 2)``; ``energy``: callable mapping a float64 torch tensor ``(M, 2)``
    to energies ``(M,)`` (e.g. a :mod:`gensample.targets` target); ``extent``:
    ``(xmin, xmax, ymin, ymax)`` (default: the samples' 0.5 %..99.5 % range, padded).
    At most ``max_points`` samples are drawn (evenly thinned).
    """
    import numpy as np
    import torch

    s = _np(samples)
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"samples must have shape (N, 2), got {s.shape}")
    if extent is None:
        lo, hi = np.quantile(s, 0.005, axis=0), np.quantile(s, 0.995, axis=0)
        pad = 0.15 * (hi - lo)
        extent = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    x0, x1, y0, y1 = extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, grid), np.linspace(y0, y1, grid))
    pts = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float64)
    with torch.no_grad():
        e = _np(energy(pts)).reshape(grid, grid)
    dens = np.exp(-(e - e.min()))
    fig = _figure(5.0, 4.6)
    ax = fig.add_axes((0.1, 0.1, 0.85, 0.8 if title else 0.85))
    ax.contourf(gx, gy, dens, levels=12, cmap="Blues")
    if s.shape[0] > max_points:
        s = s[np.linspace(0, s.shape[0] - 1, max_points).astype(int)]
    ax.scatter(s[:, 0], s[:, 1], s=2, c="tab:orange", alpha=0.5, linewidths=0)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def bar_speedups(labels, ratios, path: str, *, title: str | None = None, xlabel: str = "x faster than reference",
                 groups=None) -> str:
    """Horizontal bars of speed ratios (``ratio > 1``: gensample faster), log-scaled, with
    a line at 1. ``groups``: optional label per bar used to colour them."""
    import numpy as np

    labels = list(labels)
    r = np.asarray([float(x) for x in ratios])
    if len(labels) != r.shape[0] or not len(labels):
        raise ValueError("labels and ratios must be non-empty and of the same length")
    height = 1.0 + 0.28 * len(labels)
    fig = _figure(8.0, height)
    bottom, top = 0.6 / height, 0.4 / height if title else 0.15 / height
    ax = fig.add_axes((0.45, bottom, 0.52, 1.0 - bottom - top))
    colours = None
    if groups is not None:
        names = list(dict.fromkeys(groups))
        palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"]
        colours = [palette[names.index(g) % len(palette)] for g in groups]
    y = np.arange(len(labels))[::-1]
    ax.barh(y, r, color=colours or "tab:blue")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlim(min(0.5, float(r.min()) / 1.5), max(2.0, float(r.max()) * 2.5))
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    for yi, ri in zip(y, r):
        ax.text(ri, yi, f" {ri:.2f}x", va="center", fontsize=6)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
