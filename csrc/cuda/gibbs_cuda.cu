// CUDA kernels of the block Gibbs ops (gibbs_half_step, gaussian_half_step, gibbs_sweeps).
//
// Half-steps: the GEMM acc = x @ W (or x @ W^T) runs through at::mm from host code (cuBLAS
// behind ATen; no cuBLAS headers needed here), then ONE fused epilogue kernel per
// half-step: bias, beta, gs_sigmoid, the Philox uniform (or normal) of the element's
// stream index and the compare, writing the probability (or mean) over the GEMM's buffer
// in place and the state (or sample) to its own output. One thread = one Philox call =
// 4 consecutive outputs (16-byte vectors).
//
// gibbs_sweeps: when W, both biases and the states of at least 8 chains fit in 48 KiB of
// shared memory (gibbs_sweep_launch; 64x32 has room for 105 chains; a block takes about
// B / (2 * SMs) chains, 8 to 64), ONE persistent kernel runs all 2k + 1 half-steps: a
// block loads W once and keeps its chains' v and h in shared memory, with a barrier
// between half-steps. When both widths are multiples of 4 it reads shared memory in
// 16-byte vectors (gibbs_sweeps_kernel<true>). Otherwise a loop of at::mm_out into
// preallocated buffers + fused epilogue launches (the step index is a kernel argument: no
// host synchronization, no allocation inside the loop, CUDA-graph capturable).
// Half-step t uses substream(seed, t) = (seed, offset + t * 2^32), computed on the device.
//
// The per-thread programs are gensample/kernels/gibbs_thread.h (also run over the same
// grid on the CPU by tests/test_gibbs_cuda_sim.py).
//
// Note: at::mm follows torch's float32 matmul precision setting; with TF32 allowed
// (torch.set_float32_matmul_precision("high")) the GEMM rounds differently, so states
// then differ from the other backends where u is within that rounding of p.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "gensample/kernels/cuda_utils.cuh"
#include "gensample/kernels/gibbs_thread.h"

