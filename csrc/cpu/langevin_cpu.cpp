// CPU kernels of the Langevin family: langevin_step, langevin_step_, mala_accept_,
// sgld_step_ (schemas in csrc/langevin_ops.cpp, math in gensample/langevin.h, spec
// in gensample/ops/langevin.py).
//
// Work decomposition (all ops): the flat element range [0, C * M) of x (chains are
// rows of length M) is cut into tasks of kGrain elements at fixed boundaries
// (multiples of kGrain, hence of 4: whole Philox counters), independent of the
// thread count; workers claim tasks dynamically (parallel_tasks). A task walks its range in
// sub-blocks of kSub elements: the sub-block's normals are generated into an L1
// buffer with the vectorized Philox + Box-Muller of random_cpu.cpp (normal_fill),
// then the step runs over each chain segment of the sub-block (a loop over the
// header formula, auto-vectorized in the AVX2 copy), reading x and grad and writing
// x' once: 12 bytes per element of memory traffic.
//
// Per-chain sums (gradient norms, MALA's squared residuals) are float64 partial sums
// per (task, chain segment), stored in slot t + c (unique: a task's chains start at
// or after the previous task's last one), then added per chain in task order: the
// result depends on neither the thread count nor the scheduling.
//   * norm clipping: a reduction pass over the chains that span several tasks, then
//     the step pass, which first norms the chains lying inside its task (their grad
//     is then read from cache by the step);
//   * want_norm without norm clipping: the sums are taken in the step pass;
//   * mala_accept_: one pass over x, grad, x', grad' for both residual sums, the
//     per-chain decision, then a pass that copies only the accepted chains' rows;
//   * sgld_step_: one parallel region over the chunks of all tensors of the list.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/ArrayRef.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

