// Per-thread bodies of the CUDA Langevin kernels (langevin_step, mala_accept_,
// sgld_step_).
//
// The math is langevin.h's (step, mala_residuals, mala_log_alpha, mala_accept, sgld)
// and random.h's stream; this file only decides which thread computes which element.
// csrc/cuda/langevin_cuda.cu calls these functions from its kernels;
// tests/cuda_sim/langevin_sim_driver.cpp runs them over every (blockIdx, threadIdx)
// of the same launch on the CPU (tests/test_langevin_cuda_sim.py).
//
// Step (x, grad, out: float32 contiguous, viewed as (C, M)): an elementwise
//   grid-stride loop over Philox groups k: group k is one Philox call and the flat
//   elements 4k .. 4k+3 (16-byte vectors when the three pointers are aligned). The
//   chain of each lane follows from one division per group (chains may change inside
//   a group when M % 4 != 0). Step, noise (strides: 0 for a shared value) and the
//   norm-clip scale are read per chain. The clamp is always applied: with the bounds
//   (-inf, +inf) of "no clamp" it is the identity for every value, NaN included, so one
//   kernel per clip mode serves both (half the instantiations to compile).
// Per-chain reductions (norm clip / grad_norm; MALA's two sums of squared residuals):
//   work item = (chain c, column segment s); a block owns an item, its threads add
//   4-column chunks j = s*seg + 4*(t + i*threads) in float64, and the block sums the
//   threads' partials (warp shuffles + shared memory in the .cu, in thread order in the
//   simulator). With one segment per chain the block's thread 0 finalizes the chain
//   (norm/scale, or log_alpha/decision/energy); otherwise it writes the partial to a
//   (C, nseg) float64 workspace and a finalize kernel adds the segments in order
//   (deterministic; no atomics).
// MALA select: elementwise over Philox-group-sized chunks like the step; only the
//   accepted chains' elements are read from x_prop/grad_prop and written.
// SGLD: one launch per list of up to kSgldMaxTensors tensors (longer lists: one launch
//   per kSgldMaxTensors). The tensors' addresses, sizes, stream bases and first blocks
//   travel in the kernel's argument block; a block finds its tensor by binary search
//   over the first blocks and each thread updates one Philox group of that tensor.
#pragma once

#include "gensample/kernels/launch.h"
#include "gensample/langevin.h"
#include "gensample/random.h"

