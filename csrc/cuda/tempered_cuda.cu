// CUDA kernels of the tempered family (tempered_sweeps, ais_rbm; specification: the torch
// backend in gensample/ops/tempered.py).
//
// Each half-step is a GEMM through at::mm_out from host code (cuBLAS behind ATen; no
// cuBLAS headers needed here) into a buffer allocated once per op call, followed by ONE
// fused epilogue launch (gensample/kernels/tempered_thread.h):
//
// * tempered_sweeps: hidden epilogue (a = acc + c kept in place as the a_k output, per-
//   chain beta read from the device), Bernoulli-visible epilogue (base bias b_A) or
//   Gaussian-visible epilogue (which also writes x = v / sigma, the next GEMM's input).
// * small layers (W, biases and >= 8 chains' states in 48 KiB of shared memory): ONE
//   persistent launch runs the whole op (tempered_persist_kernel: W and the block's chains
//   stay in shared memory, a barrier between phases; AIS keeps log_w in shared memory).
// * ais_rbm: the whole K-step run is a C++ loop of 2K GEMMs and 2K launches with NO host
//   synchronization: beta_k is read by the kernels from `betas` on the device (the visible
//   epilogue gets a pointer to betas[k] with row stride 0); the hidden step is one block
//   per chain that draws h at beta_k and adds the step's float64 increment to log_w[r]
//   (softplus differences and, Bernoulli, the ell term; a deterministic in-block sum).
// Half-step t draws from substream(seed, t) = (seed, offset + t * 2^32), computed on the
// device; the sequence is CUDA-graph capturable (no allocation inside the loop).
//
// Note: at::mm follows torch's float32 matmul precision; with TF32 allowed the GEMMs round
// differently and states then differ from the other backends where u is within that
// rounding of p (as for gibbs_sweeps).
#include <ATen/core/Tensor.h>
#include <ATen/ops/div.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "gensample/kernels/cuda_utils.cuh"
#include "gensample/kernels/tempered_thread.h"

