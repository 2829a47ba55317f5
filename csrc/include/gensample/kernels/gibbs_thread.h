// Per-thread bodies of the CUDA block Gibbs kernels (gibbs_half_step, gaussian_half_step,
// gibbs_sweeps).
//
// The math is gibbs.h's (gs_sigmoid, bernoulli_epilogue, gaussian_epilogue) and random.h's
// stream; this file only decides which thread computes which element.
// csrc/cuda/gibbs_cuda.cu calls these functions from its kernels; tests/cuda_sim/
// gibbs_sim_driver.cpp runs them over every (blockIdx, threadIdx) of the same launch on
// the CPU (tests/test_gibbs_cuda_sim.py).
//
// Epilogue kernel (after the GEMM acc = x @ W or x @ W^T, done by at::mm): the output
// (B, N) is contiguous, so stream element i = r * N + j IS the flat index. Thread-group
// g (grid-stride) is one Philox call on counter offset + t * 2^32 + g and the elements
// 4g .. 4g + 3: it reads the 4 accumulators (a 16-byte vector when aligned), writes the
// probability (or Gaussian mean) back over them (in place: the GEMM's buffer becomes the
// `prob` output) and the state (or v) to its own output.
//
// Persistent sweep kernel (gibbs_sweeps for small layers): a block owns `cb` consecutive
// chains r0 .. r0 + nrows - 1 and keeps W, both biases and the chains' v and h states in
// shared memory (SweepSmem). Phase 0 (sweep_load_thread) loads them; phase t = 0 .. 2k
// (sweep_half_thread) is half-step t: t even draws h from v (N = n_hidden), t odd draws v
// from h (N = n_visible), on substream t. A barrier separates phases; within a phase
// every thread reads only the input layer and writes only the output layer, each output
// element exactly once. Thread `thread` handles the Philox groups thread, thread +
// threads, ... of the block's stream range [r0 * N, (r0 + nrows) * N): a group straddling
// two blocks is computed by both, each keeping its own lanes. The last hidden step
// (t = 2k) also writes h and p(h | v) to global memory, the last visible step (t = 2k - 1)
// writes v (for k = 0 the load phase copies v_0).
#pragma once

#include "gensample/gibbs.h"
#include "gensample/kernels/launch.h"
#include "gensample/random.h"

