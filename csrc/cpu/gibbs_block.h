// Machinery of the CPU block Gibbs kernels shared by gibbs_cpu.cpp (gibbs_sweeps) and
// tempered_cpu.cpp (tempered_sweeps, ais_rbm): the vectorized gs_sigmoid (up to its
// final division) and the division-free Bernoulli draw, index-list compaction of binary
// states, the tile-packed binary row-sum GEMM (block_gemm_impl), the 4-unit lookup-table
// GEMM for small layers (lut_gemm_impl), the general (non-binary) row GEMM, and the
// packing of W. Everything has internal linkage (an unnamed namespace): each including
// file instantiates what it uses, for AVX2 and for the baseline ISA (cpu_kernels.h).
// Per-element math: gensample/gibbs.h. Include once per translation unit, after
// cpu_kernels.h; GS_EACH stays defined (the includer may #undef it when done).
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_kernels.h"
#include "gensample/gibbs.h"
#if defined(GS_CPU_AVX2_PATH)
#include <immintrin.h>
#endif

namespace gensample {
namespace cpu {
namespace {

constexpr const char* kOp = "gensample (cpu): ";

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

using vec = VecOf<float>::vec;
using uvec = VecOf<float>::uvec;

using ivec = VecOf<float>::ivec;

#define GS_EACH(i) _Pragma("GCC unroll 8") for (int i = 0; i < N; ++i)

#if defined(GS_CPU_AVX2_PATH)
GS_TARGET_AVX2 inline vec floor8_avx2(vec q) {
  return __builtin_bit_cast(vec, _mm256_floor_ps(__builtin_bit_cast(__m256, q)));
}
#endif

// floor(q) (|q| < 2^23): vroundps on AVX2; elsewhere the truncation, minus one where it
// lies above q. Both exact.
template <bool kAvx2>
inline vec floor8(vec q) {
#if defined(GS_CPU_AVX2_PATH)
  if constexpr (kAvx2) return floor8_avx2(q);
#endif
  const vec tr = __builtin_convertvector(__builtin_convertvector(q, ivec), vec);
  return tr > q ? tr - VecOf<float>::splat(1.0f) : tr;
}

// e = exp(-a) as gs_sigmoid (gensample/gibbs.h) computes it, on N vectors of 8 at
// once, operation for operation (no FMA: -ffp-contract=off): -a clamped to [-87, 87],
// Cody-Waite reduction, Cephes' expf polynomial. Also the exp of the vectorized
// softplus (tempered_cpu.cpp).
template <bool kAvx2, int N>
GS_ALWAYS_INLINE void exp_neg(const vec* a, vec* e_out) {
  const vec lo = VecOf<float>::splat(-87.0f), hi = VecOf<float>::splat(87.0f);
  const vec one = VecOf<float>::splat(1.0f);
  vec t[N], fx[N], r[N], y[N];
  ivec n[N];
  GS_EACH(i) {
    t[i] = -a[i];
    t[i] = t[i] < lo ? lo : t[i];
    t[i] = t[i] > hi ? hi : t[i];
  }
  GS_EACH(i) {
    fx[i] = floor8<kAvx2>(t[i] * 1.44269504088896341f + 0.5f);
    n[i] = __builtin_convertvector(fx[i], ivec);
  }
  GS_EACH(i) r[i] = (t[i] - fx[i] * 0.693359375f) - fx[i] * -2.12194440e-4f;
  GS_EACH(i) y[i] = r[i] * 1.9875691500e-4f + 1.3981999507e-3f;
  GS_EACH(i) y[i] = y[i] * r[i] + 8.3334519073e-3f;
  GS_EACH(i) y[i] = y[i] * r[i] + 4.1665795894e-2f;
  GS_EACH(i) y[i] = y[i] * r[i] + 1.6666665459e-1f;
  GS_EACH(i) y[i] = y[i] * r[i] + 5.0000001201e-1f;
  GS_EACH(i) {
    const vec z = r[i] * r[i];
    vec e = ((y[i] * z) + r[i]) + one;
    e_out[i] = e * __builtin_bit_cast(vec, (n[i] + 127) << 23);
  }
}

// gs_sigmoid up to its last step: returns d = 1 + exp(-a), so that p = 1 / d (one
// correctly rounded division, done by the caller when it needs p).
template <bool kAvx2, int N>
GS_ALWAYS_INLINE void sigmoid_denom(const vec* a, vec* d) {
  const vec one = VecOf<float>::splat(1.0f);
  exp_neg<kAvx2, N>(a, d);
  GS_EACH(i) d[i] = one + d[i];
}

// The draw u < p = RN(1 / d) without the division where the answer is certain:
// w = RN(u d) = u d (1 + r), |r| <= 2^-24, and RN(1/d) = (1/d)(1 + s), |s| <= 2^-24
// (1/d is a normal float: d <= 1 + 2^127). w < 1 - 2^-21 gives u < (1/d)(1 - 2^-22)
// < p; w > 1 + 2^-21 gives u > (1/d)(1 + 2^-22) > p. Only vectors with a lane in
// between (probability ~1e-6 per lane) divide.
#if defined(GS_CPU_AVX2_PATH)
GS_TARGET_AVX2 inline bool any8_avx2(ivec m) {
  const __m256i x = __builtin_bit_cast(__m256i, m);
  return !_mm256_testz_si256(x, x);
}
#endif

template <bool kAvx2>
inline bool any8(ivec m) {
#if defined(GS_CPU_AVX2_PATH)
  if constexpr (kAvx2) return any8_avx2(m);
#endif
  bool any = false;
  for (int l = 0; l < 8; ++l) any = any || m[l] != 0;
  return any;
}

template <bool kAvx2>
GS_ALWAYS_INLINE ivec draw_from_denom(vec u, vec d) {
  const vec w = u * d;
  const ivec lt = w < VecOf<float>::splat(1.0f - 0x1p-21f);
  const ivec ge = w > VecOf<float>::splat(1.0f + 0x1p-21f);
  if (__builtin_expect(any8<kAvx2>(~(lt | ge)), 0)) return u < VecOf<float>::splat(1.0f) / d;
  return lt;
}

#if defined(GS_CPU_AVX2_PATH)
// Byte k of kCompactLut[m] is the position of the k-th set bit of m.
struct CompactLut {
  uint64_t v[256];
  constexpr CompactLut() : v() {
    for (int m = 0; m < 256; ++m) {
      uint64_t x = 0;
      int c = 0;
      for (int b = 0; b < 8; ++b)
        if (m & (1 << b)) x |= static_cast<uint64_t>(b) << (8 * c++);
      v[m] = x;
    }
  }
};
constexpr CompactLut kCompactLut{};
#endif

// Appends j0 + lane for the set lanes of the 8-lane mask m (all ones / zeros) to idx
// at position c; idx needs 8 entries of slack. Returns the new count.
#if defined(GS_CPU_AVX2_PATH)
GS_TARGET_AVX2 inline int32_t compact8_avx2(ivec m, int32_t j0, int32_t* idx, int32_t c) {
  const __m256i mi = __builtin_bit_cast(__m256i, m);
  const int bits = _mm256_movemask_ps(_mm256_castsi256_ps(mi));
  const __m256i lanes = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(kCompactLut.v[bits])));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + c), _mm256_add_epi32(lanes, _mm256_set1_epi32(j0)));
  return c + __builtin_popcount(static_cast<unsigned>(bits));
}
#endif

