"""RBM training: the CD gradient, PCD-1 on digits against the textbook reference, and
bit-identical resume from a checkpoint."""
import io

import pytest
import torch

import gensample
from gensample import reference
from gensample.train import RBMTrainer, fit_rbm, rbm_gradients

F64 = torch.float64


def _digits():
    """scikit-learn's 8x8 digits (1797 images, 16 grey levels), binarized at half the
    range (pixel / 16 >= 0.5), split 1400 train / 397 test by a fixed permutation."""
    datasets = pytest.importorskip("sklearn.datasets")
    x = torch.tensor(datasets.load_digits().data >= 8, dtype=torch.float32)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    return x[perm[:1400]], x[perm[1400:]]


def _rbm(nv, nh, seed=0, gaussian=False, learn_sigma=False, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    if gaussian:
        m = gensample.GaussianBernoulliRBM(nv, nh, sigma=0.5 + torch.rand(nv, generator=g, dtype=dtype),
                                           learn_sigma=learn_sigma, init_std=0.5, generator=g, dtype=dtype)
    else:
        m = gensample.BernoulliRBM(nv, nh, init_std=0.5, generator=g, dtype=dtype)
    with torch.no_grad():
        m.visible_bias.copy_(torch.randn(nv, generator=g, dtype=dtype))
        m.hidden_bias.copy_(torch.randn(nh, generator=g, dtype=dtype))
    return m


# ----------------------------------------------------------------------------
# the CD gradient
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bernoulli", "gaussian", "gaussian-learn-sigma"])
def test_free_energy_loss_gives_the_cd_gradient(kind):
    """``(F(v) - F(v_model)).mean()`` differentiated by autograd is minus the analytic
    CD statistics <v p_h>_data - <v p_h>_model (and the bias / log-sigma terms), which
    the trainer computes with one fused GEMM."""
    gaussian = kind != "bernoulli"
    m = _rbm(7, 5, gaussian=gaussian, learn_sigma=kind.endswith("sigma"))
    m.backend = "torch"
    g = torch.Generator().manual_seed(1)
    if gaussian:
        v = torch.randn(11, 7, generator=g, dtype=F64)
    else:
        v = (torch.rand(11, 7, generator=g) < 0.5).to(F64)
    v_model = m.gibbs(v[:9], k=2, generator=g)  # a different batch size for the negative phase
    loss = (m.free_energy(v)).mean() - m.free_energy(v_model).mean()
    names = [n for n, _ in m.named_parameters()]
    auto = dict(zip(names, torch.autograd.grad(loss, [p for _, p in m.named_parameters()])))
    ana = rbm_gradients(m, v, v_model)
    assert set(ana) == set(auto)
    for n in names:
        torch.testing.assert_close(-auto[n], ana[n], rtol=1e-10, atol=1e-12, msg=n)
    # analytic form written out for the weight (Bernoulli: x = v, Gaussian: x = v / sigma)
    x, xm = (v / m.sigma, v_model / m.sigma) if gaussian else (v, v_model)
    dW = x.t() @ m.prob_hidden(v) / 11 - xm.t() @ m.prob_hidden(v_model) / 9
    torch.testing.assert_close(ana["weight"], dW.detach(), rtol=1e-10, atol=1e-12)


def test_textbook_loop_with_torch_optim():
    m = _rbm(6, 4)
    m.backend = "torch"
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    v = (torch.rand(8, 6, generator=torch.Generator().manual_seed(2)) < 0.5).to(F64)
    before = m.weight.detach().clone()
    v_model = m.gibbs(v, k=1)
    loss = (m.free_energy(v) - m.free_energy(v_model)).mean()
    opt.zero_grad()
    loss.backward()
    torch.testing.assert_close(m.weight.grad, -rbm_gradients(m, v, v_model)["weight"])
    opt.step()
    assert not torch.equal(m.weight.detach(), before)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_trainer_step_is_the_momentum_update(method):
    m = _rbm(6, 4, dtype=torch.float32)
    copy = _rbm(6, 4, dtype=torch.float32)
    v = (torch.rand(8, 6, generator=torch.Generator().manual_seed(3)) < 0.5).float()
    t = RBMTrainer(m, batch_size=8, lr=0.1, k=2, method=method, momentum=0.5, weight_decay=0.01,
                   generator=torch.Generator().manual_seed(4), backend="torch")
    g = torch.Generator().manual_seed(4)
    vel = {n: torch.zeros_like(p) for n, p in copy.named_parameters()}
    chains = copy.init_chains(8, generator=g) if method == "pcd" else None
    for _ in range(2):
        t.step(v)
        start = chains if method == "pcd" else v
        vm, _, ph = copy.gibbs(start, k=2, return_hidden=True, generator=g, backend="torch")
        chains = vm
        grads = rbm_gradients(copy, v, vm, ph_model=ph)
        with torch.no_grad():
            for n, p in copy.named_parameters():
                gr = grads[n] - (0.01 * p if n == "weight" else 0)
                vel[n] = 0.5 * vel[n] + 0.1 * gr
                p.add_(vel[n])
    for n, p in m.named_parameters():
        torch.testing.assert_close(p, getattr(copy, n), rtol=1e-6, atol=1e-7, msg=n)
    if method == "pcd":
        assert torch.equal(t.chains, chains)


# ----------------------------------------------------------------------------
# PCD-1 on digits against the textbook reference
# ----------------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """The 64x16 RBM's ops are far too small to gain from threads, and on a loaded
    2-core machine a second thread makes every op wait for a descheduled core."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_pcd_on_digits_matches_textbook(one_thread):
    """PCD-1, 64 visible x 16 hidden, 20 epochs, batch 20, lr 0.02, momentum 0.5, two
    seeds each for gensample (fit_rbm, fused ops) and the textbook loop
    (``reference.rbm_train_textbook``: free-energy loss, torch.optim.SGD, eager
    rand-compare Gibbs), same initial weights.

    The exact test log-likelihood rises from -44.4 (init) to about -22 nats/sample for
    both. Margin: the two algorithms have the same law (same chain, same updates; only the
    random numbers differ), so their final log-likelihoods differ by seed noise only. Over
    8 development runs a single run's final value had a standard deviation of about 0.2
    nats; the mean of two runs then has about 0.15, the difference of two means about 0.2,
    and the 1 nat margin is about 5 of those (false-failure rate well under 1e-5 for a
    normal spread; the margin still catches a wrong gradient sign, a missing
    Rao-Blackwellisation or a wrong learning rate, which move the result by several nats).
    """
    train, test = _digits()
    ep, bs, lr, mom = 20, 20, 0.02, 0.5
    ours, theirs = [], []
    for seed in (0, 1):
        m = gensample.BernoulliRBM(64, 16, generator=torch.Generator().manual_seed(seed))
        ref = reference.TextbookRBM(64, 16)
        ref.load_state_dict(m.state_dict())
        ll0 = float(m.log_likelihood(test).mean())
        t = fit_rbm(m, train, epochs=ep, batch_size=bs, lr=lr, momentum=mom, progress=False,
                    metrics=("log_likelihood",) if seed == 0 else (), eval_data=test,
                    generator=torch.Generator().manual_seed(seed + 10))
        ours.append(float(m.log_likelihood(test).mean()))
        assert ours[-1] > ll0 + 15, (ll0, ours[-1])
        if seed == 0:
            assert len(t.history) == ep and t.history[-1]["log_likelihood"] == pytest.approx(ours[-1], abs=1e-9)
        reference.rbm_train_textbook(ref, train, epochs=ep, batch_size=bs, lr=lr, momentum=mom,
                                     generator=torch.Generator().manual_seed(seed + 10))
        r = gensample.BernoulliRBM(64, 16)
        r.load_state_dict(ref.state_dict())
        theirs.append(float(r.log_likelihood(test).mean()))
    diff = sum(ours) / 2 - sum(theirs) / 2
    assert abs(diff) < 1.0, f"gensample {ours} vs textbook {theirs}"


# ----------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------
def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize("kind", ["bernoulli-pcd", "bernoulli-cd", "gaussian-pcd"])
def test_resume_continues_identically(kind):
    gaussian = kind.startswith("gaussian")
    method = kind.split("-")[1]
    g = torch.Generator().manual_seed(5)
    data = torch.randn(90, 10, generator=g) if gaussian else (torch.rand(90, 10, generator=g) < 0.3).float()
    kw = dict(batch_size=16, lr=0.05, k=2, method=method, momentum=0.7, weight_decay=1e-3, n_chains=24)

    def make():
        return _rbm(10, 6, seed=6, gaussian=gaussian, learn_sigma=gaussian, dtype=torch.float32)

    a = make()
    ta = RBMTrainer(a, generator=torch.Generator().manual_seed(7), **kw)
    ta.fit(data, 2, progress=False)

    b = make()
    tb = RBMTrainer(b, generator=torch.Generator().manual_seed(7), **kw)
    tb.fit(data, 1, progress=False)
    state = _roundtrip(tb.state_dict())
    c = make()
    tc = RBMTrainer(c, generator=torch.Generator().manual_seed(999), **kw)  # another seed: overwritten
    tc.load_state_dict(state)
    fit_rbm(c, data, epochs=1, batch_size=16, lr=0.05, trainer=tc, progress=False)

    for n, p in a.state_dict().items():
        assert torch.equal(p, c.state_dict()[n]), n
    assert ta.steps == tc.steps == 12 and ta.epoch == tc.epoch == 2
    if method == "pcd":
        assert torch.equal(ta.chains, tc.chains)
    assert torch.equal(ta.generator.get_state(), tc.generator.get_state())
    assert [h["epoch"] for h in tc.history] == [1, 2]
    assert tc.history[-1]["reconstruction_error"] == ta.history[-1]["reconstruction_error"]


def test_dataloader_and_fit_method():
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(8)
    data = (torch.rand(64, 8, generator=g) < 0.5).float()
    m = _rbm(8, 4, dtype=torch.float32)
    dl = DataLoader(TensorDataset(data), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(9))
    t = m.fit(dl, epochs=2, batch_size=16, lr=0.05, progress=False, generator=torch.Generator().manual_seed(1))
    assert t.steps == 8 and len(t.history) == 2
    h = t.history[-1]
    assert {"reconstruction_error", "pseudo_likelihood", "log_likelihood", "log_partition"} <= set(h)
    # the metrics were computed on the rows seen in the epoch (all 64 here)
    assert h["log_likelihood"] == pytest.approx(float(m.log_likelihood(data).mean()), rel=0, abs=1e-9)


def test_trainer_errors():
    m = _rbm(5, 3, dtype=torch.float32)
    with pytest.raises(ValueError, match="method must be one of"):
        RBMTrainer(m, batch_size=4, lr=0.1, method="pt")
    with pytest.raises(ValueError, match="lr must be > 0"):
        RBMTrainer(m, batch_size=4, lr=0.0)
    with pytest.raises(ValueError, match="k must be >= 0"):
        RBMTrainer(m, batch_size=4, lr=0.1, k=-1)
    with pytest.raises(TypeError, match="CPU torch.Generator"):
        RBMTrainer(m, batch_size=4, lr=0.1, generator=0)
    with pytest.raises(ValueError, match=r"data must have shape \(batch, 5\)"):
        fit_rbm(m, torch.zeros(10, 6), epochs=1, batch_size=4, lr=0.1, progress=False)
    with pytest.raises(ValueError, match="unknown metric"):
        fit_rbm(m, torch.zeros(8, 5), epochs=1, batch_size=4, lr=0.1, progress=False, metrics=("elbo",))
    other = _rbm(5, 3, dtype=torch.float32)
    t = RBMTrainer(other, batch_size=4, lr=0.1)
    with pytest.raises(ValueError, match="another model"):
        fit_rbm(m, torch.zeros(8, 5), epochs=1, batch_size=4, lr=0.1, trainer=t)
