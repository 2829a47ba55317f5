// Simulated-grid driver for gensample's CUDA kernels (see tests/test_cuda_sim.py).
//
// Runs the per-thread bodies of csrc/include/gensample/kernels/*.h, unchanged, on
// the CPU for every (blockIdx, threadIdx) that the real launch would use: the
// launch configuration comes from the same header functions that the launchers in
// csrc/cuda/*.cu call, with the SM count given on the input. The one cooperative
// step, the KL row reduction (warp shuffles / shared memory on the GPU), is done
// here, in lockstep over the threads of one block and work item.
//
// Every store of a kernel body is recorded (GS_SIM_RECORD_STORE) so that the test
// can check that each output element is written exactly once, and every 4-vector
// access checks its alignment (GS_SIM_CHECK_ALIGNED). Built with
// -fsanitize=address, so out-of-bounds reads of the input views abort.
//
// Protocol: gs_sim IN OUT. IN is a stream of little-endian int64 words followed by
// raw tensor storages (see the readers below and tests/test_cuda_sim.py); OUT as
// described in sim_common.h (stats, then per output buffer its bytes and write counts).
//
// sim_common.h (the instrumentation hooks, the IO and main()) must precede the
// kernel headers.
#include "sim_common.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "gensample/kernels/random_thread.h"
#include "gensample/kernels/reparam_thread.h"

