#include "base/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "base/error.h"

namespace ipt::stats {

double Quantile(std::vector<double> samples, double q) {
  if (samples.empty()) throw Error(ErrorCode::kInternal, "quantile of no samples");
  std::sort(samples.begin(), samples.end());
  double position = q * static_cast<double>(samples.size() - 1);
  size_t low = static_cast<size_t>(std::floor(position));
  size_t high = std::min(low + 1, samples.size() - 1);
  double fraction = position - static_cast<double>(low);
  return samples[low] + (samples[high] - samples[low]) * fraction;
}

double Median(const std::vector<double>& samples) { return Quantile(samples, 0.5); }

double Mean(const std::vector<double>& samples) {
  if (samples.empty()) return 0;
  return std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(samples.size());
}

double Stddev(const std::vector<double>& samples) {
  if (samples.size() < 2) return 0;
  double mean = Mean(samples);
  double sum = 0;
  for (double s : samples) sum += (s - mean) * (s - mean);
  return std::sqrt(sum / static_cast<double>(samples.size() - 1));
}

double CoefficientOfVariation(const std::vector<double>& samples) {
  double mean = Mean(samples);
  return mean == 0 ? 0 : Stddev(samples) / mean;
}

uint64_t UniformIndex(std::mt19937_64& engine, uint64_t n) {
  if (n == 0) throw Error(ErrorCode::kInternal, "uniform index in an empty range");
  // Rejecting the top partial block of the 2^64 outputs removes the modulo bias.
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t draw = engine();
  while (draw >= limit) draw = engine();
  return draw % n;
}

namespace {

// Ways to interleave m values of a with n values of b (no ties) so that U of a is u, for every
// u in [0, m * n]: the largest value either is a's, above all n of b, or is b's, above none.
std::vector<double> CountsOfU(size_t m, size_t n) {
  // counts[i][j] holds the distribution for sizes (i, j), built up from (0, j) and (i, 0).
  std::vector<std::vector<std::vector<double>>> counts(m + 1,
                                                       std::vector<std::vector<double>>(n + 1));
  for (size_t i = 0; i <= m; ++i) {
    for (size_t j = 0; j <= n; ++j) {
      std::vector<double>& c = counts[i][j];
      c.assign(i * j + 1, 0.0);
      if (i == 0 || j == 0) {
        c[0] = 1;
        continue;
      }
      const std::vector<double>& a_largest = counts[i - 1][j];
      const std::vector<double>& b_largest = counts[i][j - 1];
      for (size_t u = 0; u < a_largest.size(); ++u) c[u + j] += a_largest[u];
      for (size_t u = 0; u < b_largest.size(); ++u) c[u] += b_largest[u];
    }
  }
  return counts[m][n];
}

}  // namespace

MannWhitneyResult MannWhitneyU(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.empty() || b.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "Mann-Whitney U test needs two non-empty samples");
  }
  const size_t n1 = a.size();
  const size_t n2 = b.size();
  const size_t n = n1 + n2;
  std::vector<std::pair<double, bool>> pooled;  // (value, from a)
  pooled.reserve(n);
  for (double v : a) pooled.emplace_back(v, true);
  for (double v : b) pooled.emplace_back(v, false);
  std::sort(pooled.begin(), pooled.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });

  double rank_sum_a = 0;
  double tie_term = 0;  // sum of t^3 - t over groups of t tied values
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && pooled[j].first == pooled[i].first) ++j;
    const double average_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k) {
      if (pooled[k].second) rank_sum_a += average_rank;
    }
    const double t = static_cast<double>(j - i);
    tie_term += t * t * t - t;
    i = j;
  }

  const double dn1 = static_cast<double>(n1);
  const double dn2 = static_cast<double>(n2);
  const double dn = static_cast<double>(n);
  MannWhitneyResult result;
  result.u = rank_sum_a - dn1 * (dn1 + 1) / 2;
  const double mean = dn1 * dn2 / 2;
  const double sd = std::sqrt(dn1 * dn2 / 12 * ((dn + 1) - tie_term / (dn * (dn - 1))));
  const double distance = std::abs(result.u - mean);
  if (sd > 0) {
    result.z = std::copysign(std::max(distance - 0.5, 0.0) / sd, result.u - mean);
    result.p_value = std::min(1.0, std::erfc(std::abs(result.z) / std::sqrt(2.0)));
  }

  // scipy's limit for the exact distribution; beyond it the normal approximation is close.
  constexpr size_t kExactBelow = 8;
  if (n1 < kExactBelow && n2 < kExactBelow && tie_term == 0) {
    const std::vector<double> counts = CountsOfU(n1, n2);
    const size_t u_far = static_cast<size_t>(std::llround(mean + distance));
    const double tail =
        std::accumulate(counts.begin() + static_cast<std::ptrdiff_t>(u_far), counts.end(), 0.0);
    const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
    result.p_value = std::min(1.0, 2 * tail / total);
    result.exact = true;
  }
  return result;
}

BootstrapInterval BootstrapRatioOfMedians(const std::vector<double>& a,
                                          const std::vector<double>& b, double confidence,
                                          int resamples, uint64_t seed) {
  if (a.empty() || b.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "bootstrap of a ratio needs two non-empty samples");
  }
  if (std::any_of(b.begin(), b.end(), [](double v) { return !(v > 0); })) {
    throw Error(ErrorCode::kInvalidArgument,
                "bootstrap of a ratio of medians needs a denominator sample of positive values");
  }
  if (!(confidence > 0 && confidence < 1)) {
    throw Error(ErrorCode::kInvalidArgument,
                "bootstrap confidence must be in (0, 1), got " + std::to_string(confidence));
  }
  if (resamples < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "bootstrap needs at least one resample, got " + std::to_string(resamples));
  }
  std::mt19937_64 engine(seed);
  const auto resampled_median = [&engine](const std::vector<double>& sample,
                                          std::vector<double>& scratch) {
    for (double& v : scratch) v = sample[UniformIndex(engine, sample.size())];
    return Median(scratch);
  };
  std::vector<double> scratch_a(a.size());
  std::vector<double> scratch_b(b.size());
  std::vector<double> ratios;
  ratios.reserve(static_cast<size_t>(resamples));
  for (int i = 0; i < resamples; ++i) {
    // a is drawn before b, in two statements: the draw order is part of what a seed means.
    const double numerator = resampled_median(a, scratch_a);
    ratios.push_back(numerator / resampled_median(b, scratch_b));
  }
  BootstrapInterval interval;
  interval.estimate = Median(a) / Median(b);
  interval.low = Quantile(ratios, (1 - confidence) / 2);
  interval.high = Quantile(ratios, (1 + confidence) / 2);
  return interval;
}

}  // namespace ipt::stats
