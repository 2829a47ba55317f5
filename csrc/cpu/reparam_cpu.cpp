// CPU kernels of the fused reparameterize + KL op: reparam_kl_fwd, reparam_kl_bwd.
//
// The per-element formulas are gensample/reparam.h (sample, kl_term, backward),
// instantiated with the vector type Simd<V, N> (cpu_kernels.h): the same
// expressions on 16 floats / 8 doubles at a time, with a branch-free vector
// exp/expm1 (std::exp/expm1 are scalar calls, ~10x slower here). eps comes from the
// stream (normal_fill, random_cpu.cpp), bit-identical to gensample/random.py.
//
// One pass over memory: the (R, D) plane is cut into units of at most kTile
// elements (a chunk of one row, or whole rows when D is small); a unit's inputs are
// gathered (any strides, any dtype -> opmath) into L1 buffers, its eps generated
// into an L1 buffer per sample (fp32 with the standard prior: z = mu + std eps
// straight from the generator's registers, normal_affine_fill), and its outputs
// written once. KL row sums are accumulated in the same pass, in a fixed order (8
// lanes, then chunks in order), so results do not depend on the thread count or on
// which thread takes which units (parallel_chunks). Hot loops are compiled for AVX2 +
// FMA and for baseline x86-64 (use_avx2()).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cpu_kernels.h"
#include "gensample/reparam.h"

