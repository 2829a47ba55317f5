// Simulated-grid driver for gensample's CUDA Langevin kernels (see
// tests/test_langevin_cuda_sim.py).
//
// Runs the per-thread bodies of csrc/include/gensample/kernels/langevin_thread.h,
// unchanged, on the CPU for every (blockIdx, threadIdx) of the launches that
// csrc/cuda/langevin_cuda.cu makes (same launch-configuration functions, SM count
// given on the input). The block reductions (warp shuffles / shared memory on the
// GPU) are done here, in lockstep over the threads of one block and work item.
// Every store is recorded (exactly-once checks), every 4-vector access checks its
// alignment; built with AddressSanitizer, so out-of-bounds reads abort.
//
// Protocol: gs_lsim IN OUT. IN: little-endian int64 words, then raw float32 blobs;
// OUT: int64 n_stats, int64 stats[n_stats], then per output buffer:
//   int64 nbytes, bytes, int64 n, int32 write_counts[n] (see sim_common.h).
//
// sim_common.h (the instrumentation hooks, the IO and main()) must precede the
// kernel headers.
#include "sim_common.h"

#include <cmath>

#include "gensample/kernels/langevin_thread.h"

namespace sim {

namespace K = gensample::kernels;
namespace L = gensample::langevin;

// An input of n floats at element offset `shift` into an exact-size buffer.
const float* read_input(Reader& rd, size_t n, int64_t shift) {
  float* base = static_cast<float*>(alloc_exact((n + static_cast<size_t>(shift)) * sizeof(float)));
  rd.bytes(base + shift, n * sizeof(float));
  return base + shift;
}

// A per-chain (C,) input read through `stride` (0: one shared value).
const float* read_chain(Reader& rd, int64_t C, int64_t stride) {
  const size_t n = stride == 0 ? 1 : static_cast<size_t>((C - 1) * stride + 1);
  return read_input(rd, n, 0);
}

// Block reduction of the threads' partials in thread order (the GPU's row_sum adds
// them as a tree; both orders are fixed, and the tests compare norms with a
// tolerance).
template <typename Partial, typename Store>
void run_chain_reduce(const K::ChainReduceLaunch& c, Partial partial, Store store) {
  for (int64_t b = 0; b < c.blocks; ++b) {
    for (int64_t item = b; item < c.items; item += c.blocks) {
      auto total = partial(item, 0);
      for (int t = 1; t < c.threads; ++t) {
        const auto p = partial(item, t);
        total.fwd += p.fwd;
        total.bwd += p.bwd;
      }
      store(item, total);  // thread 0
    }
  }
}

// --- langevin_step -----------------------------------------------------------------
//   words: C, M, clip_mode, clamp, sm_count, in_place, in_shift, out_shift,
//          step_stride, noise_stride, seed (3 words), clip, lo, hi (float32 bits),
//          want_norm; blobs: x, grad (C*M each), step, noise (read through strides)

template <int kMode>
void step_grid(const K::LangevinStepArgs& a, const K::ElementwiseLaunch& c) {
  for (int64_t b = 0; b < c.blocks; ++b)
    for (int t = 0; t < c.threads; ++t) K::step_thread<kMode>(a, c.groups, b, c.blocks, t, c.threads);
}

void run_step(Reader& rd, const char* out_path) {
  const int64_t C = rd.i64(), M = rd.i64(), mode = rd.i64();
  const bool clamp = rd.i64() != 0;
  const int sm = static_cast<int>(rd.i64());
  const bool in_place = rd.i64() != 0;
  const int64_t in_shift = rd.i64(), out_shift = rd.i64();
  const int64_t step_stride = rd.i64(), noise_stride = rd.i64();
  const SeedBuf seed = read_seed(rd);
  const float clip = rd.f32(), lo = rd.f32(), hi = rd.f32();
  const bool want_norm = rd.i64() != 0;
  const size_t n = static_cast<size_t>(C * M);
  const float* x = read_input(rd, n, in_shift);
  const float* g = read_input(rd, n, in_shift);
  const float* step = read_chain(rd, C, step_stride);
  const float* noise = read_chain(rd, C, noise_stride);

  Out* out = make_out(n, sizeof(float), in_place ? in_shift : out_shift);
  if (in_place && n) std::memcpy(out->ptr<float>(), x, n * sizeof(float));
  const bool need_norm = want_norm || mode == 2;
  Out* norm = make_out(need_norm ? static_cast<size_t>(C) : 0, sizeof(float), 0);
  Out* scale = make_out(mode == 2 ? static_cast<size_t>(C) : 0, sizeof(float), 0);
  const K::ChainReduceLaunch rc = K::chain_reduce_launch(C, M, sm);
  Out* ws = make_out(need_norm && rc.nseg > 1 ? static_cast<size_t>(C * rc.nseg) : 0, sizeof(double), 0);
  int64_t bad_config = 0;
  if (!clamp && !(std::isinf(lo) && lo < 0 && std::isinf(hi) && hi > 0)) ++bad_config;  // no clamp = infinite bounds
  if (need_norm && n > 0) {
    const K::NormArgs na = K::make_norm_args(g, C, M, clip, norm->ptr<float>(),
                                             mode == 2 ? scale->ptr<float>() : nullptr,
                                             rc.nseg > 1 ? ws->ptr<double>() : nullptr);
    if (rc.blocks == 0 || rc.blocks > 0x7FFFFFFFLL || rc.seg_len % 4 != 0) ++bad_config;
    if (rc.nseg > 1 && rc.seg_len < K::kMinSegment) ++bad_config;
    struct S {
      double fwd, bwd;
    };
    run_chain_reduce(
        rc, [&](int64_t item, int t) { return S{K::norm_partial(na, rc, item, t), 0.0}; },
        [&](int64_t item, S tot) { K::norm_store(na, rc, item, tot.fwd); });
    if (rc.nseg > 1) {
      const int64_t fb = K::grid_blocks(K::ceil_div(C, K::kThreads), sm);
      for (int64_t b = 0; b < fb; ++b)
        for (int t = 0; t < K::kThreads; ++t) K::norm_finalize_thread(na, rc.nseg, b, fb, t, K::kThreads);
    }
  }
  const K::ElementwiseLaunch c = K::elementwise_launch(static_cast<int64_t>(n), sm);
  const K::LangevinStepArgs a = K::make_step_args(in_place ? out->ptr<float>() : x, g, out->ptr<float>(), step,
                                                  step_stride, noise, noise_stride,
                                                  mode == 2 ? scale->ptr<float>() : nullptr, seed.ptr(), seed.stride,
                                                  C, M, clip, lo, hi);
  if (n > 0) {
    if (c.blocks == 0 || c.blocks > 0x7FFFFFFFLL) ++bad_config;
    switch (mode) {  // no clamp: the bounds are (-inf, +inf), as the launcher passes them
      case 0: step_grid<0>(a, c); break;
      case 1: step_grid<1>(a, c); break;
      case 2: step_grid<2>(a, c); break;
      default: throw std::runtime_error("bad clip mode");
    }
  }
  std::vector<int64_t> stats = base_stats();
  for (int64_t v : {c.blocks, static_cast<int64_t>(c.threads), static_cast<int64_t>(a.vec),
                    static_cast<int64_t>(a.per_chain), rc.nseg, rc.blocks, bad_config})
    stats.push_back(v);
  write_outputs(out_path, stats, {out, norm, scale, ws});
}

// --- mala_accept_ --------------------------------------------------------------------
//   words: C, M, sm_count, shift, step_stride, noise_stride, seed (3 words);
//   blobs: x, grad, x_prop, grad_prop (C*M each), energy, energy_prop (C), step, noise

void run_mala(Reader& rd, const char* out_path) {
  const int64_t C = rd.i64(), M = rd.i64();
  const int sm = static_cast<int>(rd.i64());
  const int64_t shift = rd.i64();
  const int64_t step_stride = rd.i64(), noise_stride = rd.i64();
  const SeedBuf seed = read_seed(rd);
  const size_t n = static_cast<size_t>(C * M);
  Out* x = make_out(n, sizeof(float), shift);
  Out* g = make_out(n, sizeof(float), shift);
  rd.bytes(x->ptr<float>(), n * sizeof(float));
  rd.bytes(g->ptr<float>(), n * sizeof(float));
  const float* xp = read_input(rd, n, shift);
  const float* gp = read_input(rd, n, shift);
  Out* e = make_out(static_cast<size_t>(C), sizeof(float), 0);
  rd.bytes(e->ptr<float>(), static_cast<size_t>(C) * sizeof(float));
  const float* ep = read_input(rd, static_cast<size_t>(C), 0);
  const float* step = read_chain(rd, C, step_stride);
  const float* noise = read_chain(rd, C, noise_stride);
  Out* acc = make_out(static_cast<size_t>(C), sizeof(bool), 0);
  Out* la = make_out(static_cast<size_t>(C), sizeof(float), 0);
  const K::ChainReduceLaunch rc = K::chain_reduce_launch(C, M, sm);
  Out* ws = make_out(rc.nseg > 1 ? static_cast<size_t>(2 * C * rc.nseg) : 0, sizeof(double), 0);
  const K::MalaArgs a = K::make_mala_args(x->ptr<float>(), g->ptr<float>(), e->ptr<float>(), xp, gp, ep, step,
                                          step_stride, noise, noise_stride, seed.ptr(), seed.stride, acc->ptr<bool>(),
                                          la->ptr<float>(), rc.nseg > 1 ? ws->ptr<double>() : nullptr, C, M);
  int64_t bad_config = 0;
  // Stores into x / grad are counted by the select only; the inputs were copied in
  // with memcpy (not counted).
  if (C > 0) {
    if (rc.blocks == 0 || rc.blocks > 0x7FFFFFFFLL) ++bad_config;
    run_chain_reduce(
        rc, [&](int64_t item, int t) { return K::mala_partial(a, rc, item, t); },
        [&](int64_t item, K::Sums2 tot) { K::mala_store(a, rc, item, tot); });
    if (rc.nseg > 1) {
      const int64_t fb = K::grid_blocks(K::ceil_div(C, K::kThreads), sm);
      for (int64_t b = 0; b < fb; ++b)
        for (int t = 0; t < K::kThreads; ++t) K::mala_finalize_thread(a, rc.nseg, b, fb, t, K::kThreads);
    }
  }
  const K::ElementwiseLaunch c = K::elementwise_launch(static_cast<int64_t>(n), sm);
  if (n > 0) {
    for (int64_t b = 0; b < c.blocks; ++b)
      for (int t = 0; t < c.threads; ++t) K::select_thread(a, c.groups, b, c.blocks, t, c.threads);
  }
  std::vector<int64_t> stats = base_stats();
  for (int64_t v : {rc.nseg, rc.blocks, c.blocks, static_cast<int64_t>(a.vec), bad_config}) stats.push_back(v);
  write_outputs(out_path, stats, {x, g, e, acc, la, ws});
}

// --- sgld_step_ ------------------------------------------------------------------------
//   words: K, numel[K], shift, lr, noise, wd (float32 bits), seed (3 words);
//   blobs: theta_k, grad_k for each k

void run_sgld(Reader& rd, const char* out_path) {
  const int64_t Kn = rd.i64();
  std::vector<int64_t> numel(static_cast<size_t>(Kn));
  for (auto& v : numel) v = rd.i64();
  const int64_t shift = rd.i64();
  const float lr = rd.f32(), noise = rd.f32(), wd = rd.f32();
  const SeedBuf seed = read_seed(rd);
  std::vector<Out*> outs;
  std::vector<float*> theta;
  std::vector<const float*> grad;
  for (int64_t k = 0; k < Kn; ++k) {
    const size_t n = static_cast<size_t>(numel[static_cast<size_t>(k)]);
    Out* o = make_out(n, sizeof(float), shift);
    rd.bytes(o->ptr<float>(), n * sizeof(float));
    outs.push_back(o);
    theta.push_back(o->ptr<float>());
    grad.push_back(read_input(rd, n, shift));
  }
  int64_t launches = 0, bad_config = 0;
  uint64_t base = 0;
  size_t i = 0;
  K::SgldChunk ch;
  while (i < static_cast<size_t>(Kn)) {
    const int64_t blocks =
        K::sgld_next_chunk(ch, theta.data(), grad.data(), numel.data(), static_cast<size_t>(Kn), i, base, lr, noise,
                           wd);
    if (blocks == 0) continue;
    if (blocks > 0x7FFFFFFFLL || ch.n > K::kSgldMaxTensors) ++bad_config;
    ++launches;
    for (int64_t b = 0; b < blocks; ++b)
      for (int t = 0; t < K::kThreads; ++t) K::sgld_thread(ch, seed.ptr(), seed.stride, b, t, K::kThreads);
  }
  std::vector<int64_t> stats = base_stats();
  stats.push_back(launches);
  stats.push_back(bad_config);
  write_outputs(out_path, stats, outs);
}

}  // namespace sim

int main(int argc, char** argv) {
  return sim::sim_main(argc, argv, "gs_lsim", [](int64_t op, sim::Reader& rd, const char* out) {
    switch (op) {
      case 0: sim::run_step(rd, out); break;
      case 1: sim::run_mala(rd, out); break;
      case 2: sim::run_sgld(rd, out); break;
      default: throw std::runtime_error("bad op code");
    }
  });
}
