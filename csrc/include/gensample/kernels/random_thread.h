// Per-thread bodies of the CUDA stream kernels (philox_uniform / philox_normal).
//
// Thread t of a grid-stride launch handles Philox groups g = t, t + stride, ...:
// group g is one Philox4x32-10 call on counter offset + g and fills the 4 stream
// elements 4g .. 4g + 3 (random.h's mapping). csrc/cuda/random_cuda.cu calls these;
// tests/cuda_sim/ runs them over the same grid on the CPU.
#pragma once

#include "gensample/kernels/launch.h"
#include "gensample/random.h"

namespace gensample {
namespace kernels {

struct RandomLaunch {
  int64_t groups;  // Philox calls: ceil(numel / 4)
  int64_t blocks;  // gridDim.x (0: nothing to launch)
  int threads;     // blockDim.x
};

GS_HOST_DEVICE RandomLaunch random_launch(int64_t numel, int sm_count) {
  RandomLaunch c;
  c.groups = numel / 4 + (numel % 4 != 0 ? 1 : 0);
  c.threads = kThreads;
  c.blocks = grid_blocks(ceil_div(c.groups, kThreads), sm_count);
  return c;
}

// May the launcher's output take 4-vector stores? (at::empty's memory always can.)
inline bool random_vec_ok(const float* out) { return aligned_to(out, 4 * static_cast<int64_t>(sizeof(float))); }

// Fill out[4g .. 4g + 3] (the part below numel). vec: out is aligned for 4-vectors.
template <bool kNormal>
GS_HOST_DEVICE void random_group(const SeedPair& sp, int64_t g, int64_t numel, float* out, bool vec) {
  uint32_t w[4];
  philox::words(sp.seed, sp.offset + static_cast<uint64_t>(g), w);
  float v[4];
  if (kNormal) {
    normal4(w, v);
  } else {
    uniform4(w, v);
  }
  const int64_t i0 = 4 * g;
  if (vec && numel - i0 >= 4) {
    store4_vec<float, float>(out + i0, v);
  } else {
    for (int l = 0; l < 4; ++l) {
      if (i0 + l < numel) store1<float, float>(out + i0 + l, v[l]);
    }
  }
}

// The whole per-thread program of the stream kernel: thread `thread` of block
// `block` in a grid of `grid` blocks of `threads` threads.
template <bool kNormal>
GS_HOST_DEVICE void random_thread(const int64_t* seed, int64_t seed_stride, int64_t numel, float* out, bool vec,
                                  int64_t groups, int64_t block, int64_t grid, int64_t thread, int64_t threads) {
  const SeedPair sp = read_seed(seed, seed_stride);
  const int64_t stride = grid * threads;
  for (int64_t g = block * threads + thread; g < groups; g += stride) {
    random_group<kNormal>(sp, g, numel, out, vec);
  }
}

}  // namespace kernels
}  // namespace gensample
