"""gensample.ebm: the contrastive-divergence loss and the buffer -> Langevin -> buffer helper."""
import pytest
import torch

from gensample import LangevinSampler, ReplayBuffer
from gensample.ebm import ContrastiveDivergence, contrastive_divergence_loss


pytestmark = pytest.mark.usefixtures("one_thread")


class Tiny(torch.nn.Module):
    def __init__(self, d=2):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.SiLU(), torch.nn.Linear(8, 1))
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x):
        return self.net(x).squeeze(-1) + 0.1 * (x * x).sum(-1)


class Quadratic(torch.nn.Module):
    """E(x) = 1/2 sum_j exp(l_j) (x_j - m_j)^2: a Gaussian EBM with learnable mean/precision."""

    def __init__(self, d=2):
        super().__init__()
        self.m = torch.nn.Parameter(torch.zeros(d))
        self.l = torch.nn.Parameter(torch.zeros(d))

    def forward(self, x):
        return 0.5 * (self.l.exp() * (x - self.m) ** 2).sum(-1)


def test_loss_value_and_gradient():
    model = Tiny()
    g = torch.Generator().manual_seed(1)
    xp = torch.randn(16, 2, generator=g)
    xn = torch.randn(16, 2, generator=g).requires_grad_(True)
    loss, st = contrastive_divergence_loss(model, xp, xn, alpha=0.3)
    ep, en = model(xp), model(xn)
    ref = ep.mean() - en.mean() + 0.3 * ((ep**2).mean() + (en**2).mean())
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(st.energy_pos, ep.detach().mean())
    torch.testing.assert_close(st.energy_neg, en.detach().mean())
    grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    rgrads = torch.autograd.grad(ref, list(model.parameters()))
    for a, b in zip(grads, rgrads):
        torch.testing.assert_close(a, b)
    loss.backward()
    assert xn.grad is None  # negatives are detached
    with pytest.raises(ValueError, match="alpha"):
        contrastive_divergence_loss(model, xp, xn, alpha=-1.0)
    with pytest.raises(ValueError, match=r"energy\(x_pos\)"):
        contrastive_divergence_loss(lambda x: x, xp, xn)


def test_negatives_flow_through_buffer_and_restore_model_state():
    model = Tiny()
    model.train()
    buf = ReplayBuffer(64, (2,), reinit_prob=0.0, generator=torch.Generator().manual_seed(2))
    before = buf.storage.clone()
    sampler = LangevinSampler(model, step_size=0.01, n_steps=5, generator=torch.Generator().manual_seed(3))
    cd = ContrastiveDivergence(model, sampler, buf, alpha=1.0)
    seen_modes = []
    model.register_forward_pre_hook(lambda m, a: seen_modes.append(m.training))
    xp = torch.randn(32, 2)
    loss, st = cd.loss(xp)
    assert seen_modes[:5] == [False] * 5 and seen_modes[-1] is True  # eval while sampling, train for the loss
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())  # sampling left no parameter gradients
    assert st.sample_info.energy_trace.shape == (5,)
    # the negatives were pushed back into the slots they came from
    changed = (buf.storage != before).any(1)
    assert 0 < int(changed.sum()) <= 32
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    sd = cd.state_dict()
    cd2 = ContrastiveDivergence(model, sampler, ReplayBuffer(64, (2,)))
    cd2.load_state_dict(sd)
    assert torch.equal(cd2.buffer.storage, buf.storage)
    with pytest.raises(ValueError, match="same object"):
        ContrastiveDivergence(Tiny(), sampler, buf)


def test_training_recovers_a_gaussian():
    """Persistent CD on N(m, diag(v)) data with a quadratic EBM: after 300 Adam steps the
    learned mean is within 0.15 of m (its posterior-free sampling error at this batch
    size is ~0.05 per step; deterministic seeds) and the learned variances within 35%.
    alpha = 0: the energy-squared regularizer would shrink the precisions."""
    torch.manual_seed(4)
    m = torch.tensor([1.0, -2.0])
    v = torch.tensor([0.25, 1.0])
    model = Quadratic()
    buf = ReplayBuffer(1000, (2,), reinit_prob=0.05, init="normal", generator=torch.Generator().manual_seed(5))
    sampler = LangevinSampler(model, step_size=0.05, n_steps=20, generator=torch.Generator().manual_seed(6))
    cd = ContrastiveDivergence(model, sampler, buf, alpha=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(7)
    for _ in range(300):
        xp = m + v.sqrt() * torch.randn(128, 2, generator=g)
        loss, _ = cd.loss(xp)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (model.m.detach() - m).abs().max() < 0.15, model.m
    var = (-model.l.detach()).exp()
    assert ((var / v) - 1).abs().max() < 0.35, var
