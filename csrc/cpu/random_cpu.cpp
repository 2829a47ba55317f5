// CPU kernels of the stream ops: philox_uniform, philox_normal, and the batched
// fills (uniform_fill / normal_fill, cpu_kernels.h) that the other CPU kernels use.
//
// The per-element math is gensample/random.h (Philox4x32-10, uniform_from_bits,
// box_muller); every backend produces the same bits (gensample/random.py is the
// executable specification). Two implementations of the fills:
//
// * generic (any CPU): the header functions over blocks of counters laid out
//   structure-of-arrays, auto-vectorized by GCC for the baseline ISA.
// * AVX2 (picked at run time with __builtin_cpu_supports; GENSAMPLE_CPU_NO_AVX2=1
//   forces the generic one): GCC's vectorization of the header's 32x32->64 mulhilo
//   is mostly shuffles, and its vectorized Box-Muller loop runs one long polynomial
//   dependency chain at a time, so both are written with intrinsics below, mirroring
//   the header operation for operation (same constants, same rounding order, no
//   FMA). tests/test_cpu_backend.py checks the AVX2 path bit for bit against the
//   generic one and against random.py. The blocks hand their values, 8 at a time and
//   still in registers, to a sink: a plain store, or z = mu + sd eps for the reparam
//   forward (normal_affine_fill), so those normals never make a trip through memory.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "cpu_kernels.h"
#include "gensample/random.h"
#if defined(GS_CPU_AVX2_PATH)
#include <immintrin.h>
#endif

