// CPU kernels of the block Gibbs (RBM) ops: gibbs_half_step, gaussian_half_step,
// gibbs_sweeps. Per-element math: gensample/gibbs.h; the torch backend
// (gensample/ops/gibbs.py) is the specification, matched bit for bit whenever the GEMM
// is exact (binary inputs, dyadic weights).
//
// * Half-steps: at::mm into the probability output, then one fused parallel epilogue
//   (bias, beta, gs_sigmoid, the vectorized Philox uniforms / normals, compare) over
//   contiguous element ranges, in chunks that stay in L1.
// * gibbs_sweeps: each task owns a block of chains and runs all 2k + 1 half-steps on
//   it (no barrier between half-steps). States are binary, so x @ W is the sum of the
//   rows of W where x = 1: the epilogue of each half-step also compacts the indices of
//   the units that fired, and the next half-step adds those rows of a zero-padded copy
//   of W (or of W^T) with register-blocked vector adds, a column tile at a time (the
//   tile of W stays in L1/L2 while the block's chains reuse it). Any summation order is
//   allowed by the contract; with dyadic weights every order is exact.
// Hot loops are compiled for AVX2 and for the baseline ISA (use_avx2()); no FMA.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/clone.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_kernels.h"
#include "gensample/gibbs.h"

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

// ---------------------------------------------------------------------------
// Per-row epilogues (compiled per ISA below). acc may alias prob.

// prob[j] = sigmoid(beta (acc[j] + bias[j])), state[j] = u[j] < prob[j].
GS_ALWAYS_INLINE void bernoulli_row_impl(const float* acc, const float* GS_RESTRICT bias, float beta,
                                         const float* GS_RESTRICT u, float* GS_RESTRICT state, float* prob,
                                         int64_t n) {
#pragma GCC ivdep
  for (int64_t j = 0; j < n; ++j) {
    float s, p;
    gibbs::bernoulli_epilogue(acc[j], bias[j], beta, u[j], s, p);
    prob[j] = p;
    state[j] = s;
  }
}

// v[j] = bias + sigma * acc + noise_std * eps; mean[j] = bias + sigma * acc. acc may alias mean.
GS_ALWAYS_INLINE void gaussian_row_impl(const float* acc, const float* GS_RESTRICT bias,
                                        const float* GS_RESTRICT sigma, const float* GS_RESTRICT noise_std,
                                        const float* GS_RESTRICT eps, float* GS_RESTRICT v, float* mean, int64_t n) {
#pragma GCC ivdep
  for (int64_t j = 0; j < n; ++j) {
    float x, m;
    gibbs::gaussian_epilogue(acc[j], bias[j], sigma[j], noise_std[j], eps[j], x, m);
    mean[j] = m;
    v[j] = x;
  }
}

// Indices j with state[j] != 0, in increasing order; returns their count.
GS_ALWAYS_INLINE int32_t compact_impl(const float* GS_RESTRICT state, int64_t n, int32_t* GS_RESTRICT idx) {
  int32_t c = 0;
  for (int64_t j = 0; j < n; ++j) {
    idx[c] = static_cast<int32_t>(j);
    c += state[j] != 0.0f ? 1 : 0;
  }
  return c;
}

// out[0 .. 8 NV) = sum of the rows W + idx[q] * ldw (q < n), 8 NV columns. Two
// accumulator sets (even / odd list positions) give independent add chains.
template <int NV>
GS_ALWAYS_INLINE void sum_rows_impl(const float* GS_RESTRICT W, int64_t ldw, const int32_t* GS_RESTRICT idx,
                                    int32_t n, float* GS_RESTRICT out) {
  vec a[NV], b[NV];
  const vec zero = VecOf<float>::splat(0.0f);
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) a[v] = b[v] = zero;
  int32_t q = 0;
  for (; q + 1 < n; q += 2) {
    const float* r0 = W + static_cast<int64_t>(idx[q]) * ldw;
    const float* r1 = W + static_cast<int64_t>(idx[q + 1]) * ldw;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      a[v] += *reinterpret_cast<const uvec*>(r0 + 8 * v);
      b[v] += *reinterpret_cast<const uvec*>(r1 + 8 * v);
    }
  }
  if (q < n) {
    const float* r0 = W + static_cast<int64_t>(idx[q]) * ldw;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) a[v] += *reinterpret_cast<const uvec*>(r0 + 8 * v);
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) *reinterpret_cast<uvec*>(out + 8 * v) = a[v] + b[v];
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

