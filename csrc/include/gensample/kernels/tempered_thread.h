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
  load_group4(a.acc + f0, n, vec, acc);
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
  const uint64_t offset = substream_offset(sp, a.step);
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
  const uint64_t offset = substream_offset(sp, a.step);
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

// ========================= persistent kernel (small layers) ==========================
//
// When W, the biases and the states of at least 8 chains fit in 48 KiB of shared memory, ONE
// launch runs a whole op (tempered_sweeps_persist / ais_persist in the .cu): a block owns
// `cb` consecutive chains r0 .. r0 + nrows - 1, loads W, b, c and b_A (or sigma) and its v_0
// rows once, then runs the phases below with a barrier after each. Within a phase every
// thread reads only the phase's inputs and writes only its outputs, each element once
// (checked by the simulated grid). Element phases split the block's stream range
// [r0 * N, (r0 + nrows) * N) into Philox groups as gibbs_thread.h's sweep kernel does
// (a group straddling two blocks is computed by both, each keeping its own lanes).
//
//   tempered_sweeps: hidden(t = 0), then k times visible(2s - 1), hidden(2s); the last
//     hidden phase also writes h and a to global memory, the last visible phase v.
//   ais_rbm, step s = 1..K: hidden(2s - 2) draws h at beta_s and stores the float64
//     softplus differences per element; row phase: thread rr < nrows folds its chain's
//     differences (and the ell term of the step's input v) into lw[rr]; visible(2s - 1)
//     at beta_s. After the last step v and log_w go to global memory.

constexpr int64_t kPersistSmemBytes = 48 * 1024;  // no opt-in attribute needed on any GPU
constexpr int64_t kPersistMaxChains = 64;

struct PersistSmem {
  double* spd;  // (cb, nh) AIS softplus differences
  double* lw;   // (cb,) AIS log-weights
  float* w;     // (nv, nh) with row stride persist_w_stride(nh)
  float* vb;    // (nv,)
  float* bs;    // (nv,) b_A (Bernoulli) or sigma (Gaussian)
  float* hb;    // (nh,)
  float* v;     // (cb, nv)
  float* h;     // (cb, nh)
  float* x;     // (cb, nv) Gaussian: v / sigma (the hidden input); Bernoulli: == v
};

// W's row stride in shared memory: n_hidden rounded up to an odd number. In the visible
// phase lane l of consecutive threads reads W rows 4 apart (element j = 4 * thread + l);
// with an even stride (e.g. 32) those rows start in the same bank (up to 32-way
// conflicts); an odd stride spreads them over 8 banks (4-way, as the hidden phase's reads).
GS_HOST_DEVICE int64_t persist_w_stride(int64_t nh) { return nh | 1; }

GS_HOST_DEVICE int64_t persist_smem_bytes(int64_t nv, int64_t nh, int64_t cb, bool gauss, bool ais) {
  const int64_t doubles = ais ? cb * nh + cb : 0;
  const int64_t floats = nv * persist_w_stride(nh) + 2 * nv + nh + cb * (nv + nh) + (gauss ? cb * nv : 0);
  return 8 * doubles + 4 * floats;
}

GS_HOST_DEVICE PersistSmem persist_smem_layout(void* base, int64_t nv, int64_t nh, int64_t cb, bool gauss,
                                               bool ais) {
  PersistSmem s;
  s.spd = static_cast<double*>(base);
  s.lw = s.spd + (ais ? cb * nh : 0);
  s.w = reinterpret_cast<float*>(s.lw + (ais ? cb : 0));
  s.vb = s.w + nv * persist_w_stride(nh);
  s.bs = s.vb + nv;
  s.hb = s.bs + nv;
  s.v = s.hb + nh;
  s.h = s.v + cb * nv;
  s.x = gauss ? s.h + cb * nh : s.v;
  return s;
}

struct PersistLaunch {
  bool fits;  // the persistent kernel applies (else: GEMM + epilogue loop)
  int64_t cb, blocks;
  int threads;
  int64_t smem_bytes;
};