namespace gensample {
namespace cpu {
namespace {

// ---------------------------------------------------------------------------
// Generic path: the header functions, kGenBlock counters at a time.
constexpr int kGenBlock = 16;

struct alignas(64) Words {
  uint32_t w[4][kGenBlock];
};

// Philox words of counters n0 .. n0 + kGenBlock - 1 (64-bit, wrapping), SoA.
GS_ALWAYS_INLINE void philox_block(uint32_t k0, uint32_t k1, uint64_t n0, Words& out) {
  for (int j = 0; j < kGenBlock; ++j) {
    const uint64_t n = n0 + static_cast<uint64_t>(j);
    uint32_t c0 = static_cast<uint32_t>(n), c1 = static_cast<uint32_t>(n >> 32), c2 = 0u, c3 = 0u;
    philox::philox4x32_10(c0, c1, c2, c3, k0, k1);
    out.w[0][j] = c0;
    out.w[1][j] = c1;
    out.w[2][j] = c2;
    out.w[3][j] = c3;
  }
}

GS_ALWAYS_INLINE void uniform_block(uint32_t k0, uint32_t k1, uint64_t n0, float* GS_RESTRICT out) {
  Words w;
  philox_block(k0, k1, n0, w);
  for (int j = 0; j < kGenBlock; ++j) {
    out[4 * j + 0] = uniform_from_bits(w.w[0][j]);
    out[4 * j + 1] = uniform_from_bits(w.w[1][j]);
    out[4 * j + 2] = uniform_from_bits(w.w[2][j]);
    out[4 * j + 3] = uniform_from_bits(w.w[3][j]);
  }
}

GS_ALWAYS_INLINE void normal_block(uint32_t k0, uint32_t k1, uint64_t n0, float* GS_RESTRICT out) {
  Words w;
  philox_block(k0, k1, n0, w);
  // Box-Muller pairs (w0, w1) and (w2, w3) of every counter: 2 kGenBlock independent
  // pairs in one vectorizable loop.
  alignas(64) uint32_t a[2 * kGenBlock], b[2 * kGenBlock];
  alignas(64) float zc[2 * kGenBlock], zs[2 * kGenBlock];
  for (int j = 0; j < kGenBlock; ++j) {
    a[j] = w.w[0][j];
    b[j] = w.w[1][j];
    a[kGenBlock + j] = w.w[2][j];
    b[kGenBlock + j] = w.w[3][j];
  }
  for (int j = 0; j < 2 * kGenBlock; ++j) box_muller(a[j], b[j], zc[j], zs[j]);
  for (int j = 0; j < kGenBlock; ++j) {
    out[4 * j + 0] = zc[j];
    out[4 * j + 1] = zs[j];
    out[4 * j + 2] = zc[kGenBlock + j];
    out[4 * j + 3] = zs[kGenBlock + j];
  }
}

// Where a fill's values go. Plain: out[i] = x_i. Affine: out[i] = mu[i] + sd[i] x_i
// (reparam::sample_std, fused in the AVX2 + FMA copy; optionally with streaming
// stores there). i counts from the fill's first element.
struct PlainOut {
  float* out;
  GS_ALWAYS_INLINE void put(const float* x, int64_t i, int64_t n) const {
    for (int64_t j = 0; j < n; ++j) out[i + j] = x[j];
  }
};
template <bool kFused>
struct AffineOut {
  const float* mu;
  const float* sd;
  float* out;
  GS_ALWAYS_INLINE void put(const float* x, int64_t i, int64_t n) const {
    for (int64_t j = 0; j < n; ++j)
      out[i + j] = kFused ? __builtin_fmaf(sd[i + j], x[j], mu[i + j]) : mu[i + j] + sd[i + j] * x[j];
  }
};

template <bool kNormal, typename Out>
void fill_generic(uint64_t seed, uint64_t offset, uint64_t start, int64_t count, const Out& out) {
  if (count <= 0) return;
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const uint64_t end = start + static_cast<uint64_t>(count);  // element indices [start, end)
  alignas(64) float tmp[4 * kGenBlock];
  for (uint64_t c = start >> 2; (c << 2) < end; c += kGenBlock) {  // c: counter relative to offset
    const uint64_t e0 = c << 2;
    if (kNormal)
      normal_block(k0, k1, offset + c, tmp);
    else
      uniform_block(k0, k1, offset + c, tmp);
    const uint64_t lo = std::max(e0, start), hi = std::min(e0 + 4 * kGenBlock, end);
    out.put(tmp + (lo - e0), static_cast<int64_t>(lo - start), static_cast<int64_t>(hi - lo));
  }
}

#if defined(GS_CPU_AVX2_PATH)
// ---------------------------------------------------------------------------
// AVX2 path.
#define GS_AVX2 GS_TARGET_AVX2

// Philox4x32-10 in 64-bit lanes (4 counters per vector): vpmuludq multiplies the low
// 32 bits of each lane, so p = c * M gives hi = p >> 32 and lo = p directly (lo's
// high half is junk, which the next vpmuludq and the final 32-bit truncation
// ignore). Rounds and constants are random.h's philox4x32_10.
struct alignas(32) PhiloxV {
  __m256i c0, c1, c2, c3;  // 64-bit lanes, low 32 bits meaningful
};

// Philox4x32-10 of the 4 * kV counters n0 + [0, 4 kV).
template <int kV>
GS_AVX2 GS_ALWAYS_INLINE void philox_avx2(const __m256i* keys0, const __m256i* keys1, uint64_t n0, PhiloxV* st) {
  const __m256i mA = _mm256_set1_epi64x(philox::kRoundA);
  const __m256i mB = _mm256_set1_epi64x(philox::kRoundB);
  const __m256i base = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<long long>(n0)), _mm256_setr_epi64x(0, 1, 2, 3));
#pragma GCC unroll 8
  for (int v = 0; v < kV; ++v) {
    const __m256i n = _mm256_add_epi64(base, _mm256_set1_epi64x(4 * v));  // wraps mod 2^64
    // Round 1 with c2 = c3 = 0 (so hi1 = lo1 = 0).
    const __m256i p0 = _mm256_mul_epu32(n, mA);  // c0 = low32(n)
    st[v].c0 = _mm256_xor_si256(_mm256_srli_epi64(n, 32), keys0[0]);  // hi1 ^ c1 ^ k0, c1 = high32(n)
    st[v].c1 = _mm256_setzero_si256();
    st[v].c2 = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), keys1[0]);  // hi0 ^ c3 ^ k1
    st[v].c3 = p0;
  }