#include "cpu_kernels.h"
#include "gensample/langevin.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace gensample {
namespace cpu {
namespace {

namespace lg = gensample::langevin;

// Elements per parallel task (64 KiB per float array) and per sub-block (the L1
// eps buffer). Multiples of 64: normal_fill's bulk block (16 counters).
constexpr int64_t kGrain = 16384;
constexpr int64_t kSub = 1024;
static_assert(kGrain % kSub == 0 && kSub % 64 == 0, "tasks hold whole sub-blocks of whole counter blocks");

const char* const kOp = "gensample::langevin (cpu): ";

// ---------------------------------------------------------------------------
// Hot loops, compiled twice: for AVX2 (suffix _avx2) and for the baseline ISA (_base).
// The header formulas are inlined into each copy; GCC vectorizes the elementwise
// loops (no FMA: -ffp-contract=off and FMA is not enabled), so both give the same
// bits. Float64 sums of squares use explicit 4-lane double vectors in a fixed order.

typedef double d4 __attribute__((vector_size(32)));
typedef float f4 __attribute__((vector_size(16)));
typedef float uf4 __attribute__((vector_size(16), aligned(4), may_alias));

#define GS_DEFINE_LOOPS(SFX, ATTR)                                                                                    \
  /* out[i] = step(x[i], g[i], ...) */                                                                                \
  template <int kMode, bool kClamp>                                                                                   \
  ATTR __attribute__((noinline)) void step_out##SFX(const float* GS_RESTRICT x, const float* GS_RESTRICT g,          \
                                                    const float* GS_RESTRICT eps, int64_t n, float h, float s,       \
                                                    float clip, float scale, float lo, float hi,                      \
                                                    float* GS_RESTRICT out) {                                         \
    for (int64_t i = 0; i < n; ++i) out[i] = lg::step<kMode, kClamp>(x[i], g[i], h, s, eps[i], clip, scale, lo, hi); \
  }                                                                                                                   \
  /* x[i] = step(x[i], g[i], ...) */                                                                                  \
  template <int kMode, bool kClamp>                                                                                   \
  ATTR __attribute__((noinline)) void step_inplace##SFX(float* GS_RESTRICT x, const float* GS_RESTRICT g,            \
                                                        const float* GS_RESTRICT eps, int64_t n, float h, float s,   \
                                                        float clip, float scale, float lo, float hi) {                \
    for (int64_t i = 0; i < n; ++i) x[i] = lg::step<kMode, kClamp>(x[i], g[i], h, s, eps[i], clip, scale, lo, hi);   \
  }                                                                                                                   \
  /* sum of p[i]^2 in float64: 4 vectors of 4 lanes, then lanes, then the tail */                                    \
  ATTR __attribute__((noinline)) double sumsq##SFX(const float* GS_RESTRICT p, int64_t n) {                         \
    d4 a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;                                                                  \
    int64_t i = 0;                                                                                                    \
    for (; i + 16 <= n; i += 16) {                                                                                    \
      const d4 v0 = __builtin_convertvector(*reinterpret_cast<const uf4*>(p + i), d4);                               \
      const d4 v1 = __builtin_convertvector(*reinterpret_cast<const uf4*>(p + i + 4), d4);                           \
      const d4 v2 = __builtin_convertvector(*reinterpret_cast<const uf4*>(p + i + 8), d4);                           \
      const d4 v3 = __builtin_convertvector(*reinterpret_cast<const uf4*>(p + i + 12), d4);                          \
      a0 += v0 * v0;                                                                                                  \
      a1 += v1 * v1;                                                                                                  \
      a2 += v2 * v2;                                                                                                  \
      a3 += v3 * v3;                                                                                                  \
    }                                                                                                                 \
    const d4 a = (a0 + a1) + (a2 + a3);                                                                               \
    double r = (a[0] + a[1]) + (a[2] + a[3]);                                                                         \
    for (; i < n; ++i) r += static_cast<double>(p[i]) * static_cast<double>(p[i]);                                   \
    return r;                                                                                                         \
  }                                                                                                                   \
  /* MALA residuals of n elements into fwd/bwd */                                                                     \
  ATTR __attribute__((noinline)) void mala_res##SFX(const float* GS_RESTRICT x, const float* GS_RESTRICT g,          \
                                                    const float* GS_RESTRICT xp, const float* GS_RESTRICT gp,        \
                                                    int64_t n, float h, float* GS_RESTRICT fwd,                       \
                                                    float* GS_RESTRICT bwd) {                                         \
    for (int64_t i = 0; i < n; ++i) {                                                                                 \
      float f, b;                                                                                                     \
      lg::mala_residuals(x[i], g[i], xp[i], gp[i], h, f, b);                                                          \
      fwd[i] = f;                                                                                                     \
      bwd[i] = b;                                                                                                     \
    }                                                                                                                 \
  }                                                                                                                   \
  ATTR __attribute__((noinline)) void sgld_loop##SFX(float* GS_RESTRICT p, const float* GS_RESTRICT g,               \
                                                     const float* GS_RESTRICT eps, int64_t n, float lr, float noise,  \
                                                     float wd) {                                                      \
    for (int64_t i = 0; i < n; ++i) p[i] = lg::sgld(p[i], g[i], lr, noise, wd, eps[i]);                               \
  }

GS_DEFINE_LOOPS(_base, )
#if defined(GS_CPU_AVX2_PATH)
GS_DEFINE_LOOPS(_avx2, GS_TARGET_AVX2)
#define GS_PICK(name, ...) (use_avx2() ? name##_avx2 __VA_ARGS__ : name##_base __VA_ARGS__)
#else
#define GS_PICK(name, ...) (name##_base __VA_ARGS__)
#endif
#undef GS_DEFINE_LOOPS

double sumsq(const float* p, int64_t n) { return GS_PICK(sumsq, (p, n)); }

