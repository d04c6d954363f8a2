#include "kernels/parallel.h"

#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <functional>
#include <vector>

#include "kernels/add_layer_norm.h"
#include "kernels/concat_batch_norm.h"
#include "kernels/dlrm.h"
#include "kernels/quant.h"

namespace ipt::kernels {
namespace {

// Runs `body` with `threads` intra-op threads, then restores the count.
template <typename F>
auto WithThreads(int threads, F body) {
  const int before = at::get_num_threads();
  at::set_num_threads(threads);
  auto result = body();
  at::set_num_threads(before);
  return result;
}

TEST(ParallelTest, OurLoopsUseEveryIntraOpThread) {
  EXPECT_EQ(WithThreads(1, ParallelForThreads), 1);
  EXPECT_EQ(WithThreads(2, ParallelForThreads), 2);
}

// Each loop now splits across threads: the split must not change a single bit.
TEST(ParallelTest, OneAndTwoThreadsGiveIdenticalResults) {
  at::manual_seed(3);
  std::vector<std::function<std::vector<at::Tensor>()>> ops;
  std::vector<at::Tensor> features;
  for (int i = 0; i < 27; ++i) features.push_back(at::randn({256, 64}));
  ops.push_back([&] { return std::vector<at::Tensor>{Interaction(features, true)}; });

  std::vector<at::Tensor> weights, indices, offsets, scales, int8_weights;
  for (int t = 0; t < 5; ++t) {
    weights.push_back(at::randn({1000, 64}));
    indices.push_back(at::randint(0, 1000, {512}));
    offsets.push_back(at::arange(0, 512, 2));
    QuantizedEmbeddingTable q = QuantizeEmbeddingTable(weights.back());
    int8_weights.push_back(q.data);
    scales.push_back(q.scales);
  }
  ops.push_back([&] { return MergedEmbeddingBagSum(weights, indices, offsets); });
  ops.push_back(
      [&] { return QuantizedMergedEmbeddingBagSum(int8_weights, scales, indices, offsets); });

  at::Tensor a = at::randn({8, 128, 768}), b = at::randn({8, 128, 768});
  at::Tensor gamma = at::randn({768}), beta = at::randn({768});
  ops.push_back(
      [&] { return std::vector<at::Tensor>{AddLayerNorm(a, b, {768}, gamma, beta, 1e-12)}; });

  std::vector<at::Tensor> maps = {at::randn({4, 32, 14, 14}), at::randn({4, 48, 14, 14})};
  at::Tensor bn_scale = at::rand({80}), bn_shift = at::randn({80});
  ops.push_back(
      [&] { return std::vector<at::Tensor>{ConcatBatchNorm(maps, bn_scale, bn_shift, true)}; });

  ActivationQuant quant = AffineUnsignedQuant(-3.F, 5.F, 255);
  ops.push_back([&] { return std::vector<at::Tensor>{QuantizeActivation(a, quant)}; });

  for (size_t i = 0; i < ops.size(); ++i) {
    std::vector<at::Tensor> one = WithThreads(1, ops[i]);
    std::vector<at::Tensor> two = WithThreads(2, ops[i]);
    ASSERT_EQ(one.size(), two.size());
    for (size_t j = 0; j < one.size(); ++j) EXPECT_TRUE(at::equal(one[j], two[j])) << i << " " << j;
  }
}

// An error inside the loop reaches the caller from whichever thread met it.
TEST(ParallelTest, AnErrorOnTheSecondThreadStillReachesTheCaller) {
  std::vector<at::Tensor> weights = {at::randn({10, 4})};
  at::Tensor indices = at::zeros({256}, at::kLong);
  indices[255] = 10;  // the last bag's, which the second thread sums
  std::vector<at::Tensor> offsets = {at::arange(0, 256)};
  WithThreads(2, [&] {
    EXPECT_THROW(MergedEmbeddingBagSum(weights, {indices}, offsets), c10::Error);
    return 0;
  });
}

}  // namespace
}  // namespace ipt::kernels
