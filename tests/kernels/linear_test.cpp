#include "kernels/linear.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "base/error.h"
#include "kernels/dnnl_util.h"
#include "tests/kernels/test_util.h"

namespace ipt::kernels {
namespace {

using testing::Reference;
using testing::RelativeL2;

TEST(LinearContextTest, MatchesAtenForEveryPostOpAndInputRank) {
  at::manual_seed(1);
  at::Tensor w = at::randn({48, 32}) * 0.2;
  at::Tensor b = at::randn({48});
  for (std::vector<int64_t> shape :
       std::vector<std::vector<int64_t>>{{32}, {5, 32}, {2, 7, 32}, {2, 3, 4, 32}, {1, 32}}) {
    at::Tensor x = at::randn(shape);
    for (const char* spelling :
         {"", "relu", "gelu", "gelu_tanh", "tanh", "sigmoid", "silu", "sum", "sum+relu"}) {
      PostOps post = ParsePostOps(spelling);
      for (bool with_bias : {true, false}) {
        at::Tensor bias = with_bias ? b : at::Tensor();
        LinearContext context(w, bias, post);
        at::Tensor plain = at::linear(x, w, bias);
        at::Tensor acc = post.sum ? at::randn_like(plain) : at::Tensor();
        at::Tensor got = context.Run(x, acc);
        ASSERT_EQ(got.sizes(), plain.sizes());
        EXPECT_LT(RelativeL2(got, Reference(plain, post, acc)), 1e-5)
            << x.sizes() << " '" << spelling << "' bias " << with_bias;
      }
    }
  }
}

TEST(LinearContextTest, StaysCorrectWhenRowsAndThreadCountsChangeBetweenCalls) {
  at::manual_seed(2);
  at::Tensor w = at::randn({64, 96}) * 0.1;
  at::Tensor b = at::randn({64});
  LinearContext context(w, b, ParsePostOps("gelu"));
  const int threads_before = at::get_num_threads();
  for (int threads : {2, 1, 3}) {
    at::set_num_threads(threads);
    for (int64_t rows : {32, 384, 1, 129, 32}) {
      at::Tensor x = at::randn({rows, 96});
      EXPECT_LT(RelativeL2(context.Run(x), at::gelu(at::linear(x, w, b))), 1e-5)
          << threads << " threads, " << rows << " rows";
    }
  }
  at::set_num_threads(threads_before);
}

TEST(LinearContextTest, NonContiguousInputIsHandled) {
  at::Tensor w = at::randn({8, 16});
  LinearContext context(w, {}, {});
  at::Tensor x = at::randn({16, 6}).t();
  EXPECT_LT(RelativeL2(context.Run(x), at::linear(x, w)), 1e-5);
}

TEST(LinearContextTest, Bf16IsCloseToFp32) {
  at::manual_seed(3);
  at::Tensor w = at::randn({64, 64}) * 0.1;
  at::Tensor b = at::randn({64});
  at::Tensor x = at::randn({8, 64});
  LinearContext context(w.to(at::kBFloat16), b, ParsePostOps("relu"));
  at::Tensor got = context.Run(x.to(at::kBFloat16));
  EXPECT_EQ(got.scalar_type(), at::kBFloat16);
  EXPECT_LT(RelativeL2(got, at::relu(at::linear(x, w, b))), 1e-2);
}

TEST(LinearContextTest, WrongInputsFailClearly) {
  LinearContext context(at::randn({8, 16}), {}, ParsePostOps("sum"));
  try {
    context.Run(at::randn({2, 15}), at::randn({2, 8}));
    ADD_FAILURE() << "wrong feature count accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("15 features, the weight expects 16"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(context.Run(at::randn({2, 16})), c10::Error);  // sum without accumulator
  EXPECT_THROW(context.Run(at::randn({2, 16}), at::randn({3, 8})), c10::Error);
  EXPECT_THROW(LinearContext(at::randn({8}), {}, {}), Error);
  EXPECT_THROW(LinearContext(at::randn({8, 4}), at::randn({4}), {}), Error);
}

// oneDNN's jit gemm is the fp32 and int8 matmul below AVX-512; it gets weights as [N, K] (ba),
// not its own choice (plain [K, N], which it packs at half the speed). Blocked kernels keep
// theirs.
TEST(MatmulWithPreferredWeightsTest, GemmGetsWeightsAsNByK) {
  using dnnl::memory;
  for (auto [src, weights, dst] :
       {std::tuple{memory::data_type::f32, memory::data_type::f32, memory::data_type::f32},
        std::tuple{memory::data_type::u8, memory::data_type::s8, memory::data_type::f32}}) {
    std::vector<memory::format_tag> tried;
    auto pd = detail::MatmulWithPreferredWeights([&](memory::format_tag tag) {
      tried.push_back(tag);
      return dnnl::matmul::primitive_desc(
          dnnl::matmul::desc(memory::desc({128, 768}, src, memory::format_tag::ab),
                             memory::desc({768, 3072}, weights, tag),
                             memory::desc({128, 3072}, dst, memory::format_tag::ab)),
          detail::CpuEngine());
    });
    ASSERT_FALSE(tried.empty());
    EXPECT_EQ(tried.front(), memory::format_tag::any);
    const std::string impl = pd.impl_info_str();
    if (impl.rfind("gemm", 0) == 0) {
      EXPECT_EQ(pd.weights_desc(), memory::desc({768, 3072}, weights, memory::format_tag::ba))
          << impl;
    } else {
      EXPECT_EQ(tried.size(), 1u) << impl;
    }
  }
}

}  // namespace
}  // namespace ipt::kernels
