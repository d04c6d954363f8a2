#include "workloads/dlrm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "workloads/workload.h"

namespace ipt::workloads {
namespace {

// The same builder as dlrm with four small tables (one of a single row) and narrow MLPs.
DlrmConfig TinyConfig() {
  DlrmConfig config;
  config.name = "dlrm-tiny";
  config.dense_features = 4;
  config.bottom_mlp = {8, 4};
  config.top_mlp = {16, 1};
  config.table_rows = {5, 7, 1, 50};
  return config;
}

int64_t CountParameters(const torch::jit::Module& m) {
  int64_t total = 0;
  for (const auto& p : m.parameters()) total += p.numel();
  return total;
}

int64_t Sum(const std::vector<int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), int64_t{0});
}

at::Tensor Longs(const std::vector<int64_t>& values) { return at::tensor(values, at::kLong); }

at::Tensor Forward(torch::jit::Module& m, const std::vector<torch::jit::IValue>& inputs) {
  torch::NoGradGuard no_grad;
  return m.forward(inputs).toTensor();
}

// Weights plus biases of an MLP from `in` through `widths`.
int64_t MlpParameters(int64_t in, const std::vector<int64_t>& widths) {
  int64_t total = 0;
  for (int64_t out : widths) {
    total += in * out + out;
    in = out;
  }
  return total;
}

// The network written with plain aten calls and loops from dlrm_s_pytorch.py, reading the built
// module's parameters by name. Bags are summed row by row, so empty bags come out as zeros.
at::Tensor ReferenceDlrm(const torch::jit::Module& m, const DlrmConfig& c,
                         const std::vector<torch::jit::IValue>& inputs) {
  auto param = [&m](const std::string& name) { return m.attr(name).toTensor(); };
  auto linear = [&](const at::Tensor& x, const std::string& name) {
    return at::matmul(x, param(name + "_weight").t()) + param(name + "_bias");
  };
  at::Tensor x = inputs[0].toTensor();
  const int64_t batch = x.size(0), dim = c.bottom_mlp.back();
  for (size_t i = 0; i < c.bottom_mlp.size(); ++i) {
    x = linear(x, "bot_l_" + std::to_string(2 * i)).clamp_min(0);
  }
  std::vector<at::Tensor> vectors = {x};
  std::vector<at::Tensor> indices = inputs[1].toTensorList().vec();
  std::vector<at::Tensor> offsets = inputs[2].toTensorList().vec();
  for (size_t t = 0; t < c.table_rows.size(); ++t) {
    at::Tensor table = param("emb_l_" + std::to_string(t) + "_weight");
    at::Tensor pooled = at::zeros({batch, dim});
    for (int64_t b = 0; b < batch; ++b) {
      int64_t end = b + 1 < batch ? offsets[t][b + 1].item<int64_t>() : indices[t].size(0);
      for (int64_t k = offsets[t][b].item<int64_t>(); k < end; ++k) {
        pooled[b] += table[indices[t][k].item<int64_t>()];
      }
    }
    vectors.push_back(pooled);
  }
  std::vector<at::Tensor> features = {x};
  for (size_t i = 0; i < vectors.size(); ++i) {
    for (size_t j = 0; j < i; ++j) features.push_back((vectors[i] * vectors[j]).sum(1, true));
  }
  x = at::cat(features, 1);
  for (size_t i = 0; i < c.top_mlp.size(); ++i) {
    x = linear(x, "top_l_" + std::to_string(2 * i));
    if (i + 1 < c.top_mlp.size()) x = x.clamp_min(0);
  }
  return x.sigmoid();
}

// dlrm, built once for the tests that need the full model.
class DlrmDefaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    workload_ = MakeWorkload("dlrm", {});
    module_ = workload_->BuildModel();
  }
  static void TearDownTestSuite() {
    module_.reset();
    workload_.reset();
  }
  static inline std::unique_ptr<Workload> workload_;
  static inline std::optional<torch::jit::Module> module_;
};

