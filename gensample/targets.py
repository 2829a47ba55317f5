r"""Analytic target densities for testing and demonstrating samplers.

Every target is an energy :math:`E(x)` with density :math:`p(x) \propto e^{-E(x)}`.
A target is callable (``target(x) == target.energy(x)``), so it can be handed to
:class:`gensample.LangevinSampler` directly. Each one provides

* ``energy(x)``: per-sample energies, shape ``(C,)`` for ``x`` of shape ``(C, dim)``;
* ``grad(x)``: :math:`\nabla E(x)`, analytic, shape ``(C, dim)`` (tests check it
  against autograd);
* ``sample(n, generator=None)``: exact independent draws, shape ``(n, dim)``;
* ``mean`` and ``covariance``: the exact first two moments (float64).

Parameters are stored in float64 on the CPU; ``energy``/``grad`` evaluate in the
input's dtype on the input's device (parameters are cast per call).

Targets
-------
* :class:`Gaussian`: :math:`E(x) = \tfrac12 (x - m)^\top P (x - m)`, :math:`P = \Sigma^{-1}`.
  :meth:`Gaussian.ula_moments` gives the exact stationary moments of the unadjusted
  Langevin algorithm (ULA), which are biased by :math:`O(h)` (derivation there).
* :class:`GaussianMixture`: :math:`E(x) = -\log \sum_k w_k \mathcal N(x; m_k, \Sigma_k)`.
* :class:`Banana`: a twisted (Rosenbrock-type) Gaussian in 2-D,
  :math:`x_1 \sim \mathcal N(0, a^2)`, :math:`x_2 \mid x_1 \sim \mathcal N(b (x_1^2 - a^2), \sigma^2)`.
* :class:`Ring`: :math:`E(x) = (\lVert x \rVert - r_0)^2 / (2 s^2)` in 2-D.
"""
from __future__ import annotations

import math

import torch

__all__ = ["Target", "Gaussian", "GaussianMixture", "Banana", "Ring"]

_F64 = torch.float64


def _as_f64(name: str, v, shape=None) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=_F64).detach().cpu().clone()
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    return t


def _check_spd(name: str, s: torch.Tensor) -> torch.Tensor:
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(s.shape)}")
    if not torch.allclose(s, s.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name} must be symmetric")
    chol, info = torch.linalg.cholesky_ex(s)
    if int(info) != 0:
        raise ValueError(f"{name} must be positive definite")
    return chol


