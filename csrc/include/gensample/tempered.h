// Per-element math of the tempered block Gibbs family (parallel tempering and AIS for
// RBMs), shared by every backend. The executable specification is the torch backend in
// gensample/ops/tempered.py (module docstring: "Float32 recipe"); every function here
// is that recipe operation for operation, each a separately rounded float32 operation
// (gs_mul / gs_add / gs_sub, no FMA), so the CPU, CUDA, Triton and torch backends draw
// identical states whenever the GEMM accumulators agree (e.g. dyadic weights).
//
//   hidden (both kinds):   a = acc + c;  t = a * beta;  h = u < gs_sigmoid(t)
//   Bernoulli visible:     t = (acc + b) * beta + (1 - beta) * b_A;  v = u < gs_sigmoid(t)
//                          (1 - beta one float32 subtraction; b_A = 0 for the uniform base)
//   Gaussian visible:      mean = b + sigma * (acc * beta);  v = mean + sigma * eps
//   Gaussian hidden input: x = v / sigma (IEEE float32 division)
//   softplus (log-weights only): max(t, 0) + log1p(exp(-|t|)) in float32 with the
//                          platform's float32 exp/log1p (agrees across backends to
//                          rounding only; log-weights accumulate in float64).
#pragma once

#include "gensample/common.h"
#include "gensample/gibbs.h"

namespace gensample {

// float32 softplus of the AIS log-weight increments.
GS_HOST_DEVICE float gs_softplus(float t) {
#if defined(GS_ON_DEVICE)
  const float m = fmaxf(t, 0.0f);
  return gs_add(m, log1pf(expf(-fabsf(t))));
#else
  const float m = t > 0.0f ? t : 0.0f;
  return gs_add(m, std::log1p(std::exp(-std::fabs(t))));
#endif
}

namespace tempered {

// Hidden pre-activation scaled by the chain's inverse temperature: t = (acc + c) * beta.
// a_out receives the untempered a = acc + c.
GS_HOST_DEVICE float hidden_logit(float acc, float hidden_bias, float beta, float& a_out) {
  const float a = gs_add(acc, hidden_bias);
  a_out = a;
  return gs_mul(a, beta);
}

// Bernoulli-visible pre-activation: (acc + b) * beta + (1 - beta) * b_A.
// one_minus_beta must be gs_sub(1.0f, beta) (computed once per chain or step).
GS_HOST_DEVICE float visible_logit(float acc, float visible_bias, float visible_base, float beta,
                                   float one_minus_beta) {
  return gs_add(gs_mul(gs_add(acc, visible_bias), beta), gs_mul(one_minus_beta, visible_base));
}

// Bernoulli state from a logit and a uniform u in [0, 1).
GS_HOST_DEVICE float bernoulli_state(float t, float u) { return u < gs_sigmoid(t) ? 1.0f : 0.0f; }

// Gaussian-visible conditional mean b + sigma * (acc * beta).
GS_HOST_DEVICE float gaussian_mean(float acc, float visible_bias, float sigma, float beta) {
  return gs_add(visible_bias, gs_mul(sigma, gs_mul(acc, beta)));
}

// Gaussian-visible sample mean + sigma * eps, eps ~ N(0, 1) from the normal stream.
GS_HOST_DEVICE float gaussian_sample(float mean, float sigma, float eps) { return gs_add(mean, gs_mul(sigma, eps)); }

// Gaussian hidden-layer input x = v / sigma (correctly rounded division).
GS_HOST_DEVICE float gaussian_input(float v, float sigma) { return gs_div_rn(v, sigma); }

}  // namespace tempered
}  // namespace gensample
