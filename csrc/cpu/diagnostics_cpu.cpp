// CPU kernels of the diagnostics family: diag_rank_summary and diag_mean_acov (schemas
// and argument conventions in csrc/diagnostics_ops.cpp; the estimators they feed, and
// the torch path they must equal, in gensample/diagnostics.py).
//
// diag_rank_summary, per column (event entry), one task each, claimed dynamically:
//  1. items: each draw's order-preserving integer key (float32 -> uint32, float64 ->
//     uint64; -0.0 keyed as +0.0, so that equal values tie) with its split-layout
//     position as payload ((split chain << pb) | position; the middle draw of an odd
//     chain gets split chain M2, a marker), packed in one uint64 for float32 keys;
//  2. LSD radix sort, 16-bit digits (2 passes for float32, 4 for float64; a pass whose
//     digit is the same for every key is skipped), histograms taken while building items;
//  3. from the sorted values: mean/sd, the numpy-'linear' quantiles over all draws, then
//     (odd N) the middle draws removed, the median of the split draws;
//  4. folded ranks without a second sort: |s - median| over the sorted values falls then
//     rises, so its order is a merge of two sorted runs walked outwards from the median
//     (and inwards from the extremes); the folded z of each element is written at its
//     sorted index (ties: the average rank of the group, as for the bulk z);
//  5. one walk over the sorted items: bulk ranks (ties, equal keys, share the average
//     rank as scipy.stats.rankdata('average'); z = Phi^-1((r - 3/8)/(S + 1/4)) from a
//     table of the integer ranks, ties: calc_ndtri, the function torch.special.ndtri
//     uses) and the folded z of step 4, each scattered to the split layout or, where
//     only R-hat needs them, summed per chain;
//  6. quantile indicators I(x <= q) as bitsets (set from the sorted prefix, or its
//     complement), their autocovariances from popcounts (exact integer counts);
//  7. z-series: per split chain the two-pass mean and variance, then the lag products
//     sum_i y_i y_{i+t} eight lags at a time (vectorized), in blocks, until Geyer's
//     initial positive sequence has stopped (or max_lag): the estimator never reads a
//     lag past that point, so the result equals the all-lags one.
// Everything per column is in float64 (keys aside); results depend on neither the thread
// count nor the scheduling.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/native/Math.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <limits>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "cpu_kernels.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace gensample {
namespace cpu {
namespace {

const char* const kOp = "gensample::diag_rank_summary (cpu): ";

enum Flags : int64_t {
  kBulkAcov = 1,
  kFoldedAcov = 2,
  kZStats = 4,
  kInd0 = 8,
  kInd1 = 16,
  kMoments = 32,
  kOutZ = 64,
};

// Radix digits of 16 bits: 2 passes for float32 keys, 4 for float64 (fewer passes beat
// the smaller, cache-resident histograms of 8- or 11-bit digits on this kind of CPU:
// measured 11 ns per item for 2 x 16 bits, 13.5 for 3 x 11, 13.4 for 4 x 8).
constexpr int kMaxRadix = 1 << 16;
constexpr int64_t kLagBlock = 8;
constexpr int64_t kColStats = 10;

// GENSAMPLE_DIAG_PROFILE=1: per-phase thread CPU time (summed over threads), on stderr.
enum Phase { kPhItems, kPhSort, kPhMoments, kPhBulkWalk, kPhBulkLags, kPhFolded, kPhInd, kPhCount };
const char* const kPhaseNames[kPhCount] = {"items+histograms", "radix sort", "moments+quantiles", "rank walk",
                                           "centre+lags", "folded merge", "indicators"};
std::atomic<int64_t> g_phase_ns[kPhCount];
double g_transpose_s = 0;
bool profiling() {
  static const bool on = [] {
    const char* e = std::getenv("GENSAMPLE_DIAG_PROFILE");
    return e && e[0] == '1';
  }();
  return on;
}
// CPU time of the calling thread (not wall time: on a shared machine the thread's
// preempted time would count too).
int64_t thread_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
struct PhaseClock {
  bool on = profiling();
  int64_t t = on ? thread_ns() : 0;
  void tick(Phase p) {
    if (!on) return;
    const int64_t now = thread_ns();
    g_phase_ns[p] += now - t;
    t = now;
  }
};

// ---------------------------------------------------------------------------
// keys

// Branch-free (the sign of random data would mispredict half the time): v + 0 turns
// -0.0 into +0.0 (round to nearest) and keeps NaN a NaN; then the sign decides whether
// all bits or only the sign bit are flipped.
GS_ALWAYS_INLINE uint32_t key_of(float v) {
  uint32_t u;
  v = v + 0.0f;  // -0.0 ties with +0.0
  std::memcpy(&u, &v, 4);
  return u ^ (static_cast<uint32_t>(static_cast<int32_t>(u) >> 31) | 0x80000000u);
}
GS_ALWAYS_INLINE double value_of(uint32_t k) {
  const uint32_t u = k ^ (static_cast<uint32_t>(static_cast<int32_t>(~k) >> 31) | 0x80000000u);
  float f;
  std::memcpy(&f, &u, 4);
  return static_cast<double>(f);
}
GS_ALWAYS_INLINE uint64_t key_of(double v) {
  uint64_t u;
  v = v + 0.0;
  std::memcpy(&u, &v, 8);
  return u ^ (static_cast<uint64_t>(static_cast<int64_t>(u) >> 63) | 0x8000000000000000ull);
}
GS_ALWAYS_INLINE double value_of(uint64_t k) {
  const uint64_t u = k ^ (static_cast<uint64_t>(static_cast<int64_t>(~k) >> 63) | 0x8000000000000000ull);
  double f;
  std::memcpy(&f, &u, 8);
  return f;
}

// Item traits: float32 keys packed with the payload in one uint64 (key high); float64
// keys as a 16-byte pair.
struct Items32 {
  using Scalar = float;
  using Key = uint32_t;
  using Item = uint64_t;
  static constexpr int kBits = 16;
  static constexpr int kRadix = 1 << kBits;
  static constexpr int kPasses = 2;
  static GS_ALWAYS_INLINE Item make(Key k, uint32_t p) { return (static_cast<uint64_t>(k) << 32) | p; }
  static GS_ALWAYS_INLINE Key key(Item it) { return static_cast<Key>(it >> 32); }
  static GS_ALWAYS_INLINE uint32_t pay(Item it) { return static_cast<uint32_t>(it); }
  static GS_ALWAYS_INLINE uint32_t digit(Item it, int pass) {
    return static_cast<uint32_t>(it >> (32 + pass * kBits)) & (kRadix - 1);
  }
};
struct Pair64 {
  uint64_t k;
  uint64_t p;
};
struct Items64 {
  using Scalar = double;
  using Key = uint64_t;
  using Item = Pair64;
  static constexpr int kBits = 16;
  static constexpr int kRadix = 1 << kBits;
  static constexpr int kPasses = 4;
  static GS_ALWAYS_INLINE Item make(Key k, uint32_t p) { return Item{k, p}; }
  static GS_ALWAYS_INLINE Key key(const Item& it) { return it.k; }
  static GS_ALWAYS_INLINE uint32_t pay(const Item& it) { return static_cast<uint32_t>(it.p); }
  static GS_ALWAYS_INLINE uint32_t digit(const Item& it, int pass) {
    return static_cast<uint32_t>(it.k >> (pass * kBits)) & (kRadix - 1);
  }
};

// ---------------------------------------------------------------------------
// vectorized lag products (compiled for AVX2 and for the baseline ISA)

typedef double d4 __attribute__((vector_size(32)));
typedef double ud4 __attribute__((vector_size(32), aligned(8), may_alias));

// out[k] += sum_{i < n - t - k} y[i] y[i + t + k], k = 0..7.
#define GS_DIAG_LOOPS(SFX, ATTR)                                                          \
  ATTR __attribute__((noinline)) void lag8##SFX(const double* GS_RESTRICT y, int64_t n, int64_t t, double* out) { \
    int64_t m = n - t - 7;                                                                \
    if (m < 0) m = 0;                                                                     \
    d4 a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;  \
    int64_t i = 0;                                                                        \
    const double* yt = y + t;                                                             \
    for (; i + 4 <= m; i += 4) {                                                          \
      const d4 v = *reinterpret_cast<const ud4*>(y + i);                                  \
      a0 += v * *reinterpret_cast<const ud4*>(yt + i);                                    \
      a1 += v * *reinterpret_cast<const ud4*>(yt + i + 1);                                \
      a2 += v * *reinterpret_cast<const ud4*>(yt + i + 2);                                \
      a3 += v * *reinterpret_cast<const ud4*>(yt + i + 3);                                \
      a4 += v * *reinterpret_cast<const ud4*>(yt + i + 4);                                \
      a5 += v * *reinterpret_cast<const ud4*>(yt + i + 5);                                \
      a6 += v * *reinterpret_cast<const ud4*>(yt + i + 6);                                \
      a7 += v * *reinterpret_cast<const ud4*>(yt + i + 7);                                \
    }                                                                                     \
    const d4* acc[8] = {&a0, &a1, &a2, &a3, &a4, &a5, &a6, &a7};                          \
    for (int k = 0; k < 8; ++k) {                                                         \
      const d4 a = *acc[k];                                                               \
      double s = (a[0] + a[2]) + (a[1] + a[3]);                                           \
      for (int64_t j = i; j + t + k < n; ++j) s += y[j] * y[j + t + k];                   \
      out[k] += s;                                                                        \
    }                                                                                     \
  }

GS_DIAG_LOOPS(_base, )
#ifdef GS_CPU_AVX2_PATH
GS_DIAG_LOOPS(_avx2, GS_TARGET_AVX2)
#endif

void lag8(const double* y, int64_t n, int64_t t, double* out) {
#ifdef GS_CPU_AVX2_PATH
  if (use_avx2()) return lag8_avx2(y, n, t, out);
#endif
  lag8_base(y, n, t, out);
}

#if defined(__GNUC__) || defined(__clang__)
#define GS_POPCNT_ATTR __attribute__((target("popcnt")))
#else
#define GS_POPCNT_ATTR
#endif

// sum_w popcount(b[w] & (b >> t)[w]) over the nw data words (b has one zero pad word).
GS_POPCNT_ATTR __attribute__((noinline)) int64_t pair_count_popcnt(const uint64_t* b, int64_t nw, int64_t t) {
  const int64_t q = t >> 6, r = t & 63;
  int64_t s = 0;
  if (r == 0) {
    for (int64_t w = 0; w + q < nw; ++w) s += __builtin_popcountll(b[w] & b[w + q]);
  } else {
    for (int64_t w = 0; w + q < nw; ++w) s += __builtin_popcountll(b[w] & ((b[w + q] >> r) | (b[w + q + 1] << (64 - r))));
  }
  return s;
}

// ---------------------------------------------------------------------------
// Geyer's stopping rule on the multi-chain autocorrelation (gensample/diagnostics.py
// _geyer_tau): pairs P_0 = 1 + rho_1, P_k = rho_2k + rho_2k+1; stop at the first k with
// not (P_k > 0 and 2k + 1 < n - 3).
struct GeyerWatch {
  double mean_var = 0, var_plus = 0;
  int64_t n = 0, k = 0;
  void init(double acov0, const double* chain_mean, int64_t m2, int64_t n_) {
    n = n_;
    k = 0;
    mean_var = acov0 * n / (n - 1.0);
    var_plus = mean_var * (n - 1.0) / n;
    if (m2 > 1) {
      double mu = 0;
      for (int64_t c = 0; c < m2; ++c) mu += chain_mean[c];
      mu /= m2;
      double v = 0;
      for (int64_t c = 0; c < m2; ++c) v += (chain_mean[c] - mu) * (chain_mean[c] - mu);
      var_plus += v / (m2 - 1);
    }
  }
  double rho(double a) const { return 1.0 - (mean_var - a) / var_plus; }
  // macov[0..nl) known: true once the sequence has stopped.
  bool stopped(const double* macov, int64_t nl) {
    for (; 2 * k + 1 < nl; ++k) {
      const double p = (k == 0) ? 1.0 + rho(macov[1]) : rho(macov[2 * k]) + rho(macov[2 * k + 1]);
      if (!(p > 0.0 && 2 * k + 1 < n - 3)) return true;
    }
    return false;
  }
};

// Centred rows y (m2, n) (chain means removed): mean over chains of the biased
// autocovariance at lags 0.. until Geyer's sequence stops or lmax lags; returns the lags
// computed; out[0..lmax) (NaN past them).
int64_t z_series_acov(const double* y, int64_t m2, int64_t n, const double* chain_mean, int64_t lmax, double* out,
                      double* acc) {
  std::fill(acc, acc + lmax + kLagBlock, 0.0);
  GeyerWatch gw;
  int64_t nl = 0;
  const double scale = 1.0 / (static_cast<double>(n) * m2);
  while (nl < lmax) {
    for (int64_t c = 0; c < m2; ++c) lag8(y + c * n, n, nl, acc + nl);
    const int64_t hi = std::min(lmax, nl + kLagBlock);
    for (int64_t t = nl; t < hi; ++t) out[t] = acc[t] * scale;
    if (nl == 0) gw.init(out[0], chain_mean, m2, n);
    nl = hi;
    if (gw.stopped(out, nl)) break;
  }
  for (int64_t t = nl; t < lmax; ++t) out[t] = std::numeric_limits<double>::quiet_NaN();
  return nl;
}

// Indicator rows as bitsets bits (m2, nw + 1) with counts cnt (m2): the same for the
// centred 0/1 series, exactly: acov_t = (C_t - m (A_t + B_t) + (n - t) m^2) / n with
// C_t the pairs of ones t apart, A_t the ones at i >= t, B_t those at i < n - t.
int64_t ind_series_acov(const uint64_t* bits, int64_t m2, int64_t n, int64_t nw, const int64_t* wpre,
                        const double* chain_mean, int64_t lmax, double* out) {
  GeyerWatch gw;
  int64_t nl = 0;
  auto prefix = [&](int64_t c, int64_t k) -> int64_t {  // ones among the first k bits of chain c
    const uint64_t* b = bits + c * (nw + 1);
    const int64_t w = k >> 6, r = k & 63;
    int64_t s = wpre[c * (nw + 1) + w];
    if (r) s += __builtin_popcountll(b[w] & ((uint64_t(1) << r) - 1));
    return s;
  };
  while (nl < lmax) {
    const int64_t hi = std::min(lmax, nl + kLagBlock);
    for (int64_t t = nl; t < hi; ++t) {
      double sum = 0;
      for (int64_t c = 0; c < m2; ++c) {
        const double m = chain_mean[c];
        const int64_t cnt = prefix(c, n);
        const double ct = static_cast<double>(pair_count_popcnt(bits + c * (nw + 1), nw, t));
        const double a = static_cast<double>(cnt - prefix(c, t));
        const double b = static_cast<double>(prefix(c, n - t));
        sum += (ct - m * (a + b) + static_cast<double>(n - t) * m * m) / n;
      }
      out[t] = sum / m2;
    }
    if (nl == 0) gw.init(out[0], chain_mean, m2, n);
    nl = hi;
    if (gw.stopped(out, nl)) break;
  }
  for (int64_t t = nl; t < lmax; ++t) out[t] = std::numeric_limits<double>::quiet_NaN();
  return nl;
}

// Sum of v[0..n) with four interleaved accumulators (no serial add-latency chain).
template <class F>
GS_ALWAYS_INLINE double sum4(int64_t n, const F& v) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += v(i);
    s1 += v(i + 1);
    s2 += v(i + 2);
    s3 += v(i + 3);
  }
  for (; i < n; ++i) s0 += v(i);
  return (s0 + s1) + (s2 + s3);
}

