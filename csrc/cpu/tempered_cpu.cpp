// CPU kernels of the tempered block Gibbs ops: tempered_sweeps (per-chain inverse
// temperatures: parallel tempering) and ais_rbm (a whole annealed-importance-sampling run).
// The torch backend (gensample/ops/tempered.py) is the specification: the states match it
// bit for bit whenever the GEMMs are exact (binary states, dyadic weights); the log-weights
// match to float32 rounding of the softplus terms (our own vectorized exp/log1p, or, for
// small annealing steps, a Taylor series closer to the exact value), summed in float64.
// Per-element math: gensample/tempered.h (scalar) mirrored by the vector code below
// operation for operation (the draws); shared block machinery: gibbs_block.h.
//
// Two drivers:
// * block (Bernoulli visible units, the default): a thread takes a block of chains and
//   runs ALL half-steps / annealing steps on it, no barrier in between (blocks handed out
//   from a shared counter). Binary states make x @ W a sum of rows of W: tile-packed row
//   sums driven by 64-bit masks of the states (mask_gemm_impl: each 64 x 64 block of W
//   stays in L1 while every chain of the block adds its rows; chains 2k and 2k + 1 sum
//   the rows they both have on once, a quarter of all rows at density 1/2), or, for
//   small layers, tables of 4-unit row sums (lut_gemm_impl). Each epilogue is fused:
//   bias, beta, gs_sigmoid, the Philox uniforms (AVX2 generator), the draw, the index
//   list, and for AIS the log-weight increment.
// * mm (Gaussian visible units, or forced): the hidden half-step's input x = v / sigma is
//   real, so its GEMM is one at::mm over all chains per step (the very call the torch
//   backend makes: same bits), then one parallel pass over blocks does the hidden
//   epilogue, the (binary) h -> v row sums and the visible epilogue.
// GENSAMPLE_CPU_TEMPERED_GEMM=lut|rowsum|mm forces a path (tests; all give the same bits
// when the GEMMs are exact), GENSAMPLE_CPU_TEMPERED_KERNEL=list|mask|pair the row-sum
// kernel (index lists: block_gemm_impl; masks; masks with chain pairs, the default),
// GENSAMPLE_CPU_TEMPERED_BLOCK=n the chains per block (rounded up to even),
// GENSAMPLE_CPU_TEMPERED_GROUPED=1|auto the grouped 4-unit tables (opt-in, see prepare()),
// GENSAMPLE_CPU_TEMPERED_PREFETCH=0..3 the software prefetch of W's next block (0: off,
// else the locality hint), GENSAMPLE_CPU_TEMPERED_CHUNK the rows per block of the list
// kernel (experiments).
//
// Speed (AIS, 784x500, 100 chains, 2,000 sigmoid betas, 1 thread, CPU time on the dev VM:
// 2 Zen 3 cores shared with other jobs; three interleaved runs each, noisy to ~10%): the
// index-list kernel with the two-softplus increment took 1.8 to 2.2 ms per beta at visible
// density 0.5 (0.87 to 0.94 of the two torch.mm GEMMs of these shapes) and 1.4 to 1.6 ms
// (0.65) at 0.13; the mask kernel with pairs and the Taylor increment 1.55 to 1.7 ms
// (0.64 to 0.71 of the GEMMs) and 1.1 to 1.16 ms (0.46 to 0.54). What is left is ~77%
// row sums (the list kernel ran at ~3 G vector adds / s, the mask kernel ~4), 7% Philox,
// 7% visible and 7% hidden epilogue. Tables of 4-unit sums (stored, L2-resident per column slice, or built per
// block) were all slower here: memory-bound, or the table builds cost what they save.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "cpu_kernels.h"
#include "gibbs_block.h"
#include "gensample/tempered.h"

