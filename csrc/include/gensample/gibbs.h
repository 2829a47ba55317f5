// Per-element math of the block Gibbs half-steps (RBMs), shared by every backend.
//
// Bernoulli layer (p(h = 1 | v) or p(v = 1 | h) of a Bernoulli-Bernoulli RBM):
//   a = acc + bias;  a = a * beta;  p = sigmoid(a);  state = (u < p) ? 1 : 0
// with acc = x @ W (or x @ W^T) from an fp32 GEMM (any summation order) and u the
// element of gensample's uniform stream at the output's flat row-major index.
// (a * 1.0f == a exactly for every non-NaN a, so beta == 1 needs no special case.)
//
// Gaussian visible layer (Gaussian-Bernoulli RBM), acc = h @ W^T:
//   mean = bias + sigma * acc;  v = mean + noise_std * eps,  eps ~ N(0, 1) from the
//   stream, noise_std = sigma / sqrt(beta) (computed once by the Python wrapper).
//
// gs_sigmoid is a bit-exact float32 logistic function: every operation is a separately
// rounded float32 operation (no FMA; gs_mul / gs_add / gs_sub), exp is Cephes' expf
// polynomial with a Cody-Waite reduction, and the final division is IEEE correctly
// rounded, so the CPU, CUDA, Triton and torch backends (gensample/ops/gibbs.py,
// sigmoid_f32) produce identical probabilities and therefore identical states. The
// sequence is specified in specs/RBM.md; it is within a few ulp of the true sigmoid.
// NaN inputs are rejected by the Python wrappers before any kernel runs.
#pragma once

#include "gensample/common.h"

namespace gensample {

// IEEE correctly rounded float32 division and floor (host: plain / and std::floor).
GS_HOST_DEVICE float gs_div_rn(float a, float b) {
#if defined(GS_ON_DEVICE)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

GS_HOST_DEVICE float gs_floor(float a) {
#if defined(GS_ON_DEVICE)
  return floorf(a);
#else
  return std::floor(a);
#endif
}

// exp(-a) via t = clamp(-a, -87, 87) = fx ln2 + r, exp(t) = 2^fx (1 + r + r^2 P(r)).
// Written branch-free with selects so that it vectorizes on the CPU.
GS_HOST_DEVICE float gs_sigmoid(float a) {
  float t = -a;
  t = t < -87.0f ? -87.0f : t;
  t = t > 87.0f ? 87.0f : t;
  const float fx = gs_floor(gs_add(gs_mul(t, 1.44269504088896341f), 0.5f));  // in [-126, 126]
  const float r = gs_sub(gs_sub(t, gs_mul(fx, 0.693359375f)), gs_mul(fx, -2.12194440e-4f));
  const float z = gs_mul(r, r);
  float y = 1.9875691500e-4f;
  y = gs_add(gs_mul(y, r), 1.3981999507e-3f);
  y = gs_add(gs_mul(y, r), 8.3334519073e-3f);
  y = gs_add(gs_mul(y, r), 4.1665795894e-2f);
  y = gs_add(gs_mul(y, r), 1.6666665459e-1f);
  y = gs_add(gs_mul(y, r), 5.0000001201e-1f);
  float e = gs_add(gs_add(gs_mul(y, z), r), 1.0f);
  const float two_fx = gs_uint_as_float(static_cast<uint32_t>(static_cast<int32_t>(fx) + 127) << 23);
  e = gs_mul(e, two_fx);
  return gs_div_rn(1.0f, gs_add(1.0f, e));
}

namespace gibbs {

// Bernoulli epilogue of one element: pre-activation acc, bias, inverse temperature
// beta, uniform u in [0, 1). Writes the probability and the 0/1 state.
GS_HOST_DEVICE void bernoulli_epilogue(float acc, float bias, float beta, float u, float& state, float& prob) {
  const float a = gs_mul(gs_add(acc, bias), beta);
  const float p = gs_sigmoid(a);
  prob = p;
  state = u < p ? 1.0f : 0.0f;
}

// Gaussian epilogue of one element: acc = (h @ W^T)_i, bias b_i, sigma_i,
// noise_std_i, standard normal eps. Writes the sample and its conditional mean.
GS_HOST_DEVICE void gaussian_epilogue(float acc, float bias, float sigma, float noise_std, float eps, float& v,
                                      float& mean) {
  const float m = gs_add(bias, gs_mul(sigma, acc));
  mean = m;
  v = gs_add(m, gs_mul(noise_std, eps));
}

}  // namespace gibbs
}  // namespace gensample