#pragma GCC unroll 10
  for (int r = 1; r < 10; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < kV; ++v) {
      const __m256i p0 = _mm256_mul_epu32(st[v].c0, mA);
      const __m256i p1 = _mm256_mul_epu32(st[v].c2, mB);
      // (c1 ^ k0) is ready before the product: the critical path is mul, shift, xor.
      const __m256i n0v = _mm256_xor_si256(_mm256_srli_epi64(p1, 32), _mm256_xor_si256(st[v].c1, keys0[r]));
      const __m256i n2v = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), _mm256_xor_si256(st[v].c3, keys1[r]));
      st[v].c0 = n0v;
      st[v].c1 = p1;
      st[v].c2 = n2v;
      st[v].c3 = p0;
    }
  }
}

GS_AVX2 GS_ALWAYS_INLINE void round_keys_avx2(uint32_t k0, uint32_t k1, __m256i* keys0, __m256i* keys1) {
  for (int r = 0; r < 10; ++r) {
    keys0[r] = _mm256_set1_epi64x(k0);
    keys1[r] = _mm256_set1_epi64x(k1);
    k0 += philox::kKeyA;
    k1 += philox::kKeyB;
  }
}

// Box-Muller (random.h: u32_to_float, log_unit, angle_cos_sin, box_muller) on N
// vectors of 8 pairs at once, operation for operation and constant for constant the
// header's float32 sequence (no FMA, same rounding, exact selects and sign flips), so
// the bits are the same. N independent vectors are interleaved statement by
// statement: the polynomials are long dependency chains, and GCC's auto-vectorized
// loop over the header function runs one chain at a time (about 2x slower).
// tests/test_cpu_backend.py checks this path against the generic one (the header,
// GENSAMPLE_CPU_NO_AVX2=1) and against gensample/random.py.
template <int N>
struct F8 {
  __m256 v[N];
};
template <int N>
struct I8 {
  __m256i v[N];
};
#define GS_FOR _Pragma("GCC unroll 8") for (int i = 0; i < N; ++i)

template <int N>
GS_AVX2 GS_ALWAYS_INLINE F8<N> fmul(const F8<N>& a, float b) {
  F8<N> r;
  const __m256 bb = _mm256_set1_ps(b);
  GS_FOR r.v[i] = _mm256_mul_ps(a.v[i], bb);
  return r;
}
template <int N>
GS_AVX2 GS_ALWAYS_INLINE F8<N> fmul(const F8<N>& a, const F8<N>& b) {
  F8<N> r;
  GS_FOR r.v[i] = _mm256_mul_ps(a.v[i], b.v[i]);
  return r;
}
template <int N>
GS_AVX2 GS_ALWAYS_INLINE F8<N> fadd(const F8<N>& a, float b) {
  F8<N> r;
  const __m256 bb = _mm256_set1_ps(b);
  GS_FOR r.v[i] = _mm256_add_ps(a.v[i], bb);
  return r;
}
template <int N>
GS_AVX2 GS_ALWAYS_INLINE F8<N> fadd(const F8<N>& a, const F8<N>& b) {
  F8<N> r;
  GS_FOR r.v[i] = _mm256_add_ps(a.v[i], b.v[i]);
  return r;
}
template <int N>
GS_AVX2 GS_ALWAYS_INLINE F8<N> fsub(const F8<N>& a, float b) {
  F8<N> r;
  const __m256 bb = _mm256_set1_ps(b);
  GS_FOR r.v[i] = _mm256_sub_ps(a.v[i], bb);
  return r;
}
template <int N>
GS_AVX2 GS_ALWAYS_INLINE F8<N> fsub(const F8<N>& a, const F8<N>& b) {
  F8<N> r;
  GS_FOR r.v[i] = _mm256_sub_ps(a.v[i], b.v[i]);
  return r;
}
// float(int32(x)) of each lane (exact here: |x| < 2^24).
template <int N>
GS_AVX2 GS_ALWAYS_INLINE F8<N> i2f(const I8<N>& x) {
  F8<N> r;
  GS_FOR r.v[i] = _mm256_cvtepi32_ps(x.v[i]);
  return r;
}