// ---------------------------------------------------------------------------
// Dynamic scheduling of the tasks: each of the (at most) at::get_num_threads()
// workers claims the next task from an atomic counter, so a worker that the OS
// preempts (a busy or shared machine) does not leave half of the work waiting
// behind it, as a static split would. Results do not depend on which worker runs
// which task. f(t, scratch) with a per-worker L1 scratch of 2 x kSub floats.
struct Scratch {
  alignas(64) float a[kSub];
  alignas(64) float b[kSub];
};

template <typename F>
void parallel_tasks(int64_t ntasks, const F& f) {
  if (ntasks <= 0) return;
  const int64_t nw = std::min<int64_t>(at::get_num_threads(), ntasks);
  if (nw <= 1 || at::in_parallel_region()) {
    Scratch sc;
    for (int64_t t = 0; t < ntasks; ++t) f(t, sc);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, nw, 1, [&](int64_t w0, int64_t w1) {
    Scratch sc;
    for (int64_t w = w0; w < w1; ++w) {  // one worker per index; loop kept for generality
      for (int64_t t = next.fetch_add(1, std::memory_order_relaxed); t < ntasks;
           t = next.fetch_add(1, std::memory_order_relaxed))
        f(t, sc);
    }
  });
}

// ---------------------------------------------------------------------------
// Task geometry over the flat range [0, N) of a (C, M) tensor.

struct Flat {
  int64_t C, M, N, ntasks;
  Flat(int64_t C_, int64_t M_) : C(C_), M(M_), N(C_ * M_), ntasks((C_ * M_ + kGrain - 1) / kGrain) {}
  int64_t chain_of(int64_t e) const { return e / M; }  // M > 0
  // Number of partial-sum slots (t + c is unique over the tasks' chain segments).
  int64_t nslots() const { return ntasks + C; }
};

// Calls f(c, e0, e1) for each chain segment [e0, e1) of [b0, b1) (M > 0).
template <typename F>
GS_ALWAYS_INLINE void for_segments(const Flat& F_, int64_t b0, int64_t b1, F&& f) {
  int64_t e = b0;
  while (e < b1) {
    const int64_t c = e / F_.M;
    const int64_t end = std::min(b1, (c + 1) * F_.M);
    f(c, e, end);
    e = end;
  }
}

// Per-chain float64 sums from per-(task, chain) slots, added in task order.
void combine_slots(const Flat& F, const double* slots, int64_t stride, int64_t k, double* out) {
  at::parallel_for(0, F.C, 4096, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t t0 = (c * F.M) / kGrain;
      const int64_t t1 = ((c + 1) * F.M - 1) / kGrain;
      double s = slots[(t0 + c) * stride + k];
      for (int64_t t = t0 + 1; t <= t1; ++t) s += slots[(t + c) * stride + k];
      out[c] = s;
    }
  });
}

// ---------------------------------------------------------------------------
// Checks.

void check_f32(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), kOp, name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat, kOp, name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), kOp, name, " must be contiguous");
}

void check_xg(const at::Tensor& x, const at::Tensor& g, const char* xn, const char* gn) {
  check_f32(x, xn);
  TORCH_CHECK(x.dim() == 2, kOp, xn, " must be 2-D (C, M), got shape ", x.sizes());
  check_f32(g, gn);
  TORCH_CHECK(g.sizes() == x.sizes(), kOp, gn, " must have ", xn, "'s shape ", x.sizes(), ", got ", g.sizes());
}

void check_chain_vec(const at::Tensor& t, const char* name, int64_t C) {
  check_f32(t, name);
  TORCH_CHECK(t.dim() == 1 && t.size(0) == C, kOp, name, " must have shape (C,) = (", C, ",), got ", t.sizes());
}

// ---------------------------------------------------------------------------
// langevin_step / langevin_step_

template <int kMode, bool kClamp>
void step_segment(const float* x, const float* g, const float* eps, int64_t n, float h, float s, float clip,
                  float scale, float lo, float hi, float* out) {
  if (out == x)
    GS_PICK(step_inplace, <kMode, kClamp>(out, g, eps, n, h, s, clip, scale, lo, hi));
  else
    GS_PICK(step_out, <kMode, kClamp>(x, g, eps, n, h, s, clip, scale, lo, hi, out));
}

