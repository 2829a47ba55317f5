// Helpers shared by the CPU kernels (csrc/cpu/*.cpp) only.
//
// * GS_CPU_AVX2_PATH / GS_TARGET_AVX2 / use_avx2(): hot loops are compiled twice,
//   for AVX2 and for the baseline ISA, and use_avx2() picks one at run time. The
//   per-element math (csrc/include/gensample/*.h) is inlined into each copy, so it
//   is vectorized for the CPU that runs it. The AVX2 copies may use FMA, but only
//   where a formula asks for it (gs_fma, never in the random stream): the sources
//   are compiled with -ffp-contract=off, so the stream has the same bits in both
//   copies and the op formulas agree to a rounding.
// * Batched stream fills (defined in random_cpu.cpp): elements [start, start + count)
//   of the uniform / normal stream of (seed, offset), bit-identical to
//   gensample/random.py.
// * Simd<V, N> (below): a vector math type for instantiating the header formulas
//   (gensample/reparam.h) on many elements at once, with a vectorizable exp/expm1.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "gensample/common.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__linux__) && \
    !defined(GENSAMPLE_NO_AVX2_PATH)
// Hot loops get an AVX2 + FMA copy (functions with __attribute__((target("avx2,fma")))),
// chosen at run time by use_avx2().
#define GS_CPU_AVX2_PATH 1
#define GS_TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

#if defined(__GNUC__) || defined(__clang__)
#define GS_ALWAYS_INLINE inline __attribute__((always_inline))
#define GS_RESTRICT __restrict__
#else
#define GS_ALWAYS_INLINE inline
#define GS_RESTRICT
#endif

