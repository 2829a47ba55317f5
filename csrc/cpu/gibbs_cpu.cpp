// CPU kernels of the block Gibbs (RBM) ops: gibbs_half_step, gaussian_half_step,
// gibbs_sweeps. Per-element math: gensample/gibbs.h; the torch backend
// (gensample/ops/gibbs.py) is the specification, matched bit for bit whenever the GEMM
// is exact (binary inputs, dyadic weights).
//
// * Half-steps: at::mm into the probability output, then one fused parallel epilogue
//   (bias, beta, gs_sigmoid, the vectorized Philox uniforms / normals, compare) over
//   contiguous element ranges, in chunks that stay in L1.
// * gibbs_sweeps: a thread takes a block of chains (up to 64) and runs all 2k + 1
//   half-steps on it (no barrier between half-steps; blocks handed out from a shared
//   counter). States are binary, so x @ W is a sum of rows of W, with no multiplies:
//   - small layers (n_in * n_out <= 4096, e.g. 64 x 32): tables of the sums of every
//     pattern of 4 consecutive input units (lut_gemm_impl), one table row per 4 inputs;
//   - larger layers with fewer than 64 chains per thread block loop the half-step op
//     (at::mm + the fused epilogue: ATen's multi-threaded GEMM does better there);
//     otherwise (or with GENSAMPLE_CPU_GIBBS_ROWSUM=1) the epilogue of each half-step also compacts the indices of the units
//     that fired (AVX2 movemask + table), and the next half-step adds those rows of a
//     tile-major, zero-padded copy of W (or W^T), 64 columns x 64 rows at a time, so
//     the block of W stays in L1 while every chain of the block reuses it.
//   Any summation order is allowed by the contract; with dyadic weights every order
//   is exact. Probabilities are divided out only for the returned layer; other draws
//   compare u (1 + e) with 1 and divide only near a tie (draw_from_denom: same bits).
// Hot loops are compiled for AVX2 and for the baseline ISA (use_avx2()); no FMA.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/clone.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_kernels.h"
#include "gibbs_block.h"
#include "gensample/gibbs.h"
#if defined(GS_CPU_AVX2_PATH)
#include <immintrin.h>
#endif