namespace gensample {
namespace cpu {
namespace {

typedef float f4 __attribute__((vector_size(16)));
typedef double d4 __attribute__((vector_size(32)));

// ---------------------------------------------------------------------------
// Vectorized float32 softplus (log-weights only): max(t, 0) + log1p(exp(-|t|)).
// e = exp(-|t|) in (0, 1] by exp_neg (gs_sigmoid's exp); y = RN(1 + e) in [1, 2] with
// its exact rounding error c = e - (y - 1) (Fast2Sum: 1 >= e); log(y) by Cephes' logf
// (y > sqrt 2 halved, x = m - 1 exact, degree-9 polynomial, Cody-Waite ln 2); then
// log1p(e) = log(y) + c / y, with c / y ~= c (1.5 - 0.5 y) (c <= 2^-24, so the 12%
// error of that 1 / y is below 1e-8 absolute). Within a few ulp of the true softplus.
// softplus(t) from e = exp(-|t|).
template <int N>
GS_ALWAYS_INLINE void softplus_from_e(const vec* t, const vec* e, vec* sp) {
  const vec zero = VecOf<float>::splat(0.0f), one = VecOf<float>::splat(1.0f);
  GS_EACH(i) {
    const vec y = one + e[i];
    const vec c = e[i] - (y - one);
    const ivec big = y > VecOf<float>::splat(1.41421356f);
    const vec m = big ? y * 0.5f : y;
    const vec fe = big ? one : zero;
    const vec x = m - one;
    const vec z = x * x;
    vec p = x * 7.0376836292E-2f - 1.1514610310E-1f;
    p = p * x + 1.1676998740E-1f;
    p = p * x - 1.2420140846E-1f;
    p = p * x + 1.4249322787E-1f;
    p = p * x - 1.6668057665E-1f;
    p = p * x + 2.0000714765E-1f;
    p = p * x - 2.4999993993E-1f;
    p = p * x + 3.3333331174E-1f;
    vec l = (p * x) * z;
    l = l + fe * -2.12194440e-4f;
    l = l - z * 0.5f;
    l = x + l;
    l = l + fe * 0.693359375f;
    l = l + c * (1.5f - y * 0.5f);
    sp[i] = (t[i] > zero ? t[i] : zero) + l;
  }
}

template <bool kAvx2, int N>
GS_ALWAYS_INLINE void softplus_vec(const vec* t, vec* sp) {
  const vec zero = VecOf<float>::splat(0.0f);
  vec at[N], e[N];
  GS_EACH(i) at[i] = t[i] < zero ? -t[i] : t[i];
  exp_neg<kAvx2, N>(at, e);
  softplus_from_e<N>(t, e, sp);
}

// s += float64(a) - float64(b), lane by lane (8 floats -> two d4 accumulators).
GS_ALWAYS_INLINE void add_diff64(vec a, vec b, d4& s0, d4& s1) {
  const f4 alo = __builtin_shufflevector(a, a, 0, 1, 2, 3), ahi = __builtin_shufflevector(a, a, 4, 5, 6, 7);
  const f4 blo = __builtin_shufflevector(b, b, 0, 1, 2, 3), bhi = __builtin_shufflevector(b, b, 4, 5, 6, 7);
  s0 += __builtin_convertvector(alo, d4) - __builtin_convertvector(blo, d4);
  s1 += __builtin_convertvector(ahi, d4) - __builtin_convertvector(bhi, d4);
}

// ---------------------------------------------------------------------------
// Fused epilogues of one row (n elements; acc zero-padded or not, u the row's stream).

// Hidden layer: a = acc + c, t = a * beta, h = u < gs_sigmoid(t); appends the units that
// fired to idx and returns their count. kA: stores a. kAis: *inc = sum_j float64(sp(t))
// - float64(sp(a * bprev)), or, for a vector of 8 whose steps dt = a (beta - bprev) all
// satisfy |dt| <= kTaylorStep (any long schedule: 10,000 sigmoid betas on a 784 x 500 RBM
// have |dt| < 0.01), the same difference as the Taylor series of softplus around t:
//   sp(t) - sp(t - dt) = dt s - dt^2 s' / 2 + dt^3 s'' / 6 - ...,
//   s = sigmoid(t) = 1 / d, s' = s (1 - s) = e s^2, s'' = s' (1 - 2 s)
// (d = 1 + e, e = exp(-t): the draw's), cut after the cubic term: the remainder is below
// dt^4 max|s'''| / 24 < 3.2e-10 per unit, and the float32 evaluation is within a few ulp of
// the (small) increment itself, far closer to the exact difference than the difference of
// two float32 softplus values (each off by ~|t| 2^-23). One division instead of an exp and
// two logs per element.
constexpr float kTaylorStep = 1.0f / 64.0f;

// s += float64(x), lane by lane (8 floats -> two d4 accumulators).
GS_ALWAYS_INLINE void add64(vec x, d4& s0, d4& s1) {
  s0 += __builtin_convertvector(__builtin_shufflevector(x, x, 0, 1, 2, 3), d4);
  s1 += __builtin_convertvector(__builtin_shufflevector(x, x, 4, 5, 6, 7), d4);
}

template <bool kAvx2, bool kAis, bool kA, int N>
GS_ALWAYS_INLINE int32_t hidden_step(const float* GS_RESTRICT acc, const float* GS_RESTRICT c, float beta, float bprev,
                                     float db, const float* GS_RESTRICT u, float* GS_RESTRICT h,
                                     float* GS_RESTRICT a_out, int64_t j, int32_t* GS_RESTRICT idx, int32_t cnt,
                                     d4& s0, d4& s1) {
  const vec one = VecOf<float>::splat(1.0f), zero = VecOf<float>::splat(0.0f);
  vec a[N], t[N], d[N];
  GS_EACH(i) {
    a[i] = VecOf<float>::load_f32(acc + j + 8 * i) + VecOf<float>::load_f32(c + j + 8 * i);
    t[i] = a[i] * beta;
    if (kA) *reinterpret_cast<uvec*>(a_out + j + 8 * i) = a[i];
  }
  vec e[N];
  exp_neg<kAvx2, N>(t, e);  // sigmoid_denom, keeping e = exp(-t) for the softplus
  GS_EACH(i) d[i] = one + e[i];
  GS_EACH(i) {
    const ivec m = draw_from_denom<kAvx2>(VecOf<float>::load_f32(u + j + 8 * i), d[i]);
    *reinterpret_cast<uvec*>(h + j + 8 * i) = m ? one : zero;
    cnt = compact8<kAvx2>(m, static_cast<int32_t>(j + 8 * i), idx, cnt);
  }
  if (kAis) {
    vec dt[N];
    ivec far = VecOf<float>::splat_i(0);
    GS_EACH(i) {
      dt[i] = a[i] * db;
      far |= (dt[i] > kTaylorStep) | (dt[i] < -kTaylorStep);  // NaN a: exact path below
    }
    GS_EACH(i) far |= a[i] != a[i];
    if (__builtin_expect(!any8<kAvx2>(far), 1)) {
      GS_EACH(i) {
        const vec sg = one / d[i];
        const vec s1d = e[i] * sg * sg;                     // s' = s (1 - s)
        const vec s2d = s1d * (one - (sg + sg));            // s'' = s' (1 - 2 s)
        const vec inc = dt[i] * (sg - dt[i] * (s1d * 0.5f - dt[i] * (s2d * (1.0f / 6.0f))));
        add64(inc, s0, s1);
      }
      return cnt;
    }
    vec tp[N], spk[N], spp[N], ek[N];
    GS_EACH(i) tp[i] = a[i] * bprev;
    // exp(-|t|) = e for t >= 0, 1 / e for t < 0 (|t| <= 87: e is finite; beyond, the
    // clamp changes log1p by < 2e-38)
    GS_EACH(i) ek[i] = t[i] >= zero ? e[i] : one / e[i];
    softplus_from_e<N>(t, ek, spk);
    softplus_vec<kAvx2, N>(tp, spp);
    GS_EACH(i) add_diff64(spk[i], spp[i], s0, s1);
  }
  return cnt;
}

template <bool kAvx2, bool kAis, bool kA>
inline int32_t hidden_row_impl(const float* acc, const float* c, float beta, float bprev, const float* u, float* h,
                               float* a_out, int64_t n, int32_t* idx, double* inc) {
  int32_t cnt = 0;
  d4 s0 = {0, 0, 0, 0}, s1 = {0, 0, 0, 0};
  const float db = static_cast<float>(static_cast<double>(beta) - static_cast<double>(bprev));
  int64_t j = 0;
  for (; j + 32 <= n; j += 32)
    cnt = hidden_step<kAvx2, kAis, kA, 4>(acc, c, beta, bprev, db, u, h, a_out, j, idx, cnt, s0, s1);
  for (; j + 8 <= n; j += 8)
    cnt = hidden_step<kAvx2, kAis, kA, 1>(acc, c, beta, bprev, db, u, h, a_out, j, idx, cnt, s0, s1);
  double tail = 0.0;
  for (; j < n; ++j) {
    float a;
    const float t = tempered::hidden_logit(acc[j], c[j], beta, a);
    if (kA) a_out[j] = a;
    h[j] = tempered::bernoulli_state(t, u[j]);
    idx[cnt] = static_cast<int32_t>(j);
    cnt += h[j] != 0.0f ? 1 : 0;
    if (kAis)
      tail += static_cast<double>(gs_softplus(t)) - static_cast<double>(gs_softplus(gs_mul(a, bprev)));
  }
  if (kAis) {
    const d4 s = s0 + s1;
    *inc = ((s[0] + s[1]) + (s[2] + s[3])) + tail;
  }
  return cnt;
}

// Bernoulli visible layer: t = (acc + b) * beta + (1 - beta) * b_A, v = u < gs_sigmoid(t).
template <bool kAvx2, int N>
GS_ALWAYS_INLINE int32_t visible_step(const float* GS_RESTRICT acc, const float* GS_RESTRICT b,
                                      const float* GS_RESTRICT base, float beta, float omb,
                                      const float* GS_RESTRICT u, float* GS_RESTRICT v, int64_t j,
                                      int32_t* GS_RESTRICT idx, int32_t cnt) {
  const vec one = VecOf<float>::splat(1.0f), zero = VecOf<float>::splat(0.0f);
  vec t[N], d[N];
  GS_EACH(i) {
    t[i] = (VecOf<float>::load_f32(acc + j + 8 * i) + VecOf<float>::load_f32(b + j + 8 * i)) * beta +
           VecOf<float>::splat(omb) * VecOf<float>::load_f32(base + j + 8 * i);
  }
  sigmoid_denom<kAvx2, N>(t, d);
  GS_EACH(i) {
    const ivec m = draw_from_denom<kAvx2>(VecOf<float>::load_f32(u + j + 8 * i), d[i]);
    *reinterpret_cast<uvec*>(v + j + 8 * i) = m ? one : zero;
    cnt = compact8<kAvx2>(m, static_cast<int32_t>(j + 8 * i), idx, cnt);
  }
  return cnt;
}

template <bool kAvx2>
inline int32_t visible_row_impl(const float* acc, const float* b, const float* base, float beta, const float* u,
                                float* v, int64_t n, int32_t* idx) {
  const float omb = gs_sub(1.0f, beta);
  int32_t cnt = 0;
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) cnt = visible_step<kAvx2, 4>(acc, b, base, beta, omb, u, v, j, idx, cnt);
  for (; j + 8 <= n; j += 8) cnt = visible_step<kAvx2, 1>(acc, b, base, beta, omb, u, v, j, idx, cnt);
  for (; j < n; ++j) {
    v[j] = tempered::bernoulli_state(tempered::visible_logit(acc[j], b[j], base[j], beta, omb), u[j]);
    idx[cnt] = static_cast<int32_t>(j);
    cnt += v[j] != 0.0f ? 1 : 0;
  }
  return cnt;
}

// Gaussian visible layer: mean = b + sigma * (acc * beta), v = mean + sigma * eps, and the
// next hidden input x = v / sigma.
inline void gaussian_row_impl(const float* GS_RESTRICT acc, const float* GS_RESTRICT b,
                              const float* GS_RESTRICT sigma, float beta, const float* GS_RESTRICT eps,
                              float* GS_RESTRICT v, float* GS_RESTRICT x, int64_t n) {
#pragma GCC ivdep
  for (int64_t j = 0; j < n; ++j) {
    const float vj = tempered::gaussian_sample(tempered::gaussian_mean(acc[j], b[j], sigma[j], beta), sigma[j], eps[j]);
    v[j] = vj;
    x[j] = tempered::gaussian_input(vj, sigma[j]);
  }
}

// Index list of a binary row x (n units) for the grouped tables (build_lut layout, tile
// packed): one entry 16 g + e per group g of 4 units whose pattern e is not 0. A row's
// product is then one table row per active group instead of one W row per active unit.
template <bool kAvx2>
inline int32_t grouped_list_impl(const float* GS_RESTRICT x, int64_t n, int32_t* GS_RESTRICT idx) {
  int32_t c = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const int m = mask8<kAvx2>(x + i);
    const int32_t g = static_cast<int32_t>(i / 4);
    const int lo = m & 15, hi = m >> 4;
    idx[c] = 16 * g + lo;
    c += lo != 0 ? 1 : 0;
    idx[c] = 16 * (g + 1) + hi;
    c += hi != 0 ? 1 : 0;
  }
  for (; i < n; i += 4) {
    int m = 0;
    for (int64_t l = i; l < std::min(n, i + 4); ++l) m |= (x[l] != 0.0f ? 1 : 0) << (l - i);
    idx[c] = static_cast<int32_t>(16 * (i / 4) + m);
    c += m != 0 ? 1 : 0;
  }
  return c;
}

// Chunk bounds of the index lists straight from the binary states x (rows of n, stride
// n): bounds[r, ch] = number of nonzero states of row r before unit ch * chunk (chunk a
// multiple of 8), i.e. the first list position of chunk ch, as make_bounds finds it by
// binary search, here by one popcount per 8 units (no unpredictable branches).
template <bool kAvx2>
inline void bounds_from_states_impl(const float* GS_RESTRICT x, int64_t n, int64_t rows, int64_t chunk, int64_t nch,
                                    int32_t* GS_RESTRICT bounds) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    int32_t* b = bounds + r * (nch + 1);
    b[0] = 0;
    int32_t c = 0;
    int64_t ch = 1, next = chunk;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      if (i == next) {
        b[ch++] = c;
        next += chunk;
      }
      c += __builtin_popcount(static_cast<unsigned>(mask8<kAvx2>(xr + i)));
    }
    for (; i < n; ++i) {
      if (i == next) {
        b[ch++] = c;
        next += chunk;
      }
      c += xr[i] != 0.0f ? 1 : 0;
    }
    for (; ch <= nch; ++ch) b[ch] = c;
  }
}