TEST_F(DlrmDefaultTest, HasMlperfShapeAndParameterCount) {
  const DlrmConfig c;
  ASSERT_EQ(c.table_rows.size(), 26u);
  EXPECT_EQ(Sum(c.table_rows), 352122);
  // 13-512-256-128 below, 479-1024-1024-512-256-1 above, 26 tables of 128 wide.
  int64_t mlps = MlpParameters(13, c.bottom_mlp) + MlpParameters(128 + 27 * 26 / 2, c.top_mlp);
  EXPECT_EQ(mlps, 2368897);
  EXPECT_EQ(CountParameters(*module_), mlps + Sum(c.table_rows) * 128);
  EXPECT_EQ(module_->attr("top_l_0_weight").toTensor().size(1), 479);
  EXPECT_EQ(module_->attr("interaction_index").toTensor().numel(), 351);
  EXPECT_EQ(workload_->Metric(), MetricKind::kProbability);
}

TEST_F(DlrmDefaultTest, PredictionsSpreadAroundOneHalf) {
  std::vector<at::Tensor> predictions;
  for (int64_t index = 0; index < 8; ++index) {
    at::Tensor p = Forward(*module_, workload_->MakeInputs(8, index));
    ASSERT_EQ(p.sizes(), (std::vector<int64_t>{8, 1}));
    predictions.push_back(p);
  }
  at::Tensor p = at::cat(predictions);
  EXPECT_GT(p.min().item<float>(), 0.0f);
  EXPECT_LT(p.max().item<float>(), 1.0f);
  EXPECT_GT(p.std().item<double>(), 0.05);
  EXPECT_LT(p.min().item<float>(), 0.5f);
  EXPECT_GT(p.max().item<float>(), 0.5f);
  EXPECT_NEAR(p.median().item<float>(), 0.5, 0.15);
}

TEST_F(DlrmDefaultTest, GraphHoldsPlainAtenOpsForThePasses) {
  int bags = 0, linears = 0, bmms = 0;
  for (const torch::jit::Node* n : module_->get_method("forward").graph()->nodes()) {
    bags += n->kind() == c10::Symbol::fromQualString("aten::embedding_bag");
    linears += n->kind() == c10::Symbol::fromQualString("aten::linear");
    bmms += n->kind() == c10::Symbol::fromQualString("aten::bmm");
  }
  EXPECT_EQ(bags, 26);
  EXPECT_EQ(linears, 3 + 5);
  EXPECT_EQ(bmms, 1);
}

TEST(DlrmTest, FlopsCountTheMlpsAndTheInteraction) {
  // Multiply-adds: bottom 170,496, top 2,194,688, interaction 27 x 27 x 128 = 93,312.
  EXPECT_DOUBLE_EQ(MakeWorkload("dlrm", {})->FlopsPerItem(), 2.0 * (170496 + 2194688 + 93312));
}

TEST(DlrmTest, InputsHaveBagsOfZeroToThreeZipfIds) {
  auto w = MakeWorkload("dlrm", {});
  const DlrmConfig c;
  int64_t empty = 0, ones = 0, bags = 0;
  for (int64_t index = 0; index < 8; ++index) {
    std::vector<torch::jit::IValue> inputs = w->MakeInputs(8, index);
    at::Tensor dense = inputs[0].toTensor();
    EXPECT_EQ(dense.sizes(), (std::vector<int64_t>{8, 13}));
    EXPECT_GT(dense.min().item<float>(), 0.0f);  // log1p of a positive count
    std::vector<at::Tensor> indices = inputs[1].toTensorList().vec();
    std::vector<at::Tensor> offsets = inputs[2].toTensorList().vec();
    ASSERT_EQ(indices.size(), 26u);
    ASSERT_EQ(offsets.size(), 26u);
    for (size_t t = 0; t < 26; ++t) {
      ASSERT_EQ(offsets[t].sizes(), (std::vector<int64_t>{8}));
      at::Tensor ends = at::cat({offsets[t].slice(0, 1), at::tensor({indices[t].size(0)})});
      at::Tensor sizes = ends - offsets[t];
      EXPECT_EQ(offsets[t][0].item<int64_t>(), 0);
      EXPECT_GE(sizes.min().item<int64_t>(), 0);
      EXPECT_LE(sizes.max().item<int64_t>(), 3);
      empty += sizes.eq(0).sum().item<int64_t>();
      bags += sizes.size(0);
      if (indices[t].numel() > 0) {
        EXPECT_GE(indices[t].min().item<int64_t>(), 0);
        EXPECT_LT(indices[t].max().item<int64_t>(), c.table_rows[t]);
        // Zipf puts the most popular id (rank 1, row 0) far above uniform's 1 / rows.
        if (c.table_rows[t] == 30000) ones += indices[t].eq(0).sum().item<int64_t>();
      }
    }
  }
  EXPECT_GE(empty, 10) << "of " << bags;
  EXPECT_LE(empty, bags / 10);
  EXPECT_GE(ones, 20);
}

