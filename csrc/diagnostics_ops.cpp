// Operator schemas of the diagnostics family (TORCH_LIBRARY_FRAGMENT; the library and
// the Python module are defined in csrc/ops.cpp). Kernels: csrc/cpu/diagnostics_cpu.cpp
// (CPU only: on other devices gensample/diagnostics.py runs its torch path, where
// torch.sort and the FFT are fast). Specification and public API: gensample/diagnostics.py.
//
// diag_rank_summary: x (M, N, D) float32 or float64, contiguous (the (chains, draws,
// *event) layout with the event flattened): D columns (event entries), each M chains of N
// draws (transposed to one contiguous column per entry inside, in parallel). Per column: one radix sort of the draws (with their
// positions), then everything that needs ranks. Split chains: M2 = 2M chains of
// n = N // 2 draws (the middle draw of odd N dropped), S = M2 n split draws.
//   flags: 1 bulk-z autocovariance, 2 folded-z autocovariance, 4 chain moments of the
//          bulk and folded z (rank R-hat), 8 indicator I(x <= q(p0)), 16 indicator
//          I(x <= q(p1)), 32 mean and sd over all M N draws, 64 also return the bulk
//          (and, with 2, folded) z-values in the split layout.
//   p0, p1: quantile levels (numpy 'linear' quantile over all M N draws).
//   max_lag_z / max_lag_ind: the most lags computed directly for the z / indicator series;
//          the lags stop early (per column) once Geyer's initial sequence has stopped.
// Returns
//   chain_mean (D, 4, M2) float64: split-chain means of [bulk z, folded z, I0, I1];
//   chain_var  (D, 2, M2) float64: split-chain variances (ddof 1) of [bulk z, folded z];
//   acov (D, 4, L) float64: mean over split chains of the biased autocovariance of each
//          series at lags 0..L-1, L = max(max_lag_z, max_lag_ind) + 1 capped at n; NaN past
//          the lags computed;
//   nlag (D, 4) int64: lags computed per series;
//   col (D, 10) float64: [mean, sd (ddof 1) over all draws, median of split draws, q(p0),
//          q(p1), min and max of split draws, 1 if the folded z are all equal else 0, the
//          numbers of NaN and of +-Inf draws (when non-zero the column's other entries
//          are not computed: the caller raises)];
//   z (D, k, M2, n) float64 with flag 64 (k = 2 with flag 2, else 1), else empty.
//
// diag_mean_acov: y (D, M, n) float64 contiguous; mean over chains of the biased
// autocovariance at lags 0..L-1 (L = min(max_lag + 1, n), NaN past the lags computed:
// each row stops once Geyer's initial sequence has stopped) -> (acov (D, L), nlag (D,)).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(gensample, m) {
  m.def(
      "diag_rank_summary(Tensor x, float p0, float p1, int flags, int max_lag_z, int max_lag_ind) "
      "-> (Tensor chain_mean, Tensor chain_var, Tensor acov, Tensor nlag, Tensor col, Tensor z)");
  m.def("diag_mean_acov(Tensor y, int max_lag) -> (Tensor acov, Tensor nlag)");
}
