#include "base/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

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

}  // namespace ipt::stats
