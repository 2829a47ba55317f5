// gensample CUDA kernels: launch geometry and memory helpers shared by the .cu
// launchers (csrc/cuda/*.cu) and the simulated-grid test driver
// (tests/cuda_sim/*.cpp).
//
// Everything here is GS_HOST_DEVICE and free of CUDA runtime and ATen types, so that
// the per-thread bodies in random_thread.h / reparam_thread.h compile with plain g++
// and can be run over every (blockIdx, threadIdx) of a real launch on the CPU.
//
// Test hooks (no-ops unless the simulator defines them before including):
//   GS_SIM_RECORD_STORE(ptr, n)      n consecutive elements are written at ptr
//   GS_SIM_CHECK_ALIGNED(ptr, bytes) a vector access of `bytes` bytes at ptr
#pragma once

#include <cstdint>

#include "gensample/common.h"

#ifndef GS_SIM_RECORD_STORE
#define GS_SIM_RECORD_STORE(ptr, n) ((void)0)
#endif
#ifndef GS_SIM_CHECK_ALIGNED
#define GS_SIM_CHECK_ALIGNED(ptr, bytes) ((void)0)
#endif

#if !defined(GS_ON_DEVICE)
#include <cstring>
#endif

// Unroll the short fixed-trip loops (4 lanes) on the device.
#if defined(__CUDA_ARCH__)
#define GS_UNROLL _Pragma("unroll")
#else
#define GS_UNROLL
#endif