// Bit masks of binary rows: word w of row r holds the states of units 64 w .. 64 w + 63
// (bit i: unit 64 w + i is not 0), nw words per row.
template <bool kAvx2>
inline void masks_from_states_impl(const float* GS_RESTRICT x, int64_t n, int64_t rows, int64_t nw,
                                   uint64_t* GS_RESTRICT masks) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    uint64_t* m = masks + r * nw;
    for (int64_t w = 0; w < nw; ++w) m[w] = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      m[i >> 6] |= static_cast<uint64_t>(static_cast<unsigned>(mask8<kAvx2>(xr + i))) << (i & 63);
    for (; i < n; ++i) m[i >> 6] |= static_cast<uint64_t>(xr[i] != 0.0f ? 1 : 0) << (i & 63);
  }
}

// a += the rows of the block Wc (row stride 8 NV) selected by the bits of m, in
// ascending order.
template <int NV>
GS_ALWAYS_INLINE void add_rows_mask(vec* a, const float* GS_RESTRICT Wc, uint64_t m) {
  while (m != 0) {
    const int i = __builtin_ctzll(m);
    m &= m - 1;
    add_row<NV>(a, Wc + static_cast<int64_t>(i) * (8 * NV));
  }
}

// One (64-row chunk ch x column tile) block of the mask GEMM for the block's chains (the
// chains r0 + r of the call). Chains 2k and 2k + 1 go together when both are in the
// block: the rows both have on (m_A & m_B; half of the on rows at density 1/2) are summed
// once into s, then each chain adds s and its own other rows: out_A = (out_A + s) + rows
// of m_A & ~m_B (ascending), likewise B. A chain without its partner adds its rows alone.
// The pairs are fixed by the global chain index (blocks start at even chains), so the
// order of the sums, hence the bits, never depends on the blocking.
template <int NV>
GS_ALWAYS_INLINE void mask_block_impl(const float* GS_RESTRICT Wc, int64_t r0, int64_t rows, const uint64_t* masks,
                                      int64_t nw, int64_t ch, float* GS_RESTRICT out, int64_t ldo, bool acc,
                                      bool pairs, const char* pf, int64_t pf_lines) {
  const vec zero = VecOf<float>::splat(0.0f);
  const int64_t per = pf != nullptr ? (pf_lines + rows - 1) / rows : 0;
  alignas(32) float sbuf[8 * NV];
  int64_t r = 0;
  while (r < rows) {
    const bool pair = pairs && r + 1 < rows && ((r0 + r) & 1) == 0;
    const int64_t r1 = r + (pair ? 2 : 1);
    for (int64_t l = r * per; l < std::min(pf_lines, r1 * per); ++l) __builtin_prefetch(pf + 64 * l, 0, 3);
    const uint64_t mA = masks[r * nw + ch];
    if (pair) {
      const uint64_t mB = masks[(r + 1) * nw + ch], both = mA & mB;
      {
        vec sv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) sv[v] = zero;
        add_rows_mask<NV>(sv, Wc, both);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) *reinterpret_cast<vec*>(sbuf + 8 * v) = sv[v];
      }
      for (int q = 0; q < 2; ++q) {
        float* o = out + (r + q) * ldo;
        vec a[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          const vec sv = *reinterpret_cast<const vec*>(sbuf + 8 * v);
          a[v] = acc ? *reinterpret_cast<const uvec*>(o + 8 * v) + sv : sv;
        }
        add_rows_mask<NV>(a, Wc, (q == 0 ? mA : mB) & ~both);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) *reinterpret_cast<uvec*>(o + 8 * v) = a[v];
      }
    } else {
      float* o = out + r * ldo;
      vec a[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) a[v] = acc ? *reinterpret_cast<const uvec*>(o + 8 * v) : zero;
      add_rows_mask<NV>(a, Wc, mA);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) *reinterpret_cast<uvec*>(o + 8 * v) = a[v];
    }
    r = r1;
  }
}

