"""Textbook PyTorch references, imported by the tests and the benchmarks alike.

These are what users write today; gensample's ops are checked against them (fed the
same noise) and timed against them.
"""
from __future__ import annotations

import torch


def reparameterize_kl_textbook(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None,
                               prior_mu: torch.Tensor | None = None, prior_logvar: torch.Tensor | None = None):
    """``z = mu + exp(logvar / 2) * eps`` and ``KL(N(mu, e^logvar) || prior)`` summed over the last dim.

    ``eps`` defaults to ``torch.randn_like(mu)``. With no prior this is the classic
    ``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))``.
    """
    std = torch.exp(0.5 * logvar)
    if eps is None:
        eps = torch.randn_like(std)
    z = mu + std * eps
    if prior_mu is None and prior_logvar is None:
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)
    else:
        pm = prior_mu if prior_mu is not None else torch.zeros_like(mu)
        plv = prior_logvar if prior_logvar is not None else torch.zeros_like(mu)
        kl = 0.5 * torch.sum(plv - logvar + (logvar.exp() + (mu - pm).pow(2)) / plv.exp() - 1, dim=-1)
    return z, kl


def reparameterize_kl_distributions(mu: torch.Tensor, logvar: torch.Tensor, validate_args: bool | None = None):
    """The ``torch.distributions`` way: ``Normal(mu, std).rsample()`` plus ``kl_divergence``."""
    from torch.distributions import Normal, kl_divergence

    q = Normal(mu, torch.exp(0.5 * logvar), validate_args=validate_args)
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu), validate_args=validate_args)
    return q.rsample(), kl_divergence(q, p).sum(-1)


# ----------------------------------------------------------------------------
# Restricted Boltzmann machines: the textbook PyTorch code
# ----------------------------------------------------------------------------
# Conventions as in gensample.BernoulliRBM: weight W is (n_visible, n_hidden), visible
# bias b (n_visible,), hidden bias c (n_hidden,). Most tutorials store W as
# (n_hidden, n_visible) and call F.linear(v, W, c); F.linear(v, W.t(), c) is the same
# product for our layout (a transposed view, no copy).

RBM_VARIANTS = ("bernoulli", "rand_compare", "relu_sign")