TEST(DlrmTest, WeightsAndInputsAreDeterministic) {
  auto a = MakeDlrm(TinyConfig(), {});
  auto b = MakeDlrm(TinyConfig(), {});
  EXPECT_EQ(ModelHash(a->BuildModel()), ModelHash(b->BuildModel()));
  std::vector<torch::jit::IValue> x = a->MakeInputs(4, 2), y = b->MakeInputs(4, 2);
  EXPECT_TRUE(x[0].toTensor().equal(y[0].toTensor()));
  for (size_t t = 0; t < 4; ++t) {
    EXPECT_TRUE(x[1].toTensorList().get(t).equal(y[1].toTensorList().get(t)));
    EXPECT_TRUE(x[2].toTensorList().get(t).equal(y[2].toTensorList().get(t)));
  }
  EXPECT_FALSE(x[0].toTensor().equal(a->MakeInputs(4, 3)[0].toTensor()));
  WorkloadOptions other;
  other.seed = 7;
  EXPECT_NE(ModelHash(a->BuildModel()), ModelHash(MakeDlrm(TinyConfig(), other)->BuildModel()));
}

TEST(DlrmTest, MatchesAReferenceWrittenInAtenWithEmptyAndRepeatedIds) {
  const DlrmConfig config = TinyConfig();
  auto w = MakeDlrm(config, {});
  torch::jit::Module m = w->BuildModel();
  EXPECT_EQ(CountParameters(m), MlpParameters(4, config.bottom_mlp) +
                                    MlpParameters(4 + 5 * 4 / 2, config.top_mlp) +
                                    Sum(config.table_rows) * 4);
  // Four samples; bags of 2, 0, 3 (an id twice) and 0 ids in table 0, the last bag empty too.
  c10::List<at::Tensor> indices(
      {Longs({1, 4, 0, 0, 3}), Longs({6, 5, 2, 0}), Longs({0, 0, 0}), Longs({49, 7, 7, 7, 7, 12})});
  c10::List<at::Tensor> offsets(
      {Longs({0, 2, 2, 5}), Longs({0, 1, 2, 3}), Longs({0, 0, 0, 0}), Longs({0, 1, 5, 5})});
  at::Tensor dense = at::rand({4, 4}) * 3;
  std::vector<torch::jit::IValue> inputs = {dense, indices, offsets};
  torch::NoGradGuard no_grad;
  at::Tensor expected = ReferenceDlrm(m, config, inputs);
  at::Tensor p = Forward(m, inputs);
  EXPECT_EQ(p.sizes(), (std::vector<int64_t>{4, 1}));
  EXPECT_TRUE(at::allclose(p, expected, /*rtol=*/0, /*atol=*/1e-5)) << (p - expected).abs().max();
  // And on generated inputs.
  inputs = w->MakeInputs(16, 0);
  expected = ReferenceDlrm(m, config, inputs);
  p = Forward(m, inputs);
  EXPECT_TRUE(at::allclose(p, expected, 0, 1e-5)) << (p - expected).abs().max();
}

TEST(DlrmTest, RejectsInconsistentConfigs) {
  DlrmConfig no_tables = TinyConfig();
  no_tables.table_rows.clear();
  DlrmConfig two_outputs = TinyConfig();
  two_outputs.top_mlp = {16, 2};
  DlrmConfig empty_table = TinyConfig();
  empty_table.table_rows[1] = 0;
  for (const DlrmConfig& c : {no_tables, two_outputs, empty_table}) {
    try {
      MakeDlrm(c, {});
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    }
  }
}

TEST(DlrmTest, MlperfTablesHaveTheirPublishedSizes) {
  ASSERT_EQ(MlperfTableRows().size(), 26u);
  EXPECT_EQ(Sum(MlperfTableRows()), 187767399);
  EXPECT_EQ(MlperfTableRows()[0], 39884406);
  const std::vector<int64_t> rows = DefaultTableRows();
  EXPECT_EQ(*std::max_element(rows.begin(), rows.end()), 30000);
  EXPECT_EQ(rows[5], 3);
}

