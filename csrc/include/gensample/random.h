// gensample's one random stream: Philox4x32-10 and its conversions.
//
// THE MAPPING (written down once; docs/random-stream.md explains it and every
// backend implements exactly this):
//
//   A draw is keyed by a pair (seed, offset) of 64-bit integers, stored as an
//   int64 tensor of shape (2,) on the data's device (see gensample/random.py).
//   Key:      k0 = low 32 bits of seed, k1 = high 32 bits of seed.
//   Element i (0-based flat index into the logical, row-major output of the
//   draw) uses
//             counter  n = offset + floor(i / 4)   (64-bit, wrapping)
//             words    (w0, w1, w2, w3) = Philox4x32_10(c0 = low32(n),
//                                                       c1 = high32(n), c2 = 0,
//                                                       c3 = 0; k0, k1)
//             lane     l = i mod 4
//   This is exactly Triton's tl.randint4x(seed, n) for a 64-bit n.
//   Uniform:  u_i = (w_l >> 8) * 2^-24                         in [0, 1)
//   Normal:   lanes pair up as (w0, w1) -> (z0, z1) and (w2, w3) -> (z2, z3) by
//             Box-Muller (box_muller below); z_i is lane l of that quadruple.
//
// All four lanes of every Philox call are used. Uniforms are exact (24-bit
// grid); normals are computed with explicitly rounded float32 operations and
// gensample's own log/sin/cos polynomials, so they are bit-identical on every
// backend as well.
#pragma once

#include "gensample/common.h"

namespace gensample {
namespace philox {

constexpr uint32_t kRoundA = 0xD2511F53u;  // multiplier applied to c0
constexpr uint32_t kRoundB = 0xCD9E8D57u;  // multiplier applied to c2
constexpr uint32_t kKeyA = 0x9E3779B9u;    // Weyl increment of k0
constexpr uint32_t kKeyB = 0xBB67AE85u;    // Weyl increment of k1

GS_HOST_DEVICE void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
#if defined(GS_ON_DEVICE)
  lo = a * b;
  hi = __umulhi(a, b);
#else
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  lo = static_cast<uint32_t>(p);
  hi = static_cast<uint32_t>(p >> 32);
#endif
}

// Philox4x32 with 10 rounds (Salmon et al., SC'11; Random123's philox4x32_10).
// (c0, c1, c2, c3) is the counter, (k0, k1) the key; the result overwrites c.
GS_HOST_DEVICE void philox4x32_10(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3,
                                  uint32_t k0, uint32_t k1) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kRoundA, c0, hi0, lo0);
    mulhilo(kRoundB, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kKeyA;
    k1 += kKeyB;
  }
}

// The four words for 64-bit counter n under a 64-bit seed.
GS_HOST_DEVICE void words(uint64_t seed, uint64_t n, uint32_t w[4]) {
  uint32_t c0 = static_cast<uint32_t>(n), c1 = static_cast<uint32_t>(n >> 32), c2 = 0u, c3 = 0u;
  philox4x32_10(c0, c1, c2, c3, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  w[0] = c0;
  w[1] = c1;
  w[2] = c2;
  w[3] = c3;
}

}  // namespace philox

// --- conversions ------------------------------------------------------------

// 2^-24, 2^-32, 2^-33 as exact float32 constants.
constexpr float kTwoPowM24 = 5.9604644775390625e-08f;
constexpr float kTwoPowM32 = 2.3283064365386963e-10f;
constexpr float kTwoPowM33 = 1.1641532182693481e-10f;

// Uniform on the 24-bit grid {0, 2^-24, ..., 1 - 2^-24}: exact in float32.
GS_HOST_DEVICE float uniform_from_bits(uint32_t w) {
  return static_cast<float>(static_cast<int32_t>(w >> 8)) * kTwoPowM24;
}

// uint32 -> float32 rounded to nearest even, written so that every backend (and
// vector units without an unsigned conversion) computes it the same way: both
// halves convert exactly, and the one addition rounds.
GS_HOST_DEVICE float u32_to_float(uint32_t w) {
  const float hi = static_cast<float>(static_cast<int32_t>(w >> 16)) * 65536.0f;
  const float lo = static_cast<float>(static_cast<int32_t>(w & 0xFFFFu));
  return gs_add(hi, lo);
}

