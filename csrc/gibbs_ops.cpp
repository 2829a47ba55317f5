// Schemas of the block Gibbs (RBM) ops. Kernels: csrc/cpu/gibbs_cpu.cpp (CPU) and
// csrc/cuda/gibbs_cuda.cu (CUDA); Triton and torch-backend versions are registered from
// Python (gensample/ops/gibbs_triton.py, gensample/ops/gibbs.py), which also registers
// the fake implementations. Per-element math: csrc/include/gensample/gibbs.h.
//
// All tensors are float32 and contiguous (the Python wrappers cast); seed is int64 (2,)
// = (seed, offset) on the data's device, read on the device. Sampling ops: no autograd.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(gensample, m) {
  // Bernoulli half-step: acc = x @ weight (transpose=false) or x @ weight^T (true),
  // prob = sigmoid(beta * (acc + bias)), state = (u < prob) with u element r * n_out + j
  // of the uniform stream of seed. x: (B, n_in), weight: (n_visible, n_hidden),
  // bias: (n_out,). Returns (state, prob), both (B, n_out).
  m.def(
      "gibbs_half_step(Tensor x, Tensor weight, Tensor bias, Tensor seed, float beta, bool transpose) "
      "-> (Tensor, Tensor)");
  // Gaussian visible half-step: mean = bias + sigma * (h @ weight^T),
  // v = mean + noise_std * eps with eps element r * n_visible + j of the normal stream.
  // h: (B, n_hidden); bias, sigma, noise_std: (n_visible,). Returns (v, mean), (B, n_visible).
  m.def(
      "gaussian_half_step(Tensor h, Tensor weight, Tensor bias, Tensor sigma, Tensor noise_std, Tensor seed) "
      "-> (Tensor, Tensor)");
  // k block Gibbs sweeps of a Bernoulli-Bernoulli RBM from binary v_0: half-step t
  // (h_0 at t = 0, v_s at t = 2s - 1, h_s at t = 2s) draws from substream(seed, t) =
  // (seed, offset + t * 2^32). Returns (v_k, h_k, p(h = 1 | v_k)).
  m.def(
      "gibbs_sweeps(Tensor v, Tensor weight, Tensor visible_bias, Tensor hidden_bias, Tensor seed, int k, "
      "float beta) -> (Tensor, Tensor, Tensor)");
  // Input validation in one pass, with no temporaries: the number of entries of the
  // float32 tensor x that are not 0 or 1 (-0 counts as 0; NaN and Inf are not binary).
  // Used by the Python wrappers in eager mode (CPU tensors), never traced.
  m.def("count_nonbinary(Tensor x) -> int");
}
