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
// int64 nbytes, bytes, int64 n, int32 write_counts[n].
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

// --- instrumentation hooks (must precede the kernel headers) -----------------
namespace sim {

struct OutBuf {
  char* base;
  size_t elem;
  size_t n;
  std::vector<int32_t> counts;
};
std::vector<OutBuf*> g_outs;
int64_t g_stray_stores = 0;  // stores outside every registered buffer, or off the element grid
int64_t g_misaligned = 0;    // 4-vector accesses at a misaligned address
int64_t g_vec_accesses = 0;  // 4-vector accesses (loads and stores)

inline void record_store(const void* p, size_t elem, size_t n) {
  const char* c = static_cast<const char*>(p);
  for (OutBuf* b : g_outs) {
    if (c >= b->base && c < b->base + b->elem * b->n) {
      const size_t off = static_cast<size_t>(c - b->base);
      if (elem != b->elem || off % elem != 0 || off / elem + n > b->n) {
        ++g_stray_stores;
        return;
      }
      for (size_t i = 0; i < n; ++i) ++b->counts[off / elem + i];
      return;
    }
  }
  ++g_stray_stores;
}

inline void check_aligned(const void* p, size_t bytes) {
  ++g_vec_accesses;
  if (reinterpret_cast<uintptr_t>(p) % bytes != 0) ++g_misaligned;
}

}  // namespace sim

#define GS_SIM_RECORD_STORE(ptr, n) ::sim::record_store((ptr), sizeof(*(ptr)), (n))
#define GS_SIM_CHECK_ALIGNED(ptr, bytes) ::sim::check_aligned((ptr), (bytes))

#include "gensample/kernels/gibbs_thread.h"