// In place: centre each chain of y (m2, n); chain means and variances (ddof 1).
void centre_chains(double* y, int64_t m2, int64_t n, double* mean, double* var) {
  for (int64_t c = 0; c < m2; ++c) {
    double* r = y + c * n;
    const double mu = sum4(n, [&](int64_t i) { return r[i]; }) / n;
    for (int64_t i = 0; i < n; ++i) r[i] -= mu;
    mean[c] = mu;
    if (var) var[c] = sum4(n, [&](int64_t i) { return r[i] * r[i]; }) / (n - 1);
  }
}

// ---------------------------------------------------------------------------
// the per-column pipeline

struct Geometry {
  int64_t M, N, D, M2, n, S, S_all, pb, L, lz, li;
  double p0, p1;
  int64_t flags;
  bool odd;
};

template <class T>
struct Scratch {
  std::vector<typename T::Item> a, b;
  std::vector<double> z, acc, f;
  std::vector<uint64_t> bits;
  std::vector<int64_t> wpre;
  std::vector<uint32_t> group;
  std::vector<uint32_t> hist;
};

std::vector<uint32_t>* offsets_buffer() {
  thread_local std::vector<uint32_t> off(kMaxRadix);
  return &off;
}

template <class T>
typename T::Item* radix_sort(typename T::Item* a, typename T::Item* b, int64_t n, uint32_t* hist) {
  using Item = typename T::Item;
  for (int p = 0; p < T::kPasses; ++p) {
    uint32_t* h = hist + p * T::kRadix;
    if (n == 0 || h[T::digit(a[0], p)] == static_cast<uint32_t>(n)) continue;  // one digit: nothing to do
    std::vector<uint32_t>& offv = *offsets_buffer();
    uint32_t* off = offv.data();
    uint32_t s = 0;
    for (int d = 0; d < T::kRadix; ++d) {
      off[d] = s;
      s += h[d];
    }
    constexpr int64_t kAhead = 64;  // prefetch the destination ahead (random stores miss; 64 beat 16 and 40)
    const int64_t nn = n > kAhead ? n - kAhead : 0;
    for (int64_t i = 0; i < nn; ++i) {
      __builtin_prefetch(b + off[T::digit(a[i + kAhead], p)], 1);
      const Item it = a[i];
      b[off[T::digit(it, p)]++] = it;
    }
    for (int64_t i = nn; i < n; ++i) {
      const Item it = a[i];
      b[off[T::digit(it, p)]++] = it;
    }
    std::swap(a, b);
  }
  return a;
}