// out[r, :] = (binary states of chain r0 + r) @ W for the block's rows chains, from their
// masks (nw words), W tile packed (row stride per tile = its width), rows in chunks of 64.
inline void mask_gemm_impl(const float* W, int64_t ld, int64_t n_in, int64_t r0, int64_t rows,
                           const uint64_t* masks, int64_t nw, float* out, bool pairs, bool prefetch) {
  const char* end = reinterpret_cast<const char*>(W + ld * n_in);
  for (int64_t j0 = 0; j0 < ld; j0 += kTileW) {
    const int64_t tw = std::min(kTileW, ld - j0);
    const float* Wt = W + j0 * n_in;
    for (int64_t ch = 0; ch < nw; ++ch) {
      const float* Wc = Wt + ch * 64 * tw;
      const char* pf = prefetch ? reinterpret_cast<const char*>(Wt + (ch + 1) * 64 * tw) : nullptr;
      const int64_t pf_lines = pf != nullptr && pf < end ? std::min<int64_t>(64 * tw * 4, end - pf) / 64 : 0;
      if (pf_lines == 0) pf = nullptr;
      switch (tw / 8) {
#define GS_CASE(K) \
  case K: mask_block_impl<K>(Wc, r0, rows, masks, nw, ch, out + j0, ld, ch > 0, pairs, pf, pf_lines); break;
        GS_CASE(1) GS_CASE(2) GS_CASE(3) GS_CASE(4) GS_CASE(5) GS_CASE(6) GS_CASE(7)
#undef GS_CASE
        default: mask_block_impl<8>(Wc, r0, rows, masks, nw, ch, out + j0, ld, ch > 0, pairs, pf, pf_lines); break;
      }
    }
  }
}

#define GS_TEMPERED_VARIANTS(SFX, ATTR, AVX2)                                                                         \
  ATTR __attribute__((noinline, flatten)) int32_t hidden_ais##SFX(const float* acc, const float* c, float beta,       \
                                                                  float bprev, const float* u, float* h, float* a_out, \
                                                                  int64_t n, int32_t* idx, double* inc) {             \
    return hidden_row_impl<AVX2, true, false>(acc, c, beta, bprev, u, h, a_out, n, idx, inc);                          \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) int32_t hidden_a##SFX(const float* acc, const float* c, float beta,         \
                                                                float bprev, const float* u, float* h, float* a_out,   \
                                                                int64_t n, int32_t* idx, double* inc) {               \
    return hidden_row_impl<AVX2, false, true>(acc, c, beta, bprev, u, h, a_out, n, idx, inc);                          \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) int32_t hidden_plain##SFX(const float* acc, const float* c, float beta,     \
                                                                    float bprev, const float* u, float* h,             \
                                                                    float* a_out, int64_t n, int32_t* idx,             \
                                                                    double* inc) {                                     \
    return hidden_row_impl<AVX2, false, false>(acc, c, beta, bprev, u, h, a_out, n, idx, inc);                         \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) int32_t visible_row##SFX(const float* acc, const float* b,                  \
                                                                   const float* base, float beta, const float* u,      \
                                                                   float* v, int64_t n, int32_t* idx) {                \
    return visible_row_impl<AVX2>(acc, b, base, beta, u, v, n, idx);                                                   \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) void gaussian_row##SFX(const float* acc, const float* b,                    \
                                                                 const float* sigma, float beta, const float* eps,     \
                                                                 float* v, float* x, int64_t n) {                      \
    gaussian_row_impl(acc, b, sigma, beta, eps, v, x, n);                                                              \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) void lut_gemm##SFX(const float* T, int64_t ld, int64_t n_in, int64_t rows,  \
                                                             const float* x, int64_t ldx, float* out) {               \
    lut_gemm_impl<AVX2>(T, ld, n_in, rows, x, ldx, out);                                                               \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) int32_t compact_input##SFX(const float* x, int64_t n, int32_t* idx) {      \
    return compact_input_impl<AVX2>(x, n, idx);                                                                        \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) void gemm_rows_general##SFX(const float* W, int64_t ld, int64_t n_in,       \
                                                                      const int32_t* idx, const float* x, int32_t n,   \
                                                                      float* out) {                                    \
    gemm_row_general_impl(W, ld, n_in, idx, x, n, out);                                                                \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) void block_gemm##SFX(const float* W, int64_t ldw, int64_t n_in,             \
                                                               int64_t rows, const int32_t* idx, int64_t ldi,          \
                                                               const int32_t* bounds, int64_t ldb, float* out,         \
                                                               int64_t chunk, int pf) {                               \
    block_gemm_impl(W, ldw, n_in, rows, idx, ldi, bounds, ldb, out, chunk, pf);                                        \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) int32_t grouped_list##SFX(const float* x, int64_t n, int32_t* idx) {       \
    return grouped_list_impl<AVX2>(x, n, idx);                                                                         \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) void masks_from_states##SFX(const float* x, int64_t n, int64_t rows,         \
                                                                      int64_t nw, uint64_t* masks) {                  \
    masks_from_states_impl<AVX2>(x, n, rows, nw, masks);                                                               \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) void mask_gemm##SFX(const float* W, int64_t ld, int64_t n_in, int64_t r0,   \
                                                              int64_t rows, const uint64_t* masks, int64_t nw,         \
                                                              float* out, bool pairs, bool pf) {                       \
    mask_gemm_impl(W, ld, n_in, r0, rows, masks, nw, out, pairs, pf);                                                  \
  }                                                                                                                   \
  ATTR __attribute__((noinline, flatten)) void bounds_from_states##SFX(const float* x, int64_t n, int64_t rows,        \
                                                                       int64_t chunk, int64_t nch, int32_t* bounds) {  \
    bounds_from_states_impl<AVX2>(x, n, rows, chunk, nch, bounds);                                                     \
  }

GS_TEMPERED_VARIANTS(_base, , false)
#if defined(GS_CPU_AVX2_PATH)
GS_TEMPERED_VARIANTS(_avx2, GS_TARGET_AVX2, true)
#define GS_PICK(name) (use_avx2() ? name##_avx2 : name##_base)
#else
#define GS_PICK(name) (name##_base)
#endif
#undef GS_TEMPERED_VARIANTS
#undef GS_EACH

using HiddenFn = int32_t (*)(const float*, const float*, float, float, const float*, float*, float*, int64_t, int32_t*,
                             double*);

// ---------------------------------------------------------------------------
// Drivers

enum class Path { kLut, kRowsum, kMm };

// Binary row-sum kernel: index lists (block_gemm), bit masks, bit masks with chain pairs.
enum class Kernel { kList, kMask, kPair };

