// Simulated-grid driver for gensample's CUDA block Gibbs kernels (see
// tests/test_gibbs_cuda_sim.py).
//
// Runs the per-thread bodies of csrc/include/gensample/kernels/gibbs_thread.h, unchanged,
// on the CPU for every (blockIdx, threadIdx) of the launch that csrc/cuda/gibbs_cuda.cu
// makes (launch configuration from the same header functions, SM count given):
//
// * epilogue kernel (after the GEMM): every thread of the grid-stride launch; the GEMM
//   result is given (the test computes it exactly in torch);
// * persistent sweep kernel: per block, its shared memory is an exact-size heap buffer
//   (AddressSanitizer catches any access outside it); the block's phases (load, then
//   half-steps t = 0 .. 2k) run one after the other, which is what __syncthreads
//   guarantees; inside a phase the threads run in forward order in even blocks and in
//   reverse order in odd blocks. After every phase the driver checks that exactly the
//   phase's output layer (the block's rows) was written, each element once, and nothing
//   else in shared memory: so no thread can read a value written in the same phase.
//
// Every global store is recorded (GS_SIM_RECORD_STORE) so that the test can check that
// each output element is written exactly once; 4-vector accesses check their alignment.
//
// Protocol: gibbs_sim IN OUT. IN is little-endian int64 words followed by raw float32
// storages; OUT is int64 n_stats, int64 stats[n_stats], then per output buffer:
// int64 nbytes, bytes, int64 n, int32 write_counts[n] (see sim_common.h).
//
// sim_common.h (the instrumentation hooks, the IO and main()) must precede the
// kernel headers.
#include "sim_common.h"

#include "gensample/kernels/gibbs_thread.h"

namespace sim {

namespace K = gensample::kernels;

// --- fused epilogue -------------------------------------------------------------------
//   words: B, N, sm_count, step, beta (f32 bits), out_shift, seed (3 words)
//   blobs: acc (B*N), bias (N) [, sigma (N), noise_std (N)]
//   outputs: state (or v), prob (or mean; the acc buffer, in place)

template <bool kGauss>
void run_epilogue(Reader& rd, const char* out_path) {
  const int64_t B = rd.i64(), N = rd.i64();
  const int sm = static_cast<int>(rd.i64());
  const int64_t step = rd.i64();
  const float beta = rd.f32();
  const int64_t shift = rd.i64();
  const SeedBuf seed = read_seed(rd);
  const size_t n = static_cast<size_t>(B * N);
  In acc_in(rd, n), bias(rd, static_cast<size_t>(N));
  In sigma(rd, kGauss ? static_cast<size_t>(N) : 0), nstd(rd, kGauss ? static_cast<size_t>(N) : 0);
  Out* state = make_out(n, sizeof(float), shift);
  Out* acc = make_out(n, sizeof(float), shift, acc_in.p);
  const K::Group4Launch c = K::group4_launch(static_cast<int64_t>(n), sm);
  K::GibbsEpilogueArgs a;
  a.acc = acc->ptr();
  a.state = state->ptr();
  a.bias = bias.p;
  a.sigma = kGauss ? sigma.p : nullptr;
  a.noise_std = kGauss ? nstd.p : nullptr;
  a.seed = seed.ptr();
  a.seed_stride = seed.stride;
  a.step = step;
  a.B = B;
  a.N = N;
  a.beta = beta;
  a.vec = K::gibbs_epilogue_vec_ok(a.acc, a.state);
  int64_t bad_config = 0;
  if (n > 0 && c.blocks == 0) ++bad_config;
  if (c.blocks > 0x7FFFFFFFLL) ++bad_config;
  if (n > 0) {
    for (int64_t b = 0; b < c.blocks; ++b)
      for (int t = 0; t < c.threads; ++t) K::gibbs_epilogue_thread<kGauss>(a, c.groups, b, c.blocks, t, c.threads);
  }
  std::vector<int64_t> stats = base_stats();
  for (int64_t x : {c.blocks, static_cast<int64_t>(c.threads), c.groups, static_cast<int64_t>(a.vec), bad_config})
    stats.push_back(x);
  write_outputs(out_path, stats, {state, acc});
}

// --- persistent sweep kernel ----------------------------------------------------------
//   words: B, nv, nh, k, beta (f32 bits), sm_count, seed (3 words)
//   blobs: v0 (B*nv), W (nv*nh), visible bias (nv), hidden bias (nh)
//   outputs: v_out, h_out, hp_out

// After a phase: exactly [lo, hi) of the block's shared memory was written, once each.
int64_t check_phase(OutBuf& smem, int64_t lo, int64_t hi) {
  int64_t bad = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(smem.n); ++i) {
    const int32_t want = (i >= lo && i < hi) ? 1 : 0;
    if (smem.counts[static_cast<size_t>(i)] != want) ++bad;
    smem.counts[static_cast<size_t>(i)] = 0;
  }
  return bad;
}