// Chains per block: about two blocks per SM, at least 8 chains, at most what fits.
GS_HOST_DEVICE PersistLaunch persist_launch(int64_t B, int64_t nv, int64_t nh, bool gauss, bool ais,
                                            int sm_count) {
  PersistLaunch c;
  c.threads = kThreads;
  const int64_t fixed = persist_smem_bytes(nv, nh, 0, gauss, ais);
  const int64_t per_chain = persist_smem_bytes(nv, nh, 1, gauss, ais) - fixed;
  const int64_t max_cb = fixed < kPersistSmemBytes ? min64(kPersistMaxChains, (kPersistSmemBytes - fixed) / per_chain)
                                                   : 0;
  const int64_t target = ceil_div(B, 2 * static_cast<int64_t>(sm_count > 0 ? sm_count : 1));
  c.cb = min64(max_cb, max64(8, target));
  c.fits = B > 0 && nv > 0 && nh > 0 && c.cb >= 8;
  if (!c.fits) c.cb = 0;
  c.blocks = c.fits ? ceil_div(B, c.cb) : 0;
  c.smem_bytes = c.fits ? persist_smem_bytes(nv, nh, c.cb, gauss, ais) : 0;
  return c;
}

struct PersistArgs {
  const float* v0;    // (B, nv)
  const float* w;     // (nv, nh)
  const float* vb;    // (nv,)
  const float* hb;    // (nh,)
  const float* bs;    // (nv,) b_A or sigma
  const float* beta;  // tempered_sweeps: (B,) per chain; ais: betas (K + 1,)
  const int64_t* seed;
  int64_t seed_stride;
  float* v_out;      // (B, nv)
  float* h_out;      // (B, nh) tempered_sweeps
  float* a_out;      // (B, nh) tempered_sweeps
  double* log_w;     // (B,) ais
  int64_t B, nv, nh;
  int64_t k;  // sweeps, or K annealing steps
  bool gauss;
};

// Phase 0 (all threads, strided): parameters and the block's v_0 rows (and x_0 = v_0 /
// sigma) into shared memory, lw = 0; for sweeps with k = 0 also v_out = v_0.
GS_HOST_DEVICE void persist_load_thread(const PersistArgs& a, const PersistSmem& s, bool ais, int64_t r0,
                                        int64_t nrows, int64_t thread, int64_t threads) {
  const int64_t ws = persist_w_stride(a.nh);
  for (int64_t i = thread; i < a.nv * a.nh; i += threads) {
    const int64_t q = static_cast<int64_t>(static_cast<uint32_t>(i) / static_cast<uint32_t>(a.nh));
    store1<float, float>(s.w + q * ws + (i - q * a.nh), a.w[i]);
  }
  for (int64_t i = thread; i < a.nv; i += threads) {
    store1<float, float>(s.vb + i, a.vb[i]);
    store1<float, float>(s.bs + i, a.bs[i]);
  }
  for (int64_t i = thread; i < a.nh; i += threads) store1<float, float>(s.hb + i, a.hb[i]);
  const float* src = a.v0 + r0 * a.nv;
  for (int64_t i = thread; i < nrows * a.nv; i += threads) {
    store1<float, float>(s.v + i, src[i]);
    if (a.gauss) store1<float, float>(s.x + i, tempered::gaussian_input(src[i], a.bs[i % a.nv]));
    if (!ais && a.k == 0) store1<float, float>(a.v_out + r0 * a.nv + i, src[i]);
  }
  if (ais) {
    for (int64_t i = thread; i < nrows; i += threads) store1<double, double>(s.lw + i, 0.0);
  }
}

// Hidden phase: h = u < sigmoid(a beta) for the block's chains on substream t.
//   sweeps (ais == false): beta of chain r0 + rr from a.beta; `last` also writes h, a out.
//   ais: beta_s = a.beta[step_k], beta_{s-1} = a.beta[step_k - 1]; spd gets the
//   float64 softplus differences.
GS_HOST_DEVICE void persist_hidden_thread(const PersistArgs& a, const PersistSmem& s, const SeedPair& sp, int64_t t,
                                          bool ais, int64_t step_k, bool last, int64_t r0, int64_t nrows,
                                          int64_t thread, int64_t threads) {
  const int64_t N = a.nh;
  const uint64_t offset = substream_offset(sp, t);
  const int64_t lo = r0 * N, hi = (r0 + nrows) * N;
  const float bk = ais ? a.beta[step_k] : 0.0f, bp = ais ? a.beta[step_k - 1] : 0.0f;
  for (int64_t g = (lo >> 2) + thread; g <= ((hi - 1) >> 2); g += threads) {
    uint32_t w[4];
    philox::words(sp.seed, offset + static_cast<uint64_t>(g), w);
    float u[4];
    uniform4(w, u);
    GS_UNROLL
    for (int l = 0; l < 4; ++l) {
      const int64_t i = 4 * g + l;  // stream index == global flat index r * nh + j
      if (i < lo || i >= hi) continue;
      const int64_t f = i - lo;
      const int64_t rr = static_cast<int64_t>(static_cast<uint32_t>(f) / static_cast<uint32_t>(N));
      const int64_t j = f - rr * N;
      const float* xr = s.x + rr * a.nv;
      float acc = 0.0f;
      const int64_t ws = persist_w_stride(a.nh);
      for (int64_t q = 0; q < a.nv; ++q) acc += xr[q] * s.w[q * ws + j];
      const float beta = ais ? bk : a.beta[r0 + rr];
      float av;
      const float tk = tempered::hidden_logit(acc, s.hb[j], beta, av);
      const float st = tempered::bernoulli_state(tk, u[l]);
      store1<float, float>(s.h + f, st);
      if (ais) {
        store1<double, double>(s.spd + f, static_cast<double>(gs_softplus(tk)) -
                                              static_cast<double>(gs_softplus(gs_mul(av, bp))));
      } else if (last) {
        store1<float, float>(a.h_out + i, st);
        store1<float, float>(a.a_out + i, av);
      }
    }
  }
}

