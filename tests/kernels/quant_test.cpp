// The int8 kernels against an independent fake-quantization composition in aten (PyTorch's own
// quantize_per_tensor / quantize_per_channel): the integer arithmetic must agree to fp32
// rounding, and the result must stay close to the fp32 op it replaces.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "kernels/observe.h"
#include "kernels/onednn_info.h"
#include "kernels/pool.h"
#include "kernels/qconv.h"
#include "kernels/qlinear.h"
#include "kernels/quant.h"
#include "tests/kernels/test_util.h"

namespace ipt::kernels {
namespace {

using testing::Reference;
using testing::RelativeL2;

// What the kernels must compute: x and w rounded through PyTorch's own quantizers, then fp32.
at::Tensor FakeQuantInput(const at::Tensor& x, const ActivationQuant& q) {
  at::Tensor clamped = at::quantize_per_tensor(x, q.scale, q.zero_point, at::kQUInt8);
  at::Tensor ints = clamped.int_repr().to(at::kInt).clamp(q.qmin, q.qmax);
  return (ints.to(at::kFloat) - q.zero_point) * q.scale;
}

at::Tensor FakeQuantWeight(const at::Tensor& w) {
  at::Tensor scales = w.reshape({w.size(0), -1}).abs().amax(1).to(at::kDouble) / 127.0;
  at::Tensor q =
      at::quantize_per_channel(w, scales, at::zeros({w.size(0)}, at::kLong), 0, at::kQInt8);
  return q.dequantize();
}

// `call` throws ipt::Error(kInvalidArgument) whose message contains `needle`.
void ExpectRefused(const std::function<void()>& call, const std::string& needle) {
  try {
    call();
    ADD_FAILURE() << "no error for " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

double Cosine(const at::Tensor& a, const at::Tensor& b) {
  return at::cosine_similarity(a.flatten().to(at::kDouble), b.flatten().to(at::kDouble), 0)
      .item<double>();
}

TEST(QuantizeActivationTest, RoundsAndClampsLikePyTorchInEveryLayout) {
  at::manual_seed(3);
  at::Tensor x = at::randn({2, 8, 5, 5}) * 3;
  for (int32_t qmax : {255, 127}) {
    ActivationQuant q = AffineUnsignedQuant(-2.0F, 4.0F, qmax);
    at::Tensor expected =
        at::quantize_per_tensor(x, q.scale, q.zero_point, at::kQUInt8).int_repr().clamp(0, qmax);
    for (auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
      at::Tensor got = QuantizeActivation(x.contiguous(format), q);
      EXPECT_EQ(got.scalar_type(), at::kByte);
      EXPECT_TRUE(got.is_contiguous(format));
      EXPECT_TRUE(at::equal(got.contiguous(), expected)) << "qmax " << qmax;
    }
  }
}

TEST(QuantizeActivationTest, AffineParametersHoldZeroExactly) {
  for (auto [lo, hi] : std::vector<std::pair<float, float>>{{-1, 3}, {0.5, 2}, {-4, -1}, {0, 0}}) {
    ActivationQuant q = AffineUnsignedQuant(lo, hi, 127);
    EXPECT_GT(q.scale, 0);
    EXPECT_GE(q.zero_point, 0);
    EXPECT_LE(q.zero_point, 127);
    at::Tensor zero = QuantizeActivation(at::zeros({1}), q);
    EXPECT_EQ(zero.item<uint8_t>(), q.zero_point) << lo << " " << hi;
  }
}

TEST(QuantizeWeightTest, PerChannelSymmetricMatchesPyTorch) {
  at::manual_seed(4);
  at::Tensor w = at::randn({6, 3, 3, 3});
  w[2].zero_();
  QuantizedWeight q = QuantizeWeightPerChannel(w);
  ASSERT_EQ(q.scales.size(), 6U);
  EXPECT_EQ(q.scales[2], 1.0F);
  at::Tensor dequantized = q.data.to(at::kFloat) * at::tensor(q.scales).view({6, 1, 1, 1});
  EXPECT_LT(RelativeL2(dequantized, FakeQuantWeight(w)), 1e-6);
  EXPECT_LE(q.data.abs().max().item<int>(), 127);
}

TEST(QuantConvTest, MatchesFakeQuantizedAtenForPostOpsZeroPointsAndLayouts) {
  at::manual_seed(5);
  at::Tensor w = at::randn({16, 8, 3, 3}) * 0.2;
  at::Tensor b = at::randn({16});
  for (auto layout : {at::MemoryFormat::ChannelsLast, at::MemoryFormat::Contiguous}) {
    for (bool signed_input : {false, true}) {
      at::Tensor x = signed_input ? at::randn({2, 8, 9, 9}) : at::rand({2, 8, 9, 9}) * 3;
      x = x.contiguous(layout);
      ActivationQuant q = AffineUnsignedQuant(x.min().item<float>(), x.max().item<float>(),
                                              UnsignedActivationMax());
      for (const char* spelling : {"", "relu", "sum", "sum+relu", "gelu"}) {
        PostOps post = ParsePostOps(spelling);
        QuantConvContext context(w, b, ConvParams{{1, 1}, {1, 1}, {1, 1}, 1}, post, q);
        at::Tensor fp32 = at::conv2d(x, w, b, 1, 1);
        at::Tensor acc = post.sum ? at::randn_like(fp32) : at::Tensor();
        at::Tensor expected =
            Reference(at::conv2d(FakeQuantInput(x, q), FakeQuantWeight(w), b, 1, 1), post, acc);
        at::Tensor got = context.Run(x, acc);
        ASSERT_EQ(got.sizes(), fp32.sizes());
        EXPECT_LT(RelativeL2(got, expected), 1e-5)
            << spelling << " signed " << signed_input << " layout " << layout;
        EXPECT_GT(Cosine(got, Reference(fp32, post, acc)), 0.999) << spelling;
      }
    }
  }
}

TEST(QuantConvTest, GroupedAndStridedConvolutions) {
  at::manual_seed(6);
  at::Tensor w = at::randn({12, 2, 3, 3}) * 0.3;
  at::Tensor x = at::rand({1, 6, 11, 11});
  ActivationQuant q = AffineUnsignedQuant(0, 1, UnsignedActivationMax());
  QuantConvContext context(w, {}, ConvParams{{2, 2}, {1, 1}, {1, 1}, 3}, {}, q);
  at::Tensor expected = at::conv2d(FakeQuantInput(x, q), FakeQuantWeight(w), {}, 2, 1, 1, 3);
  EXPECT_LT(RelativeL2(context.Run(x), expected), 1e-5);
}

// A chained convolution writes what the unchained one would give after quantizing its fp32
// result, and the next convolution takes that uint8 tensor as its quantized input: the same
// integers, so the same result, for post-ops that are and are not homogeneous and for a range
// with a zero point and u7.
TEST(QuantConvTest, ChainedOutputIsTheQuantizedFp32OutputAndFeedsTheNextConvolution) {
  at::manual_seed(12);
  at::Tensor w1 = at::randn({16, 8, 3, 3}) * 0.2, b1 = at::randn({16});
  at::Tensor w2 = at::randn({8, 16, 1, 1}) * 0.2, b2 = at::randn({8});
  at::Tensor x = at::rand({2, 8, 9, 9}) * 3;
  const ActivationQuant in = AffineUnsignedQuant(0, 3, UnsignedActivationMax());
  for (const char* spelling : {"relu", "", "silu"}) {
    for (int32_t qmax : {255, 127}) {
      QuantConvContext first(w1, b1, ConvParams{{1, 1}, {1, 1}, {1, 1}, 1}, ParsePostOps(spelling),
                             in);
      at::Tensor fp32 = first.Run(x);
      const ActivationQuant mid =
          AffineUnsignedQuant(fp32.min().item<float>(), fp32.max().item<float>(), qmax);
      auto chained = first.WithOutputQuant(mid);
      at::Tensor q = chained->Run(x);
      ASSERT_EQ(q.scalar_type(), at::kByte);
      ASSERT_EQ(q.sizes(), fp32.sizes());
      at::Tensor expected = QuantizeActivation(fp32, mid);
      // oneDNN multiplies by 1/scale in its own order of operations: a value on a rounding
      // boundary may land one step away, never more, and rarely.
      at::Tensor steps = (q.to(at::kInt) - expected.to(at::kInt)).abs();
      EXPECT_LE(steps.max().item<int>(), 1) << spelling << " qmax " << qmax;
      EXPECT_LT(steps.to(at::kFloat).mean().item<double>(), 1e-3) << spelling << " " << qmax;
      EXPECT_LE(q.max().item<int>(), qmax);

      QuantConvContext second(w2, b2, ConvParams{{1, 1}, {0, 0}, {1, 1}, 1}, ParsePostOps("relu"),
                              mid);
      at::Tensor from_fp32 = second.Run(fp32);
      at::Tensor from_u8 = second.Run(q);
      EXPECT_LT(RelativeL2(from_u8, from_fp32), 1e-3) << spelling << " qmax " << qmax;
      // The state keeps the output quantization.
      EXPECT_TRUE(at::equal(QuantConvContext::FromState(chained->GetState())->Run(x), q));
    }
  }
  EXPECT_THROW(
      QuantConvContext(w1, b1, ConvParams{{1, 1}, {1, 1}, {1, 1}, 1}, ParsePostOps("sum"), in, in),
      Error)
      << "a quantized output after a sum post-op";
}

// A residual kept in uint8: the sum post-op reads an accumulator quantized with its own
// parameters (a zero point too: a shortcut is not rectified) and, with an output quantization,
// leaves the quantized sum in that same tensor. Each must equal the fp32 residual computed from
// the dequantized accumulator, quantized afterwards.
TEST(QuantConvTest, Uint8AccumulatorAddsInPlaceLikeTheDequantizedFp32Residual) {
  at::manual_seed(13);
  at::Tensor w = at::randn({16, 8, 1, 1}) * 0.2, b = at::randn({16});
  at::Tensor x = at::rand({2, 8, 7, 7}) * 3;
  const ConvParams params{{1, 1}, {0, 0}, {1, 1}, 1};
  const auto cl = at::MemoryFormat::ChannelsLast;
  const ActivationQuant in = AffineUnsignedQuant(0, 3, UnsignedActivationMax());
  for (int32_t qmax : {255, 127}) {
    at::Tensor residual = (at::randn({2, 16, 7, 7}) * 2 - 0.5).contiguous(cl);
    const ActivationQuant acc =
        AffineUnsignedQuant(residual.min().item<float>(), residual.max().item<float>(), qmax);
    ASSERT_NE(acc.zero_point, 0);
    at::Tensor acc_q = QuantizeActivation(residual, acc);
    at::Tensor acc_real = (acc_q.to(at::kFloat) - acc.zero_point) * acc.scale;

    QuantConvContext fp32_out(w, b, params, ParsePostOps("sum+relu"), in);
    at::Tensor expected_real = fp32_out.Run(x, acc_real);
    const ActivationQuant out = AffineUnsignedQuant(0, expected_real.max().item<float>(), qmax);
    at::Tensor expected = QuantizeActivation(expected_real, out);

    QuantConvContext real_sum(w, b, params, ParsePostOps("sum+relu"), in, std::nullopt, acc);
    EXPECT_LT(RelativeL2(real_sum.Run(x, acc_q), expected_real), 1e-5) << qmax;
    at::Tensor u8_acc = acc_q.clone(cl);
    EXPECT_THROW(real_sum.RunInPlace(x, u8_acc), c10::Error) << "fp32 result, uint8 accumulator";

    QuantConvContext chained(w, b, params, ParsePostOps("sum+relu"), in, out, acc);
    at::Tensor got = chained.Run(x, acc_q);
    ASSERT_EQ(got.scalar_type(), at::kByte);
    at::Tensor steps = (got.to(at::kInt) - expected.to(at::kInt)).abs();
    EXPECT_LE(steps.max().item<int>(), 1) << qmax;
    EXPECT_LT(steps.to(at::kFloat).mean().item<double>(), 1e-2) << qmax;
    EXPECT_TRUE(at::equal(chained.Run(x, residual), got)) << "an fp32 accumulator is quantized";

    at::Tensor in_place = acc_q.clone(cl);
    EXPECT_EQ(chained.RunInPlace(x, in_place).data_ptr(), in_place.data_ptr());
    EXPECT_TRUE(at::equal(in_place, got)) << qmax;
    at::Tensor fp32_acc = residual.clone();
    EXPECT_THROW(chained.RunInPlace(x, fp32_acc), c10::Error) << "uint8 result, fp32 accumulator";
    EXPECT_TRUE(at::equal(QuantConvContext::FromState(chained.GetState())->Run(x, acc_q), got));
  }
  EXPECT_THROW(QuantConvContext(w, b, params, ParsePostOps("relu"), in, std::nullopt, in), Error)
      << "an accumulator quantization without a sum";
}

TEST(QuantLinearTest, StaticAndDynamicMatchFakeQuantizedAten) {
  at::manual_seed(7);
  at::Tensor w = at::randn({40, 24}) * 0.2;
  at::Tensor b = at::randn({40});
  at::Tensor x = at::randn({3, 5, 24});
  ActivationQuant calibrated =
      AffineUnsignedQuant(x.min().item<float>(), x.max().item<float>(), UnsignedActivationMax());
  for (const char* spelling : {"", "gelu", "sum", "sum+relu"}) {
    PostOps post = ParsePostOps(spelling);
    at::Tensor fp32 = at::linear(x, w, b);
    at::Tensor acc = post.sum ? at::randn_like(fp32) : at::Tensor();
    at::Tensor expected =
        Reference(at::linear(FakeQuantInput(x, calibrated), FakeQuantWeight(w), b), post, acc);
    for (bool dynamic : {false, true}) {
      QuantLinearContext context(w, b, post, dynamic ? std::nullopt : std::optional(calibrated));
      at::Tensor got = context.Run(x, acc);
      ASSERT_EQ(got.sizes(), fp32.sizes());
      // Dynamic quantization calibrates on this very input: the same parameters.
      EXPECT_LT(RelativeL2(got, expected), 1e-5) << spelling << " dynamic " << dynamic;
      EXPECT_GT(Cosine(got, Reference(fp32, post, acc)), 0.999) << spelling;
      // Run-time output scales would send oneDNN to its gemm-based matmul, 10-40% slower.
      // oneDNN 2.6 has int8 brgemm from AVX-512 with VNNI up (not on AVX2 with VNNI).
      const std::string isa = QueryOneDnn().effective_isa;
      if (isa == "avx512_core_vnni" || isa == "avx512_core_bf16" ||
          isa.rfind("avx512_core_amx", 0) == 0) {
        EXPECT_EQ(context.Implementation(15).rfind("brg:", 0), 0U)
            << spelling << " dynamic " << dynamic << ": " << context.Implementation(15);
      }
    }
  }
}

TEST(QuantizeActivationTest, SmoothingDividesEachChannelBeforeQuantizing) {
  at::manual_seed(12);
  at::Tensor x = at::randn({7, 33}) * 3;
  ActivationQuant q = AffineUnsignedQuant(-2, 5, UnsignedActivationMax());
  EXPECT_TRUE(at::equal(QuantizeActivationSmoothed(x, q, at::ones({33})), QuantizeActivation(x, q)))
      << "factors of 1 change nothing";
  at::Tensor s = at::rand({33}) * 10 + 0.1;
  // The same multiplier per channel as the kernel (1 / (factor x scale)), rounded half to even.
  at::Tensor m = (s * q.scale).reciprocal();
  at::Tensor expected = (at::round(x * m) + q.zero_point).clamp(q.qmin, q.qmax).to(at::kByte);
  EXPECT_TRUE(at::equal(QuantizeActivationSmoothed(x, q, s), expected));
  EXPECT_THROW(QuantizeActivationSmoothed(x, q, at::ones({32})), c10::Error);
}

// SmoothQuant's case: an input whose features differ in range a thousandfold (DLRM's top MLP
// reads the bottom MLP's output beside embedding dot products). One u8 scale rounds the small
// features away; dividing each feature by its factor, and multiplying the weight's column by
// it, keeps them.
TEST(QuantLinearTest, SmoothingKeepsFeaturesOfSmallRangeThatOneScaleRoundsAway) {
  at::manual_seed(13);
  const int64_t big = 16, small = 48;
  at::Tensor w = at::randn({32, big + small}) * 0.2;
  at::Tensor scales = at::cat({at::full({big}, 3.0), at::full({small}, 0.003)});
  at::Tensor calibration = at::randn({256, big + small}) * scales;
  at::Tensor x = at::randn({64, big + small}) * scales;
  at::Tensor maxima = calibration.abs().amax(0);
  at::Tensor factors = maxima.sqrt() / w.abs().amax(0).sqrt();  // alpha 0.5
  auto calibrate = [](const at::Tensor& t) {
    return AffineUnsignedQuant(t.min().item<float>(), t.max().item<float>(),
                               UnsignedActivationMax());
  };
  QuantLinearContext plain(w, {}, {}, calibrate(calibration));
  QuantLinearContext smoothed(w, {}, {}, calibrate(calibration / factors), factors);
  EXPECT_TRUE(smoothed.smoothing().equal(factors));
  // With the large features at 0, what is left is the small ones' contribution: one scale
  // rounds all of it away, smoothing keeps most of it.
  at::Tensor small_only = x.clone();
  small_only.narrow(1, 0, big).zero_();
  at::Tensor small_fp32 = at::linear(small_only, w);
  EXPECT_GT(RelativeL2(plain.Run(small_only), small_fp32), 0.9);
  EXPECT_LT(RelativeL2(smoothed.Run(small_only), small_fp32), 0.4);
  at::Tensor fp32 = at::linear(x, w);
  EXPECT_LT(RelativeL2(smoothed.Run(x), fp32), 0.7 * RelativeL2(plain.Run(x), fp32));
  // The integer arithmetic is the fake-quantized composition of the smoothed operands.
  ActivationQuant q = calibrate(calibration / factors);
  at::Tensor expected = at::linear(FakeQuantInput(x / factors, q), FakeQuantWeight(w * factors));
  EXPECT_LT(RelativeL2(smoothed.Run(x), expected), 1e-4);
  auto restored = QuantLinearContext::FromState(smoothed.GetState());
  EXPECT_TRUE(at::equal(restored->Run(x), smoothed.Run(x)));
}

TEST(QuantLinearTest, RefusesSmoothingThatCannotApply) {
  at::Tensor w = at::randn({8, 4});
  ActivationQuant q = AffineUnsignedQuant(0, 1, UnsignedActivationMax());
  ExpectRefused([&] { QuantLinearContext(w, {}, {}, q, at::ones({5})); },
                "5 smoothing factors for 4 input features");
  ExpectRefused(
      [&] {
        QuantLinearContext(w, {}, {}, q, at::tensor({1.0F, 0.0F, 1.0F, 1.0F}));
      },
      "positive and finite");
  ExpectRefused([&] { QuantLinearContext(w, {}, {}, std::nullopt, at::ones({4})); },
                "calibrated (static)");
}

TEST(QuantLinearTest, DynamicQuantizationFollowsEachInputsRange) {
  at::manual_seed(8);
  at::Tensor w = at::randn({16, 32}) * 0.2;
  QuantLinearContext context(w, {}, {}, std::nullopt);
  for (double magnitude : {1e-3, 1.0, 1e3}) {
    at::Tensor x = at::randn({4, 32}) * magnitude;
    EXPECT_GT(Cosine(context.Run(x), at::linear(x, w)), 0.999) << magnitude;
  }
  at::Tensor bad = at::randn({4, 32});
  bad[1][3] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(context.Run(bad), c10::Error);
}

// Max is monotone, so pooling the bytes gives what pooling their values gives: aten's max pool
// on the bytes as floats is the reference, for oneDNN's geometries and the one it refuses.
TEST(QuantizedMaxPoolTest, PoolsTheBytesAsAtenPoolsTheirValues) {
  at::manual_seed(10);
  at::Tensor x = at::randint(0, 256, {2, 19, 13, 15}, at::kByte);
  struct Case {
    std::vector<int64_t> kernel, stride, padding, dilation;
    bool ceil_mode;
  };
  for (const Case& c : {Case{{3, 3}, {2, 2}, {1, 1}, {1, 1}, false},  // ResNet's
                        Case{{2, 2}, {2, 2}, {0, 0}, {1, 1}, true},
                        Case{{3, 2}, {1, 2}, {1, 0}, {2, 1}, false}, Case{{3}, {}, {1}, {1}, true},
                        // The last window ends before the input does: oneDNN refuses it.
                        Case{{2, 2}, {3, 3}, {0, 0}, {1, 1}, false}}) {
    SCOPED_TRACE(::testing::PrintToString(c.kernel) + ::testing::PrintToString(c.stride));
    at::Tensor expected =
        at::max_pool2d(x.to(at::kFloat), c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode)
            .to(at::kByte);
    for (const at::Tensor& input : {x, x.contiguous(at::MemoryFormat::ChannelsLast)}) {
      at::Tensor got =
          QuantizedMaxPool2d(input, c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode);
      EXPECT_EQ(got.scalar_type(), at::kByte);
      EXPECT_TRUE(got.is_contiguous(at::MemoryFormat::ChannelsLast));
      EXPECT_TRUE(at::equal(got, expected));
    }
  }
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  at::Tensor one = QuantizedMaxPool2d(x, {3, 3}, {2, 2}, {1, 1}, {1, 1}, false);
  at::set_num_threads(2);
  at::Tensor two = QuantizedMaxPool2d(x, {3, 3}, {2, 2}, {1, 1}, {1, 1}, false);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one, two));
}

TEST(QuantizedMaxPoolTest, RefusesWhatAtenRefusesAndNonUint8Inputs) {
  at::Tensor x = at::zeros({1, 4, 6, 6}, at::kByte);
  ExpectRefused([&] { QuantizedMaxPool2d(x.to(at::kFloat), {2}, {}, {0}, {1}, false); },
                "expected a uint8 [N, C, H, W], got Float [1, 4, 6, 6]");
  ExpectRefused([&] { QuantizedMaxPool2d(x[0], {2}, {}, {0}, {1}, false); }, "got Byte [4, 6, 6]");
  ExpectRefused(
      [&] {
        QuantizedMaxPool2d(x, {3, 3}, {1, 1}, {2, 2}, {1, 1}, false);
      },
      "padding [2, 2] at most half the kernel");
  ExpectRefused(
      [&] {
        QuantizedMaxPool2d(x, {3, 3, 3}, {1}, {0}, {1}, false);
      },
      "kernel_size takes one "
      "or two values");
  ExpectRefused([&] { QuantizedMaxPool2d(x, {7}, {1}, {0}, {1}, false); }, "would be empty");
}

TEST(QuantKernelsTest, OneThreadAndTwoThreadsGiveIdenticalResults) {
  at::manual_seed(9);
  at::Tensor x = at::rand({2, 16, 14, 14});
  ActivationQuant q = AffineUnsignedQuant(0, 1, UnsignedActivationMax());
  QuantConvContext conv(at::randn({32, 16, 3, 3}) * 0.1, at::randn({32}),
                        ConvParams{{1, 1}, {1, 1}, {1, 1}, 1}, ParsePostOps("relu"), q);
  QuantLinearContext linear(at::randn({64, 16 * 14 * 14}) * 0.01, at::randn({64}), {},
                            std::nullopt);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  at::Tensor conv1 = conv.Run(x), linear1 = linear.Run(x.reshape({2, -1}));
  at::set_num_threads(2);
  at::Tensor conv2 = conv.Run(x), linear2 = linear.Run(x.reshape({2, -1}));
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(conv1, conv2));
  EXPECT_TRUE(at::equal(linear1, linear2));
}

TEST(QuantKernelsTest, ContextsRoundTripThroughTheirState) {
  at::manual_seed(10);
  ActivationQuant q = AffineUnsignedQuant(-1, 2, 127);
  QuantConvContext conv(at::randn({8, 4, 3, 3}), at::randn({8}),
                        ConvParams{{1, 1}, {1, 1}, {1, 1}, 1}, ParsePostOps("relu"), q);
  at::Tensor x = at::randn({1, 4, 6, 6});
  EXPECT_TRUE(at::equal(QuantConvContext::FromState(conv.GetState())->Run(x), conv.Run(x)));
  for (std::optional<ActivationQuant> input :
       {std::optional(q), std::optional<ActivationQuant>()}) {
    QuantLinearContext linear(at::randn({8, 4}), {}, ParsePostOps("gelu"), input);
    at::Tensor y = at::randn({3, 4});
    auto restored = QuantLinearContext::FromState(linear.GetState());
    EXPECT_EQ(restored->dynamic(), linear.dynamic());
    EXPECT_TRUE(at::equal(restored->Run(y), linear.Run(y)));
  }
}

TEST(QuantKernelsTest, RefusesSignedOrNonPositiveInputQuantization) {
  ActivationQuant bad{0.1F, 0, -128, 127};
  EXPECT_THROW(QuantLinearContext(at::randn({4, 4}), {}, {}, bad), Error);
  ActivationQuant zero_scale{0.0F, 0, 0, 255};
  EXPECT_THROW(QuantConvContext(at::randn({4, 4, 1, 1}), {}, ConvParams{}, {}, zero_scale), Error);
}

TEST(ObserveTest, HandsValuesToTheSinkOnlyWhileInstalled) {
  std::vector<std::pair<int64_t, double>> seen;
  at::Tensor x = at::full({2}, 3.0);
  {
    ScopedObserveSink sink([&](int64_t slot, const at::Tensor& v) {
      seen.emplace_back(slot, v.sum().item<double>());
    });
    EXPECT_THROW(ScopedObserveSink([](int64_t, const at::Tensor&) {}), Error);
    EXPECT_TRUE(Observe(x, 7).is_same(x));
  }
  Observe(x, 8);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0], std::make_pair(int64_t{7}, 6.0));
}

}  // namespace
}  // namespace ipt::kernels