// Simd values (32-byte vectors) passed between always-inlined functions of the
// baseline-ISA copies: GCC warns that their ABI differs from AVX code's; nothing is
// called across that boundary.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace gensample {
namespace cpu {
namespace {

// Elements of the (R, D) plane per unit: the L1 working set is about 7 buffers of
// kTile opmath values (14 KiB in float).
constexpr int64_t kTile = 512;

// 32-byte vectors per Simd value (independent exp/expm1 chains in flight). The
// standard-prior std/KL pass of the forward, with its FMA polynomial, makes the
// forward 4-6% faster with 4 than with 2 at 65536x512 (paired A/B; 8 measured as 4;
// the backward measured the same with 4 and 2).
constexpr int kInterleave = 2;
constexpr int kStdInterleave = 4;

// ---------------------------------------------------------------------------
// Hot loops over contiguous opmath buffers (V = float or double), Simd::kWidth
// elements at a time. pm/plv == nullptr means the standard-normal prior: the zeros
// fold into the formulas at compile time.
//
// Each header formula is instantiated with a distinct Simd type (Tag) per variant and
// ISA copy and called from a single place (the last partial group goes through the
// same call with zero-padded copies): GCC inlines a function called once whatever
// its size, and otherwise leaves these formulas out of line in some variants (5x
// slower).
// kIsa 1 (the AVX2 + FMA copies) fuses the formulas' gs_fma.
template <int K, int kIsa>
struct Tag {  // TU-local (anonymous namespace): instantiations get internal linkage
  static constexpr bool kFma = kIsa == 1;
};

// The last partial group of r < W elements: each non-null input copied, zero-padded,
// into its pad row, and pointed there.
template <typename V, int W, int K>
GS_ALWAYS_INLINE void pad_group(const V* (&in)[K], int64_t r, V (&pad)[K][W]) {
  for (int a = 0; a < K; ++a) {
    if (in[a] == nullptr) continue;
    for (int j = 0; j < W; ++j) pad[a][j] = j < r ? in[a][j] : V(0);
    in[a] = pad[a];
  }
}

// ... and the group's outputs copied from their out rows to the non-null destinations.
template <typename V, int W, int K>
GS_ALWAYS_INLINE void unpad_group(V* const (&dst)[K], int64_t r, const V (&out)[K][W]) {
  for (int a = 0; a < K; ++a)
    if (dst[a] != nullptr)
      for (int64_t j = 0; j < r; ++j) dst[a][j] = out[a][j];
}

template <typename V, int kIsa, bool kPrior>
GS_ALWAYS_INLINE void kl_terms_impl(const V* GS_RESTRICT mu, const V* GS_RESTRICT lv, const V* GS_RESTRICT pm,
                                    const V* GS_RESTRICT plv, int64_t n, V* GS_RESTRICT terms) {
  using T = Simd<V, kInterleave, Tag<kPrior ? 1 : 0, kIsa>>;
  constexpr int W = T::kWidth;
  const T zero(0.0);
  alignas(64) V pad[4][W], out[W];
  for (int64_t i = 0; i < n; i += W) {
    const int64_t r = std::min<int64_t>(W, n - i);
    const V* in[4] = {mu + i, lv + i, kPrior ? pm + i : nullptr, kPrior ? plv + i : nullptr};
    V* o = terms + i;
    if (r < W) {  // last partial group: zero-padded copies in, a copy out
      pad_group(in, r, pad);
      o = out;
    }
    reparam::kl_term<T>(T::load(in[0]), T::load(in[1]), kPrior ? T::load(in[2]) : zero,
                        kPrior ? T::load(in[3]) : zero)
        .store(o);
    if (r < W)
      for (int64_t j = 0; j < r; ++j) terms[i + j] = out[j];
  }
}

// z[i] = reparam::sample(mu[i], lv[i], eps[i]), or with kFromStd (x = the standard
// deviations sd) reparam::sample_std(mu[i], sd[i], eps[i]).
template <typename V, int kIsa, bool kFromStd>
GS_ALWAYS_INLINE void sample_impl(const V* GS_RESTRICT mu, const V* GS_RESTRICT x, const float* GS_RESTRICT eps,
                                  int64_t n, V* GS_RESTRICT z) {
  using T = Simd<V, kInterleave, Tag<kFromStd ? 6 : 2, kIsa>>;
  constexpr int W = T::kWidth;
  alignas(64) V pm[W], px[W], out[W];
  alignas(64) float pe[W];
  for (int64_t i = 0; i < n; i += W) {
    const int64_t r = std::min<int64_t>(W, n - i);
    const V* m = mu + i;
    const V* xv = x + i;
    const float* e = eps + i;
    V* o = z + i;
    if (r < W) {  // last partial group: zero-padded copies in, a copy out
      for (int j = 0; j < W; ++j) {
        pm[j] = j < r ? m[j] : V(0);
        px[j] = j < r ? xv[j] : V(0);
        pe[j] = j < r ? e[j] : 0.0f;
      }
      m = pm;
      xv = px;
      e = pe;
      o = out;
    }
    if (kFromStd)
      reparam::sample_std<T>(T::load(m), T::load(xv), T::load_f32(e)).store(o);
    else
      reparam::sample<T>(T::load(m), T::load(xv), T::load_f32(e)).store(o);
    if (r < W)
      for (int64_t j = 0; j < r; ++j) z[i + j] = out[j];
  }
}

// Standard-normal prior: std[i] = exp(lv[i] / 2) and terms[i] = kl_term(mu[i], lv[i], 0, 0)
// from one exponential (reparam::std_and_kl_term); the samples then cost a
// multiply-add each (sample_from_std). kSum: the n elements are one row (or a chunk
// of one), and terms[0] gets their sum instead, accumulated in registers in row_sum's
// order (8 lanes, then pairwise; the zero-padded lanes of the last group add +0), so
// the bits are row_sum's.
template <typename V, int kIsa, bool kSum>
GS_ALWAYS_INLINE void std_kl_impl(const V* GS_RESTRICT mu, const V* GS_RESTRICT lv, int64_t n, V* GS_RESTRICT sd,
                                  V* GS_RESTRICT terms) {
  using T = Simd<V, kStdInterleave, Tag<kSum ? 7 : 3, kIsa>>;
  using vec = typename T::vec;
  constexpr int W = T::kWidth;
  constexpr int kAcc = 8 / VecOf<V>::kLanes;  // vectors per 8 elements
  static_assert(kStdInterleave % kAcc == 0, "groups must hold whole blocks of 8 elements");
  alignas(64) V pad[2][W], out[2][W];
  vec acc[kAcc] = {};
  for (int64_t i = 0; i < n; i += W) {
    const int64_t r = std::min<int64_t>(W, n - i);
    const V* in[2] = {mu + i, lv + i};
    V* const dst[2] = {sd + i, kSum ? nullptr : terms + i};
    V* o[2] = {dst[0], dst[1]};
    if (r < W) {  // last partial group: zero-padded copies in, copies out
      pad_group(in, r, pad);
      o[0] = out[0];
      o[1] = out[1];
    }
    T sdv, tv;
    reparam::std_and_kl_term<T>(T::load(in[0]), T::load(in[1]), sdv, tv);
    sdv.store(o[0]);
    if (kSum) {
      for (int v = 0; v < kStdInterleave; ++v) acc[v % kAcc] = acc[v % kAcc] + tv.x[v];
    } else {
      tv.store(o[1]);
    }
    if (r < W) unpad_group(dst, r, out);
  }
  if (kSum) {
    V l8[8];
    std::memcpy(l8, acc, sizeof(l8));
    terms[0] = ((l8[0] + l8[1]) + (l8[2] + l8[3])) + ((l8[4] + l8[5]) + (l8[6] + l8[7]));
  }
}

// dzs (+)= gz, dze (+)= gz * eps.
template <typename V>
GS_ALWAYS_INLINE void accum_impl(const V* GS_RESTRICT gz, const float* GS_RESTRICT eps, int64_t n, bool first,
                                 V* GS_RESTRICT dzs, V* GS_RESTRICT dze) {
  if (first) {
    for (int64_t i = 0; i < n; ++i) {
      dzs[i] = gz[i];
      dze[i] = gz[i] * static_cast<V>(eps[i]);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      dzs[i] += gz[i];
      dze[i] += gz[i] * static_cast<V>(eps[i]);
    }
  }
}

template <typename V, int kIsa, bool kPrior, bool kGradZ, bool kPriorGrads>
GS_ALWAYS_INLINE void backward_impl(const V* GS_RESTRICT mu, const V* GS_RESTRICT lv, const V* GS_RESTRICT pm,
                                    const V* GS_RESTRICT plv, const V* GS_RESTRICT dzs,
                                    const V* GS_RESTRICT dze, const V* GS_RESTRICT dkl, int64_t n,
                                    V* GS_RESTRICT dmu, V* GS_RESTRICT dlv, V* GS_RESTRICT dpm,
                                    V* GS_RESTRICT dplv) {
  using T = Simd<V, kInterleave, Tag<8 + (kPrior ? 4 : 0) + (kGradZ ? 2 : 0) + (kPriorGrads ? 1 : 0), kIsa>>;
  constexpr int W = T::kWidth;
  const T zero(0.0);
  alignas(64) V pad[7][W], out[4][W];
  for (int64_t i = 0; i < n; i += W) {
    const int64_t r = std::min<int64_t>(W, n - i);
    const V* in[7] = {mu + i, lv + i, kPrior ? pm + i : nullptr, kPrior ? plv + i : nullptr,
                      kGradZ ? dzs + i : nullptr, kGradZ ? dze + i : nullptr, dkl + i};
    V* const dst[4] = {dmu + i, dlv + i, kPriorGrads ? dpm + i : nullptr, kPriorGrads ? dplv + i : nullptr};
    V* o[4] = {dst[0], dst[1], dst[2], dst[3]};
    if (r < W) {  // last partial group: zero-padded copies in, copies out
      pad_group(in, r, pad);
      for (int a = 0; a < 4; ++a) o[a] = out[a];
    }
    const reparam::Grads<T> g = reparam::backward<T>(
        T::load(in[0]), T::load(in[1]), kPrior ? T::load(in[2]) : zero, kPrior ? T::load(in[3]) : zero,
        kGradZ ? T::load(in[4]) : zero, kGradZ ? T::load(in[5]) : zero, T::load(in[6]));
    g.mu.store(o[0]);
    g.lv.store(o[1]);
    if (kPriorGrads) {
      g.pm.store(o[2]);
      g.plv.store(o[3]);
    }
    if (r < W) unpad_group(dst, r, out);
  }
}

// backward_impl for the standard-normal prior without prior gradients, with one
// exponential per element (reparam::backward_std_prior).
template <typename V, int kIsa, bool kGradZ>
GS_ALWAYS_INLINE void backward_std_impl(const V* GS_RESTRICT mu, const V* GS_RESTRICT lv, const V* GS_RESTRICT dzs,
                                        const V* GS_RESTRICT dze, const V* GS_RESTRICT dkl, int64_t n,
                                        V* GS_RESTRICT dmu, V* GS_RESTRICT dlv) {
  using T = Simd<V, kInterleave, Tag<4 + (kGradZ ? 1 : 0), kIsa>>;
  constexpr int W = T::kWidth;
  const T zero(0.0);
  alignas(64) V pad[5][W], out[2][W];
  for (int64_t i = 0; i < n; i += W) {
    const int64_t r = std::min<int64_t>(W, n - i);
    const V* in[5] = {mu + i, lv + i, kGradZ ? dzs + i : nullptr, kGradZ ? dze + i : nullptr, dkl + i};
    V* const dst[2] = {dmu + i, dlv + i};
    V* o[2] = {dst[0], dst[1]};
    if (r < W) {  // last partial group: zero-padded copies in, copies out
      pad_group(in, r, pad);
      o[0] = out[0];
      o[1] = out[1];
    }
    const reparam::Grads<T> g =
        reparam::backward_std_prior<T>(T::load(in[0]), T::load(in[1]), kGradZ ? T::load(in[2]) : zero,
                                       kGradZ ? T::load(in[3]) : zero, T::load(in[4]));
    g.mu.store(o[0]);
    g.lv.store(o[1]);
    if (r < W) unpad_group(dst, r, out);
  }
}

// Entry points: one function per variant, compiled twice, for AVX2 (suffix _avx2) and
// for the baseline ISA (_base); flatten inlines the Simd operations and fastmath.
// The dispatchers below pick the ISA with use_avx2() and the variant from the null
// pointers.
#define GS_DEFINE_VARIANTS(SFX, ATTR, ISA)                                                                           \
  template <typename V, bool P>                                                                                      \
  ATTR __attribute__((flatten, noinline)) void kl_terms##SFX(const V* mu, const V* lv, const V* pm, const V* plv,    \
                                                             int64_t n, V* terms) {                                  \
    kl_terms_impl<V, ISA, P>(mu, lv, pm, plv, n, terms);                                                             \
  }                                                                                                                  \
  template <typename V>                                                                                              \
  ATTR __attribute__((flatten, noinline)) void sample##SFX(const V* mu, const V* lv, const float* eps, int64_t n,    \
                                                           V* z) {                                                   \
    sample_impl<V, ISA, false>(mu, lv, eps, n, z);                                                                   \
  }                                                                                                                  \
  template <typename V>                                                                                              \
  ATTR __attribute__((flatten, noinline)) void accum##SFX(const V* gz, const float* eps, int64_t n, bool first,      \
                                                          V* dzs, V* dze) {                                          \
    accum_impl<V>(gz, eps, n, first, dzs, dze);                                                                      \
  }                                                                                                                  \
  template <typename V, bool S>                                                                                      \
  ATTR __attribute__((flatten, noinline)) void std_kl##SFX(const V* mu, const V* lv, int64_t n, V* sd, V* terms) {    \
    std_kl_impl<V, ISA, S>(mu, lv, n, sd, terms);                                                                    \
  }                                                                                                                  \
  template <typename V>                                                                                              \
  ATTR __attribute__((flatten, noinline)) void sample_from_std##SFX(const V* mu, const V* sd, const float* eps,       \
                                                                    int64_t n, V* z) {                               \
    sample_impl<V, ISA, true>(mu, sd, eps, n, z);                                                                    \
  }                                                                                                                  \
  template <typename V, bool G>                                                                                      \
  ATTR __attribute__((flatten, noinline)) void backward_std##SFX(const V* mu, const V* lv, const V* dzs,             \
                                                                 const V* dze, const V* dkl, int64_t n, V* dmu,      \
                                                                 V* dlv) {                                           \
    backward_std_impl<V, ISA, G>(mu, lv, dzs, dze, dkl, n, dmu, dlv);                                                \
  }                                                                                                                  \
  template <typename V, bool P, bool G, bool PG>                                                                     \
  ATTR __attribute__((flatten, noinline)) void backward##SFX(const V* mu, const V* lv, const V* pm, const V* plv,    \
                                                             const V* dzs, const V* dze, const V* dkl, int64_t n,    \
                                                             V* dmu, V* dlv, V* dpm, V* dplv) {                      \
    backward_impl<V, ISA, P, G, PG>(mu, lv, pm, plv, dzs, dze, dkl, n, dmu, dlv, dpm, dplv);                         \
  }

