// Operator schemas of the Langevin family (TORCH_LIBRARY_FRAGMENT; the library and
// the Python module are defined in csrc/ops.cpp). Per-element math:
// csrc/include/gensample/langevin.h; torch-backend specification, fake
// implementations and the public API: gensample/ops/langevin.py. Kernels:
// csrc/cpu/langevin_cpu.cpp (CPU), csrc/cuda/langevin_cuda.cu (CUDA).
//
// x, grad: float32 contiguous (C, M) (chains are rows); step_size, noise_scale:
// float32 (C,); seed: int64 (2,) = (seed, offset) on the data's device, read there.
// clip_mode: 0 none, 1 value (|g| <= grad_clip), 2 norm (per-chain L2 norm <= grad_clip).
// clamp_lo/clamp_hi: -inf/+inf when no clamp. grad_norm: per-chain L2 norm of the
// raw grad, float32 (C,), when want_norm or clip_mode == 2, else an empty (0,) tensor.
// None of these ops synchronizes with the host or is differentiable (sampling).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(gensample, m) {
  m.def(
      "langevin_step(Tensor x, Tensor grad, Tensor step_size, Tensor noise_scale, Tensor seed, "
      "float grad_clip, int clip_mode, float clamp_lo, float clamp_hi, bool want_norm) "
      "-> (Tensor out, Tensor grad_norm)");
  m.def(
      "langevin_step_(Tensor(a!) x, Tensor grad, Tensor step_size, Tensor noise_scale, Tensor seed, "
      "float grad_clip, int clip_mode, float clamp_lo, float clamp_hi, bool want_norm) "
      "-> Tensor grad_norm");
  // MALA accept/reject, in place: chains with u_c < exp(min(log_alpha_c, 0)) take
  // (x_prop, grad_prop, energy_prop); seed is the accept draw's pair (u_c = element c
  // of its uniform stream). energy, energy_prop: float32 (C,). Returns accepted
  // (bool (C,)) and log_alpha (float32 (C,)).
  m.def(
      "mala_accept_(Tensor(a!) x, Tensor(b!) grad, Tensor(c!) energy, Tensor x_prop, Tensor grad_prop, "
      "Tensor energy_prop, Tensor step_size, Tensor noise_scale, Tensor seed) "
      "-> (Tensor accepted, Tensor log_alpha)");
  // SGLD over a list of float32 contiguous tensors; element e of tensor k uses
  // stream element base_k + e, base_k = sum_{j<k} numel_j rounded up to 4.
  m.def(
      "sgld_step_(Tensor(a!)[] params, Tensor[] grads, float lr, float noise_scale, float weight_decay, "
      "Tensor seed) -> ()");
}
