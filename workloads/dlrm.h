// DLRM, the MLPerf recommendation model ("dlrm"), and the samplers that make its inputs.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "workloads/workload.h"

namespace ipt::workloads {

// The 26 table sizes of MLPerf's DLRM on Criteo Terabyte (ids hashed into 40M rows): 187.8M
// rows, 96 GB of fp32 at dimension 128.
const std::vector<int64_t>& MlperfTableRows();

// MLPerf's sizes capped at 30,000 rows: 352,122 rows, 180 MB of fp32 at dimension 128. Big
// enough that lookups miss the caches, small enough to build on any machine in a second.
std::vector<int64_t> DefaultTableRows();

struct DlrmConfig {
  std::string name = "dlrm";  // the workload's name
  int64_t dense_features = 13;
  // Widths of the bottom MLP (ReLU after each); the last is the embedding dimension.
  std::vector<int64_t> bottom_mlp = {512, 256, 128};
  // Widths of the top MLP (ReLU after each but the last, then sigmoid); the last must be 1.
  std::vector<int64_t> top_mlp = {1024, 1024, 512, 256, 1};
  // Rows of each embedding table, one per sparse feature.
  std::vector<int64_t> table_rows = DefaultTableRows();
  // Replaces table_rows by MlperfTableRows() fitted by FitTableRows into memory_fraction of
  // MemAvailable (/proc/meminfo, rounded down to whole GiB so that processes started moments
  // apart agree) when MakeDlrm runs. Default off: the full tables need 96 GB.
  bool mlperf_size = false;
  // Share of MemAvailable the tables may take with mlperf_size. Well under 1, because the model
  // is usually copied once or twice more (freezing, the fp32 reference) and the inputs and
  // activations need room too.
  double memory_fraction = 0.25;
};

// `rows` shrunk so that the tables (fp32, `dim` wide) fit in `budget_bytes`: unchanged when they
// fit already; otherwise every table keeps min(rows, 1000) rows at least, so that no feature
// collapses to a handful of ids, and the others all scale by one factor that spends the rest of
// the budget. Throws ipt::Error(kUnsupported) when even those minimums do not fit.
std::vector<int64_t> FitTableRows(const std::vector<int64_t>& rows, int64_t dim,
                                  int64_t budget_bytes);

// Draws ranks 1..n with P(k) proportional to k^-exponent (exponent > 0) in constant time per draw
// and without tables (rejection-inversion, Hoermann and Derflinger 1996), so the largest tables
// cost nothing to sample.
class ZipfSampler {
 public:
  ZipfSampler(int64_t n, double exponent);
  int64_t operator()(std::mt19937_64& rng) const;

 private:
  double H(double x) const;
  double HIntegral(double x) const;
  double HIntegralInverse(double x) const;

  int64_t n_;
  double exponent_;
  double h_integral_x1_;
  double h_integral_n_;
  double s_;
};

// MLPerf's DLRM (dlrm_s_pytorch.py, dot interaction without self-interaction) in eval mode:
//   forward(dense: float [B, 13], indices: List[Tensor], offsets: List[Tensor]) -> float [B, 1]
// with one 1-D int64 indices tensor and one int64 [B] offsets tensor per table (embedding_bag's
// sum mode; a bag is empty when two offsets are equal). Weights are initialised as the
// reference does (normal sqrt(2/(in+out)) weights, normal sqrt(1/out) biases, tables uniform
// +-sqrt(1/rows)).
//
// Inputs: dense features log1p(exp(N(0, 1))), Criteo's log(1 + x) of a log-normal count; each
// bag holds 1 to 3 ids, or none with probability 1/32; ids are Zipf(1.05) ranks spread over the
// table by a fixed permutation, since hashed ids put the popular rows anywhere.
//
// Random weights put the logit at an arbitrary height and spread, so the predictions may all sit
// near one value. BuildModel therefore scales and shifts the last layer so that, over a calibration
// batch (512 samples of their own seed, never among MakeInputs' batches), the logit before the
// sigmoid has median 0 and standard deviation 1: predictions spread over (0, 1) around 0.5.
//
// Throws ipt::Error(kInvalidArgument) for an inconsistent config.
std::unique_ptr<Workload> MakeDlrm(const DlrmConfig& config, const WorkloadOptions& options);

}  // namespace ipt::workloads
