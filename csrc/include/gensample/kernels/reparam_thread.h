// Per-thread bodies of the CUDA reparam_kl_fwd / reparam_kl_bwd kernels.
//
// The math is reparam.h's (sample, kl_term, backward) and random.h's stream; this
// file only decides which thread computes which element. csrc/cuda/reparam_cuda.cu
// calls these functions from its kernels; tests/cuda_sim/ runs them over every
// (blockIdx, threadIdx) of the same launch on the CPU.
//
// Forward (z: (S, R, D) contiguous, stream index of z[s, r, d] = s*R*D + r*D + d):
//   A block owns `rows_per_block` rows ("row tile"); `tpr` consecutive threads
//   (a power of two) share a row, reduce their KL partial sums with warp shuffles
//   (and shared memory when tpr > 32) and the row's first thread writes kl[r]. No
//   atomics. Work item = (row tile, row segment, sample split); items are walked by
//   a grid-stride loop, so the loop trip count is uniform over a block.
//   * aligned path (D % 4 == 0): every Philox group lies inside one row for every
//     sample; unit k of a row is the d-chunk [4k, 4k+4): the thread loads mu/logvar
//     once (a 4-vector when the view allows), adds 4 KL terms, then for each sample
//     makes one Philox call and stores a 4-vector of z.
//   * general path (D % 4 != 0): unit j of (row, sample) is the j-th Philox group
//     that overlaps the row's stream range; the thread keeps the group's lanes that
//     fall in the row (groups straddling two rows are computed by both rows, each
//     keeping its own lanes, so every z element is written exactly once). KL terms
//     are added in the pass of sample 0.
//   * rows of at least 2 * kMinUnitsPerSegment units (D >= 4096) may be split into
//     `nseg` segments handled by different blocks when there are too few row tiles
//     to fill the device (tpr == kThreads, i.e. one row per block); the
//     segments' partial sums go to a (R, nseg) workspace that kl_finalize sums in
//     a fixed order (deterministic). Likewise the samples may be split into
//     `nsplit` groups; only split 0 computes KL.
//
// Backward (grads (R, D) contiguous): an elementwise grid-stride loop over chunks
// [4k, 4k+4) of the flat (R, D) index; for each sample the eps of the chunk are one
// Philox call when s*R*D % 4 == 0 and two otherwise (regenerated, never recovered
// from z).
//
// T / opmath_t is the math type (float for float/half/bfloat16, double for double).
#pragma once

#include "gensample/kernels/launch.h"
#include "gensample/random.h"
#include "gensample/reparam.h"

