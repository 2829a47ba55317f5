// CUDA kernels of the fused reparameterization + KL op (reparam_kl_fwd / _bwd).
//
// Forward: a block owns a tile of rows (tpr threads per row), each thread one
// Philox call (4 z elements, 16-byte vectors when the row allows) per sample, KL row
// sums by warp-shuffle / shared-memory reduction, no atomics; long rows on a small
// batch are split into segments summed by a second, deterministic kernel.
// Backward: elementwise over 4-element chunks, eps regenerated from the seed.
// The per-thread programs are gensample/kernels/reparam_thread.h (also run over
// the same grid on the CPU by tests/test_cuda_sim.py).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "gensample/kernels/cuda_utils.cuh"
#include "gensample/kernels/reparam_thread.h"

namespace gensample {
namespace cuda {
namespace {

using kernels::kThreads;
using kernels::kWarpSize;

template <typename scalar_t, typename opmath_t>
__global__ void __launch_bounds__(kThreads)
    reparam_kl_fwd_kernel(const kernels::ReparamFwdArgs<scalar_t, opmath_t> a, const kernels::ReparamFwdLaunch c) {
  __shared__ opmath_t smem[kThreads / kWarpSize];
  const kernels::SeedPair sp = kernels::read_seed(a.seed, a.seed_stride);
  // item depends on blockIdx only: the trip count is uniform over the block, so
  // every thread reaches row_sum's shuffles and barriers together.
  for (int64_t item = blockIdx.x; item < c.items; item += gridDim.x) {
    const kernels::FwdCoords co = kernels::fwd_coords(c, item, static_cast<int>(threadIdx.x));
    opmath_t acc = kernels::fwd_item<scalar_t, opmath_t>(a, c, sp, co);
    acc = row_sum<opmath_t>(acc, c.tpr, smem);
    kernels::fwd_store_kl<scalar_t, opmath_t>(a, c, co, acc);
  }
}

template <typename scalar_t, typename opmath_t>
__global__ void __launch_bounds__(kThreads)
    kl_finalize_kernel(const opmath_t* __restrict__ ws, scalar_t* __restrict__ kl, int64_t R, int64_t nseg) {
  kernels::kl_finalize_thread<scalar_t, opmath_t>(ws, kl, R, nseg, blockIdx.x, gridDim.x, threadIdx.x, blockDim.x);
}

template <typename scalar_t, typename opmath_t>
__global__ void __launch_bounds__(kThreads)
    reparam_kl_bwd_kernel(const kernels::ReparamBwdArgs<scalar_t> a, int64_t chunks) {
  kernels::bwd_thread<scalar_t, opmath_t>(a, chunks, blockIdx.x, gridDim.x, threadIdx.x, blockDim.x);
}

// --- argument checks ---------------------------------------------------------

void check_rd(const at::Tensor& t, const at::Tensor& mu, const char* op, const char* name) {
  TORCH_CHECK(t.sizes() == mu.sizes(), op, ": ", name, " must have mu's shape ", mu.sizes(), ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == mu.scalar_type(), op, ": ", name, " must have mu's dtype ", mu.scalar_type(),
              ", got ", t.scalar_type());
  TORCH_CHECK(t.device() == mu.device(), op, ": ", name, " is on ", t.device(), " but mu is on ", mu.device());
}

void check_inputs(const at::Tensor& mu, const at::Tensor& logvar, const std::optional<at::Tensor>& prior_mu,
                  const std::optional<at::Tensor>& prior_logvar, const at::Tensor& seed, int64_t n_samples,
                  const char* op) {
  TORCH_CHECK(mu.is_cuda(), op, ": mu must be a CUDA tensor, got one on ", mu.device());
  TORCH_CHECK(mu.dim() == 2, op, ": mu must be 2-D (R, D), got ", mu.dim(), " dims");
  const auto st = mu.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16, op,
              ": unsupported dtype ", st);
  check_rd(logvar, mu, op, "logvar");
  if (present(prior_mu)) check_rd(*prior_mu, mu, op, "prior_mu");
  if (present(prior_logvar)) check_rd(*prior_logvar, mu, op, "prior_logvar");
  check_seed(seed, mu.device(), op);
  TORCH_CHECK(n_samples >= 0, op, ": n_samples must be non-negative, got ", n_samples);
}

template <typename scalar_t>
kernels::View2<scalar_t> view2(const at::Tensor& t) {
  return {t.const_data_ptr<scalar_t>(), t.stride(0), t.stride(1)};
}
template <typename scalar_t>
kernels::View2<scalar_t> view2(const std::optional<at::Tensor>& t) {
  if (!present(t)) return {nullptr, 0, 0};
  return view2<scalar_t>(*t);
}

// --- forward -------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor> reparam_kl_fwd_cuda(const at::Tensor& mu, const at::Tensor& logvar,
                                                        const std::optional<at::Tensor>& prior_mu,
                                                        const std::optional<at::Tensor>& prior_logvar,
                                                        const at::Tensor& seed, int64_t n_samples) {
  const char* op = "reparam_kl_fwd";
  check_inputs(mu, logvar, prior_mu, prior_logvar, seed, n_samples, op);
  const c10::cuda::CUDAGuard guard(mu.device());
  const int64_t R = mu.size(0), D = mu.size(1), S = n_samples;
  at::Tensor z = at::empty({S, R, D}, mu.options());
  at::Tensor kl = at::empty({R}, mu.options());
  if (R == 0) return {z, kl};
  const int sms = sm_count(mu.device().index());
  const kernels::ReparamFwdLaunch c = kernels::reparam_fwd_launch(R, D, S, sms);
  if (c.blocks == 0) return {z, kl};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mu.scalar_type(), "reparam_kl_fwd_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    at::Tensor ws;
    opmath_t* ws_ptr = nullptr;
    if (c.nseg > 1) {  // partial row sums of the row segments
      ws = at::empty({R * c.nseg}, mu.options().dtype(c10::CppTypeToScalarType<opmath_t>::value));
      ws_ptr = ws.data_ptr<opmath_t>();
    }
    const auto a = kernels::make_fwd_args<scalar_t, opmath_t>(
        view2<scalar_t>(mu), view2<scalar_t>(logvar), view2<scalar_t>(prior_mu), view2<scalar_t>(prior_logvar),
        z.data_ptr<scalar_t>(), kl.data_ptr<scalar_t>(), ws_ptr, seed.const_data_ptr<int64_t>(), seed.stride(0), R, D,
        S);
    reparam_kl_fwd_kernel<scalar_t, opmath_t><<<static_cast<unsigned int>(c.blocks), c.threads, 0, stream>>>(a, c);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (c.nseg > 1) {
      const kernels::KlFinalizeLaunch f = kernels::kl_finalize_launch(R, sms);
      kl_finalize_kernel<scalar_t, opmath_t><<<static_cast<unsigned int>(f.blocks), f.threads, 0, stream>>>(
          ws_ptr, a.kl, R, c.nseg);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {z, kl};
}

// --- backward ------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> reparam_kl_bwd_cuda(
    const std::optional<at::Tensor>& grad_z, const std::optional<at::Tensor>& grad_kl, const at::Tensor& mu,
    const at::Tensor& logvar, const std::optional<at::Tensor>& prior_mu, const std::optional<at::Tensor>& prior_logvar,
    const at::Tensor& seed, int64_t n_samples, bool prior_grads) {
  const char* op = "reparam_kl_bwd";
  check_inputs(mu, logvar, prior_mu, prior_logvar, seed, n_samples, op);
  const int64_t R = mu.size(0), D = mu.size(1), S = n_samples;
  if (present(grad_z)) {
    const at::Tensor& g = *grad_z;
    TORCH_CHECK(g.dim() == 3 && g.size(0) == S && g.size(1) == R && g.size(2) == D, op,
                ": grad_z must have shape (n_samples, R, D) = (", S, ", ", R, ", ", D, "), got ", g.sizes());
    TORCH_CHECK(g.scalar_type() == mu.scalar_type() && g.device() == mu.device(), op,
                ": grad_z must match mu's dtype and device");
  }
  if (present(grad_kl)) {
    const at::Tensor& g = *grad_kl;
    TORCH_CHECK(g.dim() == 1 && g.size(0) == R, op, ": grad_kl must have shape (R,) = (", R, ",), got ", g.sizes());
    TORCH_CHECK(g.scalar_type() == mu.scalar_type() && g.device() == mu.device(), op,
                ": grad_kl must match mu's dtype and device");
  }
  const c10::cuda::CUDAGuard guard(mu.device());
  at::Tensor dmu = at::empty({R, D}, mu.options());
  at::Tensor dlv = at::empty({R, D}, mu.options());
  at::Tensor dpm = prior_grads ? at::empty({R, D}, mu.options()) : at::empty({0}, mu.options());
  at::Tensor dplv = prior_grads ? at::empty({R, D}, mu.options()) : at::empty({0}, mu.options());
  if (R * D == 0) return {dmu, dlv, dpm, dplv};
  const kernels::ReparamBwdLaunch c = kernels::reparam_bwd_launch(R, D, sm_count(mu.device().index()));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mu.scalar_type(), "reparam_kl_bwd_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* gz = nullptr;
    int64_t gz_ss = 0, gz_rs = 0, gz_cs = 0;
    if (present(grad_z)) {
      gz = grad_z->const_data_ptr<scalar_t>();
      gz_ss = grad_z->stride(0);
      gz_rs = grad_z->stride(1);
      gz_cs = grad_z->stride(2);
    }
    const scalar_t* gkl = present(grad_kl) ? grad_kl->const_data_ptr<scalar_t>() : nullptr;
    const int64_t gkl_s = present(grad_kl) ? grad_kl->stride(0) : 0;
    const auto a = kernels::make_bwd_args<scalar_t>(
        gz, gz_ss, gz_rs, gz_cs, gkl, gkl_s, view2<scalar_t>(mu), view2<scalar_t>(logvar), view2<scalar_t>(prior_mu),
        view2<scalar_t>(prior_logvar), dmu.data_ptr<scalar_t>(), dlv.data_ptr<scalar_t>(),
        prior_grads ? dpm.data_ptr<scalar_t>() : nullptr, prior_grads ? dplv.data_ptr<scalar_t>() : nullptr,
        seed.const_data_ptr<int64_t>(), seed.stride(0), R, D, S);
    reparam_kl_bwd_kernel<scalar_t, opmath_t><<<static_cast<unsigned int>(c.blocks), c.threads, 0, stream>>>(
        a, c.chunks);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {dmu, dlv, dpm, dplv};
}

}  // namespace
}  // namespace cuda
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CUDA, m) {
  m.impl("reparam_kl_fwd", &gensample::cuda::reparam_kl_fwd_cuda);
  m.impl("reparam_kl_bwd", &gensample::cuda::reparam_kl_bwd_cuda);
}
