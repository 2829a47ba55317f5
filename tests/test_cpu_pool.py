"""The cpu backend's cache of large output buffers: reuse, correctness, limits."""
import os
import subprocess
import sys

import pytest
import torch

import gensample
from gensample import _ext
from gensample import random as R

pytestmark = pytest.mark.skipif(not _ext.loaded(), reason=f"extension not loaded: {_ext.error()}")

BIG = 1 << 20  # 4 MiB of float32: pooled


def test_large_outputs_are_reused_and_fully_rewritten():
    gensample.empty_cache()
    assert gensample.cpu_pool_stats()["cached_bytes"] == 0
    a = torch.ops.gensample.philox_normal(R.seed_pair(1), BIG)
    ptr = a.data_ptr()
    ref = a.clone()
    del a
    assert gensample.cpu_pool_stats()["cached_bytes"] >= BIG * 4
    b = torch.ops.gensample.philox_normal(R.seed_pair(2), BIG)
    assert b.data_ptr() == ptr  # the freed buffer came back
    assert torch.equal(b, R.normal_stream(R.seed_pair(2), BIG))  # and every element was rewritten
    assert not torch.equal(b, ref)
    del b
    gensample.empty_cache()
    assert gensample.cpu_pool_stats()["cached_bytes"] == 0


def test_reparam_outputs_from_pool_are_ordinary_tensors():
    mu = torch.randn(1024, 512, requires_grad=True)
    lv = torch.randn(1024, 512, requires_grad=True)
    for _ in range(3):  # second and third iterations reuse buffers
        z, kl = gensample.reparameterize_kl(mu, lv, generator=torch.Generator().manual_seed(0), backend="cpu")
        (z.sum() + kl.sum()).backward()
    zt, klt = gensample.reparameterize_kl(mu, lv, generator=torch.Generator().manual_seed(0), backend="torch")
    torch.testing.assert_close(z, zt, atol=1e-5, rtol=1e-5)
    # gradients accumulated over three identical steps
    mu2 = mu.detach().clone().requires_grad_(True)
    z2, kl2 = gensample.reparameterize_kl(mu2, lv.detach(), generator=torch.Generator().manual_seed(0), backend="torch")
    (z2.sum() + kl2.sum()).backward()
    torch.testing.assert_close(mu.grad, 3 * mu2.grad, atol=1e-4, rtol=1e-5)
    zd = z.detach()
    zd.add_(1.0)  # outputs are writable, views and numpy work
    assert zd.numpy().shape == (1024, 512) and zd[:2].sum().isfinite()


def test_small_outputs_and_disabled_pool_bypass_the_cache():
    gensample.empty_cache()
    a = torch.ops.gensample.philox_uniform(R.seed_pair(1), 1000)  # 4 KB: not pooled
    del a
    assert gensample.cpu_pool_stats()["cached_bytes"] == 0
    code = ("import torch, gensample; from gensample import random as R;"
            "a = torch.ops.gensample.philox_normal(R.seed_pair(1), 1 << 20); del a;"
            "s = gensample.cpu_pool_stats(); assert s['capacity_bytes'] == 0 and s['cached_bytes'] == 0, s; print('ok')")
    env = {**os.environ, "GENSAMPLE_CPU_POOL_MB": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_pool_is_bounded():
    code = ("import torch, gensample; from gensample import random as R;"
            "xs = [torch.ops.gensample.philox_uniform(R.seed_pair(i), 1 << 20) for i in range(3)]; del xs;"
            "s = gensample.cpu_pool_stats(); assert s['cached_bytes'] <= s['capacity_bytes'] == (5 << 20), s; print('ok')")
    env = {**os.environ, "GENSAMPLE_CPU_POOL_MB": "5"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