namespace sim {

using gensample::kernels::View2;
namespace K = gensample::kernels;

// --- input views -------------------------------------------------------------

// A strided 2-D (or 3-D) input view: storage + offset + strides.
struct InView {
  bool present = false;
  int64_t storage_numel = 0, offset = 0;
  int64_t ss = 0, rs = 0, cs = 0;
  void* storage = nullptr;
};

InView read_view_meta(Reader& rd, int ndim) {
  InView v;
  v.present = rd.i64() != 0;
  v.storage_numel = rd.i64();
  v.offset = rd.i64();
  if (ndim == 3) v.ss = rd.i64();
  if (ndim >= 2) v.rs = rd.i64();
  v.cs = rd.i64();
  return v;
}

void read_view_data(Reader& rd, InView& v, size_t elem) {
  if (!v.present) return;
  v.storage = alloc_exact(static_cast<size_t>(v.storage_numel) * elem);
  rd.bytes(v.storage, static_cast<size_t>(v.storage_numel) * elem);
}

template <typename scalar_t>
const scalar_t* vptr(const InView& v) {
  return v.present ? static_cast<const scalar_t*>(v.storage) + v.offset : nullptr;
}
template <typename scalar_t>
View2<scalar_t> view2(const InView& v) {
  return {vptr<scalar_t>(v), v.rs, v.cs};
}

// --- random fill ----------------------------------------------------------------
//   words: seed, offset, seed_stride, numel, sm_count, out_shift

template <bool kNormal>
void run_random(Reader& rd, const char* out_path) {
  const SeedBuf seed = read_seed(rd);
  const int64_t numel = rd.i64();
  const int sm = static_cast<int>(rd.i64());
  const int64_t shift = rd.i64();
  Out* out = make_out(static_cast<size_t>(numel), sizeof(float), shift);
  const K::RandomLaunch c = K::random_launch(numel, sm);
  float* p = out->ptr<float>();
  const bool vec = K::random_vec_ok(p);
  if (numel > 0) {
    for (int64_t b = 0; b < c.blocks; ++b)
      for (int64_t t = 0; t < c.threads; ++t)
        K::random_thread<kNormal>(seed.ptr(), seed.stride, numel, p, vec, c.groups, b, c.blocks, t, c.threads);
  }
  std::vector<int64_t> stats = base_stats();
  stats.push_back(c.blocks);
  stats.push_back(c.threads);
  stats.push_back(vec);
  write_outputs(out_path, stats, {out});
}

// --- reparam forward ------------------------------------------------------------
//   words: R, D, S, sm_count, out_shift, seed(3 words),
//          4 x view meta (mu, logvar, prior_mu, prior_logvar), then their storages

template <typename scalar_t, typename opmath_t>
void run_fwd(Reader& rd, const char* out_path) {
  const int64_t R = rd.i64(), D = rd.i64(), S = rd.i64();
  const int sm = static_cast<int>(rd.i64());
  const int64_t shift = rd.i64();
  const SeedBuf seed = read_seed(rd);
  InView v[4];
  for (auto& x : v) x = read_view_meta(rd, 2);
  for (auto& x : v) read_view_data(rd, x, sizeof(scalar_t));

  const K::ReparamFwdLaunch c = K::reparam_fwd_launch(R, D, S, sm);
  Out* z = make_out(static_cast<size_t>(S * R * D), sizeof(scalar_t), shift);
  Out* kl = make_out(static_cast<size_t>(R), sizeof(scalar_t), shift);
  Out* ws = make_out(c.nseg > 1 ? static_cast<size_t>(R * c.nseg) : 0, sizeof(opmath_t), 0);
  const auto a = K::make_fwd_args<scalar_t, opmath_t>(
      view2<scalar_t>(v[0]), view2<scalar_t>(v[1]), view2<scalar_t>(v[2]), view2<scalar_t>(v[3]),
      S * R * D > 0 ? z->ptr<scalar_t>() : nullptr, kl->ptr<scalar_t>(), c.nseg > 1 ? ws->ptr<opmath_t>() : nullptr,
      seed.ptr(), seed.stride, R, D, S);

  int64_t bad_config = 0;
  if (c.tpr * c.rows_per_block != c.threads || c.threads != K::kThreads) ++bad_config;
  if (R > 0 && c.blocks == 0) ++bad_config;
  if (c.blocks > 0x7FFFFFFFLL) ++bad_config;
  if (R > 0 && c.blocks > 0) {
    const K::SeedPair sp = K::read_seed(a.seed, a.seed_stride);  // what the kernel does first
    std::vector<K::FwdCoords> co(static_cast<size_t>(c.threads));
    std::vector<opmath_t> part(static_cast<size_t>(c.threads));
    for (int64_t b = 0; b < c.blocks; ++b) {
      for (int64_t item = b; item < c.items; item += c.blocks) {
        for (int t = 0; t < c.threads; ++t) {
          co[t] = K::fwd_coords(c, item, t);
          part[t] = K::fwd_item<scalar_t, opmath_t>(a, c, sp, co[t]);
        }
        // row_sum: the row's first thread receives the sum of its tpr threads.
        for (int t = 0; t < c.threads; ++t) {
          opmath_t total = part[t];
          if (t % c.tpr == 0) {
            total = opmath_t(0);
            for (int u = t; u < t + c.tpr; ++u) total += part[u];
          }
          K::fwd_store_kl<scalar_t, opmath_t>(a, c, co[t], total);
        }
      }
    }
    if (c.nseg > 1) {
      const K::KlFinalizeLaunch f = K::kl_finalize_launch(R, sm);
      for (int64_t b = 0; b < f.blocks; ++b)
        for (int t = 0; t < f.threads; ++t)
          K::kl_finalize_thread<scalar_t, opmath_t>(a.ws, a.kl, R, c.nseg, b, f.blocks, t, f.threads);
    }
  }
  std::vector<int64_t> stats = base_stats();
  for (int64_t x : {static_cast<int64_t>(c.blocks), static_cast<int64_t>(c.threads), static_cast<int64_t>(c.tpr),
                    static_cast<int64_t>(c.rows_per_block), c.nseg, c.nsplit, static_cast<int64_t>(c.aligned),
                    c.items, static_cast<int64_t>(a.vmu), static_cast<int64_t>(a.vlv), static_cast<int64_t>(a.vpm),
                    static_cast<int64_t>(a.vplv), static_cast<int64_t>(a.vz), bad_config})
    stats.push_back(x);
  write_outputs(out_path, stats, {z, kl, ws});
}

// --- reparam backward -----------------------------------------------------------
//   words: R, D, S, sm_count, out_shift, seed(3 words), prior_grads,
//          view meta of grad_z (3-D), grad_kl (1-D), mu, logvar, prior_mu,
//          prior_logvar, then their storages in that order

template <typename scalar_t, typename opmath_t>
void run_bwd(Reader& rd, const char* out_path) {
  const int64_t R = rd.i64(), D = rd.i64(), S = rd.i64();
  const int sm = static_cast<int>(rd.i64());
  const int64_t shift = rd.i64();
  const SeedBuf seed = read_seed(rd);
  const bool prior_grads = rd.i64() != 0;
  InView gz = read_view_meta(rd, 3);
  InView gkl = read_view_meta(rd, 1);
  InView v[4];
  for (auto& x : v) x = read_view_meta(rd, 2);
  read_view_data(rd, gz, sizeof(scalar_t));
  read_view_data(rd, gkl, sizeof(scalar_t));
  for (auto& x : v) read_view_data(rd, x, sizeof(scalar_t));

  const size_t n = static_cast<size_t>(R * D);
  const size_t np = prior_grads ? n : 0;
  Out* dmu = make_out(n, sizeof(scalar_t), shift);
  Out* dlv = make_out(n, sizeof(scalar_t), shift);
  Out* dpm = make_out(np, sizeof(scalar_t), shift);
  Out* dplv = make_out(np, sizeof(scalar_t), shift);
  const K::ReparamBwdLaunch c = K::reparam_bwd_launch(R, D, sm);
  const auto a = K::make_bwd_args<scalar_t>(
      vptr<scalar_t>(gz), gz.ss, gz.rs, gz.cs, vptr<scalar_t>(gkl), gkl.cs, view2<scalar_t>(v[0]),
      view2<scalar_t>(v[1]), view2<scalar_t>(v[2]), view2<scalar_t>(v[3]), dmu->ptr<scalar_t>(),
      dlv->ptr<scalar_t>(), prior_grads ? dpm->ptr<scalar_t>() : nullptr,
      prior_grads ? dplv->ptr<scalar_t>() : nullptr, seed.ptr(), seed.stride, R, D, S);
  int64_t bad_config = 0;
  if (n > 0 && c.blocks == 0) ++bad_config;
  if (c.blocks > 0x7FFFFFFFLL) ++bad_config;
  if (n > 0) {
    for (int64_t b = 0; b < c.blocks; ++b)
      for (int t = 0; t < c.threads; ++t) K::bwd_thread<scalar_t, opmath_t>(a, c.chunks, b, c.blocks, t, c.threads);
  }
  std::vector<int64_t> stats = base_stats();
  for (int64_t x : {static_cast<int64_t>(c.blocks), static_cast<int64_t>(c.threads), c.chunks,
                    static_cast<int64_t>(a.vgz), static_cast<int64_t>(a.vmu), static_cast<int64_t>(a.vlv),
                    static_cast<int64_t>(a.vpm), static_cast<int64_t>(a.vplv), static_cast<int64_t>(a.vout),
                    bad_config})
    stats.push_back(x);
  write_outputs(out_path, stats, {dmu, dlv, dpm, dplv});
}

template <template <typename, typename> class F>
void dispatch_dtype(int64_t dtype, Reader& rd, const char* out) {
  switch (dtype) {
    case 0: F<float, float>::run(rd, out); break;
    case 1: F<double, double>::run(rd, out); break;
    case 2: F<c10::Half, float>::run(rd, out); break;
    case 3: F<c10::BFloat16, float>::run(rd, out); break;
    default: throw std::runtime_error("bad dtype code");
  }
}
template <typename S, typename O>
struct Fwd {
  static void run(Reader& rd, const char* out) { run_fwd<S, O>(rd, out); }
};
template <typename S, typename O>
struct Bwd {
  static void run(Reader& rd, const char* out) { run_bwd<S, O>(rd, out); }
};

}  // namespace sim

int main(int argc, char** argv) {
  return sim::sim_main(argc, argv, "gs_sim", [](int64_t op, sim::Reader& rd, const char* out) {
    switch (op) {
      case 0: sim::run_random<false>(rd, out); break;
      case 1: sim::run_random<true>(rd, out); break;
      case 2: sim::dispatch_dtype<sim::Fwd>(rd.i64(), rd, out); break;
      case 3: sim::dispatch_dtype<sim::Bwd>(rd.i64(), rd, out); break;
      default: throw std::runtime_error("bad op code");
    }
  });
}
