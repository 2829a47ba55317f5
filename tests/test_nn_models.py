"""GaussianLatent, the VAE model, info() and the command line."""
import subprocess
import sys

import pytest
import torch

import gensample
from gensample.models import VAE
from gensample.nn import GaussianLatent


def test_gaussian_latent_with_projection_matches_functional():
    torch.manual_seed(0)
    layer = GaussianLatent(12, 5, reduction="sum", backend="torch")
    h = torch.randn(7, 12)
    z, kl = layer(h, generator=torch.Generator().manual_seed(3))
    mu, lv = layer.proj(h).chunk(2, -1)
    z2, kl2 = gensample.reparameterize_kl(mu, lv, reduction="sum", generator=torch.Generator().manual_seed(3),
                                          backend="torch")
    assert torch.equal(z, z2) and torch.equal(kl, kl2)
    kl.backward()
    assert layer.proj.weight.grad is not None


def test_gaussian_latent_learned_prior_gets_gradients_and_eval_mean():
    layer = GaussianLatent(None, 4, learn_prior=True, mean_in_eval=True)
    mu, lv = torch.randn(3, 4), torch.randn(3, 4)
    z, kl = layer(mu=mu, logvar=lv)
    kl.sum().backward()
    assert layer.prior_mu.grad is not None and layer.prior_logvar.grad is not None
    assert layer.prior_mu.grad.abs().sum() > 0
    layer.eval()
    z, _ = layer(mu=mu, logvar=lv)
    assert torch.equal(z, mu)


def test_gaussian_latent_call_errors():
    with pytest.raises(ValueError, match="mu= and logvar="):
        GaussianLatent(None, 3)(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="layer\\(h\\)"):
        GaussianLatent(4, 3)(mu=torch.zeros(2, 3), logvar=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="latent_dim"):
        GaussianLatent(4, 0)


def test_vae_training_improves_elbo_and_matches_textbook_model():
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data[:512], dtype=torch.float32) / 16.0
    torch.manual_seed(0)
    fused = VAE(64, latent_dim=4, hidden=64)
    textbook = VAE(64, latent_dim=4, hidden=64, reparam="textbook")
    textbook.load_state_dict(fused.state_dict())
    results = {}
    for name, model in (("fused", fused), ("textbook", textbook)):
        torch.manual_seed(1)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        with torch.no_grad():
            before = model.elbo(x).mean().item()
        for _ in range(150):
            loss = model.loss(x[torch.randint(0, 512, (64,))])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            results[name] = (before, torch.stack([model.elbo(x).mean() for _ in range(8)]).mean().item())
    for before, after in results.values():
        assert after > before + 5.0  # nats per image
    # same architecture, same data and optimizer: the two noise sources end close
    assert abs(results["fused"][1] - results["textbook"][1]) < 3.0
    s = fused.sample(5)
    assert s.shape == (5, 64) and (s >= 0).all() and (s <= 1).all()
    assert fused.reconstruct(x[:3]).shape == (3, 64)


def test_info_reports_every_backend():
    d = gensample.info()
    assert set(d["backends"]["cpu"]) == set(gensample.BACKENDS)
    assert d["backends"]["cpu"]["torch"] is None
    assert d["backends"]["cpu"]["cuda"]  # a reason string on a CPU machine's CPU tensors
    assert d["default_backend"]["cpu"] in ("cpu", "torch")
    text = gensample.format_info(d)
    assert "torch" in text and "available" in text


def test_cli_info_runs():
    out = subprocess.run([sys.executable, "-m", "gensample", "info"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "backends for cpu tensors" in out.stdout


def test_extension_is_optional():
    code = ("import gensample, torch; d = gensample.info(); assert not d['extension']['loaded']; "
            "assert d['default_backend']['cpu'] == 'torch'; "
            "z, kl = gensample.reparameterize_kl(torch.zeros(2, 3), torch.zeros(2, 3)); print('ok')")
    env = {**__import__("os").environ, "GENSAMPLE_DISABLE_EXT": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
