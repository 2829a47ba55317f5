"""``gensample demo``: train the small VAE on scikit-learn's bundled digits with the
fused reparameterize-plus-KL, report the ELBO, and time the fused op against the
textbook reference in the same run."""
from __future__ import annotations

import statistics
import time

import torch


def _load_digits(seed: int):
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0  # (1797, 64) in [0, 1]
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    x = x[perm]
    return x[:1500], x[1500:]


def _median_ms(fn, repeat: int = 15) -> tuple[float, float, float]:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(times, n=10)
    return statistics.median(times), q[1], q[7]


def _speed_table(shape=(4096, 256), backend=None) -> list[tuple[str, float, float, float]]:
    import gensample
    from gensample.reference import reparameterize_kl_textbook

    mu = torch.randn(shape, requires_grad=True)
    lv = torch.randn(shape, requires_grad=True)

    def fused():
        z, kl = gensample.reparameterize_kl(mu, lv, backend=backend)
        (z.sum() + kl.sum()).backward()

    def textbook():
        z, kl = reparameterize_kl_textbook(mu, lv)
        (z.sum() + kl.sum()).backward()

    rows = []
    for name, fn in (("textbook eager", textbook), ("gensample", fused)):
        rows.append((name, *_median_ms(fn)))
    return rows


def run(epochs: int = 30, batch_size: int = 128, seed: int = 0, backend: str | None = None, quick: bool = False) -> dict:
    from tqdm import tqdm

    import gensample
    from gensample.models import VAE

    torch.manual_seed(seed)
    train, test = _load_digits(seed)
    if quick:
        epochs = min(epochs, 3)
    model = VAE(64, latent_dim=8, hidden=128, backend=backend)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    n_batches = (train.shape[0] + batch_size - 1) // batch_size
    bar = tqdm(range(epochs), desc="VAE on digits (fused reparameterize_kl)", unit="epoch")
    t0 = time.perf_counter()
    for _ in bar:
        perm = torch.randperm(train.shape[0])
        total = 0.0
        for b in range(n_batches):
            x = train[perm[b * batch_size:(b + 1) * batch_size]]
            loss = model.loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * x.shape[0]
        bar.set_postfix(train_elbo=f"{-total / train.shape[0]:.2f}")
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        test_elbo = model.elbo(test, generator=torch.Generator().manual_seed(seed)).mean().item()
    d = gensample.info()
    chosen = d["default_backend"]["cpu"] if backend is None else backend
    rows = _speed_table(backend=backend)
    out = {"epochs": epochs, "train_seconds": train_s, "test_elbo_nats": test_elbo, "backend": chosen,
           "speed_fwd_bwd_4096x256_ms": {name: {"p50": m, "p10": lo, "p80": hi} for name, m, lo, hi in rows}}
    print(f"\nVAE (64-128-8) on digits: test ELBO {test_elbo:.2f} nats/image after {epochs} epochs "
          f"({train_s:.1f} s, backend {chosen})")
    print("\nreparameterize + KL, forward + backward, 4096 x 256 fp32 (same run, median [p10, p80]):")
    ref = rows[0][1]
    for name, m, lo, hi in rows:
        print(f"  {name:15s} {m:8.3f} ms  [{lo:.3f}, {hi:.3f}]   {ref / m:5.2f}x textbook")
    return out