// The model of one call, read-only while the threads run.
struct Model {
  uint64_t key = 0, offset = 0;
  int64_t B = 0, nv = 0, nh = 0, ldv = 0, ldh = 0;
  Layer to_h{}, to_v{};           // packed W (v -> h) and W^T (h -> v), tables when small
  Layer to_hg{}, to_vg{};         // grouped tables (tile packed), used when hg / vg
  bool hg = false, vg = false;
  int64_t gchunk = 128;           // table rows per chunk of the grouped GEMMs
  int prefetch = 3;               // software prefetch of the next block of W (locality hint; 0: none)
  int64_t chunk = kChunkRows;     // W rows per block of the list row-sum GEMMs
  Kernel kernel = Kernel::kPair;  // binary row sums (GENSAMPLE_CPU_TEMPERED_KERNEL=list|mask|pair)
  const float *b = nullptr, *c = nullptr, *base = nullptr, *sigma = nullptr;  // sigma: Gaussian
  const double* diff = nullptr;   // AIS Bernoulli: float64(b - b_A) (the float32 difference)
  const float* beta = nullptr;    // per-chain betas (tempered_sweeps), else null
  bool gaussian = false;
  uint64_t sub(int64_t t) const { return offset + (static_cast<uint64_t>(t) << 32); }
};

// Per-thread scratch (grow-only, kept across calls: fresh allocations would page-fault).
struct Scratch {
  std::vector<float> acc, ubuf, hs;
  std::vector<int32_t> idx_v, idx_h, cnt_v, cnt_h, bnd_v, bnd_h, idx_g, cnt_g, bnd_g;
  std::vector<uint64_t> masks;
  std::vector<double> ell, inc;
};

Scratch& thread_scratch() {
  thread_local Scratch s;
  return s;
}

// A block of chains [r0, r0 + rows) and its scratch.
struct Blk {
  int64_t r0 = 0, rows = 0, ldiv, ldih, nchv, nchh, ldig;
  Scratch& s;
  Blk(const Model& M, int64_t nb) : ldiv(M.nv + 8), ldih(M.nh + 8), s(thread_scratch()) {
    nchv = std::max<int64_t>(1, (M.nv + M.chunk - 1) / M.chunk);
    nchh = std::max<int64_t>(1, (M.nh + M.chunk - 1) / M.chunk);
    at_least(s.acc, nb * std::max(M.ldv, M.ldh) + 8);
    at_least(s.ubuf, std::max<int64_t>(kChunk, std::max(M.nv, M.nh)) + 8);
    at_least(s.hs, nb * M.nh + 8);
    at_least(s.idx_v, nb * ldiv);
    at_least(s.idx_h, nb * ldih);
    at_least(s.cnt_v, nb);
    at_least(s.cnt_h, nb);
    at_least(s.bnd_v, nb * (nchv + 1));
    at_least(s.bnd_h, nb * (nchh + 1));
    at_least(s.ell, nb);
    at_least(s.masks, nb * ((std::max(M.nv, M.nh) + 63) / 64) + 1);
    at_least(s.inc, nb);
    ldig = (std::max(M.nv, M.nh) + 3) / 4 + 8;
    const int64_t nchg = (16 * ldig + M.gchunk - 1) / M.gchunk;
    at_least(s.idx_g, nb * ldig);
    at_least(s.cnt_g, nb);
    at_least(s.bnd_g, nb * (nchg + 1));
  }
  float beta_of(const Model& M, int64_t r, float step_beta) const {
    return M.beta != nullptr ? M.beta[r0 + r] : step_beta;
  }
};

// Stream elements of rows [a, b) of the block (global element (r0 + r) * n + j), in
// groups of whole rows of at most max(kChunk, n) elements: f(a, b, buf).
template <typename F>
void for_row_groups(const Model& M, uint64_t off, bool normal, const Blk& S, int64_t n, F&& f) {
  float* buf = S.s.ubuf.data();
  if (n == 0) {
    f(int64_t(0), S.rows, buf);
    return;
  }
  const int64_t per = std::max<int64_t>(1, kChunk / n);
  for (int64_t a = 0; a < S.rows; a += per) {
    const int64_t b = std::min(S.rows, a + per);
    const uint64_t start = static_cast<uint64_t>((S.r0 + a) * n);
    if (normal)
      normal_fill(M.key, off, start, (b - a) * n, buf);
    else
      uniform_fill(M.key, off, start, (b - a) * n, buf);
    f(a, b, buf);
  }
}

// acc (rows x ld of L) = binary states @ W of layer L, from the block's index lists (or
// the tables, from the states themselves: row stride L.n_in).
void gemm_binary(const Model& M, const Layer& L, Blk& S, const int32_t* idx, int64_t ldi, const int32_t* cnt, int32_t* bnd,
                 int64_t nch, const float* states) {
  if (L.T != nullptr) {
    GS_PICK(lut_gemm)(L.T, L.ld, L.n_in, S.rows, states, L.n_in, S.s.acc.data());
    return;
  }
  if (M.kernel != Kernel::kList) {
    const int64_t nw = std::max<int64_t>(1, (L.n_in + 63) / 64);  // one (empty) chunk for n_in = 0: zeros
    GS_PICK(masks_from_states)(states, L.n_in, S.rows, nw, S.s.masks.data());
    GS_PICK(mask_gemm)(L.W, L.ld, L.n_in, S.r0, S.rows, S.s.masks.data(), nw, S.s.acc.data(),
                       M.kernel == Kernel::kPair, M.prefetch != 0);
    return;
  }
  (void)cnt;  // the lists' counts: bnd[r, nch] (same states)
  GS_PICK(bounds_from_states)(states, L.n_in, S.rows, M.chunk, nch, bnd);
  GS_PICK(block_gemm)(L.W, L.ld, L.n_in, S.rows, idx, ldi, bnd, nch + 1, S.s.acc.data(), M.chunk,
                      M.prefetch);
}

// acc = binary states (n units, row stride n) @ W by the grouped tables G (G.n_in = 16 groups).
void gemm_grouped(const Model& M, const Layer& G, Blk& S, const float* states, int64_t n) {
  auto list_fn = GS_PICK(grouped_list);
  int32_t* idx = S.s.idx_g.data();
  int32_t* cnt = S.s.cnt_g.data();
  for (int64_t r = 0; r < S.rows; ++r) cnt[r] = list_fn(states + r * n, n, idx + r * S.ldig);
  const int64_t nch = std::max<int64_t>(1, (G.n_in + M.gchunk - 1) / M.gchunk);
  make_bounds(S.rows, idx, S.ldig, cnt, nch, S.s.bnd_g.data(), M.gchunk);
  GS_PICK(block_gemm)(G.W, G.ld, G.n_in, S.rows, idx, S.ldig, S.s.bnd_g.data(), nch + 1, S.s.acc.data(), M.gchunk,
                      M.prefetch);
}