struct StepArgs {
  const float* x;
  const float* g;
  const float* h;
  const float* s;
  float* scale;  // per chain (norm clipping) or null
  float* norm;   // per chain (norm clipping): chains inside one task are normed in the step pass
  float* out;
  double* slots;  // per-(task, chain) sums of g^2 (fused norm) or null
  uint64_t key, offset;
  float clip, lo, hi;
};

template <int kMode, bool kClamp>
void step_pass(const Flat& F, const StepArgs& a) {
  parallel_tasks(F.ntasks, [&](int64_t t, Scratch& sc) {
    float* eps = sc.a;
    const int64_t b0 = t * kGrain, b1 = std::min(F.N, b0 + kGrain);
    if (a.slots) {
      for_segments(F, b0, b1, [&](int64_t c, int64_t, int64_t) { a.slots[t + c] = 0.0; });
    }
    if (kMode == lg::kClipNorm) {
      // Chains that lie inside this task: their norm and scale now (grad then stays
      // in cache for the step below); the others were done by norm_straddling.
      for_segments(F, b0, b1, [&](int64_t c, int64_t e0, int64_t e1) {
        if (e1 - e0 != F.M) return;
        a.norm[c] = lg::norm_from_sumsq(sumsq(a.g + e0, e1 - e0));
        a.scale[c] = lg::norm_clip_scale(a.norm[c], a.clip);
      });
    }
    for (int64_t s0 = b0; s0 < b1; s0 += kSub) {
      const int64_t s1 = std::min(b1, s0 + kSub);
      normal_fill(a.key, a.offset, static_cast<uint64_t>(s0), s1 - s0, eps);
      for_segments(F, s0, s1, [&](int64_t c, int64_t e0, int64_t e1) {
        step_segment<kMode, kClamp>(a.x + e0, a.g + e0, eps + (e0 - s0), e1 - e0, a.h[c], a.s[c], a.clip,
                                    kMode == lg::kClipNorm ? a.scale[c] : 1.0f, a.lo, a.hi, a.out + e0);
        if (a.slots) a.slots[t + c] += sumsq(a.g + e0, e1 - e0);
      });
    }
  });
}

// Whether chain c spans more than one task.
GS_ALWAYS_INLINE bool straddles(const Flat& F, int64_t c) { return (c * F.M) / kGrain != ((c + 1) * F.M - 1) / kGrain; }

// Norm and scale of the chains that span several tasks (all chains when M >= kGrain):
// a reduction pass over their segments (sums per (task, chain) slot), then the sums
// in task order. The step pass does the chains that lie inside one task; either way
// a chain's sum is the same sequence of sumsq calls over its task segments.
void norm_straddling(const Flat& F, const float* g, float clip, float* norm, float* scale) {
  // No chain spans two tasks when chains tile the tasks exactly (kGrain % M == 0,
  // e.g. 32x32 images) or there is one task: skip both parallel regions.
  if (F.M <= 1 || F.ntasks <= 1 || (F.M <= kGrain && kGrain % F.M == 0)) return;
  std::vector<double> slots(static_cast<size_t>(F.nslots()));
  parallel_tasks(F.ntasks, [&](int64_t t, Scratch&) {
    const int64_t b0 = t * kGrain, b1 = std::min(F.N, b0 + kGrain);
    for_segments(F, b0, b1, [&](int64_t c, int64_t e0, int64_t e1) {
      if (e1 - e0 != F.M) slots[t + c] = sumsq(g + e0, e1 - e0);
    });
  });
  at::parallel_for(0, F.C, 4096, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      if (!straddles(F, c)) continue;
      const int64_t t0 = (c * F.M) / kGrain;
      const int64_t t1 = ((c + 1) * F.M - 1) / kGrain;
      double s = slots[t0 + c];
      for (int64_t t = t0 + 1; t <= t1; ++t) s += slots[t + c];
      norm[c] = lg::norm_from_sumsq(s);
      scale[c] = lg::norm_clip_scale(norm[c], clip);
    }
  });
}