namespace gensample {
namespace cpu {
namespace {

// Bernoulli epilogue of n elements of one row (columns j0 .. j0 + n of the layer):
// prob = sigmoid(beta (acc + bias)), state = u < prob; with kCompact, appends the
// columns that fired to idx from position c and returns the new count. acc may alias
// prob. 32 elements per step (four independent vectors), then 8 at a time, then the
// scalar header.
template <bool kAvx2, bool kProb, bool kCompact, int N>
GS_ALWAYS_INLINE int32_t bernoulli_step(const float* acc, const float* GS_RESTRICT bias, float beta,
                                        const float* GS_RESTRICT u, float* GS_RESTRICT state, float* prob, int64_t j,
                                        int32_t j0, int32_t* GS_RESTRICT idx, int32_t c) {
  const vec one = VecOf<float>::splat(1.0f), zero = VecOf<float>::splat(0.0f);
  vec a[N], d[N];
  GS_EACH(i) a[i] = (VecOf<float>::load_f32(acc + j + 8 * i) + VecOf<float>::load_f32(bias + j + 8 * i)) * beta;
  sigmoid_denom<kAvx2, N>(a, d);
  GS_EACH(i) {
    const vec u8 = VecOf<float>::load_f32(u + j + 8 * i);
    ivec m;
    if (kProb) {
      const vec p = one / d[i];
      *reinterpret_cast<uvec*>(prob + j + 8 * i) = p;
      m = u8 < p;
    } else {
      m = draw_from_denom<kAvx2>(u8, d[i]);
    }
    *reinterpret_cast<uvec*>(state + j + 8 * i) = m ? one : zero;
    if (kCompact) c = compact8<kAvx2>(m, j0 + static_cast<int32_t>(j + 8 * i), idx, c);
  }
  return c;
}

template <bool kAvx2, bool kProb, bool kCompact>
inline int32_t bernoulli_seg_impl(const float* acc, const float* GS_RESTRICT bias, float beta,
                                  const float* GS_RESTRICT u, float* GS_RESTRICT state, float* prob, int64_t n,
                                  int32_t j0, int32_t* GS_RESTRICT idx, int32_t c) {
  int64_t j = 0;
  for (; j + 32 <= n; j += 32)
    c = bernoulli_step<kAvx2, kProb, kCompact, 4>(acc, bias, beta, u, state, prob, j, j0, idx, c);
  for (; j + 8 <= n; j += 8)
    c = bernoulli_step<kAvx2, kProb, kCompact, 1>(acc, bias, beta, u, state, prob, j, j0, idx, c);
  for (; j < n; ++j) {
    float sv, pv;
    gibbs::bernoulli_epilogue(acc[j], bias[j], beta, u[j], sv, pv);
    if (kProb) prob[j] = pv;
    state[j] = sv;
    if (kCompact) {
      idx[c] = j0 + static_cast<int32_t>(j);
      c += sv != 0.0f ? 1 : 0;
    }
  }
  return c;
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

// rows rows of n elements (acc row stride lda; u, state, prob row stride n); with
// kCompact the index lists of the rows go to idx + r * ldi (counts to cnt[r]). One call
// per block of rows amortizes the constants and lets the out-of-order core overlap rows.
template <bool kAvx2, bool kProb, bool kCompact>
inline void bernoulli_rows_impl(const float* acc, int64_t lda, const float* bias, float beta, const float* u,
                                float* state, float* prob, int64_t n, int64_t rows, int32_t* idx, int64_t ldi,
                                int32_t* cnt) {
  for (int64_t r = 0; r < rows; ++r)
    cnt[r] = bernoulli_seg_impl<kAvx2, kProb, kCompact>(acc + r * lda, bias, beta, u + r * n, state + r * n,
                                                     prob + r * n, n, 0, idx + r * ldi, 0);
}

#define GS_DEFINE_VARIANTS(SFX, ATTR, AVX2)                                                                        \
  ATTR __attribute__((noinline, flatten)) void bernoulli_row##SFX(const float* acc, const float* bias, float beta,          \
                                                         const float* u, float* state, float* prob, int64_t n) {   \
    bernoulli_seg_impl<AVX2, true, false>(acc, bias, beta, u, state, prob, n, 0, nullptr, 0);                      \
  }                                                                                                                \
  ATTR __attribute__((noinline, flatten)) int32_t bernoulli_seg_prob##SFX(const float* acc, const float* bias, float beta,  \
                                                                 const float* u, float* state, float* prob,        \
                                                                 int64_t n, int32_t j0, int32_t* idx, int32_t c) { \
    return bernoulli_seg_impl<AVX2, true, true>(acc, bias, beta, u, state, prob, n, j0, idx, c);                   \
  }                                                                                                                \
  ATTR __attribute__((noinline, flatten)) int32_t bernoulli_seg##SFX(const float* acc, const float* bias, float beta,       \
                                                            const float* u, float* state, float* prob, int64_t n,  \
                                                            int32_t j0, int32_t* idx, int32_t c) {                 \
    return bernoulli_seg_impl<AVX2, false, true>(acc, bias, beta, u, state, prob, n, j0, idx, c);                  \
  }                                                                                                                \
  ATTR __attribute__((noinline, flatten)) void bernoulli_rows_prob##SFX(                                                       \
      const float* acc, int64_t lda, const float* bias, float beta, const float* u, float* state, float* prob,     \
      int64_t n, int64_t rows, int32_t* idx, int64_t ldi, int32_t* cnt) {                                          \
    bernoulli_rows_impl<AVX2, true, true>(acc, lda, bias, beta, u, state, prob, n, rows, idx, ldi, cnt);            \
  }                                                                                                                \
  ATTR __attribute__((noinline, flatten)) void bernoulli_rows##SFX(                                                       \
      const float* acc, int64_t lda, const float* bias, float beta, const float* u, float* state, float* prob,     \
      int64_t n, int64_t rows, int32_t* idx, int64_t ldi, int32_t* cnt) {                                          \
    bernoulli_rows_impl<AVX2, false, true>(acc, lda, bias, beta, u, state, prob, n, rows, idx, ldi, cnt);            \
  }                                                                                                                \
  ATTR __attribute__((noinline, flatten)) void bernoulli_rows_prob_nc##SFX(                                                       \
      const float* acc, int64_t lda, const float* bias, float beta, const float* u, float* state, float* prob,     \
      int64_t n, int64_t rows, int32_t* idx, int64_t ldi, int32_t* cnt) {                                          \
    bernoulli_rows_impl<AVX2, true, false>(acc, lda, bias, beta, u, state, prob, n, rows, idx, ldi, cnt);            \
  }                                                                                                                \
  ATTR __attribute__((noinline, flatten)) void bernoulli_rows_nc##SFX(                                                       \
      const float* acc, int64_t lda, const float* bias, float beta, const float* u, float* state, float* prob,     \
      int64_t n, int64_t rows, int32_t* idx, int64_t ldi, int32_t* cnt) {                                          \
    bernoulli_rows_impl<AVX2, false, false>(acc, lda, bias, beta, u, state, prob, n, rows, idx, ldi, cnt);            \
  }                                                                                                                \
  ATTR __attribute__((noinline, flatten)) void lut_gemm##SFX(const float* T, int64_t ld, int64_t n_in,          \
                                                             int64_t rows, const float* x, int64_t ldx,             \
                                                             float* out) {                                          \
    lut_gemm_impl<AVX2>(T, ld, n_in, rows, x, ldx, out);                                                           \
  }                                                                                                                \
  ATTR __attribute__((noinline, flatten)) void gaussian_row##SFX(const float* acc, const float* bias, const float* sigma,   \
                                                        const float* noise_std, const float* eps, float* v,        \
                                                        float* mean, int64_t n) {                                  \
    gaussian_row_impl(acc, bias, sigma, noise_std, eps, v, mean, n);                                               \
  }                                                                                                                \
  ATTR __attribute__((noinline, flatten)) int32_t compact_input##SFX(const float* x, int64_t n, int32_t* idx) {             \
    return compact_input_impl<AVX2>(x, n, idx);                                                                    \
  }                                                                                                                \
  ATTR __attribute__((noinline, flatten)) void gemm_rows_general##SFX(const float* W, int64_t ld, int64_t n_in,   \
                                                                      const int32_t* idx, const float* x,          \
                                                                      int32_t n, float* out) {                     \
    gemm_row_general_impl(W, ld, n_in, idx, x, n, out);                                                            \
  }                                                                                                                \
  ATTR __attribute__((noinline, flatten)) void block_gemm##SFX(const float* W, int64_t ldw, int64_t n_in, int64_t rows,     \
                                                      const int32_t* idx, int64_t ldi, const int32_t* bounds,      \
                                                      int64_t ldb, float* out) {                                   \
    block_gemm_impl(W, ldw, n_in, rows, idx, ldi, bounds, ldb, out);                                               \
  }