// The hidden GEMM of the block's current visible states v (block base, row stride nv):
// index lists first (-1 - count marks a non-binary row), then row sums / tables, or the
// general row GEMM when some row is not binary (Bernoulli v_0 with check_binary=False).
void gemm_hidden_from(const Model& M, Blk& S, const float* v, bool lists_ready) {
  bool binary = true;
  if (!lists_ready) {
    auto compact_fn = GS_PICK(compact_input);
    for (int64_t r = 0; r < S.rows; ++r) {
      S.s.cnt_v[r] = compact_fn(v + r * M.nv, M.nv, S.s.idx_v.data() + r * S.ldiv);
      binary = binary && S.s.cnt_v[r] >= 0;
    }
  }
  if (binary && M.hg) {
    gemm_grouped(M, M.to_hg, S, v, M.nv);
    return;
  }
  if (binary) {
    gemm_binary(M, M.to_h, S, S.s.idx_v.data(), S.ldiv, S.s.cnt_v.data(), S.s.bnd_v.data(), S.nchv, v);
    return;
  }
  auto general_fn = GS_PICK(gemm_rows_general);
  for (int64_t r = 0; r < S.rows; ++r) {
    const int32_t c = S.s.cnt_v[r] >= 0 ? S.s.cnt_v[r] : -1 - S.s.cnt_v[r];
    general_fn(M.to_h.W, M.ldh, M.nv, S.s.idx_v.data() + r * S.ldiv, v + r * M.nv, c, S.s.acc.data() + r * M.ldh);
  }
}

// Hidden epilogue of the block: acc rows (stride lda), half-step stream off, states into
// h (block base, stride nh), index lists into idx_h; a into a_out (block base) when
// non-null; AIS (bk, bp): increments into S.s.inc.
void hidden_epilogue(const Model& M, Blk& S, uint64_t off, const float* acc, int64_t lda, float step_beta,
                     float bprev, bool ais, float* h, float* a_out) {
  HiddenFn fn = ais ? GS_PICK(hidden_ais) : (a_out != nullptr ? GS_PICK(hidden_a) : GS_PICK(hidden_plain));
  for_row_groups(M, off, false, S, M.nh, [&](int64_t a, int64_t b, const float* u) {
    for (int64_t r = a; r < b; ++r)
      S.s.cnt_h[r] = fn(acc + r * lda, M.c, S.beta_of(M, r, step_beta), bprev, u + (r - a) * M.nh, h + r * M.nh,
                        a_out != nullptr ? a_out + r * M.nh : nullptr, M.nh, S.s.idx_h.data() + r * S.ldih,
                        S.s.inc.data() + r);
  });
}

// Visible half-step of the block from its hidden states h (block base, stride nh) and
// lists: the h -> v GEMM, then the Bernoulli epilogue (states into v, lists into idx_v,
// AIS: ell = sum_i diff_i v_i) or the Gaussian one (v and x = v / sigma).
void visible_half(const Model& M, Blk& S, uint64_t off, float step_beta, const float* h, float* v, float* x,
                  bool with_ell) {
  if (M.vg)
    gemm_grouped(M, M.to_vg, S, h, M.nh);
  else
    gemm_binary(M, M.to_v, S, S.s.idx_h.data(), S.ldih, S.s.cnt_h.data(), S.s.bnd_h.data(), S.nchh, h);
  const float* acc = S.s.acc.data();
  if (M.gaussian) {
    auto fn = GS_PICK(gaussian_row);
    for_row_groups(M, off, true, S, M.nv, [&](int64_t a, int64_t b, const float* eps) {
      for (int64_t r = a; r < b; ++r)
        fn(acc + r * M.ldv, M.b, M.sigma, S.beta_of(M, r, step_beta), eps + (r - a) * M.nv, v + r * M.nv,
           x + r * M.nv, M.nv);
    });
    return;
  }
  auto fn = GS_PICK(visible_row);
  for_row_groups(M, off, false, S, M.nv, [&](int64_t a, int64_t b, const float* u) {
    for (int64_t r = a; r < b; ++r)
      S.s.cnt_v[r] = fn(acc + r * M.ldv, M.b, M.base, S.beta_of(M, r, step_beta), u + (r - a) * M.nv, v + r * M.nv,
                        M.nv, S.s.idx_v.data() + r * S.ldiv);
  });
  if (with_ell) {
    for (int64_t r = 0; r < S.rows; ++r) {
      // four partial sums (independent add chains), then ((e0 + e1) + (e2 + e3))
      const int32_t* l = S.s.idx_v.data() + r * S.ldiv;
      const int32_t n = S.s.cnt_v[r];
      double e0 = 0.0, e1 = 0.0, e2 = 0.0, e3 = 0.0;
      int32_t q = 0;
      for (; q + 4 <= n; q += 4) {
        e0 += M.diff[l[q]];
        e1 += M.diff[l[q + 1]];
        e2 += M.diff[l[q + 2]];
        e3 += M.diff[l[q + 3]];
      }
      for (; q < n; ++q) e0 += M.diff[l[q]];
      S.s.ell[r] = (e0 + e1) + (e2 + e3);
    }
  }
}

// ell = sum_i diff_i v_i for general (possibly non-binary) rows.
void ell_general(const Model& M, Blk& S, const float* v) {
  for (int64_t r = 0; r < S.rows; ++r) {
    double e = 0.0;
    for (int64_t i = 0; i < M.nv; ++i) e += static_cast<double>(v[r * M.nv + i]) * M.diff[i];
    S.s.ell[r] = e;
  }
}

// log_w += sp_sum + (beta_k - beta_{k-1}) ell (the torch backend's order of operations).
void add_log_w(const Model& M, const Blk& S, double* log_w, float bk, float bp) {
  const double db = static_cast<double>(bk) - static_cast<double>(bp);
  for (int64_t r = 0; r < S.rows; ++r) {
    double inc = S.s.inc[r];
    if (!M.gaussian) inc = inc + db * S.s.ell[r];
    log_w[S.r0 + r] = log_w[S.r0 + r] + inc;
  }
}

// Runs body(S) on every block of nb chains, blocks taken from a shared counter (which
// thread runs a block never changes its bits).
template <typename F>
void for_blocks(const Model& M, int64_t nb, F&& body) {
  const int64_t nblocks = (M.B + nb - 1) / nb;
  const int64_t nthreads = std::max<int64_t>(1, at::get_num_threads());
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min(nthreads, nblocks), 1, [&](int64_t, int64_t) {
    Blk S(M, nb);
    for (int64_t blk = next.fetch_add(1); blk < nblocks; blk = next.fetch_add(1)) {
      S.r0 = blk * nb;
      S.rows = std::min(nb, M.B - S.r0);
      body(S);
    }
  });
}

// ---------------------------------------------------------------------------
// Ops

struct Prepared {
  Model M;
  Path path;
  int64_t nb;
  std::vector<at::Tensor> keep;  // packed weights, tables, contiguous inputs
  std::vector<double> diff;
};

void check_inputs(const at::Tensor& v, const at::Tensor& weight, const at::Tensor& b, const at::Tensor& c,
                  const at::Tensor& base, const std::optional<at::Tensor>& sigma) {
  check_f32(v, "v", 2);
  check_f32(weight, "weight", 2);
  const int64_t nv = weight.size(0), nh = weight.size(1);
  TORCH_CHECK(v.size(1) == nv, kOp, "v must have ", nv, " columns, got shape ", v.sizes());
  check_len(b, "visible_bias", nv);
  check_len(c, "hidden_bias", nh);
  check_len(base, "visible_base", nv);
  if (sigma.has_value()) check_len(*sigma, "sigma", nv);
}