at::Tensor langevin_impl(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& step_size,
                         const at::Tensor& noise_scale, const at::Tensor& seed, double grad_clip, int64_t clip_mode,
                         double clamp_lo, double clamp_hi, bool want_norm, at::Tensor& out) {
  check_xg(x, grad, "x", "grad");
  const int64_t C = x.size(0), M = x.size(1);
  check_chain_vec(step_size, "step_size", C);
  check_chain_vec(noise_scale, "noise_scale", C);
  TORCH_CHECK(clip_mode >= 0 && clip_mode <= 2, kOp, "clip_mode must be 0 (none), 1 (value) or 2 (norm), got ",
              clip_mode);
  uint64_t key, offset;
  read_seed(seed, key, offset);
  const bool need_norm = want_norm || clip_mode == lg::kClipNorm;
  at::Tensor norm = at::empty({need_norm ? C : 0}, x.options());
  const Flat F(C, M);
  if (need_norm && (C == 0 || M == 0)) norm.zero_();
  if (F.N == 0) return norm;

  StepArgs a;
  a.x = x.const_data_ptr<float>();
  a.g = grad.const_data_ptr<float>();
  a.h = step_size.const_data_ptr<float>();
  a.s = noise_scale.const_data_ptr<float>();
  a.out = out.mutable_data_ptr<float>();
  a.key = key;
  a.offset = offset;
  a.clip = static_cast<float>(grad_clip);
  a.lo = static_cast<float>(clamp_lo);
  a.hi = static_cast<float>(clamp_hi);
  a.scale = nullptr;
  a.norm = nullptr;
  a.slots = nullptr;
  const bool do_clamp = !(std::isinf(clamp_lo) && clamp_lo < 0 && std::isinf(clamp_hi) && clamp_hi > 0);

  const bool fused_norm = want_norm && clip_mode != lg::kClipNorm;
  std::vector<double> slots(fused_norm ? static_cast<size_t>(F.nslots()) : 0);
  std::vector<double> sums(fused_norm ? static_cast<size_t>(C) : 0);
  std::vector<float> scale;
  float* nrm = need_norm ? norm.mutable_data_ptr<float>() : nullptr;
  if (clip_mode == lg::kClipNorm) {
    scale.resize(static_cast<size_t>(C));
    a.scale = scale.data();
    a.norm = nrm;
    norm_straddling(F, a.g, a.clip, nrm, a.scale);
  } else if (want_norm) {
    a.slots = slots.data();
  }

#define GS_STEP_CASE(MODE)               \
  if (do_clamp)                          \
    step_pass<MODE, true>(F, a);         \
  else                                   \
    step_pass<MODE, false>(F, a);
  if (clip_mode == lg::kClipNone) {
    GS_STEP_CASE(lg::kClipNone)
  } else if (clip_mode == lg::kClipValue) {
    GS_STEP_CASE(lg::kClipValue)
  } else {
    GS_STEP_CASE(lg::kClipNorm)
  }
#undef GS_STEP_CASE

  if (a.slots) {
    combine_slots(F, slots.data(), 1, 0, sums.data());
    for (int64_t c = 0; c < C; ++c) nrm[c] = lg::norm_from_sumsq(sums[c]);
  }
  return norm;
}

std::tuple<at::Tensor, at::Tensor> langevin_step_cpu(const at::Tensor& x, const at::Tensor& grad,
                                                     const at::Tensor& step_size, const at::Tensor& noise_scale,
                                                     const at::Tensor& seed, double grad_clip, int64_t clip_mode,
                                                     double clamp_lo, double clamp_hi, bool want_norm) {
  check_xg(x, grad, "x", "grad");
  at::Tensor out = empty_output(x.sizes(), x.options());
  at::Tensor norm =
      langevin_impl(x, grad, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi, want_norm, out);
  return {out, norm};
}

