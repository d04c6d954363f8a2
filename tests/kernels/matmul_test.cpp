#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "tests/kernels/test_util.h"

namespace ipt::kernels {
namespace {

using testing::RelativeL2;

at::Tensor Expected(const at::Tensor& a, const at::Tensor& b, const at::Tensor& addend) {
  at::Tensor out = at::matmul(a.to(at::kDouble), b.to(at::kDouble));
  return addend.defined() ? out + addend.to(at::kDouble) : out;
}

struct Case {
  std::string name;
  at::Tensor a, b, addend;
};

std::vector<Case> Cases() {
  at::manual_seed(3);
  const at::Tensor b_t = at::randn({2, 6, 4});  // read as [2, 4, 6] through a transposed view
  return {
      {"2-D", at::randn({5, 4}), at::randn({4, 6}), {}},
      {"2-D + bias row", at::randn({5, 4}), at::randn({4, 6}), at::randn({6})},
      {"batched + full addend", at::randn({3, 5, 4}), at::randn({3, 4, 6}), at::randn({3, 5, 6})},
      {"batched + column addend", at::randn({3, 5, 4}), at::randn({3, 4, 6}), at::randn({5, 1})},
      {"4-D, weights broadcast over a batch dim", at::randn({2, 3, 5, 4}), at::randn({1, 3, 4, 6}),
       at::randn({1, 3, 1, 6})},
      {"3-D @ 2-D", at::randn({2, 5, 4}), at::randn({4, 6}), at::randn({6})},
      {"transposed view of b", at::randn({2, 5, 4}), b_t.transpose(-1, -2), at::randn({2, 5, 6})},
      {"transposed view of a", at::randn({2, 4, 5}).transpose(1, 2), at::randn({2, 4, 6}), {}},
      {"expanded b", at::randn({2, 5, 4}), at::randn({4, 6}).expand({2, 4, 6}), {}},
      {"scalar addend", at::randn({5, 4}), at::randn({4, 6}), at::randn({})},
  };
}

TEST(MatmulTest, MatchesAtenOnOneDnnForBroadcastStridedAndAddendShapes) {
  // The verbose log says when a shape leaves oneDNN; none of these may.
  setenv("IPT_VERBOSE", "1", 1);
  ::testing::internal::CaptureStderr();
  for (const Case& c : Cases()) {
    const at::Tensor got = Matmul(c.a, c.b, c.addend);
    const at::Tensor expected = Expected(c.a, c.b, c.addend);
    ASSERT_EQ(got.sizes(), expected.sizes()) << c.name;
    EXPECT_EQ(got.scalar_type(), at::kFloat) << c.name;
    EXPECT_LT(RelativeL2(got, expected), 1e-5) << c.name;
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  unsetenv("IPT_VERBOSE");
  EXPECT_EQ(log.find("aten fallback"), std::string::npos) << log;
}

TEST(MatmulTest, Bf16GivesBf16AndAgreesWithFp32) {
  for (const Case& c : Cases()) {
    const at::Tensor addend = c.addend.defined() ? c.addend.to(at::kBFloat16) : c.addend;
    const at::Tensor got = Matmul(c.a.to(at::kBFloat16), c.b.to(at::kBFloat16), addend);
    EXPECT_EQ(got.scalar_type(), at::kBFloat16) << c.name;
    EXPECT_LT(RelativeL2(got, Expected(c.a, c.b, c.addend)), 2e-2) << c.name;
  }
}

TEST(MatmulTest, WhatOneDnnCannotTakeRunsAtenWithItsResultOrError) {
  at::manual_seed(4);
  const at::Tensor v = at::randn({4}), m = at::randn({4, 6}), x = at::randn({5, 4});
  EXPECT_LT(RelativeL2(Matmul(v, m, {}), Expected(v, m, {})), 1e-6);  // rank 1
  // An fp64 addend makes an fp64 result, as in aten.
  const at::Tensor wide = at::randn({6}, at::kDouble);
  EXPECT_EQ(Matmul(x, m, wide).scalar_type(), at::kDouble);
  EXPECT_LT(RelativeL2(Matmul(x, m, wide), Expected(x, m, wide)), 1e-6);
  // An addend larger than the product broadcasts the product, as aten's add does.
  const at::Tensor big = at::randn({2, 5, 6});
  EXPECT_LT(RelativeL2(Matmul(x, m, big), Expected(x, m, big)), 1e-6);
  const at::Tensor xi = at::randint(0, 5, {5, 4}, at::kLong),
                   mi = at::randint(0, 5, {4, 6}, at::kLong);
  EXPECT_TRUE(at::equal(Matmul(xi, mi, {}), at::matmul(xi, mi)));
  // Shapes that do not multiply get aten's own error.
  EXPECT_THROW(Matmul(x, at::randn({5, 6}), {}), c10::Error);
  EXPECT_THROW(Matmul(at::randn({2, 5, 4}), at::randn({3, 4, 6}), {}), c10::Error);
}

TEST(MatmulTest, StaysCorrectWhenShapesAndThreadCountsChangeBetweenCalls) {
  at::manual_seed(5);
  const int threads = at::get_num_threads();
  for (int round = 0; round < 2; ++round) {
    for (int t : {1, 2}) {
      at::set_num_threads(t);
      for (int64_t rows : {1, 7, 33, 128}) {
        const at::Tensor a = at::randn({2, rows, 16}), b = at::randn({2, 16, 24});
        const at::Tensor c = at::randn({24});
        EXPECT_LT(RelativeL2(Matmul(a, b, c), Expected(a, b, c)), 1e-5) << rows << " " << t;
      }
    }
  }
  at::set_num_threads(threads);
}

}  // namespace
}  // namespace ipt::kernels