namespace gensample {
namespace kernels {

// ============================== step ==========================================

struct LangevinStepArgs {
  const float* x;
  const float* g;
  float* out;  // may equal x (in place)
  const float* step;
  int64_t step_stride;
  const float* noise;
  int64_t noise_stride;
  const float* scale;  // (C,) norm-clip scale (clip_mode 2), else nullptr
  const int64_t* seed;
  int64_t seed_stride;
  int64_t numel, M;
  float clip, lo, hi;
  bool per_chain;  // step/noise/scale differ between chains
  bool vec;        // x, g, out aligned for 16-byte vectors
};

inline LangevinStepArgs make_step_args(const float* x, const float* g, float* out, const float* step,
                                       int64_t step_stride, const float* noise, int64_t noise_stride,
                                       const float* scale, const int64_t* seed, int64_t seed_stride, int64_t C,
                                       int64_t M, float clip, float lo, float hi) {
  LangevinStepArgs a;
  a.x = x;
  a.g = g;
  a.out = out;
  a.step = step;
  a.step_stride = C > 1 ? step_stride : 0;
  a.noise = noise;
  a.noise_stride = C > 1 ? noise_stride : 0;
  a.scale = scale;
  a.seed = seed;
  a.seed_stride = seed_stride;
  a.numel = C * M;
  a.M = M;
  a.clip = clip;
  a.lo = lo;
  a.hi = hi;
  a.per_chain = scale != nullptr || a.step_stride != 0 || a.noise_stride != 0;
  const int64_t v = 4 * static_cast<int64_t>(sizeof(float));
  a.vec = aligned_to(x, v) && aligned_to(g, v) && aligned_to(out, v);
  return a;
}

struct ElementwiseLaunch {
  int64_t groups;  // Philox groups: ceil(numel / 4)
  int64_t blocks;  // gridDim.x (0: nothing to launch)
  int threads;
};

// Blocks for `work` block-sized items: at most one wave of the kernel's resident
// blocks (blocks_per_sm: the launcher's occupancy query; a grid-stride loop does the
// rest, and a grid of whole waves has no partial tail wave).
GS_HOST_DEVICE int64_t wave_blocks(int64_t work, int sm_count, int blocks_per_sm) {
  const int64_t cap = static_cast<int64_t>(sm_count > 0 ? sm_count : 1) * (blocks_per_sm > 0 ? blocks_per_sm : 1);
  return min64(work, cap);
}

GS_HOST_DEVICE ElementwiseLaunch elementwise_launch(int64_t numel, int sm_count, int blocks_per_sm = kBlocksPerSm) {
  ElementwiseLaunch c;
  c.groups = ceil_div(numel, 4);
  c.threads = kThreads;
  c.blocks = wave_blocks(ceil_div(c.groups, kThreads), sm_count, blocks_per_sm);
  return c;
}

// Chain of flat element i (32-bit division when the sizes allow: much cheaper).
GS_HOST_DEVICE int64_t chain_of(int64_t i, int64_t M, int64_t numel) {
  if (numel <= 0x7FFFFFFFLL) return static_cast<int64_t>(static_cast<uint32_t>(i) / static_cast<uint32_t>(M));
  return i / M;
}

// The elements of group k below numel: a 4-vector when allowed, else one by one.
GS_HOST_DEVICE void load_group(const float* p, int64_t i0, int n, bool vec, float v[4]) {
  if (vec && n == 4) {
    load4_vec<float, float>(p + i0, v);
  } else {
    GS_UNROLL
    for (int l = 0; l < 4; ++l) v[l] = l < n ? p[i0 + l] : 0.0f;
  }
}
GS_HOST_DEVICE void store_group(float* p, int64_t i0, int n, bool vec, const float v[4]) {
  if (vec && n == 4) {
    store4_vec<float, float>(p + i0, v);
  } else {
    GS_UNROLL
    for (int l = 0; l < 4; ++l) {
      if (l < n) store1<float, float>(p + i0 + l, v[l]);
    }
  }
}

template <int kMode>
GS_HOST_DEVICE void step_group(const LangevinStepArgs& a, const SeedPair& sp, int64_t k) {
  const int64_t i0 = 4 * k;
  const int n = static_cast<int>(min64(4, a.numel - i0));
  float x[4], g[4], eps[4], y[4];
  load_group(a.x, i0, n, a.vec, x);
  load_group(a.g, i0, n, a.vec, g);
  uint32_t w[4];
  philox::words(sp.seed, sp.offset + static_cast<uint64_t>(k), w);
  normal4(w, eps);
  if (!a.per_chain) {
    const float h = a.step[0], s = a.noise[0];
    GS_UNROLL
    for (int l = 0; l < 4; ++l) {
      y[l] = langevin::step<kMode, true>(x[l], g[l], h, s, eps[l], a.clip, 1.0f, a.lo, a.hi);
    }
  } else {
    int64_t c = chain_of(i0, a.M, a.numel);
    int64_t r = i0 - c * a.M;  // column of lane 0
    GS_UNROLL
    for (int l = 0; l < 4; ++l) {
      y[l] = 0.0f;
      if (l < n) {
        const float h = a.step[c * a.step_stride], s = a.noise[c * a.noise_stride];
        const float sc = kMode == langevin::kClipNorm ? a.scale[c] : 1.0f;
        y[l] = langevin::step<kMode, true>(x[l], g[l], h, s, eps[l], a.clip, sc, a.lo, a.hi);
      }
      if (++r == a.M) {
        r = 0;
        ++c;
      }
    }
  }
  store_group(a.out, i0, n, a.vec, y);
}

// The whole per-thread program of the step kernel.
template <int kMode>
GS_HOST_DEVICE void step_thread(const LangevinStepArgs& a, int64_t groups, int64_t block, int64_t grid,
                                int64_t thread, int64_t threads) {
  const SeedPair sp = read_seed(a.seed, a.seed_stride);
  for (int64_t k = block * threads + thread; k < groups; k += grid * threads) step_group<kMode>(a, sp, k);
}

// ======================= per-chain reductions ====================================

// Fewest columns in a segment when a chain is split (16 per thread).
constexpr int64_t kMinSegment = 16 * kThreads;

struct ChainReduceLaunch {
  int64_t nseg;     // segments per chain
  int64_t seg_len;  // columns per segment (a multiple of 4)
  int64_t items;    // C * nseg
  int64_t blocks;   // gridDim.x (0: nothing to launch)
  int threads;
};

GS_HOST_DEVICE ChainReduceLaunch chain_reduce_launch(int64_t C, int64_t M, int sm_count,
                                                     int blocks_per_sm = kBlocksPerSm) {
  ChainReduceLaunch c;
  c.threads = kThreads;
  const int64_t wave = wave_blocks(0x7FFFFFFFFFFFFFFFLL, sm_count, blocks_per_sm);
  const int64_t max_seg = max64(1, M / kMinSegment);
  int64_t nseg = C >= wave ? 1 : min64(max_seg, ceil_div(wave, max64(C, 1)));
  if (nseg < 1) nseg = 1;
  c.seg_len = ceil_div(ceil_div(max64(M, 1), nseg), 4) * 4;
  c.nseg = M > 0 ? ceil_div(M, c.seg_len) : 1;
  c.items = C * c.nseg;
  c.blocks = min64(c.items, wave);
  return c;
}

// Columns [4j, 4j + 4) of chain c, below M: a vector when the row allows it.
GS_HOST_DEVICE void load_cols4(const float* p, int64_t c, int64_t M, int64_t j0, bool vec, float v[4]) {
  const float* row = p + c * M;
  if (vec && j0 + 4 <= M) {
    load4_vec<float, float>(row + j0, v);
  } else {
    GS_UNROLL
    for (int l = 0; l < 4; ++l) v[l] = j0 + l < M ? row[j0 + l] : 0.0f;
  }
}

struct SegmentRange {
  int64_t c, begin, end;
};
GS_HOST_DEVICE SegmentRange segment_of(const ChainReduceLaunch& L, int64_t M, int64_t item) {
  SegmentRange s;
  s.c = item / L.nseg;
  const int64_t seg = item - s.c * L.nseg;
  s.begin = seg * L.seg_len;
  s.end = min64(M, s.begin + L.seg_len);
  return s;
}

// --- norm (clip_mode 2 / grad_norm) ---

struct NormArgs {
  const float* g;
  int64_t C, M;
  float clip;
  float* norm;   // (C,) or nullptr
  float* scale;  // (C,) or nullptr
  double* ws;    // (C, nseg) partial sums when nseg > 1
  bool vec;      // rows of g start on the 4-vector grid (M % 4 == 0, aligned base)
};

inline NormArgs make_norm_args(const float* g, int64_t C, int64_t M, float clip, float* norm, float* scale,
                               double* ws) {
  NormArgs a;
  a.g = g;
  a.C = C;
  a.M = M;
  a.clip = clip;
  a.norm = norm;
  a.scale = scale;
  a.ws = ws;
  a.vec = M % 4 == 0 && aligned_to(g, 4 * static_cast<int64_t>(sizeof(float)));
  return a;
}

// The thread's float64 sum of g^2 over its chunks of the item's segment.
GS_HOST_DEVICE double norm_partial(const NormArgs& a, const ChainReduceLaunch& L, int64_t item, int64_t thread) {
  const SegmentRange s = segment_of(L, a.M, item);
  double acc = 0.0;
  for (int64_t j = s.begin + 4 * thread; j < s.end; j += 4 * L.threads) {
    float v[4];
    load_cols4(a.g, s.c, a.M, j, a.vec, v);
    GS_UNROLL
    for (int l = 0; l < 4; ++l) {
      const double d = static_cast<double>(v[l]);
      acc += d * d;
    }
  }
  return acc;
}

GS_HOST_DEVICE void norm_finish(const NormArgs& a, int64_t c, double sumsq) {
  const float n = langevin::norm_from_sumsq(sumsq);
  if (a.norm != nullptr) store1<float, float>(a.norm + c, n);
  if (a.scale != nullptr) store1<float, float>(a.scale + c, langevin::norm_clip_scale(n, a.clip));
}

// Called by the item's thread 0 with the block's total.
GS_HOST_DEVICE void norm_store(const NormArgs& a, const ChainReduceLaunch& L, int64_t item, double total) {
  if (L.nseg == 1) {
    norm_finish(a, item, total);
  } else {
    store1<double, double>(a.ws + item, total);
  }
}

// Finalize (nseg > 1): one thread per chain adds the segments in order.
GS_HOST_DEVICE void norm_finalize_thread(const NormArgs& a, int64_t nseg, int64_t block, int64_t grid, int64_t thread,
                                         int64_t threads) {
  for (int64_t c = block * threads + thread; c < a.C; c += grid * threads) {
    double acc = 0.0;
    for (int64_t s = 0; s < nseg; ++s) acc += a.ws[c * nseg + s];
    norm_finish(a, c, acc);
  }
}

// --- MALA ---

struct MalaArgs {
  const float *x, *g, *xp, *gp;  // (C, M)
  float* energy;                 // (C,) in place
  const float* energy_prop;
  const float* step;
  int64_t step_stride;
  const float* noise;
  int64_t noise_stride;
  const int64_t* seed;
  int64_t seed_stride;
  bool* accepted;    // (C,)
  float* log_alpha;  // (C,)
  double* ws;        // (C, 2 * nseg) when nseg > 1: [fwd segments | bwd segments]
  float *x_out, *g_out;  // == x, g (written by the select kernel)
  int64_t C, M;
  bool vec;
};

inline MalaArgs make_mala_args(float* x, float* g, float* energy, const float* xp, const float* gp,
                               const float* energy_prop, const float* step, int64_t step_stride, const float* noise,
                               int64_t noise_stride, const int64_t* seed, int64_t seed_stride, bool* accepted,
                               float* log_alpha, double* ws, int64_t C, int64_t M) {
  MalaArgs a;
  a.x = x;
  a.g = g;
  a.xp = xp;
  a.gp = gp;
  a.energy = energy;
  a.energy_prop = energy_prop;
  a.step = step;
  a.step_stride = step_stride;
  a.noise = noise;
  a.noise_stride = noise_stride;
  a.seed = seed;
  a.seed_stride = seed_stride;
  a.accepted = accepted;
  a.log_alpha = log_alpha;
  a.ws = ws;
  a.x_out = x;
  a.g_out = g;
  a.C = C;
  a.M = M;
  const int64_t v = 4 * static_cast<int64_t>(sizeof(float));
  a.vec = M % 4 == 0 && aligned_to(x, v) && aligned_to(g, v) && aligned_to(xp, v) && aligned_to(gp, v);
  return a;
}

struct Sums2 {
  double fwd, bwd;
};

// The thread's float64 sums of fwd^2 and bwd^2 (langevin::mala_residuals).
GS_HOST_DEVICE Sums2 mala_partial(const MalaArgs& a, const ChainReduceLaunch& L, int64_t item, int64_t thread) {
  const SegmentRange s = segment_of(L, a.M, item);
  const float h = a.step[s.c * a.step_stride];
  Sums2 acc{0.0, 0.0};
  for (int64_t j = s.begin + 4 * thread; j < s.end; j += 4 * L.threads) {
    float x[4], g[4], xp[4], gp[4];
    load_cols4(a.x, s.c, a.M, j, a.vec, x);
    load_cols4(a.g, s.c, a.M, j, a.vec, g);
    load_cols4(a.xp, s.c, a.M, j, a.vec, xp);
    load_cols4(a.gp, s.c, a.M, j, a.vec, gp);
    GS_UNROLL
    for (int l = 0; l < 4; ++l) {
      if (j + l < s.end) {
        float f, b;
        langevin::mala_residuals(x[l], g[l], xp[l], gp[l], h, f, b);
        acc.fwd += static_cast<double>(f) * static_cast<double>(f);
        acc.bwd += static_cast<double>(b) * static_cast<double>(b);
      }
    }
  }
  return acc;
}

GS_HOST_DEVICE void mala_finish(const MalaArgs& a, int64_t c, double sum_fwd, double sum_bwd) {
  const SeedPair sp = read_seed(a.seed, a.seed_stride);
  const float e = a.energy[c], ep = a.energy_prop[c];
  const float la = langevin::mala_log_alpha(e, ep, sum_fwd, sum_bwd, a.noise[c * a.noise_stride]);
  const bool acc = langevin::mala_accept(la, uniform_at(sp.seed, sp.offset, static_cast<uint64_t>(c)));
  GS_SIM_RECORD_STORE(a.accepted + c, 1);
  a.accepted[c] = acc;
  store1<float, float>(a.log_alpha + c, la);
  store1<float, float>(a.energy + c, acc ? ep : e);
}

GS_HOST_DEVICE void mala_store(const MalaArgs& a, const ChainReduceLaunch& L, int64_t item, Sums2 total) {
  if (L.nseg == 1) {
    mala_finish(a, item, total.fwd, total.bwd);
  } else {
    const int64_t c = item / L.nseg, seg = item - c * L.nseg;
    store1<double, double>(a.ws + c * 2 * L.nseg + seg, total.fwd);
    store1<double, double>(a.ws + c * 2 * L.nseg + L.nseg + seg, total.bwd);
  }
}

GS_HOST_DEVICE void mala_finalize_thread(const MalaArgs& a, int64_t nseg, int64_t block, int64_t grid, int64_t thread,
                                         int64_t threads) {
  for (int64_t c = block * threads + thread; c < a.C; c += grid * threads) {
    double f = 0.0, b = 0.0;
    for (int64_t s = 0; s < nseg; ++s) {
      f += a.ws[c * 2 * nseg + s];
      b += a.ws[c * 2 * nseg + nseg + s];
    }
    mala_finish(a, c, f, b);
  }
}

// Select: flat group k (elements 4k .. 4k+3) of the accepted chains takes x_prop/grad_prop.
GS_HOST_DEVICE void select_group(const MalaArgs& a, int64_t k) {
  const int64_t numel = a.C * a.M;
  const int64_t i0 = 4 * k;
  const int n = static_cast<int>(min64(4, numel - i0));
  int64_t c = chain_of(i0, a.M, numel);
  if (a.vec && n == 4) {  // M % 4 == 0: one chain for the whole group
    if (a.accepted[c]) {
      float v[4];
      load4_vec<float, float>(a.xp + i0, v);
      store4_vec<float, float>(a.x_out + i0, v);
      load4_vec<float, float>(a.gp + i0, v);
      store4_vec<float, float>(a.g_out + i0, v);
    }
    return;
  }
  int64_t r = i0 - c * a.M;
  for (int l = 0; l < n; ++l) {
    if (a.accepted[c]) {
      store1<float, float>(a.x_out + i0 + l, a.xp[i0 + l]);
      store1<float, float>(a.g_out + i0 + l, a.gp[i0 + l]);
    }
    if (++r == a.M) {
      r = 0;
      ++c;
    }
  }
}

GS_HOST_DEVICE void select_thread(const MalaArgs& a, int64_t groups, int64_t block, int64_t grid, int64_t thread,
                                  int64_t threads) {
  for (int64_t k = block * threads + thread; k < groups; k += grid * threads) select_group(a, k);
}

// ============================== SGLD ==========================================

constexpr int kSgldMaxTensors = 48;

// The kernel's argument block for up to kSgldMaxTensors tensors (about 2 KB).
struct SgldChunk {
  float* theta[kSgldMaxTensors];
  const float* grad[kSgldMaxTensors];
  int64_t numel[kSgldMaxTensors];
  int64_t counter[kSgldMaxTensors];      // base_k / 4: the tensor's first Philox counter
  int64_t first_block[kSgldMaxTensors + 1];  // prefix sums of the tensors' blocks
  int n;
  float lr, noise, wd;
  bool vec[kSgldMaxTensors];
};

// Blocks of one tensor: one Philox group (4 elements) per thread.
GS_HOST_DEVICE int64_t sgld_blocks(int64_t numel) { return ceil_div(ceil_div(numel, 4), kThreads); }

// The tensor that block b works on: the last k with first_block[k] <= b.
GS_HOST_DEVICE int sgld_tensor_of(const SgldChunk& ch, int64_t b) {
  int lo = 0, hi = ch.n - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (ch.first_block[mid] <= b) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// Fills `ch` with the next tensors of a list, from index i on (advanced past them),
// skipping empty ones; `base` is the stream index of tensor i's element 0 and is
// advanced likewise (langevin::sgld_round_base). Returns the chunk's blocks (0: none
// left). The launcher and the simulator both walk a list with this.
inline int64_t sgld_next_chunk(SgldChunk& ch, float* const* theta, const float* const* grad, const int64_t* numel,
                               size_t count, size_t& i, uint64_t& base, float lr, float noise, float wd) {
  ch = SgldChunk{};
  ch.lr = lr;
  ch.noise = noise;
  ch.wd = wd;
  int64_t blocks = 0;
  int n = 0;
  for (; i < count && n < kSgldMaxTensors; ++i) {
    const uint64_t b = base;
    base += langevin::sgld_round_base(static_cast<uint64_t>(numel[i]));
    if (numel[i] == 0) continue;
    ch.theta[n] = theta[i];
    ch.grad[n] = grad[i];
    ch.numel[n] = numel[i];
    ch.counter[n] = static_cast<int64_t>(b / 4);
    ch.first_block[n] = blocks;
    const int64_t v = 4 * static_cast<int64_t>(sizeof(float));
    ch.vec[n] = aligned_to(theta[i], v) && aligned_to(grad[i], v);
    blocks += sgld_blocks(numel[i]);
    ++n;
  }
  ch.n = n;
  ch.first_block[n] = blocks;
  return blocks;
}

GS_HOST_DEVICE void sgld_thread(const SgldChunk& ch, const int64_t* seed, int64_t seed_stride, int64_t block,
                                int64_t thread, int64_t threads) {
  const int k = sgld_tensor_of(ch, block);
  const int64_t grp = (block - ch.first_block[k]) * threads + thread;
  const int64_t i0 = 4 * grp;
  if (i0 >= ch.numel[k]) return;
  const SeedPair sp = read_seed(seed, seed_stride);
  const int n = static_cast<int>(min64(4, ch.numel[k] - i0));
  float th[4], g[4], eps[4], y[4];
  load_group(ch.theta[k], i0, n, ch.vec[k], th);
  load_group(ch.grad[k], i0, n, ch.vec[k], g);
  uint32_t w[4];
  philox::words(sp.seed, sp.offset + static_cast<uint64_t>(ch.counter[k] + grp), w);
  normal4(w, eps);
  GS_UNROLL
  for (int l = 0; l < 4; ++l) y[l] = langevin::sgld(th[l], g[l], ch.lr, ch.noise, ch.wd, eps[l]);
  store_group(ch.theta[k], i0, n, ch.vec[k], y);
}

}  // namespace kernels
}  // namespace gensample