at::Tensor langevin_step_inplace_cpu(at::Tensor& x, const at::Tensor& grad, const at::Tensor& step_size,
                                     const at::Tensor& noise_scale, const at::Tensor& seed, double grad_clip,
                                     int64_t clip_mode, double clamp_lo, double clamp_hi, bool want_norm) {
  return langevin_impl(x, grad, step_size, noise_scale, seed, grad_clip, clip_mode, clamp_lo, clamp_hi, want_norm,
                       x);
}

// ---------------------------------------------------------------------------
// mala_accept_

std::tuple<at::Tensor, at::Tensor> mala_accept_cpu(at::Tensor& x, at::Tensor& grad, at::Tensor& energy,
                                                   const at::Tensor& x_prop, const at::Tensor& grad_prop,
                                                   const at::Tensor& energy_prop, const at::Tensor& step_size,
                                                   const at::Tensor& noise_scale, const at::Tensor& seed) {
  check_xg(x, grad, "x", "grad");
  check_xg(x, x_prop, "x", "x_prop");
  check_xg(x, grad_prop, "x", "grad_prop");
  const int64_t C = x.size(0), M = x.size(1);
  check_chain_vec(energy, "energy", C);
  check_chain_vec(energy_prop, "energy_prop", C);
  check_chain_vec(step_size, "step_size", C);
  check_chain_vec(noise_scale, "noise_scale", C);
  uint64_t key, offset;
  read_seed(seed, key, offset);
  at::Tensor accepted = at::empty({C}, x.options().dtype(at::kBool));
  at::Tensor log_alpha = at::empty({C}, x.options());
  if (C == 0) return {accepted, log_alpha};

  const float* xv = x.const_data_ptr<float>();
  const float* gv = grad.const_data_ptr<float>();
  const float* xp = x_prop.const_data_ptr<float>();
  const float* gp = grad_prop.const_data_ptr<float>();
  const float* h = step_size.const_data_ptr<float>();
  const Flat F(C, M);

  // Pass 1: per-(task, chain) sums of both squared residuals.
  std::vector<double> sums(static_cast<size_t>(2 * C), 0.0);
  if (F.N > 0) {
    std::vector<double> slots(static_cast<size_t>(2 * F.nslots()));
    parallel_tasks(F.ntasks, [&](int64_t t, Scratch& sc) {
      float* fwd = sc.a;
      float* bwd = sc.b;
      const int64_t b0 = t * kGrain, b1 = std::min(F.N, b0 + kGrain);
      for_segments(F, b0, b1, [&](int64_t c, int64_t, int64_t) {
        slots[2 * (t + c)] = 0.0;
        slots[2 * (t + c) + 1] = 0.0;
      });
      for (int64_t s0 = b0; s0 < b1; s0 += kSub) {
        const int64_t s1 = std::min(b1, s0 + kSub);
        for_segments(F, s0, s1, [&](int64_t c, int64_t e0, int64_t e1) {
          const int64_t n = e1 - e0;
          GS_PICK(mala_res, (xv + e0, gv + e0, xp + e0, gp + e0, n, h[c], fwd, bwd));
          slots[2 * (t + c)] += sumsq(fwd, n);
          slots[2 * (t + c) + 1] += sumsq(bwd, n);
        });
      }
    });
    std::vector<double> tmp(static_cast<size_t>(C));
    combine_slots(F, slots.data(), 2, 0, tmp.data());
    for (int64_t c = 0; c < C; ++c) sums[2 * c] = tmp[c];
    combine_slots(F, slots.data(), 2, 1, tmp.data());
    for (int64_t c = 0; c < C; ++c) sums[2 * c + 1] = tmp[c];
  }

  // Per-chain decision.
  std::vector<float> u(static_cast<size_t>(C));
  uniform_fill(key, offset, 0, C, u.data());
  const float* e = energy.const_data_ptr<float>();
  const float* ep = energy_prop.const_data_ptr<float>();
  const float* s = noise_scale.const_data_ptr<float>();
  bool* acc = accepted.mutable_data_ptr<bool>();
  float* la = log_alpha.mutable_data_ptr<float>();
  float* ev = energy.mutable_data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    la[c] = lg::mala_log_alpha(e[c], ep[c], sums[2 * c], sums[2 * c + 1], s[c]);
    acc[c] = lg::mala_accept(la[c], u[c]);
    if (acc[c]) ev[c] = ep[c];
  }

  // Pass 2: copy the accepted chains' rows.
  if (F.N > 0) {
    float* xo = x.mutable_data_ptr<float>();
    float* go = grad.mutable_data_ptr<float>();
    parallel_tasks(F.ntasks, [&](int64_t t, Scratch&) {
      const int64_t b0 = t * kGrain, b1 = std::min(F.N, b0 + kGrain);
      for_segments(F, b0, b1, [&](int64_t c, int64_t e0, int64_t e1) {
        if (!acc[c]) return;
        const size_t bytes = static_cast<size_t>(e1 - e0) * sizeof(float);
        std::memcpy(xo + e0, xp + e0, bytes);
        std::memcpy(go + e0, gp + e0, bytes);
      });
    });
  }
  return {accepted, log_alpha};
}