class Target:
    """Base class: an energy with exact moments. Subclasses set ``dim``."""

    dim: int

    def energy(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def grad(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    mean: torch.Tensor
    covariance: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy(x)

    def _check_x(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating torch.Tensor, got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (C, {self.dim}), got {tuple(x.shape)}")


class Gaussian(Target):
    r"""Gaussian :math:`\mathcal N(m, \Sigma)` with full covariance.

    :math:`E(x) = \tfrac12 (x - m)^\top P (x - m)` with :math:`P = \Sigma^{-1}` (no
    normalizing constant), :math:`\nabla E(x) = P (x - m)`.
    """

    def __init__(self, mean, covariance):
        self.mean = _as_f64("mean", mean)
        if self.mean.ndim != 1:
            raise ValueError(f"mean must be a vector, got shape {tuple(self.mean.shape)}")
        self.dim = self.mean.shape[0]
        self.covariance = _as_f64("covariance", covariance, (self.dim, self.dim))
        self._chol = _check_spd("covariance", self.covariance)
        self.precision = torch.cholesky_inverse(self._chol)
        self.precision = 0.5 * (self.precision + self.precision.T)

    @classmethod
    def correlated(cls, dim: int = 2, rho: float = 0.9, scales=None) -> "Gaussian":
        """Zero-mean Gaussian with ``Sigma_ij = s_i s_j rho^|i-j|`` (AR(1) correlation)."""
        s = torch.ones(dim, dtype=_F64) if scales is None else _as_f64("scales", scales, (dim,))
        i = torch.arange(dim, dtype=_F64)
        corr = rho ** (i[:, None] - i[None, :]).abs()
        return cls(torch.zeros(dim, dtype=_F64), corr * s[:, None] * s[None, :])

    def energy(self, x):
        self._check_x(x)
        d = x - self.mean.to(x)
        return 0.5 * ((d @ self.precision.to(x)) * d).sum(-1)

    def grad(self, x):
        self._check_x(x)
        return (x - self.mean.to(x)) @ self.precision.to(x)

    def sample(self, n, generator=None):
        z = torch.randn(n, self.dim, dtype=_F64, generator=generator)
        return self.mean + z @ self._chol.T

    def ula_moments(self, step_size: float, noise_scale: float | None = None):
        r"""Exact stationary mean and covariance of ULA with step ``h`` on this target.

        ULA: :math:`x' = x - h P (x - m) + s \varepsilon`, :math:`\varepsilon \sim
        \mathcal N(0, I)`, :math:`s = \sqrt{2h}` by default. With :math:`y = x - m` and
        :math:`A = I - hP` (symmetric), :math:`y' = A y + s \varepsilon`, a Gaussian AR(1)
        chain. It is stable iff every eigenvalue of :math:`hP` lies in :math:`(0, 2)`;
        then its stationary law is :math:`\mathcal N(m, V)` with :math:`V` the solution of
        the discrete Lyapunov equation :math:`V = A V A^\top + s^2 I`. Since :math:`A`
        commutes with :math:`P`,

        .. math::

            V = s^2 (I - A^2)^{-1} = s^2 \big(2hP - h^2 P^2\big)^{-1}
              = \frac{s^2}{h} \big(P (2I - hP)\big)^{-1},

        which for :math:`s^2 = 2h` is :math:`V = \big(P (I - \tfrac h2 P)\big)^{-1}
        = \Sigma + \tfrac h2 I + O(h^2)`: the mean is exact, the covariance is inflated
        by :math:`O(h)` (per eigen-direction :math:`\lambda^{-1} \to
        \lambda^{-1} / (1 - h\lambda/2)`).
        Returns ``(mean, covariance)`` in float64.
        """
        h = float(step_size)
        s2 = 2.0 * h if noise_scale is None else float(noise_scale) ** 2
        lam = torch.linalg.eigvalsh(self.precision)
        if not (h > 0 and float((h * lam).max()) < 2.0):
            raise ValueError(f"ULA is unstable on this target for step_size={h} "
                             f"(needs step_size * max eigenvalue of P < 2; max eigenvalue {float(lam.max()):.4g})")
        eye = torch.eye(self.dim, dtype=_F64)
        m = self.precision @ (2.0 * eye - h * self.precision)
        v = (s2 / h) * torch.linalg.inv(m)
        return self.mean.clone(), 0.5 * (v + v.T)


class GaussianMixture(Target):
    r"""Mixture :math:`\sum_k w_k \mathcal N(m_k, \Sigma_k)`.

    :math:`E(x) = -\log \sum_k w_k \mathcal N(x; m_k, \Sigma_k)` (normalized
    components, so the weights mean what they say),
    :math:`\nabla E(x) = \sum_k r_k(x) P_k (x - m_k)` with responsibilities
    :math:`r_k(x) \propto w_k \mathcal N(x; m_k, \Sigma_k)`.
    Mean :math:`\sum_k w_k m_k`; covariance :math:`\sum_k w_k (\Sigma_k + m_k m_k^\top) - \mu\mu^\top`.
    """

    def __init__(self, weights, means, covariances):
        self.means = _as_f64("means", means)
        if self.means.ndim != 2:
            raise ValueError(f"means must have shape (K, dim), got {tuple(self.means.shape)}")
        K, self.dim = self.means.shape
        w = _as_f64("weights", weights, (K,))
        if bool((w <= 0).any()):
            raise ValueError("weights must be positive")
        self.weights = w / w.sum()
        covs = _as_f64("covariances", covariances)
        if covs.ndim == 0:
            covs = covs * torch.eye(self.dim, dtype=_F64).expand(K, -1, -1)
        if tuple(covs.shape) != (K, self.dim, self.dim):
            raise ValueError(f"covariances must have shape ({K}, {self.dim}, {self.dim}) or be a scalar, "
                             f"got {tuple(covs.shape)}")
        self.covariances = covs.clone()
        self._chols = torch.stack([_check_spd(f"covariances[{k}]", covs[k]) for k in range(K)])
        prec = torch.cholesky_inverse(self._chols)
        self.precisions = 0.5 * (prec + prec.transpose(-1, -2))
        logdet = 2.0 * torch.log(torch.diagonal(self._chols, dim1=-2, dim2=-1)).sum(-1)
        self._logc = torch.log(self.weights) - 0.5 * logdet - 0.5 * self.dim * math.log(2 * math.pi)
        self.mean = (self.weights[:, None] * self.means).sum(0)
        second = (self.weights[:, None, None] * (self.covariances + self.means[:, :, None] * self.means[:, None, :])).sum(0)
        self.covariance = second - torch.outer(self.mean, self.mean)

    @classmethod
    def circle(cls, k: int = 8, radius: float = 2.0, std: float = 0.25) -> "GaussianMixture":
        """``k`` equal-weight isotropic components evenly spaced on a circle (2-D)."""
        a = torch.arange(k, dtype=_F64) * (2 * math.pi / k)
        means = radius * torch.stack([torch.cos(a), torch.sin(a)], -1)
        return cls(torch.ones(k, dtype=_F64), means, std**2)

    def _logits(self, x):
        d = x[:, None, :] - self.means.to(x)[None]  # (C, K, D)
        q = torch.einsum("ckd,kde,cke->ck", d, self.precisions.to(x), d)
        return self._logc.to(x)[None] - 0.5 * q, d

    def energy(self, x):
        self._check_x(x)
        logits, _ = self._logits(x)
        return -torch.logsumexp(logits, dim=-1)

    def grad(self, x):
        self._check_x(x)
        logits, d = self._logits(x)
        r = torch.softmax(logits, dim=-1)  # (C, K)
        pd = torch.einsum("kde,cke->ckd", self.precisions.to(x), d)
        return (r[:, :, None] * pd).sum(1)

    def sample(self, n, generator=None):
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, dtype=_F64, generator=generator)
        return self.means[k] + torch.einsum("nde,ne->nd", self._chols[k], z)


class Banana(Target):
    r"""Twisted Gaussian ("banana", Rosenbrock-type) in 2-D with exact moments.

    :math:`x_1 \sim \mathcal N(0, a^2)`, :math:`x_2 \mid x_1 \sim \mathcal N(b (x_1^2 - a^2), \sigma^2)`:

    .. math::

        E(x) = \frac{x_1^2}{2a^2} + \frac{r^2}{2\sigma^2}, \quad r = x_2 - b(x_1^2 - a^2),
        \qquad \nabla E = \Big(\frac{x_1}{a^2} - \frac{2 b x_1 r}{\sigma^2},\ \frac{r}{\sigma^2}\Big).

    Moments: mean :math:`0` (since :math:`E x_1^2 = a^2`); :math:`\mathrm{Var}\, x_1 = a^2`,
    :math:`\mathrm{Cov}(x_1, x_2) = b\, E[x_1^3 - a^2 x_1] = 0`,
    :math:`\mathrm{Var}\, x_2 = \sigma^2 + b^2 \mathrm{Var}(x_1^2) = \sigma^2 + 2 b^2 a^4`.
    """

    dim = 2

    def __init__(self, a: float = 1.0, b: float = 0.5, sigma: float = 1.0):
        if not (a > 0 and sigma > 0):
            raise ValueError(f"a and sigma must be > 0, got a={a}, sigma={sigma}")
        self.a, self.b, self.sigma = float(a), float(b), float(sigma)
        self.mean = torch.zeros(2, dtype=_F64)
        self.covariance = torch.diag(torch.tensor([self.a**2, self.sigma**2 + 2 * self.b**2 * self.a**4], dtype=_F64))

    def _r(self, x):
        x1 = x[:, 0]
        return x[:, 1] - self.b * (x1 * x1 - self.a**2)

    def energy(self, x):
        self._check_x(x)
        r = self._r(x)
        x1 = x[:, 0]
        return 0.5 * x1 * x1 / self.a**2 + 0.5 * r * r / self.sigma**2

    def grad(self, x):
        self._check_x(x)
        r = self._r(x)
        x1 = x[:, 0]
        g1 = x1 / self.a**2 - 2.0 * self.b * x1 * r / self.sigma**2
        return torch.stack([g1, r / self.sigma**2], dim=-1)

    def sample(self, n, generator=None):
        z = torch.randn(n, 2, dtype=_F64, generator=generator)
        x1 = self.a * z[:, 0]
        x2 = self.b * (x1 * x1 - self.a**2) + self.sigma * z[:, 1]
        return torch.stack([x1, x2], dim=-1)


class Ring(Target):
    r"""Ring in 2-D: :math:`E(x) = (\lVert x \rVert - r_0)^2 / (2 s^2)`.

    In polar coordinates the angle is uniform and the radius has density
    :math:`p(r) \propto r\, e^{-(r - r_0)^2 / (2 s^2)}` on :math:`r > 0`. Mean 0, covariance
    :math:`\tfrac12 E[r^2] I` with :math:`E[r^2] = \int r^3 \phi / \int r \phi`, both
    integrals in closed form through the normal CDF. ``sample`` is exact (rejection
    from a normal proposal centred at the mode of :math:`p(r)`).
    :math:`\nabla E(x) = \frac{\lVert x \rVert - r_0}{s^2} \frac{x}{\lVert x \rVert}`
    (at :math:`x = 0` the gradient is taken as 0).
    """

    dim = 2

    def __init__(self, radius: float = 2.0, width: float = 0.3):
        if not (radius >= 0 and width > 0):
            raise ValueError(f"radius must be >= 0 and width > 0, got radius={radius}, width={width}")
        self.radius, self.width = float(radius), float(width)
        r0, s = self.radius, self.width
        a = -r0 / s
        phi = math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
        q = 0.5 * math.erfc(a / math.sqrt(2))  # P(U > a)
        m0, m1, m2, m3 = q, phi, a * phi + q, (a * a + 2) * phi
        i1 = r0 * m0 + s * m1
        i3 = r0**3 * m0 + 3 * r0**2 * s * m1 + 3 * r0 * s**2 * m2 + s**3 * m3
        self.second_moment_radius = i3 / i1
        self.mean = torch.zeros(2, dtype=_F64)
        self.covariance = 0.5 * self.second_moment_radius * torch.eye(2, dtype=_F64)

    def energy(self, x):
        self._check_x(x)
        r = torch.linalg.vector_norm(x, dim=-1)
        return 0.5 * (r - self.radius) ** 2 / self.width**2

    def grad(self, x):
        self._check_x(x)
        r = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        scale = torch.where(r > 0, (r - self.radius) / (self.width**2 * r.clamp_min(torch.finfo(x.dtype).tiny)),
                            torch.zeros_like(r))
        return scale * x

    def sample(self, n, generator=None):
        r0, s = self.radius, self.width
        mode = 0.5 * (r0 + math.sqrt(r0 * r0 + 4 * s * s))  # argmax of r exp(-(r-r0)^2/2s^2)
        c = (mode - r0) / (s * s)
        # p(r)/q(r) ∝ r exp(-c r) <= 1/(c e), q = N(mode, s^2) truncated to r > 0.
        out = torch.empty(0, dtype=_F64)
        while out.numel() < n:
            m = max(2 * (n - out.numel()), 64)
            r = mode + s * torch.randn(m, dtype=_F64, generator=generator)
            u = torch.rand(m, dtype=_F64, generator=generator)
            ok = (r > 0) & (u < r * torch.exp(-c * r) * c * math.e)
            out = torch.cat([out, r[ok]])
        r = out[:n]
        theta = 2 * math.pi * torch.rand(n, dtype=_F64, generator=generator)
        return torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1)