namespace gensample {
namespace cuda {
namespace {

using kernels::kThreads;

template <bool kGauss>
__global__ void __launch_bounds__(kThreads)
    gibbs_epilogue_kernel(const kernels::GibbsEpilogueArgs a, int64_t groups) {
  kernels::gibbs_epilogue_thread<kGauss>(a, groups, blockIdx.x, gridDim.x, threadIdx.x, blockDim.x);
}

template <bool kVec>
__global__ void __launch_bounds__(kThreads) gibbs_sweeps_kernel(const kernels::GibbsSweepArgs a, int64_t cb) {
  extern __shared__ __align__(16) float smem[];
  const kernels::SweepSmem s = kernels::sweep_smem_layout(smem, a.nv, a.nh, cb);
  const kernels::SeedPair sp = kernels::read_seed(a.seed, a.seed_stride);
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * cb;
  const int64_t nrows = kernels::min64(cb, a.B - r0);
  kernels::sweep_load_thread(a, s, r0, nrows, threadIdx.x, blockDim.x);
  __syncthreads();
  for (int64_t t = 0; t <= 2 * a.k; ++t) {  // uniform trip count: every thread reaches each barrier
    kernels::sweep_half_thread<kVec>(a, s, sp, t, r0, nrows, threadIdx.x, blockDim.x);
    __syncthreads();
  }
}

// --- argument checks ---------------------------------------------------------

void check_f32(const at::Tensor& t, const char* name, at::IntArrayRef shape, const c10::Device& device,
               const char* op) {
  TORCH_CHECK(t.scalar_type() == at::kFloat, op, ": ", name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.device() == device, op, ": ", name, " is on ", t.device(), " but the states are on ", device);
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

void check_weight(const at::Tensor& x, const at::Tensor& weight, const char* xname, const char* op) {
  TORCH_CHECK(x.is_cuda(), op, ": ", xname, " must be a CUDA tensor, got one on ", x.device());
  TORCH_CHECK(x.dim() == 2, op, ": ", xname, " must be 2-D (B, n_in), got ", x.dim(), " dims");
  TORCH_CHECK(weight.dim() == 2, op, ": weight must be 2-D (n_visible, n_hidden), got ", weight.dim(), " dims");
  check_f32(weight, "weight", weight.sizes(), x.device(), op);
}

// --- launchers -----------------------------------------------------------------

// acc (B, N) -> prob (in place) and state; Gaussian: acc -> mean (in place) and v.
template <bool kGauss>
void launch_epilogue(const at::Tensor& acc, const at::Tensor& state, const at::Tensor& bias, const float* sigma,
                     const float* noise_std, const at::Tensor& seed, int64_t step, double beta, int sms,
                     cudaStream_t stream) {
  const int64_t numel = acc.numel();
  if (numel == 0) return;
  const kernels::Group4Launch c = kernels::group4_launch(numel, sms);
  kernels::GibbsEpilogueArgs a;
  a.acc = acc.data_ptr<float>();
  a.state = state.data_ptr<float>();
  a.bias = bias.const_data_ptr<float>();
  a.sigma = sigma;
  a.noise_std = noise_std;
  a.seed = seed.const_data_ptr<int64_t>();
  a.seed_stride = seed.stride(0);
  a.step = step;
  a.B = acc.size(0);
  a.N = acc.size(1);
  a.beta = static_cast<float>(beta);
  a.vec = kernels::gibbs_epilogue_vec_ok(a.acc, a.state);
  gibbs_epilogue_kernel<kGauss><<<static_cast<unsigned int>(c.blocks), c.threads, 0, stream>>>(a, c.groups);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> gibbs_half_step_cuda(const at::Tensor& x, const at::Tensor& weight,
                                                        const at::Tensor& bias, const at::Tensor& seed, double beta,
                                                        bool transpose) {
  const char* op = "gibbs_half_step";
  check_weight(x, weight, "x", op);
  const int64_t B = x.size(0), nv = weight.size(0), nh = weight.size(1);
  const int64_t n_in = transpose ? nh : nv, n_out = transpose ? nv : nh;
  check_f32(x, "x", {B, n_in}, x.device(), op);
  check_f32(bias, "bias", {n_out}, x.device(), op);
  check_seed(seed, x.device(), op);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor acc = at::mm(x, transpose ? weight.t() : weight).contiguous();  // becomes prob
  at::Tensor state = at::empty({B, n_out}, x.options());
  launch_epilogue<false>(acc, state, bias, nullptr, nullptr, seed, 0, beta, sm_count(x.device().index()),
                         c10::cuda::getCurrentCUDAStream());
  return {state, acc};
}

std::tuple<at::Tensor, at::Tensor> gaussian_half_step_cuda(const at::Tensor& h, const at::Tensor& weight,
                                                           const at::Tensor& bias, const at::Tensor& sigma,
                                                           const at::Tensor& noise_std, const at::Tensor& seed) {
  const char* op = "gaussian_half_step";
  check_weight(h, weight, "h", op);
  const int64_t B = h.size(0), nv = weight.size(0), nh = weight.size(1);
  check_f32(h, "h", {B, nh}, h.device(), op);
  check_f32(bias, "bias", {nv}, h.device(), op);
  check_f32(sigma, "sigma", {nv}, h.device(), op);
  check_f32(noise_std, "noise_std", {nv}, h.device(), op);
  check_seed(seed, h.device(), op);
  const c10::cuda::CUDAGuard guard(h.device());
  at::Tensor acc = at::mm(h, weight.t()).contiguous();  // becomes mean
  at::Tensor v = at::empty({B, nv}, h.options());
  launch_epilogue<true>(acc, v, bias, sigma.const_data_ptr<float>(), noise_std.const_data_ptr<float>(), seed, 0, 1.0,
                        sm_count(h.device().index()), c10::cuda::getCurrentCUDAStream());
  return {v, acc};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gibbs_sweeps_cuda(const at::Tensor& v, const at::Tensor& weight,
                                                                 const at::Tensor& visible_bias,
                                                                 const at::Tensor& hidden_bias, const at::Tensor& seed,
                                                                 int64_t k, double beta) {
  const char* op = "gibbs_sweeps";
  check_weight(v, weight, "v", op);
  const int64_t B = v.size(0), nv = weight.size(0), nh = weight.size(1);
  check_f32(v, "v", {B, nv}, v.device(), op);
  check_f32(visible_bias, "visible_bias", {nv}, v.device(), op);
  check_f32(hidden_bias, "hidden_bias", {nh}, v.device(), op);
  check_seed(seed, v.device(), op);
  TORCH_CHECK(k >= 0 && k < (int64_t{1} << 30), op, ": k must be in [0, 2^30), got ", k);
  const c10::cuda::CUDAGuard guard(v.device());
  const int sms = sm_count(v.device().index());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const kernels::SweepLaunch c = kernels::gibbs_sweep_launch(B, nv, nh, sms);
  if (c.fits) {
    at::Tensor v_out = at::empty({B, nv}, v.options());
    at::Tensor h_out = at::empty({B, nh}, v.options());
    at::Tensor hp_out = at::empty({B, nh}, v.options());
    kernels::GibbsSweepArgs a;
    a.v0 = v.const_data_ptr<float>();
    a.w = weight.const_data_ptr<float>();
    a.vb = visible_bias.const_data_ptr<float>();
    a.hb = hidden_bias.const_data_ptr<float>();
    a.seed = seed.const_data_ptr<int64_t>();
    a.seed_stride = seed.stride(0);
    a.v_out = v_out.data_ptr<float>();
    a.h_out = h_out.data_ptr<float>();
    a.hp_out = hp_out.data_ptr<float>();
    a.B = B;
    a.nv = nv;
    a.nh = nh;
    a.k = k;
    a.beta = static_cast<float>(beta);
    a.vec = kernels::gibbs_sweep_vec_ok(nv, nh, a.v_out, a.h_out, a.hp_out);
    const dim3 grid(static_cast<unsigned int>(c.blocks)), block(c.threads);
    const size_t smem = static_cast<size_t>(c.smem_bytes);
    if (a.vec) {
      gibbs_sweeps_kernel<true><<<grid, block, smem, stream>>>(a, c.cb);
    } else {
      gibbs_sweeps_kernel<false><<<grid, block, smem, stream>>>(a, c.cb);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {v_out, h_out, hp_out};
  }
  // Large layers: GEMM + fused epilogue per half-step, into buffers allocated once.
  const at::Tensor wt = weight.t();
  at::Tensor h_acc = at::empty({B, nh}, v.options());  // p(h | v) of the latest hidden step
  at::Tensor h = at::empty({B, nh}, v.options());
  at::mm_out(h_acc, v, weight);
  launch_epilogue<false>(h_acc, h, hidden_bias, nullptr, nullptr, seed, 0, beta, sms, stream);
  if (k == 0) return {v.clone(), h, h_acc};
  at::Tensor v_acc = at::empty({B, nv}, v.options());
  at::Tensor vs = at::empty({B, nv}, v.options());
  for (int64_t s = 1; s <= k; ++s) {
    at::mm_out(v_acc, h, wt);
    launch_epilogue<false>(v_acc, vs, visible_bias, nullptr, nullptr, seed, 2 * s - 1, beta, sms, stream);
    at::mm_out(h_acc, vs, weight);
    launch_epilogue<false>(h_acc, h, hidden_bias, nullptr, nullptr, seed, 2 * s, beta, sms, stream);
  }
  return {vs, h, h_acc};
}

}  // namespace
}  // namespace cuda
}  // namespace gensample

TORCH_LIBRARY_IMPL(gensample, CUDA, m) {
  m.impl("gibbs_half_step", &gensample::cuda::gibbs_half_step_cuda);
  m.impl("gaussian_half_step", &gensample::cuda::gaussian_half_step_cuda);
  m.impl("gibbs_sweeps", &gensample::cuda::gibbs_sweeps_cuda);
}
