// Simulated-grid driver for gensample's CUDA tempered-family kernels (see
// tests/test_tempered_cuda_sim.py).
//
// Runs whole tempered_sweeps and ais_rbm ops the way csrc/cuda/tempered_cuda.cu does:
// the same host loop (GEMM, then one epilogue launch per half-step, same substream
// indices, same buffers, the Gaussian x = v / sigma written by the visible epilogue),
// with the GEMMs computed here in plain float32 (the test makes them exact: binary or
// one-product sums of dyadic values) and every launch run for every (blockIdx,
// threadIdx) of its configuration (launch functions of tempered_thread.h, SM count
// given), calling the per-thread bodies of csrc/include/gensample/kernels/
// tempered_thread.h unchanged. Threads run in forward order in even blocks and in
// reverse order in odd blocks.
//
// The AIS hidden kernel's block (one chain per block iteration) runs its phase 1 for
// every thread into exact-size shared-memory arrays, then phase 2 (thread 0), which is
// what the kernel's __syncthreads guarantees.
//
// After EVERY launch the driver checks that each buffer the launch writes was written
// exactly once per element (and that no other buffer was touched), then resets the
// counts: stat `bad_writes` counts violations. Every buffer is an exact-size heap
// allocation (AddressSanitizer catches out-of-bounds accesses); 4-vector accesses check
// their alignment; `shift` offsets every written buffer by one element (scalar paths).
//
// Protocol: tempered_sim IN OUT (sim_common.h). sim_common.h must precede the kernel
// headers.
#include "sim_common.h"

#include "gensample/kernels/tempered_thread.h"