template <class T>
void run_column(const typename T::Scalar* col, const Geometry& G, const double* ztab, int64_t d, Scratch<T>& sc,
                double* cmean, double* cvar, double* acov, int64_t* nlag, double* colstat, double* zout) {
  using Item = typename T::Item;
  const int64_t M = G.M, N = G.N, M2 = G.M2, n = G.n, h = G.n;
  const int64_t S_all = G.S_all;
  sc.a.resize(S_all);
  sc.b.resize(S_all);
  sc.hist.assign(static_cast<size_t>(T::kPasses) * T::kRadix, 0);
  Item* a = sc.a.data();
  uint32_t* hist = sc.hist.data();
  PhaseClock clk;
  // 1. items and histograms
  auto put = [&](const typename T::Scalar v, uint32_t pay, Item* dst) {
    const Item it = T::make(key_of(v), pay);
    for (int p = 0; p < T::kPasses; ++p) hist[p * T::kRadix + T::digit(it, p)]++;
    *dst = it;
  };
  for (int64_t c = 0; c < M; ++c) {
    const typename T::Scalar* x = col + c * N;
    Item* dst = a + c * N;
    const uint32_t c0 = static_cast<uint32_t>(2 * c) << G.pb, c1 = static_cast<uint32_t>(2 * c + 1) << G.pb;
    for (int64_t i = 0; i < h; ++i) put(x[i], c0 | static_cast<uint32_t>(i), dst + i);
    if (G.odd) put(x[h], (static_cast<uint32_t>(M2) << G.pb) | static_cast<uint32_t>(c), dst + h);
    for (int64_t i = N - h; i < N; ++i) put(x[i], c1 | static_cast<uint32_t>(i - (N - h)), dst + i);
  }
  clk.tick(kPhItems);
  // 2. sort
  a = radix_sort<T>(a, sc.b.data(), S_all, hist);
  clk.tick(kPhSort);
  // Non-finite draws sort to the ends (NaN keys lie beyond +-inf): count them there; the
  // caller raises on any.
  double* cs = colstat + d * kColStats;
  {
    int64_t nan_count = 0, inf_count = 0, lo = 0, hi = S_all;
    for (; lo < S_all && !std::isfinite(value_of(T::key(a[lo]))); ++lo) (std::isnan(value_of(T::key(a[lo]))) ? nan_count : inf_count)++;
    for (; hi > lo && !std::isfinite(value_of(T::key(a[hi - 1]))); --hi) (std::isnan(value_of(T::key(a[hi - 1]))) ? nan_count : inf_count)++;
    cs[8] = static_cast<double>(nan_count);
    cs[9] = static_cast<double>(inf_count);
    if (nan_count + inf_count) return;
  }
  auto val = [&](int64_t j) { return value_of(T::key(a[j])); };
  // 3. moments and quantiles over all draws
  // (mean and sd from the column itself: half the bytes of the items, no key decoding)
  if (G.flags & kMoments) {
    auto x = [&](int64_t j) { return static_cast<double>(col[j]); };
    const double mu = sum4(S_all, x) / S_all;
    const double q = sum4(S_all, [&](int64_t j) {
      const double e = x(j) - mu;
      return e * e;
    });
    cs[0] = mu;
    cs[1] = S_all > 1 ? std::sqrt(q / (S_all - 1)) : std::numeric_limits<double>::quiet_NaN();
  }
  auto quantile = [&](double p) {
    const double v = (S_all - 1) * p;
    if (v >= S_all - 1) return val(S_all - 1);
    if (v < 0) return val(0);
    const int64_t lo = static_cast<int64_t>(std::floor(v));
    const double g = v - lo;
    const double x0 = val(lo), x1 = val(lo + 1), df = x1 - x0;
    return g >= 0.5 ? x1 - df * (1 - g) : x0 + df * g;  // numpy's _lerp
  };
  const bool ind0 = G.flags & kInd0, ind1 = G.flags & kInd1;
  if (ind0) cs[3] = quantile(G.p0);
  if (ind1) cs[4] = quantile(G.p1);
  // remove the middle draws of odd chains
  int64_t S = S_all;
  if (G.odd) {
    const uint32_t marker = static_cast<uint32_t>(M2);
    int64_t w = 0;
    for (int64_t j = 0; j < S_all; ++j)
      if ((T::pay(a[j]) >> G.pb) != marker) a[w++] = a[j];
    S = w;
  }
  TORCH_INTERNAL_ASSERT(S == G.S);
  cs[5] = val(0);
  cs[6] = val(S - 1);
  const double med = (val((S - 1) / 2) + val(S / 2)) / 2;
  cs[2] = med;
  const uint32_t pmask = (uint32_t(1) << G.pb) - 1;
  auto lin = [&](uint32_t p) { return static_cast<int64_t>(p >> G.pb) * n + (p & pmask); };
  const double denom = static_cast<double>(S) + 0.25;
  auto zavg = [&](int64_t first, int64_t last) {  // 0-based positions of a tie group
    if (first == last) return ztab[first];
    const double r = static_cast<double>(first + last) * 0.5 + 1.0;
    return ::calc_ndtri<double>((r - 0.375) / denom);
  };
  clk.tick(kPhMoments);
  const bool bulk = G.flags & kBulkAcov, folded = G.flags & kFoldedAcov, zst = G.flags & kZStats;
  const bool outz = G.flags & kOutZ;
  sc.z.resize(S + 4);
  double* z = sc.z.data();
  double* cm = cmean + d * 4 * M2;
  double* cv = cvar + d * 2 * M2;
  double* ac = acov + d * 4 * G.L;
  int64_t* nl = nlag + d * 4;
  sc.acc.resize(G.L + kLagBlock);
  // 4. folded ranks, by sorted position: |s - median| over the sorted values falls (the
  // lower run, indices < k) then rises (the upper run), so its order is a merge of two
  // sorted runs. Two merges run interleaved (independent dependency chains): one from
  // the median outwards for the S/2 smallest, one from the extremes inwards for the
  // rest, both under one strict order (f, lower run first, then position) so that they
  // meet without overlap. Each writes the folded z of the element it takes at that
  // element's sorted index (zf[i]; sequential streams, no payload read); a tie group
  // (equal f: a range of each run) gets its average rank when it closes. The walk of
  // step 5 then reads zf[i] next to the bulk z of index i.
  const bool fold = folded || zst;
  const bool bwalk = bulk || zst || outz;
  double* zf = nullptr;
  bool fold_one = false;  // one tie group: every folded z is the same value
  if (fold) {
    const int64_t k = std::upper_bound(a, a + S, med, [&](double v, const Item& it) {
      return v < value_of(T::key(it));
    }) - a;
    const int64_t nlo = k, nhi = S - k;
    const double inf = std::numeric_limits<double>::infinity();
    // |s - median| of the t-th element of each run (flo[t], fhi[t]), -inf before and
    // +inf past the run; in z's memory (z is written by step 5 only)
    double* flo = z + 1;
    double* fhi = flo + nlo + 2;
    flo[-1] = fhi[-1] = -inf;
    flo[nlo] = fhi[nhi] = inf;
    for (int64_t t = 0; t < nlo; ++t) flo[t] = std::fabs(val(k - 1 - t) - med);
    for (int64_t t = 0; t < nhi; ++t) fhi[t] = std::fabs(val(k + t) - med);
    Item* other = (a == sc.a.data()) ? sc.b.data() : sc.a.data();
    zf = reinterpret_cast<double*>(other);  // S doubles fit in S_all >= S items
    // the members of a tie group: lower-run t in [l0, l1), upper-run t in [h0, h1)
    auto fix_group = [&](int64_t l0, int64_t l1, int64_t h0, int64_t h1, double zz) {
      for (int64_t t = l0; t < l1; ++t) zf[k - 1 - t] = zz;
      for (int64_t t = h0; t < h1; ++t) zf[k + t] = zz;
    };
    const int64_t hS = S / 2;
    int64_t tl = 0, th = 0;              // front: next of each run, ascending
    int64_t bl = nlo - 1, bh = nhi - 1;  // back: next of each run, descending
    double ffront = std::numeric_limits<double>::quiet_NaN(), fback = ffront;
    int64_t gf = 0, gtl = 0, gth = 0;                  // front's open group: first rank, run starts
    int64_t gb = S - 1, gbl = nlo - 1, gbh = nhi - 1;  // back's open group: last rank, run starts
    for (int64_t r = 0; r < S - hS; ++r) {
      // (selects as arithmetic, min/max: no branches, which would mispredict half the time)
      if (r < hS) {
        const double x0 = flo[tl], x1 = fhi[th];
        const int64_t lo = x0 <= x1;  // ties: lower run first
        const double f = std::min(x1, x0);
        if (f != ffront) {  // the open group [gf, r) closes
          if (r - gf > 1) fix_group(gtl, tl, gth, th, zavg(gf, r - 1));
          gf = r, gtl = tl, gth = th;
        }
        const int64_t i1 = k + th, i0 = k - 1 - tl;
        zf[i1 + lo * (i0 - i1)] = ztab[r];
        tl += lo;
        th += 1 - lo;
        ffront = f;
      }
      const double y0 = flo[bl], y1 = fhi[bh];
      const int64_t hi = y1 >= y0;  // descending: ties take the upper run first
      const double f = std::max(y0, y1);
      const int64_t pos = S - 1 - r;
      if (f != fback) {  // the open group (pos, gb] closes
        if (gb - pos > 1) fix_group(bl + 1, gbl + 1, bh + 1, gbh + 1, zavg(pos + 1, gb));
        gb = pos, gbl = bl, gbh = bh;
      }
      const int64_t j1 = k + bh, j0 = k - 1 - bl;
      zf[j0 + hi * (j1 - j0)] = ztab[pos];
      bh -= hi;
      bl -= 1 - hi;
      fback = f;
    }
    // the two open groups [gf, hS) and [hS, gb]: one group when they tie
    if (hS > 0 && ffront == fback) {
      const double zz = zavg(gf, gb);
      fix_group(gtl, tl, gth, th, zz);
      fix_group(bl + 1, gbl + 1, bh + 1, gbh + 1, zz);
      fold_one = (gf == 0 && gb == S - 1);
    } else {
      if (hS - gf > 1) fix_group(gtl, tl, gth, th, zavg(gf, hS - 1));
      if (gb - hS > 0) fix_group(bl + 1, gbl + 1, bh + 1, gbh + 1, zavg(hS, gb));
      fold_one = (hS == 0);
    }
    cs[7] = fold_one ? 1.0 : 0.0;
    clk.tick(kPhFolded);
  }
  // 5. one walk over the sorted items: ties (equal keys) share the average rank, as
  // scipy.stats.rankdata('average'); the bulk z (and the folded z of step 4) either
  // scattered to the split layout (for their autocovariances or output) or summed per
  // chain (sum and sum of squares, in L1: all R-hat needs).
  if (bwalk || fold) {
    const bool bscat = bulk || outz, fscat = folded || outz;
    double* fsum = cm + M2;
    double* fsq = cv + M2;
    double* zF = nullptr;
    if (bwalk && !bscat) std::fill(cm, cm + M2, 0.0), std::fill(cv, cv + M2, 0.0);
    if (fold && !fscat) std::fill(fsum, fsum + M2, 0.0), std::fill(fsq, fsq + M2, 0.0);
    if (fold && fscat) {
      sc.f.resize(S + 4);
      zF = sc.f.data();
    }
    bool single = false;
    auto walk = [&](auto bmode, auto fmode) {  // 0 none, 1 sum per chain, 2 scatter
      constexpr int bm = decltype(bmode)::value, fm = decltype(fmode)::value;
      for (int64_t j = 0; j < S;) {
        const auto key = T::key(a[j]);
        int64_t e = j + 1;
        while (e < S && T::key(a[e]) == key) ++e;
        const double zz = bm ? zavg(j, e - 1) : 0.0;
        for (int64_t i = j; i < e; ++i) {
          const uint32_t p = T::pay(a[i]);
          if (bm == 2 || fm == 2) {
            const uint32_t pn = T::pay(a[std::min(i + 64, S - 1)]);
            if (bm == 2) __builtin_prefetch(z + lin(pn), 1);
            if (fm == 2) __builtin_prefetch(zF + lin(pn), 1);
          }
          if (bm == 2) z[lin(p)] = zz;
          if (bm == 1) {
            cm[p >> G.pb] += zz;
            cv[p >> G.pb] += zz * zz;
          }
          if (fm == 2) zF[lin(p)] = zf[i];
          if (fm == 1) {
            const double y = zf[i];
            fsum[p >> G.pb] += y;
            fsq[p >> G.pb] += y * y;
          }
        }
        single = (j == 0 && e == S);
        j = e;
      }
    };
    using I0 = std::integral_constant<int, 0>;
    using I1 = std::integral_constant<int, 1>;
    using I2 = std::integral_constant<int, 2>;
    const int bm = bwalk ? (bscat ? 2 : 1) : 0, fm = fold ? (fscat ? 2 : 1) : 0;
    auto walk_f = [&](auto bmode) {
      if (fm == 0) walk(bmode, I0{});
      else if (fm == 1) walk(bmode, I1{});
      else walk(bmode, I2{});
    };
    if (bm == 0) walk_f(I0{});
    else if (bm == 1) walk_f(I1{});
    else walk_f(I2{});
    if (outz && bwalk) std::memcpy(zout + d * (folded ? 2 : 1) * S, z, S * sizeof(double));
    if (outz && folded) std::memcpy(zout + (d * 2 + 1) * S, zF, S * sizeof(double));
    clk.tick(kPhBulkWalk);
    // Per-chain mean and variance of a z series: centred in place when its values were
    // scattered (scat), exact for a constant series (one tie group), else finished from
    // the sums and sums of squares that the walk accumulated.
    auto chain_moments = [&](bool scat, bool constant, double* zs, double* sum, double* sq) {
      if (scat) {
        centre_chains(zs, M2, n, sum, sq);
      } else if (constant) {
        std::fill(sum, sum + M2, zavg(0, S - 1));
        std::fill(sq, sq + M2, 0.0);
      } else {
        for (int64_t c = 0; c < M2; ++c) {
          const double mu = sum[c] / n;
          sq[c] = std::max(0.0, (sq[c] - sum[c] * mu) / (n - 1));
          sum[c] = mu;
        }
      }
    };
    if (bwalk) {
      chain_moments(bscat, single, z, cm, cv);
      if (bulk) nl[0] = z_series_acov(z, M2, n, cm, G.lz, ac, sc.acc.data());
    }
    if (fold) {
      chain_moments(fscat, fold_one, zF, fsum, fsq);
      if (folded) nl[1] = z_series_acov(zF, M2, n, fsum, G.lz, ac + G.L, sc.acc.data());
    }
    clk.tick(kPhBulkLags);
  }
  // 6. quantile indicators
  const int64_t nw = (n + 63) / 64;
  for (int s = 0; s < 2; ++s) {
    if (!(s == 0 ? ind0 : ind1)) continue;
    const double q = cs[3 + s];
    const int64_t k =
        std::upper_bound(a, a + S, q, [&](double v, const Item& it) { return v < value_of(T::key(it)); }) - a;
    sc.bits.assign(static_cast<size_t>(M2) * (nw + 1), 0);
    uint64_t* bits = sc.bits.data();
    if (2 * k <= S) {
      for (int64_t j = 0; j < k; ++j) {
        const uint32_t p = T::pay(a[j]), pos = p & pmask;
        bits[(p >> G.pb) * (nw + 1) + (pos >> 6)] |= uint64_t(1) << (pos & 63);
      }
    } else {
      for (int64_t c = 0; c < M2; ++c) {
        uint64_t* b = bits + c * (nw + 1);
        for (int64_t w = 0; w < nw; ++w) b[w] = ~uint64_t(0);
        if (n & 63) b[nw - 1] = (uint64_t(1) << (n & 63)) - 1;
      }
      for (int64_t j = k; j < S; ++j) {
        const uint32_t p = T::pay(a[j]), pos = p & pmask;
        bits[(p >> G.pb) * (nw + 1) + (pos >> 6)] &= ~(uint64_t(1) << (pos & 63));
      }
    }
    sc.wpre.resize(static_cast<size_t>(M2) * (nw + 1));
    double* m = cm + (2 + s) * M2;
    for (int64_t c = 0; c < M2; ++c) {
      int64_t acc = 0;
      for (int64_t w = 0; w <= nw; ++w) {
        sc.wpre[c * (nw + 1) + w] = acc;
        if (w < nw) acc += __builtin_popcountll(bits[c * (nw + 1) + w]);
      }
      m[c] = static_cast<double>(acc) / n;
    }
    nl[2 + s] = ind_series_acov(bits, M2, n, nw, sc.wpre.data(), m, G.li, ac + (2 + s) * G.L);
    clk.tick(kPhInd);
  }
}

