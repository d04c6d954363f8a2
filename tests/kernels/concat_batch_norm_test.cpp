#include "kernels/concat_batch_norm.h"

#include <gtest/gtest.h>

#include "tests/kernels/test_util.h"

namespace ipt::kernels {
namespace {

using testing::RelativeL2;

at::Tensor Expected(const std::vector<at::Tensor>& xs, const at::Tensor& scale,
                    const at::Tensor& shift, bool relu) {
  std::vector<at::Tensor> doubles;
  for (const at::Tensor& x : xs) doubles.push_back(x.to(at::kDouble));
  at::Tensor cat = at::cat(doubles, 1);
  std::vector<int64_t> shape(cat.dim(), 1);
  shape[1] = -1;
  at::Tensor out = cat * scale.to(at::kDouble).view(shape) + shift.to(at::kDouble).view(shape);
  return relu ? at::relu(out) : out;
}

TEST(ConcatBatchNormTest, Bf16InputsGiveBf16AndAgree) {
  at::manual_seed(8);
  const std::vector<at::Tensor> xs = {at::randn({2, 3, 4, 4}), at::randn({2, 5, 4, 4})};
  const at::Tensor scale = at::rand({8}) + 0.5, shift = at::randn({8});
  const at::Tensor got =
      ConcatBatchNorm({xs[0].to(at::kBFloat16), xs[1].to(at::kBFloat16)}, scale, shift, true);
  EXPECT_EQ(got.scalar_type(), at::kBFloat16);
  EXPECT_LT(RelativeL2(got, Expected(xs, scale, shift, true)), 1e-2);
}

TEST(ConcatBatchNormTest, MixedLayoutsAndShapesItCannotTakeStayCorrect) {
  at::manual_seed(9);
  const at::Tensor scale = at::rand({8}) + 0.5, shift = at::randn({8});
  // One channels-last input and one plain: computed in the plain layout.
  const std::vector<at::Tensor> mixed = {
      at::randn({2, 3, 4, 4}).contiguous(at::MemoryFormat::ChannelsLast), at::randn({2, 5, 4, 4})};
  EXPECT_LT(
      RelativeL2(ConcatBatchNorm(mixed, scale, shift, false), Expected(mixed, scale, shift, false)),
      1e-6);
  // Mixed dtypes go to aten, which promotes.
  const std::vector<at::Tensor> dtypes = {at::randn({2, 3}), at::randn({2, 5}).to(at::kDouble)};
  EXPECT_LT(
      RelativeL2(ConcatBatchNorm(dtypes, scale, shift, true), Expected(dtypes, scale, shift, true)),
      1e-6);
  // A scale of the wrong length is aten's error, not a read past the end.
  EXPECT_THROW(ConcatBatchNorm(mixed, at::rand({7}), at::rand({7}), true), c10::Error);
}

}  // namespace
}  // namespace ipt::kernels