namespace gensample {
namespace kernels {

// ============================ fused epilogue ==================================

struct GibbsEpilogueArgs {
  float* acc;              // (B, N) GEMM result; overwritten with prob (or mean)
  float* state;            // (B, N) state (or v)
  const float* bias;       // (N,)
  const float* sigma;      // (N,) Gaussian only
  const float* noise_std;  // (N,) Gaussian only
  const int64_t* seed;     // (seed, offset) on the device
  int64_t seed_stride;
  int64_t step;  // substream index t
  int64_t B, N;
  float beta;
  bool vec;  // acc and state allow 16-byte vector access
};

inline bool gibbs_epilogue_vec_ok(const float* acc, const float* state) {
  return aligned_to(acc, 16) && aligned_to(state, 16);
}

// Group g: elements f = 4g .. 4g + n - 1 of the flat (B, N) output.
template <bool kGauss>
GS_HOST_DEVICE void gibbs_epilogue_group(const GibbsEpilogueArgs& a, uint64_t seed, uint64_t offset, int64_t g) {
  const int64_t numel = a.B * a.N;
  const int64_t f0 = 4 * g;
  const int n = static_cast<int>(min64(4, numel - f0));
  float acc[4];
  load_group4(a.acc + f0, n, a.vec && n == 4, acc);
  uint32_t w[4];
  philox::words(seed, offset + static_cast<uint64_t>(g), w);
  float rnd[4];
  if (kGauss) {
    normal4(w, rnd);
  } else {
    uniform4(w, rnd);
  }
  int64_t j = f0 % a.N;  // column of lane 0; later lanes wrap to the next row
  float o0[4], o1[4];
  GS_UNROLL
  for (int l = 0; l < 4; ++l) {
    const int64_t jj = l < n ? j : 0;
    if (kGauss) {
      gibbs::gaussian_epilogue(acc[l], a.bias[jj], a.sigma[jj], a.noise_std[jj], rnd[l], o0[l], o1[l]);
    } else {
      gibbs::bernoulli_epilogue(acc[l], a.bias[jj], a.beta, rnd[l], o0[l], o1[l]);
    }
    j = j + 1 == a.N ? 0 : j + 1;
  }
  if (a.vec && n == 4) {
    store4_vec<float, float>(a.state + f0, o0);
    store4_vec<float, float>(a.acc + f0, o1);
  } else {
    GS_UNROLL
    for (int l = 0; l < 4; ++l) {
      if (l < n) {
        store1<float, float>(a.state + f0 + l, o0[l]);
        store1<float, float>(a.acc + f0 + l, o1[l]);
      }
    }
  }
}

template <bool kGauss>
GS_HOST_DEVICE void gibbs_epilogue_thread(const GibbsEpilogueArgs& a, int64_t groups, int64_t block, int64_t grid,
                                          int64_t thread, int64_t threads) {
  const SeedPair sp = read_seed(a.seed, a.seed_stride);
  const uint64_t offset = substream_offset(sp, a.step);
  for (int64_t g = block * threads + thread; g < groups; g += grid * threads) {
    gibbs_epilogue_group<kGauss>(a, sp.seed, offset, g);
  }
}

// ========================= persistent sweep kernel ==============================

// Shared memory of the sweep kernel (floats): W (nv * nh, row-major like the input),
// visible bias (nv), hidden bias (nh), v states (cb * nv), h states (cb * nh).
constexpr int64_t kSweepSmemBytes = 48 * 1024;  // no opt-in attribute needed on any GPU
constexpr int64_t kSweepMaxChains = 64;

struct SweepSmem {
  float* w;
  float* vb;
  float* hb;
  float* v;
  float* h;
};

GS_HOST_DEVICE int64_t sweep_smem_floats(int64_t nv, int64_t nh, int64_t cb) {
  return nv * nh + nv + nh + cb * (nv + nh);
}

GS_HOST_DEVICE SweepSmem sweep_smem_layout(float* base, int64_t nv, int64_t nh, int64_t cb) {
  SweepSmem s;
  s.w = base;
  s.vb = s.w + nv * nh;
  s.hb = s.vb + nv;
  s.v = s.hb + nh;
  s.h = s.v + cb * nv;
  return s;
}

struct SweepLaunch {
  bool fits;        // the persistent kernel applies (else: GEMM + epilogue loop)
  int64_t cb;       // chains per block
  int64_t blocks;   // ceil(B / cb)
  int threads;      // blockDim.x
  int64_t smem_bytes;
};

// Chains per block: enough blocks for about two per SM (each block is one 256-thread
// CTA), at least 8 chains (so a block's groups keep its threads busy), at most what
// shared memory holds next to W.
GS_HOST_DEVICE SweepLaunch gibbs_sweep_launch(int64_t B, int64_t nv, int64_t nh, int sm_count) {
  SweepLaunch c;
  c.threads = kThreads;
  const int64_t budget = kSweepSmemBytes / static_cast<int64_t>(sizeof(float));
  const int64_t fixed = nv * nh + nv + nh;
  const int64_t per_chain = nv + nh;
  const int64_t max_cb = per_chain > 0 && fixed < budget ? min64(kSweepMaxChains, (budget - fixed) / per_chain) : 0;
  const int64_t target = ceil_div(B, 2 * static_cast<int64_t>(sm_count > 0 ? sm_count : 1));
  c.cb = min64(max_cb, max64(8, target));
  c.fits = B > 0 && nv > 0 && nh > 0 && c.cb >= 8;
  if (!c.fits) c.cb = 0;
  c.blocks = c.fits ? ceil_div(B, c.cb) : 0;
  c.smem_bytes = c.fits ? sweep_smem_floats(nv, nh, c.cb) * static_cast<int64_t>(sizeof(float)) : 0;
  return c;
}

struct GibbsSweepArgs {
  const float* v0;   // (B, nv)
  const float* w;    // (nv, nh)
  const float* vb;   // (nv,)
  const float* hb;   // (nh,)
  const int64_t* seed;
  int64_t seed_stride;
  float* v_out;   // (B, nv)
  float* h_out;   // (B, nh)
  float* hp_out;  // (B, nh)
  int64_t B, nv, nh, k;
  float beta;
  bool vec;  // n_visible % 4 == 0, n_hidden % 4 == 0 and 16-byte aligned outputs: vector path
};

inline bool gibbs_sweep_vec_ok(int64_t nv, int64_t nh, const float* v_out, const float* h_out, const float* hp_out) {
  return nv % 4 == 0 && nh % 4 == 0 && aligned_to(v_out, 16) && aligned_to(h_out, 16) && aligned_to(hp_out, 16);
}

// 16-byte shared-memory access (the global-memory helpers of launch.h use __ldg).
GS_HOST_DEVICE void lds4(const float* p, float out[4]) {
  GS_SIM_CHECK_ALIGNED(p, 16);
#if defined(GS_ON_DEVICE)
  const float4 v = *reinterpret_cast<const float4*>(p);
  out[0] = v.x;
  out[1] = v.y;
  out[2] = v.z;
  out[3] = v.w;
#else
  std::memcpy(out, p, 16);
#endif
}
GS_HOST_DEVICE void sts4(float* p, const float v[4]) {
  GS_SIM_CHECK_ALIGNED(p, 16);
  GS_SIM_RECORD_STORE(p, 4);
#if defined(GS_ON_DEVICE)
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
#else
  std::memcpy(p, v, 16);
#endif
}

// Phase 0 (all threads of the block, strided): W, biases and the block's v_0 rows into
// shared memory; for k = 0 also v_out = v_0 for the block's rows.
GS_HOST_DEVICE void sweep_load_thread(const GibbsSweepArgs& a, const SweepSmem& s, int64_t r0, int64_t nrows,
                                      int64_t thread, int64_t threads) {
  for (int64_t i = thread; i < a.nv * a.nh; i += threads) store1<float, float>(s.w + i, a.w[i]);
  for (int64_t i = thread; i < a.nv; i += threads) store1<float, float>(s.vb + i, a.vb[i]);
  for (int64_t i = thread; i < a.nh; i += threads) store1<float, float>(s.hb + i, a.hb[i]);
  const int64_t nvals = nrows * a.nv;
  const float* src = a.v0 + r0 * a.nv;
  for (int64_t i = thread; i < nvals; i += threads) {
    store1<float, float>(s.v + i, src[i]);
    if (a.k == 0) store1<float, float>(a.v_out + r0 * a.nv + i, src[i]);
  }
}

// Vector path of half-step t (a.vec: both widths are multiples of 4): every group is 4
// consecutive outputs of one row (lo and hi are multiples of 4) and every shared-memory
// row starts 16-byte aligned, so inputs are read 4 at a time (one 16-byte load of x and
// four of W per 16 products). kToH: v -> h (N = nh), else h -> v (N = nv). `last`:
// also write the outputs to global memory (h and p(h | v), or v).
template <bool kToH>
GS_HOST_DEVICE void sweep_half_vec4(const GibbsSweepArgs& a, const SweepSmem& s, uint64_t seed, uint64_t offset,
                                    int64_t lo, int64_t g_first, int64_t g_last, bool last, int64_t thread,
                                    int64_t threads) {
  const int64_t N = kToH ? a.nh : a.nv;
  const int64_t n_in = kToH ? a.nv : a.nh;
  const float* in = kToH ? s.v : s.h;
  float* out = kToH ? s.h : s.v;
  const float* bias = kToH ? s.hb : s.vb;
  for (int64_t g = g_first + thread; g <= g_last; g += threads) {
    const int64_t f = 4 * g - lo;
    const int64_t rr = static_cast<int64_t>(static_cast<uint32_t>(f) / static_cast<uint32_t>(N));
    const int64_t j0 = f - rr * N;
    const float* x = in + rr * n_in;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t q = 0; q < n_in; q += 4) {
      float xv[4], wv[4];
      lds4(x + q, xv);
      if (kToH) {  // acc[l] += x[q + d] * W[q + d, j0 + l]
        GS_UNROLL
        for (int d = 0; d < 4; ++d) {
          lds4(s.w + (q + d) * a.nh + j0, wv);
          GS_UNROLL
          for (int l = 0; l < 4; ++l) acc[l] += xv[d] * wv[l];
        }
      } else {  // acc[l] += x[q + d] * W[j0 + l, q + d]
        GS_UNROLL
        for (int l = 0; l < 4; ++l) {
          lds4(s.w + (j0 + l) * a.nh + q, wv);
          GS_UNROLL
          for (int d = 0; d < 4; ++d) acc[l] += xv[d] * wv[d];
        }
      }
    }
    uint32_t w[4];
    philox::words(seed, offset + static_cast<uint64_t>(g), w);
    float u[4], st[4], p[4];
    uniform4(w, u);
    GS_UNROLL
    for (int l = 0; l < 4; ++l) gibbs::bernoulli_epilogue(acc[l], bias[j0 + l], a.beta, u[l], st[l], p[l]);
    sts4(out + f, st);
    if (last) {
      if (kToH) {
        store4_vec<float, float>(a.h_out + 4 * g, st);
        store4_vec<float, float>(a.hp_out + 4 * g, p);
      } else {
        store4_vec<float, float>(a.v_out + 4 * g, st);
      }
    }
  }
}

// Phase 1 + t: half-step t for the block's chains (see the header comment).
// kVec: the vector path (launchers pass a.vec; one kernel per path keeps each small).
template <bool kVec>
GS_HOST_DEVICE void sweep_half_thread(const GibbsSweepArgs& a, const SweepSmem& s, const SeedPair& sp, int64_t t,
                                      int64_t r0, int64_t nrows, int64_t thread, int64_t threads) {
  const bool to_h = (t & 1) == 0;
  const int64_t N = to_h ? a.nh : a.nv;       // output width
  const int64_t n_in = to_h ? a.nv : a.nh;    // input width
  const float* in = to_h ? s.v : s.h;         // (nrows, n_in)
  float* out = to_h ? s.h : s.v;              // (nrows, N)
  const float* bias = to_h ? s.hb : s.vb;
  // W element for (input i, output j): W[i, j] (v -> h) or W[j, i] (h -> v).
  const int64_t w_in = to_h ? a.nh : 1;
  const int64_t w_out = to_h ? 1 : a.nh;
  const bool last_h = to_h && t == 2 * a.k;
  const bool last_v = !to_h && t == 2 * a.k - 1;
  const uint64_t offset = substream_offset(sp, t);
  const int64_t lo = r0 * N, hi = (r0 + nrows) * N;  // the block's stream range
  const int64_t g_first = lo >> 2, g_last = (hi - 1) >> 2;
  if constexpr (kVec) {
    if (to_h) {
      sweep_half_vec4<true>(a, s, sp.seed, offset, lo, g_first, g_last, last_h, thread, threads);
    } else {
      sweep_half_vec4<false>(a, s, sp.seed, offset, lo, g_first, g_last, last_v, thread, threads);
    }
  } else {
    for (int64_t g = g_first + thread; g <= g_last; g += threads) {
      uint32_t w[4];
      philox::words(sp.seed, offset + static_cast<uint64_t>(g), w);
      float u[4];
      uniform4(w, u);
      GS_UNROLL
      for (int l = 0; l < 4; ++l) {
        const int64_t i = 4 * g + l;  // stream index == global flat index r * N + j
        if (i < lo || i >= hi) continue;
        const int64_t f = i - lo;  // block-local flat index (< cb * N: 32-bit division is enough)
        const int64_t rr = static_cast<int64_t>(static_cast<uint32_t>(f) / static_cast<uint32_t>(N));
        const int64_t j = f - rr * N;
        const float* x = in + rr * n_in;
        const float* wj = s.w + j * w_out;
        float acc = 0.0f;
        for (int64_t q = 0; q < n_in; ++q) acc += x[q] * wj[q * w_in];
        float st, p;
        gibbs::bernoulli_epilogue(acc, bias[j], a.beta, u[l], st, p);
        store1<float, float>(out + f, st);
        if (last_h) {
          store1<float, float>(a.h_out + i, st);
          store1<float, float>(a.hp_out + i, p);
        } else if (last_v) {
          store1<float, float>(a.v_out + i, st);
        }
      }
    }
  }
}

}  // namespace kernels
}  // namespace gensample