int bit_length(uint64_t v) {
  int b = 0;
  while (v) {
    ++b;
    v >>= 1;
  }
  return b;
}

// (R, D) rows -> (D, R) columns, in parallel over blocks of rows.
// float32 with R % 4 == 0 and a 16-byte aligned output: 4 x 4 blocks transposed in SSE
// registers, 16-byte loads and stores (measured 0.09 s against 0.12 s for the scalar
// loop on 64 x 10000 x 100; streaming stores were no faster).
template <class S>
void transpose_rows(const S* x, int64_t R, int64_t D, S* out) {
  constexpr int64_t kB = 256;
  bool sse = false;
#if defined(__SSE2__)
  sse = std::is_same<S, float>::value && R % 4 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
#endif
  at::parallel_for(0, (R + kB - 1) / kB, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kB, r1 = std::min(R, r0 + kB);
      int64_t d = 0;
#if defined(__SSE2__)
      if constexpr (std::is_same<S, float>::value) {
        if (sse) {
          for (; d + 4 <= D; d += 4) {
            for (int64_t r = r0; r < r1; r += 4) {  // r1 - r0 is a multiple of 4 (R is)
              __m128 v0 = _mm_loadu_ps(x + r * D + d), v1 = _mm_loadu_ps(x + (r + 1) * D + d);
              __m128 v2 = _mm_loadu_ps(x + (r + 2) * D + d), v3 = _mm_loadu_ps(x + (r + 3) * D + d);
              _MM_TRANSPOSE4_PS(v0, v1, v2, v3);
              _mm_store_ps(out + d * R + r, v0);
              _mm_store_ps(out + (d + 1) * R + r, v1);
              _mm_store_ps(out + (d + 2) * R + r, v2);
              _mm_store_ps(out + (d + 3) * R + r, v3);
            }
          }
        }
      }
#endif
      for (; d < D; ++d) {
        S* o = out + d * R;
        for (int64_t r = r0; r < r1; ++r) o[r] = x[r * D + d];
      }
    }
  });
}

