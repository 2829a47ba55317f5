// CUDA kernels of the Langevin family: langevin_step / langevin_step_ (fused clip,
// update, in-kernel noise, clamp), mala_accept_ (per-chain log-ratio, decision,
// select; no host sync) and sgld_step_ (one multi-tensor launch per list of up to
// kSgldMaxTensors tensors).
//
// The per-thread programs are gensample/kernels/langevin_thread.h (also run over the
// same grid on the CPU by tests/test_langevin_cuda_sim.py); the per-element math is
// gensample/langevin.h. Block reductions of the per-chain float64 sums (norm clip,
// MALA) use warp shuffles and shared memory here, in a fixed order: deterministic.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "gensample/kernels/cuda_utils.cuh"
#include "gensample/kernels/langevin_thread.h"

namespace gensample {
namespace cuda {
namespace {

using kernels::kThreads;
using kernels::kWarpSize;

// --- kernels ---------------------------------------------------------------------

template <int kMode>
__global__ void __launch_bounds__(kThreads) langevin_step_kernel(const kernels::LangevinStepArgs a, int64_t groups) {
  kernels::step_thread<kMode>(a, groups, blockIdx.x, gridDim.x, threadIdx.x, blockDim.x);
}

__global__ void __launch_bounds__(kThreads)
    chain_norm_kernel(const kernels::NormArgs a, const kernels::ChainReduceLaunch L) {
  __shared__ double smem[kThreads / kWarpSize];
  // item depends on blockIdx only: every thread of the block reaches row_sum together.
  for (int64_t item = blockIdx.x; item < L.items; item += gridDim.x) {
    double v = kernels::norm_partial(a, L, item, threadIdx.x);
    v = row_sum<double>(v, kThreads, smem);
    if (threadIdx.x == 0) kernels::norm_store(a, L, item, v);
  }
}

__global__ void __launch_bounds__(kThreads) chain_norm_finalize_kernel(const kernels::NormArgs a, int64_t nseg) {
  kernels::norm_finalize_thread(a, nseg, blockIdx.x, gridDim.x, threadIdx.x, blockDim.x);
}

__global__ void __launch_bounds__(kThreads)
    mala_reduce_kernel(const kernels::MalaArgs a, const kernels::ChainReduceLaunch L) {
  __shared__ double smem[kThreads / kWarpSize];
  for (int64_t item = blockIdx.x; item < L.items; item += gridDim.x) {
    kernels::Sums2 s = kernels::mala_partial(a, L, item, threadIdx.x);
    s.fwd = row_sum<double>(s.fwd, kThreads, smem);
    s.bwd = row_sum<double>(s.bwd, kThreads, smem);
    if (threadIdx.x == 0) kernels::mala_store(a, L, item, s);
  }
}

__global__ void __launch_bounds__(kThreads) mala_finalize_kernel(const kernels::MalaArgs a, int64_t nseg) {
  kernels::mala_finalize_thread(a, nseg, blockIdx.x, gridDim.x, threadIdx.x, blockDim.x);
}

__global__ void __launch_bounds__(kThreads) mala_select_kernel(const kernels::MalaArgs a, int64_t groups) {
  kernels::select_thread(a, groups, blockIdx.x, gridDim.x, threadIdx.x, blockDim.x);
}

__global__ void __launch_bounds__(kThreads)
    sgld_kernel(const kernels::SgldChunk ch, const int64_t* __restrict__ seed, int64_t seed_stride) {
  kernels::sgld_thread(ch, seed, seed_stride, blockIdx.x, threadIdx.x, blockDim.x);
}

// Resident blocks per SM of a kernel at kThreads threads (the grid is one wave of
// them). An occupancy query (host only, no sync), made once per kernel.
template <typename Kernel>
int query_blocks_per_sm(Kernel kernel) {
  int n = 0;
  C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, 0));
  return n > 0 ? n : 1;
}

// --- checks --------------------------------------------------------------------------

void check_f32(const at::Tensor& t, const char* op, const char* name, const at::Tensor& x) {
  TORCH_CHECK(t.scalar_type() == at::kFloat, op, ": ", name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.device() == x.device(), op, ": ", name, " is on ", t.device(), " but x is on ", x.device());
}

void check_chain_tensor(const at::Tensor& t, const char* op, const char* name, const at::Tensor& x, int64_t C) {
  check_f32(t, op, name, x);
  TORCH_CHECK(t.dim() == 1 && t.size(0) == C, op, ": ", name, " must have shape (", C, ",), got ", t.sizes());
}

void check_like_x(const at::Tensor& t, const char* op, const char* name, const at::Tensor& x) {
  check_f32(t, op, name, x);
  TORCH_CHECK(t.sizes() == x.sizes(), op, ": ", name, " must have x's shape ", x.sizes(), ", got ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

int64_t check_x(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.is_cuda(), op, ": x must be a CUDA tensor, got one on ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat, op, ": x must be float32, got ", x.scalar_type());
  TORCH_CHECK(x.dim() >= 1, op, ": x must have a chain dimension (dim 0)");
  TORCH_CHECK(x.is_contiguous(), op, ": x must be contiguous");
  return x.size(0);
}

// --- langevin_step ------------------------------------------------------------------

template <int kMode>
void launch_step(const kernels::LangevinStepArgs& a, int sms, cudaStream_t stream) {
  static const int occ = query_blocks_per_sm(langevin_step_kernel<kMode>);
  const kernels::ElementwiseLaunch c = kernels::elementwise_launch(a.numel, sms, occ);
  langevin_step_kernel<kMode><<<static_cast<unsigned int>(c.blocks), c.threads, 0, stream>>>(a, c.groups);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor step_into(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& out, const at::Tensor& step_size,
                     const at::Tensor& noise_scale, const at::Tensor& seed, double grad_clip, int64_t clip_mode,
                     double clamp_lo, double clamp_hi, bool want_norm, const char* op) {
  const int64_t C = check_x(x, op);
  check_like_x(grad, op, "grad", x);
  check_chain_tensor(step_size, op, "step_size", x, C);
  check_chain_tensor(noise_scale, op, "noise_scale", x, C);
  check_seed(seed, x.device(), op);
  TORCH_CHECK(clip_mode >= 0 && clip_mode <= 2, op, ": clip_mode must be 0 (none), 1 (value) or 2 (norm), got ",
              clip_mode);
  TORCH_CHECK(clip_mode == 0 || grad_clip > 0, op, ": grad_clip must be positive, got ", grad_clip);
  TORCH_CHECK(clamp_lo < clamp_hi, op, ": clamp_lo must be below clamp_hi, got ", clamp_lo, " >= ", clamp_hi);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t numel = x.numel();
  const int64_t M = C > 0 ? numel / C : 0;
  const bool need_norm = want_norm || clip_mode == 2;
  at::Tensor grad_norm = at::empty({need_norm ? C : 0}, x.options());
  if (numel == 0) return need_norm ? grad_norm.zero_() : grad_norm;
  const int sms = sm_count(x.device().index());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor scale;
  if (clip_mode == 2) scale = at::empty({C}, x.options());
  if (need_norm) {
    static const int occ = query_blocks_per_sm(chain_norm_kernel);
    const kernels::ChainReduceLaunch L = kernels::chain_reduce_launch(C, M, sms, occ);
    at::Tensor ws;
    if (L.nseg > 1) ws = at::empty({C * L.nseg}, x.options().dtype(at::kDouble));
    const kernels::NormArgs na = kernels::make_norm_args(
        grad.const_data_ptr<float>(), C, M, static_cast<float>(grad_clip), grad_norm.data_ptr<float>(),
        clip_mode == 2 ? scale.data_ptr<float>() : nullptr, L.nseg > 1 ? ws.data_ptr<double>() : nullptr);
    chain_norm_kernel<<<static_cast<unsigned int>(L.blocks), L.threads, 0, stream>>>(na, L);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (L.nseg > 1) {
      const auto fb = static_cast<unsigned int>(kernels::grid_blocks(kernels::ceil_div(C, kThreads), sms));
      chain_norm_finalize_kernel<<<fb, kThreads, 0, stream>>>(na, L.nseg);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  }
  const kernels::LangevinStepArgs a = kernels::make_step_args(
      x.const_data_ptr<float>(), grad.const_data_ptr<float>(), out.data_ptr<float>(), step_size.const_data_ptr<float>(),
      step_size.stride(0), noise_scale.const_data_ptr<float>(), noise_scale.stride(0),
      clip_mode == 2 ? scale.const_data_ptr<float>() : nullptr, seed.const_data_ptr<int64_t>(), seed.stride(0), C, M,
      static_cast<float>(grad_clip), static_cast<float>(clamp_lo), static_cast<float>(clamp_hi));
  // (clamp_lo, clamp_hi) = (-inf, +inf) without a clamp: the kernels' clamp is then the identity.
  switch (clip_mode) {
    case 0: launch_step<langevin::kClipNone>(a, sms, stream); break;
    case 1: launch_step<langevin::kClipValue>(a, sms, stream); break;
    default: launch_step<langevin::kClipNorm>(a, sms, stream); break;
  }
  return grad_norm;
}

std::tuple<at::Tensor, at::Tensor> langevin_step_cuda(const at::Tensor& x, const at::Tensor& grad,
                                                      const at::Tensor& step_size, const at::Tensor& noise_scale,
                                                      const at::Tensor& seed, double grad_clip, int64_t clip_mode,
                                                      double clamp_lo, double clamp_hi, bool want_norm) {
  at::Tensor out = at::empty(x.sizes(), x.options());
  at::Tensor n = step_into(x, grad, out, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi,
                           want_norm, "langevin_step");
  return {out, n};
}

at::Tensor langevin_step__cuda(at::Tensor& x, const at::Tensor& grad, const at::Tensor& step_size,
                               const at::Tensor& noise_scale, const at::Tensor& seed, double grad_clip,
                               int64_t clip_mode, double clamp_lo, double clamp_hi, bool want_norm) {
  return step_into(x, grad, x, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi, want_norm,
                   "langevin_step_");
}

// --- mala_accept_ --------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor> mala_accept__cuda(at::Tensor& x, at::Tensor& grad, at::Tensor& energy,
                                                     const at::Tensor& x_prop, const at::Tensor& grad_prop,
                                                     const at::Tensor& energy_prop, const at::Tensor& step_size,
                                                     const at::Tensor& noise_scale, const at::Tensor& seed) {
  const char* op = "mala_accept_";
  const int64_t C = check_x(x, op);
  check_like_x(grad, op, "grad", x);
  check_like_x(x_prop, op, "x_prop", x);
  check_like_x(grad_prop, op, "grad_prop", x);
  check_chain_tensor(energy, op, "energy", x, C);
  TORCH_CHECK(energy.is_contiguous(), op, ": energy must be contiguous");
  check_chain_tensor(energy_prop, op, "energy_prop", x, C);
  check_chain_tensor(step_size, op, "step_size", x, C);
  check_chain_tensor(noise_scale, op, "noise_scale", x, C);
  check_seed(seed, x.device(), op);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor accepted = at::empty({C}, x.options().dtype(at::kBool));
  at::Tensor log_alpha = at::empty({C}, x.options());
  if (C == 0) return {accepted, log_alpha};
  const int64_t M = x.numel() / C;
  const int sms = sm_count(x.device().index());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  static const int reduce_occ = query_blocks_per_sm(mala_reduce_kernel);
  const kernels::ChainReduceLaunch L = kernels::chain_reduce_launch(C, M, sms, reduce_occ);
  at::Tensor ws;
  if (L.nseg > 1) ws = at::empty({C * 2 * L.nseg}, x.options().dtype(at::kDouble));
  const kernels::MalaArgs a = kernels::make_mala_args(
      x.data_ptr<float>(), grad.data_ptr<float>(), energy.data_ptr<float>(), x_prop.const_data_ptr<float>(),
      grad_prop.const_data_ptr<float>(), energy_prop.const_data_ptr<float>(), step_size.const_data_ptr<float>(),
      step_size.stride(0), noise_scale.const_data_ptr<float>(), noise_scale.stride(0), seed.const_data_ptr<int64_t>(),
      seed.stride(0), accepted.data_ptr<bool>(), log_alpha.data_ptr<float>(),
      L.nseg > 1 ? ws.data_ptr<double>() : nullptr, C, M);
  mala_reduce_kernel<<<static_cast<unsigned int>(L.blocks), L.threads, 0, stream>>>(a, L);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (L.nseg > 1) {
    const auto fb = static_cast<unsigned int>(kernels::grid_blocks(kernels::ceil_div(C, kThreads), sms));
    mala_finalize_kernel<<<fb, kThreads, 0, stream>>>(a, L.nseg);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (M > 0) {
    static const int select_occ = query_blocks_per_sm(mala_select_kernel);
    const kernels::ElementwiseLaunch c = kernels::elementwise_launch(C * M, sms, select_occ);
    mala_select_kernel<<<static_cast<unsigned int>(c.blocks), c.threads, 0, stream>>>(a, c.groups);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {accepted, log_alpha};
}

// --- sgld_step_ ----------------------------------------------------------------------

void sgld_step__cuda(at::TensorList params, at::TensorList grads, double lr, double noise_scale, double weight_decay,
                     const at::Tensor& seed) {
  const char* op = "sgld_step_";
  TORCH_CHECK(params.size() == grads.size(), op, ": params and grads must have the same length, got ", params.size(),
              " and ", grads.size());
  if (params.empty()) return;
  const at::Tensor& p0 = params[0];
  TORCH_CHECK(p0.is_cuda(), op, ": params must be CUDA tensors, got one on ", p0.device());
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i];
    const at::Tensor& g = grads[i];
    TORCH_CHECK(p.scalar_type() == at::kFloat && p.device() == p0.device() && p.is_contiguous(), op, ": params[", i,
                "] must be a contiguous float32 tensor on ", p0.device());
    TORCH_CHECK(g.scalar_type() == at::kFloat && g.device() == p0.device() && g.is_contiguous() &&
                    g.sizes() == p.sizes(),
                op, ": grads[", i, "] must be a contiguous float32 tensor of shape ", p.sizes(), " on ", p0.device());
  }
  check_seed(seed, p0.device(), op);
  const c10::cuda::CUDAGuard guard(p0.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  std::vector<float*> theta(params.size());
  std::vector<const float*> grad(params.size());
  std::vector<int64_t> numel(params.size());
  for (size_t k = 0; k < params.size(); ++k) {
    theta[k] = params[k].data_ptr<float>();
    grad[k] = grads[k].const_data_ptr<float>();
    numel[k] = params[k].numel();
  }
  uint64_t base = 0;  // stream index of the next tensor's element 0
  size_t i = 0;
  kernels::SgldChunk ch;
  while (i < params.size()) {
    const int64_t blocks = kernels::sgld_next_chunk(ch, theta.data(), grad.data(), numel.data(), params.size(), i,
                                                    base, static_cast<float>(lr), static_cast<float>(noise_scale),
                                                    static_cast<float>(weight_decay));
    if (blocks == 0) continue;
    TORCH_CHECK(blocks <= 0x7FFFFFFFLL, op, ": too many elements for one launch");
    sgld_kernel<<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(ch, seed.const_data_ptr<int64_t>(),
                                                                           seed.stride(0));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace
}  // namespace cuda
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CUDA, m) {
  m.impl("langevin_step", &gensample::cuda::langevin_step_cuda);
  m.impl("langevin_step_", &gensample::cuda::langevin_step__cuda);
  m.impl("mala_accept_", &gensample::cuda::mala_accept__cuda);
  m.impl("sgld_step_", &gensample::cuda::sgld_step__cuda);
}