GS_DEFINE_VARIANTS(_base, , 0)
#if defined(GS_CPU_AVX2_PATH)
GS_DEFINE_VARIANTS(_avx2, GS_TARGET_AVX2, 1)
#define GS_PICK(name, ...) (use_avx2() ? name##_avx2 __VA_ARGS__ : name##_base __VA_ARGS__)
#else
#define GS_PICK(name, ...) (name##_base __VA_ARGS__)
#endif
#undef GS_DEFINE_VARIANTS

// terms[i] = kl_term(mu[i], lv[i], pm[i], plv[i]) (pm = plv = 0 when pm is null).
template <typename V>
void kl_terms(const V* mu, const V* lv, const V* pm, const V* plv, int64_t n, V* terms) {
  if (pm)
    GS_PICK(kl_terms, <V, true>(mu, lv, pm, plv, n, terms));
  else
    GS_PICK(kl_terms, <V, false>(mu, lv, pm, plv, n, terms));
}
template <typename V>
void sample(const V* mu, const V* lv, const float* eps, int64_t n, V* z) {
  GS_PICK(sample, <V>(mu, lv, eps, n, z));
}
template <typename V>
void std_kl(const V* mu, const V* lv, int64_t n, V* sd, V* terms) {
  GS_PICK(std_kl, <V, false>(mu, lv, n, sd, terms));
}
// std_kl of one row (or a chunk of one): *row_total = the sum of its terms, as row_sum.
template <typename V>
void std_kl_sum(const V* mu, const V* lv, int64_t n, V* sd, V* row_total) {
  GS_PICK(std_kl, <V, true>(mu, lv, n, sd, row_total));
}
template <typename V>
void sample_from_std(const V* mu, const V* sd, const float* eps, int64_t n, V* z) {
  GS_PICK(sample_from_std, <V>(mu, sd, eps, n, z));
}
template <typename V>
void accum(const V* gz, const float* eps, int64_t n, bool first, V* dzs, V* dze) {
  GS_PICK(accum, <V>(gz, eps, n, first, dzs, dze));
}
template <typename V, bool P, bool G, bool PG>
void backward_pick(const V* mu, const V* lv, const V* pm, const V* plv, const V* dzs, const V* dze, const V* dkl,
                   int64_t n, V* dmu, V* dlv, V* dpm, V* dplv) {
  GS_PICK(backward, <V, P, G, PG>(mu, lv, pm, plv, dzs, dze, dkl, n, dmu, dlv, dpm, dplv));
}
// Gradients of n elements; dkl[i] is the KL gradient of element i's row. pm (prior
// given), dzs (grad_z given) and dpm (prior grads wanted) select the variant.
template <typename V>
void backward(const V* mu, const V* lv, const V* pm, const V* plv, const V* dzs, const V* dze, const V* dkl,
              int64_t n, V* dmu, V* dlv, V* dpm, V* dplv) {
  using F = void (*)(const V*, const V*, const V*, const V*, const V*, const V*, const V*, int64_t, V*, V*, V*,
                     V*);
  static constexpr F table[8] = {
      backward_pick<V, false, false, false>, backward_pick<V, false, false, true>,
      backward_pick<V, false, true, false>,  backward_pick<V, false, true, true>,
      backward_pick<V, true, false, false>,  backward_pick<V, true, false, true>,
      backward_pick<V, true, true, false>,   backward_pick<V, true, true, true>};
  if (pm == nullptr && dpm == nullptr) {  // standard-normal prior: one exponential per element
    if (dzs)
      GS_PICK(backward_std, <V, true>(mu, lv, dzs, dze, dkl, n, dmu, dlv));
    else
      GS_PICK(backward_std, <V, false>(mu, lv, dzs, dze, dkl, n, dmu, dlv));
    return;
  }
  const int k = (pm ? 4 : 0) + (dzs ? 2 : 0) + (dpm ? 1 : 0);
  table[k](mu, lv, pm, plv, dzs, dze, dkl, n, dmu, dlv, dpm, dplv);
}
#undef GS_PICK