// Natural log of x in [2^-33, 1] (a normal, positive float32). Cephes' logf
// polynomial (max error about 1 ulp), evaluated with explicitly rounded ops.
GS_HOST_DEVICE float log_unit(float x) {
  const uint32_t bits = gs_float_as_uint(x);
  int32_t e = static_cast<int32_t>(bits >> 23) - 126;  // x = m * 2^e, m in [0.5, 1)
  float m = gs_uint_as_float((bits & 0x007FFFFFu) | 0x3F000000u);
  const bool small = m < 0.70710678118654752440f;
  e = small ? e - 1 : e;
  m = small ? gs_sub(gs_add(m, m), 1.0f) : gs_sub(m, 1.0f);  // exact
  const float z = gs_mul(m, m);
  float y = 7.0376836292e-2f;
  y = gs_add(gs_mul(y, m), -1.1514610310e-1f);
  y = gs_add(gs_mul(y, m), 1.1676998740e-1f);
  y = gs_add(gs_mul(y, m), -1.2420140846e-1f);
  y = gs_add(gs_mul(y, m), 1.4249322787e-1f);
  y = gs_add(gs_mul(y, m), -1.6668057665e-1f);
  y = gs_add(gs_mul(y, m), 2.0000714765e-1f);
  y = gs_add(gs_mul(y, m), -2.4999993993e-1f);
  y = gs_add(gs_mul(y, m), 3.3333331174e-1f);
  y = gs_mul(gs_mul(y, m), z);
  const float fe = static_cast<float>(e);
  y = gs_add(y, gs_mul(fe, -2.12194440e-4f));
  y = gs_sub(y, gs_mul(0.5f, z));
  float r = gs_add(m, y);
  r = gs_add(r, gs_mul(fe, 0.693359375f));
  return r;
}

// (cos t, sin t) of the angle t = q * pi/2 + s * pi/2 encoded by the 32-bit word w:
// q = w >> 30 (quadrant), s = ((w >> 6) & 0xFFFFFF) * 2^-24 - 1/2 in [-1/2, 1/2).
// t is uniform on a grid of 2^26 points of [-pi/4, 7pi/4). Cephes' sinf/cosf
// polynomials on [-pi/4, pi/4]; the quadrant rotation is exact.
GS_HOST_DEVICE void angle_cos_sin(uint32_t w, float& c_out, float& s_out) {
  const uint32_t q = w >> 30;
  const float s = gs_sub(static_cast<float>(static_cast<int32_t>((w >> 6) & 0xFFFFFFu)) * kTwoPowM24,
                         0.5f);  // exact
  const float a = gs_mul(s, 1.57079637050628662109375f);  // float32(pi/2)
  const float z = gs_mul(a, a);
  // sin(a) = a + a z (S0 + z (S1 + z S2))
  float ps = -1.9515295891e-4f;
  ps = gs_add(gs_mul(ps, z), 8.3321608736e-3f);
  ps = gs_add(gs_mul(ps, z), -1.6666654611e-1f);
  const float sn = gs_add(gs_mul(gs_mul(ps, z), a), a);
  // cos(a) = 1 - z/2 + z^2 (C0 + z (C1 + z C2))
  float pc = 2.443315711809948e-5f;
  pc = gs_add(gs_mul(pc, z), -1.388731625493765e-3f);
  pc = gs_add(gs_mul(pc, z), 4.166664568298827e-2f);
  float cs = gs_mul(gs_mul(pc, z), z);
  cs = gs_sub(cs, gs_mul(0.5f, z));
  cs = gs_add(cs, 1.0f);
  const bool odd = (q & 1u) != 0u;
  const float c0 = odd ? sn : cs;
  const float s0 = odd ? cs : sn;
  c_out = (((q + 1u) & 2u) != 0u) ? -c0 : c0;
  s_out = ((q & 2u) != 0u) ? -s0 : s0;
}

// Box-Muller on one pair of words: radius from a, angle from b.
//   u = a * 2^-32 + 2^-33 in [2^-33, 1]   (tails reach 6.66 sigma)
//   r = sqrt(-2 log u),  (z0, z1) = (r cos t, r sin t)
GS_HOST_DEVICE void box_muller(uint32_t a, uint32_t b, float& z0, float& z1) {
  const float u = gs_add(gs_mul(u32_to_float(a), kTwoPowM32), kTwoPowM33);
  const float r = gs_sqrt(gs_mul(-2.0f, log_unit(u)));
  float c, s;
  angle_cos_sin(b, c, s);
  z0 = gs_mul(r, c);
  z1 = gs_mul(r, s);
}

// Four uniforms / four standard normals of one Philox call.
GS_HOST_DEVICE void uniform4(const uint32_t w[4], float out[4]) {
  out[0] = uniform_from_bits(w[0]);
  out[1] = uniform_from_bits(w[1]);
  out[2] = uniform_from_bits(w[2]);
  out[3] = uniform_from_bits(w[3]);
}
GS_HOST_DEVICE void normal4(const uint32_t w[4], float out[4]) {
  box_muller(w[0], w[1], out[0], out[1]);
  box_muller(w[2], w[3], out[2], out[3]);
}

// Scalar accessors: element i of the stream (seed, offset). Convenient for
// simulated-grid tests; kernels compute one Philox call per group of 4.
GS_HOST_DEVICE float uniform_at(uint64_t seed, uint64_t offset, uint64_t i) {
  uint32_t w[4];
  philox::words(seed, offset + (i >> 2), w);
  return uniform_from_bits(w[i & 3]);
}
GS_HOST_DEVICE float normal_at(uint64_t seed, uint64_t offset, uint64_t i) {
  uint32_t w[4];
  philox::words(seed, offset + (i >> 2), w);
  float z[4];
  normal4(w, z);
  return z[i & 3];
}

}  // namespace gensample