GS_DEFINE_VARIANTS(_base, , false)
#if defined(GS_CPU_AVX2_PATH)
GS_DEFINE_VARIANTS(_avx2, GS_TARGET_AVX2, true)
#define GS_PICK(name) (use_avx2() ? name##_avx2 : name##_base)
#else
#define GS_PICK(name) (name##_base)
#endif
#undef GS_DEFINE_VARIANTS
#undef GS_EACH

// ---------------------------------------------------------------------------
// Fused epilogues over a contiguous element range [e0, e1) of a (rows x n) output:
// element e = r * n + j uses stream element e. acc / prob / state / v / mean point at
// row 0; acc has row stride lda, the outputs n. (kChunk: gibbs_block.h.)

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
// gibbs_sweeps (Layer, pack_tiles, build_lut, make_bounds: gibbs_block.h)

// A block of chains (rows [r0, r0 + rows) of the batch) owned by one task. Index lists
// of the active units of each chain's current visible and hidden states (sorted),
// and for each list the positions where row chunk ch of W begins (bounds).
// Scratch of a task's blocks, kept per thread across calls (grow-only): fresh
// allocations of this size would cost page faults on every call.
struct BlockBuffers {
  std::vector<float> acc, ubuf, pv;
  std::vector<int32_t> idx_v, idx_h, cnt_v, cnt_h, bnd_v, bnd_h;
};