void run_sweeps(Reader& rd, const char* out_path) {
  const int64_t B = rd.i64(), nv = rd.i64(), nh = rd.i64(), k = rd.i64();
  const float beta = rd.f32();
  const int sm = static_cast<int>(rd.i64());
  const SeedBuf seed = read_seed(rd);
  In v0(rd, static_cast<size_t>(B * nv)), w(rd, static_cast<size_t>(nv * nh));
  In vb(rd, static_cast<size_t>(nv)), hb(rd, static_cast<size_t>(nh));
  const K::SweepLaunch c = K::gibbs_sweep_launch(B, nv, nh, sm);
  const size_t nvo = c.fits ? static_cast<size_t>(B * nv) : 0, nho = c.fits ? static_cast<size_t>(B * nh) : 0;
  Out* v_out = make_out(nvo, sizeof(float), 0);
  Out* h_out = make_out(nho, sizeof(float), 0);
  Out* hp_out = make_out(nho, sizeof(float), 0);
  int64_t smem_bad = 0, bad_config = 0;
  if (c.fits) {
    if (c.smem_bytes != K::sweep_smem_floats(nv, nh, c.cb) * 4 || c.smem_bytes > K::kSweepSmemBytes) ++bad_config;
    if (c.blocks * c.cb < B || (c.blocks - 1) * c.cb >= B || c.threads != K::kThreads) ++bad_config;
    K::GibbsSweepArgs a;
    a.v0 = v0.p;
    a.w = w.p;
    a.vb = vb.p;
    a.hb = hb.p;
    a.seed = seed.ptr();
    a.seed_stride = seed.stride;
    a.v_out = v_out->ptr();
    a.h_out = h_out->ptr();
    a.hp_out = hp_out->ptr();
    a.B = B;
    a.nv = nv;
    a.nh = nh;
    a.k = k;
    a.beta = beta;
    a.vec = K::gibbs_sweep_vec_ok(nv, nh, a.v_out, a.h_out, a.hp_out);
    const size_t nsm = static_cast<size_t>(c.smem_bytes) / sizeof(float);
    for (int64_t b = 0; b < c.blocks; ++b) {
      Out* smem = make_out(nsm, sizeof(float), 0);  // registered: its stores are counted per phase
      const K::SweepSmem s = K::sweep_smem_layout(smem->ptr(), nv, nh, c.cb);
      const int64_t v_lo = s.v - smem->ptr(), h_lo = s.h - smem->ptr();
      const K::SeedPair sp = K::read_seed(a.seed, a.seed_stride);
      const int64_t r0 = b * c.cb;
      const int64_t nrows = K::min64(c.cb, B - r0);
      auto each_thread = [&](auto&& body) {
        for (int i = 0; i < c.threads; ++i) body((b & 1) ? c.threads - 1 - i : i);
      };
      each_thread([&](int t) { K::sweep_load_thread(a, s, r0, nrows, t, c.threads); });
      // load phase: W, both biases (contiguous from 0) and the block's v rows
      smem_bad += check_phase(smem->buf, 0, v_lo + nrows * nv);
      for (int64_t t = 0; t <= 2 * k; ++t) {
        each_thread([&](int th) {
          if (a.vec) {
            K::sweep_half_thread<true>(a, s, sp, t, r0, nrows, th, c.threads);
          } else {
            K::sweep_half_thread<false>(a, s, sp, t, r0, nrows, th, c.threads);
          }
        });
        smem_bad += (t & 1) == 0 ? check_phase(smem->buf, h_lo, h_lo + nrows * nh)
                                 : check_phase(smem->buf, v_lo, v_lo + nrows * nv);
      }
      g_outs.pop_back();
      std::free(smem->storage);
      delete smem;
    }
  }
  std::vector<int64_t> stats = base_stats();
  const bool vec = c.fits && K::gibbs_sweep_vec_ok(nv, nh, v_out->ptr(), h_out->ptr(), hp_out->ptr());
  for (int64_t x : {static_cast<int64_t>(c.fits), c.cb, c.blocks, static_cast<int64_t>(c.threads), c.smem_bytes,
                    smem_bad, bad_config, static_cast<int64_t>(vec)})
    stats.push_back(x);
  write_outputs(out_path, stats, {v_out, h_out, hp_out});
}

}  // namespace sim

int main(int argc, char** argv) {
  return sim::sim_main(argc, argv, "gibbs_sim", [](int64_t op, sim::Reader& rd, const char* out) {
    switch (op) {
      case 0: sim::run_epilogue<false>(rd, out); break;
      case 1: sim::run_epilogue<true>(rd, out); break;
      case 2: sim::run_sweeps(rd, out); break;
      default: throw std::runtime_error("bad op code");
    }
  });
}