// Sum of n values in a fixed order (8 interleaved partial sums, then pairwise).
template <typename V>
V row_sum(const V* t, int64_t n) {
  V acc[8] = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += t[j + k];
  for (int k = 0; j + k < n; ++k) acc[k] += t[j + k];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// ---------------------------------------------------------------------------
// Units and strided access.

// The (R, D) plane cut into units. Unit u covers rows [r0, r1) and columns [d0, d1):
// either a chunk of one row (D > kTile) or whole rows. Its plane indices
// r * D + d are the contiguous range [r0 * D + d0, (r1 - 1) * D + d1).
struct Units {
  int64_t R, D;
  int64_t chunks;         // chunks per row (1 when units hold whole rows)
  int64_t rows_per_unit;  // rows per unit (1 when rows are chunked)
  int64_t count;

  Units(int64_t R_, int64_t D_) : R(R_), D(D_) {
    if (D > kTile) {
      chunks = (D + kTile - 1) / kTile;
      rows_per_unit = 1;
      count = R * chunks;
    } else {
      chunks = 1;
      rows_per_unit = std::max<int64_t>(1, kTile / std::max<int64_t>(D, 1));
      count = (R + rows_per_unit - 1) / rows_per_unit;
    }
  }
  void get(int64_t u, int64_t& r0, int64_t& r1, int64_t& d0, int64_t& d1) const {
    if (chunks > 1) {
      r0 = u / chunks;
      r1 = r0 + 1;
      d0 = (u % chunks) * kTile;
      d1 = std::min(D, d0 + kTile);
    } else {
      r0 = u * rows_per_unit;
      r1 = std::min(R, r0 + rows_per_unit);
      d0 = 0;
      d1 = D;
    }
  }
};

// A 2-D strided view (rows r, columns d) of an input, read as opmath V.
template <typename scalar_t>
struct View2 {
  const scalar_t* p = nullptr;
  int64_t s0 = 0, s1 = 0;
  View2() = default;
  explicit View2(const at::Tensor& t) : p(t.const_data_ptr<scalar_t>()), s0(t.stride(0)), s1(t.stride(1)) {}
  explicit operator bool() const { return p != nullptr; }
  // Whether the view is one contiguous (R, D) plane.
  bool is_plane(int64_t D) const { return s1 == 1 && s0 == D; }

  // Pointer to the unit's values as contiguous V, gathering into buf when needed.
  template <typename V>
  const V* load(int64_t r0, int64_t r1, int64_t d0, int64_t d1, V* buf) const {
    const int64_t w = d1 - d0;
    if (std::is_same<scalar_t, V>::value && s1 == 1 && (r1 - r0 == 1 || s0 == w)) {
      return reinterpret_cast<const V*>(p + r0 * s0 + d0);  // already contiguous
    }
    V* o = buf;
    for (int64_t r = r0; r < r1; ++r) {
      const scalar_t* row = p + r * s0 + d0 * s1;
      if (s1 == 1) {
        for (int64_t d = 0; d < w; ++d) o[d] = static_cast<V>(row[d]);
      } else if (s1 == 0) {
        const V v = static_cast<V>(row[0]);
        for (int64_t d = 0; d < w; ++d) o[d] = v;
      } else {
        for (int64_t d = 0; d < w; ++d) o[d] = static_cast<V>(row[d * s1]);
      }
      o += w;
    }
    return buf;
  }

  // Software prefetch of a unit's rows (contiguous rows only; others are gathered
  // element by element anyway). Issued one unit ahead: the rows of a chunked
  // encoder output are 2 KiB pieces of 4 KiB pages, which the hardware prefetchers
  // pick up late.
  void prefetch(int64_t r0, int64_t r1, int64_t d0, int64_t d1) const {
    if (s1 != 1) return;
    for (int64_t r = r0; r < r1; ++r) {
      const char* a = reinterpret_cast<const char*>(p + r * s0 + d0);
      const char* b = reinterpret_cast<const char*>(p + r * s0 + d1);
      for (; a < b; a += 64) __builtin_prefetch(a, 0, 3);
      if (s0 == 0) break;  // broadcast rows: one row
    }
  }
};

// Prefetches the inputs of unit u (if it exists) that are not one contiguous (R, D)
// plane: a contiguous plane is read as one sequential stream, which the hardware
// prefetchers follow (software prefetches in bursts of 2 KiB per unit stall on the
// fill buffers there: 8% slower at 65536x512), while the rows of a chunked encoder
// output are pieces of pages, which they pick up late.
template <typename scalar_t>
GS_ALWAYS_INLINE void prefetch_unit(const Units& U, int64_t u, std::initializer_list<const View2<scalar_t>*> views) {
  if (u >= U.count) return;
  int64_t r0, r1, d0, d1;
  U.get(u, r0, r1, d0, d1);
  for (const View2<scalar_t>* v : views)
    if (*v && !v->is_plane(U.D)) v->prefetch(r0, r1, d0, d1);
}

template <typename V, typename scalar_t>
GS_ALWAYS_INLINE void store(const V* src, int64_t n, scalar_t* dst) {
  if (std::is_same<scalar_t, V>::value) {
    if (reinterpret_cast<const void*>(src) != reinterpret_cast<const void*>(dst))
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(V));
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<scalar_t>(src[i]);
  }
}

