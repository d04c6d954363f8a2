// Deterministic tensors for the calibration tests: the shapes of data calibration meets (normal
// activations, heavy tails, ReLU outputs, outliers) from fixed seeds.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace ipt::calibration::testing_util {

inline std::vector<float> Normal(int64_t count, float stddev, uint32_t seed, float mean = 0.0f) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> normal(mean, stddev);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& value : values) value = normal(engine);
  return values;
}

// Student's t with 3 degrees of freedom: tails heavy enough that min/max calibration wastes most
// of the range on a handful of values.
inline std::vector<float> HeavyTailed(int64_t count, float scale, uint32_t seed) {
  std::mt19937 engine(seed);
  std::student_t_distribution<float> student(3.0f);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& value : values) value = scale * student(engine);
  return values;
}

inline std::vector<float> Uniform(int64_t count, float low, float high, uint32_t seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> uniform(low, high);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& value : values) value = uniform(engine);
  return values;
}

inline std::vector<float> Relu(std::vector<float> values) {
  for (float& value : values) value = std::max(value, 0.0f);
  return values;
}

inline std::vector<float> Scaled(std::vector<float> values, float factor) {
  for (float& value : values) value *= factor;
  return values;
}

}  // namespace ipt::calibration::testing_util
