r"""Fused Langevin-family steps: ULA / SGLD-style ``langevin_step``, MALA's
accept/reject, and a multi-tensor SGLD parameter update.

Convention: energies :math:`E(x)`, target :math:`p(x) \propto e^{-E(x)}`; chains are
dim 0 of ``x`` (``x`` of shape ``(C, *event)`` holds ``C`` chains). One step is

.. math::

    x' = \operatorname{clamp}\big(x - h_c\, \operatorname{clip}(\nabla E(x))
         + s_c\, \varepsilon,\ lo,\ hi\big), \qquad \varepsilon \sim \mathcal N(0, I),

with per-chain step :math:`h_c` and noise scale :math:`s_c` (default
:math:`s = \sqrt{2h}`, the unadjusted Langevin algorithm; image EBMs decouple them,
e.g. ``step_size=10, noise_scale=0.005``). Gradient clipping is elementwise
(``clip_mode="value"``: :math:`\min(\max(g, -c), c)`) or per chain
(``clip_mode="norm"``: :math:`g \cdot \min(1, c / \lVert g_c \rVert_2)`).

One kernel reads ``x`` and ``grad``, draws :math:`\varepsilon` in-kernel from
gensample's Philox stream (element ``i`` of ``x``, flat row-major, takes element ``i``
of the normal stream of the drawn seed pair) and writes ``x'`` (norm clipping adds one
per-chain reduction pass over ``grad``). Every operation is a separately rounded
float32 operation (no FMA), so the cpu, cuda, triton and torch backends agree bit for
bit (norm clipping: up to the order of the per-chain sum).

MALA: a proposal ``x' = langevin_step(x, grad, step_size=h)`` (no clip, no clamp,
:math:`s = \sqrt{2h}`), then :func:`mala_accept_` computes per chain

.. math::

    \log\alpha = E(x) - E(x') + \log q(x \mid x') - \log q(x' \mid x), \qquad
    \log q(b \mid a) = -\frac{\lVert b - a + h \nabla E(a) \rVert^2}{2 s^2},

accepts where :math:`u_c < e^{\min(\log\alpha, 0)}` and, in place, moves accepted
chains to the proposal's state, energy and gradient, with no host synchronization.

This file holds the public functions, their validation, the ``torch.library``
registrations (fake implementations for every backend) and the torch backend, the
executable specification of ``csrc/cpu/langevin_cpu.cpp``,
``csrc/cuda/langevin_cuda.cu`` and ``gensample/ops/langevin_triton.py``. The
per-element formulas live once in ``csrc/include/gensample/langevin.h``.

Op names (namespace ``gensample``): ``langevin_step``, ``langevin_step_``,
``mala_accept_``, ``sgld_step_`` (cpu/cuda kernels, dispatched by device); the same
names with ``_torch`` appended for the torch backend (``langevin_step__torch``,
``mala_accept__torch``, ``sgld_step__torch``) and ``_triton`` for the Triton backend.
None is differentiable: they are sampling updates, applied to detached tensors.

NaN policy: the ops never synchronize with the host, so a NaN gradient propagates
into the chain's state (and a NaN MALA ``log_alpha`` rejects). Detecting NaNs is the
sampler's job (:class:`gensample.LangevinSampler` checks once per run, not per step).
"""
from __future__ import annotations

import math
import struct
from typing import Optional, Sequence

import torch

from .. import _backend, _ext
from .. import random as _random
from .._checks import check_float_tensor as _check_float_tensor
from .._checks import check_real as _check_real
from . import _triton_loader

__all__ = ["langevin_step", "langevin_step_", "mala_accept_", "sgld_step_"]

CLIP_MODES = {"value": 1, "norm": 2}
_F32 = torch.float32


# ----------------------------------------------------------------------------
# torch backend: the executable specification
# ----------------------------------------------------------------------------
def _f32(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=_F32)


def _grad_norm(grad: torch.Tensor) -> torch.Tensor:
    """Per-chain L2 norm of (C, M) grad: float64 sum of squares, sqrt, float32."""
    return grad.double().square().sum(1).sqrt().float()