template <bool kAvx2>
inline int32_t compact8(ivec m, int32_t j0, int32_t* idx, int32_t c) {
#if defined(GS_CPU_AVX2_PATH)
  if constexpr (kAvx2) return compact8_avx2(m, j0, idx, c);
#endif
  for (int l = 0; l < 8; ++l) {
    idx[c] = j0 + l;
    c += m[l] != 0 ? 1 : 0;
  }
  return c;
}

// Indices of the nonzero entries of x[0 .. n) (to idx, 8 entries of slack); returns
// their count, or -1 - count if some entry is neither 0 nor 1.
template <bool kAvx2>
inline int32_t compact_input_impl(const float* GS_RESTRICT x, int64_t n, int32_t* GS_RESTRICT idx) {
  int32_t c = 0;
  const vec zero = VecOf<float>::splat(0.0f), one = VecOf<float>::splat(1.0f);
  ivec other = VecOf<float>::splat_i(0);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const vec v = VecOf<float>::load_f32(x + j);
    other |= (v != zero) & (v != one);
    c = compact8<kAvx2>(v != zero, static_cast<int32_t>(j), idx, c);
  }
  bool binary = true;
  for (int l = 0; l < 8; ++l) binary = binary && other[l] == 0;
  for (; j < n; ++j) {
    binary = binary && (x[j] == 0.0f || x[j] == 1.0f);
    idx[c] = static_cast<int32_t>(j);
    c += x[j] != 0.0f ? 1 : 0;
  }
  return binary ? c : -1 - c;
}

