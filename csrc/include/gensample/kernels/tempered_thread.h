// Per-thread bodies of the CUDA tempered-family kernels (tempered_sweeps, ais_rbm).
//
// The math is tempered.h's (hidden_logit, visible_logit, gaussian_mean, gs_softplus, ...)
// and random.h's stream; this file only decides which thread computes which element.
// csrc/cuda/tempered_cuda.cu calls these functions from its kernels; tests/cuda_sim/
// tempered_sim_driver.cpp runs them over every (blockIdx, threadIdx) of the same launches
// on the CPU (tests/test_tempered_cuda_sim.py).
//
// Both ops are a host-side loop of at::mm GEMMs, each followed by ONE fused epilogue
// launch (no host synchronization: betas, seed and offset are read on the device):
//
// * Flat epilogue (tempered_epilogue_thread), after acc = x @ W or h @ W^T: the output
//   (B, N) is contiguous, so stream element i = r * N + j is the flat index. Thread-group
//   g (grid-stride) is one Philox call on counter offset + t * 2^32 + g and elements
//   4g .. 4g + 3 (16-byte vectors when aligned). Row r's inverse temperature is
//   beta[r * beta_stride] (per-chain: stride 1; one AIS step: a pointer to betas[k] and
//   stride 0). Kinds:
//     kHidden:       a = acc + c written back over acc (the a_k output); h = u < sigmoid(a beta)
//     kBernVisible:  v = u < sigmoid((acc + b) beta + (1 - beta) b_A)
//     kGaussVisible: v = (b + sigma (acc beta)) + sigma eps, and x = v / sigma (the next
//                    hidden GEMM's input, so no separate division pass)
// * AIS hidden step (ais_hidden_row_thread + ais_hidden_row_finish): one block per chain
//   (grid-stride over rows); the block's threads take the Philox groups of the row's
//   stream range [r * nh, (r + 1) * nh) (a group straddling two rows is computed by both
//   rows' blocks, each keeping its own lanes), draw h at beta_k and accumulate in float64
//   the softplus differences sp(a beta_k) - sp(a beta_{k-1}) and (Bernoulli) the
//   ell term sum_i (b_i - b_A,i) v_i over the row's visible units. The partial sums go to
//   shared memory; after a barrier thread 0 adds them in thread order (deterministic) to
//   log_w[r]:  log_w[r] += sum_t sp_t + (beta_k - beta_{k-1}) * sum_t ell_t.
#pragma once

#include "gensample/kernels/launch.h"
#include "gensample/random.h"
#include "gensample/tempered.h"