template <int N>
GS_AVX2 GS_ALWAYS_INLINE void box_muller_avx2(const I8<N>& a, const I8<N>& b, F8<N>& z0, F8<N>& z1) {
  const __m256i mask16 = _mm256_set1_epi32(0xFFFF);
  // u32_to_float(a): float(int32(a >> 16)) * 65536 + float(int32(a & 0xFFFF)).
  I8<N> ah, al;
  GS_FOR ah.v[i] = _mm256_srli_epi32(a.v[i], 16);
  GS_FOR al.v[i] = _mm256_and_si256(a.v[i], mask16);
  F8<N> u = fadd(fmul(i2f(ah), 65536.0f), i2f(al));
  // u = u32_to_float(a) * 2^-32 + 2^-33
  u = fadd(fmul(u, kTwoPowM32), kTwoPowM33);
  // log_unit(u)
  I8<N> e;
  F8<N> m;
  GS_FOR {
    const __m256i bits = _mm256_castps_si256(u.v[i]);
    e.v[i] = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(126));
    m.v[i] = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007FFFFF)),
                                                 _mm256_set1_epi32(0x3F000000)));
  }
  GS_FOR {
    const __m256 small = _mm256_cmp_ps(m.v[i], _mm256_set1_ps(0.70710678118654752440f), _CMP_LT_OQ);
    // e - 1 where small: adding the all-ones mask subtracts 1.
    e.v[i] = _mm256_add_epi32(e.v[i], _mm256_castps_si256(small));
    // (small ? m + m : m) - 1: the header's (m + m) - 1 and m - 1 (both exact) in one subtraction.
    m.v[i] = _mm256_sub_ps(_mm256_blendv_ps(m.v[i], _mm256_add_ps(m.v[i], m.v[i]), small), _mm256_set1_ps(1.0f));
  }
  const F8<N> z = fmul(m, m);
  F8<N> y;
  GS_FOR y.v[i] = _mm256_set1_ps(7.0376836292e-2f);
  y = fadd(fmul(y, m), -1.1514610310e-1f);
  y = fadd(fmul(y, m), 1.1676998740e-1f);
  y = fadd(fmul(y, m), -1.2420140846e-1f);
  y = fadd(fmul(y, m), 1.4249322787e-1f);
  y = fadd(fmul(y, m), -1.6668057665e-1f);
  y = fadd(fmul(y, m), 2.0000714765e-1f);
  y = fadd(fmul(y, m), -2.4999993993e-1f);
  y = fadd(fmul(y, m), 3.3333331174e-1f);
  y = fmul(fmul(y, m), z);
  const F8<N> fe = i2f(e);
  y = fadd(y, fmul(fe, -2.12194440e-4f));
  y = fsub(y, fmul(z, 0.5f));
  F8<N> lg = fadd(m, y);
  lg = fadd(lg, fmul(fe, 0.693359375f));
  // r = sqrt(-2 * log u)
  F8<N> r = fmul(lg, -2.0f);
  GS_FOR r.v[i] = _mm256_sqrt_ps(r.v[i]);
  // angle_cos_sin(b)
  I8<N> sb;
  GS_FOR sb.v[i] = _mm256_and_si256(_mm256_srli_epi32(b.v[i], 6), _mm256_set1_epi32(0xFFFFFF));
  const F8<N> s = fsub(fmul(i2f(sb), kTwoPowM24), 0.5f);
  const F8<N> aa = fmul(s, 1.57079637050628662109375f);
  const F8<N> zz = fmul(aa, aa);
  F8<N> ps;
  GS_FOR ps.v[i] = _mm256_set1_ps(-1.9515295891e-4f);
  ps = fadd(fmul(ps, zz), 8.3321608736e-3f);
  ps = fadd(fmul(ps, zz), -1.6666654611e-1f);
  const F8<N> sn = fadd(fmul(fmul(ps, zz), aa), aa);
  F8<N> pc;
  GS_FOR pc.v[i] = _mm256_set1_ps(2.443315711809948e-5f);
  pc = fadd(fmul(pc, zz), -1.388731625493765e-3f);
  pc = fadd(fmul(pc, zz), 4.166664568298827e-2f);
  F8<N> cs = fmul(fmul(pc, zz), zz);
  cs = fsub(cs, fmul(zz, 0.5f));
  cs = fadd(cs, 1.0f);
  GS_FOR {
    // Quadrant q = b >> 30, read from the bits of b where they are needed.
    // odd quadrant (bit 30 of b): swap cos and sin (blend on the sign bit of b << 1)
    const __m256 odd = _mm256_castsi256_ps(_mm256_slli_epi32(b.v[i], 1));
    const __m256 c0 = _mm256_blendv_ps(cs.v[i], sn.v[i], odd);
    const __m256 s0 = _mm256_blendv_ps(sn.v[i], cs.v[i], odd);
    // negate cos where (q + 1) & 2 (bit 31 of b + 2^30), sin where q & 2 (bit 31 of b):
    // flip the sign bit (exact)
    const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
    const __m256i cneg = _mm256_add_epi32(b.v[i], _mm256_set1_epi32(0x40000000));
    const __m256 c = _mm256_xor_ps(c0, _mm256_castsi256_ps(_mm256_and_si256(cneg, sign)));
    const __m256 sv = _mm256_xor_ps(s0, _mm256_castsi256_ps(_mm256_and_si256(b.v[i], sign)));
    z0.v[i] = _mm256_mul_ps(r.v[i], c);
    z1.v[i] = _mm256_mul_ps(r.v[i], sv);
  }
}
#undef GS_FOR