// AIS row phase: thread rr < nrows adds chain rr's step increment to lw[rr].
GS_HOST_DEVICE void persist_row_thread(const PersistArgs& a, const PersistSmem& s, int64_t step_k, int64_t nrows,
                                       int64_t thread, int64_t threads) {
  const float bk = a.beta[step_k], bp = a.beta[step_k - 1];
  for (int64_t rr = thread; rr < nrows; rr += threads) {
    double inc = 0.0;
    for (int64_t j = 0; j < a.nh; ++j) inc += s.spd[rr * a.nh + j];
    if (!a.gauss) {
      double ell = 0.0;
      const float* vr = s.v + rr * a.nv;
      for (int64_t i = 0; i < a.nv; ++i) ell += static_cast<double>(gs_sub(s.vb[i], s.bs[i])) * static_cast<double>(vr[i]);
      inc = inc + (static_cast<double>(bk) - static_cast<double>(bp)) * ell;
    }
    store1<double, double>(s.lw + rr, s.lw[rr] + inc);
  }
}

// Visible phase: v from h on substream t at beta (per chain, or betas[step_k] for AIS);
// Gaussian also x = v / sigma. `last` writes v out.
GS_HOST_DEVICE void persist_visible_thread(const PersistArgs& a, const PersistSmem& s, const SeedPair& sp, int64_t t,
                                           bool ais, int64_t step_k, bool last, int64_t r0, int64_t nrows,
                                           int64_t thread, int64_t threads) {
  const int64_t N = a.nv;
  const uint64_t offset = substream_offset(sp, t);
  const int64_t lo = r0 * N, hi = (r0 + nrows) * N;
  for (int64_t g = (lo >> 2) + thread; g <= ((hi - 1) >> 2); g += threads) {
    uint32_t w[4];
    philox::words(sp.seed, offset + static_cast<uint64_t>(g), w);
    float rnd[4];
    if (a.gauss) {
      normal4(w, rnd);
    } else {
      uniform4(w, rnd);
    }
    GS_UNROLL
    for (int l = 0; l < 4; ++l) {
      const int64_t i = 4 * g + l;
      if (i < lo || i >= hi) continue;
      const int64_t f = i - lo;
      const int64_t rr = static_cast<int64_t>(static_cast<uint32_t>(f) / static_cast<uint32_t>(N));
      const int64_t j = f - rr * N;
      const float* hr = s.h + rr * a.nh;
      const float* wj = s.w + j * persist_w_stride(a.nh);
      float acc = 0.0f;
      for (int64_t q = 0; q < a.nh; ++q) acc += hr[q] * wj[q];
      const float beta = ais ? a.beta[step_k] : a.beta[r0 + rr];
      float v;
      if (a.gauss) {
        v = tempered::gaussian_sample(tempered::gaussian_mean(acc, s.vb[j], s.bs[j], beta), s.bs[j], rnd[l]);
        store1<float, float>(s.x + f, tempered::gaussian_input(v, s.bs[j]));
      } else {
        v = tempered::bernoulli_state(tempered::visible_logit(acc, s.vb[j], s.bs[j], beta, gs_sub(1.0f, beta)),
                                      rnd[l]);
      }
      store1<float, float>(s.v + f, v);
      if (last) store1<float, float>(a.v_out + i, v);
    }
  }
}

// AIS epilogue (after the last step): log_w of the block's chains to global memory.
GS_HOST_DEVICE void persist_store_logw_thread(const PersistArgs& a, const PersistSmem& s, int64_t r0, int64_t nrows,
                                              int64_t thread, int64_t threads) {
  for (int64_t rr = thread; rr < nrows; rr += threads) store1<double, double>(a.log_w + r0 + rr, s.lw[rr]);
}

}  // namespace kernels
}  // namespace gensample