void prepare(Prepared& P, const at::Tensor& v, const at::Tensor& weight, const at::Tensor& b, const at::Tensor& c,
             const at::Tensor& base, const std::optional<at::Tensor>& sigma, const at::Tensor& seed, bool ais,
             int64_t steps) {
  Model& M = P.M;
  read_seed(seed, M.key, M.offset);
  M.B = v.size(0);
  M.nv = weight.size(0);
  M.nh = weight.size(1);
  M.ldv = round8(M.nv);
  M.ldh = round8(M.nh);
  M.gaussian = sigma.has_value();
  auto keep = [&](const at::Tensor& t) {
    P.keep.push_back(t.contiguous());
    return P.keep.back().const_data_ptr<float>();
  };
  M.b = keep(b);
  M.c = keep(c);
  M.base = keep(base);
  if (M.gaussian) M.sigma = keep(*sigma);
  if (ais && !M.gaussian) {
    P.diff.resize(static_cast<size_t>(M.nv));
    for (int64_t i = 0; i < M.nv; ++i) P.diff[i] = static_cast<double>(gs_sub(M.b[i], M.base[i]));
    M.diff = P.diff.data();
  }
  const char* gv = std::getenv("GENSAMPLE_CPU_TEMPERED_GEMM");
  const std::string forced = gv != nullptr ? gv : "";
  const bool small = M.nv * M.ldh <= kLutMaxElems && M.nh * M.ldv <= kLutMaxElems;
  if (M.gaussian || forced == "mm")
    P.path = Path::kMm;
  else if (forced == "lut")
    P.path = Path::kLut;
  else if (forced == "rowsum")
    P.path = Path::kRowsum;
  else
    P.path = small ? Path::kLut : Path::kRowsum;
  // tables for the h -> v direction whenever the v -> h one has them (mm: small layers or forced lut)
  const bool lut = P.path == Path::kLut || (P.path == Path::kMm && (forced == "lut" || (forced != "rowsum" && small)));
  if (P.path != Path::kMm) {
    P.keep.push_back(pack_tiles(weight, M.ldh));
    M.to_h = Layer{P.keep.back().const_data_ptr<float>(), M.ldh, M.nv, M.nh, M.c, nullptr};
    if (lut) {
      P.keep.push_back(build_lut(weight, M.ldh));
      M.to_h.T = P.keep.back().const_data_ptr<float>();
    }
  }
  P.keep.push_back(pack_tiles(weight.t(), M.ldv));
  M.to_v = Layer{P.keep.back().const_data_ptr<float>(), M.ldv, M.nh, M.nv, M.b, nullptr};
  if (lut) {
    P.keep.push_back(build_lut(weight.t(), M.ldv));
    M.to_v.T = P.keep.back().const_data_ptr<float>();
  }
  // Grouped tables (4-unit patterns: one table row per active group of 4 instead of one W
  // row per active unit: fewer loads at any density, but 4x the bytes of W). Opt-in:
  // GENSAMPLE_CPU_TEMPERED_GROUPED=1 (both directions) or auto (long runs: the h -> v
  // GEMM, and v -> h when v_0 is denser than 1/4). On the 2-core dev VM the tables do not
  // stay in cache: AIS 784x500 (100 chains, 1 thread) ran 3 to 20% slower with them than
  // the prefetched row sums (1.6 to 1.8x slower before the prefetch), so the default is the
  // plain row sums. Not with the small-layer tables.
  if (const char* pe = std::getenv("GENSAMPLE_CPU_TEMPERED_PREFETCH"); pe != nullptr && pe[0] >= '0' && pe[0] <= '3')
    M.prefetch = pe[0] - '0';
  if (const char* ke = std::getenv("GENSAMPLE_CPU_TEMPERED_KERNEL"); ke != nullptr && ke[0] != '\0') {
    const std::string k = ke;
    M.kernel = k == "list" ? Kernel::kList : (k == "mask" ? Kernel::kMask : Kernel::kPair);
  }
  if (const char* ce = std::getenv("GENSAMPLE_CPU_TEMPERED_CHUNK"); ce != nullptr && ce[0] != '\0')
    M.chunk = std::max<int64_t>(8, std::atoll(ce) / 8 * 8);
  const char* ge = std::getenv("GENSAMPLE_CPU_TEMPERED_GROUPED");
  const std::string gforce = ge != nullptr ? ge : "";
  if (const char* gc = std::getenv("GENSAMPLE_CPU_TEMPERED_GCHUNK"); gc != nullptr && gc[0] != '\0')
    M.gchunk = std::max<int64_t>(16, std::atoll(gc));
  if (!lut && M.nv > 0 && M.nh > 0) {
    const bool long_run = M.B * steps >= 2000;
    if (gforce == "1") {
      M.vg = true;
      M.hg = P.path != Path::kMm;
    } else if (gforce == "auto" && long_run) {
      M.vg = true;
      if (P.path != Path::kMm) {
        const at::Tensor vc = v.contiguous();
        const float* vp = vc.const_data_ptr<float>();
        int64_t ones = 0;
        for (int64_t e = 0; e < M.B * M.nv; ++e) ones += vp[e] != 0.0f ? 1 : 0;
        M.hg = ones * 4 > M.B * M.nv;  // density above 1/4
      }
    }
  }
  auto grouped = [&](const at::Tensor& w, int64_t ld, int64_t n_in, int64_t n_out, const float* bias) {
    const int64_t ng = (n_in + 3) / 4;
    at::Tensor t = build_lut(w, ld).view({16 * ng, ld});
    P.keep.push_back(pack_tiles(t, ld));
    return Layer{P.keep.back().const_data_ptr<float>(), ld, 16 * ng, n_out, bias, nullptr};
  };
  if (M.vg) M.to_vg = grouped(weight.t(), M.ldv, M.nh, M.nv, M.b);
  if (M.hg) M.to_hg = grouped(weight, M.ldh, M.nv, M.nh, M.c);
  // Chains per block: every chain of a block reuses each L1-resident block of W, so as
  // many as the threads allow (100 AIS chains on 2 threads: 2 blocks of 50), at most 64.
  const int64_t nthreads = std::max<int64_t>(1, at::get_num_threads());
  int64_t nb = std::max<int64_t>(8, std::min<int64_t>(64, (M.B + nthreads - 1) / nthreads));
  if (const char* bv = std::getenv("GENSAMPLE_CPU_TEMPERED_BLOCK"); bv != nullptr && bv[0] != '\0')
    nb = std::max<int64_t>(1, std::atoll(bv));
  // even: blocks start at even chains, so the chain pairs of the pair kernel are (2k, 2k + 1)
  // whatever the blocking
  P.nb = (nb + 1) / 2 * 2;
}