// Block sizes: kMainV vectors (4 counters each) per block in the bulk of a range
// (16 counters = 64 elements: rows of the reparam kernels' 512-element units need
// no partial block), generated kPhiloxG vectors at a time (their state and the
// multipliers fill the 16 ymm registers) and transformed kBoxG at a time
// (independent Box-Muller chains interleaved); 1 vector at a time at the end of a
// range. Measured on Zen 3: within noise of 6/2/6 and 4/4/4, faster than 2 chains.
constexpr int kMainV = 4;
constexpr int kPhiloxG = 2;
constexpr int kBoxG = 4;
static_assert(kMainV % kPhiloxG == 0, "block must hold whole Philox groups");
static_assert(kMainV % kBoxG == 0, "block must hold whole Box-Muller groups");

template <int V>
GS_AVX2 GS_ALWAYS_INLINE void philox_block_avx2(const __m256i* keys0, const __m256i* keys1, uint64_t n0,
                                                PhiloxV* st) {
  constexpr int G = V < kPhiloxG ? V : kPhiloxG;
#pragma GCC unroll 8
  for (int g = 0; g < V; g += G) philox_avx2<G>(keys0, keys1, n0 + 4 * g, st + g);
}

// Sinks of the blocks: put(k, v) takes the 8 values of elements k .. k + 7 of the
// block; at(e) is the sink shifted by e elements. PlainSink stores them; AffineSink
// stores mu + sd v (reparam::sample_std, fused), with streaming stores when
// kStream (the caller guarantees 32-byte alignment and fences), and, when kPrefetch,
// prefetches element k of pf0 and pf1 once per 64-byte line: the caller's next inputs,
// requested evenly while the generator keeps the core busy (the hardware prefetchers
// see no accesses to those streams in the meantime, and a burst of software
// prefetches stalls on the fill buffers).
struct PlainSink {
  float* out;
  GS_AVX2 GS_ALWAYS_INLINE void put(int64_t k, __m256 v) const { _mm256_storeu_ps(out + k, v); }
  PlainSink at(int64_t e) const { return {out + e}; }
};
template <bool kStream, bool kPrefetch>
struct AffineSink {
  const float* mu;
  const float* sd;
  float* out;
  const float* pf0;
  const float* pf1;
  GS_AVX2 GS_ALWAYS_INLINE void put(int64_t k, __m256 v) const {
    const __m256 z = _mm256_fmadd_ps(_mm256_loadu_ps(sd + k), v, _mm256_loadu_ps(mu + k));
    if (kStream)
      _mm256_stream_ps(out + k, z);
    else
      _mm256_storeu_ps(out + k, z);
    if (kPrefetch && (k & 15) == 0) {
      __builtin_prefetch(pf0 + k, 0, 3);
      __builtin_prefetch(pf1 + k, 0, 3);
    }
  }
  AffineSink at(int64_t e) const {
    return {mu + e, sd + e, out + e, kPrefetch ? pf0 + e : pf0, kPrefetch ? pf1 + e : pf1};
  }
};

