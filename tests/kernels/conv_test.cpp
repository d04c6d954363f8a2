#include "kernels/conv.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "kernels/blocked.h"
#include "tests/kernels/test_util.h"

namespace ipt::kernels {
namespace {

using testing::Reference;
using testing::RelativeL2;

struct ConvCase {
  std::vector<int64_t> input;  // N, C, H, W
  int64_t out_channels;
  int64_t kernel;
  ConvParams params;
  bool bias;
};

std::vector<ConvCase> Cases() {
  return {
      {{1, 16, 14, 14}, 32, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, true},
      {{2, 8, 15, 13}, 16, 3, {{2, 2}, {1, 1}, {1, 1}, 1}, false},   // stride 2, odd sizes
      {{1, 16, 12, 12}, 16, 3, {{1, 1}, {2, 2}, {2, 2}, 1}, true},   // dilation
      {{1, 32, 10, 10}, 32, 3, {{1, 1}, {1, 1}, {1, 1}, 32}, true},  // depthwise
      {{3, 16, 9, 9}, 24, 1, {{1, 1}, {0, 0}, {1, 1}, 4}, true},     // grouped 1x1
      {{1, 3, 32, 32}, 8, 7, {{2, 2}, {3, 3}, {1, 1}, 1}, false},    // a ResNet stem
  };
}

at::Tensor Expected(const ConvCase& c, const at::Tensor& x, const at::Tensor& w,
                    const at::Tensor& b, const PostOps& post, const at::Tensor& acc) {
  return Reference(
      at::conv2d(x, w, b, c.params.stride, c.params.padding, c.params.dilation, c.params.groups),
      post, acc);
}

TEST(ConvContextTest, MatchesAtenForEveryShapeAndPostOpInBothLayouts) {
  at::manual_seed(1);
  for (const ConvCase& c : Cases()) {
    at::Tensor x = at::randn(c.input);
    at::Tensor w =
        at::randn({c.out_channels, c.input[1] / c.params.groups, c.kernel, c.kernel}) * 0.2;
    at::Tensor b = c.bias ? at::randn({c.out_channels}) : at::Tensor();
    for (const char* spelling :
         {"", "relu", "leaky_relu(0.1)", "gelu", "gelu_tanh", "tanh", "sigmoid", "silu",
          "hardtanh(-0.5,0.5)", "elu(1)", "hardswish", "sum", "sum+relu"}) {
      PostOps post = ParsePostOps(spelling);
      for (bool channels_last : {true, false}) {
        ConvContext context(w, b, c.params, post, channels_last);
        at::Tensor expected_shape_probe = Expected(c, x, w, b, ParsePostOps(""), {});
        at::Tensor acc = post.sum ? at::randn_like(expected_shape_probe) : at::Tensor();
        at::Tensor got = context.Run(x, acc);
        at::Tensor expected = Expected(c, x, w, b, post, acc);
        ASSERT_EQ(got.sizes(), expected.sizes());
        EXPECT_LT(RelativeL2(got, expected), 1e-5)
            << "input " << x.sizes() << " post-ops '" << spelling << "' channels_last "
            << channels_last;
        EXPECT_EQ(got.is_contiguous(at::MemoryFormat::ChannelsLast), channels_last);
      }
    }
  }
}

TEST(ConvContextTest, StaysCorrectWhenShapesAndThreadCountsChangeBetweenCalls) {
  at::manual_seed(2);
  at::Tensor w = at::randn({16, 8, 3, 3}) * 0.2;
  at::Tensor b = at::randn({16});
  ConvContext context(w, b, ConvParams{{1, 1}, {1, 1}, {1, 1}, 1}, ParsePostOps("relu"), true);
  const int threads_before = at::get_num_threads();
  for (int threads : {1, 2, 1, 3}) {
    at::set_num_threads(threads);
    for (int64_t size : {8, 17, 8}) {
      at::Tensor x = at::randn({2, 8, size, size});
      at::Tensor expected = at::relu(at::conv2d(x, w, b, 1, 1));
      EXPECT_LT(RelativeL2(context.Run(x), expected), 1e-5) << threads << " threads, " << size;
    }
  }
  at::set_num_threads(threads_before);
}

TEST(ConvContextTest, TakesAnInputInEitherLayout) {
  at::Tensor w = at::randn({4, 3, 3, 3});
  ConvContext context(w, {}, ConvParams{}, {}, true);
  at::Tensor x = at::randn({1, 3, 8, 8});
  at::Tensor expected = at::conv2d(x, w);
  EXPECT_LT(RelativeL2(context.Run(x), expected), 1e-5);
  EXPECT_LT(RelativeL2(context.Run(x.contiguous(at::MemoryFormat::ChannelsLast)), expected), 1e-5);
}

TEST(ConvContextTest, Bf16IsCloseToFp32EvenWithoutNativeBf16Kernels) {
  at::manual_seed(3);
  at::Tensor x = at::randn({1, 16, 10, 10});
  at::Tensor w = at::randn({16, 16, 3, 3}) * 0.1;
  at::Tensor b = at::randn({16});
  ConvContext context(w.to(at::kBFloat16), b, ConvParams{{1, 1}, {1, 1}, {1, 1}, 1},
                      ParsePostOps("relu"), true);
  at::Tensor got = context.Run(x.to(at::kBFloat16));
  EXPECT_EQ(got.scalar_type(), at::kBFloat16);
  EXPECT_LT(RelativeL2(got, at::relu(at::conv2d(x, w, b, 1, 1))), 1e-2);
}

TEST(ConvContextTest, AnInputItCannotTakeRunsTheAtenCompositionOrFailsClearly) {
  at::Tensor w = at::randn({4, 3, 3, 3});
  ConvContext context(w, {}, ConvParams{}, ParsePostOps("relu"), true);
  // fp64 has no oneDNN kernel: the aten fallback gives the right answer in fp32.
  at::Tensor x = at::randn({1, 3, 6, 6});
  EXPECT_LT(RelativeL2(context.Run(x.to(at::kDouble)), at::relu(at::conv2d(x, w))), 1e-5);
  try {
    context.Run(at::randn({1, 5, 6, 6}));
    ADD_FAILURE() << "wrong channel count accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("input has 5 channels, the weight expects 3"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(context.Run(at::randn({3, 6, 6})), c10::Error);
  EXPECT_THROW(ConvContext(at::randn({4, 3, 3}), {}, ConvParams{}, {}, true), Error);
  EXPECT_THROW(ConvContext(w, at::randn({5}), ConvParams{}, {}, true), Error);
}

TEST(ConvContextTest, StateRoundTripGivesTheSameResults) {
  at::Tensor w = at::randn({8, 4, 3, 3});
  at::Tensor b = at::randn({8});
  ConvContext context(w, b, ConvParams{{2, 2}, {1, 1}, {1, 1}, 2}, ParsePostOps("sum+relu"), true);
  auto copy = ConvContext::FromState(context.GetState());
  at::Tensor x = at::randn({1, 8, 9, 9});
  at::Tensor acc = at::randn({1, 8, 5, 5});
  EXPECT_TRUE(at::equal(context.Run(x, acc), copy->Run(x, acc)));
  EXPECT_EQ(copy->post_ops(), context.post_ops());
}

TEST(ConvContextTest, RunInPlaceAddsIntoTheAccumulatorItself) {
  at::manual_seed(5);
  at::Tensor w = at::randn({16, 8, 3, 3}) * 0.2;
  at::Tensor b = at::randn({16});
  const ConvParams params{{1, 1}, {1, 1}, {1, 1}, 1};
  at::Tensor x = at::randn({2, 8, 7, 7});
  at::Tensor acc = at::randn({2, 16, 7, 7});
  at::Tensor expected = at::relu(at::conv2d(x, w, b, 1, 1) + acc);
  ConvContext context(w, b, params, ParsePostOps("sum+relu"), true);
  // The output's own layout: written where it lies.
  at::Tensor in_layout =
      acc.contiguous(at::MemoryFormat::ChannelsLast).clone(at::MemoryFormat::ChannelsLast);
  void* data = in_layout.data_ptr();
  at::Tensor got = context.RunInPlace(x, in_layout);
  EXPECT_EQ(got.data_ptr(), data);
  EXPECT_LT(RelativeL2(in_layout, expected), 1e-5);
  // Another layout, or the input itself as the accumulator: still the right sum, in place.
  at::Tensor plain = acc.clone();
  EXPECT_EQ(context.RunInPlace(x, plain).data_ptr(), plain.data_ptr());
  EXPECT_LT(RelativeL2(plain, expected), 1e-5);
  ConvContext square(at::randn({8, 8, 1, 1}), {}, ConvParams{}, ParsePostOps("sum"), true);
  at::Tensor y = at::randn({1, 8, 5, 5}).contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor y_expected = at::conv2d(y, square.weight()) + y;
  square.RunInPlace(y, y);
  EXPECT_LT(RelativeL2(y, y_expected), 1e-5);
  // Blocked.
  ConvContext blocked(w, b, params, ParsePostOps("sum+relu"), true, 8);
  at::Tensor blocked_acc = ToBlocked(acc, 8);
  data = blocked_acc.data_ptr();
  EXPECT_EQ(blocked.RunInPlace(ToBlocked(x, 8), blocked_acc).data_ptr(), data);
  EXPECT_LT(RelativeL2(FromBlocked(blocked_acc, false), expected), 1e-5);
}

}  // namespace
}  // namespace ipt::kernels