BlockBuffers& thread_buffers() {
  thread_local BlockBuffers b;
  return b;
}


struct Block {
  int64_t r0 = 0, rows = 0;
  int64_t nb, n_vis, n_hid, ldv_idx, ldh_idx, nch_v, nch_h;
  BlockBuffers& buf;
  std::vector<float>& acc;
  std::vector<int32_t>&idx_v, &idx_h, &cnt_v, &cnt_h, &bnd_v, &bnd_h;
  std::vector<float>&ubuf, &pv;
  Block(int64_t nb_, int64_t nv, int64_t nh, int64_t ld_max)
      : nb(nb_), n_vis(nv), n_hid(nh), ldv_idx(nv + 8), ldh_idx(nh + 8),
        nch_v(std::max<int64_t>(1, (nv + kChunkRows - 1) / kChunkRows)),
        nch_h(std::max<int64_t>(1, (nh + kChunkRows - 1) / kChunkRows)),
        buf(thread_buffers()),
        acc(at_least(buf.acc, nb * ld_max)),
        idx_v(at_least(buf.idx_v, nb * ldv_idx)),
        idx_h(at_least(buf.idx_h, nb * ldh_idx)),
        cnt_v(at_least(buf.cnt_v, nb)),
        cnt_h(at_least(buf.cnt_h, nb)),
        bnd_v(at_least(buf.bnd_v, nb * (nch_v + 1))),
        bnd_h(at_least(buf.bnd_h, nb * (nch_h + 1))),
        ubuf(at_least(buf.ubuf, kChunk)),
        pv(at_least(buf.pv, nb * nv)) {}
};



// acc = states @ W for the block's chains, from their index lists.
void run_gemm(const Layer& L, Block& S, const int32_t* idx, int64_t ldi, const int32_t* cnt, int32_t* bounds,
              int64_t nch, const float* states) {
  if (L.T != nullptr) {  // small layer: tables, from the binary states (row stride n_in)
    GS_PICK(lut_gemm)(L.T, L.ld, L.n_in, S.rows, states, L.n_in, S.acc.data());
    return;
  }
  make_bounds(S.rows, idx, ldi, cnt, nch, bounds);
  GS_PICK(block_gemm)(L.W, L.ld, L.n_in, S.rows, idx, ldi, bounds, nch + 1, S.acc.data());
}

// Bernoulli epilogue of the block from S.acc: states into state (the block's first row,
// row stride n_out), probabilities into prob (same layout) when kProb, index lists of
// the new states into idx / cnt (row stride ldi).
void run_epilogue(uint64_t key, uint64_t off, const Layer& L, float beta, Block& S, float* state, float* prob,
                  int32_t* idx, int64_t ldi, int32_t* cnt, bool with_prob, bool compact) {
  const int64_t n = L.n_out;
  auto seg_fn = with_prob ? GS_PICK(bernoulli_seg_prob) : GS_PICK(bernoulli_seg);
  // index lists only for a consumer layer without tables
  auto rows_fn = compact ? (with_prob ? GS_PICK(bernoulli_rows_prob) : GS_PICK(bernoulli_rows))
                         : (with_prob ? GS_PICK(bernoulli_rows_prob_nc) : GS_PICK(bernoulli_rows_nc));
  float* ubuf = S.ubuf.data();
  const float* acc = S.acc.data();
  if (n <= kChunk) {
    const int64_t per = kChunk / n;  // whole rows per fill
    for (int64_t a = 0; a < S.rows; a += per) {
      const int64_t b = std::min(S.rows, a + per);
      uniform_fill(key, off, static_cast<uint64_t>((S.r0 + a) * n), (b - a) * n, ubuf);
      rows_fn(acc + a * L.ld, L.ld, L.bias, beta, ubuf, state + a * n, prob + a * n, n, b - a, idx + a * ldi, ldi,
              cnt + a);
    }
  } else {
    for (int64_t r = 0; r < S.rows; ++r) {
      int32_t c = 0;
      for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
        const int64_t len = std::min(kChunk, n - j0);
        uniform_fill(key, off, static_cast<uint64_t>((S.r0 + r) * n + j0), len, ubuf);
        c = seg_fn(acc + r * L.ld + j0, L.bias + j0, beta, ubuf, state + r * n + j0, prob + r * n + j0, len,
                   static_cast<int32_t>(j0), idx + r * ldi, c);
      }
      cnt[r] = c;
    }
  }
}

