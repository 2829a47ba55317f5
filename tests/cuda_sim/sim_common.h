// Shared instrumentation and IO of the simulated-grid drivers (sim_driver.cpp,
// gibbs_sim_driver.cpp, langevin_sim_driver.cpp; see tests/cuda_sim_support.py).
//
// Include this FIRST, before any gensample/kernels/*.h header: it defines the
// instrumentation hooks GS_SIM_RECORD_STORE / GS_SIM_CHECK_ALIGNED that the kernel
// headers use when they are defined (and compile to nothing otherwise).
//
// * every store of a kernel body is recorded against the registered output buffers
//   (exactly-once checks; stores elsewhere or off the element grid count as stray);
// * every 4-vector access checks its alignment;
// * buffers are exact-size heap allocations (AddressSanitizer sees their ends) on a
//   256-byte boundary, like a CUDA allocation.
//
// Protocol of every driver: DRIVER IN OUT. IN is a stream of little-endian int64
// words (the first one the op code) followed by raw tensor storages; OUT is
//   int64 n_stats, int64 stats[n_stats] (stray stores, misaligned accesses, vector
//   accesses, then the driver's own), then per output buffer:
//   int64 nbytes, bytes, int64 n, int32 write_counts[n].
#ifndef GENSAMPLE_TESTS_CUDA_SIM_SIM_COMMON_H_
#define GENSAMPLE_TESTS_CUDA_SIM_SIM_COMMON_H_

// launch.h defines no-op hooks when none are defined: a kernel header included
// earlier would silently leave the stores unrecorded.
#if defined(GS_SIM_RECORD_STORE) || defined(GS_SIM_CHECK_ALIGNED)
#error "sim_common.h must be included before the gensample/kernels headers"
#endif

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
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
inline std::vector<OutBuf*> g_outs;
inline int64_t g_stray_stores = 0;  // stores outside every registered buffer, or off the element grid
inline int64_t g_misaligned = 0;    // 4-vector accesses at a misaligned address
inline int64_t g_vec_accesses = 0;  // 4-vector accesses (loads and stores)

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

namespace sim {

// --- input --------------------------------------------------------------------

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
  float f32() {  // a float32 passed as its bit pattern in one int64 word
    const uint32_t u = static_cast<uint32_t>(i64());
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  void bytes(void* dst, size_t n) {
    if (pos + n > data.size()) throw std::runtime_error("input truncated (blob)");
    if (n) std::memcpy(dst, data.data() + pos, n);
    pos += n;
  }
};

// A buffer of exactly `bytes` bytes (ASan sees its end) on a 256-byte boundary,
// like a CUDA allocation.
inline void* alloc_exact(size_t bytes) {
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

// The seed pair lives in device memory; here, a buffer read through the stride.
struct SeedBuf {
  std::vector<int64_t> mem;
  int64_t stride;
  const int64_t* ptr() const { return mem.data(); }
};
inline SeedBuf read_seed(Reader& rd) {
  SeedBuf s;
  const int64_t seed = rd.i64(), offset = rd.i64();
  s.stride = rd.i64();
  s.mem.assign(static_cast<size_t>(s.stride) + 1, 0x5A5A5A5A5A5A5A5ALL);  // filler between the two words
  s.mem[0] = seed;
  s.mem[static_cast<size_t>(s.stride)] = offset;
  return s;
}

// --- output -------------------------------------------------------------------

// An output of n elements at element offset `shift` into an exact-size buffer
// (shift != 0 emulates a misaligned output to exercise the scalar fallbacks),
// filled with 0xFF bytes (NaN in every floating dtype), or with `init` (n elements)
// where given (an in-place buffer). Registered: its stores are counted.
struct Out {
  OutBuf buf;
  void* storage = nullptr;
  template <typename T = float>
  T* ptr() {
    return reinterpret_cast<T*>(buf.base);
  }
};

inline Out* make_out(size_t n, size_t elem, int64_t shift, const void* init = nullptr) {
  Out* o = new Out();
  const size_t bytes = (n + static_cast<size_t>(shift)) * elem;
  o->storage = alloc_exact(bytes);
  std::memset(o->storage, 0xFF, bytes);
  o->buf.base = static_cast<char*>(o->storage) + shift * static_cast<int64_t>(elem);
  o->buf.elem = elem;
  o->buf.n = n;
  o->buf.counts.assign(n, 0);
  if (init != nullptr && n) std::memcpy(o->buf.base, init, n * elem);
  g_outs.push_back(&o->buf);
  return o;
}

inline void write_outputs(const char* path, const std::vector<int64_t>& stats, const std::vector<Out*>& outs) {
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

inline std::vector<int64_t> base_stats() { return {g_stray_stores, g_misaligned, g_vec_accesses}; }

// --- main() -------------------------------------------------------------------

// The drivers' main(): reads IN whole, reads the op code and calls
// dispatch(op, reader, out_path), then checks that the input was consumed exactly.
// Errors are reported on stderr as "<name>: <message>" with exit status 1.
template <typename Dispatch>
int sim_main(int argc, char** argv, const char* name, Dispatch dispatch) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IN OUT\n", argv[0]);
    return 2;
  }
  try {
    Reader rd;
    FILE* f = std::fopen(argv[1], "rb");
    if (!f) throw std::runtime_error("cannot open input");
    char chunk[1 << 16];
    size_t got;
    while ((got = std::fread(chunk, 1, sizeof(chunk), f)) > 0) rd.data.insert(rd.data.end(), chunk, chunk + got);
    std::fclose(f);
    const int64_t op = rd.i64();
    dispatch(op, rd, argv[2]);
    if (rd.pos != rd.data.size()) throw std::runtime_error("trailing input bytes");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
  return 0;
}

}  // namespace sim

#endif  // GENSAMPLE_TESTS_CUDA_SIM_SIM_COMMON_H_
