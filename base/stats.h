// Summary statistics of repeated measurements. Pure functions on sample vectors, shared by the
// worker (which measures) and the tuner (which compares).
#pragma once

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

}  // namespace ipt::stats
