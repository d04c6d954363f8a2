#include "kernels/blocked.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "kernels/buffer_pool.h"
#include "kernels/conv.h"
#include "tests/kernels/test_util.h"

namespace ipt::kernels {
namespace {

using testing::Reference;
using testing::RelativeL2;

// blocked[n][c / b][h][w][c % b] == x[n][c][h][w], written from the definition.
at::Tensor BlockedByDefinition(const at::Tensor& x, int64_t b) {
  at::Tensor out = at::empty({x.size(0), x.size(1) / b, x.size(2), x.size(3), b}, x.options());
  for (int64_t c = 0; c < x.size(1); ++c)
    out.select(1, c / b).select(3, c % b).copy_(x.select(1, c));
  return out;
}

TEST(BlockedLayoutTest, ToAndFromBlockedFollowTheDefinitionForEveryLayoutAndDtype) {
  at::manual_seed(1);
  for (int64_t block : {8, 16}) {
    for (auto dtype : {at::kFloat, at::kBFloat16, at::kLong}) {
      at::Tensor x = (at::randn({2, 32, 5, 3}) * 100).to(dtype);
      at::Tensor expected = BlockedByDefinition(x, block);
      for (auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
        at::Tensor blocked = ToBlocked(x.contiguous(format), block);
        ASSERT_EQ(blocked.sizes(), expected.sizes());
        EXPECT_TRUE(blocked.is_contiguous());
        EXPECT_TRUE(at::equal(blocked, expected)) << block << " " << dtype;
      }
      for (bool channels_last : {false, true}) {
        at::Tensor back = FromBlocked(expected, channels_last);
        EXPECT_TRUE(at::equal(back, x)) << block << " " << dtype;
        EXPECT_EQ(back.is_contiguous(at::MemoryFormat::ChannelsLast) && !back.is_contiguous(),
                  channels_last);
      }
    }
  }
}

TEST(BlockedLayoutTest, RefusesWhatIsNotBlockable) {
  EXPECT_THROW(ToBlocked(at::randn({1, 12, 4, 4}), 8), Error);  // 12 channels
  EXPECT_THROW(ToBlocked(at::randn({1, 16, 4, 4}), 4), Error);  // block 4
  EXPECT_THROW(ToBlocked(at::randn({16, 4, 4}), 8), Error);
  EXPECT_THROW(FromBlocked(at::randn({1, 2, 4, 4}), true), Error);
  EXPECT_THROW(FromBlocked(at::randn({1, 2, 4, 4, 4}), true), Error);
  EXPECT_THROW(BlockedMaxPool2d(at::randn({1, 8, 4, 4}), {2, 2}, {2, 2}, {0, 0}, {1, 1}, false),
               Error);
}

TEST(BlockedLayoutTest, MaxPoolMatchesAtenOnThePlainTensor) {
  at::manual_seed(2);
  at::Tensor x = at::randn({2, 16, 13, 11});
  struct Case {
    std::vector<int64_t> kernel, stride, padding, dilation;
    bool ceil_mode;
  };
  for (const Case& c :
       {Case{{3, 3}, {2, 2}, {1, 1}, {1, 1}, false},  // ResNet's
        Case{{2, 2}, {2, 2}, {0, 0}, {1, 1}, true}, Case{{3, 2}, {1, 2}, {1, 0}, {2, 1}, false}}) {
    at::Tensor expected = at::max_pool2d(x, c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode);
    at::Tensor got =
        BlockedMaxPool2d(ToBlocked(x, 8), c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode);
    ASSERT_EQ(got.dim(), 5);
    EXPECT_TRUE(at::equal(FromBlocked(got, false), expected));
  }
}

TEST(BlockedLayoutTest, ConvWritesBlockedFromPlainOrBlockedInputsAndMatchesAten) {
  at::manual_seed(3);
  struct Case {
    int64_t in, out, kernel;
    ConvParams params;
    const char* post_ops;
  };
  for (const Case& c : {Case{3, 16, 7, {{2, 2}, {3, 3}, {1, 1}, 1}, "relu"},  // an image in
                        Case{16, 32, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, ""},
                        Case{16, 16, 3, {{2, 2}, {1, 1}, {1, 1}, 1}, "relu"},
                        Case{32, 16, 1, {{1, 1}, {0, 0}, {1, 1}, 1}, "sum+relu"},
                        Case{16, 32, 1, {{1, 1}, {0, 0}, {1, 1}, 1}, "sum"}}) {
    at::Tensor x = at::randn({2, c.in, 15, 14});
    at::Tensor w = at::randn({c.out, c.in, c.kernel, c.kernel}) * 0.2;
    at::Tensor b = at::randn({c.out});
    PostOps post = ParsePostOps(c.post_ops);
    at::Tensor plain_out = at::conv2d(x, w, b, c.params.stride, c.params.padding);
    at::Tensor acc = post.sum ? at::randn_like(plain_out) : at::Tensor();
    at::Tensor expected = Reference(plain_out, post, acc);
    for (int64_t block : {8, 16}) {
      ConvContext context(w, b, c.params, post, true, block);
      at::Tensor blocked_acc = post.sum ? ToBlocked(acc, block) : at::Tensor();
      std::vector<at::Tensor> inputs = {x};
      if (c.in % block == 0) inputs.push_back(ToBlocked(x, block));
      for (const at::Tensor& input : inputs) {
        at::Tensor got = context.Run(input, blocked_acc);
        ASSERT_EQ(got.dim(), 5);
        EXPECT_EQ(got.size(4), block);
        EXPECT_LT(RelativeL2(FromBlocked(got, false), expected), 1e-5)
            << c.in << "->" << c.out << " '" << c.post_ops << "' block " << block << " input "
            << input.sizes();
      }
    }
    // A plain-output conv takes a blocked input as well.
    if (c.in % 8 == 0 && !post.sum) {
      ConvContext plain(w, b, c.params, post, true);
      EXPECT_LT(RelativeL2(plain.Run(ToBlocked(x, 8)), expected), 1e-5);
    }
  }
}

TEST(BlockedLayoutTest, ConvRefusesABlockThatDoesNotDivideItsOutputs) {
  at::Tensor w = at::randn({12, 8, 3, 3});
  EXPECT_THROW(ConvContext(w, {}, ConvParams{}, {}, true, 8), Error);
  EXPECT_THROW(ConvContext(at::randn({16, 8, 3, 3}), {}, ConvParams{}, {}, true, 4), Error);
  ConvContext context(at::randn({16, 8, 3, 3}), {}, ConvParams{}, {}, true, 8);
  EXPECT_THROW(context.Run(at::randn({1, 1, 6, 6, 4})), c10::Error);
  EXPECT_THROW(context.Run(at::randn({1, 2, 6, 6, 8})), c10::Error);  // 16 channels, not 8
}

TEST(BlockedLayoutTest, BlockedConvStateRoundTrips) {
  at::Tensor w = at::randn({16, 8, 3, 3});
  ConvContext context(w, {}, ConvParams{{1, 1}, {1, 1}, {1, 1}, 1}, ParsePostOps("relu"), true, 8);
  auto copy = ConvContext::FromState(context.GetState());
  EXPECT_EQ(copy->output_block(), 8);
  at::Tensor x = ToBlocked(at::randn({1, 8, 7, 7}), 8);
  EXPECT_TRUE(at::equal(context.Run(x), copy->Run(x)));
}

TEST(BufferPoolTest, LargeBuffersAreReusedAndSmallOnesAreNot) {
  if (detail::RecycledCacheLimit() == 0) GTEST_SKIP() << "IPT_BUFFER_CACHE_MB=0";
  const std::vector<int64_t> sizes = {2, 64, 56, 56};  // 1.6 MB of fp32
  void* first = nullptr;
  {
    at::Tensor a = detail::EmptyRecycled(sizes, at::TensorOptions().dtype(at::kFloat),
                                         at::MemoryFormat::ChannelsLast);
    EXPECT_TRUE(a.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_EQ(a.sizes(), at::IntArrayRef(sizes));
    a.fill_(1);
    first = a.data_ptr();
  }
  const size_t idle = detail::RecycledCacheBytes();
  EXPECT_GE(idle, size_t{2 * 64 * 56 * 56 * 4});
  at::Tensor b = detail::EmptyRecycled(sizes, at::TensorOptions().dtype(at::kFloat));
  EXPECT_EQ(b.data_ptr(), first);
  EXPECT_TRUE(b.is_contiguous());
  EXPECT_LT(detail::RecycledCacheBytes(), idle);
  const size_t idle_before_small = detail::RecycledCacheBytes();
  detail::EmptyRecycled({16}, at::TensorOptions().dtype(at::kFloat));  // freed at once
  EXPECT_EQ(detail::RecycledCacheBytes(), idle_before_small);
}

TEST(BufferCache, LimitIsWholeMibOrANamedError) {
  EXPECT_EQ(detail::ParseBufferCacheMb(nullptr), size_t{1} << 30);
  EXPECT_EQ(detail::ParseBufferCacheMb(""), size_t{1} << 30);
  EXPECT_EQ(detail::ParseBufferCacheMb("0"), 0u);
  EXPECT_EQ(detail::ParseBufferCacheMb("256"), size_t{256} << 20);
  for (const char* bad : {"1g", "x", "-5", " 64", "1.5", "99999999999"}) {
    try {
      detail::ParseBufferCacheMb(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("IPT_BUFFER_CACHE_MB='" + std::string(bad) + "'"),
                std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace ipt::kernels
