#include "workloads/seeded.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <string>

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
  // About 4.6% of the values fall outside; each round redraws them, so a few rounds suffice.
  for (at::Tensor outside = t.abs() > 2.0; outside.any().item<bool>(); outside = t.abs() > 2.0) {
    int64_t count = outside.sum().item<int64_t>();
    t.masked_scatter_(outside, at::empty({count}, at::kFloat).normal_(0.0, 1.0, generator));
  }
  return t.mul_(stddev).add_(mean);
}

}  // namespace ipt::workloads