TEST(DlrmTest, FitTableRowsScalesTheBigTablesAndKeepsTheSmallOnes) {
  const std::vector<int64_t>& rows = MlperfTableRows();
  const int64_t row_bytes = int64_t{128} * 4;
  EXPECT_EQ(FitTableRows(rows, 128, Sum(rows) * row_bytes), rows);

  const int64_t budget = int64_t{12} << 30;
  std::vector<int64_t> fitted = FitTableRows(rows, 128, budget);
  ASSERT_EQ(fitted.size(), rows.size());
  EXPECT_LE(Sum(fitted) * row_bytes, budget);
  EXPECT_GT(Sum(fitted) * row_bytes, budget - budget / 1000);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_LE(fitted[i], rows[i]);
    EXPECT_GE(fitted[i], std::min<int64_t>(rows[i], 1000));
  }
  // The two largest tables keep their ratio.
  EXPECT_NEAR(double(fitted[0]) / double(fitted[19]), double(rows[0]) / double(rows[19]), 1e-5);
  EXPECT_EQ(fitted[5], 3);

  // So small a budget that most tables sit at their floor of 1000 rows.
  fitted = FitTableRows(rows, 128, 30000 * row_bytes);
  EXPECT_LE(Sum(fitted), 30000);
  EXPECT_EQ(fitted[1], 1000);
  EXPECT_GT(fitted[0], 1000);

  try {
    FitTableRows(rows, 128, 1000 * row_bytes);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
  }
}

TEST(DlrmTest, MlperfSizeFitsTheTablesIntoMemory) {
  DlrmConfig config;
  config.mlperf_size = true;
  // Tens of MB; the tables' floors of 1000 rows alone take 9.4 MB.
  config.memory_fraction = 0.002;
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  int64_t available_kib = 0;
  while (std::getline(meminfo, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) available_kib = std::stoll(line.substr(13));
  }
  if (available_kib < (int64_t{8} << 20)) GTEST_SKIP() << "less than 8 GiB available";
  torch::jit::Module m = MakeDlrm(config, {})->BuildModel();
  int64_t table_bytes = 0;
  for (const auto& p : m.named_parameters()) {
    if (p.name.rfind("emb_l_", 0) == 0) table_bytes += static_cast<int64_t>(p.value.nbytes());
  }
  EXPECT_LE(table_bytes, static_cast<int64_t>(0.002 * double(available_kib) * 1024));
  EXPECT_GT(table_bytes, static_cast<int64_t>(0.001 * double(available_kib) * 1024));
  // MLPerf's largest table stays the largest.
  EXPECT_GT(m.attr("emb_l_19_weight").toTensor().size(0),
            m.attr("emb_l_10_weight").toTensor().size(0));
}

TEST(ZipfSamplerTest, DrawsRanksWithPowerLawFrequencies) {
  const int64_t n = 1000;
  const double s = 1.05;
  ZipfSampler zipf(n, s);
  std::mt19937_64 rng(42);
  std::vector<int64_t> counts(n + 1, 0);
  const int64_t draws = 400000;
  for (int64_t i = 0; i < draws; ++i) {
    int64_t k = zipf(rng);
    ASSERT_GE(k, 1);
    ASSERT_LE(k, n);
    ++counts[k];
  }
  double normaliser = 0;
  for (int64_t k = 1; k <= n; ++k) normaliser += std::pow(double(k), -s);
  for (int64_t k : {1, 2, 10}) {
    double expected = draws * std::pow(double(k), -s) / normaliser;
    EXPECT_NEAR(double(counts[k]), expected, 5 * std::sqrt(expected)) << "rank " << k;
  }
  int64_t tail = std::accumulate(counts.begin() + 501, counts.end(), int64_t{0});
  double tail_expected = 0;
  for (int64_t k = 501; k <= n; ++k) tail_expected += draws * std::pow(double(k), -s) / normaliser;
  EXPECT_NEAR(double(tail), tail_expected, 5 * std::sqrt(tail_expected));
  // One row: always rank 1.
  ZipfSampler single(1, s);
  EXPECT_EQ(single(rng), 1);
}

}  // namespace
}  // namespace ipt::workloads
