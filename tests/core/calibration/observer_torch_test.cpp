// Parity with PyTorch's own observers (torch.ao.quantization, torch 1.13 from Debian's
// python3-torch) on the same tensors, and with TensorRT's entropy definition written
// independently in numpy. See torch_reference.py for what each reference runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/calibration/observer.h"
#include "tests/core/calibration/test_data.h"
#include "tests/core/calibration/torch_reference.h"

namespace ipt::calibration {
namespace {

using testing_util::HeavyTailed;
using testing_util::Normal;
using testing_util::Relu;
using testing_util::Scaled;
using testing_util::TorchCase;
using testing_util::Uniform;

using Batches = std::vector<std::vector<float>>;

struct Target {
  QuantType type;
  bool symmetric;
};

constexpr Target kAllTargets[] = {{QuantType::kU8, false}, {QuantType::kU8, true},
                                  {QuantType::kS8, true},  {QuantType::kS8, false},
                                  {QuantType::kU7, false}, {QuantType::kU7, true}};

std::vector<float> Planted(std::vector<float> values, float low, float high) {
  values[0] = low;
  values[1] = high;
  return values;
}

struct Ours {
  Range range;
  QParams params;
};

Ours Calibrate(const AlgorithmSpec& spec, const TorchCase& c) {
  const std::unique_ptr<Observer> observer = MakeObserver(spec);
  for (const std::vector<float>& batch : c.batches) {
    observer->Observe(batch.data(), static_cast<int64_t>(batch.size()));
  }
  const Range range = observer->Calibrated(c.type, c.symmetric);
  return {range, ChooseQParams(range, c.type, c.symmetric)};
}

std::string Describe(const TorchCase& c, size_t index) {
  return "case " + std::to_string(index) + " (" + std::string(ToString(c.type)) +
         (c.symmetric ? " symmetric" : " affine") + ", " + std::to_string(c.batches.size()) +
         " batches)";
}

double RelativeDifference(double ours, double theirs) {
  return ours == theirs ? 0.0 : std::fabs(ours - theirs) / std::max(std::fabs(theirs), 1e-30);
}

// Runs every case through PyTorch and through ours; expects scale within `scale_tolerance`
// (relative; 0 means bit-identical), zero points within `zero_point_tolerance`, and the range
// that produced them within `scale_tolerance` of its width. Returns the largest relative scale
// difference seen.
double ExpectParity(const AlgorithmSpec& spec, const std::vector<TorchCase>& cases,
                    double scale_tolerance, int zero_point_tolerance) {
  const std::vector<std::vector<double>> reference = testing_util::RunTorchReference(cases);
  double worst = 0.0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Ours ours = Calibrate(spec, cases[i]);
    const std::vector<double>& theirs = reference[i];
    EXPECT_EQ(theirs.size(), 4u);
    const double scale_difference = RelativeDifference(ours.params.scale, theirs[0]);
    worst = std::max(worst, scale_difference);
    EXPECT_LE(scale_difference, scale_tolerance)
        << Describe(cases[i], i) << ": scale " << ours.params.scale << " vs PyTorch " << theirs[0];
    EXPECT_NEAR(ours.params.zero_point, theirs[1], zero_point_tolerance) << Describe(cases[i], i);
    const double width = std::max(theirs[3] - theirs[2], 1e-30);
    EXPECT_LE(std::fabs(ours.range.min - theirs[2]) / width, scale_tolerance)
        << Describe(cases[i], i) << ": min " << ours.range.min << " vs PyTorch " << theirs[2];
    EXPECT_LE(std::fabs(ours.range.max - theirs[3]) / width, scale_tolerance)
        << Describe(cases[i], i) << ": max " << ours.range.max << " vs PyTorch " << theirs[3];
  }
  return worst;
}

std::vector<Batches> MinMaxTensors() {
  return {
      {Normal(4096, 1.3f, 21, 0.2f)},
      {Relu(Normal(4096, 2.0f, 22))},
      {Uniform(4096, -4.0f, -0.5f, 23)},
      {Normal(2048, 0.5f, 24), Normal(2048, 3.0f, 25, 1.0f), HeavyTailed(2048, 1.0f, 26),
       Normal(2048, 1.0f, 27, -2.0f)},
      {Scaled(Normal(2048, 1.0f, 28), 3e9f), Scaled(Normal(2048, 1.0f, 29), 1e30f)},
  };
}

std::vector<TorchCase> CasesFor(const std::string& kind, const std::vector<Batches>& tensors,
                                const std::string& options) {
  std::vector<TorchCase> cases;
  for (const Batches& batches : tensors) {
    for (const Target& target : kAllTargets) {
      cases.push_back({kind, target.type, target.symmetric, options, batches});
    }
  }
  return cases;
}

TEST(TorchParityTest, MinMaxMatchesPyTorchExactly) {
  AlgorithmSpec spec;
  spec.algorithm = Algorithm::kMinMax;
  ExpectParity(spec, CasesFor("minmax", MinMaxTensors(), ""), 0.0, 0);
}

TEST(TorchParityTest, MovingAverageMinMaxMatchesPyTorchExactly) {
  AlgorithmSpec spec;
  spec.algorithm = Algorithm::kMovingAverageMinMax;
  for (const double constant : {0.01, 0.3}) {
    spec.averaging_constant = constant;
    ExpectParity(spec,
                 CasesFor("moving_average_minmax", MinMaxTensors(),
                          "averaging_constant=" + std::to_string(constant)),
                 0.0, 0);
  }
}

// The histogram targets: PyTorch 1.13's L2 search uses 256 levels whatever the range, so the u7
// reference is told to use 128 (dst_nbins), the levels of [0, 127] that ours uses.
std::vector<TorchCase> HistogramCases(const std::vector<Batches>& tensors,
                                      const std::string& options) {
  std::vector<TorchCase> cases;
  const std::string separator = options.empty() ? "" : ",";
  for (const Batches& batches : tensors) {
    cases.push_back({"histogram", QuantType::kU8, false, options, batches});
    cases.push_back({"histogram", QuantType::kS8, true, options, batches});
    cases.push_back(
        {"histogram", QuantType::kU7, false, options + separator + "dst_nbins=128", batches});
  }
  return cases;
}

// Tensors on which 1.13's integer-truncated histc range is exact: data within (-1, 1) (histc
// then falls back to the data's own range), or integral extremes whose growth keeps the relaxed
// max integral, or magnitudes above 2^24 where every float is an integer.
std::vector<Batches> StockHistogramTensors() {
  std::vector<float> unit = Normal(8192, 0.25f, 30);
  for (float& value : unit) {
    while (std::fabs(value) >= 0.99f) value /= 2;
  }
  return {
      {unit},
      {Planted(Normal(8192, 1.5f, 31), -8.0f, 9.0f)},
      {Planted(Normal(4096, 0.4f, 32), -2.0f, 2.0f), Planted(Normal(4096, 1.0f, 33), -5.0f, 6.0f),
       Planted(Normal(4096, 2.5f, 34), -12.0f, 10.0f), Normal(4096, 1.0f, 35)},
      {Scaled(Normal(8192, 1.0f, 36), 3e9f)},
      {Scaled(Normal(4096, 1.0f, 37), 3e9f), Scaled(HeavyTailed(4096, 1.0f, 38), 6e9f)},
  };
}

TEST(TorchParityTest, HistogramMatchesStockPyTorch) {
  AlgorithmSpec spec;
  spec.algorithm = Algorithm::kHistogram;
  const double worst = ExpectParity(spec, HistogramCases(StockHistogramTensors(), ""), 1e-6, 0);
  RecordProperty("max_relative_scale_difference", testing::PrintToString(worst));
}

// General tensors, against PyTorch with the exact histc range (see Histogram in histogram.h).
TEST(TorchParityTest, HistogramMatchesPyTorchWithExactHistcRange) {
  AlgorithmSpec spec;
  spec.algorithm = Algorithm::kHistogram;
  const std::vector<Batches> tensors = {
      {Normal(16384, 2.7f, 40, 0.3f)},
      {HeavyTailed(16384, 1.0f, 41)},
      {Relu(Normal(16384, 2.0f, 42))},
      {Normal(4096, 0.7f, 43), Normal(4096, 1.9f, 44, 0.3f), HeavyTailed(4096, 1.2f, 45),
       Relu(Normal(4096, 3.0f, 46))},
      {Relu(Normal(4096, 0.3f, 47)), Relu(Normal(4096, 1.1f, 48)), Relu(Normal(4096, 2.9f, 49))},
  };
  const double worst = ExpectParity(spec, HistogramCases(tensors, "exact_range=1"), 1e-6, 0);
  RecordProperty("max_relative_scale_difference", testing::PrintToString(worst));
}

TEST(TorchParityTest, EntropyMatchesTensorRtDefinition) {
  std::vector<float> outliers = Normal(100000, 1.0f, 50);
  std::fill(outliers.begin(), outliers.begin() + 5, 50.0f);
  struct EntropyCase {
    Batches batches;
    Target target;
    int levels;
  };
  const std::vector<EntropyCase> entropy_cases = {
      {{Normal(100000, 1.0f, 51)}, {QuantType::kS8, true}, 128},
      {{HeavyTailed(100000, 1.0f, 52)}, {QuantType::kS8, true}, 128},
      {{outliers}, {QuantType::kS8, true}, 128},
      {{Relu(HeavyTailed(100000, 2.0f, 53))}, {QuantType::kU8, false}, 256},
      {{Relu(HeavyTailed(100000, 2.0f, 53))}, {QuantType::kU7, false}, 128},
  };
  std::vector<TorchCase> cases;
  cases.reserve(entropy_cases.size());
  for (const EntropyCase& c : entropy_cases) {
    cases.push_back({"entropy", c.target.type, c.target.symmetric,
                     "levels=" + std::to_string(c.levels), c.batches});
  }
  const std::vector<std::vector<double>> reference = testing_util::RunTorchReference(cases);
  AlgorithmSpec spec;
  spec.algorithm = Algorithm::kEntropy;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Ours ours = Calibrate(spec, cases[i]);
    EXPECT_FLOAT_EQ(ours.range.max, static_cast<float>(reference[i][0]))
        << Describe(cases[i], i) << ", TensorRT's kept bins " << reference[i][1];
  }
}

}  // namespace
}  // namespace ipt::calibration