namespace gensample {
namespace kernels {

// A strided (R, D) view; p == nullptr means "absent" (the value 0).
template <typename scalar_t>
struct View2 {
  const scalar_t* p;
  int64_t rs, cs;
};

template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE opmath_t load1(const View2<scalar_t>& v, int64_t r, int64_t d) {
  return v.p == nullptr ? opmath_t(0) : static_cast<opmath_t>(v.p[r * v.rs + d * v.cs]);
}

// Elements (r, d .. d+3) of a view, all in row r: a 4-vector when vec, else 4 loads.
template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE void load_row4(const View2<scalar_t>& v, bool vec, int64_t r, int64_t d, opmath_t out[4]) {
  if (v.p == nullptr) {
    out[0] = out[1] = out[2] = out[3] = opmath_t(0);
  } else if (vec) {
    load4_vec<scalar_t, opmath_t>(v.p + r * v.rs + d, out);
  } else {
    const scalar_t* p = v.p + r * v.rs + d * v.cs;
    GS_UNROLL
    for (int l = 0; l < 4; ++l) out[l] = static_cast<opmath_t>(p[l * v.cs]);
  }
}

// Lane i (dynamic, 0..3) of a 4-array without dynamic register indexing.
template <typename T>
GS_HOST_DEVICE T pick4(const T a[4], int i) {
  return i == 0 ? a[0] : (i == 1 ? a[1] : (i == 2 ? a[2] : a[3]));
}

// ============================== forward =====================================

template <typename scalar_t, typename opmath_t>
struct ReparamFwdArgs {
  View2<scalar_t> mu, lv, pm, plv;  // pm / plv absent: standard-normal prior
  scalar_t* z;                      // (S, R, D) contiguous
  scalar_t* kl;                     // (R,) contiguous
  opmath_t* ws;                     // (R, nseg) partial sums when nseg > 1
  const int64_t* seed;              // (seed, offset) on the device
  int64_t seed_stride;
  int64_t R, D, S;
  bool vmu, vlv, vpm, vplv, vz;  // 4-vector access allowed (vec4_ok)
};

// The launcher's argument block (also built by the simulator): pointers, strides
// and which views allow 4-vector access.
template <typename scalar_t>
inline bool vec_ok(const View2<scalar_t>& v, int64_t R, int64_t D) {
  return v.p != nullptr && vec4_ok(v.p, sizeof(scalar_t), R, D, v.rs, v.cs);
}

template <typename scalar_t, typename opmath_t>
inline ReparamFwdArgs<scalar_t, opmath_t> make_fwd_args(View2<scalar_t> mu, View2<scalar_t> lv, View2<scalar_t> pm,
                                                        View2<scalar_t> plv, scalar_t* z, scalar_t* kl, opmath_t* ws,
                                                        const int64_t* seed, int64_t seed_stride, int64_t R,
                                                        int64_t D, int64_t S) {
  ReparamFwdArgs<scalar_t, opmath_t> a;
  a.mu = mu;
  a.lv = lv;
  a.pm = pm;
  a.plv = plv;
  a.z = z;
  a.kl = kl;
  a.ws = ws;
  a.seed = seed;
  a.seed_stride = seed_stride;
  a.R = R;
  a.D = D;
  a.S = S;
  a.vmu = vec_ok(mu, R, D);
  a.vlv = vec_ok(lv, R, D);
  a.vpm = vec_ok(pm, R, D);
  a.vplv = vec_ok(plv, R, D);
  a.vz = z != nullptr && aligned_to(z, 4 * static_cast<int64_t>(sizeof(scalar_t)));
  return a;
}

// Minimum work units (d-chunks / Philox groups) in one row segment.
constexpr int64_t kMinUnitsPerSegment = 2 * kThreads;

struct ReparamFwdLaunch {
  bool aligned;          // D % 4 == 0
  int64_t units;         // per row and sample: d-chunks (aligned) or max Philox groups (general)
  int tpr;               // threads per row, power of two <= kThreads
  int rows_per_block;    // kThreads / tpr
  int64_t row_tiles;     // ceil(R / rows_per_block)
  int64_t nseg;          // segments per row
  int64_t units_per_seg;
  int64_t nsplit;        // sample splits
  int64_t samples_per_split;
  int64_t items;         // row_tiles * nseg * nsplit
  int64_t blocks;        // gridDim.x (0: nothing to launch)
  int threads;           // blockDim.x
};

GS_HOST_DEVICE ReparamFwdLaunch reparam_fwd_launch(int64_t R, int64_t D, int64_t S, int sm_count) {
  ReparamFwdLaunch c;
  c.threads = kThreads;
  c.aligned = D % 4 == 0;
  // A row of D elements starting anywhere on the 4-grid overlaps at most
  // (D + 2) / 4 + 1 Philox groups.
  c.units = D == 0 ? 0 : (c.aligned ? D / 4 : (D + 2) / 4 + 1);
  int tpr = 1;
  while (tpr < c.units && tpr < kThreads) tpr *= 2;
  c.tpr = tpr;
  c.rows_per_block = kThreads / tpr;
  c.row_tiles = ceil_div(R, c.rows_per_block);
  const int64_t target = static_cast<int64_t>(sm_count > 0 ? sm_count : 1) * kBlocksPerSm;
  c.nseg = 1;
  if (tpr == kThreads && c.row_tiles > 0 && c.row_tiles < target) {
    const int64_t max_seg = max64(1, c.units / kMinUnitsPerSegment);
    c.nseg = min64(ceil_div(target, c.row_tiles), max_seg);
  }
  c.units_per_seg = c.units == 0 ? 0 : ceil_div(c.units, c.nseg);
  if (c.units_per_seg > 0) c.nseg = ceil_div(c.units, c.units_per_seg);  // no empty segment
  c.nsplit = 1;
  const int64_t tiles_segs = c.row_tiles * c.nseg;
  if (S > 1 && tiles_segs > 0 && tiles_segs < target) c.nsplit = min64(ceil_div(target, tiles_segs), S);
  c.samples_per_split = S <= 0 ? 0 : ceil_div(S, c.nsplit);
  if (c.samples_per_split > 0) c.nsplit = ceil_div(S, c.samples_per_split);
  c.items = tiles_segs * c.nsplit;
  c.blocks = grid_blocks(c.items, sm_count);
  return c;
}

// What thread `thread` works on in work item `item`.
struct FwdCoords {
  int64_t r;    // row (may be >= R: idle thread, partial 0)
  int64_t seg;  // row segment
  int64_t q;    // sample split
  int lane;     // position among the row's tpr threads
};

GS_HOST_DEVICE FwdCoords fwd_coords(const ReparamFwdLaunch& c, int64_t item, int thread) {
  FwdCoords co;
  co.q = item % c.nsplit;
  const int64_t ts = item / c.nsplit;
  co.seg = ts % c.nseg;
  const int64_t tile = ts / c.nseg;
  co.r = tile * c.rows_per_block + thread / c.tpr;
  co.lane = thread % c.tpr;
  return co;
}

// aligned path: d-chunk k of row r, samples [s0, s1); returns the chunk's KL terms
// (0 unless with_kl).
template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE opmath_t fwd_chunk_aligned(const ReparamFwdArgs<scalar_t, opmath_t>& a, const SeedPair& sp,
                                          int64_t r, int64_t k, int64_t s0, int64_t s1, bool with_kl) {
  const int64_t d = 4 * k;
  opmath_t m[4], v[4];
  load_row4<scalar_t, opmath_t>(a.mu, a.vmu, r, d, m);
  load_row4<scalar_t, opmath_t>(a.lv, a.vlv, r, d, v);
  opmath_t acc = opmath_t(0);
  if (with_kl) {
    opmath_t pm[4], plv[4];
    load_row4<scalar_t, opmath_t>(a.pm, a.vpm, r, d, pm);
    load_row4<scalar_t, opmath_t>(a.plv, a.vplv, r, d, plv);
    GS_UNROLL
    for (int l = 0; l < 4; ++l) acc += reparam::kl_term<opmath_t>(m[l], v[l], pm[l], plv[l]);
  }
  const int64_t RD = a.R * a.D;
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t i0 = s * RD + r * a.D + d;  // multiple of 4
    uint32_t w[4];
    philox::words(sp.seed, sp.offset + static_cast<uint64_t>(i0 >> 2), w);
    float eps[4];
    normal4(w, eps);
    opmath_t zv[4];
    GS_UNROLL
    for (int l = 0; l < 4; ++l) zv[l] = reparam::sample<opmath_t>(m[l], v[l], static_cast<opmath_t>(eps[l]));
    if (a.vz) {
      store4_vec<scalar_t, opmath_t>(a.z + i0, zv);
    } else {
      GS_UNROLL
      for (int l = 0; l < 4; ++l) store1<scalar_t, opmath_t>(a.z + i0 + l, zv[l]);
    }
  }
  return acc;
}

// general path: Philox group j (0-based among the groups overlapping the row) of
// row r in sample s; stores z when store_z, returns the KL terms when with_kl.
template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE opmath_t fwd_group_general(const ReparamFwdArgs<scalar_t, opmath_t>& a, const SeedPair& sp,
                                          int64_t r, int64_t s, int64_t j, bool store_z, bool with_kl) {
  const int64_t base = s * a.R * a.D + r * a.D;  // stream index of (s, r, 0)
  const int64_t g = (base >> 2) + j;
  uint32_t w[4];
  philox::words(sp.seed, sp.offset + static_cast<uint64_t>(g), w);
  float eps[4];
  normal4(w, eps);
  opmath_t acc = opmath_t(0);
  GS_UNROLL
  for (int l = 0; l < 4; ++l) {
    const int64_t i = 4 * g + l;
    const int64_t d = i - base;
    if (d >= 0 && d < a.D) {
      const opmath_t m = load1<scalar_t, opmath_t>(a.mu, r, d);
      const opmath_t v = load1<scalar_t, opmath_t>(a.lv, r, d);
      if (store_z) store1<scalar_t, opmath_t>(a.z + i, reparam::sample<opmath_t>(m, v, static_cast<opmath_t>(eps[l])));
      if (with_kl) {
        acc += reparam::kl_term<opmath_t>(m, v, load1<scalar_t, opmath_t>(a.pm, r, d),
                                          load1<scalar_t, opmath_t>(a.plv, r, d));
      }
    }
  }
  return acc;
}

// Everything thread co.lane of row co.r does in one work item: stores its z
// elements and returns its partial KL sum (0 for idle threads and sample splits
// other than 0).
template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE opmath_t fwd_item(const ReparamFwdArgs<scalar_t, opmath_t>& a, const ReparamFwdLaunch& c,
                                 const SeedPair& sp, const FwdCoords& co) {
  opmath_t acc = opmath_t(0);
  if (co.r >= a.R) return acc;
  const bool with_kl = co.q == 0;
  const int64_t s0 = co.q * c.samples_per_split;
  const int64_t s1 = min64(s0 + c.samples_per_split, a.S);
  const int64_t u0 = co.seg * c.units_per_seg;
  const int64_t u1 = min64(u0 + c.units_per_seg, c.units);
  if (c.aligned) {
    for (int64_t k = u0 + co.lane; k < u1; k += c.tpr) acc += fwd_chunk_aligned(a, sp, co.r, k, s0, s1, with_kl);
  } else {
    // With S == 0 split 0 still makes the sample-0 pass, for KL only.
    const int64_t s_end = (with_kl && s1 <= s0) ? s0 + 1 : s1;
    for (int64_t s = s0; s < s_end; ++s) {
      const int64_t base = s * a.R * a.D + co.r * a.D;
      const int64_t ng = ((base + a.D - 1) >> 2) - (base >> 2) + 1;
      const int64_t j1 = min64(u1, ng);
      const bool kl_pass = with_kl && s == s0;
      for (int64_t j = u0 + co.lane; j < j1; j += c.tpr) {
        acc += fwd_group_general(a, sp, co.r, s, j, s < s1, kl_pass);
      }
    }
  }
  return acc;
}

// Called by every thread after the row reduction; `total` is the row segment's
// sum (meaningful on lane 0, which writes it).
template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE void fwd_store_kl(const ReparamFwdArgs<scalar_t, opmath_t>& a, const ReparamFwdLaunch& c,
                                 const FwdCoords& co, opmath_t total) {
  if (co.lane != 0 || co.q != 0 || co.r >= a.R) return;
  if (c.nseg == 1) {
    store1<scalar_t, opmath_t>(a.kl + co.r, total);
  } else {
    store1<opmath_t, opmath_t>(a.ws + co.r * c.nseg + co.seg, total);
  }
}

// Second kernel when nseg > 1: kl[r] = sum of the row's segment partial sums.
struct KlFinalizeLaunch {
  int64_t blocks;
  int threads;
};
GS_HOST_DEVICE KlFinalizeLaunch kl_finalize_launch(int64_t R, int sm_count) {
  KlFinalizeLaunch c;
  c.threads = kThreads;
  c.blocks = grid_blocks(ceil_div(R, kThreads), sm_count);
  return c;
}

template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE void kl_finalize_thread(const opmath_t* ws, scalar_t* kl, int64_t R, int64_t nseg, int64_t block,
                                       int64_t grid, int64_t thread, int64_t threads) {
  for (int64_t r = block * threads + thread; r < R; r += grid * threads) {
    opmath_t acc = opmath_t(0);
    for (int64_t s = 0; s < nseg; ++s) acc += ws[r * nseg + s];
    store1<scalar_t, opmath_t>(kl + r, acc);
  }
}

// ============================== backward ====================================

template <typename scalar_t>
struct ReparamBwdArgs {
  const scalar_t* gz;  // (S, R, D) strided; nullptr: grad_z is None (zeros)
  int64_t gz_ss, gz_rs, gz_cs;
  const scalar_t* gkl;  // (R,) strided; nullptr: grad_kl is None (zeros)
  int64_t gkl_s;
  View2<scalar_t> mu, lv, pm, plv;
  scalar_t *dmu, *dlv;    // (R, D) contiguous
  scalar_t *dpm, *dplv;   // (R, D) contiguous, or nullptr (no prior gradients)
  const int64_t* seed;
  int64_t seed_stride;
  int64_t R, D, S;
  bool vgz, vmu, vlv, vpm, vplv, vout;  // 4-vector access allowed (vec4_ok / vec4_ok3)
};

template <typename scalar_t>
inline ReparamBwdArgs<scalar_t> make_bwd_args(const scalar_t* gz, int64_t gz_ss, int64_t gz_rs, int64_t gz_cs,
                                              const scalar_t* gkl, int64_t gkl_s, View2<scalar_t> mu,
                                              View2<scalar_t> lv, View2<scalar_t> pm, View2<scalar_t> plv,
                                              scalar_t* dmu, scalar_t* dlv, scalar_t* dpm, scalar_t* dplv,
                                              const int64_t* seed, int64_t seed_stride, int64_t R, int64_t D,
                                              int64_t S) {
  const int64_t es = sizeof(scalar_t);
  ReparamBwdArgs<scalar_t> a;
  a.gz = gz;
  a.gz_ss = gz_ss;
  a.gz_rs = gz_rs;
  a.gz_cs = gz_cs;
  a.gkl = gkl;
  a.gkl_s = gkl_s;
  a.mu = mu;
  a.lv = lv;
  a.pm = pm;
  a.plv = plv;
  a.dmu = dmu;
  a.dlv = dlv;
  a.dpm = dpm;
  a.dplv = dplv;
  a.seed = seed;
  a.seed_stride = seed_stride;
  a.R = R;
  a.D = D;
  a.S = S;
  a.vgz = gz != nullptr && vec4_ok3(gz, es, S, R, D, gz_ss, gz_rs, gz_cs);
  a.vmu = vec_ok(mu, R, D);
  a.vlv = vec_ok(lv, R, D);
  a.vpm = vec_ok(pm, R, D);
  a.vplv = vec_ok(plv, R, D);
  a.vout = aligned_to(dmu, 4 * es) && aligned_to(dlv, 4 * es) && (dpm == nullptr || aligned_to(dpm, 4 * es)) &&
           (dplv == nullptr || aligned_to(dplv, 4 * es));
  return a;
}

struct ReparamBwdLaunch {
  int64_t chunks;  // ceil(R * D / 4)
  int64_t blocks;
  int threads;
};

GS_HOST_DEVICE ReparamBwdLaunch reparam_bwd_launch(int64_t R, int64_t D, int sm_count) {
  ReparamBwdLaunch c;
  const int64_t n = R * D;
  c.chunks = n / 4 + (n % 4 != 0 ? 1 : 0);
  c.threads = kThreads;
  c.blocks = grid_blocks(ceil_div(c.chunks, kThreads), sm_count);
  return c;
}

// Four consecutive elements (starting at flat f0 = 4k) of a view; rr/dd are the
// lanes' (row, col); n live lanes. vec only for full chunks.
template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE void load_flat4(const scalar_t* p, int64_t rs, int64_t cs, bool vec, const int64_t rr[4],
                               const int64_t dd[4], int n, opmath_t out[4]) {
  if (p == nullptr) {
    out[0] = out[1] = out[2] = out[3] = opmath_t(0);
  } else if (vec && n == 4) {
    load4_vec<scalar_t, opmath_t>(p + rr[0] * rs + dd[0], out);
  } else {
    GS_UNROLL
    for (int l = 0; l < 4; ++l) out[l] = l < n ? static_cast<opmath_t>(p[rr[l] * rs + dd[l] * cs]) : opmath_t(0);
  }
}

template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE void store_flat4(scalar_t* p, int64_t f0, bool vec, int n, const opmath_t v[4]) {
  if (vec && n == 4) {
    store4_vec<scalar_t, opmath_t>(p + f0, v);
  } else {
    GS_UNROLL
    for (int l = 0; l < 4; ++l) {
      if (l < n) store1<scalar_t, opmath_t>(p + f0 + l, v[l]);
    }
  }
}

// Chunk k: elements f = 4k .. 4k+3 of the flat (R, D) index.
template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE void bwd_chunk(const ReparamBwdArgs<scalar_t>& a, const SeedPair& sp, int64_t k) {
  const int64_t RD = a.R * a.D;
  const int64_t f0 = 4 * k;
  const int n = static_cast<int>(min64(4, RD - f0));
  int64_t r0, d0;
  if (RD <= static_cast<int64_t>(UINT32_MAX)) {  // 32-bit division is much cheaper on the GPU
    const uint32_t q = static_cast<uint32_t>(f0) / static_cast<uint32_t>(a.D);
    r0 = q;
    d0 = f0 - r0 * a.D;
  } else {
    r0 = f0 / a.D;
    d0 = f0 - r0 * a.D;
  }
  int64_t rr[4], dd[4];
  rr[0] = r0;
  dd[0] = d0;
  GS_UNROLL
  for (int l = 1; l < 4; ++l) {
    const bool wrap = dd[l - 1] + 1 == a.D;
    rr[l] = wrap ? rr[l - 1] + 1 : rr[l - 1];
    dd[l] = wrap ? 0 : dd[l - 1] + 1;
  }
  opmath_t m[4], v[4], pm[4], plv[4];
  load_flat4<scalar_t, opmath_t>(a.mu.p, a.mu.rs, a.mu.cs, a.vmu, rr, dd, n, m);
  load_flat4<scalar_t, opmath_t>(a.lv.p, a.lv.rs, a.lv.cs, a.vlv, rr, dd, n, v);
  load_flat4<scalar_t, opmath_t>(a.pm.p, a.pm.rs, a.pm.cs, a.vpm, rr, dd, n, pm);
  load_flat4<scalar_t, opmath_t>(a.plv.p, a.plv.rs, a.plv.cs, a.vplv, rr, dd, n, plv);
  opmath_t dkl[4];
  GS_UNROLL
  for (int l = 0; l < 4; ++l) {
    dkl[l] = (a.gkl != nullptr && l < n) ? static_cast<opmath_t>(a.gkl[rr[l] * a.gkl_s]) : opmath_t(0);
  }
  opmath_t dz_sum[4] = {opmath_t(0), opmath_t(0), opmath_t(0), opmath_t(0)};
  opmath_t dz_eps[4] = {opmath_t(0), opmath_t(0), opmath_t(0), opmath_t(0)};
  if (a.gz != nullptr) {
    for (int64_t s = 0; s < a.S; ++s) {
      opmath_t gz[4];
      load_flat4<scalar_t, opmath_t>(a.gz + s * a.gz_ss, a.gz_rs, a.gz_cs, a.vgz, rr, dd, n, gz);
      // Stream indices s*RD + f0 + l: lanes m0 .. m0+3 of groups g0, g0 + 1.
      const int64_t b = s * RD + f0;
      const uint64_t g0 = static_cast<uint64_t>(b >> 2);
      const int m0 = static_cast<int>(b & 3);
      uint32_t w[4];
      float e0[4], e1[4];
      philox::words(sp.seed, sp.offset + g0, w);
      normal4(w, e0);
      if (m0 != 0) {
        philox::words(sp.seed, sp.offset + g0 + 1, w);
        normal4(w, e1);
      }
      GS_UNROLL
      for (int l = 0; l < 4; ++l) {
        const int idx = m0 + l;
        const float eps = idx < 4 ? pick4(e0, idx) : pick4(e1, idx - 4);
        dz_sum[l] += gz[l];
        dz_eps[l] += gz[l] * static_cast<opmath_t>(eps);
      }
    }
  }
  opmath_t gmu[4], glv[4], gpm[4], gplv[4];
  GS_UNROLL
  for (int l = 0; l < 4; ++l) {
    const reparam::Grads<opmath_t> g = reparam::backward<opmath_t>(m[l], v[l], pm[l], plv[l], dz_sum[l], dz_eps[l], dkl[l]);
    gmu[l] = g.mu;
    glv[l] = g.lv;
    gpm[l] = g.pm;
    gplv[l] = g.plv;
  }
  store_flat4<scalar_t, opmath_t>(a.dmu, f0, a.vout, n, gmu);
  store_flat4<scalar_t, opmath_t>(a.dlv, f0, a.vout, n, glv);
  if (a.dpm != nullptr) store_flat4<scalar_t, opmath_t>(a.dpm, f0, a.vout, n, gpm);
  if (a.dplv != nullptr) store_flat4<scalar_t, opmath_t>(a.dplv, f0, a.vout, n, gplv);
}

template <typename scalar_t, typename opmath_t>
GS_HOST_DEVICE void bwd_thread(const ReparamBwdArgs<scalar_t>& a, int64_t chunks, int64_t block, int64_t grid,
                               int64_t thread, int64_t threads) {
  const SeedPair sp = read_seed(a.seed, a.seed_stride);
  for (int64_t k = block * threads + thread; k < chunks; k += grid * threads) bwd_chunk<scalar_t, opmath_t>(a, sp, k);
}

}  // namespace kernels
}  // namespace gensample
