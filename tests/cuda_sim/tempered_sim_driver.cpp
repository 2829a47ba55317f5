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

// x_0 = v_0 / sigma (the launcher's at::div) or v_0: the first hidden GEMM's input.
std::vector<float> first_input(const In& v0, const In& sigma, int64_t B, int64_t nv, bool gauss) {
  std::vector<float> x0(static_cast<size_t>(B * nv));
  for (int64_t i = 0; i < B * nv; ++i)
    x0[i] = gauss ? gensample::tempered::gaussian_input(v0.p[i], sigma.p[i % nv]) : v0.p[i];
  return x0;
}

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
  const K::Group4Launch c = K::group4_launch(numel, sm);
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
  const std::vector<float> x0 = first_input(v0, sigma, B, nv, gauss);
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
  const std::vector<float> x0 = first_input(v0, sigma, B, nv, gauss);
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


// --- persistent kernel (one launch per op) ------------------------------------------------
//   words: ais, gauss, B, nv, nh, k (or K), sm_count, seed (3 words)
//   blobs: v0 (B*nv), W (nv*nh), b (nv), c (nh), b_A or sigma (nv), beta (B) or betas (K+1)
//   outputs: sweeps: v_k, h_k, a_k;  ais: log_w (float64), v_K
// Per block, shared memory is an exact-size heap buffer seen as two registered regions
// (float64 part, float32 part; ASan catches any access outside it). After every phase
// exactly the phase's outputs (the block's rows) must have been written, each once, and
// nothing else in shared memory: so no thread reads what another writes in that phase.

struct Region {
  int64_t lo, hi;  // element range [lo, hi) of one shared-memory part
};

// Counts of `b` must be 1 inside the regions and 0 elsewhere; then reset.
int64_t check_regions(OutBuf& b, const std::vector<Region>& regions) {
  int64_t bad = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(b.n); ++i) {
    int32_t want = 0;
    for (const Region& r : regions) want += (i >= r.lo && i < r.hi) ? 1 : 0;
    if (b.counts[static_cast<size_t>(i)] != want) ++bad;
    b.counts[static_cast<size_t>(i)] = 0;
  }
  return bad;
}