def _step_torch_impl(x, grad, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi, want_norm):
    if clip_mode not in (0, 1, 2):
        raise ValueError(f"clip_mode must be 0 (none), 1 (value) or 2 (norm), got {clip_mode}")
    C, M = x.shape
    need_norm = want_norm or clip_mode == 2
    norm = _grad_norm(grad) if need_norm else x.new_empty((0,))
    g = grad
    if clip_mode == 1:
        c = float(_f32(grad_clip))
        g = g.clamp(-c, c)
    elif clip_mode == 2:
        c = _f32(grad_clip).to(x.device)
        scale = torch.where(norm > c, c / norm, torch.ones_like(norm))
        g = g * scale[:, None]
    d = step_size[:, None] * g
    y = x - d
    eps = _random.normal_stream(seed, C * M).view(C, M)
    y = y + noise_scale[:, None] * eps
    if not (clamp_lo == -math.inf and clamp_hi == math.inf):
        y = y.clamp(clamp_lo, clamp_hi)
    return y.contiguous(), norm


@torch.library.custom_op("gensample::langevin_step_torch", mutates_args=())
def _step_torch(x: torch.Tensor, grad: torch.Tensor, step_size: torch.Tensor, noise_scale: torch.Tensor,
                seed: torch.Tensor, grad_clip: float, clip_mode: int, clamp_lo: float, clamp_hi: float,
                want_norm: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return _step_torch_impl(x, grad, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi,
                            want_norm)


@torch.library.custom_op("gensample::langevin_step__torch", mutates_args=("x",))
def _step_inplace_torch(x: torch.Tensor, grad: torch.Tensor, step_size: torch.Tensor, noise_scale: torch.Tensor,
                        seed: torch.Tensor, grad_clip: float, clip_mode: int, clamp_lo: float, clamp_hi: float,
                        want_norm: bool) -> torch.Tensor:
    y, norm = _step_torch_impl(x, grad, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi,
                               want_norm)
    x.copy_(y)
    return norm


def _mala_torch_impl(x, grad, energy, x_prop, grad_prop, energy_prop, step_size, noise_scale, seed):
    C = x.shape[0]
    h = step_size[:, None]
    diff = x_prop - x
    fwd = diff + h * grad  # residual of log q(x' | x)
    bwd = h * grad_prop - diff  # residual of log q(x | x') = x - x' + h g'
    s_fwd = fwd.double().square().sum(1)
    s_bwd = bwd.double().square().sum(1)
    s = noise_scale.double()
    log_alpha = ((energy.double() - energy_prop.double()) + (s_fwd - s_bwd) / (2.0 * (s * s))).float()
    u = _random.uniform_stream(seed, C)
    accepted = u < torch.exp(log_alpha.clamp(max=0.0))  # NaN log_alpha rejects
    return accepted, log_alpha


@torch.library.custom_op("gensample::mala_accept__torch", mutates_args=("x", "grad", "energy"))
def _mala_torch(x: torch.Tensor, grad: torch.Tensor, energy: torch.Tensor, x_prop: torch.Tensor,
                grad_prop: torch.Tensor, energy_prop: torch.Tensor, step_size: torch.Tensor,
                noise_scale: torch.Tensor, seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    accepted, log_alpha = _mala_torch_impl(x, grad, energy, x_prop, grad_prop, energy_prop, step_size,
                                           noise_scale, seed)
    a = accepted[:, None]
    x.copy_(torch.where(a, x_prop, x))
    grad.copy_(torch.where(a, grad_prop, grad))
    energy.copy_(torch.where(accepted, energy_prop, energy))
    return accepted, log_alpha


def sgld_bases(numels: Sequence[int]) -> list[int]:
    """Stream base of each tensor of an SGLD list: ``base_k = sum_{j<k} ceil4(numel_j)``."""
    out, b = [], 0
    for n in numels:
        out.append(b)
        b += (int(n) + 3) // 4 * 4
    return out


def _sgld_torch_impl(params, grads, lr, noise_scale, weight_decay, seed):
    lr_t, ns_t, wd_t = _f32(lr), _f32(noise_scale), _f32(weight_decay)
    for p, g, base in zip(params, grads, sgld_bases([p.numel() for p in params])):
        # base is a multiple of 4: the tensor starts at lane 0 of counter offset + base / 4
        sk = seed + torch.tensor([0, base // 4], dtype=torch.int64, device=seed.device)
        eps = _random.normal_stream(sk, p.numel()).view(p.shape)
        t = wd_t.to(p.device) * p
        g2 = g + t
        d = lr_t.to(p.device) * g2
        th = p - d
        th = th + ns_t.to(p.device) * eps
        p.copy_(th)


@torch.library.custom_op("gensample::sgld_step__torch", mutates_args=("params",))
def _sgld_torch(params: list[torch.Tensor], grads: list[torch.Tensor], lr: float, noise_scale: float,
                weight_decay: float, seed: torch.Tensor) -> None:
    _sgld_torch_impl(params, grads, lr, noise_scale, weight_decay, seed)


# ----------------------------------------------------------------------------
# registration: fake implementations (shapes only)
# ----------------------------------------------------------------------------
def _norm_shape(x, clip_mode, want_norm):
    return (x.shape[0],) if (want_norm or clip_mode == 2) else (0,)


def _fake_step(x, grad, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi, want_norm):
    return torch.empty_like(x, memory_format=torch.contiguous_format), x.new_empty(_norm_shape(x, clip_mode, want_norm))


def _fake_step_(x, grad, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi, want_norm):
    return x.new_empty(_norm_shape(x, clip_mode, want_norm))


def _fake_mala(x, grad, energy, x_prop, grad_prop, energy_prop, step_size, noise_scale, seed):
    C = x.shape[0]
    return x.new_empty((C,), dtype=torch.bool), x.new_empty((C,))


def _fake_sgld(params, grads, lr, noise_scale, weight_decay, seed):
    return None


_FAKES = {"langevin_step": _fake_step, "langevin_step_": _fake_step_, "mala_accept_": _fake_mala,
          "sgld_step_": _fake_sgld}


def _register_fakes(suffix: str) -> None:
    for name, fake in _FAKES.items():
        if hasattr(torch.ops.gensample, name + suffix):
            torch.library.register_fake(f"gensample::{name}{suffix}")(fake)


_register_fakes("_torch")
if _ext.loaded():
    _register_fakes("")  # C++ ops (a stale build without them registers nothing)
# triton_op derives its fake implementation by tracing the launcher.


def _op(name: str, backend: str):
    if backend == "torch":
        return getattr(torch.ops.gensample, name + "_torch")
    if backend == "triton":
        _triton_loader.require()
        full = name + "_triton"
    else:
        full = name  # cpu and cuda: dispatched by device
    if not hasattr(torch.ops.gensample, full):
        raise _backend.BackendUnavailableError(
            f"backend={backend!r} has no gensample::{full} kernel in this build "
            "(rebuild the extension, or use backend='torch')")
    return getattr(torch.ops.gensample, full)


# ----------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------
def _compiling() -> bool:
    return torch.compiler.is_compiling()


def _check_values(name: str, t: torch.Tensor) -> None:
    """Value check (finite, >= 0) of a per-chain tensor: eager CPU only (elsewhere it
    would synchronize with the device, or break a compiled graph)."""
    if _compiling() or t.device.type != "cpu" or t.numel() == 0:
        return
    mn, mx = torch.aminmax(t)  # a NaN entry makes both NaN
    if not (float(mn) >= 0 and float(mx) < math.inf):
        bad = ~(torch.isfinite(t) & (t >= 0))
        raise ValueError(f"{name} must be finite and >= 0 for every chain, got {int(bad.sum())} bad "
                         f"entr{'y' if int(bad.sum()) == 1 else 'ies'} (first at chain {int(bad.nonzero()[0, 0])})")


# (C,) tensors of repeated numbers, reused across calls (eager only): a sampler calls
# the step with the same scalar step size thousands of times.
_FULL_CACHE: dict = {}


def _full(C: int, v: float, device: torch.device) -> torch.Tensor:
    if _compiling() or (device.type == "cuda" and torch.cuda.is_current_stream_capturing()):
        return torch.full((C,), v, dtype=_F32, device=device)
    key = (C, v, device)
    t = _FULL_CACHE.get(key)
    if t is None:
        if len(_FULL_CACHE) >= 64:
            _FULL_CACHE.clear()
        with torch.inference_mode(False), torch.no_grad():
            t = torch.full((C,), v, dtype=_F32, device=device)
        _FULL_CACHE[key] = t
    return t


def _round_f32(v: float) -> float:
    return struct.unpack("f", struct.pack("f", v))[0]


def _per_chain(name: str, v, C: int, device: torch.device, *, positive: bool) -> tuple[torch.Tensor, float | None]:
    """A per-chain float32 (C,) tensor from a number or a tensor; also the number
    rounded to float32 (None for a tensor)."""
    if isinstance(v, torch.Tensor):
        if v.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise TypeError(f"{name} must be a float or a floating tensor of shape (C,) = ({C},), got dtype {v.dtype}")
        if v.device != device:
            raise ValueError(f"{name} is on {v.device} but x is on {device}; put them on one device")
        if v.dim() == 0:
            v = v.expand(C)
        if tuple(v.shape) != (C,):
            raise ValueError(f"{name} must be a number or a tensor of shape (C,) = ({C},) (one value per chain, "
                             f"chains are dim 0 of x), got shape {tuple(v.shape)}")
        t = v.detach()
        if t.dtype != _F32:
            t = t.to(_F32)
        if not t.is_contiguous():
            t = t.contiguous()
        # tensor entries may be 0 (a frozen chain); numbers must be > 0 for step_size
        _check_values(name, t)
        return t, None
    f = _round_f32(_check_real(name, v, positive=positive, nonneg=not positive))
    return _full(C, f, device), f


def _default_noise(h: torch.Tensor, h_num: float | None, C: int, device: torch.device) -> torch.Tensor:
    """sqrt(2 h) correctly rounded to float32 (the float64 sqrt of the exact float32 2h)."""
    if h_num is not None:
        return _full(C, _round_f32(math.sqrt(2.0 * h_num)), device)
    return (h.double() * 2.0).sqrt().float()


def _resolve_clip(grad_clip, clip_mode) -> tuple[int, float]:
    if not isinstance(clip_mode, str) or clip_mode not in CLIP_MODES:
        raise ValueError(f"clip_mode must be one of {tuple(CLIP_MODES)}, got {clip_mode!r}")
    if grad_clip is None:
        return 0, 0.0
    c = _check_real("grad_clip", grad_clip, positive=True)
    return CLIP_MODES[clip_mode], c


def _resolve_clamp(clamp) -> tuple[float, float]:
    if clamp is None:
        return -math.inf, math.inf
    try:
        lo, hi = clamp
    except (TypeError, ValueError):
        raise ValueError(f"clamp must be None or a pair (lo, hi), got {clamp!r}") from None
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    for nm, v in (("clamp[0] (lo)", lo), ("clamp[1] (hi)", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise ValueError(f"{nm} must be a real number or None, got {v!r}")
    lo, hi = float(lo), float(hi)
    if not lo < hi:
        raise ValueError(f"clamp must be (lo, hi) with lo < hi, got {clamp!r}")
    return lo, hi


def _check_seed(seed, device) -> torch.Tensor:
    if not isinstance(seed, torch.Tensor) or seed.dtype != torch.int64 or tuple(seed.shape) != (2,):
        raise ValueError("seed must be an int64 tensor of shape (2,) holding (seed, offset) "
                         "(see gensample.random.seed_pair / substream)")
    if seed.device != device:
        raise ValueError(f"seed is on {seed.device} but the data is on {device}; put it on the data's device")
    return seed


def _get_seed(seed, generator, device) -> torch.Tensor:
    if seed is not None:
        if generator is not None:
            raise ValueError("pass either seed or generator, not both")
        return _check_seed(seed, device)
    return _random.draw_seed(generator, device)


def _check_pair(x: torch.Tensor, grad: torch.Tensor, xname: str = "x", gname: str = "grad") -> None:
    _check_float_tensor(xname, x, like=xname)
    _check_float_tensor(gname, grad, x.dtype, x.device, like=xname)
    if grad.shape != x.shape:
        raise ValueError(f"{gname} must have exactly {xname}'s shape {tuple(x.shape)}, got {tuple(grad.shape)}")
    if x.dim() < 1:
        raise ValueError(f"{xname} must have at least one dimension (chains are dim 0), got a 0-dim tensor")


def _as_f32_2d(t: torch.Tensor, C: int, M: int) -> torch.Tensor:
    """A float32 contiguous (C, M) tensor with t's values (a view of t when possible)."""
    if t.requires_grad:
        t = t.detach()
    if t.dtype != _F32:
        t = t.to(_F32)
    if not t.is_contiguous():
        t = t.contiguous()
    return t if t.dim() == 2 else t.view(C, M)


def _writable_f32_2d(t: torch.Tensor, C: int, M: int) -> tuple[torch.Tensor, bool]:
    """(buffer, is_view): a float32 contiguous (C, M) view of t, or a copy to write back."""
    if t.dtype == _F32 and t.is_contiguous():
        t = t.detach() if t.requires_grad else t
        return (t if t.dim() == 2 else t.view(C, M)), True
    return t.detach().to(_F32).contiguous().view(C, M), False


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------
def _prepare(x, grad, step_size, noise_scale, grad_clip, clip_mode, clamp, generator, seed):
    _check_pair(x, grad)
    C = x.shape[0]
    M = math.prod(x.shape[1:])
    h, h_num = _per_chain("step_size", step_size, C, x.device, positive=True)
    if noise_scale is None:
        s = _default_noise(h, h_num, C, x.device)
    else:
        s, _ = _per_chain("noise_scale", noise_scale, C, x.device, positive=False)
    mode, clip = _resolve_clip(grad_clip, clip_mode)
    lo, hi = _resolve_clamp(clamp)
    sd = _get_seed(seed, generator, x.device)
    return C, M, h, s, mode, clip, lo, hi, sd


def langevin_step(
    x: torch.Tensor,
    grad: torch.Tensor,
    *,
    step_size: float | torch.Tensor,
    noise_scale: float | torch.Tensor | None = None,
    grad_clip: float | None = None,
    clip_mode: str = "value",
    clamp: tuple[float | None, float | None] | None = None,
    return_grad_norm: bool = False,
    generator: torch.Generator | None = None,
    backend: str | None = None,
    out: torch.Tensor | None = None,
    seed: torch.Tensor | None = None,
):
    r"""One fused Langevin step :math:`x' = \mathrm{clamp}(x - h\,\mathrm{clip}(g) + s\,\varepsilon)`.

    Equivalent to (one pass over memory instead of 5 to 7 eager ops)::

        g = grad.clamp(-grad_clip, grad_clip)            # clip_mode="value"
        x_new = x - step_size * g + noise_scale * torch.randn_like(x)
        x_new = x_new.clamp(lo, hi)                      # clamp=(lo, hi)

    Args:
        x: chain states, shape ``(C, *event)`` (``C`` chains along dim 0); float16,
            bfloat16, float32 or float64 (math in float32; the result has x's dtype).
        grad: :math:`\nabla E(x)`, exactly ``x``'s shape, dtype and device.
        step_size: :math:`h`, a number > 0 or a float tensor of shape ``(C,)`` (one step per
            chain, e.g. from step-size adaptation; entries >= 0, 0 freezes the drift).
        noise_scale: :math:`s`, a number >= 0 or a ``(C,)`` tensor; default
            :math:`\sqrt{2h}` (true Langevin). ``0`` gives gradient descent.
        grad_clip: clip threshold :math:`c > 0`; ``None`` (default) does not clip.
        clip_mode: ``"value"`` (elementwise :math:`\min(\max(g, -c), c)`) or ``"norm"``
            (per chain: :math:`g \cdot c / \lVert g_c\rVert` where :math:`\lVert g_c\rVert > c`).
        clamp: ``(lo, hi)`` bounds of the state (either may be ``None``), ``lo < hi``.
        return_grad_norm: also return the per-chain L2 norm of the raw ``grad``
            (float32 ``(C,)``), computed in the same pass.
        generator: source of the seed (default: the global generator of x's device).
        backend: ``None`` (fastest available), ``"triton"``, ``"cuda"``, ``"cpu"`` or ``"torch"``.
        out: optional tensor of x's shape, dtype and device to write the result into
            (``out=x`` updates in place).
        seed: explicit seed pair (int64 ``(2,)`` on x's device, e.g. from
            :func:`gensample.random.substream`) instead of drawing one from ``generator``.

    Returns:
        ``x'`` (or ``out``), or ``(x', grad_norm)`` with ``return_grad_norm=True``.

    The noise of element ``i`` of ``x`` (flat row-major) is element ``i`` of the normal
    stream of the seed pair. The op does not synchronize with the host: NaNs in
    ``grad`` propagate into ``x'`` (NaN detection is the sampler's job, once per run).
    Tensor step sizes are value-checked only for eager CPU tensors (elsewhere a check
    would synchronize).
    """
    C, M, h, s, mode, clip, lo, hi, sd = _prepare(x, grad, step_size, noise_scale, grad_clip, clip_mode, clamp,
                                                  generator, seed)
    if out is not None:
        _check_float_tensor("out", out, x.dtype, x.device, like="x")
        if out.shape != x.shape:
            raise ValueError(f"out must have x's shape {tuple(x.shape)}, got {tuple(out.shape)}")
        if out is x:
            return langevin_step_(x, grad, step_size=h, noise_scale=s, grad_clip=grad_clip, clip_mode=clip_mode,
                                  clamp=clamp, return_grad_norm=return_grad_norm, backend=backend, seed=sd)
    b = _backend.resolve(backend, x.device)
    y, norm = _op("langevin_step", b)(_as_f32_2d(x, C, M), _as_f32_2d(grad, C, M), h, s, sd, clip, mode, lo, hi,
                                      bool(return_grad_norm))
    y = y.view(x.shape)
    if out is not None:
        out.copy_(y)
        y = out
    elif y.dtype != x.dtype:
        y = y.to(x.dtype)
    return (y, norm) if return_grad_norm else y


def langevin_step_(
    x: torch.Tensor,
    grad: torch.Tensor,
    *,
    step_size: float | torch.Tensor,
    noise_scale: float | torch.Tensor | None = None,
    grad_clip: float | None = None,
    clip_mode: str = "value",
    clamp: tuple[float | None, float | None] | None = None,
    return_grad_norm: bool = False,
    generator: torch.Generator | None = None,
    backend: str | None = None,
    seed: torch.Tensor | None = None,
):
    r"""In-place :func:`langevin_step`: writes :math:`x'` into ``x`` and returns ``x``
    (or ``(x, grad_norm)``). Same arguments and numbers as :func:`langevin_step`; for
    float32 contiguous ``x`` no other full-size buffer is allocated."""
    C, M, h, s, mode, clip, lo, hi, sd = _prepare(x, grad, step_size, noise_scale, grad_clip, clip_mode, clamp,
                                                  generator, seed)
    b = _backend.resolve(backend, x.device)
    buf, is_view = _writable_f32_2d(x, C, M)
    norm = _op("langevin_step_", b)(buf, _as_f32_2d(grad, C, M), h, s, sd, clip, mode, lo, hi,
                                    bool(return_grad_norm))
    if not is_view:
        x.detach().copy_(buf.view(x.shape))
    return (x, norm) if return_grad_norm else x


def mala_accept_(
    x: torch.Tensor,
    grad: torch.Tensor,
    energy: torch.Tensor,
    x_prop: torch.Tensor,
    grad_prop: torch.Tensor,
    energy_prop: torch.Tensor,
    *,
    step_size: float | torch.Tensor,
    generator: torch.Generator | None = None,
    backend: str | None = None,
    seed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""MALA accept/reject, in place: accepted chains take the proposal's state,
    gradient and energy.

    .. math::

        \log\alpha_c = E(x_c) - E(x'_c) + \frac{\lVert x'_c - x_c + h g_c\rVert^2
            - \lVert x_c - x'_c + h g'_c\rVert^2}{2 s_c^2}, \qquad s_c = \sqrt{2 h_c},

    accept iff :math:`u_c < e^{\min(\log\alpha_c, 0)}` with :math:`u_c` element ``c`` of
    the uniform stream of the seed pair (squared norms summed in float64). A NaN
    :math:`\log\alpha` (e.g. a NaN proposal energy) rejects.

    Args:
        x, grad: current states and :math:`\nabla E(x)`, shape ``(C, *event)``; updated in place.
        energy: :math:`E(x)`, shape ``(C,)``; updated in place.
        x_prop, grad_prop, energy_prop: the proposal (from ``langevin_step(x, grad,
            step_size=h)`` with the default noise), its gradient and energy; same shapes,
            dtypes and device.
        step_size: :math:`h` of the proposal, a number > 0 or a ``(C,)`` tensor.
        generator, backend, seed: as in :func:`langevin_step` (the sampler passes
            ``substream(seed, 2t + 1)`` for step ``t``'s accept draw).

    Returns:
        ``(accepted, log_alpha)``: bool ``(C,)`` and float32 ``(C,)``; no host sync.
    """
    _check_pair(x, grad)
    _check_pair(x, x_prop, "x", "x_prop")
    _check_pair(x, grad_prop, "x", "grad_prop")
    C = x.shape[0]
    M = math.prod(x.shape[1:])
    for nm, e in (("energy", energy), ("energy_prop", energy_prop)):
        _check_float_tensor(nm, e, None, x.device, like="x")
        if tuple(e.shape) != (C,):
            raise ValueError(f"{nm} must have shape (C,) = ({C},) (one energy per chain), got {tuple(e.shape)}")
    h, h_num = _per_chain("step_size", step_size, C, x.device, positive=True)
    s = _default_noise(h, h_num, C, x.device)
    sd = _get_seed(seed, generator, x.device)
    b = _backend.resolve(backend, x.device)
    xb, xv = _writable_f32_2d(x, C, M)
    gb, gv = _writable_f32_2d(grad, C, M)
    eb, ev = _writable_f32_2d(energy, C, 1)
    accepted, log_alpha = _op("mala_accept_", b)(xb, gb, eb.view(C), _as_f32_2d(x_prop, C, M),
                                                 _as_f32_2d(grad_prop, C, M),
                                                 energy_prop.detach().to(_F32).contiguous(), h, s, sd)
    for t, buf, view in ((x, xb, xv), (grad, gb, gv), (energy, eb, ev)):
        if not view:
            t.detach().copy_(buf.view(t.shape))
    return accepted, log_alpha


def sgld_step_(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    *,
    lr: float,
    noise_scale: float,
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
    backend: str | None = None,
    seed: torch.Tensor | None = None,
) -> None:
    r"""SGLD over a list of tensors, in place, in one fused launch:
    :math:`\theta \leftarrow \theta - \mathrm{lr}\,(g + \mathrm{wd}\,\theta) + \sigma\varepsilon`
    (each operation rounded separately in float32).

    With :math:`\sigma = \sqrt{2\,\mathrm{lr}\,T}` and ``g`` the gradient of the
    energy (negative log posterior), the chain samples :math:`e^{-E/T}`
    (:class:`gensample.optim.SGLD` sets this up). Element ``e`` of tensor ``k`` takes
    element ``base_k + e`` of the normal stream, ``base_k`` = sum of the previous
    tensors' sizes, each rounded up to a multiple of 4 (see :func:`sgld_bases`).

    Args:
        params: tensors to update (floating, one device); non-float32 or non-contiguous
            ones are updated through a float32 copy.
        grads: their gradients, same shapes, dtypes and device.
        lr: step size > 0. noise_scale: :math:`\sigma \ge 0`. weight_decay: >= 0.
        generator, backend, seed: as in :func:`langevin_step`.
    """
    params, grads = list(params), list(grads)
    if len(params) != len(grads):
        raise ValueError(f"params and grads must have the same length, got {len(params)} and {len(grads)}")
    lr = _check_real("lr", lr, positive=True)
    noise_scale = _check_real("noise_scale", noise_scale, nonneg=True)
    weight_decay = _check_real("weight_decay", weight_decay, nonneg=True)
    if not params:
        return None
    device = params[0].device if isinstance(params[0], torch.Tensor) else None
    for k, (p, g) in enumerate(zip(params, grads)):
        _check_float_tensor(f"params[{k}]", p, None, device, like="params[0]")
        _check_float_tensor(f"grads[{k}]", g, p.dtype, p.device, like=f"params[{k}]")
        if g.shape != p.shape:
            raise ValueError(f"grads[{k}] must have exactly params[{k}]'s shape {tuple(p.shape)}, got {tuple(g.shape)}")
    sd = _get_seed(seed, generator, device)
    b = _backend.resolve(backend, device)
    bufs, views = [], []
    for p in params:
        n = p.numel()
        buf, view = _writable_f32_2d(p, 1, n)
        bufs.append(buf.view(p.shape))
        views.append(view)
    gs = [g.detach().to(_F32).contiguous() for g in grads]
    _op("sgld_step_", b)(bufs, gs, lr, noise_scale, weight_decay, sd)
    for p, buf, view in zip(params, bufs, views):
        if not view:
            p.detach().copy_(buf)
    return None
