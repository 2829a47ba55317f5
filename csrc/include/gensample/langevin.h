// Per-element math of the Langevin family: the (unadjusted) Langevin step, the
// Metropolis-adjusted (MALA) accept/reject terms and the SGLD parameter update.
//
// Convention: energies E(x), target p(x) ~ exp(-E(x)); chains are dim 0 of x viewed
// as (C, M). Per-chain quantities (step h_c, noise scale s_c, grad norm n_c) are
// float32.
//
// LANGEVIN STEP (every op a separately rounded float32 op, no FMA):
//   g' = g                                  clip_mode 0 (none)
//   g' = min(max(g, -clip), clip)           clip_mode 1 (value)
//   g' = g * scale_c,                       clip_mode 2 (norm), per chain:
//        n_c = float32(sqrt(sum_j g_cj^2))  (sum in float64)
//        scale_c = n_c > clip ? clip / n_c : 1
//   d = h_c * g';  y = x - d;  y = y + s_c * eps;  y = min(max(y, lo), hi)
// eps is element i (flat row-major index of x) of the normal stream of the seed
// pair; lo/hi = -inf/+inf when no clamp is given (then the clamp is the identity).
// min/max propagate NaN like torch.clamp.
//
// MALA (per chain c, proposal x' = x - h g + s eps from a langevin step):
//   log q(b | a) = -||b - a + h grad E(a)||^2 / (2 s^2)
//   log alpha    = E(x) - E(x') + log q(x | x') - log q(x' | x)
//   per element: fwd = (x' - x) + h g       (the residual of log q(x' | x))
//                bwd = h g' - (x' - x)      (that of log q(x | x') = x - x' + h g')
//   both squared and summed per chain in float64 (S_fwd, S_bwd), then
//   log alpha = float32((E - E') + (S_fwd - S_bwd) / (2 s^2))       (in float64)
//   accept iff u_c < exp(min(log alpha, 0)) (float32), u_c = element c of the
//   uniform stream of the accept seed pair; a NaN log alpha rejects.
//
// SGLD (one element of parameter theta, gradient g):
//   t = wd * theta; g2 = g + t; d = lr * g2; theta = theta - d; theta = theta + noise * eps
//
// Implementations: csrc/cpu/langevin_cpu.cpp (CPU), csrc/cuda/langevin_cuda.cu
// (CUDA), gensample/ops/langevin_triton.py (Triton, operation for operation), and
// the executable specification gensample/ops/langevin.py (torch backend).
#pragma once

#include "gensample/common.h"

namespace gensample {
namespace langevin {

constexpr int kClipNone = 0;
constexpr int kClipValue = 1;
constexpr int kClipNorm = 2;

// Correctly rounded float32 division (never an approximate reciprocal).
GS_HOST_DEVICE float div_rn(float a, float b) {
#if defined(GS_ON_DEVICE)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// torch.clamp(v, lo, hi) for float32: a NaN v stays NaN (comparisons are false).
GS_HOST_DEVICE float clamp(float v, float lo, float hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

// ---- Langevin step ---------------------------------------------------------

// Per-chain scale of norm clipping from the chain's raw-gradient L2 norm.
GS_HOST_DEVICE float norm_clip_scale(float norm, float clip) { return norm > clip ? div_rn(clip, norm) : 1.0f; }

// Per-chain norm from the float64 sum of squares: float32(sqrt(sum)).
GS_HOST_DEVICE float norm_from_sumsq(double sumsq) {
#if defined(GS_ON_DEVICE)
  return static_cast<float>(__dsqrt_rn(sumsq));
#else
  return static_cast<float>(std::sqrt(sumsq));
#endif
}

// The clipped gradient g' (scale is norm_clip_scale for mode 2, unused otherwise).
template <int kMode>
GS_HOST_DEVICE float clip_grad(float g, float clip, float scale) {
  if (kMode == kClipValue) return clamp(g, -clip, clip);
  if (kMode == kClipNorm) return gs_mul(g, scale);
  return g;
}

// One element of the step, given the clipped gradient gc.
template <bool kClamp>
GS_HOST_DEVICE float step_clipped(float x, float gc, float h, float s, float eps, float lo, float hi) {
  const float d = gs_mul(h, gc);
  float y = gs_sub(x, d);
  y = gs_add(y, gs_mul(s, eps));
  return kClamp ? clamp(y, lo, hi) : y;
}

// One element of the step: x' from x, raw gradient g, chain step h and noise s.
template <int kMode, bool kClamp>
GS_HOST_DEVICE float step(float x, float g, float h, float s, float eps, float clip, float scale, float lo, float hi) {
  return step_clipped<kClamp>(x, clip_grad<kMode>(g, clip, scale), h, s, eps, lo, hi);
}

// Runtime-mode version (for kernels that do not specialise on the mode).
GS_HOST_DEVICE float step_rt(int mode, bool do_clamp, float x, float g, float h, float s, float eps, float clip,
                             float scale, float lo, float hi) {
  const float gc = mode == kClipValue ? clamp(g, -clip, clip) : (mode == kClipNorm ? gs_mul(g, scale) : g);
  const float d = gs_mul(h, gc);
  float y = gs_sub(x, d);
  y = gs_add(y, gs_mul(s, eps));
  return do_clamp ? clamp(y, lo, hi) : y;
}

// ---- MALA ------------------------------------------------------------------

// Residuals of one element: fwd of log q(x' | x), bwd of log q(x | x').
GS_HOST_DEVICE void mala_residuals(float x, float g, float xp, float gp, float h, float& fwd, float& bwd) {
  const float diff = gs_sub(xp, x);
  fwd = gs_add(diff, gs_mul(h, g));
  bwd = gs_sub(gs_mul(h, gp), diff);
}

// log alpha of a chain from its energies and the float64 sums of squared residuals.
GS_HOST_DEVICE float mala_log_alpha(float e, float ep, double sum_fwd, double sum_bwd, float s) {
  const double sd = static_cast<double>(s);
  const double two_s2 = 2.0 * (sd * sd);
  return static_cast<float>((static_cast<double>(e) - static_cast<double>(ep)) + (sum_fwd - sum_bwd) / two_s2);
}

// Accept iff u < exp(min(log_alpha, 0)); NaN log_alpha rejects.
GS_HOST_DEVICE bool mala_accept(float log_alpha, float u) {
  const float m = log_alpha > 0.0f ? 0.0f : log_alpha;  // NaN stays NaN
  return u < gs_exp(m);
}

// ---- SGLD ------------------------------------------------------------------

GS_HOST_DEVICE float sgld(float theta, float g, float lr, float noise, float wd, float eps) {
  const float t = gs_mul(wd, theta);
  const float g2 = gs_add(g, t);
  const float d = gs_mul(lr, g2);
  float th = gs_sub(theta, d);
  return gs_add(th, gs_mul(noise, eps));
}

// Stream base of tensor k in an SGLD list: sum_{j<k} numel_j rounded up to 4.
GS_HOST_DEVICE uint64_t sgld_round_base(uint64_t numel) { return (numel + 3u) & ~static_cast<uint64_t>(3u); }

}  // namespace langevin
}  // namespace gensample
