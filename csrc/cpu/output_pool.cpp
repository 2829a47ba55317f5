// A bounded cache of large CPU output buffers (the CPU analogue of PyTorch's CUDA
// caching allocator, for gensample's own outputs only).
//
// Why: on the VMs this library is developed and benchmarked on, the first touch of
// a fresh multi-megabyte allocation (glibc mmaps anything over 32 MiB, and returns
// it on free) costs 1.4 to 5 microseconds per 4 KiB page: for a 128 MiB output that
// is more than the fused kernel itself. A training loop allocates the same output
// shapes every step, so gensample keeps freed outputs of 1 MiB or more, up to
// GENSAMPLE_CPU_POOL_MB (default 1024; 0 disables), and hands them out again. Values
// are unaffected: every output element is written by the kernels.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>

#include "cpu_kernels.h"

#if defined(GS_CPU_AVX2_PATH)
#include <immintrin.h>
#endif

namespace gensample {
namespace cpu {
namespace {

constexpr size_t kMiB = size_t(1) << 20;
constexpr size_t kMinPooled = kMiB;          // smaller outputs go through at::empty
constexpr size_t kGranule = size_t(64) << 10;  // size classes of 64 KiB

struct Pool {
  std::mutex mutex;
  std::multimap<size_t, void*> blocks;  // capacity -> free block
  size_t cached = 0;
  size_t live = 0;       // bytes of pooled outputs currently held by tensors
  size_t peak_live = 0;  // high-water mark of live since the last reset (for benchmarks)
  size_t cap;
  Pool() {
    const char* v = std::getenv("GENSAMPLE_CPU_POOL_MB");
    cap = (v != nullptr && *v != '\0') ? static_cast<size_t>(std::strtoull(v, nullptr, 10)) * kMiB : 1024 * kMiB;
  }
};

// Never destroyed: tensors freed during interpreter shutdown still return here.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

void give_back(void* ptr, size_t bytes) {
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> g(p.mutex);
    p.live -= bytes;
    if (p.cached + bytes <= p.cap) {
      p.blocks.emplace(bytes, ptr);
      p.cached += bytes;
      return;
    }
  }
  std::free(ptr);
}

}  // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  int64_t numel = 1;
  for (const int64_t s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * options.dtype().itemsize();
  Pool& p = pool();
  if (bytes < kMinPooled || p.cap == 0) return at::empty(sizes, options);
  const size_t capacity = (bytes + kGranule - 1) / kGranule * kGranule;
  void* ptr = nullptr;
  {
    std::lock_guard<std::mutex> g(p.mutex);
    auto it = p.blocks.find(capacity);
    if (it != p.blocks.end()) {
      ptr = it->second;
      p.blocks.erase(it);
      p.cached -= capacity;
    }
    p.live += capacity;
    if (p.live > p.peak_live) p.peak_live = p.live;
  }
  if (ptr == nullptr && posix_memalign(&ptr, 64, capacity) != 0) {
    std::lock_guard<std::mutex> g(p.mutex);
    p.live -= capacity;
    throw std::bad_alloc();
  }
  return at::from_blob(
      ptr, sizes, [capacity](void* q) { give_back(q, capacity); }, options);
}

size_t pool_cached_bytes() {
  Pool& p = pool();
  std::lock_guard<std::mutex> g(p.mutex);
  return p.cached;
}

size_t pool_capacity_bytes() { return pool().cap; }

size_t pool_live_bytes() {
  Pool& p = pool();
  std::lock_guard<std::mutex> g(p.mutex);
  return p.live;
}

size_t pool_reset_peak() {
  Pool& p = pool();
  std::lock_guard<std::mutex> g(p.mutex);
  const size_t peak = p.peak_live;
  p.peak_live = p.live;
  return peak;
}

void pool_clear() {
  Pool& p = pool();
  std::multimap<size_t, void*> blocks;
  {
    std::lock_guard<std::mutex> g(p.mutex);
    blocks.swap(p.blocks);
    p.cached = 0;
  }
  for (auto& kv : blocks) std::free(kv.second);
}

// ---------------------------------------------------------------------------
// Streaming stores (cpu_kernels.h).

bool stream_outputs(size_t bytes) {
  static const size_t threshold = [] {
    const char* v = std::getenv("GENSAMPLE_CPU_STREAM_MB");
    if (v == nullptr || *v == '\0') return size_t(16) * kMiB;
    const unsigned long long mb = std::strtoull(v, nullptr, 10);
    return mb == 0 ? ~size_t(0) : static_cast<size_t>(mb) * kMiB;
  }();
  return bytes >= threshold;
}

#if defined(GS_CPU_AVX2_PATH)
namespace {
GS_TARGET_AVX2 void stream_copy_avx2(const float* src, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 31) != 0; ++i) dst[i] = src[i];
  for (; i + 16 <= n; i += 16) {
    _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
    _mm256_stream_ps(dst + i + 8, _mm256_loadu_ps(src + i + 8));
  }
  for (; i + 8 <= n; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}
GS_TARGET_AVX2 void stream_copy_avx2(const double* src, int64_t n, double* dst) {
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 31) != 0; ++i) dst[i] = src[i];
  for (; i + 4 <= n; i += 4) _mm256_stream_pd(dst + i, _mm256_loadu_pd(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}
}  // namespace
#endif

void stream_copy(const float* src, int64_t n, float* dst) {
#if defined(GS_CPU_AVX2_PATH)
  if (use_avx2()) return stream_copy_avx2(src, n, dst);
#endif
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void stream_copy(const double* src, int64_t n, double* dst) {
#if defined(GS_CPU_AVX2_PATH)
  if (use_avx2()) return stream_copy_avx2(src, n, dst);
#endif
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(double));
}

void stream_fence() {
#if defined(GS_CPU_AVX2_PATH)
  _mm_sfence();
#endif
}

}  // namespace cpu
}  // namespace gensample