// Row sums over a whole padded row (ld multiple of 8), tiles of 64 columns.
template <bool kBinary>
GS_ALWAYS_INLINE void gemm_row_impl(const float* W, int64_t ldw, const int32_t* idx, const float* x, int32_t n,
                                    float* out) {
  for (int64_t j0 = 0; j0 < ldw; j0 += 64) {
    const int nv = static_cast<int>(std::min<int64_t>(8, (ldw - j0) / 8));
#define GS_CASE(K)                                            \
  case K:                                                     \
    if (kBinary)                                              \
      sum_rows_impl<K>(W + j0, ldw, idx, n, out + j0);        \
    else                                                      \
      axpy_rows_impl<K>(W + j0, ldw, idx, x, n, out + j0);    \
    break;
    switch (nv) {
      GS_CASE(1) GS_CASE(2) GS_CASE(3) GS_CASE(4) GS_CASE(5) GS_CASE(6) GS_CASE(7) GS_CASE(8)
    }
#undef GS_CASE
  }
}

// A 64-column tile [j0, j0 + 8 nv) of the rows of several chains.
GS_ALWAYS_INLINE void gemm_tile_impl(const float* W, int64_t ldw, int64_t j0, int nv, int64_t rows,
                                     const int32_t* idx, int64_t ldi, const int32_t* cnt, float* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* ir = idx + r * ldi;
    float* o = out + r * ldo + j0;
#define GS_CASE(K)                                    \
  case K:                                             \
    sum_rows_impl<K>(W + j0, ldw, ir, cnt[r], o);     \
    break;
    switch (nv) {
      GS_CASE(1) GS_CASE(2) GS_CASE(3) GS_CASE(4) GS_CASE(5) GS_CASE(6) GS_CASE(7) GS_CASE(8)
    }
#undef GS_CASE
  }
}

#define GS_DEFINE_VARIANTS(SFX, ATTR)                                                                              \
  ATTR __attribute__((noinline)) void bernoulli_row##SFX(const float* acc, const float* bias, float beta,          \
                                                         const float* u, float* state, float* prob, int64_t n) {   \
    bernoulli_row_impl(acc, bias, beta, u, state, prob, n);                                                        \
  }                                                                                                                \
  ATTR __attribute__((noinline)) void gaussian_row##SFX(const float* acc, const float* bias, const float* sigma,   \
                                                        const float* noise_std, const float* eps, float* v,        \
                                                        float* mean, int64_t n) {                                  \
    gaussian_row_impl(acc, bias, sigma, noise_std, eps, v, mean, n);                                               \
  }                                                                                                                \
  ATTR __attribute__((noinline)) int32_t compact##SFX(const float* state, int64_t n, int32_t* idx) {               \
    return compact_impl(state, n, idx);                                                                            \
  }                                                                                                                \
  ATTR __attribute__((noinline)) void gemm_rows_binary##SFX(const float* W, int64_t ldw, const int32_t* idx,       \
                                                            int32_t n, float* out) {                               \
    gemm_row_impl<true>(W, ldw, idx, nullptr, n, out);                                                             \
  }                                                                                                                \
  ATTR __attribute__((noinline)) void gemm_rows_general##SFX(const float* W, int64_t ldw, const int32_t* idx,      \
                                                             const float* x, int32_t n, float* out) {              \
    gemm_row_impl<false>(W, ldw, idx, x, n, out);                                                                  \
  }                                                                                                                \
  ATTR __attribute__((noinline)) void gemm_tile##SFX(const float* W, int64_t ldw, int64_t j0, int nv,              \
                                                     int64_t rows, const int32_t* idx, int64_t ldi,                \
                                                     const int32_t* cnt, float* out, int64_t ldo) {                \
    gemm_tile_impl(W, ldw, j0, nv, rows, idx, ldi, cnt, out, ldo);                                                 \
  }

