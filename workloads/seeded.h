// Deterministic tensors for model weights and inputs. Each tensor draws from a generator seeded
// by (seed, name), so a weight does not change when another one is added or reordered.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string_view>

namespace ipt::workloads {

// The 60-bit seed that SeededGenerator uses, for samplers that draw outside libtorch.
uint64_t DerivedSeed(uint64_t seed, std::string_view name);
at::Generator SeededGenerator(uint64_t seed, std::string_view name);

// Kaiming-normal for a ReLU network, fan_out mode (torchvision's conv initialisation).
torch::Tensor KaimingNormalFanOut(at::IntArrayRef shape, uint64_t seed, std::string_view name);
torch::Tensor Uniform(at::IntArrayRef shape, double low, double high, uint64_t seed,
                      std::string_view name);
torch::Tensor Normal(at::IntArrayRef shape, double mean, double stddev, uint64_t seed,
                     std::string_view name);
// Normal restricted to mean +- 2 stddev by redrawing the values outside (TensorFlow's
// truncated_normal, which BERT's checkpoints were initialised with).
torch::Tensor TruncatedNormal(at::IntArrayRef shape, double mean, double stddev, uint64_t seed,
                              std::string_view name);

// `value` rounded to a multiple of the largest power of two at most `scale` / 64, where `scale`
// is the spread of the quantity. Weights calibrated from a forward pass go through it: another
// thread count or ISA sums in another order and moves the result by about 1e-6 of its spread,
// far below the step, so the weights and the model hash come out the same in every process
// unless a value lies within that distance of a rounding boundary (odds of about 1e-4).
double CoarseRound(double value, double scale);
// CoarseRound at 1/256 of `scale` (a step of at most scale / 16384), for values derived from a
// double-precision forward: it moves them by about 1e-14 of their spread between processes, so
// the finer step is as safe and keeps classifiers built from many such values accurate.
double FineRound(double value, double scale);

}  // namespace ipt::workloads
