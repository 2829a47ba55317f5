// Per-element math of the fused Gaussian reparameterization + KL op.
//
//   q = N(mu, exp(lv)),  p = N(pm, exp(plv))        (diagonal, per element)
//   z = mu + exp(lv / 2) * eps,                      eps ~ N(0, 1) from the stream
//   KL(q || p) = 1/2 [ expm1(d) - d + (mu - pm)^2 exp(-plv) ],   d = lv - plv
//
// (the textbook 1/2 [exp(lv) + mu^2 - 1 - lv] when pm = plv = 0, written with
// expm1 so that it keeps its digits for lv near 0). Gradients:
//   dKL/dmu  =  (mu - pm) exp(-plv)          dz/dmu = 1
//   dKL/dlv  =  expm1(d) / 2                 dz/dlv = exp(lv / 2) eps / 2
//   dKL/dpm  = -(mu - pm) exp(-plv)
//   dKL/dplv = -[expm1(d) + (mu - pm)^2 exp(-plv)] / 2
// The backward regenerates eps from the saved (seed, offset); it never recovers it
// as (z - mu) / std, which loses its digits when std << |mu|.
//
// T is the math type: float for fp32/fp16/bf16 inputs, double for fp64.
#pragma once

#include "gensample/common.h"

namespace gensample {
namespace reparam {

// z from the standard deviation std = exp(lv / 2).
template <typename T>
GS_HOST_DEVICE T sample_std(T mu, T std, T eps) {
  return gs_fma(std, eps, mu);
}

template <typename T>
GS_HOST_DEVICE T sample(T mu, T lv, T eps) {
  return sample_std(mu, gs_exp(lv * T(0.5)), eps);
}

// One element's KL term; pm = plv = 0 gives the standard-normal prior.
template <typename T>
GS_HOST_DEVICE T kl_term(T mu, T lv, T pm, T plv) {
  const T d = lv - plv;
  const T diff = mu - pm;
  return T(0.5) * (gs_expm1(d) - d + diff * diff * gs_exp(-plv));
}

// Standard-normal prior (pm = plv = 0), the common case: z's standard deviation and
// the KL term from one exponential (gs_exp_half_expm1): std = exp(lv / 2),
// term = kl_term(mu, lv, 0, 0) = 1/2 [expm1(lv) - lv + mu^2].
template <typename T>
GS_HOST_DEVICE void std_and_kl_term(T mu, T lv, T& std, T& term) {
  T em1;
  gs_exp_half_expm1(lv, std, em1);
  term = T(0.5) * gs_fma(mu, mu, em1 - lv);
}

// Gradients of one element given upstream dz_sum_eps = sum_s dz_s * eps_s,
// dz_sum = sum_s dz_s (over the n_samples draws) and the row's dkl.
template <typename T>
struct Grads {
  T mu, lv, pm, plv;
};

template <typename T>
GS_HOST_DEVICE Grads<T> backward(T mu, T lv, T pm, T plv, T dz_sum, T dz_sum_eps, T dkl) {
  const T d = lv - plv;
  const T em1 = gs_expm1(d);
  const T diff = mu - pm;
  const T inv_pvar = gs_exp(-plv);
  const T g_kl_mu = diff * inv_pvar;
  Grads<T> g;
  g.mu = dz_sum + dkl * g_kl_mu;
  g.lv = dz_sum_eps * T(0.5) * gs_exp(lv * T(0.5)) + dkl * T(0.5) * em1;
  g.pm = -dkl * g_kl_mu;
  g.plv = T(-0.5) * dkl * (em1 + diff * g_kl_mu);
  return g;
}

// backward(mu, lv, 0, 0, ...) with one exponential (gs_exp_half_expm1).
template <typename T>
GS_HOST_DEVICE Grads<T> backward_std_prior(T mu, T lv, T dz_sum, T dz_sum_eps, T dkl) {
  T e_half, em1;
  gs_exp_half_expm1(lv, e_half, em1);
  Grads<T> g;
  g.mu = dz_sum + dkl * mu;
  g.lv = dz_sum_eps * T(0.5) * e_half + dkl * T(0.5) * em1;
  g.pm = -dkl * mu;
  g.plv = T(-0.5) * dkl * (em1 + mu * mu);
  return g;
}

}  // namespace reparam
}  // namespace gensample