GS_DEFINE_VARIANTS(_base, )
#if defined(GS_CPU_AVX2_PATH)
GS_DEFINE_VARIANTS(_avx2, GS_TARGET_AVX2)
#define GS_PICK(name) (use_avx2() ? name##_avx2 : name##_base)
#else
#define GS_PICK(name) (name##_base)
#endif
#undef GS_DEFINE_VARIANTS

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif

// ---------------------------------------------------------------------------
// Fused epilogues over a contiguous element range [e0, e1) of a (rows x n) output:
// element e = r * n + j uses stream element e. acc / prob / state / v / mean point at
// row 0; acc has row stride lda, the outputs n.

constexpr int64_t kChunk = 2048;  // stream elements per fill (8 KiB: stays in L1)

// Rows are numbered from rbase: acc, state and prob point at row rbase (acc with row
// stride lda, state and prob with n). prob may be acc when lda == n.
void bernoulli_range(uint64_t key, uint64_t off, int64_t e0, int64_t e1, int64_t n, int64_t rbase, const float* acc,
                     int64_t lda, const float* bias, float beta, float* state, float* prob, float* ubuf) {
  auto row_fn = GS_PICK(bernoulli_row);
  const int64_t eb = rbase * n;
  for (int64_t c0 = e0; c0 < e1; c0 += kChunk) {
    const int64_t c1 = std::min(e1, c0 + kChunk);
    uniform_fill(key, off, static_cast<uint64_t>(c0), c1 - c0, ubuf);
    for (int64_t e = c0; e < c1;) {
      const int64_t r = e / n, j = e - r * n;
      const int64_t len = std::min(n - j, c1 - e);
      row_fn(acc + (r - rbase) * lda + j, bias + j, beta, ubuf + (e - c0), state + (e - eb), prob + (e - eb), len);
      e += len;
    }
  }
}

void gaussian_range(uint64_t key, uint64_t off, int64_t e0, int64_t e1, int64_t n, float* mean, const float* bias,
                    const float* sigma, const float* noise_std, float* v, float* ebuf) {
  auto row_fn = GS_PICK(gaussian_row);
  for (int64_t c0 = e0; c0 < e1; c0 += kChunk) {
    const int64_t c1 = std::min(e1, c0 + kChunk);
    normal_fill(key, off, static_cast<uint64_t>(c0), c1 - c0, ebuf);
    for (int64_t e = c0; e < c1;) {
      const int64_t r = e / n, j = e - r * n;
      const int64_t len = std::min(n - j, c1 - e);
      row_fn(mean + e, bias + j, sigma + j, noise_std + j, ebuf + (e - c0), v + e, mean + e, len);
      e += len;
    }
  }
}

// Grain (in rows) for about 16k output elements per task.
int64_t row_grain(int64_t n) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)); }

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
// Ops

std::tuple<at::Tensor, at::Tensor> gibbs_half_step_cpu(const at::Tensor& x, const at::Tensor& weight,
                                                       const at::Tensor& bias, const at::Tensor& seed, double beta,
                                                       bool transpose) {
  check_f32(x, "x", 2);
  check_f32(weight, "weight", 2);
  const int64_t n_in = transpose ? weight.size(1) : weight.size(0);
  const int64_t n_out = transpose ? weight.size(0) : weight.size(1);
  TORCH_CHECK(x.size(1) == n_in, kOp, "x must have ", n_in, " columns, got shape ", x.sizes());
  check_len(bias, "bias", n_out);
  uint64_t key, offset;
  read_seed(seed, key, offset);
  const int64_t B = x.size(0);
  at::Tensor prob = empty_output({B, n_out}, x.options());
  at::Tensor state = empty_output({B, n_out}, x.options());
  if (B == 0 || n_out == 0) return {state, prob};
  at::mm_out(prob, x, transpose ? weight.t() : weight);
  const at::Tensor b = bias.contiguous();
  const float* bp = b.const_data_ptr<float>();
  float* pp = prob.mutable_data_ptr<float>();
  float* sp = state.mutable_data_ptr<float>();
  const float fb = static_cast<float>(beta);
  at::parallel_for(0, B, row_grain(n_out), [&](int64_t r0, int64_t r1) {
    alignas(64) float ubuf[kChunk];
    bernoulli_range(key, offset, r0 * n_out, r1 * n_out, n_out, 0, pp, n_out, bp, fb, sp, pp, ubuf);
  });
  return {state, prob};
}