// stream_copy when scalar_t is the opmath type (the only case that streams).
template <typename V, typename scalar_t>
GS_ALWAYS_INLINE void stream_out(const V* src, int64_t n, scalar_t* dst) {
  if constexpr (std::is_same<scalar_t, V>::value) {
    stream_copy(src, n, dst);
  } else {
    store(src, n, dst);
  }
}

// ---------------------------------------------------------------------------
// Checks.

const char* const kOp = "gensample::reparam_kl (cpu): ";

void check_input(const at::Tensor& t, const char* name, const at::Tensor& mu) {
  TORCH_CHECK(t.device().is_cpu(), kOp, name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == mu.scalar_type(), kOp, name, " has dtype ", t.scalar_type(), " but mu has ",
              mu.scalar_type());
  TORCH_CHECK(t.sizes() == mu.sizes(), kOp, name, " must have mu's shape ", mu.sizes(), ", got ", t.sizes());
}

void check_common(const at::Tensor& mu, const at::Tensor& logvar, const std::optional<at::Tensor>& prior_mu,
                  const std::optional<at::Tensor>& prior_logvar, int64_t n_samples) {
  TORCH_CHECK(mu.device().is_cpu(), kOp, "mu must be a CPU tensor, got ", mu.device());
  TORCH_CHECK(mu.dim() == 2, kOp, "mu must be 2-D (R, D), got shape ", mu.sizes());
  const auto st = mu.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16, kOp,
              "mu must be float32, float64, float16 or bfloat16, got ", st);
  check_input(logvar, "logvar", mu);
  if (prior_mu.has_value()) check_input(*prior_mu, "prior_mu", mu);
  if (prior_logvar.has_value()) check_input(*prior_logvar, "prior_logvar", mu);
  TORCH_CHECK(n_samples >= 1, kOp, "n_samples must be >= 1, got ", n_samples);
}