// a += row r0 (8 NV columns).
template <int NV>
GS_ALWAYS_INLINE void add_row(vec* a, const float* r0) {
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) a[v] += *reinterpret_cast<const uvec*>(r0 + 8 * v);
}

// a += row r0; row r1 into b (kDual: a second accumulator set) or a.
template <int NV, bool kDual>
GS_ALWAYS_INLINE void add_row_pair(vec* a, vec* b, const float* r0, const float* r1) {
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    a[v] += *reinterpret_cast<const uvec*>(r0 + 8 * v);
    if (kDual)
      b[v] += *reinterpret_cast<const uvec*>(r1 + 8 * v);
    else
      a[v] += *reinterpret_cast<const uvec*>(r1 + 8 * v);
  }
}

// out[0 .. 8 NV) (+)= sum of the rows W + idx[q] * ldw, q < n (8 NV columns). Two
// accumulator sets (even / odd list positions) give independent add chains.
template <int NV, bool kAcc>
GS_ALWAYS_INLINE void sum_rows_impl(const float* GS_RESTRICT W, int64_t ldw, const int32_t* GS_RESTRICT idx,
                                    int32_t n, float* GS_RESTRICT out) {
  // up to 4 vectors: two accumulator sets (even / odd list positions) for independent
  // add chains; wider tiles have enough chains in one set (and registers for no more)
  constexpr bool kDual = NV <= 4;
  vec a[NV], b[NV];
  const vec zero = VecOf<float>::splat(0.0f);
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    a[v] = kAcc ? *reinterpret_cast<const uvec*>(out + 8 * v) : zero;
    b[v] = zero;
  }
  int32_t q = 0;
  for (; q + 3 < n; q += 4) {  // 4 rows per iteration: fewer loop branches
    const float* r0 = W + static_cast<int64_t>(idx[q]) * ldw;
    const float* r1 = W + static_cast<int64_t>(idx[q + 1]) * ldw;
    const float* r2 = W + static_cast<int64_t>(idx[q + 2]) * ldw;
    const float* r3 = W + static_cast<int64_t>(idx[q + 3]) * ldw;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (kDual) {
        a[v] += *reinterpret_cast<const uvec*>(r0 + 8 * v);
        b[v] += *reinterpret_cast<const uvec*>(r1 + 8 * v);
        a[v] += *reinterpret_cast<const uvec*>(r2 + 8 * v);
        b[v] += *reinterpret_cast<const uvec*>(r3 + 8 * v);
      } else {
        a[v] += *reinterpret_cast<const uvec*>(r0 + 8 * v);
        a[v] += *reinterpret_cast<const uvec*>(r1 + 8 * v);
        a[v] += *reinterpret_cast<const uvec*>(r2 + 8 * v);
        a[v] += *reinterpret_cast<const uvec*>(r3 + 8 * v);
      }
    }
  }
  for (; q + 1 < n; q += 2) {
    const float* r0 = W + static_cast<int64_t>(idx[q]) * ldw;
    const float* r1 = W + static_cast<int64_t>(idx[q + 1]) * ldw;
    add_row_pair<NV, kDual>(a, b, r0, r1);
  }
  if (q < n) {
    const float* r0 = W + static_cast<int64_t>(idx[q]) * ldw;
    add_row<NV>(a, r0);
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) *reinterpret_cast<uvec*>(out + 8 * v) = kDual ? a[v] + b[v] : a[v];
}

