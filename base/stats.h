// Summary statistics of repeated measurements. Pure functions on sample vectors, shared by the
// worker (which measures) and the tuner (which compares).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace ipt::stats {

// Linear interpolation between closest ranks (the "R-7" definition numpy uses by default).
// REQUIRES: !samples.empty(), 0 <= q <= 1.
double Quantile(std::vector<double> samples, double q);
double Median(const std::vector<double>& samples);
double Mean(const std::vector<double>& samples);
// Sample standard deviation (n - 1); 0 for fewer than two samples.
double Stddev(const std::vector<double>& samples);
// Stddev / mean; 0 when the mean is 0.
double CoefficientOfVariation(const std::vector<double>& samples);

// A uniform integer in [0, n) drawn from the raw output of `engine`. std::mt19937_64's sequence
// is fixed by the standard but std::uniform_int_distribution and std::shuffle are not, so
// anything that must give the same answer for the same seed on every standard library (bootstrap
// intervals, search orders) draws through this. REQUIRES: n >= 1.
uint64_t UniformIndex(std::mt19937_64& engine, uint64_t n);

struct MannWhitneyResult {
  double u = 0;        // U of the first sample: pairs (x from a, y from b) with x > y, ties half
  double z = 0;        // continuity-corrected normal score; > 0 when a tends to be larger
  double p_value = 1;  // two-sided
  bool exact = false;  // p_value from the exact distribution of U rather than the normal one
};

// Two-sided Mann-Whitney U test of "a and b come from the same distribution", with the results
// of scipy.stats.mannwhitneyu(a, b, alternative='two-sided'): when both samples have fewer than
// 8 values and there are no ties, p_value is exact (method='exact'); otherwise it is the
// tie-corrected normal approximation with continuity correction (method='asymptotic',
// use_continuity=True). z is reported in both cases. When every value is tied, p_value is 1.
// Throws ipt::Error(kInvalidArgument) when a sample is empty.
MannWhitneyResult MannWhitneyU(const std::vector<double>& a, const std::vector<double>& b);

struct BootstrapInterval {
  double estimate = 0;  // median(a) / median(b) of the samples themselves
  double low = 0;
  double high = 0;
};

// Percentile bootstrap confidence interval of median(a) / median(b): `resamples` times, a and b
// are each resampled with replacement (keeping their sizes), and the interval is the central
// `confidence` share of the resampled ratios (quantiles as Quantile() computes them).
// Deterministic: std::mt19937_64 seeded with `seed`, drawn through UniformIndex, so one seed gives
// one interval everywhere. Cost is O(resamples * (|a| log |a| + |b| log |b|)); 2000 resamples is a
// common choice, and fewer make the bounds themselves noisy.
// Throws ipt::Error(kInvalidArgument) when a sample is empty, b has a value <= 0 (a resampled
// median of 0 has no ratio), confidence is not in (0, 1) or resamples < 1.
BootstrapInterval BootstrapRatioOfMedians(const std::vector<double>& a,
                                          const std::vector<double>& b, double confidence,
                                          int resamples, uint64_t seed);

}  // namespace ipt::stats