// ---------------------------------------------------------------------------
// sgld_step_

void sgld_step_cpu(at::TensorList params, at::TensorList grads, double lr, double noise_scale, double weight_decay,
                   const at::Tensor& seed) {
  TORCH_CHECK(params.size() == grads.size(), kOp, "params and grads must have the same length, got ",
              params.size(), " and ", grads.size());
  uint64_t key, offset;
  read_seed(seed, key, offset);
  struct Task {
    float* p;
    const float* g;
    uint64_t base;  // stream index of p[0]
    int64_t n;
  };
  std::vector<Task> tasks;
  uint64_t base = 0;
  for (size_t k = 0; k < params.size(); ++k) {
    const at::Tensor& p = params[k];
    const at::Tensor& g = grads[k];
    check_f32(p, "params[k]");
    check_f32(g, "grads[k]");
    TORCH_CHECK(g.sizes() == p.sizes(), kOp, "grads[", k, "] must have params[", k, "]'s shape ", p.sizes(),
                ", got ", g.sizes());
    const int64_t n = p.numel();
    float* pp = p.mutable_data_ptr<float>();
    const float* gg = g.const_data_ptr<float>();
    for (int64_t s0 = 0; s0 < n; s0 += kGrain)
      tasks.push_back({pp + s0, gg + s0, base + static_cast<uint64_t>(s0), std::min(kGrain, n - s0)});
    base += lg::sgld_round_base(static_cast<uint64_t>(n));
  }
  const float lrf = static_cast<float>(lr), nsf = static_cast<float>(noise_scale),
              wdf = static_cast<float>(weight_decay);
  parallel_tasks(static_cast<int64_t>(tasks.size()), [&](int64_t t, Scratch& sc) {
    const Task& T = tasks[t];
    for (int64_t s0 = 0; s0 < T.n; s0 += kSub) {
      const int64_t n = std::min(kSub, T.n - s0);
      normal_fill(key, offset, T.base + static_cast<uint64_t>(s0), n, sc.a);
      GS_PICK(sgld_loop, (T.p + s0, T.g + s0, sc.a, n, lrf, nsf, wdf));
    }
  });
}

}  // namespace
}  // namespace cpu
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CPU, m) {
  m.impl("langevin_step", &gensample::cpu::langevin_step_cpu);
  m.impl("langevin_step_", &gensample::cpu::langevin_step_inplace_cpu);
  m.impl("mala_accept_", &gensample::cpu::mala_accept_cpu);
  m.impl("sgld_step_", &gensample::cpu::sgld_step_cpu);
}