namespace gensample {
namespace kernels {

// Threads per block of every gensample kernel (8 warps).
constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
// Grid-stride kernels launch at most this many blocks per SM: one full wave at
// kThreads threads when the kernel's registers allow 2048 resident threads.
constexpr int kBlocksPerSm = 2048 / kThreads;

GS_HOST_DEVICE int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
GS_HOST_DEVICE int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
GS_HOST_DEVICE int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// Blocks for a grid-stride loop over `work` block-sized items.
GS_HOST_DEVICE int64_t grid_blocks(int64_t work_items, int sm_count) {
  const int64_t cap = static_cast<int64_t>(sm_count > 0 ? sm_count : 1) * kBlocksPerSm;
  return min64(work_items, cap);
}

// --- 4-element vectors ---------------------------------------------------------
//
// A thread handles one Philox call, i.e. 4 consecutive elements of a draw. When
// those 4 elements are contiguous and aligned in memory they move as one vector
// (16 bytes for float, 8 for half/bfloat16, 2 x 16 for double).

template <typename T>
struct alignas(4 * sizeof(T)) Pack4 {
  T v[4];
};

GS_HOST_DEVICE bool aligned_to(const void* p, int64_t bytes) {
  return (reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes)) == 0;
}

// May the chunks [4k, 4k + 4) of the row-major (R, D) index space of a 2-D view
// (base p, strides rs, cs, element size es) be accessed as aligned 4-vectors? True
// when each chunk is 4 contiguous elements whose address is a multiple of 4 * es:
// unit column stride, an aligned base, and either rows that are contiguous with
// one another (rs == D) or chunks that never cross a row (D % 4 == 0) with row
// starts on the 4-grid (rs % 4 == 0; rs == 0, an expanded prior, qualifies).
GS_HOST_DEVICE bool vec4_ok(const void* p, int64_t es, int64_t R, int64_t D, int64_t rs, int64_t cs) {
  if (p == nullptr || cs != 1 || !aligned_to(p, 4 * es)) return false;
  if (R <= 1) return true;
  return rs == D || (D % 4 == 0 && rs % 4 == 0);
}
// The same for a 3-D (S, R, D) view: every sample's (R, D) block must qualify.
GS_HOST_DEVICE bool vec4_ok3(const void* p, int64_t es, int64_t S, int64_t R, int64_t D, int64_t ss, int64_t rs,
                             int64_t cs) {
  return vec4_ok(p, es, R, D, rs, cs) && (S <= 1 || ss % 4 == 0);
}

#if defined(GS_ON_DEVICE)
// Vector memory access through intrinsics (ld.global.nc.v* / st.global.wb.v*): a
// plain struct copy may be split into scalar accesses when the optimizer merges
// it with a scalar fallback branch storing the same values.
template <int kBytes>
struct VecWord;
template <>
struct VecWord<8> {
  using type = uint2;
};
template <>
struct VecWord<16> {
  using type = uint4;
};

template <typename T>
__device__ __forceinline__ Pack4<T> ld_pack(const T* p) {
  Pack4<T> v;
  if constexpr (sizeof(Pack4<T>) == 32) {
    const uint4* q = reinterpret_cast<const uint4*>(p);
    const uint4 lo = __ldg(q), hi = __ldg(q + 1);
    memcpy(&v, &lo, 16);
    memcpy(reinterpret_cast<char*>(&v) + 16, &hi, 16);
  } else {
    using W = typename VecWord<sizeof(Pack4<T>)>::type;
    const W w = __ldg(reinterpret_cast<const W*>(p));
    memcpy(&v, &w, sizeof(W));
  }
  return v;
}

template <typename T>
__device__ __forceinline__ void st_pack(T* p, const Pack4<T>& v) {
  if constexpr (sizeof(Pack4<T>) == 32) {
    uint4 lo, hi;
    memcpy(&lo, &v, 16);
    memcpy(&hi, reinterpret_cast<const char*>(&v) + 16, 16);
    uint4* q = reinterpret_cast<uint4*>(p);
    __stwb(q, lo);
    __stwb(q + 1, hi);
  } else {
    using W = typename VecWord<sizeof(Pack4<T>)>::type;
    W w;
    memcpy(&w, &v, sizeof(W));
    __stwb(reinterpret_cast<W*>(p), w);
  }
}
#endif

// Four elements at p (aligned to 4 * sizeof(scalar_t)) as one vector access.
template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE void load4_vec(const scalar_t* p, opmath_t out[4]) {
  GS_SIM_CHECK_ALIGNED(p, sizeof(Pack4<scalar_t>));
#if defined(GS_ON_DEVICE)
  const Pack4<scalar_t> pk = ld_pack(p);
#else
  Pack4<scalar_t> pk;
  std::memcpy(&pk, p, sizeof(pk));
#endif
  out[0] = static_cast<opmath_t>(pk.v[0]);
  out[1] = static_cast<opmath_t>(pk.v[1]);
  out[2] = static_cast<opmath_t>(pk.v[2]);
  out[3] = static_cast<opmath_t>(pk.v[3]);
}

template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE void store4_vec(scalar_t* p, const opmath_t in[4]) {
  GS_SIM_CHECK_ALIGNED(p, sizeof(Pack4<scalar_t>));
  GS_SIM_RECORD_STORE(p, 4);
  Pack4<scalar_t> pk;
  pk.v[0] = static_cast<scalar_t>(in[0]);
  pk.v[1] = static_cast<scalar_t>(in[1]);
  pk.v[2] = static_cast<scalar_t>(in[2]);
  pk.v[3] = static_cast<scalar_t>(in[3]);
#if defined(GS_ON_DEVICE)
  st_pack(p, pk);
#else
  std::memcpy(p, &pk, sizeof(pk));
#endif
}

template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE void store1(scalar_t* p, opmath_t v) {
  GS_SIM_RECORD_STORE(p, 1);
  *p = static_cast<scalar_t>(v);
}

// Read one element of the (seed, offset) pair from device memory (never from the
// host: the kernels stay free of host syncs and are CUDA-graph capturable).
struct SeedPair {
  uint64_t seed, offset;
};
GS_HOST_DEVICE SeedPair read_seed(const int64_t* seed, int64_t stride) {
  SeedPair sp;
  sp.seed = static_cast<uint64_t>(seed[0]);
  sp.offset = static_cast<uint64_t>(seed[stride]);
  return sp;
}

// Offset of half-step t of a multi-step draw (gensample.random.substream).
GS_HOST_DEVICE uint64_t substream_offset(const SeedPair& sp, int64_t t) {
  return sp.offset + (static_cast<uint64_t>(t) << 32);
}

// Launch of a flat 4-element-group epilogue over numel contiguous elements: group g is
// one Philox call and elements 4g .. 4g + 3 (grid-stride over the groups).
struct Group4Launch {
  int64_t groups;  // ceil(numel / 4)
  int64_t blocks;
  int threads;
};

GS_HOST_DEVICE Group4Launch group4_launch(int64_t numel, int sm_count) {
  Group4Launch c;
  c.groups = numel / 4 + (numel % 4 != 0 ? 1 : 0);
  c.threads = kThreads;
  c.blocks = grid_blocks(ceil_div(c.groups, kThreads), sm_count);
  return c;
}

// The n (<= 4) float lanes at p (a 16-byte vector load when vec); missing lanes are 0.
GS_HOST_DEVICE void load_group4(const float* p, int n, bool vec, float out[4]) {
  if (vec) {
    load4_vec<float, float>(p, out);
  } else {
    GS_UNROLL
    for (int l = 0; l < 4; ++l) out[l] = l < n ? p[l] : 0.0f;
  }
}

}  // namespace kernels
}  // namespace gensample
