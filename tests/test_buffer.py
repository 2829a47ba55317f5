"""ReplayBuffer: reinit fraction, slot uniformity, push/sample round trip, state_dict.

Distributional checks run on fixed seeds; each states the false-failure rate its bound
would have over random seeds.
"""
import math
from statistics import NormalDist

import pytest
import torch

import gensample
from gensample import ReplayBuffer
from gensample import random as grandom


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_reinit_fraction_is_binomial(p):
    """Slots hold a sentinel (10.0); fresh uniform(-1, 1) rows mark reinits. The count over
    N draws is Binomial(N, p): |k - Np| <= z sqrt(Np(1-p)), z for a two-sided rate 1e-6."""
    buf = ReplayBuffer(100, (3,), reinit_prob=p, generator=_gen(0))
    buf.push(torch.full((100, 3), 10.0), torch.arange(100))
    N = 0
    k = 0
    for _ in range(20):
        x, idx = buf.sample(1000)
        fresh = (x.abs() < 1).all(1)
        kept = (x == 10.0).all(1)
        assert bool((fresh | kept).all())  # every row is either a fresh draw or the stored one
        k += int(fresh.sum())
        N += 1000
    z = NormalDist().inv_cdf(1 - 0.5e-6)
    assert abs(k - N * p) <= z * math.sqrt(N * p * (1 - p)), (k, N * p)


def test_slots_uniform_and_fresh_draws_uniform():
    """Slot counts: per-slot z-test, Bonferroni over 37 slots, family rate 1e-5. Fresh
    draws (init uniform(-1, 1)) have mean 0 and variance 1/3 (rate 1e-5)."""
    cap = 37
    buf = ReplayBuffer(cap, 2, reinit_prob=0.0, generator=_gen(1))
    N = 200_000
    _, idx = buf.sample(N)
    assert idx.dtype == torch.int64 and int(idx.min()) >= 0 and int(idx.max()) < cap
    counts = torch.bincount(idx, minlength=cap).double()
    z = NormalDist().inv_cdf(1 - 1e-5 / (2 * cap))
    sd = math.sqrt(N * (1 / cap) * (1 - 1 / cap))
    assert ((counts - N / cap).abs() <= z * sd).all()
    fresh = ReplayBuffer(1, (50_000,), generator=_gen(2)).storage.reshape(-1).double()
    assert bool((fresh > -1).all() and (fresh < 1).all())
    z2 = NormalDist().inv_cdf(1 - 1e-5 / 4)
    n = fresh.numel()
    assert abs(float(fresh.mean())) <= z2 * math.sqrt(1 / 3 / n)
    assert abs(float(fresh.var()) - 1 / 3) <= z2 * math.sqrt((1 / 5 - 1 / 9) / n)


def test_sample_uses_gensample_stream():
    """The slot index and reinit decision are the documented functions of the seed pair."""
    g = _gen(5)
    buf = ReplayBuffer(1000, (4,), reinit_prob=0.25, generator=g)
    state = g.get_state()
    x, idx = buf.sample(64)
    g.set_state(state)
    seed = grandom.draw_seed(g)
    u = grandom.uniform_stream(grandom.substream(seed, 0), 3 * 64).view(3, 64)
    idx_ref = ((u[0].double() + u[1].double() * 2.0**-24) * 1000).long()
    assert torch.equal(idx, idx_ref)
    reinit = u[2] < 0.25
    fresh = grandom.uniform_stream(grandom.substream(seed, 1), 64 * 4).view(64, 4) * 2 - 1
    ref = torch.where(reinit[:, None], fresh, buf.storage[idx_ref])
    assert torch.equal(x, ref)


