#include <gtest/gtest.h>

#include <cmath>

#include "kernels/add_layer_norm.h"
#include "kernels/attention.h"
#include "tests/kernels/test_util.h"

namespace ipt::kernels {
namespace {

using testing::RelativeL2;

TEST(AddLayerNormTest, MatchesAtenWithAndWithoutAffineParameters) {
  at::manual_seed(1);
  for (std::vector<int64_t> shape :
       std::vector<std::vector<int64_t>>{{2, 7, 768}, {3, 33}, {1, 1, 5}, {64}}) {
    at::Tensor a = at::randn(shape), b = at::randn(shape) * 3 + 1;
    const int64_t n = shape.back();
    at::Tensor w = at::randn({n}), bias = at::randn({n});
    for (bool affine : {true, false}) {
      at::Tensor weight = affine ? w : at::Tensor(), beta = affine ? bias : at::Tensor();
      at::Tensor expected = at::layer_norm(a + b, {n}, weight, beta, 1e-12);
      EXPECT_LT(RelativeL2(AddLayerNorm(a, b, {n}, weight, beta, 1e-12), expected), 1e-5)
          << a.sizes() << " affine " << affine;
    }
  }
}

TEST(AddLayerNormTest, Bf16AndUnsupportedInputsStayCorrect) {
  at::manual_seed(2);
  at::Tensor a = at::randn({4, 64}), b = at::randn({4, 64});
  at::Tensor w = at::randn({64}), bias = at::randn({64});
  at::Tensor expected = at::layer_norm(a + b, {64}, w, bias, 1e-5);
  at::Tensor got = AddLayerNorm(a.to(at::kBFloat16), b.to(at::kBFloat16), {64}, w.to(at::kBFloat16),
                                bias.to(at::kBFloat16), 1e-5);
  EXPECT_EQ(got.scalar_type(), at::kBFloat16);
  EXPECT_LT(RelativeL2(got, expected), 1e-2);
  // bf16 rows are converted in the kernel: the same bits as the fp32 kernel on the widened
  // inputs, rounded as aten's conversion rounds (NaN rows included); a width with a tail past the
  // lanes.
  at::Tensor a16 = at::randn({5, 77}).to(at::kBFloat16), b16 = at::randn({5, 77}).to(at::kBFloat16);
  a16[3][10] = std::nanf("");
  at::Tensor w77 = at::randn({77}), bias77 = at::randn({77});
  at::Tensor in_kernel = AddLayerNorm(a16, b16, {77}, w77, bias77, 1e-5);
  at::Tensor widened =
      AddLayerNorm(a16.to(at::kFloat), b16.to(at::kFloat), {77}, w77, bias77, 1e-5);
  EXPECT_TRUE(at::equal(in_kernel.view(at::kShort), widened.to(at::kBFloat16).view(at::kShort)));
  // Broadcasting and multi-dimension normalisation take the aten path.
  at::Tensor row = at::randn({64});
  EXPECT_LT(RelativeL2(AddLayerNorm(a, row, {64}, w, bias, 1e-5),
                       at::layer_norm(a + row, {64}, w, bias, 1e-5)),
            1e-6);
  at::Tensor a3 = at::randn({2, 4, 8}), b3 = at::randn({2, 4, 8});
  EXPECT_LT(RelativeL2(AddLayerNorm(a3, b3, {4, 8}, {}, {}, 1e-5),
                       at::layer_norm(a3 + b3, {4, 8}, {}, {}, 1e-5)),
            1e-6);
}

at::Tensor ReferenceAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const at::Tensor& mask, double scale) {
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * scale;
  if (mask.defined()) scores = scores + mask;
  return at::matmul(at::softmax(scores, -1), v);
}

TEST(AttentionTest, MatchesAtenForBertShapesMasksAndStridedViews) {
  at::manual_seed(3);
  AttentionContext context(0.125);
  for (int64_t seq : {32, 128, 7, 384}) {
    // As BERT makes them: one [B, S, 3H] projection split and viewed into heads.
    at::Tensor qkv = at::randn({2, seq, 3 * 64});
    auto parts = qkv.split(64, -1);
    auto heads = [&](const at::Tensor& t) { return t.view({2, seq, 4, 16}).permute({0, 2, 1, 3}); };
    at::Tensor q = heads(parts[0]), k = heads(parts[1]), v = heads(parts[2]);
    at::Tensor lengths = at::randint(1, seq + 1, {2});
    at::Tensor mask =
        (at::arange(seq).unsqueeze(0) >= lengths.unsqueeze(1)).to(at::kFloat) * -10000.0;
    mask = mask.view({2, 1, 1, seq});
    EXPECT_LT(RelativeL2(context.Run(q, k, v, mask), ReferenceAttention(q, k, v, mask, 0.125)),
              1e-5)
        << seq;
    EXPECT_LT(RelativeL2(context.Run(q, k, v, {}), ReferenceAttention(q, k, v, {}, 0.125)), 1e-5)
        << seq;
    // Masks of lower rank, and one per query (causal), broadcast as aten broadcasts them.
    at::Tensor causal = at::triu(at::full({seq, seq}, -10000.0), 1);
    for (const at::Tensor& m :
         {causal, mask[0].flatten(), causal.expand({2, 4, seq, seq}).contiguous(),
          mask.transpose(-1, -2).contiguous().view({2, 1, seq, 1})}) {
      EXPECT_LT(RelativeL2(context.Run(q, k, v, m), ReferenceAttention(q, k, v, m, 0.125)), 1e-5)
          << seq << " " << m.sizes();
    }
  }
}

TEST(AttentionTest, ThreadCountsBf16AndOddShapesStayCorrect) {
  at::manual_seed(4);
  AttentionContext context(0.5);
  at::Tensor q = at::randn({3, 5, 8}), k = at::randn({3, 9, 8}), v = at::randn({3, 9, 6});
  at::Tensor expected = ReferenceAttention(q, k, v, {}, 0.5);
  const int threads_before = at::get_num_threads();
  for (int threads : {1, 2, 1}) {
    at::set_num_threads(threads);
    EXPECT_LT(RelativeL2(context.Run(q, k, v, {}), expected), 1e-5) << threads;
  }
  at::set_num_threads(threads_before);
  at::Tensor got = context.Run(q.to(at::kBFloat16), k.to(at::kBFloat16), v.to(at::kBFloat16), {});
  EXPECT_EQ(got.scalar_type(), at::kBFloat16);
  EXPECT_LT(RelativeL2(got, expected), 2e-2);
  // Broadcast batch dimensions are not for the oneDNN path: the aten composition answers.
  at::Tensor k1 = at::randn({1, 9, 8});
  EXPECT_LT(RelativeL2(context.Run(q, k1, v, {}), ReferenceAttention(q, k1, v, {}, 0.5)), 1e-5);
}

}  // namespace
}  // namespace ipt::kernels