def bernoulli_textbook(p: torch.Tensor, variant: str = "bernoulli", generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli(p) states the three ways found in the wild.

    * ``"bernoulli"``: ``torch.bernoulli(p)`` (most tutorials, DsysDML/rbms);
    * ``"rand_compare"``: ``(torch.rand_like(p) < p).to(p.dtype)`` (the fastest eager form);
    * ``"relu_sign"``: ``torch.relu(torch.sign(p - torch.rand_like(p)))`` (older tutorials).
    """
    if variant == "bernoulli":
        return torch.bernoulli(p, generator=generator)
    u = torch.rand(p.shape, dtype=p.dtype, device=p.device, generator=generator)
    if variant == "rand_compare":
        return (u < p).to(p.dtype)
    if variant == "relu_sign":
        return torch.relu(torch.sign(p - u))
    raise ValueError(f"variant must be one of {RBM_VARIANTS}, got {variant!r}")


def rbm_prob_hidden_textbook(v, weight, hidden_bias, beta: float = 1.0):
    """``p(h = 1 | v) = sigmoid(beta * (v W + c))``, as ``sigmoid(F.linear(v, W.t(), c))``."""
    import torch.nn.functional as F

    a = F.linear(v, weight.t(), hidden_bias)
    return torch.sigmoid(a if beta == 1.0 else beta * a)


def rbm_prob_visible_textbook(h, weight, visible_bias, beta: float = 1.0):
    """``p(v = 1 | h) = sigmoid(beta * (h W^T + b))``, as ``sigmoid(F.linear(h, W, b))``."""
    import torch.nn.functional as F

    a = F.linear(h, weight, visible_bias)
    return torch.sigmoid(a if beta == 1.0 else beta * a)


def rbm_gibbs_textbook(v, weight, visible_bias, hidden_bias, k: int = 1, variant: str = "bernoulli",
                       beta: float = 1.0, generator: torch.Generator | None = None):
    """``k`` block-Gibbs sweeps ``v -> h -> v``, the eager loop every PyTorch RBM runs.

    Same chain as ``gensample.ops.gibbs_sweeps``: ``h_0 ~ p(h|v_0)``, then for each sweep
    ``v_s ~ p(v|h_{s-1})``, ``h_s ~ p(h|v_s)``. Returns ``(v_k, h_k, p(h=1|v_k))``.
    """
    ph = rbm_prob_hidden_textbook(v, weight, hidden_bias, beta)
    h = bernoulli_textbook(ph, variant, generator)
    for _ in range(k):
        pv = rbm_prob_visible_textbook(h, weight, visible_bias, beta)
        v = bernoulli_textbook(pv, variant, generator)
        ph = rbm_prob_hidden_textbook(v, weight, hidden_bias, beta)
        h = bernoulli_textbook(ph, variant, generator)
    return v, h, ph


def rbm_free_energy_textbook(v, weight, visible_bias, hidden_bias):
    """``F(v) = -v.b - sum_j softplus(c_j + (v W)_j)`` per sample (the textbook loss term)."""
    import torch.nn.functional as F

    return -(v @ visible_bias) - F.softplus(F.linear(v, weight.t(), hidden_bias)).sum(-1)


class TextbookRBM(torch.nn.Module):
    """The RBM of the PyTorch tutorials: parameters, free energy, an eager Gibbs loop.

    Trained with ``loss = (F(v_data) - F(v_model)).mean()`` and any ``torch.optim``
    optimizer; the negative samples are detached. ``weight`` is (n_visible, n_hidden),
    initialised N(0, init_std^2) from ``generator``; biases start at zero.
    """

    def __init__(self, n_visible: int, n_hidden: int, init_std: float = 0.01, generator=None,
                 dtype=torch.float32, variant: str = "rand_compare"):
        super().__init__()
        w = torch.randn(n_visible, n_hidden, generator=generator, dtype=dtype) * init_std
        self.weight = torch.nn.Parameter(w)
        self.visible_bias = torch.nn.Parameter(torch.zeros(n_visible, dtype=dtype))
        self.hidden_bias = torch.nn.Parameter(torch.zeros(n_hidden, dtype=dtype))
        self.variant = variant

    def free_energy(self, v):
        return rbm_free_energy_textbook(v, self.weight, self.visible_bias, self.hidden_bias)

    @torch.no_grad()
    def gibbs(self, v, k: int = 1, generator=None):
        return rbm_gibbs_textbook(v, self.weight, self.visible_bias, self.hidden_bias, k, self.variant,
                                  generator=generator)[0]


def rbm_train_textbook(model: TextbookRBM, data: torch.Tensor, *, epochs: int, batch_size: int, lr: float,
                       k: int = 1, persistent: bool = True, momentum: float = 0.0, weight_decay: float = 0.0,
                       generator: torch.Generator | None = None, callback=None):
    """Textbook (P)CD-k training: free-energy loss, ``torch.optim.SGD``, eager Gibbs loop.

    PCD keeps ``batch_size`` persistent chains started from Bernoulli(0.5) noise; CD
    restarts the chains at the data batch. Mini-batches come from a random permutation per
    epoch. ``callback(epoch, model)`` runs after each epoch.
    """
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    n = data.shape[0]
    chains = (torch.rand(batch_size, data.shape[1], generator=generator, dtype=data.dtype) < 0.5).to(data.dtype)
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=generator)
        for s in range(0, n, batch_size):
            v = data[perm[s:s + batch_size]]
            start = chains[: v.shape[0]] if persistent else v
            v_model = model.gibbs(start, k, generator=generator)
            if persistent:
                chains[: v.shape[0]] = v_model
            loss = (model.free_energy(v) - model.free_energy(v_model)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if callback is not None:
            callback(epoch, model)
    return model


def rbm_parallel_tempering_textbook(v, weight, visible_bias, hidden_bias, betas, n_rounds: int, k: int = 1,
                                    variant: str = "rand_compare", generator: torch.Generator | None = None):
    """Textbook parallel tempering for a Bernoulli RBM, the way DsysDML/rbms structures it: a
    Python loop over temperatures (``k`` eager Gibbs sweeps of each replica at its ``beta``,
    which scales the whole energy), then swap attempts between every adjacent pair in turn,
    exchanging the *states*.

    ``v``: ``(R, C, n_visible)`` states (replica ``i`` at ``betas[i]``, any order of betas);
    ``betas``: ``(R,)``. A swap of pair ``(i, i+1)`` is accepted with probability
    ``min(1, exp(d))``, ``d = [f_i(x') + f_{i+1}(x)] - [f_i(x) + f_{i+1}(x')]``, with the
    tempered visible log-density ``f_beta(v) = beta b.v + sum_j softplus(beta (c + vW)_j)``
    (``h`` summed out at temperature ``beta``, so the move is exact). Returns ``(v, info)``:
    the new ``(R, C, n_visible)`` states and ``{"swap_acceptance": (R-1,)}`` averaged over rounds.
    """
    import torch.nn.functional as F

    R = len(betas)
    chains = [v[i] for i in range(R)]
    acc = torch.zeros(R - 1, dtype=torch.float64)

    def f(x, beta):
        return beta * (x @ visible_bias) + F.softplus(beta * F.linear(x, weight.t(), hidden_bias)).sum(-1)

    for _ in range(n_rounds):
        for i in range(R):
            chains[i] = rbm_gibbs_textbook(chains[i], weight, visible_bias, hidden_bias, k, variant,
                                           beta=float(betas[i]), generator=generator)[0]
        for i in range(R - 1):
            x, y = chains[i], chains[i + 1]
            b0, b1 = float(betas[i]), float(betas[i + 1])
            d = (f(y, b0) + f(x, b1)) - (f(x, b0) + f(y, b1))
            u = torch.rand(d.shape, dtype=d.dtype, device=d.device, generator=generator)
            swap = (u < torch.exp(d))[:, None]
            chains[i], chains[i + 1] = torch.where(swap, y, x), torch.where(swap, x, y)
            acc[i] += float(swap.to(torch.float64).mean())
    return torch.stack(chains), {"swap_acceptance": acc / max(1, n_rounds)}


def rbm_ais_textbook(weight, visible_bias, hidden_bias, betas, n_chains: int, visible_base=None,
                     generator: torch.Generator | None = None):
    """Textbook AIS for a Bernoulli RBM: Salakhutdinov's MATLAB ``RBM_AIS`` (the code behind
    Salakhutdinov & Murray 2008) translated to eager PyTorch, one Python iteration per beta.

    Base model: visible units Bernoulli(sigmoid(``visible_base``)) (zeros: uniform), hidden
    units uniform, ``log Z_0 = sum softplus(visible_base) + n_hidden log 2``. For each
    ``beta_k`` (k = 1..K) it computes ``a = v W + c``, adds the log-weight terms
    ``(beta_k - beta_{k-1}) v.(b - b_A) + sum_j [softplus(beta_k a_j) - softplus(beta_{k-1} a_j)]``
    (float64 accumulation), samples ``h ~ Bernoulli(sigmoid(beta_k a))`` with
    ``torch.bernoulli`` and ``v ~ Bernoulli(sigmoid(beta_k (h W^T + b) + (1 - beta_k) b_A))``:
    two GEMMs per beta. Returns ``(log_w, v)``: float64 ``(n_chains,)`` log importance weights
    (``log Z ~ log Z_0 + logmeanexp(log_w)``) and the final states.
    """
    import torch.nn.functional as F

    n_vis = weight.shape[0]
    dt, dev = weight.dtype, weight.device
    base = torch.zeros(n_vis, dtype=dt, device=dev) if visible_base is None else visible_base
    betas = [float(b) for b in betas]
    v = torch.bernoulli(torch.sigmoid(base).expand(n_chains, n_vis), generator=generator)
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=dev)
    diff = visible_bias - base
    for k in range(1, len(betas)):
        bk, bp = betas[k], betas[k - 1]
        a = F.linear(v, weight.t(), hidden_bias)
        log_w += ((bk - bp) * (v @ diff) + (F.softplus(bk * a) - F.softplus(bp * a)).sum(-1)).double()
        h = torch.bernoulli(torch.sigmoid(bk * a), generator=generator)
        v = torch.bernoulli(torch.sigmoid(bk * F.linear(h, weight, visible_bias) + (1.0 - bk) * base),
                            generator=generator)
    return log_w, v