// Per-thread scratch kept across calls (a few buffers of the column size): fresh ones
// would pay their first-touch page faults in every call.
template <class Sc>
Sc& thread_scratch() {
  static thread_local Sc sc;
  return sc;
}

template <class F, class Sc>
void parallel_columns(int64_t ncols, const F& f) {
  if (ncols <= 0) return;
  const int64_t nw = std::min<int64_t>(at::get_num_threads(), ncols);
  if (nw <= 1 || at::in_parallel_region()) {
    Sc& sc = thread_scratch<Sc>();
    for (int64_t t = 0; t < ncols; ++t) f(t, sc);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, nw, 1, [&](int64_t w0, int64_t w1) {
    Sc& sc = thread_scratch<Sc>();
    for (int64_t w = w0; w < w1; ++w)
      for (int64_t t = next.fetch_add(1); t < ncols; t = next.fetch_add(1)) f(t, sc);
  });
}

template <class T>
void rank_summary_impl(const at::Tensor& x, const Geometry& G, const double* ztab, double* cmean, double* cvar,
                       double* acov, int64_t* nlag, double* colstat, double* zout) {
  using Scalar = typename T::Scalar;
  const Scalar* base = x.data_ptr<Scalar>();
  at::Tensor xt;
  const Scalar* cols = base;
  const auto t0 = std::chrono::steady_clock::now();
  if (G.D > 1) {
    xt = empty_output({G.D, G.M * G.N}, x.options());  // pooled: no first-touch faults on repeat calls
    transpose_rows<Scalar>(base, G.M * G.N, G.D, xt.data_ptr<Scalar>());
    cols = xt.data_ptr<Scalar>();
  }
  g_transpose_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto body = [&](int64_t d, Scratch<T>& sc) {
    run_column<T>(cols + d * G.M * G.N, G, ztab, d, sc, cmean, cvar, acov, nlag, colstat, zout);
  };
  parallel_columns<decltype(body), Scratch<T>>(G.D, body);
}