// out[0 .. 8 NV) = sum_q x[idx[q]] * row idx[q]  (general, non-binary inputs).
template <int NV>
GS_ALWAYS_INLINE void axpy_rows_impl(const float* GS_RESTRICT W, int64_t ldw, const int32_t* GS_RESTRICT idx,
                                     const float* GS_RESTRICT x, int32_t n, float* GS_RESTRICT out) {
  vec a[NV];
  const vec zero = VecOf<float>::splat(0.0f);
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) a[v] = zero;
  for (int32_t q = 0; q < n; ++q) {
    const float* r0 = W + static_cast<int64_t>(idx[q]) * ldw;
    const vec s = VecOf<float>::splat(x[idx[q]]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) a[v] += s * *reinterpret_cast<const uvec*>(r0 + 8 * v);
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) *reinterpret_cast<uvec*>(out + 8 * v) = a[v];
}

// W is packed tile-major for the row-sum GEMMs: column tile t (kTileW columns, the last
// one narrower: a multiple of 8) holds its n_in rows contiguously at W + t kTileW n_in
// with row stride = the tile's width. The rows are processed in chunks of kChunkRows,
// so one (chunk x tile) block of W (16 KiB, 4 pages) stays in L1 and the TLB while
// every chain of a block adds its rows from it.
constexpr int64_t kTileW = 64;
constexpr int64_t kChunkRows = 64;

// General rows (non-binary input): out = x @ W over the whole padded row.
GS_ALWAYS_INLINE void gemm_row_general_impl(const float* W, int64_t ld, int64_t n_in, const int32_t* idx,
                                            const float* x, int32_t n, float* out) {
  for (int64_t j0 = 0; j0 < ld; j0 += kTileW) {
    const int64_t tw = std::min(kTileW, ld - j0);
    const float* Wt = W + j0 * n_in;
    switch (tw / 8) {
#define GS_CASE(K) case K: axpy_rows_impl<K>(Wt, tw, idx, x, n, out + j0); break;
      GS_CASE(1) GS_CASE(2) GS_CASE(3) GS_CASE(4) GS_CASE(5) GS_CASE(6) GS_CASE(7)
#undef GS_CASE
      default: axpy_rows_impl<8>(Wt, tw, idx, x, n, out + j0); break;
    }
  }
}

