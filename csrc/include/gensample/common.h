// gensample: definitions shared by host (C++) and device (CUDA) code.
//
// Every per-element formula in gensample is written once, in headers under
// csrc/include/gensample/, as GS_HOST_DEVICE functions. The CPU kernels
// (csrc/cpu/*.cpp) and the CUDA kernels (csrc/cuda/*.cu) both include them; the
// Triton kernels (gensample/ops/*_triton.py) and the pure-torch backend mirror them
// operation for operation.
//
// Floating-point contract: the random-number transforms must give bit-identical
// results on every backend, so they are written with explicitly rounded
// operations (gs_mul/gs_add/gs_sub), never with fused multiply-add. On the host the
// CPU sources are compiled with -ffp-contract=off; on the device the __f*_rn
// intrinsics are never contracted by nvcc.
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define GS_HOST_DEVICE __host__ __device__ __forceinline__
#define GS_DEVICE_CODE 1
#elif defined(__GNUC__) || defined(__clang__)
// Always inlined on the host as well: the CPU kernels instantiate these formulas with
// vector types inside functions compiled for AVX2 (csrc/cpu/cpu_kernels.h), where an
// out-of-line copy would be compiled for the baseline ISA and pass its 32-byte
// vectors with another ABI.
#define GS_HOST_DEVICE inline __attribute__((always_inline))
#else
#define GS_HOST_DEVICE inline
#endif

#if defined(__CUDA_ARCH__)
#define GS_ON_DEVICE 1
#else
#include <cmath>
#include <cstring>
#endif

namespace gensample {

// --- explicitly rounded float32 arithmetic (no FMA contraction) -------------
GS_HOST_DEVICE float gs_mul(float a, float b) {
#if defined(GS_ON_DEVICE)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
GS_HOST_DEVICE float gs_add(float a, float b) {
#if defined(GS_ON_DEVICE)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
GS_HOST_DEVICE float gs_sub(float a, float b) {
#if defined(GS_ON_DEVICE)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
GS_HOST_DEVICE float gs_sqrt(float a) {
#if defined(GS_ON_DEVICE)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
GS_HOST_DEVICE uint32_t gs_float_as_uint(float f) {
#if defined(GS_ON_DEVICE)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
#endif
}
GS_HOST_DEVICE float gs_uint_as_float(uint32_t u) {
#if defined(GS_ON_DEVICE)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}

// Generic math used by the (non-random) op formulas. These need not be
// bit-identical across backends; tests compare them with dtype tolerances.
template <typename T>
GS_HOST_DEVICE T gs_exp(T x) {
#if defined(GS_ON_DEVICE)
  return exp(x);
#else
  return std::exp(x);
#endif
}
template <typename T>
GS_HOST_DEVICE T gs_expm1(T x) {
#if defined(GS_ON_DEVICE)
  return expm1(x);
#else
  return std::expm1(x);
#endif
}

// a * b + c in the (non-random) op formulas, where a backend may fuse it into one
// rounding: the CPU vector kernels do on CPUs with FMA (csrc/cpu/cpu_kernels.h), nvcc
// contracts it by default. The random-number transforms never use it.
template <typename T>
GS_HOST_DEVICE T gs_fma(T a, T b, T c) {
  return a * b + c;
}

// exp(x / 2) and expm1(x) of one x: a Gaussian's standard deviation and the
// expm1 of its log-variance, which the reparameterize + KL formulas need together.
// Two calls here; the CPU vector overload (csrc/cpu/cpu_kernels.h) shares one range
// reduction: expm1(x) = q (q + 2) with q = expm1(x / 2) when x / 2 needs no
// reduction, (exp(x / 2))^2 - 1 otherwise (|x| > ln 2: no cancellation).
template <typename T>
GS_HOST_DEVICE void gs_exp_half_expm1(T x, T& e_half, T& em1) {
  e_half = gs_exp(x * T(0.5));
  em1 = gs_expm1(x);
}

}  // namespace gensample
