// Schemas of the tempered block Gibbs ops (parallel tempering and AIS for RBMs). The
// executable specification is the torch backend in gensample/ops/tempered.py (which also
// registers the fake implementations); kernels: csrc/cpu/tempered_cpu.cpp (CPU),
// csrc/cuda/tempered_cuda.cu (CUDA); Triton: gensample/ops/tempered_triton.py. Per-element
// math: csrc/include/gensample/tempered.h.
//
// All tensors are float32 and contiguous (the Python wrappers cast); seed is int64 (2,)
// = (seed, offset) on the data's device, read on the device. Sampling ops: no autograd.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(gensample, m) {
  // k tempered block Gibbs sweeps, one inverse temperature beta[r] per chain r.
  // v: (B, n_visible) (binary for Bernoulli visible units: sigma None), weight:
  // (n_visible, n_hidden), visible_base: (n_visible,) base-model visible bias b_A
  // (Bernoulli; zeros for Gaussian), beta: (B,), sigma: (n_visible,) or None.
  // Half-step t (h_0 at t = 0, v_s at 2s - 1, h_s at 2s) draws from substream(seed, t).
  // Returns (v_k, h_k, a_k) with a_k = c + x_k W the untempered hidden pre-activation.
  m.def(
      "tempered_sweeps(Tensor v, Tensor weight, Tensor visible_bias, Tensor hidden_bias, Tensor visible_base, "
      "Tensor beta, Tensor? sigma, Tensor seed, int k) -> (Tensor, Tensor, Tensor)");
  // One whole AIS run over betas (K + 1,): step k = 1..K adds
  // log p*_{beta_k}(v_{k-1}) - log p*_{beta_{k-1}}(v_{k-1}) to log_w (float64), then
  // draws h from substream(seed, 2k - 2) and v from substream(seed, 2k - 1) at beta_k.
  // Returns (log_w (B,) float64, v_K).
  m.def(
      "ais_rbm(Tensor v, Tensor weight, Tensor visible_bias, Tensor hidden_bias, Tensor visible_base, "
      "Tensor betas, Tensor? sigma, Tensor seed) -> (Tensor, Tensor)");
}