// One (row chunk x column tile) block of the GEMM for the block's chains: chain r adds
// the rows idx[r * ldi + bounds[r * ldb + ch] .. bounds[r * ldb + ch + 1]) of the tile
// Wt into out[r * ldo ..] (kAcc: onto what is there; else from zero). With pf non-null,
// the pf_lines cache lines at pf (the next block of W) are prefetched, spread over the
// chains, so that the next block arrives while this one is summed.
template <int NV, bool kAcc>
GS_ALWAYS_INLINE void gemm_block_impl(const float* Wt, int64_t rows, const int32_t* idx, int64_t ldi,
                                      const int32_t* bounds, int64_t ldb, int64_t ch, float* out, int64_t ldo,
                                      const char* pf, int64_t pf_lines, int pf_hint = 3) {
  const int64_t per = pf != nullptr ? (pf_lines + rows - 1) / rows : 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t l = r * per; l < std::min(pf_lines, (r + 1) * per); ++l) {
      if (pf_hint == 3)
        __builtin_prefetch(pf + 64 * l, 0, 3);
      else if (pf_hint == 2)
        __builtin_prefetch(pf + 64 * l, 0, 2);
      else
        __builtin_prefetch(pf + 64 * l, 0, 1);
    }
    const int32_t b0 = bounds[r * ldb + ch], b1 = bounds[r * ldb + ch + 1];
    sum_rows_impl<NV, kAcc>(Wt, 8 * NV, idx + r * ldi + b0, b1 - b0, out + r * ldo);
  }
}

template <int NV>
GS_ALWAYS_INLINE void gemm_chunk_impl(const float* Wt, int64_t rows, const int32_t* idx, int64_t ldi,
                                      const int32_t* bounds, int64_t ldb, int64_t ch, float* out, int64_t ldo,
                                      const char* pf, int64_t pf_lines, int pf_hint) {
  if (ch == 0)
    gemm_block_impl<NV, false>(Wt, rows, idx, ldi, bounds, ldb, ch, out, ldo, pf, pf_lines, pf_hint);
  else
    gemm_block_impl<NV, true>(Wt, rows, idx, ldi, bounds, ldb, ch, out, ldo, pf, pf_lines, pf_hint);
}

// The whole GEMM of a block: out[r, :] = (binary states of chain r) @ W (row stride ld),
// rows of W in chunks of chunk_rows (the bounds of make_bounds with the same chunk_rows).
GS_ALWAYS_INLINE void block_gemm_impl(const float* W, int64_t ld, int64_t n_in, int64_t rows, const int32_t* idx,
                                      int64_t ldi, const int32_t* bounds, int64_t ldb, float* out,
                                      int64_t chunk_rows = kChunkRows, int prefetch = 0) {
  const int64_t nch = std::max<int64_t>(1, (n_in + chunk_rows - 1) / chunk_rows);
  const char* end = reinterpret_cast<const char*>(W + ld * n_in);
  for (int64_t j0 = 0; j0 < ld; j0 += kTileW) {
    const int64_t tw = std::min(kTileW, ld - j0);
    const float* Wt = W + j0 * n_in;
    for (int64_t ch = 0; ch < nch; ++ch) {
      // the next block follows this one in memory (tile-major packing)
      const char* pf = prefetch ? reinterpret_cast<const char*>(Wt + (ch + 1) * chunk_rows * tw) : nullptr;
      const int64_t pf_lines = pf != nullptr && pf < end ? std::min<int64_t>(chunk_rows * tw * 4, end - pf) / 64 : 0;
      if (pf_lines == 0) pf = nullptr;
      switch (tw / 8) {
#define GS_CASE(K) case K: gemm_chunk_impl<K>(Wt, rows, idx, ldi, bounds, ldb, ch, out + j0, ld, pf, pf_lines, prefetch); break;
        GS_CASE(1) GS_CASE(2) GS_CASE(3) GS_CASE(4) GS_CASE(5) GS_CASE(6) GS_CASE(7)
#undef GS_CASE
        default: gemm_chunk_impl<8>(Wt, rows, idx, ldi, bounds, ldb, ch, out + j0, ld, pf, pf_lines, prefetch); break;
      }
    }
  }
}

// Small layers: x @ W for binary x by tables. Input units in groups of 4; for group g
// and each of the 16 patterns e of its states, T[(g 16 + e) ld ..] holds the sum of the
// rows of W selected by e (built once per call). A row's product is then one table row
// per group: n_in / 4 vector loads per 8 columns instead of one per active unit.
// Used when all tables fit in 64 KiB (n_in * ld <= 4096: e.g. 64 x 32, 64 x 16).
constexpr int64_t kLutMaxElems = 4096;