// Units per piece of parallel_chunks: about 32k elements of work.
int64_t unit_grain(const Units& U, int64_t n_samples) {
  const int64_t per_unit = std::max<int64_t>(1, std::min(U.D, kTile) * (U.chunks > 1 ? 1 : U.rows_per_unit)) *
                           (n_samples + 1);
  return std::max<int64_t>(1, 32768 / per_unit);
}

// View of an optional input; an empty view (false) when absent.
template <typename scalar_t>
View2<scalar_t> optional_view(const std::optional<at::Tensor>& t) {
  return t.has_value() ? View2<scalar_t>(*t) : View2<scalar_t>();
}

// A tile of an optional prior input: loaded (as V) when given, zeros otherwise.
template <typename V, typename scalar_t>
const V* load_or_zero(const View2<scalar_t>& t, int64_t r0, int64_t r1, int64_t d0, int64_t d1, int64_t L, V* buf) {
  if (t) return t.template load<V>(r0, r1, d0, d1, buf);
  std::fill(buf, buf + L, V(0));
  return buf;
}

// ---------------------------------------------------------------------------
// Forward.

template <typename scalar_t>
void fwd_kernel(const at::Tensor& mu_t, const at::Tensor& lv_t, const std::optional<at::Tensor>& pm_t,
                const std::optional<at::Tensor>& plv_t, uint64_t key, uint64_t offset, int64_t S, at::Tensor& z_t,
                at::Tensor& kl_t) {
  using V = at::opmath_type<scalar_t>;
  const int64_t R = mu_t.size(0), D = mu_t.size(1);
  const View2<scalar_t> mu(mu_t), lv(lv_t);
  const View2<scalar_t> pm = optional_view<scalar_t>(pm_t), plv = optional_view<scalar_t>(plv_t);
  const bool prior = pm || plv;
  scalar_t* z = z_t.mutable_data_ptr<scalar_t>();
  scalar_t* kl = kl_t.mutable_data_ptr<scalar_t>();
  const Units U(R, D);
  const int64_t plane = R * D;
  // Partial KL sums of chunked rows, reduced in chunk order after the parallel pass.
  std::vector<V> kl_part(U.chunks > 1 ? static_cast<size_t>(U.count) : 0);

  // Large fp32/fp64 outputs: z goes through an L1 buffer and streaming stores.
  constexpr bool kSame = std::is_same<scalar_t, V>::value;
  const bool stream = kSame && stream_outputs(static_cast<size_t>(S * plane) * sizeof(V));
  const bool planes = mu.is_plane(D) && lv.is_plane(D);

  parallel_chunks(U.count, unit_grain(U, S), [&](int64_t u0, int64_t u1) {
    alignas(64) V b_mu[kTile], b_lv[kTile], b_pm[kTile], b_plv[kTile], b_z[kTile], b_kl[kTile], b_sd[kTile];
    alignas(64) float eps[kTile];
    for (int64_t u = u0; u < u1; ++u) {
      int64_t r0, r1, d0, d1;
      U.get(u, r0, r1, d0, d1);
      const int64_t w = d1 - d0, L = (r1 - r0) * w, P0 = r0 * D + d0;
      if (u + 1 < u1) prefetch_unit<scalar_t>(U, u + 1, {&mu, &lv, &pm, &plv});
      const V* m = mu.template load<V>(r0, r1, d0, d1, b_mu);
      const V* l = lv.template load<V>(r0, r1, d0, d1, b_lv);
      const V* pmv = prior ? load_or_zero<V>(pm, r0, r1, d0, d1, L, b_pm) : nullptr;
      const V* plvv = prior ? load_or_zero<V>(plv, r0, r1, d0, d1, L, b_plv) : nullptr;
      // KL: the unit's terms in one vectorized pass (with std = exp(lv / 2) for the
      // standard-normal prior: one exponential for both), then per-row sums (summed
      // in the same pass when the unit is one row or a chunk of one).
      auto put_row = [&](int64_t r, V s) {  // a chunk's partial sum, or the row's KL
        if (U.chunks > 1)
          kl_part[u] = s;
        else
          kl[r] = static_cast<scalar_t>(s);
      };
      if (!prior && r1 - r0 == 1) {
        V s;
        std_kl_sum(m, l, L, b_sd, &s);
        put_row(r0, s);
      } else {
        if (prior)
          kl_terms(m, l, pmv, plvv, L, b_kl);
        else
          std_kl(m, l, L, b_sd, b_kl);
        for (int64_t r = r0; r < r1; ++r) put_row(r, row_sum(b_kl + (r - r0) * w, w));
      }
      // z[s, plane P0 .. P0 + L) = mu + exp(lv / 2) * eps, eps = normal elements s * R * D + P0 + i.
      for (int64_t s = 0; s < S; ++s) {
        const int64_t base = s * plane + P0;
        if constexpr (std::is_same<scalar_t, float>::value) {
          if (!prior) {  // fp32, standard prior: z straight from the generator's registers
            // Contiguous (R, D) planes: the next unit's mu and lv are prefetched meanwhile.
            const bool pf = s == 0 && u + 1 < u1 && planes;
            const int64_t next = P0 + L;  // the next unit's plane index (units tile the plane)
            normal_affine_fill(key, offset, static_cast<uint64_t>(base), L, m, b_sd, z + base, stream,
                               pf ? reinterpret_cast<const float*>(mu.p) + next : nullptr,
                               pf ? reinterpret_cast<const float*>(lv.p) + next : nullptr);
            continue;
          }
        }
        normal_fill(key, offset, static_cast<uint64_t>(base), L, eps);
        V* zo = kSame && !stream ? reinterpret_cast<V*>(z + base) : b_z;
        if (prior)
          sample(m, l, eps, L, zo);
        else
          sample_from_std(m, b_sd, eps, L, zo);
        if (stream)
          stream_copy(b_z, L, reinterpret_cast<V*>(z + base));
        else if (!kSame)
          store(b_z, L, z + base);
      }
    }
    if (stream) stream_fence();
  });
  if (U.chunks > 1) {
    for (int64_t r = 0; r < R; ++r) {
      V s = kl_part[r * U.chunks];
      for (int64_t c = 1; c < U.chunks; ++c) s += kl_part[r * U.chunks + c];
      kl[r] = static_cast<scalar_t>(s);
    }
  }
}