namespace gensample {
namespace cuda {
namespace {

using kernels::kAisThreads;
using kernels::kThreads;

template <int kKind>
__global__ void __launch_bounds__(kThreads)
    tempered_epilogue_kernel(const kernels::TemperedEpilogueArgs a, int64_t groups) {
  kernels::tempered_epilogue_thread<kKind>(a, groups, blockIdx.x, gridDim.x, threadIdx.x, blockDim.x);
}

__global__ void __launch_bounds__(kAisThreads) ais_hidden_kernel(const kernels::AisHiddenArgs a) {
  __shared__ double sp[kAisThreads];
  __shared__ double ell[kAisThreads];
  for (int64_t r = blockIdx.x; r < a.B; r += gridDim.x) {  // uniform trip count within a block
    kernels::ais_hidden_row_thread(a, r, threadIdx.x, blockDim.x, sp[threadIdx.x], ell[threadIdx.x]);
    __syncthreads();
    if (threadIdx.x == 0) kernels::ais_hidden_row_finish(a, r, sp, ell, blockDim.x);
    __syncthreads();  // sp / ell are reused by the next row
  }
}

// One launch for a whole op on small layers (tempered_thread.h, "persistent kernel").
template <bool kAis>
__global__ void __launch_bounds__(kThreads) tempered_persist_kernel(const kernels::PersistArgs a, int64_t cb) {
  extern __shared__ double tempered_smem[];  // double: 8-byte alignment of the float64 arrays
  const kernels::PersistSmem s = kernels::persist_smem_layout(tempered_smem, a.nv, a.nh, cb, a.gauss, kAis);
  const kernels::SeedPair sp = kernels::read_seed(a.seed, a.seed_stride);
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * cb;
  const int64_t nrows = kernels::min64(cb, a.B - r0);
  const int64_t th = threadIdx.x, nth = blockDim.x;
  kernels::persist_load_thread(a, s, kAis, r0, nrows, th, nth);
  __syncthreads();
  if constexpr (!kAis) {
    kernels::persist_hidden_thread(a, s, sp, 0, false, 0, a.k == 0, r0, nrows, th, nth);
    __syncthreads();
    for (int64_t t = 1; t <= a.k; ++t) {  // uniform trip counts: every thread reaches each barrier
      kernels::persist_visible_thread(a, s, sp, 2 * t - 1, false, 0, t == a.k, r0, nrows, th, nth);
      __syncthreads();
      kernels::persist_hidden_thread(a, s, sp, 2 * t, false, 0, t == a.k, r0, nrows, th, nth);
      __syncthreads();
    }
  } else {
    for (int64_t t = 1; t <= a.k; ++t) {
      kernels::persist_hidden_thread(a, s, sp, 2 * t - 2, true, t, false, r0, nrows, th, nth);
      __syncthreads();
      kernels::persist_row_thread(a, s, t, nrows, th, nth);
      __syncthreads();
      kernels::persist_visible_thread(a, s, sp, 2 * t - 1, true, t, t == a.k, r0, nrows, th, nth);
      __syncthreads();
    }
    kernels::persist_store_logw_thread(a, s, r0, nrows, th, nth);
  }
}

// --- argument checks ---------------------------------------------------------

void check_f32(const at::Tensor& t, const char* name, at::IntArrayRef shape, const c10::Device& device,
               const char* op) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK(t.scalar_type() == at::kFloat, op, ": ", name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.device() == device, op, ": ", name, " is on ", t.device(), " but the states are on ", device);
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

struct Model {
  int64_t B, nv, nh;
  bool gauss;
};

Model check_model(const char* op, const at::Tensor& v, const at::Tensor& weight, const at::Tensor& visible_bias,
                  const at::Tensor& hidden_bias, const at::Tensor& visible_base,
                  const std::optional<at::Tensor>& sigma, const at::Tensor& seed) {
  TORCH_CHECK(v.is_cuda(), op, ": v must be a CUDA tensor, got one on ", v.device());
  TORCH_CHECK(v.dim() == 2, op, ": v must be 2-D (B, n_visible), got ", v.dim(), " dims");
  TORCH_CHECK(weight.dim() == 2, op, ": weight must be 2-D (n_visible, n_hidden), got ", weight.dim(), " dims");
  Model m{v.size(0), weight.size(0), weight.size(1), present(sigma)};
  check_f32(weight, "weight", weight.sizes(), v.device(), op);
  check_f32(v, "v", {m.B, m.nv}, v.device(), op);
  check_f32(visible_bias, "visible_bias", {m.nv}, v.device(), op);
  check_f32(hidden_bias, "hidden_bias", {m.nh}, v.device(), op);
  check_f32(visible_base, "visible_base", {m.nv}, v.device(), op);
  if (m.gauss) check_f32(*sigma, "sigma", {m.nv}, v.device(), op);
  check_seed(seed, v.device(), op);
  return m;
}

// --- launchers ---

kernels::PersistArgs persist_args(const Model& m, const at::Tensor& v, const at::Tensor& weight,
                                  const at::Tensor& visible_bias, const at::Tensor& hidden_bias,
                                  const at::Tensor& visible_base, const std::optional<at::Tensor>& sigma,
                                  const float* beta, const at::Tensor& seed, int64_t k) {
  kernels::PersistArgs pa;
  pa.v0 = v.const_data_ptr<float>();
  pa.w = weight.const_data_ptr<float>();
  pa.vb = visible_bias.const_data_ptr<float>();
  pa.hb = hidden_bias.const_data_ptr<float>();
  pa.bs = m.gauss ? sigma->const_data_ptr<float>() : visible_base.const_data_ptr<float>();
  pa.beta = beta;
  pa.seed = seed.const_data_ptr<int64_t>();
  pa.seed_stride = seed.stride(0);
  pa.v_out = nullptr;
  pa.h_out = nullptr;
  pa.a_out = nullptr;
  pa.log_w = nullptr;
  pa.B = m.B;
  pa.nv = m.nv;
  pa.nh = m.nh;
  pa.k = k;
  pa.gauss = m.gauss;
  return pa;
}

template <int kKind>
void launch_epilogue(const at::Tensor& acc, const at::Tensor& state, float* x_out, const at::Tensor& bias,
                     const float* base, const float* sigma, const float* beta, int64_t beta_stride,
                     const at::Tensor& seed, int64_t step, int sms, cudaStream_t stream) {
  const int64_t numel = acc.numel();
  if (numel == 0) return;
  const kernels::Group4Launch c = kernels::group4_launch(numel, sms);
  kernels::TemperedEpilogueArgs a;
  a.acc = acc.data_ptr<float>();
  a.state = state.data_ptr<float>();
  a.x_out = x_out;
  a.bias = bias.const_data_ptr<float>();
  a.base = base;
  a.sigma = sigma;
  a.beta = beta;
  a.beta_stride = beta_stride;
  a.seed = seed.const_data_ptr<int64_t>();
  a.seed_stride = seed.stride(0);
  a.step = step;
  a.B = acc.size(0);
  a.N = acc.size(1);
  a.vec = kernels::tempered_vec_ok(a.acc, a.state, a.x_out);
  tempered_epilogue_kernel<kKind><<<static_cast<unsigned int>(c.blocks), c.threads, 0, stream>>>(a, c.groups);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The visible half-step of either kind; Gaussian also writes x = v / sigma.
void launch_visible(bool gauss, const at::Tensor& acc, const at::Tensor& v, const at::Tensor& x,
                    const at::Tensor& visible_bias, const at::Tensor& visible_base,
                    const std::optional<at::Tensor>& sigma, const float* beta, int64_t beta_stride,
                    const at::Tensor& seed, int64_t step, int sms, cudaStream_t stream) {
  if (gauss) {
    launch_epilogue<kernels::kGaussVisible>(acc, v, x.data_ptr<float>(), visible_bias, nullptr,
                                            sigma->const_data_ptr<float>(), beta, beta_stride, seed, step, sms,
                                            stream);
  } else {
    launch_epilogue<kernels::kBernVisible>(acc, v, nullptr, visible_bias, visible_base.const_data_ptr<float>(),
                                           nullptr, beta, beta_stride, seed, step, sms, stream);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> tempered_sweeps_cuda(
    const at::Tensor& v, const at::Tensor& weight, const at::Tensor& visible_bias, const at::Tensor& hidden_bias,
    const at::Tensor& visible_base, const at::Tensor& beta, const std::optional<at::Tensor>& sigma,
    const at::Tensor& seed, int64_t k) {
  const char* op = "tempered_sweeps";
  const Model m = check_model(op, v, weight, visible_bias, hidden_bias, visible_base, sigma, seed);
  check_f32(beta, "beta", {m.B}, v.device(), op);
  TORCH_CHECK(k >= 0 && k < (int64_t{1} << 30), op, ": k must be in [0, 2^30), got ", k);
  const c10::cuda::CUDAGuard guard(v.device());
  const int sms = sm_count(v.device().index());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const float* beta_p = beta.const_data_ptr<float>();
  const kernels::PersistLaunch pl = kernels::persist_launch(m.B, m.nv, m.nh, m.gauss, false, sms);
  if (pl.fits) {
    at::Tensor v_out = at::empty({m.B, m.nv}, v.options());
    at::Tensor h_out = at::empty({m.B, m.nh}, v.options());
    at::Tensor a_out = at::empty({m.B, m.nh}, v.options());
    kernels::PersistArgs pa = persist_args(m, v, weight, visible_bias, hidden_bias, visible_base, sigma, beta_p, seed, k);
    pa.v_out = v_out.data_ptr<float>();
    pa.h_out = h_out.data_ptr<float>();
    pa.a_out = a_out.data_ptr<float>();
    tempered_persist_kernel<false><<<static_cast<unsigned int>(pl.blocks), pl.threads,
                                     static_cast<size_t>(pl.smem_bytes), stream>>>(pa, pl.cb);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {v_out, h_out, a_out};
  }
  // x = v / sigma (Gaussian; IEEE division, as gaussian_input) or v
  at::Tensor x = m.gauss ? at::div(v, *sigma) : v;
  at::Tensor a = at::empty({m.B, m.nh}, v.options());  // GEMM buffer, becomes a = acc + c
  at::Tensor h = at::empty({m.B, m.nh}, v.options());
  at::mm_out(a, x, weight);
  launch_epilogue<kernels::kHidden>(a, h, nullptr, hidden_bias, nullptr, nullptr, beta_p, 1, seed, 0, sms, stream);
  if (k == 0) return {v.clone(), h, a};
  const at::Tensor wt = weight.t();
  at::Tensor v_acc = at::empty({m.B, m.nv}, v.options());
  at::Tensor vs = at::empty({m.B, m.nv}, v.options());
  if (m.gauss) x = at::empty({m.B, m.nv}, v.options());
  for (int64_t s = 1; s <= k; ++s) {
    at::mm_out(v_acc, h, wt);
    launch_visible(m.gauss, v_acc, vs, x, visible_bias, visible_base, sigma, beta_p, 1, seed, 2 * s - 1, sms,
                   stream);
    at::mm_out(a, m.gauss ? x : vs, weight);
    launch_epilogue<kernels::kHidden>(a, h, nullptr, hidden_bias, nullptr, nullptr, beta_p, 1, seed, 2 * s, sms,
                                      stream);
  }
  return {vs, h, a};
}

std::tuple<at::Tensor, at::Tensor> ais_rbm_cuda(const at::Tensor& v, const at::Tensor& weight,
                                                const at::Tensor& visible_bias, const at::Tensor& hidden_bias,
                                                const at::Tensor& visible_base, const at::Tensor& betas,
                                                const std::optional<at::Tensor>& sigma, const at::Tensor& seed) {
  const char* op = "ais_rbm";
  const Model m = check_model(op, v, weight, visible_bias, hidden_bias, visible_base, sigma, seed);
  TORCH_CHECK(betas.dim() == 1 && betas.size(0) >= 1, op, ": betas must be 1-D (K + 1,) with K >= 0, got shape ",
              betas.sizes());
  check_f32(betas, "betas", betas.sizes(), v.device(), op);
  const int64_t K = betas.size(0) - 1;
  TORCH_CHECK(K < (int64_t{1} << 30), op, ": betas may hold at most 2^30 steps, got ", K);
  const c10::cuda::CUDAGuard guard(v.device());
  at::Tensor log_w = at::zeros({m.B}, v.options().dtype(at::kDouble));
  if (K == 0 || m.B == 0) return {log_w, v.clone()};
  const int sms = sm_count(v.device().index());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const float* betas_p = betas.const_data_ptr<float>();
  const kernels::PersistLaunch pl = kernels::persist_launch(m.B, m.nv, m.nh, m.gauss, true, sms);
  if (pl.fits) {
    at::Tensor v_out = at::empty({m.B, m.nv}, v.options());
    kernels::PersistArgs pa = persist_args(m, v, weight, visible_bias, hidden_bias, visible_base, sigma, betas_p, seed,
                                           K);
    pa.v_out = v_out.data_ptr<float>();
    pa.log_w = log_w.data_ptr<double>();
    tempered_persist_kernel<true><<<static_cast<unsigned int>(pl.blocks), pl.threads,
                                    static_cast<size_t>(pl.smem_bytes), stream>>>(pa, pl.cb);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {log_w, v_out};
  }
  const at::Tensor wt = weight.t();
  at::Tensor acc_h = at::empty({m.B, m.nh}, v.options());
  at::Tensor h = at::empty({m.B, m.nh}, v.options());
  at::Tensor acc_v = at::empty({m.B, m.nv}, v.options());
  at::Tensor vs = at::empty({m.B, m.nv}, v.options());
  at::Tensor x = m.gauss ? at::div(v, *sigma) : v;  // the first hidden GEMM's input
  at::Tensor xs = m.gauss ? at::empty({m.B, m.nv}, v.options()) : vs;
  const kernels::AisLaunch c = kernels::ais_hidden_launch(m.B, sms);
  kernels::AisHiddenArgs ha;
  ha.acc = acc_h.const_data_ptr<float>();
  ha.h = h.data_ptr<float>();
  ha.vb = visible_bias.const_data_ptr<float>();
  ha.base = visible_base.const_data_ptr<float>();
  ha.hb = hidden_bias.const_data_ptr<float>();
  ha.betas = betas_p;
  ha.log_w = log_w.data_ptr<double>();
  ha.seed = seed.const_data_ptr<int64_t>();
  ha.seed_stride = seed.stride(0);
  ha.B = m.B;
  ha.nv = m.nv;
  ha.nh = m.nh;
  for (int64_t s = 1; s <= K; ++s) {
    const at::Tensor& x_in = s == 1 ? x : xs;
    at::mm_out(acc_h, x_in, weight);
    ha.v = m.gauss ? nullptr : (s == 1 ? v : vs).const_data_ptr<float>();
    ha.k = s;
    ha.step = 2 * s - 2;
    ais_hidden_kernel<<<static_cast<unsigned int>(c.blocks), c.threads, 0, stream>>>(ha);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    at::mm_out(acc_v, h, wt);
    launch_visible(m.gauss, acc_v, vs, xs, visible_bias, visible_base, sigma, betas_p + s, 0, seed, 2 * s - 1, sms,
                   stream);
  }
  return {log_w, vs};
}

}  // namespace
}  // namespace cuda
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CUDA, m) {
  m.impl("tempered_sweeps", &gensample::cuda::tempered_sweeps_cuda);
  m.impl("ais_rbm", &gensample::cuda::ais_rbm_cuda);
}