template <int NV>
GS_ALWAYS_INLINE void lut_sum_impl(const float* GS_RESTRICT T, int64_t ld, const uint8_t* GS_RESTRICT nib, int64_t ng,
                                   float* GS_RESTRICT out) {
  constexpr bool kDual = NV <= 4;
  vec a[NV], b[NV];
  const vec zero = VecOf<float>::splat(0.0f);
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) a[v] = b[v] = zero;
  int64_t g = 0;
  for (; g + 1 < ng; g += 2) {
    const float* r0 = T + (g * 16 + nib[g]) * ld;
    const float* r1 = T + ((g + 1) * 16 + nib[g + 1]) * ld;
    add_row_pair<NV, kDual>(a, b, r0, r1);
  }
  if (g < ng) {
    const float* r0 = T + (g * 16 + nib[g]) * ld;
    add_row<NV>(a, r0);
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) *reinterpret_cast<uvec*>(out + 8 * v) = kDual ? a[v] + b[v] : a[v];
}

#if defined(GS_CPU_AVX2_PATH)
GS_TARGET_AVX2 inline int mask8_avx2(const float* x) {
  return _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x), _mm256_setzero_ps(), _CMP_NEQ_UQ));
}
#endif

template <bool kAvx2>
inline int mask8(const float* x) {
#if defined(GS_CPU_AVX2_PATH)
  if constexpr (kAvx2) return mask8_avx2(x);
#endif
  int m = 0;
  for (int l = 0; l < 8; ++l) m |= (x[l] != 0.0f ? 1 : 0) << l;
  return m;
}

// out[r, :] = x[r, :] @ W by tables, for binary rows x (row stride ldx).
template <bool kAvx2>
inline void lut_gemm_impl(const float* T, int64_t ld, int64_t n_in, int64_t rows, const float* x, int64_t ldx,
                          float* out) {
  const int64_t ng = (n_in + 3) / 4;
  uint8_t nib[kLutMaxElems / 8 / 4 + 2];
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    int64_t i = 0;
    for (; i + 8 <= n_in; i += 8) {
      const int m = mask8<kAvx2>(xr + i);
      nib[i / 4] = static_cast<uint8_t>(m & 15);
      nib[i / 4 + 1] = static_cast<uint8_t>(m >> 4);
    }
    for (; i < n_in; i += 4) {
      int m = 0;
      for (int64_t l = i; l < std::min(n_in, i + 4); ++l) m |= (xr[l] != 0.0f ? 1 : 0) << (l - i);
      nib[i / 4] = static_cast<uint8_t>(m);
    }
    float* o = out + r * ld;
    for (int64_t j0 = 0; j0 < ld; j0 += 64) {
      switch (std::min<int64_t>(8, (ld - j0) / 8)) {
        case 1: lut_sum_impl<1>(T + j0, ld, nib, ng, o + j0); break;
        case 2: lut_sum_impl<2>(T + j0, ld, nib, ng, o + j0); break;
        case 3: lut_sum_impl<3>(T + j0, ld, nib, ng, o + j0); break;
        case 4: lut_sum_impl<4>(T + j0, ld, nib, ng, o + j0); break;
        case 5: lut_sum_impl<5>(T + j0, ld, nib, ng, o + j0); break;
        case 6: lut_sum_impl<6>(T + j0, ld, nib, ng, o + j0); break;
        case 7: lut_sum_impl<7>(T + j0, ld, nib, ng, o + j0); break;
        default: lut_sum_impl<8>(T + j0, ld, nib, ng, o + j0); break;
      }
    }
  }
}

constexpr int64_t kChunk = 2048;  // stream elements per fill (8 KiB: stays in L1)

// Input checks (the Python wrappers validate user input; these guard direct calls).
void check_f32(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu(), kOp, name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat, kOp, name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == dim, kOp, name, " must be ", dim, "-D, got shape ", t.sizes());
}