// 16 V uniforms of the counters n0 .. n0 + 4 V - 1, in stream order.
template <int V, typename Sink>
GS_AVX2 GS_ALWAYS_INLINE void uniform_block_avx2(const __m256i* keys0, const __m256i* keys1, uint64_t n0,
                                                 const Sink& out) {
  PhiloxV st[V];
  philox_block_avx2<V>(keys0, keys1, n0, st);
  const __m256 scale = _mm256_set1_ps(kTwoPowM24);
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) {
    // 4x4 transpose of 32-bit words: (w0 w1 w2 w3) of counter j, j = 4v .. 4v + 3.
    const __m256i w01 = _mm256_blend_epi32(st[v].c0, _mm256_slli_epi64(st[v].c1, 32), 0xAA);
    const __m256i w23 = _mm256_blend_epi32(st[v].c2, _mm256_slli_epi64(st[v].c3, 32), 0xAA);
    const __m256i lo = _mm256_unpacklo_epi64(w01, w23);  // counters 0 | 2
    const __m256i hi = _mm256_unpackhi_epi64(w01, w23);  // counters 1 | 3
    const __m256i x0 = _mm256_permute2x128_si256(lo, hi, 0x20);
    const __m256i x1 = _mm256_permute2x128_si256(lo, hi, 0x31);
    // uniform_from_bits: float(int32(w >> 8)) * 2^-24, exact.
    out.put(16 * v, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(x0, 8)), scale));
    out.put(16 * v + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(x1, 8)), scale));
  }
}

