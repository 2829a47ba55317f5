// CUDA kernels of the stream ops philox_uniform / philox_normal.
//
// One thread = one Philox4x32-10 call = 4 consecutive stream elements, stored as one
// 16-byte vector; grid-stride loop; (seed, offset) read from device memory inside
// the kernel (no host sync, CUDA-graph capturable). The per-thread program is
// gensample/kernels/random_thread.h (also run by tests/test_cuda_sim.py on the CPU).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "gensample/kernels/cuda_utils.cuh"
#include "gensample/kernels/random_thread.h"

namespace gensample {
namespace cuda {
namespace {

template <bool kNormal>
__global__ void __launch_bounds__(kernels::kThreads)
    philox_fill_kernel(const int64_t* __restrict__ seed, int64_t seed_stride, int64_t numel, float* __restrict__ out,
                       bool vec, int64_t groups) {
  kernels::random_thread<kNormal>(seed, seed_stride, numel, out, vec, groups, blockIdx.x, gridDim.x, threadIdx.x,
                                  blockDim.x);
}

template <bool kNormal>
at::Tensor philox_fill_cuda(const at::Tensor& seed, int64_t numel) {
  const char* op = kNormal ? "philox_normal" : "philox_uniform";
  check_seed(seed, seed.device(), op);
  TORCH_CHECK(numel >= 0, op, ": numel must be non-negative, got ", numel);
  const c10::cuda::CUDAGuard guard(seed.device());
  at::Tensor out = at::empty({numel}, seed.options().dtype(at::kFloat));
  if (numel == 0) return out;
  const kernels::RandomLaunch cfg = kernels::random_launch(numel, sm_count(seed.device().index()));
  float* out_ptr = out.data_ptr<float>();
  const bool vec = kernels::random_vec_ok(out_ptr);
  philox_fill_kernel<kNormal><<<static_cast<unsigned int>(cfg.blocks), cfg.threads, 0,
                                c10::cuda::getCurrentCUDAStream()>>>(seed.const_data_ptr<int64_t>(), seed.stride(0),
                                                                     numel, out_ptr, vec, cfg.groups);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor philox_uniform_cuda(const at::Tensor& seed, int64_t numel) { return philox_fill_cuda<false>(seed, numel); }
at::Tensor philox_normal_cuda(const at::Tensor& seed, int64_t numel) { return philox_fill_cuda<true>(seed, numel); }

}  // namespace
}  // namespace cuda
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CUDA, m) {
  m.impl("philox_uniform", &gensample::cuda::philox_uniform_cuda);
  m.impl("philox_normal", &gensample::cuda::philox_normal_cuda);
}