// Phi^-1((j + 1 - 3/8) / (S + 1/4)), j = 0..S-1; the last table computed is kept.
std::shared_ptr<const std::vector<double>> z_table(int64_t S) {
  static std::mutex mu;
  static std::shared_ptr<const std::vector<double>> last;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (last && static_cast<int64_t>(last->size()) == S) return last;
  }
  auto t = std::make_shared<std::vector<double>>(S);
  const double denom = static_cast<double>(S) + 0.25;
  double* zt = t->data();
  at::parallel_for(0, S, 4096, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) zt[j] = ::calc_ndtri<double>((static_cast<double>(j + 1) - 0.375) / denom);
  });
  std::lock_guard<std::mutex> lock(mu);
  last = t;
  return last;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> diag_rank_summary_cpu(
    const at::Tensor& x, double p0, double p1, int64_t flags, int64_t max_lag_z, int64_t max_lag_ind) {
  TORCH_CHECK(x.device().is_cpu(), kOp, "x must be a CPU tensor");
  TORCH_CHECK(x.dim() == 3, kOp, "x must be (chains, draws, columns), got ", x.dim(), " dims");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, kOp,
              "x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(x.is_contiguous(), kOp, "x must be contiguous");
  TORCH_CHECK(max_lag_z >= 1 && max_lag_ind >= 1, kOp, "max_lag_z and max_lag_ind must be >= 1");
  Geometry G;
  G.M = x.size(0);
  G.N = x.size(1);
  G.D = x.size(2);
  TORCH_CHECK(G.M >= 1 && G.N >= 4, kOp, "need at least 1 chain and 4 draws, got shape ", x.sizes());
  G.n = G.N / 2;
  G.M2 = 2 * G.M;
  G.S = G.M2 * G.n;
  G.S_all = G.M * G.N;
  G.odd = (G.N % 2) != 0;
  G.pb = bit_length(static_cast<uint64_t>(std::max<int64_t>(G.n - 1, G.M - 1)));
  TORCH_CHECK(G.pb + bit_length(static_cast<uint64_t>(G.M2)) <= 31 && G.S_all < (int64_t(1) << 32), kOp,
              "too many draws per column for 32-bit positions: shape ", x.sizes());
  G.lz = std::min(max_lag_z + 1, G.n);
  G.li = std::min(max_lag_ind + 1, G.n);
  G.L = std::max(G.lz, G.li);
  G.p0 = p0;
  G.p1 = p1;
  G.flags = flags;
  auto f64 = x.options().dtype(at::kDouble);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  at::Tensor cmean = at::full({G.D, 4, G.M2}, nan, f64);
  at::Tensor cvar = at::full({G.D, 2, G.M2}, nan, f64);
  at::Tensor acov = at::full({G.D, 4, G.L}, nan, f64);
  at::Tensor nlag = at::full({G.D, 4}, 0, x.options().dtype(at::kLong));
  at::Tensor col = at::full({G.D, kColStats}, nan, f64);
  at::Tensor zout = (flags & kOutZ) ? at::empty({G.D, (flags & kFoldedAcov) ? 2 : 1, G.M2, G.n}, f64)
                                    : at::empty({0}, f64);
  const auto tz = std::chrono::steady_clock::now();
  // z of the integer ranks 1..S, shared by all columns (and by the next call of the same
  // S: repeated calls, e.g. ess and rhat of one draw set, skip S ndtri evaluations)
  const std::shared_ptr<const std::vector<double>> ztab_p = z_table(G.S);
  const std::vector<double>& ztab = *ztab_p;
  double* zo = zout.numel() ? zout.data_ptr<double>() : nullptr;
  const auto t0 = std::chrono::steady_clock::now();
  const double ztab_s = std::chrono::duration<double>(t0 - tz).count();
  if (profiling())
    for (auto& p : g_phase_ns) p = 0;
  if (x.scalar_type() == at::kFloat)
    rank_summary_impl<Items32>(x, G, ztab.data(), cmean.data_ptr<double>(), cvar.data_ptr<double>(),
                               acov.data_ptr<double>(), nlag.data_ptr<int64_t>(), col.data_ptr<double>(), zo);
  else
    rank_summary_impl<Items64>(x, G, ztab.data(), cmean.data_ptr<double>(), cvar.data_ptr<double>(),
                               acov.data_ptr<double>(), nlag.data_ptr<int64_t>(), col.data_ptr<double>(), zo);
  if (profiling()) {
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "diag_rank_summary %lld x %lld x %lld: z table %.3f s, transpose %.3f s, columns %.3f s (wall); thread time per phase:", (long long)G.M,
                 (long long)G.N, (long long)G.D, ztab_s, g_transpose_s, wall - g_transpose_s);
    for (int p = 0; p < kPhCount; ++p) std::fprintf(stderr, " %s %.3f s;", kPhaseNames[p], g_phase_ns[p] * 1e-9);
    std::fprintf(stderr, "\n");
  }
  return {cmean, cvar, acov, nlag, col, zout};
}

