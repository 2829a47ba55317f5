#!/usr/bin/env python
"""Train a small energy-based model with Langevin negatives, a replay buffer and the
contrastive-divergence loss (gensample.ebm), then check what it learned.

    python examples/ebm_toy.py                 # 2-D: 8 Gaussians on a circle (about 40 s on the 2-core dev VM)
    python examples/ebm_toy.py --digits        # also: scikit-learn's 8x8 digits (a few minutes more)

2-D: the data are exact draws from ``gensample.targets.GaussianMixture.circle(8, 2, 0.25)``.
After training, 2000 chains are run from uniform noise with the learned energy (ULA,
then MALA with step-size adaptation) and the script prints the sample mean and
covariance next to the data's, and how the samples spread over the 8 modes (each
mode holds 1/8 of the data mass).

Digits: an MLP energy on the 64 pixels scaled to [-1, 1]; image-EBM settings (step 1,
noise 0.005, value-clipped gradients, clamp to [-1, 1]). The script prints the mean
energy of held-out digits, of the model's samples and of uniform noise (a trained EBM
orders them data <= samples < noise) and the pixel mean of the samples against the data's.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's gensample

import torch  # noqa: E402
from torch import nn  # noqa: E402

import gensample  # noqa: E402
from gensample import LangevinSampler, ReplayBuffer, targets  # noqa: E402
from gensample.ebm import ContrastiveDivergence  # noqa: E402


def mlp(d_in: int, width: int) -> nn.Module:
    class Energy(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(d_in, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                     nn.Linear(width, 1))

        def forward(self, x):
            return self.net(x.reshape(x.shape[0], -1)).squeeze(-1)

    return Energy()


def train(model, data_fn, cd, iters, lr, log_every):
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.0, 0.999))
    t0 = time.perf_counter()
    for it in range(1, iters + 1):
        loss, st = cd.loss(data_fn())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % log_every == 0 or it == iters:
            print(f"  iter {it:5d}  loss {float(loss.detach()):+.4f}  E(data) {float(st.energy_pos):+.3f}  "
                  f"E(neg) {float(st.energy_neg):+.3f}  ({time.perf_counter() - t0:.1f} s)")


def toy_2d(args):
    print("== 2-D: 8 Gaussians on a circle (radius 2, std 0.25)")
    target = targets.GaussianMixture.circle(8, 2.0, 0.25)
    g = torch.Generator().manual_seed(args.seed)
    model = mlp(2, 64)
    buf = ReplayBuffer(10_000, (2,), reinit_prob=0.05, init=lambda n: 3 * (2 * torch.rand(n, 2, generator=g) - 1),
                       generator=g)
    sampler = LangevinSampler(model, step_size=0.005, n_steps=20, generator=g)
    cd = ContrastiveDivergence(model, sampler, buf, alpha=0.1)
    train(model, lambda: target.sample(128, generator=g).float(), cd, args.iters, 2e-3, max(1, args.iters // 5))

    # Fresh chains from noise: ULA to spread out, then MALA (exact for exp(-E)) with adaptation.
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x0 = 3 * (2 * torch.rand(2000, 2, generator=g) - 1)
    x, _ = LangevinSampler(model, step_size=0.005, n_steps=300, generator=g).sample(x0)
    x, info = LangevinSampler(model, step_size=0.01, n_steps=300, metropolis=True, adapt_step_size=True,
                              generator=g).sample(x)
    data = target.sample(100_000, generator=g)
    xs = x.double()
    print(f"  MALA acceptance {float(info.acceptance_rate.mean()):.2f}, "
          f"median adapted step {float(info.step_size.median()):.4f}")
    print(f"  mean        data {fmt(data.mean(0))}   samples {fmt(xs.mean(0))}   exact {fmt(target.mean)}")
    print(f"  covariance  data {fmt(data.T.cov().flatten())}   samples {fmt(xs.T.cov().flatten())}")
    r = xs.norm(dim=1)
    print(f"  radius      data {float(data.norm(dim=1).mean()):.3f} +- {float(data.norm(dim=1).std()):.3f}   "
          f"samples {float(r.mean()):.3f} +- {float(r.std()):.3f}")
    mode = torch.cdist(xs, target.means).argmin(1)
    occ = torch.bincount(mode, minlength=8).double() / xs.shape[0]
    print(f"  mode occupancy (data: 0.125 each): {' '.join(f'{v:.3f}' for v in occ.tolist())}")
    return xs, data


def digits(args):
    from sklearn.datasets import load_digits

    print("== digits: 8x8 scikit-learn digits, MLP energy, image-EBM Langevin settings")
    g = torch.Generator().manual_seed(args.seed)
    x = torch.tensor(load_digits().data, dtype=torch.float32) / 8.0 - 1.0  # [-1, 1]
    perm = torch.randperm(x.shape[0], generator=g)
    train_x, test_x = x[perm[:1500]], x[perm[1500:]]
    model = mlp(64, 256)
    buf = ReplayBuffer(5000, (64,), reinit_prob=0.05, generator=g)
    sampler = LangevinSampler(model, step_size=1.0, noise_scale=0.005, grad_clip=0.03, clamp=(-1.0, 1.0),
                              n_steps=30, generator=g)
    cd = ContrastiveDivergence(model, sampler, buf, alpha=1.0)

    def batch():
        return train_x[torch.randint(0, train_x.shape[0], (128,), generator=g)]

    train(model, batch, cd, args.digit_iters, 1e-4, max(1, args.digit_iters // 5))
    model.eval()
    with torch.no_grad():
        e_test = float(model(test_x).mean())
        e_noise = float(model(2 * torch.rand(500, 64, generator=g) - 1).mean())
    xs, _ = buf.sample(500)
    xs, _ = sampler.sample(xs)
    with torch.no_grad():
        e_samp = float(model(xs).mean())
    print(f"  mean energy: held-out digits {e_test:+.3f}   samples {e_samp:+.3f}   uniform noise {e_noise:+.3f}")
    print(f"  pixel mean: data {float(train_x.mean()):+.3f}   samples {float(xs.mean()):+.3f}")
    print("  a sample (rows of 8 pixels, ' .:-=+*#%@' from dark to light):")
    ramp = " .:-=+*#%@"
    img = ((xs[0].clamp(-1, 1) + 1) / 2 * (len(ramp) - 1)).round().long().view(8, 8)
    for row in img.tolist():
        print("    " + "".join(ramp[v] * 2 for v in row))


def fmt(t) -> str:
    return "[" + ", ".join(f"{float(v):+.3f}" for v in t) + "]"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=1500, help="2-D training iterations")
    ap.add_argument("--digits", action="store_true", help="also train on scikit-learn's digits")
    ap.add_argument("--digit-iters", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    print(f"gensample {gensample.__version__}, backend {gensample._backend.resolve(None, torch.device('cpu'))}, "
          f"torch threads {torch.get_num_threads()}")
    toy_2d(args)
    if args.digits:
        digits(args)


if __name__ == "__main__":
    main()