namespace sim {

namespace K = gensample::kernels;

struct Reader {
  std::vector<char> data;
  size_t pos = 0;
  int64_t i64() {
    if (pos + 8 > data.size()) throw std::runtime_error("input truncated");
    int64_t v;
    std::memcpy(&v, data.data() + pos, 8);
    pos += 8;
    return v;
  }
  float f32_word() {  // a float32 passed as its bit pattern in one int64 word
    const uint32_t b = static_cast<uint32_t>(i64());
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  void bytes(void* dst, size_t n) {
    if (pos + n > data.size()) throw std::runtime_error("input truncated (blob)");
    if (n) std::memcpy(dst, data.data() + pos, n);
    pos += n;
  }
};

// A buffer of exactly `bytes` bytes (ASan sees its end) on a 256-byte boundary.
void* alloc_exact(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0) throw std::bad_alloc();
  return p;
}

// An exact-size float32 input read from the stream.
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

// An output of n floats at element offset `shift` into an exact-size buffer, filled with
// 0xFF bytes (NaN) or with the given initial values (the in-place GEMM buffer).
struct Out {
  OutBuf buf;
  void* storage = nullptr;
  float* ptr() { return reinterpret_cast<float*>(buf.base); }
};

Out* make_out(size_t n, int64_t shift, const float* init = nullptr) {
  Out* o = new Out();
  const size_t bytes = (n + static_cast<size_t>(shift)) * sizeof(float);
  o->storage = alloc_exact(bytes);
  std::memset(o->storage, 0xFF, bytes);
  o->buf.base = static_cast<char*>(o->storage) + shift * static_cast<int64_t>(sizeof(float));
  o->buf.elem = sizeof(float);
  o->buf.n = n;
  o->buf.counts.assign(n, 0);
  if (init != nullptr && n) std::memcpy(o->buf.base, init, n * sizeof(float));
  g_outs.push_back(&o->buf);
  return o;
}

void write_outputs(const char* path, const std::vector<int64_t>& stats, const std::vector<Out*>& outs) {
  FILE* f = std::fopen(path, "wb");
  if (!f) throw std::runtime_error(std::string("cannot open ") + path);
  const int64_t ns = static_cast<int64_t>(stats.size());
  std::fwrite(&ns, 8, 1, f);
  if (ns) std::fwrite(stats.data(), 8, stats.size(), f);
  for (Out* o : outs) {
    const int64_t nbytes = static_cast<int64_t>(o->buf.n * o->buf.elem);
    std::fwrite(&nbytes, 8, 1, f);
    if (nbytes) std::fwrite(o->buf.base, 1, static_cast<size_t>(nbytes), f);
    const int64_t n = static_cast<int64_t>(o->buf.n);
    std::fwrite(&n, 8, 1, f);
    if (n) std::fwrite(o->buf.counts.data(), 4, o->buf.counts.size(), f);
  }
  std::fclose(f);
}

std::vector<int64_t> base_stats() { return {g_stray_stores, g_misaligned, g_vec_accesses}; }

struct SeedBuf {
  std::vector<int64_t> mem;
  int64_t stride;
  const int64_t* ptr() const { return mem.data(); }
};
SeedBuf read_seed(Reader& rd) {
  SeedBuf s;
  const int64_t seed = rd.i64(), offset = rd.i64();
  s.stride = rd.i64();
  s.mem.assign(static_cast<size_t>(s.stride) + 1, 0x5A5A5A5A5A5A5A5ALL);
  s.mem[0] = seed;
  s.mem[static_cast<size_t>(s.stride)] = offset;
  return s;
}

// --- fused epilogue -------------------------------------------------------------------
//   words: B, N, sm_count, step, beta (f32 bits), out_shift, seed (3 words)
//   blobs: acc (B*N), bias (N) [, sigma (N), noise_std (N)]
//   outputs: state (or v), prob (or mean; the acc buffer, in place)

template <bool kGauss>
void run_epilogue(Reader& rd, const char* out_path) {
  const int64_t B = rd.i64(), N = rd.i64();
  const int sm = static_cast<int>(rd.i64());
  const int64_t step = rd.i64();
  const float beta = rd.f32_word();
  const int64_t shift = rd.i64();
  const SeedBuf seed = read_seed(rd);
  const size_t n = static_cast<size_t>(B * N);
  In acc_in(rd, n), bias(rd, static_cast<size_t>(N));
  In sigma(rd, kGauss ? static_cast<size_t>(N) : 0), nstd(rd, kGauss ? static_cast<size_t>(N) : 0);
  Out* state = make_out(n, shift);
  Out* acc = make_out(n, shift, acc_in.p);
  const K::EpilogueLaunch c = K::gibbs_epilogue_launch(static_cast<int64_t>(n), sm);
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
  const float beta = rd.f32_word();
  const int sm = static_cast<int>(rd.i64());
  const SeedBuf seed = read_seed(rd);
  In v0(rd, static_cast<size_t>(B * nv)), w(rd, static_cast<size_t>(nv * nh));
  In vb(rd, static_cast<size_t>(nv)), hb(rd, static_cast<size_t>(nh));
  const K::SweepLaunch c = K::gibbs_sweep_launch(B, nv, nh, sm);
  const size_t nvo = c.fits ? static_cast<size_t>(B * nv) : 0, nho = c.fits ? static_cast<size_t>(B * nh) : 0;
  Out* v_out = make_out(nvo, 0);
  Out* h_out = make_out(nho, 0);
  Out* hp_out = make_out(nho, 0);
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
      Out* smem = make_out(nsm, 0);  // registered: its stores are counted per phase
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
      {
        OutBuf& m = smem->buf;
        for (int64_t i = 0; i < static_cast<int64_t>(m.n); ++i) {
          const int32_t want = (i < v_lo + nrows * nv) ? 1 : 0;
          if (m.counts[static_cast<size_t>(i)] != want) ++smem_bad;
          m.counts[static_cast<size_t>(i)] = 0;
        }
      }
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
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IN OUT\n", argv[0]);
    return 2;
  }
  try {
    sim::Reader rd;
    FILE* f = std::fopen(argv[1], "rb");
    if (!f) throw std::runtime_error("cannot open input");
    char chunk[1 << 16];
    size_t got;
    while ((got = std::fread(chunk, 1, sizeof(chunk), f)) > 0) rd.data.insert(rd.data.end(), chunk, chunk + got);
    std::fclose(f);
    const int64_t op = rd.i64();
    switch (op) {
      case 0: sim::run_epilogue<false>(rd, argv[2]); break;
      case 1: sim::run_epilogue<true>(rd, argv[2]); break;
      case 2: sim::run_sweeps(rd, argv[2]); break;
      default: throw std::runtime_error("bad op code");
    }
    if (rd.pos != rd.data.size()) throw std::runtime_error("trailing input bytes");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gibbs_sim: %s\n", e.what());
    return 1;
  }
  return 0;
}