std::tuple<at::Tensor, at::Tensor> reparam_kl_fwd_cpu(const at::Tensor& mu, const at::Tensor& logvar,
                                                      const std::optional<at::Tensor>& prior_mu,
                                                      const std::optional<at::Tensor>& prior_logvar,
                                                      const at::Tensor& seed, int64_t n_samples) {
  check_common(mu, logvar, prior_mu, prior_logvar, n_samples);
  uint64_t key, offset;
  read_seed(seed, key, offset);
  const int64_t R = mu.size(0), D = mu.size(1);
  at::Tensor z = empty_output({n_samples, R, D}, mu.options());
  if (D == 0) return {z, at::zeros({R}, mu.options())};
  at::Tensor kl = at::empty({R}, mu.options());
  if (R == 0) return {z, kl};
  advise_output(z.mutable_data_ptr(), static_cast<size_t>(z.numel()) * z.element_size());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mu.scalar_type(), "reparam_kl_fwd_cpu", [&] {
    fwd_kernel<scalar_t>(mu, logvar, prior_mu, prior_logvar, key, offset, n_samples, z, kl);
  });
  return {z, kl};
}

// ---------------------------------------------------------------------------
// Backward.

template <typename scalar_t>
void bwd_kernel(const std::optional<at::Tensor>& gz_t, const std::optional<at::Tensor>& gkl_t,
                const at::Tensor& mu_t, const at::Tensor& lv_t, const std::optional<at::Tensor>& pm_t,
                const std::optional<at::Tensor>& plv_t, uint64_t key, uint64_t offset, int64_t S,
                at::Tensor& dmu_t, at::Tensor& dlv_t, at::Tensor* dpm_t, at::Tensor* dplv_t) {
  using V = at::opmath_type<scalar_t>;
  const int64_t R = mu_t.size(0), D = mu_t.size(1);
  const View2<scalar_t> mu(mu_t), lv(lv_t);
  const View2<scalar_t> pm = optional_view<scalar_t>(pm_t), plv = optional_view<scalar_t>(plv_t);
  const bool prior = pm || plv;
  // grad_z (S, R, D), any strides (often expanded: all strides 0).
  const scalar_t* gz = nullptr;
  std::vector<View2<scalar_t>> gzs;  // grad_z[s] as (R, D) views
  if (gz_t.has_value()) {
    gz = gz_t->const_data_ptr<scalar_t>();
    gzs.resize(static_cast<size_t>(S));
    for (int64_t s = 0; s < S; ++s) {
      gzs[s].p = gz + s * gz_t->stride(0);
      gzs[s].s0 = gz_t->stride(1);
      gzs[s].s1 = gz_t->stride(2);
    }
  }
  const scalar_t* gkl = nullptr;
  int64_t gkl_s = 0;
  if (gkl_t.has_value()) {
    gkl = gkl_t->const_data_ptr<scalar_t>();
    gkl_s = gkl_t->stride(0);
  }
  scalar_t* dmu = dmu_t.mutable_data_ptr<scalar_t>();
  scalar_t* dlv = dlv_t.mutable_data_ptr<scalar_t>();
  scalar_t* dpm = dpm_t ? dpm_t->mutable_data_ptr<scalar_t>() : nullptr;
  scalar_t* dplv = dplv_t ? dplv_t->mutable_data_ptr<scalar_t>() : nullptr;
  const Units U(R, D);
  // Write outputs in place, or (large fp32/fp64 outputs) through L1 buffers and
  // streaming stores.
  const bool stream = std::is_same<scalar_t, V>::value &&
                      stream_outputs(static_cast<size_t>(R * D) * sizeof(V) * (dpm ? 4 : 2));
  const bool kDirect = std::is_same<scalar_t, V>::value && !stream;

  parallel_chunks(U.count, unit_grain(U, S), [&](int64_t u0, int64_t u1) {
    alignas(64) V b_mu[kTile], b_lv[kTile], b_pm[kTile], b_plv[kTile], b_gz[kTile], dzs[kTile], dze[kTile];
    alignas(64) V b_dkl[kTile], o_mu[kTile], o_lv[kTile], o_pm[kTile], o_plv[kTile];
    alignas(64) float eps[kTile];
    for (int64_t u = u0; u < u1; ++u) {
      int64_t r0, r1, d0, d1;
      U.get(u, r0, r1, d0, d1);
      const int64_t w = d1 - d0, L = (r1 - r0) * w, P0 = r0 * D + d0;
      if (u + 1 < u1) {
        prefetch_unit<scalar_t>(U, u + 1, {&mu, &lv, &pm, &plv});
        for (int64_t s = 0; gz && s < S; ++s) prefetch_unit<scalar_t>(U, u + 1, {&gzs[s]});
      }
      const V* m = mu.template load<V>(r0, r1, d0, d1, b_mu);
      const V* l = lv.template load<V>(r0, r1, d0, d1, b_lv);
      const V* pmv = prior ? load_or_zero<V>(pm, r0, r1, d0, d1, L, b_pm) : nullptr;
      const V* plvv = prior ? load_or_zero<V>(plv, r0, r1, d0, d1, L, b_plv) : nullptr;
      // dz_sum = sum_s grad_z[s], dz_sum_eps = sum_s grad_z[s] * eps_s (eps regenerated).
      if (gz) {
        for (int64_t s = 0; s < S; ++s) {
          const V* gv = gzs[s].template load<V>(r0, r1, d0, d1, b_gz);
          normal_fill(key, offset, static_cast<uint64_t>(s * R * D + P0), L, eps);
          accum(gv, eps, L, s == 0, dzs, dze);
        }
      }
      V* wmu = kDirect ? reinterpret_cast<V*>(dmu + P0) : o_mu;
      V* wlv = kDirect ? reinterpret_cast<V*>(dlv + P0) : o_lv;
      V* wpm = dpm ? (kDirect ? reinterpret_cast<V*>(dpm + P0) : o_pm) : nullptr;
      V* wplv = dplv ? (kDirect ? reinterpret_cast<V*>(dplv + P0) : o_plv) : nullptr;
      // dkl of each element's row, then the whole unit in one vectorized pass.
      for (int64_t r = r0; r < r1; ++r)
        std::fill(b_dkl + (r - r0) * w, b_dkl + (r - r0 + 1) * w, gkl ? static_cast<V>(gkl[r * gkl_s]) : V(0));
      backward(m, l, prior ? pmv : nullptr, prior ? plvv : nullptr, gz ? dzs : nullptr, gz ? dze : nullptr, b_dkl,
               L, wmu, wlv, wpm, wplv);
      if (stream) {
        stream_out(o_mu, L, dmu + P0);
        stream_out(o_lv, L, dlv + P0);
        if (dpm) stream_out(o_pm, L, dpm + P0);
        if (dplv) stream_out(o_plv, L, dplv + P0);
      } else if (!kDirect) {
        store(o_mu, L, dmu + P0);
        store(o_lv, L, dlv + P0);
        if (dpm) store(o_pm, L, dpm + P0);
        if (dplv) store(o_plv, L, dplv + P0);
      }
    }
    if (stream) stream_fence();
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> reparam_kl_bwd_cpu(
    const std::optional<at::Tensor>& grad_z, const std::optional<at::Tensor>& grad_kl, const at::Tensor& mu,
    const at::Tensor& logvar, const std::optional<at::Tensor>& prior_mu,
    const std::optional<at::Tensor>& prior_logvar, const at::Tensor& seed, int64_t n_samples, bool prior_grads) {
  check_common(mu, logvar, prior_mu, prior_logvar, n_samples);
  uint64_t key, offset;
  read_seed(seed, key, offset);
  const int64_t R = mu.size(0), D = mu.size(1);
  if (grad_z.has_value()) {
    const at::Tensor& g = *grad_z;
    TORCH_CHECK(g.device().is_cpu(), kOp, "grad_z must be a CPU tensor, got ", g.device());
    TORCH_CHECK(g.scalar_type() == mu.scalar_type(), kOp, "grad_z has dtype ", g.scalar_type(), " but mu has ",
                mu.scalar_type());
    TORCH_CHECK(g.dim() == 3 && g.size(0) == n_samples && g.size(1) == R && g.size(2) == D, kOp,
                "grad_z must have shape (n_samples, R, D) = (", n_samples, ", ", R, ", ", D, "), got ", g.sizes());
  }
  if (grad_kl.has_value()) {
    const at::Tensor& g = *grad_kl;
    TORCH_CHECK(g.device().is_cpu(), kOp, "grad_kl must be a CPU tensor, got ", g.device());
    TORCH_CHECK(g.scalar_type() == mu.scalar_type(), kOp, "grad_kl has dtype ", g.scalar_type(), " but mu has ",
                mu.scalar_type());
    TORCH_CHECK(g.dim() == 1 && g.size(0) == R, kOp, "grad_kl must have shape (R,) = (", R, ",), got ", g.sizes());
  }
  at::Tensor dmu = empty_output({R, D}, mu.options());
  at::Tensor dlv = empty_output({R, D}, mu.options());
  at::Tensor dpm, dplv;
  if (prior_grads) {
    dpm = empty_output({R, D}, mu.options());
    dplv = empty_output({R, D}, mu.options());
  } else {
    dpm = at::empty({0}, mu.options());
    dplv = at::empty({0}, mu.options());
  }
  if (R == 0 || D == 0) return {dmu, dlv, dpm, dplv};
  const size_t bytes = static_cast<size_t>(R * D) * dmu.element_size();
  advise_output(dmu.mutable_data_ptr(), bytes);
  advise_output(dlv.mutable_data_ptr(), bytes);
  if (prior_grads) {
    advise_output(dpm.mutable_data_ptr(), bytes);
    advise_output(dplv.mutable_data_ptr(), bytes);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mu.scalar_type(), "reparam_kl_bwd_cpu", [&] {
    bwd_kernel<scalar_t>(grad_z, grad_kl, mu, logvar, prior_mu, prior_logvar, key, offset, n_samples, dmu, dlv,
                         prior_grads ? &dpm : nullptr, prior_grads ? &dplv : nullptr);
  });
  return {dmu, dlv, dpm, dplv};
}

}  // namespace
}  // namespace cpu
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CPU, m) {
  m.impl("reparam_kl_fwd", &gensample::cpu::reparam_kl_fwd_cpu);
  m.impl("reparam_kl_bwd", &gensample::cpu::reparam_kl_bwd_cpu);
}