void check_len(const at::Tensor& t, const char* name, int64_t n) {
  check_f32(t, name, 1);
  TORCH_CHECK(t.size(0) == n, kOp, name, " must have shape (", n, "), got ", t.sizes());
}

int64_t round8(int64_t n) { return (n + 7) / 8 * 8; }

// One layer's GEMM input: a packed copy of W (rows = input units, ld a multiple of 8,
// zero padding) and the bias of the layer being drawn.
struct Layer {
  const float* W;  // (n_in, ld), tile-major
  int64_t ld;
  int64_t n_in, n_out;
  const float* bias;
  const float* T;  // tables of lut_gemm_impl, or null
};

// Tables of lut_gemm_impl for src (n_in, n_out): T[g][e] = T[g][e - lowbit(e)] + row 4g + ctz(e).
at::Tensor build_lut(const at::Tensor& src_any, int64_t ld) {
  const at::Tensor src = src_any.contiguous();
  const int64_t n_in = src.size(0), n_out = src.size(1), ng = (n_in + 3) / 4;
  at::Tensor out = at::zeros({ng * 16 * ld}, src.options());
  const float* s = src.const_data_ptr<float>();
  float* T = out.mutable_data_ptr<float>();
  for (int64_t g = 0; g < ng; ++g)
    for (int e = 1; e < 16; ++e) {
      const int b = __builtin_ctz(static_cast<unsigned>(e));
      const int64_t row = 4 * g + b;
      const float* prev = T + (g * 16 + (e & (e - 1))) * ld;
      float* dst = T + (g * 16 + e) * ld;
      for (int64_t c = 0; c < ld; ++c) dst[c] = prev[c] + (row < n_in && c < n_out ? s[row * n_out + c] : 0.0f);
    }
  return out;
}

template <typename T>
std::vector<T>& at_least(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v;
}

// bounds[r, ch] = first list position of chain r with index >= ch * chunk_rows.
void make_bounds(int64_t rows, const int32_t* idx, int64_t ldi, const int32_t* cnt, int64_t nch, int32_t* bounds,
                 int64_t chunk_rows = kChunkRows) {
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* l = idx + r * ldi;
    int32_t* b = bounds + r * (nch + 1);
    b[0] = 0;
    for (int64_t ch = 1; ch < nch; ++ch)
      b[ch] = static_cast<int32_t>(std::lower_bound(l, l + cnt[r], static_cast<int32_t>(ch * chunk_rows)) - l);
    b[nch] = cnt[r];
  }
}

// src (n_in, n_out), any strides -> tile-major layout of block_gemm_impl, ld = round8(n_out).
at::Tensor pack_tiles(const at::Tensor& src_any, int64_t ld) {
  const at::Tensor src = src_any.contiguous();  // ATen's blocked transpose for W^T
  const int64_t n_in = src.size(0), n_out = src.size(1);
  at::Tensor out = empty_output({n_in * ld}, src.options());
  const float* s = src.const_data_ptr<float>();
  const int64_t s0 = src.stride(0), s1 = src.stride(1);
  float* o = out.mutable_data_ptr<float>();
  const int64_t ntiles = (ld + kTileW - 1) / kTileW;
  at::parallel_for(0, ntiles, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t j0 = t * kTileW, tw = std::min(kTileW, ld - j0);
      float* ot = o + j0 * n_in;
      const int64_t w = std::min(tw, n_out - j0);  // real columns of the tile
      for (int64_t i = 0; i < n_in; ++i) {
        std::memcpy(ot + i * tw, s + i * s0 + j0 * s1, static_cast<size_t>(w) * sizeof(float));
        for (int64_t c = w; c < tw; ++c) ot[i * tw + c] = 0.0f;
      }
    }
  });
  return out;
}

}  // namespace
}  // namespace cpu
}  // namespace gensample