def test_push_sample_round_trip():
    buf = ReplayBuffer(50, (2, 3), reinit_prob=0.0, generator=_gen(3))
    data = torch.arange(50 * 6, dtype=torch.float32).view(50, 2, 3)
    buf.push(data, torch.arange(50))
    x, idx = buf.sample(200)
    assert torch.equal(x, data[idx])
    x2 = x[:10] * -1.0
    buf.push(x2, idx[:10])
    # each pushed slot now holds one of the rows written to it (duplicates: one wins)
    for i in range(10):
        rows = x2[idx[:10] == idx[i]]
        assert any(torch.equal(buf.storage[idx[i]], r) for r in rows)
    # sample returns a copy: editing it leaves the storage alone
    before = buf.storage.clone()
    y, _ = buf.sample(5)
    y.add_(1.0)
    assert torch.equal(buf.storage, before)


def test_push_ring_pointer():
    buf = ReplayBuffer(5, 1, generator=_gen(4))
    buf.push(torch.tensor([[1.0], [2.0], [3.0]]))
    buf.push(torch.tensor([[4.0], [5.0], [6.0]]))
    assert buf.storage.view(-1).tolist() == [6.0, 2.0, 3.0, 4.0, 5.0]
    assert buf.ptr == 1
    buf.push(torch.arange(12, dtype=torch.float32).view(12, 1))  # more than capacity: last 5 survive
    assert sorted(buf.storage.view(-1).tolist()) == [7.0, 8.0, 9.0, 10.0, 11.0]


def test_state_dict_round_trip():
    buf = ReplayBuffer(20, (3,), reinit_prob=0.1, generator=_gen(6))
    buf.push(torch.randn(7, 3, generator=_gen(7)))
    sd = buf.state_dict()
    other = ReplayBuffer(20, (3,), reinit_prob=0.5, generator=_gen(8))
    other.load_state_dict(sd)
    assert torch.equal(other.storage, buf.storage) and other.ptr == buf.ptr == 7
    assert other.reinit_prob == 0.1
    sd["storage"].zero_()  # state_dict holds a copy
    assert not torch.equal(buf.storage, sd["storage"])
    # same generator state -> same samples
    buf.generator, other.generator = _gen(9), _gen(9)
    a, ia = buf.sample(30)
    b, ib = other.sample(30)
    assert torch.equal(a, b) and torch.equal(ia, ib)
    # through torch.save
    import io

    f = io.BytesIO()
    torch.save(buf.state_dict(), f)
    f.seek(0)
    third = ReplayBuffer(20, (3,))
    third.load_state_dict(torch.load(f))
    assert torch.equal(third.storage, buf.storage)
    with pytest.raises(ValueError, match="shape"):
        ReplayBuffer(21, (3,)).load_state_dict(buf.state_dict())


def test_callable_and_normal_init():
    buf = ReplayBuffer(8, (2,), init=lambda n: torch.full((n, 2), 0.5), reinit_prob=1.0, generator=_gen(10))
    assert torch.equal(buf.storage, torch.full((8, 2), 0.5))
    buf.push(torch.zeros(8, 2), torch.arange(8))
    x, _ = buf.sample(4)
    assert torch.equal(x, torch.full((4, 2), 0.5))  # reinit_prob=1: all fresh
    nb = ReplayBuffer(1, (20_000,), init="normal", generator=_gen(11), dtype=torch.float64)
    assert nb.storage.dtype == torch.float64
    assert abs(float(nb.storage.std()) - 1) < 0.05
    with pytest.raises(ValueError, match="init"):
        ReplayBuffer(8, (2,), init=lambda n: torch.zeros(n, 3)).sample(2)


def test_bad_input():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (2,))
    with pytest.raises(ValueError, match="reinit_prob"):
        ReplayBuffer(4, (2,), reinit_prob=1.5)
    with pytest.raises(ValueError, match="init"):
        ReplayBuffer(4, (2,), init="gauss")
    buf = ReplayBuffer(4, (2,))
    with pytest.raises(ValueError, match="shape"):
        buf.push(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="idx"):
        buf.push(torch.zeros(3, 2), torch.arange(2))
    assert gensample.ReplayBuffer is ReplayBuffer