// The mm path's first GEMM input: x = v / sigma (Gaussian, a new (B, nv) tensor) or vin.
at::Tensor mm_input(const Model& M, const at::Tensor& vin, int64_t B, int64_t nv) {
  if (!M.gaussian) return vin;
  const float* vin_p = vin.const_data_ptr<float>();
  at::Tensor x = at::empty({B, nv}, vin.options());
  float* xp = x.mutable_data_ptr<float>();
  at::parallel_for(0, B * nv, 1 << 14, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) xp[e] = tempered::gaussian_input(vin_p[e], M.sigma[e % nv]);
  });
  return x;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> tempered_sweeps_cpu(const at::Tensor& v0, const at::Tensor& weight,
                                                                   const at::Tensor& visible_bias,
                                                                   const at::Tensor& hidden_bias,
                                                                   const at::Tensor& visible_base,
                                                                   const at::Tensor& beta,
                                                                   const std::optional<at::Tensor>& sigma,
                                                                   const at::Tensor& seed, int64_t k) {
  check_inputs(v0, weight, visible_bias, hidden_bias, visible_base, sigma);
  check_len(beta, "beta", v0.size(0));
  TORCH_CHECK(k >= 0 && k < (int64_t(1) << 30), kOp, "k must be in [0, 2^30), got ", k);
  const int64_t B = v0.size(0), nv = weight.size(0), nh = weight.size(1);
  at::Tensor v_out = empty_output({B, nv}, v0.options());
  at::Tensor h_out = empty_output({B, nh}, v0.options());
  at::Tensor a_out = empty_output({B, nh}, v0.options());
  if (B == 0) return {v_out, h_out, a_out};
  Prepared P;
  prepare(P, v0, weight, visible_bias, hidden_bias, visible_base, sigma, seed, false, k + 1);
  const at::Tensor vin = v0.contiguous(), betac = beta.contiguous();
  P.M.beta = betac.const_data_ptr<float>();
  const Model& M = P.M;
  const float* vin_p = vin.const_data_ptr<float>();
  float* vp = v_out.mutable_data_ptr<float>();
  float* hp = h_out.mutable_data_ptr<float>();
  float* ap = a_out.mutable_data_ptr<float>();
  if (k == 0) std::memcpy(vp, vin_p, static_cast<size_t>(B * nv) * sizeof(float));

  if (P.path != Path::kMm) {
    for_blocks(M, P.nb, [&](Blk& S) {
      const int64_t r0 = S.r0;
      gemm_hidden_from(M, S, vin_p + r0 * nv, false);
      hidden_epilogue(M, S, M.sub(0), S.s.acc.data(), M.ldh, 0.0f, 0.0f, false, hp + r0 * nh,
                      k == 0 ? ap + r0 * nh : nullptr);
      for (int64_t s = 1; s <= k; ++s) {
        visible_half(M, S, M.sub(2 * s - 1), 0.0f, hp + r0 * nh, vp + r0 * nv, nullptr, false);
        gemm_hidden_from(M, S, vp + r0 * nv, true);
        hidden_epilogue(M, S, M.sub(2 * s), S.s.acc.data(), M.ldh, 0.0f, 0.0f, false, hp + r0 * nh,
                        s == k ? ap + r0 * nh : nullptr);
      }
    });
    return {v_out, h_out, a_out};
  }
  // mm: x = v / sigma (Gaussian) or v; one at::mm per hidden half-step, then the blocks.
  at::Tensor x = mm_input(M, vin, B, nv);
  at::Tensor acc = at::empty({B, nh}, v0.options());
  for (int64_t s = 0; s <= k; ++s) {
    at::mm_out(acc, x, weight);
    const float* accp = acc.const_data_ptr<float>();
    float* xp = M.gaussian ? x.mutable_data_ptr<float>() : nullptr;
    for_blocks(M, P.nb, [&](Blk& S) {
      const int64_t r0 = S.r0;
      hidden_epilogue(M, S, M.sub(2 * s), accp + r0 * nh, nh, 0.0f, 0.0f, false, hp + r0 * nh,
                      s == k ? ap + r0 * nh : nullptr);
      if (s < k)
        visible_half(M, S, M.sub(2 * s + 1), 0.0f, hp + r0 * nh, vp + r0 * nv,
                     xp != nullptr ? xp + r0 * nv : nullptr, false);
    });
    if (!M.gaussian) x = v_out;
  }
  return {v_out, h_out, a_out};
}

std::tuple<at::Tensor, at::Tensor> ais_rbm_cpu(const at::Tensor& v0, const at::Tensor& weight,
                                               const at::Tensor& visible_bias, const at::Tensor& hidden_bias,
                                               const at::Tensor& visible_base, const at::Tensor& betas,
                                               const std::optional<at::Tensor>& sigma, const at::Tensor& seed) {
  check_inputs(v0, weight, visible_bias, hidden_bias, visible_base, sigma);
  check_f32(betas, "betas", 1);
  TORCH_CHECK(betas.size(0) >= 1 && betas.size(0) - 1 < (int64_t(1) << 30), kOp,
              "betas must hold 1 to 2^30 entries, got ", betas.size(0));
  const int64_t B = v0.size(0), nv = weight.size(0), nh = weight.size(1);
  const int64_t K = betas.size(0) - 1;
  at::Tensor log_w = at::zeros({B}, v0.options().dtype(at::kDouble));
  at::Tensor v_out = empty_output({B, nv}, v0.options());
  const at::Tensor vin = v0.contiguous();
  const float* vin_p = vin.const_data_ptr<float>();
  float* vp = v_out.mutable_data_ptr<float>();
  if (B == 0) return {log_w, v_out};
  if (K == 0) {
    std::memcpy(vp, vin_p, static_cast<size_t>(B * nv) * sizeof(float));
    return {log_w, v_out};
  }
  Prepared P;
  prepare(P, v0, weight, visible_bias, hidden_bias, visible_base, sigma, seed, true, K);
  const Model& M = P.M;
  const at::Tensor bc = betas.contiguous();
  const float* bs = bc.const_data_ptr<float>();
  double* lw = log_w.mutable_data_ptr<double>();

  if (P.path != Path::kMm) {
    for_blocks(M, P.nb, [&](Blk& S) {
      const int64_t r0 = S.r0;
      float* vb = vp + r0 * nv;
      float* hb = S.s.hs.data();
      ell_general(M, S, vin_p + r0 * nv);
      gemm_hidden_from(M, S, vin_p + r0 * nv, false);
      for (int64_t s = 1; s <= K; ++s) {
        if (s > 1) gemm_hidden_from(M, S, vb, true);
        hidden_epilogue(M, S, M.sub(2 * s - 2), S.s.acc.data(), M.ldh, bs[s], bs[s - 1], true, hb, nullptr);
        add_log_w(M, S, lw, bs[s], bs[s - 1]);
        visible_half(M, S, M.sub(2 * s - 1), bs[s], hb, vb, nullptr, true);
      }
    });
    return {log_w, v_out};
  }
  at::Tensor x = mm_input(M, vin, B, nv);
  at::Tensor acc = at::empty({B, nh}, v0.options());
  for (int64_t s = 1; s <= K; ++s) {
    at::mm_out(acc, x, weight);
    const float* accp = acc.const_data_ptr<float>();
    const float* vprev = s == 1 ? vin_p : vp;
    float* xp = M.gaussian ? x.mutable_data_ptr<float>() : nullptr;
    for_blocks(M, P.nb, [&](Blk& S) {
      const int64_t r0 = S.r0;
      float* hb = S.s.hs.data();
      if (!M.gaussian) ell_general(M, S, vprev + r0 * nv);
      hidden_epilogue(M, S, M.sub(2 * s - 2), accp + r0 * nh, nh, bs[s], bs[s - 1], true, hb, nullptr);
      add_log_w(M, S, lw, bs[s], bs[s - 1]);
      visible_half(M, S, M.sub(2 * s - 1), bs[s], hb, vp + r0 * nv, xp != nullptr ? xp + r0 * nv : nullptr, false);
    });
    if (!M.gaussian) x = v_out;
  }
  return {log_w, v_out};
}

}  // namespace
}  // namespace cpu
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CPU, m) {
  m.impl("tempered_sweeps", &gensample::cpu::tempered_sweeps_cpu);
  m.impl("ais_rbm", &gensample::cpu::ais_rbm_cpu);
}