void run_persist(Reader& rd, const char* out_path) {
  const bool ais = rd.i64() != 0;
  const bool gauss = rd.i64() != 0;
  const int64_t B = rd.i64(), nv = rd.i64(), nh = rd.i64(), k = rd.i64();
  const int sm = static_cast<int>(rd.i64());
  const SeedBuf seed = read_seed(rd);
  In v0(rd, B * nv), w(rd, nv * nh), vb(rd, nv), hb(rd, nh), bs(rd, nv), beta(rd, ais ? k + 1 : B);
  const K::PersistLaunch c = K::persist_launch(B, nv, nh, gauss, ais, sm);
  const size_t nvo = c.fits ? static_cast<size_t>(B * nv) : 0, nho = c.fits && !ais ? static_cast<size_t>(B * nh) : 0;
  Out* v_out = make_out(nvo, sizeof(float), 0);
  Out* h_out = make_out(nho, sizeof(float), 0);
  Out* a_out = make_out(nho, sizeof(float), 0);
  Out* log_w = make_out(c.fits && ais ? static_cast<size_t>(B) : 0, sizeof(double), 0);
  int64_t smem_bad = 0, bad_config = 0;
  if (c.fits) {
    if (c.smem_bytes != K::persist_smem_bytes(nv, nh, c.cb, gauss, ais) || c.smem_bytes > K::kPersistSmemBytes)
      ++bad_config;
    if (c.blocks * c.cb < B || (c.blocks - 1) * c.cb >= B || c.threads != K::kThreads) ++bad_config;
    K::PersistArgs a;
    a.v0 = v0.p;
    a.w = w.p;
    a.vb = vb.p;
    a.hb = hb.p;
    a.bs = bs.p;
    a.beta = beta.p;
    a.seed = seed.ptr();
    a.seed_stride = seed.stride;
    a.v_out = v_out->ptr();
    a.h_out = ais ? nullptr : h_out->ptr();
    a.a_out = ais ? nullptr : a_out->ptr();
    a.log_w = ais ? log_w->ptr<double>() : nullptr;
    a.B = B;
    a.nv = nv;
    a.nh = nh;
    a.k = k;
    a.gauss = gauss;
    for (int64_t b = 0; b < c.blocks; ++b) {
      void* smem = alloc_exact(static_cast<size_t>(c.smem_bytes));
      std::memset(smem, 0xFF, static_cast<size_t>(c.smem_bytes));
      const K::PersistSmem s = K::persist_smem_layout(smem, nv, nh, c.cb, gauss, ais);
      const int64_t nd = ais ? c.cb * nh + c.cb : 0;
      const int64_t nf = (c.smem_bytes - 8 * nd) / 4;
      OutBuf dpart{reinterpret_cast<char*>(smem), sizeof(double), static_cast<size_t>(nd),
                   std::vector<int32_t>(static_cast<size_t>(nd), 0)};
      OutBuf fpart{reinterpret_cast<char*>(s.w), sizeof(float), static_cast<size_t>(nf),
                   std::vector<int32_t>(static_cast<size_t>(nf), 0)};
      g_outs.push_back(&dpart);
      g_outs.push_back(&fpart);
      const K::SeedPair sp = K::read_seed(a.seed, a.seed_stride);
      const int64_t r0 = b * c.cb, nrows = K::min64(c.cb, B - r0);
      auto each_thread = [&](auto&& body) {
        for (int i = 0; i < c.threads; ++i) body((b & 1) ? c.threads - 1 - i : i);
      };
      // element ranges of the float part (relative to s.w) and the float64 part
      const int64_t fv = s.v - s.w, fh = s.h - s.w, fx = s.x - s.w, dlw = s.lw - s.spd;
      const Region none{0, 0};
      const Region v_rows{fv, fv + nrows * nv}, h_rows{fh, fh + nrows * nh};
      const Region x_rows = gauss ? Region{fx, fx + nrows * nv} : none;
      const Region spd_rows{0, ais ? nrows * nh : 0}, lw_rows = ais ? Region{dlw, dlw + nrows} : none;
      each_thread([&](int t) { K::persist_load_thread(a, s, ais, r0, nrows, t, c.threads); });
      // W's rows (without the padding of the row stride), b, b_A / sigma, c; v, x
      std::vector<Region> loaded;
      const int64_t ws = K::persist_w_stride(nh), fvb = s.vb - s.w;
      for (int64_t q = 0; q < nv; ++q) loaded.push_back({q * ws, q * ws + nh});
      loaded.push_back({fvb, fv});
      loaded.push_back(v_rows);
      loaded.push_back(x_rows);
      smem_bad += check_regions(fpart, loaded);
      smem_bad += check_regions(dpart, {lw_rows});
      auto hidden = [&](int64_t t, int64_t step_k, bool last) {
        each_thread([&](int th) {
          K::persist_hidden_thread(a, s, sp, t, ais, step_k, last, r0, nrows, th, c.threads);
        });
        smem_bad += check_regions(fpart, {h_rows});
        smem_bad += check_regions(dpart, {spd_rows});
      };
      auto visible = [&](int64_t t, int64_t step_k, bool last) {
        each_thread([&](int th) {
          K::persist_visible_thread(a, s, sp, t, ais, step_k, last, r0, nrows, th, c.threads);
        });
        smem_bad += check_regions(fpart, {v_rows, x_rows});
        smem_bad += check_regions(dpart, {});
      };
      if (!ais) {
        hidden(0, 0, k == 0);
        for (int64_t t = 1; t <= k; ++t) {
          visible(2 * t - 1, 0, t == k);
          hidden(2 * t, 0, t == k);
        }
      } else {
        for (int64_t t = 1; t <= k; ++t) {
          hidden(2 * t - 2, t, false);
          each_thread([&](int th) { K::persist_row_thread(a, s, t, nrows, th, c.threads); });
          smem_bad += check_regions(fpart, {});
          smem_bad += check_regions(dpart, {lw_rows});
          visible(2 * t - 1, t, t == k);
        }
        each_thread([&](int th) { K::persist_store_logw_thread(a, s, r0, nrows, th, c.threads); });
      }
      g_outs.pop_back();
      g_outs.pop_back();
      std::free(smem);
    }
  }
  std::vector<int64_t> stats = base_stats();
  for (int64_t x : {static_cast<int64_t>(c.fits), c.cb, c.blocks, static_cast<int64_t>(c.threads), c.smem_bytes,
                    smem_bad, bad_config})
    stats.push_back(x);
  if (ais) {
    write_outputs(out_path, stats, {log_w, v_out});
  } else {
    write_outputs(out_path, stats, {v_out, h_out, a_out});
  }
}

}  // namespace sim

int main(int argc, char** argv) {
  return sim::sim_main(argc, argv, "tempered_sim", [](int64_t op, sim::Reader& rd, const char* out) {
    switch (op) {
      case 0: sim::run_sweeps(rd, out); break;
      case 1: sim::run_ais(rd, out); break;
      case 2: sim::run_persist(rd, out); break;
      default: throw std::runtime_error("bad op code");
    }
  });
}
