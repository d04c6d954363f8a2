#include "workloads/seeded.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <string>
#include <vector>

#include "base/sha256.h"

namespace ipt::workloads {

uint64_t DerivedSeed(uint64_t seed, std::string_view name) {
  std::string digest = Sha256Hex(std::to_string(seed) + "/" + std::string(name));
  return std::stoull(digest.substr(0, 15), nullptr, 16);
}

at::Generator SeededGenerator(uint64_t seed, std::string_view name) {
  return at::detail::createCPUGenerator(DerivedSeed(seed, name));
}

torch::Tensor KaimingNormalFanOut(at::IntArrayRef shape, uint64_t seed, std::string_view name) {
  int64_t fan_out = shape[0];
  for (size_t i = 2; i < shape.size(); ++i) fan_out *= shape[i];
  return Normal(shape, 0.0, std::sqrt(2.0 / static_cast<double>(fan_out)), seed, name);
}

torch::Tensor Uniform(at::IntArrayRef shape, double low, double high, uint64_t seed,
                      std::string_view name) {
  auto generator = SeededGenerator(seed, name);
  return at::empty(shape, at::kFloat).uniform_(low, high, generator);
}

torch::Tensor Normal(at::IntArrayRef shape, double mean, double stddev, uint64_t seed,
                     std::string_view name) {
  auto generator = SeededGenerator(seed, name);
  return at::empty(shape, at::kFloat).normal_(mean, stddev, generator);
}

torch::Tensor TruncatedNormal(at::IntArrayRef shape, double mean, double stddev, uint64_t seed,
                              std::string_view name) {
  auto generator = SeededGenerator(seed, name);
  at::Tensor t = at::empty(shape, at::kFloat).normal_(0.0, 1.0, generator);
  float* data = t.data_ptr<float>();
  std::vector<int64_t> outside;
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (std::abs(data[i]) > 2.0f) outside.push_back(i);
  }
  // About 4.6% of the values fall outside and each round redraws them all: a few rounds.
  while (!outside.empty()) {
    at::Tensor redraw =
        at::empty({static_cast<int64_t>(outside.size())}, at::kFloat).normal_(0.0, 1.0, generator);
    const float* value = redraw.data_ptr<float>();
    std::vector<int64_t> still_outside;
    for (size_t k = 0; k < outside.size(); ++k) {
      data[outside[k]] = value[k];
      if (std::abs(value[k]) > 2.0f) still_outside.push_back(outside[k]);
    }
    outside.swap(still_outside);
  }
  return t.mul_(stddev).add_(mean);
}

double CoarseRound(double value, double scale) {
  double step = std::exp2(std::floor(std::log2(scale / 64)));
  return std::round(value / step) * step;
}

double FineRound(double value, double scale) { return CoarseRound(value, scale / 256); }

}  // namespace ipt::workloads