struct AcovScratch {
  std::vector<double> y, acc, mean;
};

std::tuple<at::Tensor, at::Tensor> diag_mean_acov_cpu(const at::Tensor& y, int64_t max_lag) {
  TORCH_CHECK(y.device().is_cpu() && y.scalar_type() == at::kDouble && y.dim() == 3 && y.is_contiguous(),
              "gensample::diag_mean_acov (cpu): y must be a contiguous float64 (rows, chains, draws) CPU tensor");
  TORCH_CHECK(max_lag >= 1, "gensample::diag_mean_acov (cpu): max_lag must be >= 1");
  const int64_t D = y.size(0), M = y.size(1), n = y.size(2);
  TORCH_CHECK(n >= 2 && M >= 1, "gensample::diag_mean_acov (cpu): need at least 1 chain and 2 draws");
  const int64_t L = std::min(max_lag + 1, n);
  auto f64 = y.options();
  at::Tensor acov = at::empty({D, L}, f64);
  at::Tensor nlag = at::empty({D}, y.options().dtype(at::kLong));
  const double* src = y.data_ptr<double>();
  double* ac = acov.data_ptr<double>();
  int64_t* nl = nlag.data_ptr<int64_t>();
  auto body = [&](int64_t d, AcovScratch& sc) {
    sc.y.assign(src + d * M * n, src + (d + 1) * M * n);
    sc.mean.resize(M);
    sc.acc.resize(L + kLagBlock);
    centre_chains(sc.y.data(), M, n, sc.mean.data(), nullptr);
    nl[d] = z_series_acov(sc.y.data(), M, n, sc.mean.data(), L, ac + d * L, sc.acc.data());
  };
  parallel_columns<decltype(body), AcovScratch>(D, body);
  return {acov, nlag};
}

}  // namespace
}  // namespace cpu
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CPU, m) {
  m.impl("diag_rank_summary", &gensample::cpu::diag_rank_summary_cpu);
  m.impl("diag_mean_acov", &gensample::cpu::diag_mean_acov_cpu);
}
