#include "kernels/dlrm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tests/kernels/test_util.h"

namespace ipt::kernels {
namespace {

using testing::RelativeL2;

at::Tensor ReferenceInteraction(const std::vector<at::Tensor>& features, bool with_first) {
  const int64_t v = static_cast<int64_t>(features.size());
  at::Tensor t = at::stack(features, 1);
  at::Tensor z = at::bmm(t, t.transpose(1, 2)).flatten(1);
  std::vector<int64_t> index;
  for (int64_t i = 0; i < v; ++i)
    for (int64_t j = 0; j < i; ++j) index.push_back(i * v + j);
  z = z.index_select(1, at::tensor(index, at::kLong));
  return with_first ? at::cat({features[0], z}, 1) : z;
}

TEST(InteractionTest, MatchesTheBmmComposition) {
  at::manual_seed(1);
  // 27 vectors: four-at-a-time products and single ones; 13 features: the lanes' tail; every
  // other feature a strided view, as a slice of a wider output would be.
  for (int64_t vectors : {2, 5, 27}) {
    for (int64_t dim : {16, 13}) {
      std::vector<at::Tensor> features;
      for (int64_t i = 0; i < vectors; ++i)
        features.push_back(i % 2 ? at::randn({7, 2 * dim}).slice(1, 0, dim) : at::randn({7, dim}));
      for (bool with_first : {true, false}) {
        at::Tensor got = Interaction(features, with_first);
        at::Tensor expected = ReferenceInteraction(features, with_first);
        ASSERT_EQ(got.sizes(), expected.sizes());
        EXPECT_LT(RelativeL2(got, expected), 1e-5) << vectors << " " << dim << " " << with_first;
      }
    }
  }
  std::vector<at::Tensor> bf16 = {at::randn({3, 8}).to(at::kBFloat16),
                                  at::randn({3, 8}).to(at::kBFloat16)};
  EXPECT_EQ(Interaction(bf16, true).scalar_type(), at::kBFloat16);
  EXPECT_THROW(Interaction({at::randn({3, 8}), at::randn({3, 9})}, true), c10::Error);
}

TEST(MergedEmbeddingBagTest, MatchesAtenWithEmptyAndUnevenBags) {
  at::manual_seed(2);
  std::vector<at::Tensor> weights = {at::randn({10, 4}), at::randn({1, 4}), at::randn({50, 8})};
  std::vector<at::Tensor> indices = {at::tensor({1, 2, 3, 9, 0}, at::kLong),
                                     at::tensor({0, 0}, at::kLong), at::randint(0, 50, {40})};
  std::vector<at::Tensor> offsets = {at::tensor({0, 1, 1, 4}, at::kLong),  // an empty bag
                                     at::tensor({0, 0, 2}, at::kLong),     // empty last bag
                                     at::tensor({0, 10, 11, 30}, at::kLong)};
  auto got = MergedEmbeddingBagSum(weights, indices, offsets);
  ASSERT_EQ(got.size(), 3u);
  for (size_t t = 0; t < 3; ++t) {
    at::Tensor expected =
        std::get<0>(at::embedding_bag(weights[t], indices[t], offsets[t], false, /*mode=*/0));
    ASSERT_EQ(got[t].sizes(), expected.sizes()) << t;
    EXPECT_TRUE(at::allclose(got[t], expected, 1e-5, 1e-6)) << t;
  }
  auto bf16 = MergedEmbeddingBagSum({weights[2].to(at::kBFloat16)}, {indices[2]}, {offsets[2]});
  EXPECT_EQ(bf16[0].scalar_type(), at::kBFloat16);
  at::Tensor expected = std::get<0>(at::embedding_bag(weights[2].to(at::kBFloat16).to(at::kFloat),
                                                      indices[2], offsets[2], false, 0));
  EXPECT_LT(RelativeL2(bf16[0], expected), 1e-2);
}

// Each row within half its scale step of the fp32 row, a row of zeros exact; the bags sum the
// dequantized rows as aten sums them.
TEST(MergedEmbeddingBagTest, Int8TablesSumTheirDequantizedRows) {
  at::manual_seed(3);
  std::vector<at::Tensor> weights = {at::randn({10, 4}), at::randn({50, 16}) * 30};
  weights[0][3].zero_();
  std::vector<at::Tensor> data, scales;
  for (const at::Tensor& w : weights) {
    QuantizedEmbeddingTable q = QuantizeEmbeddingTable(w);
    ASSERT_EQ(q.data.scalar_type(), at::kChar);
    ASSERT_EQ(q.scales.sizes(), at::IntArrayRef({w.size(0)}));
    at::Tensor dequantized = q.data.to(at::kFloat) * q.scales.unsqueeze(1);
    EXPECT_TRUE(((dequantized - w).abs() <= q.scales.unsqueeze(1) / 2 + 1e-6).all().item<bool>());
    EXPECT_EQ(q.data.abs().amax(1).min().item<int64_t>(),
              w.abs().amax(1).min().item<float>() > 0 ? 127 : 0);
    data.push_back(q.data);
    scales.push_back(q.scales);
  }
  EXPECT_EQ(scales[0][3].item<float>(), 1.0F);
  EXPECT_TRUE(at::equal(data[0][3], at::zeros({4}, at::kChar)));
  std::vector<at::Tensor> indices = {at::tensor({1, 3, 3, 9, 0}, at::kLong),
                                     at::randint(0, 50, {40})};
  std::vector<at::Tensor> offsets = {at::tensor({0, 1, 1, 4}, at::kLong),
                                     at::tensor({0, 10, 11, 30}, at::kLong)};
  auto got = QuantizedMergedEmbeddingBagSum(data, scales, indices, offsets);
  ASSERT_EQ(got.size(), 2u);
  for (size_t t = 0; t < 2; ++t) {
    EXPECT_EQ(got[t].scalar_type(), at::kFloat);
    at::Tensor dequantized = data[t].to(at::kFloat) * scales[t].unsqueeze(1);
    at::Tensor expected =
        std::get<0>(at::embedding_bag(dequantized, indices[t], offsets[t], false, /*mode=*/0));
    EXPECT_TRUE(at::allclose(got[t], expected, 1e-5, 1e-5)) << t;
    at::Tensor fp32 =
        std::get<0>(at::embedding_bag(weights[t], indices[t], offsets[t], false, /*mode=*/0));
    EXPECT_LT(RelativeL2(got[t], fp32), 0.02) << t;
  }
}

TEST(MergedEmbeddingBagTest, Int8TablesRefuseWrongScalesAndTables) {
  QuantizedEmbeddingTable q = QuantizeEmbeddingTable(at::randn({5, 4}));
  auto refused = [](const std::function<void()>& call, const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "no error for " << needle;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::vector<at::Tensor> idx = {at::tensor({1}, at::kLong)};
  const std::vector<at::Tensor> off = {at::tensor({0}, at::kLong)};
  refused([&] { QuantizedMergedEmbeddingBagSum({q.data}, {q.scales.slice(0, 0, 4)}, idx, off); },
          "embedding bag 0: expected 5 fp32 row scales");
  refused([&] { QuantizedMergedEmbeddingBagSum({q.data}, {}, idx, off); }, "and 0 scale tensors");
  refused([&] { QuantizedMergedEmbeddingBagSum({q.data.to(at::kFloat)}, {q.scales}, idx, off); },
          "the table must be a 2-D int8 tensor");
  refused([&] { QuantizeEmbeddingTable(at::full({2, 2}, INFINITY)); }, "holds inf or NaN");
  refused(
      [&] {
        QuantizeEmbeddingTable(at::zeros({2, 2}, at::kLong));
      },
      "expected a 2-D floating-point table");
}

TEST(MergedEmbeddingBagTest, BadIndicesAndOffsetsNameTheTable) {
  std::vector<at::Tensor> weights = {at::randn({10, 4}), at::randn({5, 4})};
  try {
    MergedEmbeddingBagSum(weights, {at::tensor({1}, at::kLong), at::tensor({7}, at::kLong)},
                          {at::tensor({0}, at::kLong), at::tensor({0}, at::kLong)});
    ADD_FAILURE() << "index out of range accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("embedding bag 1: index 7 out of range for a table of 5"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(MergedEmbeddingBagSum({weights[0]}, {at::tensor({1, 2}, at::kLong)},
                                     {at::tensor({1, 0}, at::kLong)}),
               c10::Error);
}

}  // namespace
}  // namespace ipt::kernels
