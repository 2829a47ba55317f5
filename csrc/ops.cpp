// gensample._C: operator schemas (TORCH_LIBRARY) and the Python module.
//
// The schemas of the streams and reparam_kl are declared here; every other op family
// declares its own in csrc/<family>_ops.cpp with TORCH_LIBRARY_FRAGMENT(gensample, m).
// Each backend registers its kernels for its
// dispatch key in its own file: csrc/cpu/*.cpp (CPU) and csrc/cuda/*.cu (CUDA).
// Fake (meta) and autograd implementations are registered from Python
// (gensample/ops/*.py), as in pytorch/extension-cpp.
#include <pybind11/pybind11.h>
#include <torch/library.h>

#include <string>

TORCH_LIBRARY(gensample, m) {
  // Streams. seed: int64 (2,) = (seed, offset) on the output device. Returns a
  // float32 1-D tensor of numel elements on seed's device.
  m.def("philox_uniform(Tensor seed, SymInt numel) -> Tensor");
  m.def("philox_normal(Tensor seed, SymInt numel) -> Tensor");
  // Fused reparameterize + KL. mu, logvar: (R, D), any strides. prior_mu,
  // prior_logvar: (R, D) views (usually expanded, stride 0) or None for N(0, 1).
  // Returns z: (n_samples, R, D) contiguous and kl: (R,), both in mu's dtype.
  m.def(
      "reparam_kl_fwd(Tensor mu, Tensor logvar, Tensor? prior_mu, Tensor? prior_logvar, "
      "Tensor seed, int n_samples) -> (Tensor, Tensor)");
  // Backward: grad_z (n_samples, R, D) or None, grad_kl (R,) or None. Returns
  // (grad_mu, grad_logvar, grad_prior_mu, grad_prior_logvar): the first two (R, D)
  // contiguous; the prior gradients (R, D) when prior_grads is true, else empty (0,).
  m.def(
      "reparam_kl_bwd(Tensor? grad_z, Tensor? grad_kl, Tensor mu, Tensor logvar, "
      "Tensor? prior_mu, Tensor? prior_logvar, Tensor seed, int n_samples, bool prior_grads) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
}

namespace gensample {
namespace cpu {
size_t pool_cached_bytes();
size_t pool_capacity_bytes();
size_t pool_live_bytes();
size_t pool_reset_peak();
void pool_clear();
}  // namespace cpu
}  // namespace gensample

namespace {
pybind11::dict build_info() {
  pybind11::dict d;
#ifdef GENSAMPLE_WITH_CUDA
  d["cuda"] = true;
#else
  d["cuda"] = false;
#endif
#if defined(__GNUC__) && !defined(__clang__)
  d["compiler"] = std::string("gcc ") + __VERSION__;
#elif defined(__clang__)
  d["compiler"] = std::string("clang ") + __clang_version__;
#endif
  return d;
}
}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "gensample C++/CUDA kernels (ops are registered under torch.ops.gensample)";
  m.def("build_info", &build_info, "How this extension was built");
  m.def("cpu_pool_stats", [] {
    pybind11::dict d;
    d["cached_bytes"] = gensample::cpu::pool_cached_bytes();
    d["capacity_bytes"] = gensample::cpu::pool_capacity_bytes();
    d["live_bytes"] = gensample::cpu::pool_live_bytes();
    return d;
  }, "Bytes held by the cache of large CPU outputs, its capacity (GENSAMPLE_CPU_POOL_MB), and bytes of pooled outputs alive");
  m.def("cpu_pool_reset_peak", &gensample::cpu::pool_reset_peak,
        "High-water mark of live pooled output bytes since the last call (restarts it)");
  m.def("cpu_pool_clear", &gensample::cpu::pool_clear, "Free every cached CPU output buffer");
}
