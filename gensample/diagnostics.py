"""MCMC diagnostics on torch tensors: autocorrelation, ESS, R-hat, streaming accumulators.

Draws are laid out as ``(chains, draws, *event)``; every event entry is diagnosed
independently and all of them at once (no Python loop over entries). Results have shape
``event`` (a 0-dim tensor for scalar chains), dtype float64, on the input's device.

Two routes compute the same numbers (tested against each other and against ArviZ):

* CPU tensors with the extension built: the C++ kernels ``gensample::diag_rank_summary``
  and ``gensample::diag_mean_acov`` (csrc/cpu/diagnostics_cpu.cpp), parallel over event
  entries: one LSD radix sort per entry (float32 or float64 keys, with positions), ranks
  and average ranks for ties from one walk over the sorted draws, the folded ranks from a
  merge of the two sorted runs of ``|x - median|`` (no second sort), the quantile
  indicators as bitsets with popcount autocovariances (exact), and the real-valued series'
  autocovariances summed directly only up to the lag where Geyer's sequence stops (rows
  that need more lags than ``_DIRECT_LAGS`` take the FFT). All in float64.
* anything else (other devices, no extension, ``USE_EXTENSION = False``): pure PyTorch,
  device-agnostic: ``torch.sort`` for the ranks (shared by the bulk ranks, the median,
  the folded ranks' cheap stable re-sort and the tail quantiles), GEMMs for the first
  lags and the FFT for the rest, float64.

The batch functions follow Vehtari, Gelman, Simpson, Carpenter & Burkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for assessing
convergence of MCMC", Bayesian Analysis 16(2), exactly as ArviZ (``arviz_stats.base``)
implements them:

* split chains: each chain's first and last ``floor(N/2)`` draws become two chains (the
  middle draw of an odd-length chain is dropped);
* rank normalization: fractional ("average") ranks ``r`` over all ``S`` split draws, then
  ``z = Phi^-1((r - 3/8) / (S + 1/4))`` (Blom's offset);
* ESS: the multi-chain autocorrelation estimate
  ``rho_t = 1 - (W - mean_chains(acov_t)) / var_plus`` with ``W`` the mean within-chain
  variance and ``var_plus = W (n-1)/n + B/n``, Geyer's initial positive sequence (sum pairs
  ``P_k = rho_2k + rho_2k+1`` while they are positive) made monotone (running minimum of the
  pairs), ``tau = -1 + 2 sum_{k<K} P_k + rho_2K^+``, ``tau >= 1/log10(S)`` (so
  ``ESS = S / tau <= S log10 S``);
* R-hat: ``sqrt(((n-1)/n W + B/n) / W)`` on split, rank-normalized chains, and the maximum
  of the bulk value and the value for the folded draws ``|x - median(x)|``.

Streaming accumulators (``RunningMoments``, ``StreamingAutocovariance``) are updated with
one draw ``(chains, *event)`` (or a block of draws) at a time using tensor ops only: no
``.item()``, no host synchronization, so they can ride along a running sampler on a GPU.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from . import _ext

__all__ = [
    "autocovariance",
    "autocorrelation",
    "integrated_autocorr_time",
    "ess",
    "rhat",
    "mcse_mean",
    "summary",
    "RunningMoments",
    "StreamingAutocovariance",
    "ESS_METHODS",
    "RHAT_METHODS",
    "MIN_DRAWS",
]

ESS_METHODS = ("bulk", "tail", "mean", "sd", "quantile", "median", "identity", "z_scale", "folded")
RHAT_METHODS = ("rank", "split", "identity", "folded", "z_scale")
#: Minimum draws per chain: split chains need at least 2 draws per half (ArviZ's minimum).
MIN_DRAWS = 4
_F64 = torch.float64
_RESOLUTION = 1e-15  # numpy.finfo(float).resolution: "constant chain" threshold of ArviZ


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------


def _stack_chains(x, name):
    """A list/tuple of per-chain tensors (draws, *event) -> one (chains, draws, *event)."""
    if len(x) == 0:
        raise ValueError(f"{name} is an empty sequence; expected one tensor per chain")
    for i, c in enumerate(x):
        if not isinstance(c, torch.Tensor):
            raise TypeError(f"{name}[{i}] must be a torch.Tensor, got {type(c).__name__}")
    shape0 = tuple(x[0].shape)
    for i, c in enumerate(x):
        if tuple(c.shape) != shape0:
            raise ValueError(f"chains have mismatched shapes: {name}[0] has shape {shape0} but {name}[{i}] "
                             f"has shape {tuple(c.shape)}; every chain must be (draws, *event) with the "
                             "same draws and event shape")
        if c.device != x[0].device:
            raise ValueError(f"{name}[{i}] is on {c.device} but {name}[0] is on {x[0].device}")
    return torch.stack(list(x))


def _check_chains(x, name="x", *, min_draws=MIN_DRAWS, min_chains=1, what="this diagnostic",
                  check_finite=True):
    """Validate draws ``(chains, draws, *event)`` and return them as a tensor (not copied)."""
    if isinstance(x, (list, tuple)):
        x = _stack_chains(x, name)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (chains, draws, *event), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (float16, bfloat16, float32 or float64), got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape (chains, draws, *event), got shape {tuple(x.shape)}; "
                         f"for a single chain pass {name}.unsqueeze(0)")
    chains, draws = x.shape[0], x.shape[1]
    if chains < min_chains:
        raise ValueError(f"{what} needs at least {min_chains} chains, got {name} with {chains} "
                         f"(shape {tuple(x.shape)})")
    if draws < min_draws:
        raise ValueError(f"{what} needs at least {min_draws} draws per chain, got {name} with {draws} "
                         f"(shape {tuple(x.shape)}, dims are (chains, draws, *event))")
    if check_finite:
        _check_finite(x, name)
    return x


def _check_finite(x, name="x"):
    """Raise a ValueError naming the counts of NaN/Inf draws and the chains they are in."""
    chains = x.shape[0]
    if x.numel():
        bad = ~torch.isfinite(x)
        n_bad = int(bad.sum())
        if n_bad:
            n_nan = int(torch.isnan(x).sum())
            bad_chains = int(bad.reshape(chains, -1).any(1).sum())
            raise ValueError(f"{name} contains {n_bad} non-finite entries ({n_nan} NaN, {n_bad - n_nan} Inf) "
                             f"in {bad_chains} of {chains} chains; diagnostics need finite draws")


def _columns(x):
    """(chains, draws, *event) -> float64 (D, chains, draws) contiguous, and the event shape."""
    event = tuple(x.shape[2:])
    c, n = x.shape[0], x.shape[1]
    xs = x.reshape(c, n, math.prod(event))
    y = torch.empty((xs.shape[2], c, n), dtype=_F64, device=x.device)
    y.copy_(xs.permute(2, 0, 1))  # cast and transpose in one pass
    return y, event


def _split(y):
    """(D, M, N) -> (D, 2M, N//2): each chain's first and last N//2 draws (ArviZ's split)."""
    d, m, n = y.shape
    h = n // 2
    if n % 2 == 0:
        return y.reshape(d, m * 2, h)
    return torch.cat((y[..., :h], y[..., n - h:]), dim=1)


def _fast_len(n):
    """Smallest 2^a 3^b 5^c >= n (an FFT length every FFT library handles fast)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


# ---------------------------------------------------------------------------
# ranks and quantiles of columns
# ---------------------------------------------------------------------------


def _z_of_sorted(s):
    """``Phi^-1((r - 3/8)/(S + 1/4))`` for the sorted rows ``s`` (D, S), r the average
    ("fractional") 1-based ranks: ties share the mean of their ranks, as scipy's
    ``rankdata(method="average")``. Without ties r = 1..S in every row (one shared vector).
    Ties are fixed sparsely: only the tied entries are gathered, grouped and looked up in a
    table of Phi^-1 at the half-integer ranks."""
    D, S = s.shape
    r = torch.arange(1, S + 1, device=s.device, dtype=_F64)
    z0 = torch.special.ndtri((r - 0.375) / (S + 0.25)).expand(D, S)
    eq = s[:, 1:] == s[:, :-1]
    if not bool(eq.any()):
        return z0
    tied = torch.zeros((D, S), dtype=torch.bool, device=s.device)
    tied[:, 1:] |= eq
    tied[:, :-1] |= eq
    new = torch.ones_like(tied)
    new[:, 1:] = ~eq
    end = torch.ones_like(tied)
    end[:, :-1] = ~eq
    tp = tied.view(-1).nonzero().squeeze(1)  # flat positions of tied entries, ascending
    nw, en = new.view(-1)[tp], end.view(-1)[tp]
    gid = torch.cumsum(nw, 0) - 1  # tie group of each tied entry
    first, last = tp[nw][gid], tp[en][gid]
    rank_sum = first + last - 2 * (tp // S) * S  # 2 r - 2, within the row
    half = torch.arange(2 * S - 1, device=s.device, dtype=_F64) * 0.5 + 1.0
    z = z0.clone()
    z.view(-1)[tp] = torch.special.ndtri((half[rank_sum] - 0.375) / (S + 0.25))
    return z


class _Sorted:
    """Rows (D, S) sorted once: the values and the permutation."""

    def __init__(self, flat, stable=False):
        self.s, self.idx = torch.sort(flat, dim=-1, stable=stable)
        self.S = flat.shape[-1]

    def z_sorted(self):
        """Rank-normalized values in sorted order (see ``_z_of_sorted``)."""
        return _z_of_sorted(self.s)

    def zscale(self):
        """Rank-normalized values in the original order."""
        return torch.empty_like(self.s).scatter_(-1, self.idx, self.z_sorted())

    def folded_zscale(self):
        """Rank-normalized ``|x - median|`` in the original order.

        In sorted order ``|s - median|`` falls then rises (two sorted runs), which a stable
        (merge) sort orders about twice as fast as random data: no second full sort."""
        f = (self.s - self.median().unsqueeze(-1)).abs()
        st2 = _Sorted(f, stable=True)
        return torch.empty_like(f).scatter_(-1, self.idx.gather(-1, st2.idx), st2.z_sorted())

    def median(self):
        S, s = self.S, self.s
        return (s[..., (S - 1) // 2] + s[..., S // 2]) / 2

    def quantile(self, p):
        """numpy's default ('linear') quantile of each row: virtual index ``(S-1) p``."""
        S, s = self.S, self.s
        v = (S - 1) * float(p)
        lo = math.floor(v)
        if v >= S - 1:
            return s[..., -1]
        if v < 0:
            return s[..., 0]
        g = v - lo
        a, b = s[..., lo], s[..., lo + 1]
        d = b - a
        return b - d * (1 - g) if g >= 0.5 else a + d * g  # numpy's _lerp


def _quantile_select(flat, p):
    """The same value as ``_Sorted(flat).quantile(p)`` without sorting: a selection
    (``kthvalue``) for the order statistic below the virtual index ``(S-1) p`` and one masked
    pass for the next one (the smallest value above it, or itself when it is repeated)."""
    S = flat.shape[-1]
    v = (S - 1) * float(p)
    lo = min(max(math.floor(v), 0), S - 1)
    a = torch.kthvalue(flat, lo + 1, dim=-1).values
    if v >= S - 1 or v < 0:
        return a
    g = v - lo
    if g == 0.0:
        return a
    above = torch.where(flat > a.unsqueeze(-1), flat, torch.full_like(flat, math.inf)).amin(-1)
    repeated = (flat <= a.unsqueeze(-1)).sum(-1) > lo + 1
    b = torch.where(repeated, a, above)
    d = b - a
    return b - d * (1 - g) if g >= 0.5 else a + d * g  # numpy's _lerp


def _zscale(flat_rows):
    return _Sorted(flat_rows).zscale()



# ---------------------------------------------------------------------------
# autocovariance and the ESS core
# ---------------------------------------------------------------------------


def _acov_last(y, mean_over=None):
    """Biased autocovariance along the last dim (length n) by zero-padded FFT, every lag.

    ``acov_t = (1/n) sum_{i=0}^{n-1-t} (y_i - ybar)(y_{i+t} - ybar)``. With ``mean_over``
    (a dim), the power spectra are averaged over that dim before the inverse FFT, which
    gives the mean of the autocovariances over it (one inverse FFT instead of many).
    """
    n = y.shape[-1]
    m = _fast_len(2 * n)
    yc = y - y.mean(-1, keepdim=True)
    f = torch.fft.rfft(yc, n=m, dim=-1)
    p = torch.view_as_real(f).square().sum(-1)
    if mean_over is not None:
        p = p.mean(mean_over)
    return torch.fft.irfft(p, n=m, dim=-1)[..., :n] / n


def _geyer_tau(rho, n, nlags=None):
    """Geyer's initial monotone sequence estimate of the integrated autocorrelation time.

    ``rho``: (..., L) combined autocorrelations at lags 0..L-1 (L <= n; rho_0 is taken as 1),
    ``n``: draws per chain. Reproduces ArviZ's ``_ess`` loop without a loop:
    pairs ``P_0 = 1 + rho_1``, ``P_k = rho_2k + rho_2k+1``; K = first k with ``P_k <= 0`` or
    ``2k + 1 >= n - 3``; ``tau = -1 + 2 sum_{k<K} min_{j<=k} P_j + e`` where ``e = 1`` if K = 0,
    else ``rho_2K`` if ``P_K >= 0`` or ``rho_2K > 0``, else 0. Returns (tau, truncated):
    ``truncated`` is True where the available lags ran out before the sequence stopped;
    ``nlags`` (per row, optional): lags actually known (``rho`` is NaN past them), fewer
    than ``n`` where a row's lags stopped early.
    """
    L = rho.shape[-1]
    jmax = max(0, -(-(n - 4) // 2))  # ceil((n-4)/2): the loop's last pair
    J = min(jmax + 1, L // 2)
    r = rho[..., : 2 * J]
    pairs = r[..., 0::2] + r[..., 1::2]
    pairs[..., 0] = 1.0 + r[..., 1]
    j = torch.arange(J, device=rho.device)
    cont = (pairs > 0) & ((2 * j + 1) < (n - 3))
    K = cont.to(torch.int64).cumprod(-1).sum(-1)
    truncated = K >= J
    Kc = K.clamp(max=J - 1)
    pm = torch.cummin(pairs, dim=-1).values
    below = j < K.unsqueeze(-1)
    s = torch.where(below, pm, torch.zeros_like(pm)).sum(-1)
    even = rho.gather(-1, (2 * Kc).unsqueeze(-1)).squeeze(-1)
    pk = pairs.gather(-1, Kc.unsqueeze(-1)).squeeze(-1)
    e = torch.where((pk >= 0) | (even > 0), even, torch.zeros_like(even))
    e = torch.where(K == 0, torch.ones_like(e), e)
    e = torch.where(truncated, torch.zeros_like(e), e)
    tau = -1.0 + 2.0 * s + e
    if nlags is not None:  # the stopping pair must lie inside the lags that were computed
        truncated = truncated | ((2 * K + 1 >= nlags) & (nlags < n))
    bad = torch.isnan(r[..., 1]) | torch.isnan(even)
    return torch.where(bad, torch.full_like(tau, float("nan")), tau), truncated


def _combined_rho(mean_acov, chain_mean, n):
    """Multi-chain autocorrelation ``1 - (W - mean acov_t) / var_plus`` (Vehtari et al. eq. 10)."""
    M = chain_mean.shape[-1]
    mean_var = mean_acov[..., 0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if M > 1:
        var_plus = var_plus + chain_mean.var(-1, correction=1)
    return 1.0 - (mean_var.unsqueeze(-1) - mean_acov) / var_plus.unsqueeze(-1)


_CHUNK = 1 << 22  # elements per FFT chunk (keeps the padded spectra cache/memory friendly)
_SHORT_LAGS = 32  # lags computed by two small GEMMs before falling back to the FFT


def _mean_acov_short(y, chain_mean, B):
    """Mean over chains of the biased autocovariance at lags 0..B-1 of rows y (D, M, n) with
    chain means ``chain_mean`` (D, M),
    by two Gram matrices instead of an FFT.

    Each chain is cut into blocks of B draws (zero padded so that it ends with a whole zero
    block) and all blocks of a row stacked as Y (M nb, B). With G0 = Y^T Y and
    G1 = Y[:-1]^T Y[1:], ``sum_i y_i y_{i+t} = sum_a G0[a, a+t] + sum_b G1[b+B-t, b]`` (lags
    inside a block, and across a block boundary; a chain's trailing zero block makes the pairs
    across chains vanish). Cost 4 B flops per draw in GEMMs, against an FFT of length >= 2n.
    """
    D, M, n = y.shape
    nb = -(-n // B) + 1
    step = max(1, _CHUNK // (M * nb * B))
    G0 = y.new_empty(D, B, B)
    G1 = y.new_empty(D, B, B)
    for i in range(0, D, step):  # in chunks of rows: the padded copy stays small
        Y = y.new_zeros(min(step, D - i), M, nb * B)
        torch.sub(y[i:i + step], chain_mean[i:i + step].unsqueeze(-1), out=Y[..., :n])
        Y = Y.reshape(Y.shape[0], M * nb, B)
        torch.matmul(Y.transpose(1, 2), Y, out=G0[i:i + step])
        torch.matmul(Y[:, :-1].transpose(1, 2), Y[:, 1:], out=G1[i:i + step])
    out = [torch.diagonal(G0, 0, 1, 2).sum(-1)]
    for t in range(1, B):
        out.append(torch.diagonal(G0, t, 1, 2).sum(-1) + torch.diagonal(G1, t - B, 1, 2).sum(-1))
    return torch.stack(out, -1) / (M * n)


def _mean_acov_fft(y):
    D, M, n = y.shape
    step = max(1, _CHUNK // max(1, M * n))
    return torch.cat([_acov_last(y[i:i + step], mean_over=-2) for i in range(0, D, step)])


def _finish_ess(tau, S, const, relative, return_tau):
    """Cap ``tau >= 1/log10(S)`` (``ESS <= S log10 S``); constant rows get ESS = S."""
    tau = torch.clamp(tau, min=1.0 / math.log10(S))
    if return_tau:
        return torch.where(const, torch.ones_like(tau), tau)
    out = (1.0 if relative else float(S)) / tau
    return torch.where(const, torch.full_like(out, 1.0 if relative else float(S)), out)


def _refine(tau, trunc, chain_mean, n, acov_rows):
    """Rows whose Geyer sequence ran past the lags computed: every lag by FFT
    (``acov_rows(rows)`` -> their (rows, chains, n) series' mean autocovariance)."""
    rows = trunc.nonzero().squeeze(1)
    if rows.numel():
        t2, _ = _geyer_tau(_combined_rho(acov_rows(rows), chain_mean[rows], n), n)
        tau = tau.index_put((rows,), t2)
    return tau


def _ess_core(y, relative=False, return_tau=False):
    """ArviZ's ``_ess`` on rows: y (D, M, n) float64 -> ESS (D,) (or tau (D,)).

    CPU with the extension: the lags come from ``diag_mean_acov`` (direct sums, per row
    only until Geyer's sequence stops). Otherwise the autocovariances at the first
    ``_SHORT_LAGS`` lags come from GEMMs. Either way, only the rows whose sequence has not
    stopped by then get every lag from the FFT (the result is the same: the estimator
    reads no lag past the one where the sequence stops)."""
    D, M, n = y.shape
    S = M * n
    if D == 0:
        return y.new_zeros(0)
    chain_mean = y.mean(-1)
    B = _SHORT_LAGS
    fft = lambda rows: _mean_acov_fft(y[rows])  # noqa: E731
    if _ext_ok(y):
        acov, nlag = torch.ops.gensample.diag_mean_acov(y.contiguous(), _DIRECT_LAGS)
        acov = acov[:, :max(2, int(nlag.max()))]  # NaN past the lags computed
        tau, trunc = _geyer_tau(_combined_rho(acov, chain_mean, n), n, nlags=nlag)
        tau = _refine(tau, trunc, chain_mean, n, fft)
    elif n > 2 * B:
        acov = _mean_acov_short(y, chain_mean, B)
        tau, trunc = _geyer_tau(_combined_rho(acov, chain_mean, n), n)
        tau = _refine(tau, trunc, chain_mean, n, fft)
    else:
        tau, _ = _geyer_tau(_combined_rho(_mean_acov_fft(y), chain_mean, n), n)
    const = (y.amax((-2, -1)) - y.amin((-2, -1))) < _RESOLUTION
    return _finish_ess(tau, S, const, relative, return_tau)


def _rhat_from_stats(chain_mean, chain_var, n):
    """Gelman-Rubin R-hat from split-chain means and variances (ddof 1), rows (D, M)."""
    between = n * chain_mean.var(-1, correction=1)
    within = chain_var.mean(-1)
    return torch.sqrt((between / within + n - 1) / n)


# ---------------------------------------------------------------------------
# the C++ route (CPU, extension built): gensample::diag_rank_summary
# ---------------------------------------------------------------------------

#: Use the extension's kernels for CPU tensors when it is built (set False to force the
#: pure-torch path, e.g. to compare the two).
USE_EXTENSION = True
_DIRECT_LAGS = 256  # most lags summed directly for real-valued series (then the FFT)
_DIRECT_LAGS_IND = 1024  # the same for quantile indicators (popcounts: cheap per lag)
_F_BULK, _F_FOLDED, _F_ZSTATS, _F_IND0, _F_IND1, _F_MOMENTS, _F_OUTZ = 1, 2, 4, 8, 16, 32, 64


def _ext_ok(t):
    return (USE_EXTENSION and t.device.type == "cpu" and _ext.loaded()
            and hasattr(torch.ops.gensample, "diag_rank_summary"))


def _ext_fits(chains, draws):
    """Positions of one column must fit the kernel's 31-bit payloads."""
    n = draws // 2
    pb = max(n - 1, chains - 1).bit_length()
    return pb + (2 * chains).bit_length() <= 31 and chains * draws < (1 << 32)


class _Ranked:
    """One call of ``diag_rank_summary`` on x (chains, draws, *event): per event entry one
    radix sort, then the rank-normalized (bulk, folded) split chains' moments and
    autocovariances and the quantile indicators' autocovariances (series 0 bulk z,
    1 folded z, 2 I(x <= q(p0)), 3 I(x <= q(p1)))."""

    def __init__(self, x, flags, p0=0.0, p1=0.0):
        C, N = x.shape[0], x.shape[1]
        xe = x.reshape(C, N, -1)
        if xe.dtype not in (torch.float32, torch.float64):
            xe = xe.float()  # float16/bfloat16 are exact in float32
        self.xe = xe.contiguous()
        self.n, self.M2 = N // 2, 2 * C
        self.S = self.n * self.M2
        self.cm, self.cv, self.acov, self.nlag, self.col, _ = torch.ops.gensample.diag_rank_summary(
            self.xe, float(p0), float(p1), int(flags), _DIRECT_LAGS, _DIRECT_LAGS_IND)

    def _series(self, s, rows):
        """Full split series s of the given rows (the FFT fallback)."""
        xr = self.xe[:, :, rows].contiguous()
        if s < 2:
            z = torch.ops.gensample.diag_rank_summary(xr, 0.0, 0.0, _F_OUTZ | (_F_FOLDED if s else 0), 1, 1)[5]
            return z[:, s]
        q = self.col[rows, 1 + s]
        y = xr.permute(2, 0, 1).to(_F64)
        return _split((y <= q[:, None, None]).to(_F64))

    def const(self, s):
        if s == 0:
            return self.col[:, 5] == self.col[:, 6]
        if s == 1:
            return self.col[:, 7] == 1.0
        cm = self.cm[:, s]
        return (cm == 0).all(-1) | (cm == 1).all(-1)

    def ess(self, s, relative=False, return_tau=False):
        n, cm = self.n, self.cm[:, s]
        lags = self.acov[:, s, :max(2, int(self.nlag[:, s].max()))]  # NaN past the lags computed
        tau, trunc = _geyer_tau(_combined_rho(lags, cm, n), n, nlags=self.nlag[:, s])
        tau = _refine(tau, trunc, cm, n, lambda rows: _mean_acov_fft(self._series(s, rows)))
        return _finish_ess(tau, self.S, self.const(s), relative, return_tau)

    def rhat(self, s):
        return _rhat_from_stats(self.cm[:, s], self.cv[:, s], self.n)


def _fake_rank_summary(x, p0, p1, flags, max_lag_z, max_lag_ind):
    M, N, D = x.shape
    n = N // 2
    L = max(min(max_lag_z + 1, n), min(max_lag_ind + 1, n))
    e = lambda *s: x.new_empty(s, dtype=_F64)  # noqa: E731
    z = e(D, 2 if flags & _F_FOLDED else 1, 2 * M, n) if flags & _F_OUTZ else e(0)
    return e(D, 4, 2 * M), e(D, 2, 2 * M), e(D, 4, L), x.new_empty((D, 4), dtype=torch.int64), e(D, 10), z


def _fake_mean_acov(y, max_lag):
    D, _, n = y.shape
    return y.new_empty((D, min(max_lag + 1, n))), y.new_empty((D,), dtype=torch.int64)


if _ext.loaded() and hasattr(torch.ops.gensample, "diag_rank_summary"):
    torch.library.register_fake("gensample::diag_rank_summary")(_fake_rank_summary)
    torch.library.register_fake("gensample::diag_mean_acov")(_fake_mean_acov)


def _ranked(x, flags, p0=0.0, p1=0.0):
    """A ``_Ranked`` when the C++ route applies to x, else None. x was checked with
    ``check_finite=False``: the kernel counts non-finite draws while it reads them (no
    extra pass); on the torch route the check runs here."""
    if _ext_ok(x) and _ext_fits(x.shape[0], x.shape[1]) and x[0, 0].numel() > 0:
        r = _Ranked(x, flags, p0, p1)
        if bool(r.col[:, 8:10].any()):
            _check_finite(x)  # raises, naming the counts
        return r
    _check_finite(x)
    return None


def _rhat_core(y):
    """Gelman-Rubin R-hat on rows: y (D, M, n) -> (D,)."""
    return _rhat_from_stats(y.mean(-1), y.var(-1, correction=1), y.shape[-1])


# ---------------------------------------------------------------------------
# public API: batch diagnostics
# ---------------------------------------------------------------------------


def _out(v, event):
    return v.reshape(event)


def _dim_arg(x, dim):
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim={dim} is out of range for x with {x.dim()} dims (shape {tuple(x.shape)})")
    return dim % x.dim()


def autocovariance(x, dim=1):
    """Biased autocovariance at every lag along ``dim`` (default 1, the draws), by FFT.

    ``acov_t = (1/n) sum_{i=0}^{n-1-t} (x_i - xbar)(x_{i+t} - xbar)``, t = 0..n-1, each series
    centred by its own mean; zero padding to a fast length >= 2n makes the circular FFT
    correlation equal the linear one. Same shape as ``x``; float64.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating torch.Tensor, got "
                        f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
    d = _dim_arg(x, dim)
    if x.shape[d] < 2:
        raise ValueError(f"autocovariance needs at least 2 draws along dim {d}, got shape {tuple(x.shape)}")
    y = x.to(_F64).movedim(d, -1)
    return _acov_last(y).movedim(-1, d)


def autocorrelation(x, dim=1):
    """Autocorrelation ``acov_t / acov_0`` at every lag along ``dim`` (FFT, float64).

    A constant series has ``acov_0 = 0`` and gives NaN (as in ArviZ's ``autocorr``).
    """
    a = autocovariance(x, dim)
    d = dim % x.dim()
    return a / a.narrow(d, 0, 1)


_RANK_ESS = ("bulk", "z_scale", "folded", "quantile", "median", "tail")


def _ess_ranked(x, method, prob, relative, return_tau=False):
    """The rank-based ESS methods through the C++ kernel; None where it does not apply."""
    if method in ("bulk", "z_scale"):
        r = _ranked(x, _F_BULK)
        return None if r is None else r.ess(0, relative, return_tau)
    if method == "folded":
        r = _ranked(x, _F_FOLDED)
        return None if r is None else r.ess(1, relative, return_tau)
    if method in ("quantile", "median"):
        r = _ranked(x, _F_IND0, 0.5 if method == "median" else prob)
        return None if r is None else r.ess(2, relative, return_tau)
    if method == "tail":
        r = _ranked(x, _F_IND0 | _F_IND1, prob[0], prob[1])
        if r is None:
            return None
        e = torch.stack((r.ess(2, relative, return_tau), r.ess(3, relative, return_tau)), -1)
        return e.amax(-1) if return_tau else e.amin(-1)
    return None


def _ess_rows(y, method, prob, relative, return_tau=False):
    """ESS of rows y (D, M, N) (unsplit, float64) for one method."""
    core = lambda v: _ess_core(v, relative=relative, return_tau=return_tau)  # noqa: E731
    if method == "bulk" or method == "z_scale":
        sp = _split(y)
        return core(_zscale(sp.reshape(sp.shape[0], -1)).reshape(sp.shape))
    if method == "mean":
        return core(_split(y))
    if method == "identity":
        return core(y)
    if method == "sd":
        c = y - y.mean((-2, -1), keepdim=True)
        return core(_split(c * c))
    if method == "folded":
        sp = _split(y)
        flat = sp.reshape(sp.shape[0], -1)
        return core(_Sorted(flat).folded_zscale().reshape(sp.shape))
    if method in ("quantile", "median"):
        p = 0.5 if method == "median" else prob
        q = _quantile_select(y.reshape(y.shape[0], -1), p)
        return core(_split((y <= q[:, None, None]).to(_F64)))
    if method == "tail":
        flat = y.reshape(y.shape[0], -1)
        e = torch.stack([core(_split((y <= _quantile_select(flat, p)[:, None, None]).to(_F64)))
                         for p in prob], -1)
        return e.amax(-1) if return_tau else e.amin(-1)
    raise AssertionError(method)


def _tail_prob(prob, default=0.05):
    if prob is None:
        prob = default
    if isinstance(prob, Sequence) and not isinstance(prob, str):
        if len(prob) != 2:
            raise ValueError(f"prob for the tail ESS must be a number or (low, high), got {prob!r}")
        lo, hi = (float(p) for p in prob)
    else:
        lo, hi = sorted((float(prob), 1.0 - float(prob)))
    for p in (lo, hi):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"prob must lie in [0, 1], got {prob!r}")
    return lo, hi


def _check_method(method, valid, fn):
    if not isinstance(method, str) or method.lower() not in valid:
        raise ValueError(f"{fn}: method must be one of {', '.join(repr(v) for v in valid)}, got {method!r}")
    return method.lower()


def ess(x, method="bulk", *, prob=None, relative=False):
    """Effective sample size of draws ``x`` (chains, draws, *event), per event entry.

    Methods (Vehtari et al. 2021; ArviZ's definitions):

    * ``"bulk"``: ESS of the rank-normalized split chains (the default);
    * ``"tail"``: ``min(ESS_q(p_lo), ESS_q(p_hi))`` with ``prob`` = p (the pair ``(p, 1-p)``,
      default 0.05, i.e. the 5% and 95% quantiles, as in the paper and Stan) or ``(lo, hi)``;
    * ``"quantile"`` (``prob`` = p required), ``"median"``: ESS of the split indicator
      ``I(x <= q_p)`` with q_p the sample quantile (numpy's 'linear' rule);
    * ``"mean"``: split chains, no rank normalization (the ESS behind ``mcse_mean``);
    * ``"sd"``: split chains of ``(x - mean)^2``;
    * ``"identity"`` (no split, no ranks), ``"z_scale"`` (= bulk), ``"folded"``
      (rank-normalized ``|x - median|``).

    ``ESS = S / tau`` with S the number of (split) draws and ``tau`` Geyer's initial monotone
    sequence estimate over the multi-chain autocorrelation, capped so ``ESS <= S log10 S``.
    ``relative=True`` returns ESS / S. Needs at least 4 draws per chain. Returns float64 of
    shape ``event``.
    """
    method = _check_method(method, ESS_METHODS, "ess")
    if method == "quantile":
        if prob is None:
            raise ValueError("ess(method='quantile') needs prob, the quantile level in [0, 1]")
        prob = float(prob)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must lie in [0, 1], got {prob}")
    elif method == "tail":
        prob = _tail_prob(prob)
    x = _check_chains(x, what=f"ess(method={method!r})", check_finite=method not in _RANK_ESS)
    e = _ess_ranked(x, method, prob, relative)
    if e is not None:
        return _out(e, tuple(x.shape[2:]))
    y, event = _columns(x)
    if y.shape[0] == 0:
        return y.new_empty(event)
    return _out(_ess_rows(y, method, prob, relative), event)


def integrated_autocorr_time(x, method="mean", *, prob=None):
    """Integrated autocorrelation time ``tau = S / ESS`` behind :func:`ess` (same methods).

    ``tau = 1 + 2 sum_{t>=1} rho_t`` estimated with Geyer's initial monotone sequence on the
    multi-chain autocorrelation of the (split) chains; ``tau >= 1/log10(S)``. The default
    ``"mean"`` is the autocorrelation time of the draws themselves; ``"bulk"`` that of their
    rank-normalized values. Float64 of shape ``event``.
    """
    method = _check_method(method, ESS_METHODS, "integrated_autocorr_time")
    if method == "tail":
        prob = _tail_prob(prob)
    elif method == "quantile":
        if prob is None:
            raise ValueError("integrated_autocorr_time(method='quantile') needs prob")
        prob = float(prob)
    x = _check_chains(x, what="integrated_autocorr_time", check_finite=method not in _RANK_ESS)
    t = _ess_ranked(x, method, prob, False, return_tau=True)
    if t is not None:
        return _out(t, tuple(x.shape[2:]))
    y, event = _columns(x)
    if y.shape[0] == 0:
        return y.new_empty(event)
    return _out(_ess_rows(y, method, prob, False, return_tau=True), event)


def rhat(x, method="rank"):
    """Potential scale reduction factor R-hat of ``x`` (chains, draws, *event).

    ``R = sqrt(((n-1)/n W + B/n) / W)`` with W the mean within-chain variance and
    ``B = n var(chain means)``. Methods: ``"rank"`` (default; Vehtari et al. 2021: the maximum
    of the bulk R-hat of the rank-normalized split chains and the tail R-hat of the
    rank-normalized folded split chains ``|x - median|``), ``"split"`` (split chains, no ranks),
    ``"identity"`` (classic Gelman-Rubin), ``"folded"``, ``"z_scale"``. Needs at least 2 chains
    and 4 draws per chain. Values above 1.01 signal chains that have not mixed.
    """
    method = _check_method(method, RHAT_METHODS, "rhat")
    ranks = method in ("rank", "z_scale", "folded")
    x = _check_chains(x, min_chains=2, what=f"rhat(method={method!r})", check_finite=not ranks)
    if ranks:
        r = _ranked(x, _F_ZSTATS)
        if r is not None:
            v = {"z_scale": lambda: r.rhat(0), "folded": lambda: r.rhat(1),
                 "rank": lambda: torch.maximum(r.rhat(0), r.rhat(1))}[method]()
            return _out(v, tuple(x.shape[2:]))
    y, event = _columns(x)
    if y.shape[0] == 0:
        return y.new_empty(event)
    return _out(_rhat_rows(y, method), event)


def _rank_parts(y):
    """Split y (D, M, N); sort once; bulk z-values, folded z-values, sorted object."""
    sp = _split(y)
    flat = sp.reshape(sp.shape[0], -1)
    st = _Sorted(flat)
    return sp, st, st.zscale().reshape(sp.shape), st.folded_zscale().reshape(sp.shape)


def _rhat_rows(y, method):
    if method == "identity":
        return _rhat_core(y)
    if method == "split":
        return _rhat_core(_split(y))
    sp = _split(y)
    flat = sp.reshape(sp.shape[0], -1)
    st = _Sorted(flat)
    if method == "z_scale":
        return _rhat_core(st.zscale().reshape(sp.shape))
    zf = st.folded_zscale().reshape(sp.shape)
    if method == "folded":
        return _rhat_core(zf)
    return torch.maximum(_rhat_core(st.zscale().reshape(sp.shape)), _rhat_core(zf))


def mcse_mean(x):
    """Monte Carlo standard error of the mean: ``sd(x) / sqrt(ESS_mean)`` (sd over all draws,
    ddof 1), per event entry; float64 of shape ``event``."""
    x = _check_chains(x, what="mcse_mean")
    y, event = _columns(x)
    if y.shape[0] == 0:
        return y.new_empty(event)
    e = _ess_rows(y, "mean", None, False)
    sd = y.reshape(y.shape[0], -1).std(-1, correction=1)
    return _out(sd / e.sqrt(), event)


def summary(x, *, prob=0.05):
    """Mean, sd, bulk ESS, tail ESS and rank R-hat of each event entry (one pass of sorting).

    Returns a dict of float64 tensors of shape ``event``: ``mean``, ``sd`` (over all draws,
    ddof 1), ``ess_bulk``, ``ess_tail`` (quantiles ``prob`` and ``1 - prob``) and ``rhat``
    (``"rank"``; NaN with a single chain). One sort of the draws serves the bulk ranks, the
    median, the folded ranks (a cheap stable re-sort) and the tail quantiles.
    """
    lo, hi = _tail_prob(prob)
    x = _check_chains(x, what="summary", check_finite=False)
    r = _ranked(x, _F_BULK | _F_ZSTATS | _F_IND0 | _F_IND1 | _F_MOMENTS, lo, hi)
    if r is not None:
        event = tuple(x.shape[2:])
        out = {"mean": r.col[:, 0], "sd": r.col[:, 1], "ess_bulk": r.ess(0),
               "ess_tail": torch.minimum(r.ess(2), r.ess(3))}
        if x.shape[0] >= 2:
            out["rhat"] = torch.maximum(r.rhat(0), r.rhat(1))
        else:
            out["rhat"] = torch.full_like(out["mean"], float("nan"))
        return {k: _out(v, event) for k, v in out.items()}
    y, event = _columns(x)
    D, M, N = y.shape
    if D == 0:
        return {k: y.new_empty(event) for k in ("mean", "sd", "ess_bulk", "ess_tail", "rhat")}
    sp, st, zb, zf = _rank_parts(y)
    flat = y.reshape(D, -1)
    out = {"mean": flat.mean(-1), "sd": flat.std(-1, correction=1)}
    out["ess_bulk"] = _ess_core(zb)
    if N % 2:
        st = _Sorted(flat)  # the tail quantiles are over all draws (odd N: the split drops one)
    q = torch.stack((st.quantile(lo), st.quantile(hi)), 1)
    ind = (y.unsqueeze(1) <= q[:, :, None, None]).to(_F64)
    out["ess_tail"] = _ess_core(_split(ind.reshape(-1, M, N))).reshape(D, 2).amin(-1)
    if M >= 2:
        out["rhat"] = torch.maximum(_rhat_core(zb), _rhat_core(zf))
    else:
        out["rhat"] = torch.full((D,), float("nan"), dtype=_F64, device=y.device)
    return {k: _out(v, event) for k, v in out.items()}


# ---------------------------------------------------------------------------
# streaming accumulators
# ---------------------------------------------------------------------------


def _check_draw(x, name, chains, event, device):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating torch.Tensor of shape (chains, *event), got "
                        f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
    if chains is not None and (x.shape[0] != chains or tuple(x.shape[1:]) != event):
        raise ValueError(f"{name} must have shape {(chains, *event)} (chains, *event) like the earlier "
                         f"updates, got {tuple(x.shape)}")
    if device is not None and x.device != device:
        raise ValueError(f"{name} is on {x.device} but the accumulator is on {device}")


class RunningMoments:
    """Per-chain running mean and variance (Welford; Chan et al. for blocks), on device.

    ``update(x)`` with one draw ``x`` of shape (chains, *event), or ``update_block(xs)`` with
    (chains, k, *event). The draw count is a Python int, so updates are pure tensor ops with
    no host synchronization. Accumulates in float64.

    Welford: ``n += 1; d = x - m; m += d / n; M2 += d (x - m)``. Chan's merge of a block with
    count k, mean mb, sum of squares M2b: ``d = mb - m; m += d k/(n+k); M2 += M2b + d^2 n k/(n+k)``.
    """

    def __init__(self):
        self.count = 0
        self._mean = None
        self._m2 = None

    def _init(self, shape, device):
        self._mean = torch.zeros(shape, dtype=_F64, device=device)
        self._m2 = torch.zeros(shape, dtype=_F64, device=device)

    def update(self, x):
        """Add one draw per chain: x of shape (chains, *event)."""
        if self._mean is None:
            _check_draw(x, "x", None, None, None)
            if x.dim() < 1:
                raise ValueError("x must have shape (chains, *event), got a 0-dim tensor")
            self._init(x.shape, x.device)
        else:
            _check_draw(x, "x", self._mean.shape[0], tuple(self._mean.shape[1:]), self._mean.device)
        x = x.to(_F64)
        self.count += 1
        d = x - self._mean
        self._mean += d / self.count
        self._m2 += d * (x - self._mean)
        return self

    def update_block(self, xs):
        """Add k draws per chain at once: xs of shape (chains, k, *event)."""
        if not isinstance(xs, torch.Tensor) or xs.dim() < 2:
            raise ValueError("xs must be a tensor of shape (chains, k, *event)")
        shape = (xs.shape[0], *xs.shape[2:])
        if self._mean is None:
            _check_draw(xs[:, 0], "xs[:, 0]", None, None, None)
            self._init(shape, xs.device)
        else:
            _check_draw(xs[:, 0], "xs[:, 0]", self._mean.shape[0], tuple(self._mean.shape[1:]), self._mean.device)
        k = xs.shape[1]
        if k == 0:
            return self
        xs = xs.to(_F64)
        mb = xs.mean(1)
        m2b = (xs - mb.unsqueeze(1)).square().sum(1)
        n = self.count
        tot = n + k
        d = mb - self._mean
        self._mean += d * (k / tot)
        self._m2 += m2b + d.square() * (n * k / tot)
        self.count = tot
        return self

    def _need(self, k=1):
        if self._mean is None or self.count < k:
            raise ValueError(f"RunningMoments needs at least {k} draws, has {self.count}")

    @property
    def mean(self):
        """Per-chain mean, (chains, *event)."""
        self._need()
        return self._mean.clone()

    def var(self, correction=1):
        """Per-chain variance, (chains, *event); ``correction=1`` divides by count - 1."""
        self._need(correction + 1)
        return self._m2 / (self.count - correction)

    def std(self, correction=1):
        return self.var(correction).sqrt()

    def pooled(self):
        """(mean, variance with ddof 1) over all chains and draws, (*event)."""
        self._need(2)
        c, n = self._mean.shape[0], self.count
        m = self._mean.mean(0)
        m2 = self._m2.sum(0) + n * (self._mean - m).square().sum(0)
        return m, m2 / (c * n - 1)

    def rhat(self):
        """Classic (non-split, non-rank) Gelman-Rubin R-hat from the per-chain moments; equals
        ``rhat(x, method="identity")`` of the draws seen. Needs 2 chains and 2 draws."""
        self._need(2)
        if self._mean.shape[0] < 2:
            raise ValueError("rhat needs at least 2 chains")
        n = self.count
        between = n * self._mean.var(0, correction=1)
        within = self.var().mean(0)
        return torch.sqrt((between / within + n - 1) / n)


class StreamingAutocovariance:
    """Per-chain autocovariance up to lag ``max_lag``, updated one draw at a time on device.

    Keeps, per chain, the first ``max_lag`` draws, a shift register of the last ``max_lag + 1``
    draws, the running sum and the lagged products ``Q_l = sum_{t>=l} y_t y_{t-l}``
    (``y = x - x_0``, shifted by each chain's first draw to limit cancellation). At the end

        acov_l = (1/n) [Q_l - ybar (A_l + B_l) + (n - l) ybar^2],

    ``A_l = sum_{t>=l} y_t``, ``B_l = sum_{t<n-l} y_t``: the biased, mean-centred
    autocovariance of :func:`autocovariance`, exactly (up to rounding), for lags <= max_lag.
    ``ess()`` then applies the multi-chain Geyer estimator of :func:`ess` (no split, no ranks:
    ``method="identity"``); it equals the batch value whenever Geyer's sequence stops before
    lag ``max_lag`` (see ``truncated()``). Memory O(chains * max_lag * event); each update is
    O(chains * max_lag * event) tensor work, no host synchronization.
    """

    def __init__(self, max_lag=100):
        if isinstance(max_lag, bool) or not isinstance(max_lag, int) or max_lag < 1:
            raise ValueError(f"max_lag must be an int >= 1, got {max_lag!r}")
        self.max_lag = max_lag
        self.count = 0
        self._ref = None

    def _init(self, x):
        L = self.max_lag
        c, ev = x.shape[0], tuple(x.shape[1:])
        z = lambda *s: torch.zeros(*s, dtype=_F64, device=x.device)  # noqa: E731
        self._ref = x.to(_F64).clone()
        self._reg = z(c, L + 1, *ev)  # last L+1 shifted draws, newest first
        self._head = z(c, L, *ev)  # first L shifted draws
        self._q = z(c, L + 1, *ev)
        self._sum = z(c, *ev)

    def update(self, x):
        """Add one draw per chain: x of shape (chains, *event)."""
        if self._ref is None:
            _check_draw(x, "x", None, None, None)
            if x.dim() < 1:
                raise ValueError("x must have shape (chains, *event), got a 0-dim tensor")
            self._init(x)
        else:
            _check_draw(x, "x", self._ref.shape[0], tuple(self._ref.shape[1:]), self._ref.device)
        y = x.to(_F64) - self._ref
        self._reg = torch.cat((y.unsqueeze(1), self._reg[:, :-1]), 1)
        self._q += y.unsqueeze(1) * self._reg
        self._sum += y
        if self.count < self.max_lag:
            self._head[:, self.count] = y
        self.count += 1
        return self

    def update_block(self, xs):
        """Add k draws per chain: xs of shape (chains, k, *event) (a loop over lags, not draws)."""
        if not isinstance(xs, torch.Tensor) or xs.dim() < 2:
            raise ValueError("xs must be a tensor of shape (chains, k, *event)")
        k = xs.shape[1]
        if k == 0:
            return self
        if self._ref is None:
            _check_draw(xs[:, 0], "xs[:, 0]", None, None, None)
            self._init(xs[:, 0])
        else:
            _check_draw(xs[:, 0], "xs[:, 0]", self._ref.shape[0], tuple(self._ref.shape[1:]), self._ref.device)
        L = self.max_lag
        y = xs.to(_F64) - self._ref.unsqueeze(1)  # (c, k, *ev), oldest first
        prev = self._reg.flip(1)  # (c, L+1, *ev), oldest first
        ext = torch.cat((prev, y), 1)  # y_t sits at index L+1+t
        for lag in range(L + 1):
            self._q[:, lag] += (y * ext[:, L + 1 - lag: L + 1 - lag + k]).sum(1)
        self._sum += y.sum(1)
        if self.count < L:
            take = min(L - self.count, k)
            self._head[:, self.count:self.count + take] = y[:, :take]
        self._reg = ext[:, -(L + 1):].flip(1).clone()
        self.count += k
        return self

    def _need(self):
        if self._ref is None or self.count < 4:
            raise ValueError(f"StreamingAutocovariance needs at least 4 draws, has {self.count}")

    def autocovariance(self):
        """(chains, L+1, *event) biased autocovariance at lags 0..L (L = min(max_lag, count-1))."""
        self._need()
        n = self.count
        L = min(self.max_lag, n - 1)
        ev = (1,) * (self._sum.dim() - 1)
        lags = torch.arange(L + 1, device=self._sum.device, dtype=_F64).reshape(1, -1, *ev)
        head = torch.cumsum(self._head[:, :L], 1)  # sum of the first l draws, l = 1..L
        head = torch.cat((torch.zeros_like(self._head[:, :1]), head), 1)
        tail = torch.cumsum(self._reg[:, :L], 1)  # sum of the last l draws
        tail = torch.cat((torch.zeros_like(self._reg[:, :1]), tail), 1)
        tot = self._sum.unsqueeze(1)
        A, B = tot - head, tot - tail
        m = (self._sum / n).unsqueeze(1)
        return (self._q[:, :L + 1] - m * (A + B) + (n - lags) * m * m) / n

    def chain_mean(self):
        self._need()
        return self._ref + self._sum / self.count

    def _tau(self):
        acov = self.autocovariance()
        c = acov.shape[0]
        mean_acov = acov.mean(0).movedim(0, -1)  # (*event, L+1)
        cm = self.chain_mean().movedim(0, -1)
        rho = _combined_rho(mean_acov, cm, self.count)
        tau, trunc = _geyer_tau(rho, self.count)
        tau = torch.clamp(tau, min=1.0 / math.log10(c * self.count))
        return tau, trunc

    def ess(self):
        """ESS per event entry (``method="identity"``: all chains, no split, no ranks)."""
        tau, _ = self._tau()
        return self._ref.shape[0] * self.count / tau

    def integrated_autocorr_time(self):
        return self._tau()[0]

    def truncated(self):
        """Bool per event entry: True where Geyer's sequence had not stopped by lag max_lag
        (the ESS is then an overestimate; raise max_lag)."""
        return self._tau()[1]