namespace gensample {
namespace kernels {

// Offset of half-step t of a multi-step draw (gensample.random.substream).
GS_HOST_DEVICE uint64_t tempered_step_offset(const SeedPair& sp, int64_t t) {
  return sp.offset + (static_cast<uint64_t>(t) << 32);
}

// ============================ flat epilogue ===================================

enum TemperedKind : int { kHidden = 0, kBernVisible = 1, kGaussVisible = 2 };

struct TemperedEpilogueArgs {
  float* acc;           // (B, N) GEMM result; kHidden: overwritten with a = acc + c
  float* state;         // (B, N) h or v
  float* x_out;         // kGaussVisible: (B, N) v / sigma
  const float* bias;    // (N,) c or b
  const float* base;    // (N,) b_A (kBernVisible)
  const float* sigma;   // (N,) kGaussVisible
  const float* beta;    // beta of row r at beta[r * beta_stride]
  int64_t beta_stride;  // 1 (per chain) or 0 (one AIS step)
  const int64_t* seed;  // (seed, offset) on the device
  int64_t seed_stride;
  int64_t step;  // substream index t
  int64_t B, N;
  bool vec;  // every (B, N) buffer allows 16-byte vector access
};

struct TemperedLaunch {
  int64_t groups;  // ceil(B * N / 4)
  int64_t blocks;
  int threads;
};

GS_HOST_DEVICE TemperedLaunch tempered_launch(int64_t numel, int sm_count) {
  TemperedLaunch c;
  c.groups = numel / 4 + (numel % 4 != 0 ? 1 : 0);
  c.threads = kThreads;
  c.blocks = grid_blocks(ceil_div(c.groups, kThreads), sm_count);
  return c;
}

inline bool tempered_vec_ok(const float* acc, const float* state, const float* x_out) {
  return aligned_to(acc, 16) && aligned_to(state, 16) && (x_out == nullptr || aligned_to(x_out, 16));
}

// Group g: elements f = 4g .. 4g + n - 1 of the flat (B, N) output.
template <int kKind>
GS_HOST_DEVICE void tempered_epilogue_group(const TemperedEpilogueArgs& a, uint64_t seed, uint64_t offset,
                                            int64_t g) {
  const int64_t numel = a.B * a.N;
  const int64_t f0 = 4 * g;
  const int n = static_cast<int>(min64(4, numel - f0));
  const bool vec = a.vec && n == 4;
  float acc[4];
  if (vec) {
    load4_vec<float, float>(a.acc + f0, acc);
  } else {
    GS_UNROLL
    for (int l = 0; l < 4; ++l) acc[l] = l < n ? a.acc[f0 + l] : 0.0f;
  }
  uint32_t w[4];
  philox::words(seed, offset + static_cast<uint64_t>(g), w);
  float rnd[4];
  if (kKind == kGaussVisible) {
    normal4(w, rnd);
  } else {
    uniform4(w, rnd);
  }
  int64_t r = f0 / a.N;      // row of lane 0; later lanes may wrap to the next row
  int64_t j = f0 - r * a.N;  // its column
  float st[4], o1[4], o2[4];
  GS_UNROLL
  for (int l = 0; l < 4; ++l) {
    const int64_t jj = l < n ? j : 0;
    const float beta = a.beta[(l < n ? r : 0) * a.beta_stride];
    if (kKind == kHidden) {
      float av;
      const float t = tempered::hidden_logit(acc[l], a.bias[jj], beta, av);
      st[l] = tempered::bernoulli_state(t, rnd[l]);
      o1[l] = av;
    } else if (kKind == kBernVisible) {
      const float t = tempered::visible_logit(acc[l], a.bias[jj], a.base[jj], beta, gs_sub(1.0f, beta));
      st[l] = tempered::bernoulli_state(t, rnd[l]);
    } else {
      const float s = a.sigma[jj];
      st[l] = tempered::gaussian_sample(tempered::gaussian_mean(acc[l], a.bias[jj], s, beta), s, rnd[l]);
      o2[l] = tempered::gaussian_input(st[l], s);
    }
    if (++j == a.N) {
      j = 0;
      ++r;
    }
  }
  if (vec) {
    store4_vec<float, float>(a.state + f0, st);
    if (kKind == kHidden) store4_vec<float, float>(a.acc + f0, o1);
    if (kKind == kGaussVisible) store4_vec<float, float>(a.x_out + f0, o2);
  } else {
    GS_UNROLL
    for (int l = 0; l < 4; ++l) {
      if (l < n) {
        store1<float, float>(a.state + f0 + l, st[l]);
        if (kKind == kHidden) store1<float, float>(a.acc + f0 + l, o1[l]);
        if (kKind == kGaussVisible) store1<float, float>(a.x_out + f0 + l, o2[l]);
      }
    }
  }
}

template <int kKind>
GS_HOST_DEVICE void tempered_epilogue_thread(const TemperedEpilogueArgs& a, int64_t groups, int64_t block,
                                             int64_t grid, int64_t thread, int64_t threads) {
  const SeedPair sp = read_seed(a.seed, a.seed_stride);
  const uint64_t offset = tempered_step_offset(sp, a.step);
  for (int64_t g = block * threads + thread; g < groups; g += grid * threads) {
    tempered_epilogue_group<kKind>(a, sp.seed, offset, g);
  }
}

// ========================= AIS hidden step (one block per row) ======================

constexpr int kAisThreads = 128;  // 4 warps: a 500-unit hidden row is 125 Philox groups

struct AisHiddenArgs {
  const float* acc;     // (B, nh) x @ W
  float* h;             // (B, nh)
  const float* v;       // (B, nv) the step's input states (Bernoulli: the ell term); null for Gaussian
  const float* vb;      // (nv,) b
  const float* base;    // (nv,) b_A
  const float* hb;      // (nh,) c
  const float* betas;   // (K + 1,)
  int64_t k;            // annealing step 1..K: beta_k = betas[k], beta_{k-1} = betas[k - 1]
  double* log_w;        // (B,)
  const int64_t* seed;
  int64_t seed_stride;
  int64_t step;  // substream index 2k - 2
  int64_t B, nv, nh;
};

struct AisLaunch {
  int64_t blocks;  // grid-stride over rows
  int threads;
};

GS_HOST_DEVICE AisLaunch ais_hidden_launch(int64_t B, int sm_count) {
  AisLaunch c;
  c.threads = kAisThreads;
  c.blocks = min64(B, static_cast<int64_t>(sm_count > 0 ? sm_count : 1) * (2048 / kAisThreads));
  return c;
}

// Phase 1 of row r: this thread's draws and partial sums (sp: softplus differences,
// ell: sum of (b_i - b_A,i) v_i over its visible units).
GS_HOST_DEVICE void ais_hidden_row_thread(const AisHiddenArgs& a, int64_t r, int64_t thread, int64_t threads,
                                          double& sp_out, double& ell_out) {
  const SeedPair sp = read_seed(a.seed, a.seed_stride);
  const uint64_t offset = tempered_step_offset(sp, a.step);
  const float bk = a.betas[a.k], bp = a.betas[a.k - 1];
  double s = 0.0, e = 0.0;
  if (a.nh > 0) {
    const int64_t lo = r * a.nh, hi = lo + a.nh;
    for (int64_t g = (lo >> 2) + thread; g <= ((hi - 1) >> 2); g += threads) {
      uint32_t w[4];
      philox::words(sp.seed, offset + static_cast<uint64_t>(g), w);
      float u[4];
      uniform4(w, u);
      GS_UNROLL
      for (int l = 0; l < 4; ++l) {
        const int64_t i = 4 * g + l;  // stream index == flat index r * nh + j
        if (i < lo || i >= hi) continue;
        const int64_t j = i - lo;
        float av;
        const float tk = tempered::hidden_logit(a.acc[i], a.hb[j], bk, av);
        const float tp = gs_mul(av, bp);
        store1<float, float>(a.h + i, tempered::bernoulli_state(tk, u[l]));
        s += static_cast<double>(gs_softplus(tk)) - static_cast<double>(gs_softplus(tp));
      }
    }
  }
  if (a.v != nullptr) {
    const float* vr = a.v + r * a.nv;
    for (int64_t i = thread; i < a.nv; i += threads) {
      e += static_cast<double>(gs_sub(a.vb[i], a.base[i])) * static_cast<double>(vr[i]);
    }
  }
  sp_out = s;
  ell_out = e;
}

// Phase 2 (thread 0, after a barrier): fold the block's partials into log_w[r].
GS_HOST_DEVICE void ais_hidden_row_finish(const AisHiddenArgs& a, int64_t r, const double* sp, const double* ell,
                                          int64_t threads) {
  double s = 0.0, e = 0.0;
  for (int64_t t = 0; t < threads; ++t) {
    s += sp[t];
    e += ell[t];
  }
  const double db = static_cast<double>(a.betas[a.k]) - static_cast<double>(a.betas[a.k - 1]);
  const double inc = a.v != nullptr ? s + db * e : s;
  store1<double, double>(a.log_w + r, a.log_w[r] + inc);
}

}  // namespace kernels
}  // namespace gensample