namespace gensample {
namespace cpu {

// Elements [start, start + count) of the stream (seed, offset) -> out[0 .. count).
// Element i uses counter offset + i / 4 (wrapping mod 2^64), lane i % 4.
void uniform_fill(uint64_t seed, uint64_t offset, uint64_t start, int64_t count, float* out);
void normal_fill(uint64_t seed, uint64_t offset, uint64_t start, int64_t count, float* out);
// out[i] = mu[i] + sd[i] * eps_i (reparam::sample_std; fused in the AVX2 + FMA copy)
// for the normals eps_i of the same elements, without storing them; with streaming
// stores (stream_copy's; the caller fences) when stream, out is 32-byte aligned and
// start a multiple of 8. pf0, pf1 (both or neither): inputs of the caller's next
// piece of work, prefetched evenly, one 64-byte line per 16 elements each.
void normal_affine_fill(uint64_t seed, uint64_t offset, uint64_t start, int64_t count, const float* mu,
                        const float* sd, float* out, bool stream, const float* pf0 = nullptr,
                        const float* pf1 = nullptr);

// f(begin, end) over [0, count) in pieces of `chunk` that the threads take from a
// shared counter: a thread that is descheduled or slowed (a busy machine, a neighbour
// on the host) does not hold the others up, as at::parallel_for's one contiguous range
// per thread would. Callers' results must not depend on which thread runs a piece.
template <typename F>
void parallel_chunks(int64_t count, int64_t chunk, const F& f) {
  if (count <= 0) return;
  chunk = std::max<int64_t>(1, chunk);
  const int64_t pieces = (count + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min<int64_t>(at::get_num_threads(), pieces), 1, [&](int64_t, int64_t) {
    for (int64_t p = next.fetch_add(1); p < pieces; p = next.fetch_add(1))
      f(p * chunk, std::min(count, (p + 1) * chunk));
  });
}

// Checks seed (CPU int64 (2,)) and reads (seed, offset) as uint64.
void read_seed(const at::Tensor& seed, uint64_t& key, uint64_t& offset);

// Opt-in (GENSAMPLE_CPU_HUGEPAGE=1): madvise(MADV_HUGEPAGE) on a freshly allocated
// output of 4 MiB or more, so that its first touch takes one page fault per 2 MiB
// instead of one per 4 KiB. On the dev VM this halves the time of a 65536x512
// reparam fwd when the process allocates little else, but when other code churns
// 4 KiB pages (eager PyTorch in between, e.g. the benchmark's other competitors)
// getting fresh huge pages costs up to 6x more than the 4 KiB faults, so it is off
// by default (THP_MEM_ALLOC_ENABLE=1 does the same for all of torch's allocations).
// Only a hint: values are unaffected.
void advise_output(void* p, size_t bytes);

// Allocates a CPU output through gensample's bounded cache of large buffers (see
// output_pool.cpp): outputs of 1 MiB or more reuse freed ones of the same size class,
// so they do not pay first-touch page faults every call. Contents are uninitialised.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);
size_t pool_cached_bytes();
size_t pool_capacity_bytes();
size_t pool_live_bytes();
// Returns the high-water mark of live pooled bytes and restarts it from the current value.
size_t pool_reset_peak();
void pool_clear();

// Non-temporal ("streaming") stores for large outputs. A kernel that reads two inputs
// and writes one moves a third more DRAM traffic than it needs with ordinary stores:
// each written line is first read for ownership. stream_copy writes dst[0 .. n) =
// src[0 .. n) around the caches (AVX2 streaming stores on the 32-byte-aligned middle,
// plain stores at the ends; memcpy without AVX2). Only worth it for outputs far larger
// than the caches, which the next op will not find there anyway: stream_outputs(bytes)
// says whether an output of that many bytes qualifies (>= GENSAMPLE_CPU_STREAM_MB,
// default 16; 0 turns streaming off). A thread that streamed calls stream_fence()
// before its results are published (the end of its at::parallel_for chunk).
bool stream_outputs(size_t bytes);
void stream_copy(const float* src, int64_t n, float* dst);
void stream_copy(const double* src, int64_t n, double* dst);
void stream_fence();

// Whether the AVX2 copies of the hot loops run: the CPU has AVX2 and FMA and
// GENSAMPLE_CPU_NO_AVX2=1 is not set (read once). The other copies are compiled for
// the baseline ISA and give the same bits (the stream) / the same values to a
// rounding (the op formulas' gs_fma is fused only in the AVX2 copies).
bool use_avx2();
// "avx2" or "default", after use_avx2().
const char* isa_name();

// ---------------------------------------------------------------------------
// Simd<V, N>: N vectors of 32 bytes (8 floats / 4 doubles) as one arithmetic value,
// written with GCC vector extensions (no intrinsics), so it compiles for whatever
// ISA the enclosing function targets: ymm registers in a GS_TARGET_AVX2 function,
// pairs of xmm in a baseline one.
//
// The reparam formulas (gensample/reparam.h) are templates over their math type;
// instantiated with Simd they run on kWidth elements at once, with the operations of
// the N vectors written side by side (independent dependency chains for the
// out-of-order core: the exp/expm1 polynomials are latency-bound one vector at a
// time). gs_exp / gs_expm1 are
// overloaded for Simd below (found by argument-dependent lookup from the header's
// unqualified calls): a branch-free Cody-Waite + polynomial exp / expm1, within a
// few ulp of std::exp / std::expm1 (the header allows that: these formulas are
// compared with tolerances, unlike the random stream).
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // 32-byte vectors in baseline-ISA code: always inlined
#endif

#define GS_EACH(i) _Pragma("GCC unroll 16") for (int i = 0; i < N; ++i)

template <typename V>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float vec __attribute__((vector_size(32)));
  typedef float uvec __attribute__((vector_size(32), aligned(4), may_alias));  // unaligned access
  typedef int32_t ivec __attribute__((vector_size(32)));
  static constexpr int kLanes = 8;
  GS_ALWAYS_INLINE static vec splat(float c) { return vec{c, c, c, c, c, c, c, c}; }
  GS_ALWAYS_INLINE static ivec splat_i(int32_t c) { return ivec{c, c, c, c, c, c, c, c}; }
  // 8 floats from memory, widened to V (a no-op here).
  GS_ALWAYS_INLINE static vec load_f32(const float* p) { return *reinterpret_cast<const uvec*>(p); }
};
template <>
struct VecOf<double> {
  typedef double vec __attribute__((vector_size(32)));
  typedef double uvec __attribute__((vector_size(32), aligned(8), may_alias));
  typedef int64_t ivec __attribute__((vector_size(32)));
  typedef float fvec4 __attribute__((vector_size(16)));
  typedef float ufvec4 __attribute__((vector_size(16), aligned(4), may_alias));
  static constexpr int kLanes = 4;
  GS_ALWAYS_INLINE static vec splat(double c) { return vec{c, c, c, c}; }
  GS_ALWAYS_INLINE static ivec splat_i(int64_t c) { return ivec{c, c, c, c}; }
  GS_ALWAYS_INLINE static vec load_f32(const float* p) {
    return __builtin_convertvector(*reinterpret_cast<const ufvec4*>(p), vec);
  }
};

// FmaOf<Tag>: whether Simd values of this Tag fuse gs_fma (Tag::kFma, false if absent).
template <typename Tag, typename = void>
struct FmaOf : std::false_type {};
template <typename Tag>
struct FmaOf<Tag, std::void_t<decltype(Tag::kFma)>> : std::integral_constant<bool, Tag::kFma> {};

// a * b + c of one 32-byte vector, fused (one rounding) when kFma. Written lane by
// lane with __builtin_fma(f), which GCC turns into one vfmadd in a function that
// targets FMA (no intrinsics: this template compiles for any ISA, and only FMA
// copies instantiate kFma = true).
GS_ALWAYS_INLINE float fma_lane(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
GS_ALWAYS_INLINE double fma_lane(double a, double b, double c) { return __builtin_fma(a, b, c); }
template <bool kFma, typename vec>
GS_ALWAYS_INLINE vec vfma(vec a, vec b, vec c) {
  if constexpr (kFma) {
    constexpr int L = sizeof(vec) / sizeof(a[0]);
    vec r;
    _Pragma("GCC unroll 8") for (int k = 0; k < L; ++k) r[k] = fma_lane(a[k], b[k], c[k]);
    return r;
  } else {
    return a * b + c;
  }
}

// Tag only makes distinct types: with a TU-local Tag, each instantiation of a
// header formula gets internal linkage and can have a single call site, which GCC
// then inlines whatever its size (see reparam_cpu.cpp). A Tag with kFma = true (used
// only by functions that target FMA) makes gs_fma one fused operation.
template <typename V, int N, typename Tag = void>
struct Simd {
  static constexpr bool kFma = FmaOf<Tag>::value;
  using Tr = VecOf<V>;
  using vec = typename Tr::vec;
  static constexpr int kWidth = N * Tr::kLanes;  // elements per value
  vec x[N];

  Simd() = default;
  GS_ALWAYS_INLINE explicit Simd(double c) {
    const vec b = Tr::splat(static_cast<V>(c));
    GS_EACH(i) x[i] = b;
  }
  GS_ALWAYS_INLINE static Simd load(const V* p) {
    Simd r;
    GS_EACH(i) r.x[i] = reinterpret_cast<const typename Tr::uvec*>(p)[i];
    return r;
  }
  // kWidth float32 values, widened to V.
  GS_ALWAYS_INLINE static Simd load_f32(const float* p) {
    Simd r;
    GS_EACH(i) r.x[i] = Tr::load_f32(p + i * Tr::kLanes);
    return r;
  }
  GS_ALWAYS_INLINE void store(V* p) const {
    GS_EACH(i) reinterpret_cast<typename Tr::uvec*>(p)[i] = x[i];
  }

  GS_ALWAYS_INLINE friend Simd operator+(const Simd& a, const Simd& b) {
    Simd r;
    GS_EACH(i) r.x[i] = a.x[i] + b.x[i];
    return r;
  }
  GS_ALWAYS_INLINE friend Simd operator-(const Simd& a, const Simd& b) {
    Simd r;
    GS_EACH(i) r.x[i] = a.x[i] - b.x[i];
    return r;
  }
  GS_ALWAYS_INLINE friend Simd operator*(const Simd& a, const Simd& b) {
    Simd r;
    GS_EACH(i) r.x[i] = a.x[i] * b.x[i];
    return r;
  }
  GS_ALWAYS_INLINE friend Simd operator-(const Simd& a) {
    Simd r;
    GS_EACH(i) r.x[i] = -a.x[i];
    return r;
  }
  // common.h's gs_fma for Simd (found by argument-dependent lookup).
  GS_ALWAYS_INLINE friend Simd gs_fma(const Simd& a, const Simd& b, const Simd& c) {
    Simd r;
    GS_EACH(i) r.x[i] = vfma<kFma>(a.x[i], b.x[i], c.x[i]);
    return r;
  }
  // Sum of all elements in a fixed order (vectors first, then lanes pairwise).
  GS_ALWAYS_INLINE V sum() const {
    vec t = x[0];
    for (int i = 1; i < N; ++i) t = t + x[i];
    V l[Tr::kLanes];
    std::memcpy(l, &t, sizeof(t));
    if (Tr::kLanes == 8) return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    return (l[0] + l[1]) + (l[2] + l[3]);
  }
};

// Whether any lane of a comparison mask is set.
GS_ALWAYS_INLINE bool any_lane(VecOf<float>::ivec m) {
  typedef long long v4 __attribute__((vector_size(32)));
  const v4 w = __builtin_bit_cast(v4, m);
  const v4 t = w | __builtin_shufflevector(w, w, 2, 3, 0, 1);  // halves folded: vpermq + vpor with AVX2
  return (t[0] | t[1]) != 0;
}

namespace fastmath {

// Polynomial part: expm1(r) for |r| <= ln2 / 2 (Taylor series; Horner's scheme in
// fused operations with FMA, Estrin's scheme without).
// float: to r^7, truncation < 1.6e-8 |r|.
template <bool kFma>
GS_ALWAYS_INLINE VecOf<float>::vec expm1_poly(VecOf<float>::vec r) {
  using Tr = VecOf<float>;
  if constexpr (kFma) {
    auto p = vfma<true>(Tr::splat(1.0f / 5040.0f), r, Tr::splat(1.0f / 720.0f));
    p = vfma<true>(p, r, Tr::splat(1.0f / 120.0f));
    p = vfma<true>(p, r, Tr::splat(1.0f / 24.0f));
    p = vfma<true>(p, r, Tr::splat(1.0f / 6.0f));
    p = vfma<true>(p, r, Tr::splat(0.5f));
    return vfma<true>(r * r, p, r);
  }
  const auto r2 = r * r;
  const auto r4 = r2 * r2;
  const auto a0 = r * (1.0f / 6.0f) + 0.5f;
  const auto a1 = r * (1.0f / 120.0f) + (1.0f / 24.0f);
  const auto a2 = r * (1.0f / 5040.0f) + (1.0f / 720.0f);
  const auto p = (r2 * a1 + a0) + r4 * a2;
  return r2 * p + r;
}
// double: to r^14, truncation < 2e-17 |r|.
GS_ALWAYS_INLINE VecOf<double>::vec expm1_poly(VecOf<double>::vec r) {
  const auto r2 = r * r;
  const auto r4 = r2 * r2;
  const auto r8 = r4 * r4;
  const auto a0 = r * (1.0 / 6.0) + 0.5;
  const auto a1 = r * (1.0 / 120.0) + (1.0 / 24.0);
  const auto a2 = r * (1.0 / 5040.0) + (1.0 / 720.0);
  const auto a3 = r * (1.0 / 362880.0) + (1.0 / 40320.0);
  const auto a4 = r * (1.0 / 39916800.0) + (1.0 / 3628800.0);
  const auto a5 = r * (1.0 / 6227020800.0) + (1.0 / 479001600.0);
  const auto b0 = r2 * a1 + a0;
  const auto b1 = r2 * a3 + a2;
  const auto b2 = r2 * a5 + a4;
  const auto b3 = VecOf<double>::splat(1.0 / 87178291200.0);
  const auto p = (r4 * b1 + b0) + r8 * (r4 * b3 + b2);
  return r2 * p + r;
}

// x = n ln2 + r, |r| <= ln2 / 2 (Cody-Waite; fn * C1 exact): n as int32 lanes.
template <bool kFma>
GS_ALWAYS_INLINE void reduce_arg(VecOf<float>::vec x, VecOf<float>::ivec& n, VecOf<float>::vec& r) {
  using Tr = VecOf<float>;
  const float kShift = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const auto t = vfma<kFma>(x, Tr::splat(1.44269504088896341f), Tr::splat(kShift));
  n = __builtin_bit_cast(typename Tr::ivec, t) - Tr::splat_i(0x4B400000);  // bits of kShift
  const auto fn = t - kShift;
  if constexpr (kFma) {
    r = vfma<true>(fn, Tr::splat(-0.693359375f), x);
    r = vfma<true>(fn, Tr::splat(2.12194440e-4f), r);
  } else {
    r = (x - fn * 0.693359375f) - fn * -2.12194440e-4f;
  }
}

// x = n ln2 + r (Cody-Waite; fn * C1 exact), q = expm1(r), exp(x) = s1 s2 (1 + q).
// float: n in [-150, 128] after clamping, split n = n1 + n2 so 2^n1, 2^n2 are
// normal floats and the scaling underflows / overflows gradually and correctly.
template <int N, typename Tag>
GS_ALWAYS_INLINE void reduce(const Simd<float, N, Tag>& xin, Simd<float, N, Tag>& q, Simd<float, N, Tag>& s1,
                             Simd<float, N, Tag>& s2) {
  using Tr = VecOf<float>;
  typename Tr::vec x[N], r[N];
  typename Tr::ivec n[N];
  GS_EACH(i) {
    x[i] = xin.x[i] < -104.0f ? Tr::splat(-104.0f) : xin.x[i];  // NaN passes through
    x[i] = x[i] > 89.0f ? Tr::splat(89.0f) : x[i];
  }
  GS_EACH(i) reduce_arg<Simd<float, N, Tag>::kFma>(x[i], n[i], r[i]);
  GS_EACH(i) q.x[i] = expm1_poly<Simd<float, N, Tag>::kFma>(r[i]);
  GS_EACH(i) {
    const auto n1 = n[i] >> 1;
    const auto n2 = n[i] - n1;
    const auto b1 = (n1 + 127) << 23;
    const auto b2 = (n2 + 127) << 23;
    s1.x[i] = __builtin_bit_cast(typename Tr::vec, b1);
    s2.x[i] = __builtin_bit_cast(typename Tr::vec, b2);
  }
}

// double: x clamped to [-708, 709] so one 2^n (n in [-1022, 1023]) is normal; the
// callers map x > 709.78 to +inf and x < -745.2 to 0 (exp), -1 (expm1). Between
// -745.2 and -708 exp returns exp(-708) = 3e-308 instead of a denormal.
template <int N, typename Tag>
GS_ALWAYS_INLINE void reduce(const Simd<double, N, Tag>& xin, Simd<double, N, Tag>& q, Simd<double, N, Tag>& s) {
  using Tr = VecOf<double>;
  typename Tr::vec x[N], fn[N], r[N];
  typename Tr::ivec n[N];
  const double kShift = 6755399441055744.0;  // 1.5 * 2^52
  GS_EACH(i) {
    x[i] = xin.x[i] < -708.0 ? Tr::splat(-708.0) : xin.x[i];
    x[i] = x[i] > 709.0 ? Tr::splat(709.0) : x[i];
  }
  GS_EACH(i) {
    const auto t = x[i] * 1.4426950408889634074 + kShift;
    n[i] = __builtin_bit_cast(typename Tr::ivec, t) - Tr::splat_i(0x4338000000000000LL);  // bits of kShift
    fn[i] = t - kShift;
  }
  // fdlibm's split of ln2 (fn * hi exact for |n| < 2^20).
  GS_EACH(i) r[i] = (x[i] - fn[i] * 6.93147180369123816490e-01) - fn[i] * 1.90821492927058770002e-10;
  GS_EACH(i) q.x[i] = expm1_poly(r[i]);
  GS_EACH(i) {
    const auto b = (n[i] + 1023) << 52;
    s.x[i] = __builtin_bit_cast(typename Tr::vec, b);
  }
}

}  // namespace fastmath

template <int N, typename Tag>
GS_ALWAYS_INLINE Simd<float, N, Tag> gs_exp(const Simd<float, N, Tag>& x) {
  Simd<float, N, Tag> q, s1, s2, r;
  fastmath::reduce(x, q, s1, s2);
  GS_EACH(i) r.x[i] = ((q.x[i] + 1.0f) * s1.x[i]) * s2.x[i];
  return r;
}

template <int N, typename Tag>
GS_ALWAYS_INLINE Simd<float, N, Tag> gs_expm1(const Simd<float, N, Tag>& x) {
  Simd<float, N, Tag> q, s1, s2, r;
  fastmath::reduce(x, q, s1, s2);
  // 2^n q + (2^n - 1): exactly q for n = 0 (|x| < ln2 / 2), one rounding otherwise.
  // Above x = 20 the -1 is below half an ulp: exp(x) there, which also stays finite
  // up to x = 88.72 where 2^n alone (n = 128) would overflow.
  GS_EACH(i) {
    const auto s = s1.x[i] * s2.x[i];
    const auto small = (q.x[i] * s1.x[i]) * s2.x[i] + (s - 1.0f);
    const auto big = ((q.x[i] + 1.0f) * s1.x[i]) * s2.x[i];
    r.x[i] = x.x[i] > 20.0f ? big : small;
  }
  return r;
}

template <int N, typename Tag>
GS_ALWAYS_INLINE Simd<double, N, Tag> gs_exp(const Simd<double, N, Tag>& x) {
  using Tr = VecOf<double>;
  Simd<double, N, Tag> q, s, r;
  fastmath::reduce(x, q, s);
  const auto inf = Tr::splat(__builtin_inf());
  GS_EACH(i) {
    r.x[i] = (q.x[i] + 1.0) * s.x[i];
    r.x[i] = x.x[i] > 709.782712893384 ? inf : r.x[i];
    r.x[i] = x.x[i] < -745.1332191019412 ? Tr::splat(0.0) : r.x[i];
  }
  return r;
}

template <int N, typename Tag>
GS_ALWAYS_INLINE Simd<double, N, Tag> gs_expm1(const Simd<double, N, Tag>& x) {
  using Tr = VecOf<double>;
  Simd<double, N, Tag> q, s, r;
  fastmath::reduce(x, q, s);
  const auto inf = Tr::splat(__builtin_inf());
  GS_EACH(i) {
    r.x[i] = q.x[i] * s.x[i] + (s.x[i] - 1.0);
    r.x[i] = x.x[i] > 709.782712893384 ? inf : r.x[i];
  }
  return r;
}

// exp(x / 2) and expm1(x) from one range reduction of x / 2 (common.h's
// gs_exp_half_expm1): e = exp(x / 2); expm1(x) = q (q + 2) where x / 2 needed no
// reduction (n = 0, q = expm1(x / 2)), e * e - 1 otherwise (|x| > ln 2, where the
// subtraction cancels nothing). Overflow (x > 177 for e, x > 88.7 for expm1) gives
// +inf and NaN propagates, as in gs_exp / gs_expm1.
//
// Where every |x / 2| <= 86 (the common case: checked per value, one branch) the
// result's exponent is in range and 2^n is added to the exponent bits of 1 + q
// directly; otherwise the value takes reduce()'s clamped two-factor scaling, which
// underflows gradually and saturates correctly.
template <int N, typename Tag>
GS_ALWAYS_INLINE void gs_exp_half_expm1(const Simd<float, N, Tag>& x, Simd<float, N, Tag>& e_half,
                                        Simd<float, N, Tag>& em1) {
  using Tr = VecOf<float>;
  constexpr bool F = Simd<float, N, Tag>::kFma;
  Simd<float, N, Tag> h;
  GS_EACH(i) h.x[i] = x.x[i] * 0.5f;
  typename Tr::ivec out = Tr::splat_i(0);
  GS_EACH(i) {
    const auto a = __builtin_bit_cast(typename Tr::vec, __builtin_bit_cast(typename Tr::ivec, h.x[i]) &
                                                          Tr::splat_i(0x7FFFFFFF));  // |h|
    out |= ~(a <= 86.0f);  // NaN counts as out of range
  }
  if (__builtin_expect(any_lane(out), 0)) {
    Simd<float, N, Tag> q, s1, s2;
    fastmath::reduce(h, q, s1, s2);
    GS_EACH(i) {
      const auto s = s1.x[i] * s2.x[i];
      const auto e = ((q.x[i] + 1.0f) * s1.x[i]) * s2.x[i];
      e_half.x[i] = e;
      em1.x[i] = s == 1.0f ? q.x[i] * (q.x[i] + 2.0f) : vfma<F>(e, e, Tr::splat(-1.0f));
    }
    return;
  }
  GS_EACH(i) {
    typename Tr::ivec n;
    typename Tr::vec r;
    fastmath::reduce_arg<F>(h.x[i], n, r);
    const auto q = fastmath::expm1_poly<F>(r);
    const auto e = __builtin_bit_cast(typename Tr::vec,
                                      __builtin_bit_cast(typename Tr::ivec, q + 1.0f) + (n << 23));  // (1 + q) 2^n
    e_half.x[i] = e;
    em1.x[i] = n == 0 ? vfma<F>(q, q, q + q) : vfma<F>(e, e, Tr::splat(-1.0f));
  }
}

template <int N, typename Tag>
GS_ALWAYS_INLINE void gs_exp_half_expm1(const Simd<double, N, Tag>& x, Simd<double, N, Tag>& e_half,
                                        Simd<double, N, Tag>& em1) {
  using Tr = VecOf<double>;
  Simd<double, N, Tag> h, q, s;
  GS_EACH(i) h.x[i] = x.x[i] * 0.5;
  fastmath::reduce(h, q, s);
  const auto inf = Tr::splat(__builtin_inf());
  GS_EACH(i) {
    auto e = (q.x[i] + 1.0) * s.x[i];
    e = h.x[i] > 709.782712893384 ? inf : e;
    e = h.x[i] < -745.1332191019412 ? Tr::splat(0.0) : e;
    e_half.x[i] = e;
    em1.x[i] = s.x[i] == 1.0 ? q.x[i] * (q.x[i] + 2.0) : e * e - 1.0;
  }
}

#undef GS_EACH
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace cpu
}  // namespace gensample