// The chain of one block: h_0 from v_0, then k sweeps (see the schema in gibbs_ops.cpp).
void run_block(uint64_t key, uint64_t offset, int64_t k, float beta, const Layer& to_h, const Layer& to_v,
               const float* vin, float* vout, float* hout, float* hpout, Block& S) {
  const int64_t nv = to_h.n_in, nh = to_h.n_out;
  float* vb = vout + S.r0 * nv;
  float* hb = hout + S.r0 * nh;
  float* hpb = hpout + S.r0 * nh;
  // t = 0: lists of v_0; non-binary rows (check_binary=False) take the general GEMM.
  auto compact_fn = GS_PICK(compact_input);
  bool all_binary = true;
  for (int64_t r = 0; r < S.rows; ++r) {
    const int32_t c = compact_fn(vin + (S.r0 + r) * nv, nv, S.idx_v.data() + r * S.ldv_idx);
    S.cnt_v[r] = c;
    all_binary = all_binary && c >= 0;
  }
  if (all_binary) {
    run_gemm(to_h, S, S.idx_v.data(), S.ldv_idx, S.cnt_v.data(), S.bnd_v.data(), S.nch_v, vin + S.r0 * nv);
  } else {
    auto general_fn = GS_PICK(gemm_rows_general);
    for (int64_t r = 0; r < S.rows; ++r) {
      const int32_t c = S.cnt_v[r] >= 0 ? S.cnt_v[r] : -1 - S.cnt_v[r];
      general_fn(to_h.W, to_h.ld, to_h.n_in, S.idx_v.data() + r * S.ldv_idx, vin + (S.r0 + r) * nv, c,
                 S.acc.data() + r * to_h.ld);
    }
  }
  run_epilogue(key, offset, to_h, beta, S, hb, hpb, S.idx_h.data(), S.ldh_idx, S.cnt_h.data(), k == 0, to_v.T == nullptr);
  if (k == 0) std::memcpy(vb, vin + S.r0 * nv, static_cast<size_t>(S.rows * nv) * sizeof(float));
  for (int64_t s = 1; s <= k; ++s) {
    const uint64_t off_v = offset + (static_cast<uint64_t>(2 * s - 1) << 32);
    const uint64_t off_h = offset + (static_cast<uint64_t>(2 * s) << 32);
    run_gemm(to_v, S, S.idx_h.data(), S.ldh_idx, S.cnt_h.data(), S.bnd_h.data(), S.nch_h, hb);
    run_epilogue(key, off_v, to_v, beta, S, vb, S.pv.data(), S.idx_v.data(), S.ldv_idx, S.cnt_v.data(), false, to_h.T == nullptr);
    run_gemm(to_h, S, S.idx_v.data(), S.ldv_idx, S.cnt_v.data(), S.bnd_v.data(), S.nch_v, vb);
    // only the last hidden layer's probabilities are returned
    run_epilogue(key, off_h, to_h, beta, S, hb, hpb, S.idx_h.data(), S.ldh_idx, S.cnt_h.data(), s == k, to_v.T == nullptr);
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
  const int64_t ldh = round8(n_hid), ldv = round8(n_vis);
  // small layers get tables (lut_gemm_impl), both or neither
  const bool lut = n_vis * ldh <= kLutMaxElems && n_hid * ldv <= kLutMaxElems;
  // Chains per block: up to 64 (each (row chunk x column tile) block of W is reused by
  // every chain of the block), about 4 blocks per thread.
  const int64_t nthreads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t nb = std::max<int64_t>(8, std::min<int64_t>(64, (B + 4 * nthreads - 1) / (4 * nthreads)));
  // Larger layers: the row sums reuse each block of W for only nb chains; with fewer
  // than 64 chains per block ATen's multi-threaded GEMM does as well or better (784x500
  // on 2 threads, medians: B = 64 loop 2.3 to 3.0 ms vs row sums 3.0 to 3.2 ms; B = 1024
  // row sums 20.1 ms vs loop 22.5 to 23.3 ms). So small batches loop the half-step op
  // (at::mm + the fused parallel epilogue). GENSAMPLE_CPU_GIBBS_ROWSUM=1 / 0 forces the
  // row sums / the loop (the two are bit-identical whenever the GEMM is exact).
  const char* rowsum_var = std::getenv("GENSAMPLE_CPU_GIBBS_ROWSUM");
  const bool rowsum = rowsum_var != nullptr && rowsum_var[0] != '\0' ? rowsum_var[0] == '1' : nb >= 64;
  if (n_vis == 0 || n_hid == 0 || (!lut && !rowsum)) {
    // the chain through the half-step op (degenerate layers: the GEMMs are zero)
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
  // W (visible -> hidden) and W^T (hidden -> visible), packed tile-major, zero-padded.
  at::Tensor Wv = pack_tiles(weight, ldh);
  at::Tensor Wh = pack_tiles(weight.t(), ldv);
  const at::Tensor bv = visible_bias.contiguous(), bh = hidden_bias.contiguous();
  const at::Tensor Tv = lut ? build_lut(weight, ldh) : at::Tensor();
  const at::Tensor Th = lut ? build_lut(weight.t(), ldv) : at::Tensor();
  const Layer to_h{Wv.const_data_ptr<float>(), ldh, n_vis, n_hid, bh.const_data_ptr<float>(),
                   lut ? Tv.const_data_ptr<float>() : nullptr};
  const Layer to_v{Wh.const_data_ptr<float>(), ldv, n_hid, n_vis, bv.const_data_ptr<float>(),
                   lut ? Th.const_data_ptr<float>() : nullptr};
  const float* vin_p = vin.const_data_ptr<float>();
  float* vp = v_out.mutable_data_ptr<float>();
  float* hp = h_out.mutable_data_ptr<float>();
  float* hpp = hp_out.mutable_data_ptr<float>();
  const float fb = static_cast<float>(beta);

  // Threads take blocks from a shared counter, so a thread that is descheduled (a busy
  // machine) or slowed does not hold the others up; which thread runs a block does not
  // change its bits.
  const int64_t nblocks = (B + nb - 1) / nb;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min(nthreads, nblocks), 1, [&](int64_t, int64_t) {
    Block S(nb, n_vis, n_hid, std::max(ldv, ldh));
    for (int64_t blk = next.fetch_add(1); blk < nblocks; blk = next.fetch_add(1)) {
      S.r0 = blk * nb;
      S.rows = std::min(nb, B - S.r0);
      run_block(key, offset, k, fb, to_h, to_v, vin_p, vp, hp, hpp, S);
    }
  });
  return {v_out, h_out, hp_out};
}

int64_t count_nonbinary_cpu(const at::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, kOp, "count_nonbinary: x must be float32, got ", x.scalar_type());
  const at::Tensor xc = x.contiguous();
  const uint32_t* p = reinterpret_cast<const uint32_t*>(xc.const_data_ptr<float>());
  const int64_t n = xc.numel();
  std::atomic<int64_t> bad{0};
  at::parallel_for(0, n, 1 << 16, [&](int64_t i0, int64_t i1) {
    int64_t c = 0;
    for (int64_t i = i0; i < i1; ++i) {  // vectorizes: x is +-0 or +1.0f (0x3F800000)
      c += ((p[i] & 0x7FFFFFFFu) != 0u) & (p[i] != 0x3F800000u);
    }
    bad.fetch_add(c, std::memory_order_relaxed);
  });
  return bad.load();
}

}  // namespace
}  // namespace cpu
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CPU, m) {
  m.impl("gibbs_half_step", &gensample::cpu::gibbs_half_step_cpu);
  m.impl("gaussian_half_step", &gensample::cpu::gaussian_half_step_cpu);
  m.impl("gibbs_sweeps", &gensample::cpu::gibbs_sweeps_cpu);
  m.impl("count_nonbinary", &gensample::cpu::count_nonbinary_cpu);
}