std::tuple<at::Tensor, at::Tensor> gaussian_half_step_cpu(const at::Tensor& h, const at::Tensor& weight,
                                                          const at::Tensor& bias, const at::Tensor& sigma,
                                                          const at::Tensor& noise_std, const at::Tensor& seed) {
  check_f32(h, "h", 2);
  check_f32(weight, "weight", 2);
  const int64_t n_vis = weight.size(0), n_hid = weight.size(1);
  TORCH_CHECK(h.size(1) == n_hid, kOp, "h must have ", n_hid, " columns, got shape ", h.sizes());
  check_len(bias, "bias", n_vis);
  check_len(sigma, "sigma", n_vis);
  check_len(noise_std, "noise_std", n_vis);
  uint64_t key, offset;
  read_seed(seed, key, offset);
  const int64_t B = h.size(0);
  at::Tensor mean = empty_output({B, n_vis}, h.options());
  at::Tensor v = empty_output({B, n_vis}, h.options());
  if (B == 0 || n_vis == 0) return {v, mean};
  at::mm_out(mean, h, weight.t());
  const at::Tensor b = bias.contiguous(), s = sigma.contiguous(), ns = noise_std.contiguous();
  const float *bp = b.const_data_ptr<float>(), *spp = s.const_data_ptr<float>(), *np = ns.const_data_ptr<float>();
  float* mp = mean.mutable_data_ptr<float>();
  float* vp = v.mutable_data_ptr<float>();
  at::parallel_for(0, B, row_grain(n_vis), [&](int64_t r0, int64_t r1) {
    alignas(64) float ebuf[kChunk];
    gaussian_range(key, offset, r0 * n_vis, r1 * n_vis, n_vis, mp, bp, spp, np, vp, ebuf);
  });
  return {v, mean};
}

// ---------------------------------------------------------------------------
// gibbs_sweeps

int64_t round8(int64_t n) { return (n + 7) / 8 * 8; }

// One layer's GEMM input: a packed copy of W (rows = input units, ld multiple of 8).
struct Layer {
  const float* W;  // (n_in, ld), zero padding
  int64_t ld;
  int64_t n_in, n_out;
  const float* bias;
};

// Per-task scratch for a block of up to nb chains.
struct Scratch {
  std::vector<float> acc;          // nb x max(ld)
  std::vector<int32_t> idx_v, idx_h;  // nb x n_vis, nb x n_hid: indices of active units
  std::vector<int32_t> cnt_v, cnt_h;
  std::vector<float> ubuf;
};

// acc[r, :] = states[r, :] @ W for the block's rows from their index lists, a column
// tile at a time so the tile of W is reused by every chain of the block.
void block_gemm(const Layer& L, int64_t rows, const int32_t* idx, int64_t ldi, const int32_t* cnt, float* acc) {
  auto tile_fn = GS_PICK(gemm_tile);
  for (int64_t j0 = 0; j0 < L.ld; j0 += 64) {
    const int nv = static_cast<int>(std::min<int64_t>(8, (L.ld - j0) / 8));
    tile_fn(L.W, L.ld, j0, nv, rows, idx, ldi, cnt, acc, L.ld);
  }
}

