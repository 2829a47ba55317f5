// Host and device helpers for gensample's CUDA launchers (csrc/cuda/*.cu only).
//
// Light includes on purpose (see BUILD-NOTES): c10/cuda and ATen/core only, no
// ATen/cuda/CUDAContext.h (cuBLAS/cuSPARSE headers) and no torch/extension.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>
#include <cuda_runtime.h>

#include "gensample/kernels/launch.h"

namespace gensample {
namespace cuda {

// Number of SMs of a device (a cheap driver query; no sync, graph-capture safe).
inline int sm_count(c10::DeviceIndex device) {
  int n = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, static_cast<int>(device)));
  return n > 0 ? n : 1;
}

// The (seed, offset) pair: int64 (2,) on the data's CUDA device. Its values are
// read by the kernels from device memory, never here.
inline void check_seed(const at::Tensor& seed, const c10::Device& device, const char* op) {
  TORCH_CHECK(seed.defined() && seed.scalar_type() == at::kLong && seed.dim() == 1 && seed.size(0) == 2, op,
              ": seed must be an int64 tensor of shape (2,) holding (seed, offset)");
  TORCH_CHECK(seed.is_cuda(), op, ": seed must be a CUDA tensor, got one on ", seed.device());
  TORCH_CHECK(seed.device() == device, op, ": seed is on ", seed.device(), " but the data is on ", device);
}

inline bool present(const std::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

// Sum of v over the `tpr` consecutive threads of a row (tpr a power of two <=
// blockDim.x, the same for the whole block). The result is valid in the row's
// first thread. Every thread of the block must call it (it may __syncthreads).
// smem holds blockDim.x / 32 values.
template <typename T>
__device__ __forceinline__ T row_sum(T v, int tpr, T* smem) {
  const int width = tpr < kernels::kWarpSize ? tpr : kernels::kWarpSize;
  for (int o = width / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (tpr > kernels::kWarpSize) {
    const int warp = static_cast<int>(threadIdx.x) / kernels::kWarpSize;
    if (threadIdx.x % kernels::kWarpSize == 0) smem[warp] = v;
    __syncthreads();
    if (threadIdx.x % tpr == 0) {
      T acc = smem[warp];
      for (int w = 1; w < tpr / kernels::kWarpSize; ++w) acc += smem[warp + w];
      v = acc;
    }
    __syncthreads();  // smem is reused by the next call
  }
  return v;
}

}  // namespace cuda
}  // namespace gensample
