#include "core/stock_int8.h"

#include <gtest/gtest.h>
#include <torch/csrc/jit/testing/file_check.h>

#include "base/error.h"
#include "tests/core/passes/pass_test_util.h"
#include "tests/core/test_models.h"
#include "workloads/bert.h"
#include "workloads/workload.h"

namespace ipt::core {
namespace {

using passes::testing::Forward;
using passes::testing::MakeModule;
using torch::jit::testing::FileCheck;

// Agreement with fp32 measured on these models (cosine of the outputs): static conv net 0.997,
// static 2-layer BERT 0.995; dynamic conv net 0.99999, dynamic BERT 0.9999. (On the conv net the
// static model's outputs were also bit-identical to PyTorch 1.13's own quantize_jit with its
// Python MinMaxObserver and default_per_channel_weight_observer.)
constexpr double kStaticCosine = 0.99;
constexpr double kDynamicCosine = 0.999;

double Cosine(const at::Tensor& a, const at::Tensor& b) {
  return at::cosine_similarity(a.flatten(), b.flatten(), 0).item<double>();
}

int64_t Count(const OptimizedModel& model, const std::string& kind) {
  auto it = model.applied().op_counts.find(kind);
  return it == model.applied().op_counts.end() ? 0 : it->second;
}

// A narrow ResNet-like net written as ResNet-50 is: aten conv2d + batch_norm + relu, a residual
// add, average pooling and a linear classifier.
torch::jit::Module ConvNet() {
  at::manual_seed(7);
  std::map<std::string, at::Tensor> params = {
      {"w1", at::randn({16, 3, 3, 3}) * 0.3}, {"w2", at::randn({16, 16, 3, 3}) * 0.1},
      {"g1", at::rand({16}) + 0.5},           {"b1", at::randn({16}) * 0.1},
      {"m1", at::randn({16}) * 0.1},          {"v1", at::rand({16}) + 0.5},
      {"g2", at::rand({16}) + 0.5},           {"b2", at::randn({16}) * 0.1},
      {"m2", at::randn({16}) * 0.1},          {"v2", at::rand({16}) + 0.5},
      {"fc_w", at::randn({10, 16}) * 0.3},    {"fc_b", at::randn({10}) * 0.1}};
  return MakeModule(
      "def forward(self, x):\n"
      "  x = torch.conv2d(x, self.w1, None, [1, 1], [1, 1], [1, 1], 1)\n"
      "  x = torch.batch_norm(x, self.g1, self.b1, self.m1, self.v1, False, 0.1, 1e-5, True)\n"
      "  x = torch.relu(x)\n"
      "  y = torch.conv2d(x, self.w2, None, [1, 1], [1, 1], [1, 1], 1)\n"
      "  y = torch.batch_norm(y, self.g2, self.b2, self.m2, self.v2, False, 0.1, 1e-5, True)\n"
      "  x = torch.relu(y + x)\n"
      "  x = torch.adaptive_avg_pool2d(x, [1, 1])\n"
      "  x = torch.flatten(x, 1)\n"
      "  return torch.linear(x, self.fc_w, self.fc_b)\n",
      params);
}

std::vector<std::vector<torch::jit::IValue>> ImageBatches(int64_t count, int64_t seed) {
  at::manual_seed(seed);
  std::vector<std::vector<torch::jit::IValue>> batches;
  for (int64_t i = 0; i < count; ++i) batches.push_back({at::randn({2, 3, 12, 12})});
  return batches;
}

TEST(StockInt8Test, StaticConvNetRunsOnQuantizedConvsAndMatchesFp32) {
  torch::jit::Module module = ConvNet();
  OptimizedModel model = QuantizeStockInt8(module, ImageBatches(8, 1), StockInt8Mode::kStatic);
  EXPECT_EQ(model.applied().dtype, "int8");
  EXPECT_EQ(Count(model, "quantized::conv2d"), 2);
  EXPECT_EQ(Count(model, "quantized::linear"), 1);
  EXPECT_EQ(Count(model, "quantized::add_relu"), 1);
  EXPECT_EQ(Count(model, "aten::conv2d"), 0);
  EXPECT_EQ(Count(model, "aten::batch_norm"), 0);  // folded before observing
  FileCheck()
      .check("aten::quantize_per_tensor")
      ->check("quantized::conv2d")
      ->check("quantized::conv2d")
      ->check("quantized::linear")
      ->check("aten::dequantize")
      ->run(*model.module().get_method("forward").graph());
  for (const auto& inputs : ImageBatches(3, 2)) {
    at::Tensor expected = Forward(module, inputs);
    EXPECT_GE(Cosine(expected, model.Run(inputs).toTensor()), kStaticCosine);
  }
}

TEST(StockInt8Test, DynamicConvNetQuantizesTheLinearOnly) {
  torch::jit::Module module = ConvNet();
  OptimizedModel model = QuantizeStockInt8(module, {}, StockInt8Mode::kDynamic);
  EXPECT_EQ(model.applied().dtype, "int8-dynamic");
  EXPECT_EQ(Count(model, "quantized::linear_dynamic"), 1);
  EXPECT_EQ(Count(model, "aten::conv2d"), 2);
  EXPECT_EQ(Count(model, "quantized::conv2d"), 0);
  for (const auto& inputs : ImageBatches(3, 2)) {
    at::Tensor expected = Forward(module, inputs);
    EXPECT_GE(Cosine(expected, model.Run(inputs).toTensor()), kDynamicCosine);
  }
}

std::unique_ptr<workloads::Workload> TwoLayerBert() {
  workloads::WorkloadOptions options;
  options.seq_len = 32;
  return workloads::MakeBert(testing::TwoLayerBert(), options);
}

// 6 linears per layer (q, k, v, attention output, intermediate, output), the pooler and the
// classifier.
constexpr int64_t kBertLinears = 2 * 6 + 2;

TEST(StockInt8Test, StaticBertRunsEveryLinearQuantized) {
  auto workload = TwoLayerBert();
  torch::jit::Module module = workload->BuildModel();
  testing::ReturnPooledVectors(module, testing::TwoLayerBert().hidden);
  std::vector<std::vector<torch::jit::IValue>> calibration;
  for (int64_t i = 0; i < 4; ++i) calibration.push_back(workload->MakeCalibrationInputs(2, i));
  OptimizedModel model = QuantizeStockInt8(module, calibration, StockInt8Mode::kStatic);
  EXPECT_EQ(Count(model, "quantized::linear"), kBertLinears);
  EXPECT_EQ(Count(model, "aten::linear"), 0);
  for (int64_t i = 0; i < 2; ++i) {
    auto inputs = workload->MakeInputs(2, i);
    EXPECT_GE(Cosine(Forward(module, inputs), model.Run(inputs).toTensor()), kStaticCosine);
  }
}

TEST(StockInt8Test, DynamicBertRunsEveryLinearDynamicallyQuantized) {
  auto workload = TwoLayerBert();
  torch::jit::Module module = workload->BuildModel();
  testing::ReturnPooledVectors(module, testing::TwoLayerBert().hidden);
  OptimizedModel model = QuantizeStockInt8(module, {}, StockInt8Mode::kDynamic);
  EXPECT_EQ(Count(model, "quantized::linear_dynamic"), kBertLinears);
  EXPECT_EQ(Count(model, "aten::linear"), 0);
  for (int64_t i = 0; i < 2; ++i) {
    auto inputs = workload->MakeInputs(2, i);
    EXPECT_GE(Cosine(Forward(module, inputs), model.Run(inputs).toTensor()), kDynamicCosine);
  }
}

TEST(StockInt8Test, StaticWithoutCalibrationIsAnInvalidArgument) {
  try {
    QuantizeStockInt8(ConvNet(), {}, StockInt8Mode::kStatic);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(StockInt8Test, AModelWithNothingToQuantizeIsUnsupported) {
  torch::jit::Module module = MakeModule(
      "def forward(self, x):\n"
      "  return torch.tanh(x * self.s)\n",
      {{"s", at::ones({4})}});
  for (StockInt8Mode mode : {StockInt8Mode::kStatic, StockInt8Mode::kDynamic}) {
    try {
      QuantizeStockInt8(module, {{at::randn({2, 4})}}, mode);
      FAIL() << "expected an error for " << ToString(mode);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
      EXPECT_NE(std::string(e.what()).find("quantized no op"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace ipt::core