// 16 V normals of the counters n0 .. n0 + 4 V - 1, in stream order.
template <int V, typename Sink>
GS_AVX2 GS_ALWAYS_INLINE void normal_block_avx2(const __m256i* keys0, const __m256i* keys1, uint64_t n0,
                                                const Sink& out) {
  PhiloxV st[V];
  philox_block_avx2<V>(keys0, keys1, n0, st);
  constexpr int B = V < kBoxG ? V : kBoxG;
#pragma GCC unroll 8
  for (int g = 0; g < V; g += B) {
    // Box-Muller pairs (w0, w1) and (w2, w3) of 4 counters per vector: radius words
    // a = (w0, w2) and angle words b = (w1, w3) of each counter.
    I8<B> a, b;
    F8<B> zc, zs;
#pragma GCC unroll 8
    for (int i = 0; i < B; ++i) {
      a.v[i] = _mm256_blend_epi32(st[g + i].c0, _mm256_slli_epi64(st[g + i].c2, 32), 0xAA);
      b.v[i] = _mm256_blend_epi32(st[g + i].c1, _mm256_slli_epi64(st[g + i].c3, 32), 0xAA);
    }
    box_muller_avx2<B>(a, b, zc, zs);
#pragma GCC unroll 8
    for (int i = 0; i < B; ++i) {
      const __m256 lo = _mm256_unpacklo_ps(zc.v[i], zs.v[i]);  // (z0 z1 z2 z3) of counters 0 | 2
      const __m256 hi = _mm256_unpackhi_ps(zc.v[i], zs.v[i]);  // counters 1 | 3
      out.put(16 * (g + i), _mm256_permute2f128_ps(lo, hi, 0x20));
      out.put(16 * (g + i) + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
  }
}

// A partial block of 4 counters c .. c + 3: generated into a buffer, its part in
// [start, end) to out.
template <bool kNormal, typename Out>
GS_AVX2 GS_ALWAYS_INLINE void partial_avx2(const __m256i* keys0, const __m256i* keys1, uint64_t offset, uint64_t c,
                                           uint64_t start, uint64_t end, const Out& out) {
  alignas(32) float tmp[16];
  if (kNormal)
    normal_block_avx2<1>(keys0, keys1, offset + c, PlainSink{tmp});
  else
    uniform_block_avx2<1>(keys0, keys1, offset + c, PlainSink{tmp});
  const uint64_t e0 = c << 2, lo = std::max(e0, start), hi = std::min(e0 + 16, end);
  out.put(tmp + (lo - e0), static_cast<int64_t>(lo - start), static_cast<int64_t>(hi - lo));
}

// Elements [start, start + count) of the stream into sink (whole blocks) / out (the
// partial blocks at the ends, through a buffer).
template <bool kNormal, typename Sink, typename Out>
GS_AVX2 GS_ALWAYS_INLINE void fill_avx2(uint64_t seed, uint64_t offset, uint64_t start, int64_t count,
                                        const Sink& sink, const Out& out) {
  if (count <= 0) return;
  __m256i keys0[10], keys1[10];
  round_keys_avx2(static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), keys0, keys1);
  const uint64_t end = start + static_cast<uint64_t>(count);  // element indices [start, end)
  const uint64_t c_end = (end + 3) >> 2;                       // one past the last counter
  uint64_t c = start >> 2;  // counter relative to offset
  if ((start & 3) != 0) {   // partial first counter group
    partial_avx2<kNormal>(keys0, keys1, offset, c, start, end, out);
    c += 4;
  }
  // Bulk: whole blocks of 4 kMainV counters.
  while (c + 4 * kMainV <= c_end && ((c + 4 * kMainV) << 2) <= end) {
    const Sink dst = sink.at(static_cast<int64_t>((c << 2) - start));
    if (kNormal)
      normal_block_avx2<kMainV>(keys0, keys1, offset + c, dst);
    else
      uniform_block_avx2<kMainV>(keys0, keys1, offset + c, dst);
    c += 4 * kMainV;
  }
  // Tail: 4 counters at a time.
  while ((c << 2) < end) {
    if (((c + 4) << 2) <= end) {
      const Sink dst = sink.at(static_cast<int64_t>((c << 2) - start));
      if (kNormal)
        normal_block_avx2<1>(keys0, keys1, offset + c, dst);
      else
        uniform_block_avx2<1>(keys0, keys1, offset + c, dst);
    } else {
      partial_avx2<kNormal>(keys0, keys1, offset, c, start, end, out);
    }
    c += 4;
  }
}

template <bool kNormal>
GS_AVX2 void plain_fill_avx2(uint64_t seed, uint64_t offset, uint64_t start, int64_t count, float* out) {
  fill_avx2<kNormal>(seed, offset, start, count, PlainSink{out}, PlainOut{out});
}

template <bool kStream, bool kPrefetch>
GS_AVX2 void affine_fill_avx2(uint64_t seed, uint64_t offset, uint64_t start, int64_t count, const float* mu,
                              const float* sd, float* out, const float* pf0, const float* pf1) {
  fill_avx2<true>(seed, offset, start, count, AffineSink<kStream, kPrefetch>{mu, sd, out, pf0, pf1},
                  AffineOut<true>{mu, sd, out});
}

#undef GS_AVX2
#endif  // GS_CPU_AVX2_PATH

}  // namespace

bool use_avx2() {
#if defined(GS_CPU_AVX2_PATH)
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && std::getenv("GENSAMPLE_CPU_NO_AVX2") == nullptr;
  return yes;
#else
  return false;
#endif
}

void uniform_fill(uint64_t seed, uint64_t offset, uint64_t start, int64_t count, float* out) {
#if defined(GS_CPU_AVX2_PATH)
  if (use_avx2()) return plain_fill_avx2<false>(seed, offset, start, count, out);
#endif
  fill_generic<false>(seed, offset, start, count, PlainOut{out});
}

void normal_fill(uint64_t seed, uint64_t offset, uint64_t start, int64_t count, float* out) {
#if defined(GS_CPU_AVX2_PATH)
  if (use_avx2()) return plain_fill_avx2<true>(seed, offset, start, count, out);
#endif
  fill_generic<true>(seed, offset, start, count, PlainOut{out});
}