namespace sim {

namespace K = gensample::kernels;

struct In {
  float* p = nullptr;
  In(Reader& rd, size_t n) {
    p = static_cast<float*>(alloc_exact(n * sizeof(float)));
    rd.bytes(p, n * sizeof(float));
  }
  ~In() { std::free(p); }
  In(const In&) = delete;
  In& operator=(const In&) = delete;
};

// acc (B, N) = x (B, n_in) @ W (n_in, N) or x @ W^T with W (N, n_in) stored (nv, nh).
void gemm(const float* x, const float* w, float* acc, int64_t B, int64_t nv, int64_t nh, bool to_h) {
  const int64_t n_in = to_h ? nv : nh, N = to_h ? nh : nv;
  for (int64_t r = 0; r < B; ++r) {
    for (int64_t j = 0; j < N; ++j) {
      float s = 0.0f;
      for (int64_t q = 0; q < n_in; ++q) s += x[r * n_in + q] * (to_h ? w[q * nh + j] : w[j * nh + q]);
      acc[r * N + j] = s;
    }
  }
}

struct Stats {
  int64_t bad_writes = 0, launches = 0, vec_launches = 0, bad_config = 0;
};

// After a launch: the `written` buffers hold exactly one store per element, all other
// registered buffers none; then every count is reset.
void check_launch(Stats& st, const std::vector<Out*>& written) {
  for (OutBuf* b : g_outs) {
    bool w = false;
    for (Out* o : written) w = w || (&o->buf == b);
    for (size_t i = 0; i < b->n; ++i) {
      if (b->counts[i] != (w ? 1 : 0)) ++st.bad_writes;
      b->counts[i] = 0;
    }
  }
  ++st.launches;
}

template <int kKind>
void epilogue(Stats& st, int sm, float* acc, float* state, float* x_out, const float* bias, const float* base,
              const float* sigma, const float* beta, int64_t beta_stride, const SeedBuf& seed, int64_t step,
              int64_t B, int64_t N, const std::vector<Out*>& written) {
  const int64_t numel = B * N;
  if (numel == 0) return;  // the launcher skips empty launches
  const K::TemperedLaunch c = K::tempered_launch(numel, sm);
  if (c.blocks <= 0 || c.blocks > 0x7FFFFFFFLL || c.threads != K::kThreads || c.groups * 4 < numel) ++st.bad_config;
  K::TemperedEpilogueArgs a;
  a.acc = acc;
  a.state = state;
  a.x_out = x_out;
  a.bias = bias;
  a.base = base;
  a.sigma = sigma;
  a.beta = beta;
  a.beta_stride = beta_stride;
  a.seed = seed.ptr();
  a.seed_stride = seed.stride;
  a.step = step;
  a.B = B;
  a.N = N;
  a.vec = K::tempered_vec_ok(a.acc, a.state, a.x_out);
  st.vec_launches += a.vec ? 1 : 0;
  for (int64_t b = 0; b < c.blocks; ++b)
    for (int i = 0; i < c.threads; ++i) {
      const int t = (b & 1) ? c.threads - 1 - i : i;
      K::tempered_epilogue_thread<kKind>(a, c.groups, b, c.blocks, t, c.threads);
    }
  check_launch(st, written);
}

// --- tempered_sweeps ----------------------------------------------------------------
//   words: gauss, B, nv, nh, k, sm_count, shift, seed (3 words)
//   blobs: v0 (B*nv), W (nv*nh), b (nv), c (nh), b_A (nv), beta (B) [, sigma (nv)]
//   outputs: v_k, h_k, a_k
void run_sweeps(Reader& rd, const char* out_path) {
  const bool gauss = rd.i64() != 0;
  const int64_t B = rd.i64(), nv = rd.i64(), nh = rd.i64(), k = rd.i64();
  const int sm = static_cast<int>(rd.i64());
  const int64_t shift = rd.i64();
  const SeedBuf seed = read_seed(rd);
  In v0(rd, B * nv), w(rd, nv * nh), vb(rd, nv), hb(rd, nh), base(rd, nv), beta(rd, B);
  In sigma(rd, gauss ? nv : 0);
  Stats st;
  Out* a = make_out(B * nh, sizeof(float), shift);
  Out* h = make_out(B * nh, sizeof(float), shift);
  Out* v_acc = make_out(B * nv, sizeof(float), shift);
  Out* vs = make_out(B * nv, sizeof(float), shift);
  Out* x = make_out(gauss ? B * nv : 0, sizeof(float), shift);
  // x_0 = v_0 / sigma (the launcher's at::div) or v_0
  std::vector<float> x0(static_cast<size_t>(B * nv));
  for (int64_t i = 0; i < B * nv; ++i)
    x0[i] = gauss ? gensample::tempered::gaussian_input(v0.p[i], sigma.p[i % nv]) : v0.p[i];
  gemm(x0.data(), w.p, a->ptr(), B, nv, nh, true);
  epilogue<K::kHidden>(st, sm, a->ptr(), h->ptr(), nullptr, hb.p, nullptr, nullptr, beta.p, 1, seed, 0, B, nh,
                       {a, h});
  for (int64_t s = 1; s <= k; ++s) {
    gemm(h->ptr(), w.p, v_acc->ptr(), B, nv, nh, false);
    if (gauss) {
      epilogue<K::kGaussVisible>(st, sm, v_acc->ptr(), vs->ptr(), x->ptr(), vb.p, nullptr, sigma.p, beta.p, 1, seed,
                                 2 * s - 1, B, nv, {vs, x});
    } else {
      epilogue<K::kBernVisible>(st, sm, v_acc->ptr(), vs->ptr(), nullptr, vb.p, base.p, nullptr, beta.p, 1, seed,
                                2 * s - 1, B, nv, {vs});
    }
    gemm(gauss ? x->ptr() : vs->ptr(), w.p, a->ptr(), B, nv, nh, true);
    epilogue<K::kHidden>(st, sm, a->ptr(), h->ptr(), nullptr, hb.p, nullptr, nullptr, beta.p, 1, seed, 2 * s, B, nh,
                         {a, h});
  }
  if (k == 0) std::memcpy(vs->ptr(), v0.p, static_cast<size_t>(B * nv) * sizeof(float));  // v.clone()
  std::vector<int64_t> stats = base_stats();
  for (int64_t z : {st.bad_writes, st.launches, st.vec_launches, st.bad_config}) stats.push_back(z);
  write_outputs(out_path, stats, {vs, h, a});
}

// --- ais_rbm ---------------------------------------------------------------------------
//   words: gauss, B, nv, nh, K, sm_count, shift, seed (3 words)
//   blobs: v0 (B*nv), W (nv*nh), b (nv), c (nh), b_A (nv), betas (K+1) [, sigma (nv)]
//   outputs: log_w (float64), v_K
void run_ais(Reader& rd, const char* out_path) {
  const bool gauss = rd.i64() != 0;
  const int64_t B = rd.i64(), nv = rd.i64(), nh = rd.i64(), KK = rd.i64();
  const int sm = static_cast<int>(rd.i64());
  const int64_t shift = rd.i64();
  const SeedBuf seed = read_seed(rd);
  In v0(rd, B * nv), w(rd, nv * nh), vb(rd, nv), hb(rd, nh), base(rd, nv), betas(rd, KK + 1);
  In sigma(rd, gauss ? nv : 0);
  Stats st;
  Out* log_w = make_out(B, sizeof(double), 0);
  for (int64_t r = 0; r < B; ++r) log_w->ptr<double>()[r] = 0.0;  // at::zeros
  Out* acc_h = make_out(B * nh, sizeof(float), shift);
  Out* h = make_out(B * nh, sizeof(float), shift);
  Out* acc_v = make_out(B * nv, sizeof(float), shift);
  Out* vs = make_out(B * nv, sizeof(float), shift);
  Out* xs = make_out(gauss ? B * nv : 0, sizeof(float), shift);
  std::vector<float> x0(static_cast<size_t>(B * nv));
  for (int64_t i = 0; i < B * nv; ++i)
    x0[i] = gauss ? gensample::tempered::gaussian_input(v0.p[i], sigma.p[i % nv]) : v0.p[i];
  const K::AisLaunch c = K::ais_hidden_launch(B, sm);
  if (B > 0 && (c.blocks <= 0 || c.threads != K::kAisThreads)) ++st.bad_config;
  for (int64_t s = 1; s <= KK && B > 0; ++s) {
    gemm(s == 1 ? x0.data() : (gauss ? xs->ptr() : vs->ptr()), w.p, acc_h->ptr(), B, nv, nh, true);
    K::AisHiddenArgs ha;
    ha.acc = acc_h->ptr();
    ha.h = h->ptr();
    ha.v = gauss ? nullptr : (s == 1 ? v0.p : vs->ptr());
    ha.vb = vb.p;
    ha.base = base.p;
    ha.hb = hb.p;
    ha.betas = betas.p;
    ha.k = s;
    ha.log_w = log_w->ptr<double>();
    ha.seed = seed.ptr();
    ha.seed_stride = seed.stride;
    ha.step = 2 * s - 2;
    ha.B = B;
    ha.nv = nv;
    ha.nh = nh;
    double* sp = static_cast<double*>(alloc_exact(sizeof(double) * c.threads));   // __shared__ sp[threads]
    double* ell = static_cast<double*>(alloc_exact(sizeof(double) * c.threads));  // __shared__ ell[threads]
    for (int64_t b = 0; b < c.blocks; ++b) {
      for (int64_t r = b; r < B; r += c.blocks) {
        for (int i = 0; i < c.threads; ++i) {
          const int t = (b & 1) ? c.threads - 1 - i : i;
          K::ais_hidden_row_thread(ha, r, t, c.threads, sp[t], ell[t]);
        }
        K::ais_hidden_row_finish(ha, r, sp, ell, c.threads);
      }
    }
    std::free(sp);
    std::free(ell);
    check_launch(st, nh > 0 ? std::vector<Out*>{h, log_w} : std::vector<Out*>{log_w});
    gemm(h->ptr(), w.p, acc_v->ptr(), B, nv, nh, false);
    if (gauss) {
      epilogue<K::kGaussVisible>(st, sm, acc_v->ptr(), vs->ptr(), xs->ptr(), vb.p, nullptr, sigma.p, betas.p + s, 0,
                                 seed, 2 * s - 1, B, nv, {vs, xs});
    } else {
      epilogue<K::kBernVisible>(st, sm, acc_v->ptr(), vs->ptr(), nullptr, vb.p, base.p, nullptr, betas.p + s, 0, seed,
                                2 * s - 1, B, nv, {vs});
    }
  }
  if (KK == 0) std::memcpy(vs->ptr(), v0.p, static_cast<size_t>(B * nv) * sizeof(float));  // v.clone()
  std::vector<int64_t> stats = base_stats();
  for (int64_t z : {st.bad_writes, st.launches, st.vec_launches, st.bad_config, c.blocks,
                    static_cast<int64_t>(c.threads)})
    stats.push_back(z);
  write_outputs(out_path, stats, {log_w, vs});
}

}  // namespace sim

int main(int argc, char** argv) {
  return sim::sim_main(argc, argv, "tempered_sim", [](int64_t op, sim::Reader& rd, const char* out) {
    switch (op) {
      case 0: sim::run_sweeps(rd, out); break;
      case 1: sim::run_ais(rd, out); break;
      default: throw std::runtime_error("bad op code");
    }
  });
}