// Bernoulli half-step of a block (rows [r0, r0 + rows) of the whole batch): epilogue
// from acc, states into state (row stride n_out, pointing at the block's first row),
// probabilities into prob (same layout) or a scratch, index lists of the new states.
void block_epilogue(uint64_t key, uint64_t off, int64_t r0, int64_t rows, const Layer& L, float beta,
                    const float* acc, float* state, float* prob, int32_t* idx_out, int32_t* cnt_out, float* ubuf) {
  const int64_t n = L.n_out;
  auto compact_fn = GS_PICK(compact);
  // rows of the block in chunks of whole rows (at least one) of about kChunk elements
  const int64_t per = std::max<int64_t>(1, kChunk / std::max<int64_t>(1, n));
  for (int64_t a = 0; a < rows; a += per) {
    const int64_t b = std::min(rows, a + per);
    // element range of rows [a, b) of the block in the whole output
    bernoulli_range(key, off, (r0 + a) * n, (r0 + b) * n, n, r0, acc, L.ld, L.bias, beta, state, prob, ubuf);
    for (int64_t r = a; r < b; ++r) cnt_out[r] = compact_fn(state + r * n, n, idx_out + r * n);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gibbs_sweeps_cpu(const at::Tensor& v0, const at::Tensor& weight,
                                                                const at::Tensor& visible_bias,
                                                                const at::Tensor& hidden_bias,
                                                                const at::Tensor& seed, int64_t k, double beta) {
  check_f32(v0, "v", 2);
  check_f32(weight, "weight", 2);
  const int64_t n_vis = weight.size(0), n_hid = weight.size(1);
  TORCH_CHECK(v0.size(1) == n_vis, kOp, "v must have ", n_vis, " columns, got shape ", v0.sizes());
  check_len(visible_bias, "visible_bias", n_vis);
  check_len(hidden_bias, "hidden_bias", n_hid);
  TORCH_CHECK(k >= 0 && k < (int64_t(1) << 30), kOp, "k must be in [0, 2^30), got ", k);
  uint64_t key, offset;
  read_seed(seed, key, offset);
  const int64_t B = v0.size(0);
  at::Tensor v_out = empty_output({B, n_vis}, v0.options());
  at::Tensor h_out = empty_output({B, n_hid}, v0.options());
  at::Tensor hp_out = empty_output({B, n_hid}, v0.options());
  if (B == 0) return {v_out, h_out, hp_out};
  const at::Tensor vin = v0.contiguous();
  if (n_vis == 0 || n_hid == 0) {
    // degenerate layers (the GEMMs are zero): the chain through the half-step op
    auto sub = [&](int64_t t) {
      at::Tensor s = seed.clone();
      s.mutable_data_ptr<int64_t>()[1] = static_cast<int64_t>(offset + (static_cast<uint64_t>(t) << 32));
      return s;
    };
    at::Tensor v = vin;
    auto h = gibbs_half_step_cpu(v, weight, hidden_bias, sub(0), beta, false);
    for (int64_t s = 1; s <= k; ++s) {
      v = std::get<0>(gibbs_half_step_cpu(std::get<0>(h), weight, visible_bias, sub(2 * s - 1), beta, true));
      h = gibbs_half_step_cpu(v, weight, hidden_bias, sub(2 * s), beta, false);
    }
    v_out.copy_(v);
    h_out.copy_(std::get<0>(h));
    hp_out.copy_(std::get<1>(h));
    return {v_out, h_out, hp_out};
  }
  // Packed, zero-padded W (visible -> hidden) and W^T (hidden -> visible).
  const int64_t ldh = round8(n_hid), ldv = round8(n_vis);
  at::Tensor Wv = at::zeros({n_vis, ldh}, v0.options());
  Wv.narrow(1, 0, n_hid).copy_(weight);
  at::Tensor Wh = at::zeros({n_hid, ldv}, v0.options());
  Wh.narrow(1, 0, n_vis).copy_(weight.t());
  const at::Tensor bv = visible_bias.contiguous(), bh = hidden_bias.contiguous();
  const Layer to_h{Wv.const_data_ptr<float>(), ldh, n_vis, n_hid, bh.const_data_ptr<float>()};
  const Layer to_v{Wh.const_data_ptr<float>(), ldv, n_hid, n_vis, bv.const_data_ptr<float>()};

  const float* vin_p = vin.const_data_ptr<float>();
  float* vp = v_out.mutable_data_ptr<float>();
  float* hp = h_out.mutable_data_ptr<float>();
  float* hpp = hp_out.mutable_data_ptr<float>();
  const float fb = static_cast<float>(beta);

  // Chains per block: about 192 KiB of per-chain scratch (acc, index lists), at least
  // 16 chains, and at most an even share of the batch per thread.
  const int64_t per_chain = 4 * (std::max(ldv, ldh) + n_vis + n_hid);
  const int64_t nthreads = std::max<int64_t>(1, at::get_num_threads());
  int64_t nb = std::max<int64_t>(16, (192 * 1024) / per_chain);
  nb = std::max<int64_t>(1, std::min(nb, (B + nthreads - 1) / nthreads));
  const int64_t nblocks = (B + nb - 1) / nb;

  at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
    Scratch S;
    S.acc.resize(static_cast<size_t>(nb * std::max(ldv, ldh)));
    S.idx_v.resize(static_cast<size_t>(nb * n_vis));
    S.idx_h.resize(static_cast<size_t>(nb * n_hid));
    S.cnt_v.resize(static_cast<size_t>(nb));
    S.cnt_h.resize(static_cast<size_t>(nb));
    S.ubuf.resize(kChunk);
    std::vector<float> pv_scratch(static_cast<size_t>(nb * n_vis));
    auto general_fn = GS_PICK(gemm_rows_general);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r0 = blk * nb, rows = std::min(nb, B - r0);
      // t = 0: h_0 from v_0 (binary rows: row sums; other rows: general products).
      for (int64_t r = 0; r < rows; ++r) {
        const float* x = vin_p + (r0 + r) * n_vis;
        int32_t* ir = S.idx_v.data() + r * n_vis;
        int32_t c = 0;
        bool binary = true;
        for (int64_t i = 0; i < n_vis; ++i) {
          const float xi = x[i];
          binary = binary && (xi == 0.0f || xi == 1.0f);
          ir[c] = static_cast<int32_t>(i);
          c += xi != 0.0f ? 1 : 0;
        }
        S.cnt_v[r] = c;
        if (!binary) {
          general_fn(to_h.W, to_h.ld, ir, x, c, S.acc.data() + r * to_h.ld);
          S.cnt_v[r] = -1;  // marks a row done by the general path
        }
      }
      {
        // binary rows through the tiled row sums (rows done above are skipped: count 0
        // would overwrite them, so run the tiles only when every row is binary, else
        // per row)
        bool all_binary = true;
        for (int64_t r = 0; r < rows; ++r) all_binary = all_binary && S.cnt_v[r] >= 0;
        if (all_binary) {
          block_gemm(to_h, rows, S.idx_v.data(), n_vis, S.cnt_v.data(), S.acc.data());
        } else {
          auto bin_fn = GS_PICK(gemm_rows_binary);
          for (int64_t r = 0; r < rows; ++r)
            if (S.cnt_v[r] >= 0) bin_fn(to_h.W, to_h.ld, S.idx_v.data() + r * n_vis, S.cnt_v[r], S.acc.data() + r * to_h.ld);
        }
      }
      float* vb = vp + r0 * n_vis;
      float* hb = hp + r0 * n_hid;
      float* hpb = hpp + r0 * n_hid;
      block_epilogue(key, offset, r0, rows, to_h, fb, S.acc.data(), hb, hpb, S.idx_h.data(), S.cnt_h.data(),
                     S.ubuf.data());
      if (k == 0) std::memcpy(vb, vin_p + r0 * n_vis, static_cast<size_t>(rows * n_vis) * sizeof(float));
      for (int64_t s = 1; s <= k; ++s) {
        const uint64_t off_v = offset + (static_cast<uint64_t>(2 * s - 1) << 32);
        const uint64_t off_h = offset + (static_cast<uint64_t>(2 * s) << 32);
        block_gemm(to_v, rows, S.idx_h.data(), n_hid, S.cnt_h.data(), S.acc.data());
        block_epilogue(key, off_v, r0, rows, to_v, fb, S.acc.data(), vb, pv_scratch.data(), S.idx_v.data(),
                       S.cnt_v.data(), S.ubuf.data());
        block_gemm(to_h, rows, S.idx_v.data(), n_vis, S.cnt_v.data(), S.acc.data());
        block_epilogue(key, off_h, r0, rows, to_h, fb, S.acc.data(), hb, hpb, S.idx_h.data(), S.cnt_h.data(),
                       S.ubuf.data());
      }
    }
  });
  return {v_out, h_out, hp_out};
}

}  // namespace
}  // namespace cpu
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CPU, m) {
  m.impl("gibbs_half_step", &gensample::cpu::gibbs_half_step_cpu);
  m.impl("gaussian_half_step", &gensample::cpu::gaussian_half_step_cpu);
  m.impl("gibbs_sweeps", &gensample::cpu::gibbs_sweeps_cpu);
}