void normal_affine_fill(uint64_t seed, uint64_t offset, uint64_t start, int64_t count, const float* mu,
                        const float* sd, float* out, bool stream, const float* pf0, const float* pf1) {
#if defined(GS_CPU_AVX2_PATH)
  if (use_avx2()) {
    // Streaming stores need 32-byte aligned whole blocks: out aligned, start a multiple of 8.
    stream = stream && reinterpret_cast<uintptr_t>(out) % 32 == 0 && start % 8 == 0;
    if (pf0 != nullptr)
      return stream ? affine_fill_avx2<true, true>(seed, offset, start, count, mu, sd, out, pf0, pf1)
                    : affine_fill_avx2<false, true>(seed, offset, start, count, mu, sd, out, pf0, pf1);
    return stream ? affine_fill_avx2<true, false>(seed, offset, start, count, mu, sd, out, pf0, pf1)
                  : affine_fill_avx2<false, false>(seed, offset, start, count, mu, sd, out, pf0, pf1);
  }
#endif
  (void)stream;
  (void)pf0;
  (void)pf1;
  fill_generic<true>(seed, offset, start, count, AffineOut<false>{mu, sd, out});
}

const char* isa_name() { return use_avx2() ? "avx2" : "default"; }

void advise_output(void* p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr size_t kMin = size_t(4) << 20;
  static const bool enabled = [] {
    const char* v = std::getenv("GENSAMPLE_CPU_HUGEPAGE");
    return v != nullptr && v[0] == '1';
  }();
  if (!enabled || bytes < kMin) return;
  const uintptr_t page = 4096;
  const uintptr_t a = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (b > a) (void)madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE);  // a hint: errors ignored
#else
  (void)p;
  (void)bytes;
#endif
}

// ---------------------------------------------------------------------------
// Ops

static void check_seed(const at::Tensor& seed) {
  TORCH_CHECK(seed.device().is_cpu(), "gensample (cpu): seed must be a CPU tensor, got ", seed.device());
  TORCH_CHECK(seed.scalar_type() == at::kLong, "gensample (cpu): seed must be int64, got ", seed.scalar_type());
  TORCH_CHECK(seed.dim() == 1 && seed.size(0) == 2,
              "gensample (cpu): seed must have shape (2,) holding (seed, offset), got ", seed.sizes());
}

void read_seed(const at::Tensor& seed, uint64_t& key, uint64_t& offset) {
  check_seed(seed);
  const int64_t* p = seed.const_data_ptr<int64_t>();
  const int64_t st = seed.stride(0);
  key = static_cast<uint64_t>(p[0]);
  offset = static_cast<uint64_t>(p[st]);
}

namespace {

// Elements per parallel task (48 KiB of output): a multiple of both fills' block
// sizes (64 and 96 elements), so only the ends of the whole range need partial blocks.
constexpr int64_t kStreamGrain = 12288;

at::Tensor stream_op(const at::Tensor& seed, int64_t numel, bool normal) {
  uint64_t key, offset;
  read_seed(seed, key, offset);
  TORCH_CHECK(numel >= 0, "gensample (cpu): numel must be >= 0, got ", numel);
  at::Tensor out = empty_output({numel}, seed.options().dtype(at::kFloat));
  if (numel == 0) return out;
  float* o = out.mutable_data_ptr<float>();
  advise_output(o, static_cast<size_t>(numel) * sizeof(float));
  // Each piece writes a disjoint range (first touch of the fresh output happens in
  // parallel too); the values do not depend on which thread takes which piece
  // (parallel_chunks: a slowed thread does not hold the other up). No streaming stores
  // here: 16M normals took 4% longer with them on the dev VM.
  parallel_chunks(numel, kStreamGrain, [&](int64_t e0, int64_t e1) {
    if (normal)
      normal_fill(key, offset, static_cast<uint64_t>(e0), e1 - e0, o + e0);
    else
      uniform_fill(key, offset, static_cast<uint64_t>(e0), e1 - e0, o + e0);
  });
  return out;
}

at::Tensor philox_uniform_cpu(const at::Tensor& seed, c10::SymInt numel) {
  return stream_op(seed, numel.guard_int(__FILE__, __LINE__), false);
}

at::Tensor philox_normal_cpu(const at::Tensor& seed, c10::SymInt numel) {
  return stream_op(seed, numel.guard_int(__FILE__, __LINE__), true);
}

}  // namespace
}  // namespace cpu
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CPU, m) {
  m.impl("philox_uniform", &gensample::cpu::philox_uniform_cpu);
  m.impl("philox_normal", &gensample::cpu::philox_normal_cpu);
}
