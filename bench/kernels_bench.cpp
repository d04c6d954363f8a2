// Kernel throughput against which the core's figures are read: oneDNN's best primitive for the
// two shapes that dominate ResNet-50 and BERT, for ResNet-50's convolutions as a whole and for
// BERT-base's linears and attention products, per dtype (argument "dtype": 0 fp32, 1 bf16, 2 int8 =
// u8 activations x s8 weights, as the core's static int8), and libtorch's own aten path for the
// same shapes. Reports GFLOP/s (counter "GFLOPS"; for int8, GOP/s). Set OMP_NUM_THREADS: libgomp
// defaults to one thread here.
//   build/bench/ipt_kernels_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>
#include <torch/torch.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "kernels/add_layer_norm.h"
#include "kernels/conv.h"
#include "kernels/dlrm.h"
#include "kernels/dnnl_util.h"
#include "kernels/linear.h"
#include "kernels/post_ops.h"
#include "workloads/dlrm.h"

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct DataTypes {
  memory::data_type src, weights, dst;
};

DataTypes DataTypesOf(int64_t dtype) {
  using dt = memory::data_type;
  switch (dtype) {
    case 1:
      return {dt::bf16, dt::bf16, dt::bf16};
    case 2:
      return {dt::u8, dt::s8, dt::u8};
    default:
      return {dt::f32, dt::f32, dt::f32};
  }
}

// oneDNN has no bf16 kernels below avx512_core: a skip with the reason, not a crash.
template <typename Pd, typename Make>
bool MakePrimitiveDesc(benchmark::State& state, Pd& pd, Make make) {
  try {
    pd = make();
    return true;
  } catch (const dnnl::error& e) {
    state.SkipWithError(
        ("oneDNN has no kernel for this on this CPU: " + std::string(e.what())).c_str());
    return false;
  }
}

// Fresh memory may hold denormals or NaNs, which slow some kernels down: every byte 0x3c is a
// small normal number in fp32 (0.0115) and bf16, and 60 in int8.
void Fill(std::initializer_list<memory*> buffers) {
  for (memory* m : buffers) std::memset(m->get_data_handle(), 0x3c, m->get_desc().get_size());
}

void SetFlops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOPS"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// One way to compute an op: a primitive and its arguments.
struct Variant {
  dnnl::primitive primitive;
  std::unordered_map<int, memory> args;
};

// Manual time of each iteration: every op on its fastest variant (each variant timed alone, the
// best of three calls after a warm-up call: first-run costs are not the kernel's), run back to
// back without a clock between them, times `repeats` (ops that recur with the same shapes).
// Back to back, as a network runs them: a clock around each call would add its own overhead.
void TimeFastestVariants(benchmark::State& state, std::vector<std::vector<Variant>>& ops,
                         double repeats = 1) {
  dnnl::stream stream(Engine());
  auto run = [&](Variant& v) {
    const auto start = std::chrono::steady_clock::now();
    v.primitive.execute(stream, v.args);
    stream.wait();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::vector<Variant*> fastest;
  for (auto& variants : ops) {
    Variant* best = nullptr;
    double best_seconds = std::numeric_limits<double>::infinity();
    for (Variant& v : variants) {
      run(v);
      for (int i = 0; i < 3; ++i) {
        const double seconds = run(v);
        if (seconds < best_seconds) {
          best_seconds = seconds;
          best = &v;
        }
      }
    }
    fastest.push_back(best);
  }
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    for (Variant* v : fastest) v->primitive.execute(stream, v->args);
    stream.wait();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() * repeats);
  }
}

// 3x3 convolution, 64 -> 64 channels at 56x56 (ResNet-50's layer1), batch 1; oneDNN chooses
// the blocked layouts it prefers (format_tag::any), as the core does with prepacked weights.
void BM_OneDnnConv3x3(benchmark::State& state) {
  const memory::dim n = 1, c = 64, k = 64, h = 56, w = 56;
  auto dt = DataTypesOf(state.range(0));
  memory::desc src_md({n, c, h, w}, dt.src, Tag::any);
  memory::desc wei_md({k, c, 3, 3}, dt.weights, Tag::any);
  memory::desc dst_md({n, k, h, w}, dt.dst, Tag::any);
  dnnl::convolution_forward::primitive_desc pd;
  if (!MakePrimitiveDesc(state, pd, [&] {
        return dnnl::convolution_forward::primitive_desc(
            dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                            dnnl::algorithm::convolution_direct, src_md, wei_md,
                                            dst_md, {1, 1}, {1, 1}, {1, 1}),
            Engine());
      })) {
    return;
  }
  memory src(pd.src_desc(), Engine()), wei(pd.weights_desc(), Engine()),
      dst(pd.dst_desc(), Engine());
  Fill({&src, &wei, &dst});
  dnnl::convolution_forward conv(pd);
  dnnl::stream stream(Engine());
  for (auto _ : state) {
    conv.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    stream.wait();
  }
  SetFlops(state, 2.0 * n * k * c * 9 * h * w);
  state.SetLabel(pd.impl_info_str());
}
BENCHMARK(BM_OneDnnConv3x3)->DenseRange(0, 2)->ArgName("dtype")->UseRealTime();

struct ConvShape {
  enum class Post { kNone, kRelu, kSumRelu };                      // what the network fuses into it
  memory::dim in_channels, out_channels, kernel, stride, in_size;  // square, padding kernel / 2
  Post post = Post::kRelu;
};

// ResNet-50's 53 convolutions in order (torchvision's v1.5: the stride on the 3x3, the
// downsample after its block's three).
std::vector<ConvShape> ResNet50Convolutions() {
  std::vector<ConvShape> convs = {{3, 64, 7, 2, 224}};
  memory::dim channels = 64, size = 56;
  for (auto [planes, blocks, stride] : {std::tuple<memory::dim, int, memory::dim>{64, 3, 1},
                                        {128, 4, 2},
                                        {256, 6, 2},
                                        {512, 3, 2}}) {
    for (int b = 0; b < blocks; ++b) {
      const memory::dim s = b == 0 ? stride : 1;
      convs.push_back({channels, planes, 1, 1, size});
      convs.push_back({planes, planes, 3, s, size});
      convs.push_back({planes, 4 * planes, 1, 1, size / s, ConvShape::Post::kSumRelu});
      if (b == 0) convs.push_back({channels, 4 * planes, 1, s, size, ConvShape::Post::kNone});
      channels = 4 * planes;
      size /= s;
    }
  }
  return convs;
}

// ResNet-50's convolutions (argument "batch"), each on oneDNN's best primitive for its shape
// with the post-ops the network fuses into it (ReLU, residual sum + ReLU; for int8 also the
// output's requantization, a scale per channel), in the faster of the activation layouts oneDNN
// offers (its own choice and NHWC, the core's): what the convolutions alone cost at best here.
// The network adds pooling, the classifier, quantizing its input and any reorders on top; its
// convolutions read their predecessor's output from the cache where these read inputs of their
// own, so it can come a few per cent under. Manual time: that sum; GFLOP/s over the
// convolutions' FLOPs.
void BM_ResNet50Convolutions(benchmark::State& state) {
  const memory::dim n = state.range(1);
  auto dt = DataTypesOf(state.range(0));
  std::vector<std::vector<Variant>> layers;
  double flops = 0;
  for (const ConvShape& c : ResNet50Convolutions()) {
    const memory::dim out = (c.in_size + 2 * (c.kernel / 2) - c.kernel) / c.stride + 1;
    dnnl::primitive_attr attr;
    if (dt.src == memory::data_type::u8)
      attr.set_output_scales(1 << 1, std::vector<float>(c.out_channels, 0.01F));
    dnnl::post_ops ops;
    if (c.post == ConvShape::Post::kSumRelu) ops.append_sum(1.F);
    if (c.post != ConvShape::Post::kNone)
      ops.append_eltwise(1.F, dnnl::algorithm::eltwise_relu, 0.F, 0.F);
    attr.set_post_ops(ops);
    std::vector<Variant> variants;
    for (Tag tag : {Tag::any, Tag::nhwc}) {
      memory::desc src_md({n, c.in_channels, c.in_size, c.in_size}, dt.src, tag);
      memory::desc wei_md({c.out_channels, c.in_channels, c.kernel, c.kernel}, dt.weights,
                          Tag::any);
      memory::desc dst_md({n, c.out_channels, out, out}, dt.dst, tag);
      dnnl::convolution_forward::primitive_desc pd;
      if (!MakePrimitiveDesc(state, pd, [&] {
            return dnnl::convolution_forward::primitive_desc(
                dnnl::convolution_forward::desc(
                    dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                    wei_md, dst_md, {c.stride, c.stride}, {c.kernel / 2, c.kernel / 2},
                    {c.kernel / 2, c.kernel / 2}),
                attr, Engine());
          })) {
        return;
      }
      memory src(pd.src_desc(), Engine()), wei(pd.weights_desc(), Engine()),
          dst(pd.dst_desc(), Engine());
      Fill({&src, &wei, &dst});
      variants.push_back({dnnl::convolution_forward(pd),
                          {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}}});
    }
    layers.push_back(std::move(variants));
    flops += 2.0 * n * c.out_channels * c.in_channels * c.kernel * c.kernel * out * out;
  }
  TimeFastestVariants(state, layers);
  SetFlops(state, flops);
  state.SetLabel(std::to_string(layers.size()) +
                 " convolutions with their post-ops, best of oneDNN's layout and NHWC");
}
BENCHMARK(BM_ResNet50Convolutions)
    ->ArgsProduct({{0, 1, 2}, {1, 16}})
    ->ArgNames({"dtype", "batch"})
    ->UseManualTime();

// BERT-base's attention products (argument "batch" sequences of 128 tokens, 12 heads of 64):
// per layer the scores Q K^T, [12B, 128, 64] x [12B, 64, 128], and the context P V,
// [12B, 128, 128] x [12B, 128, 64], each on oneDNN's best primitive for its shape with its
// second operand in either layout (transposed in memory or not) and the faster counted, for the
// 12 layers. Manual time: that sum; GFLOP/s over their FLOPs. With the model's linears
// (BM_BertLinears), what BERT's products take at best (scripts/benchmarks.py).
void BM_BertAttentionProducts(benchmark::State& state) {
  const memory::dim batches = 12 * state.range(1), seq = 128, dim = 64, layers = 12;
  auto dt = DataTypesOf(state.range(0));
  // [batches, m, k] x [batches, k, n], the second operand [k, n] or stored transposed.
  auto variants = [&](memory::dim m, memory::dim k, memory::dim n) {
    std::vector<Variant> out;
    for (Tag tag : {Tag::abc, Tag::acb}) {
      memory::desc a_md({batches, m, k}, dt.src, Tag::abc);
      memory::desc b_md({batches, k, n}, dt.weights, tag);
      memory::desc c_md({batches, m, n}, dt.dst, Tag::abc);
      dnnl::matmul::primitive_desc pd;
      if (!MakePrimitiveDesc(state, pd, [&] {
            return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), Engine());
          })) {
        return std::vector<Variant>{};
      }
      memory a(pd.src_desc(), Engine()), b(pd.weights_desc(), Engine()), c(pd.dst_desc(), Engine());
      Fill({&a, &b, &c});
      out.push_back(
          {dnnl::matmul(pd), {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}}});
    }
    return out;
  };
  std::vector<std::vector<Variant>> products = {variants(seq, dim, seq), variants(seq, seq, dim)};
  if (products[0].empty() || products[1].empty()) return;
  TimeFastestVariants(state, products, layers);
  SetFlops(state, 2.0 * 2.0 * batches * seq * seq * dim * layers);
  state.SetLabel("12 layers' scores and context, best of two layouts");
}
BENCHMARK(BM_BertAttentionProducts)
    ->ArgsProduct({{0, 1, 2}, {1, 8}})
    ->ArgNames({"dtype", "batch"})
    ->UseManualTime();

// BERT-base's linears (argument "batch" sequences of 128 tokens): per layer the merged Q, K and
// V projection 768 -> 2304, the attention output 768 -> 768, the FFN up-projection 768 -> 3072
// with its GELU (erf) fused as a post-op, the only way the model's GELU costs less than a pass
// of its own, and the FFN down-projection 3072 -> 768, for the 12 layers. Each on oneDNN's best
// primitive for its shape with its weights in oneDNN's chosen layout and plain, the faster
// counted; int8 with a scale per output feature and u8 output without a zero point, cheaper than
// the core's fp32 output. With the attention products (BM_BertAttentionProducts), what BERT's
// matrix products take at best (scripts/benchmarks.py). Manual time: that sum; GFLOP/s over the
// linears' FLOPs.
void BM_BertLinears(benchmark::State& state) {
  const memory::dim rows = 128 * state.range(1), hidden = 768, layers = 12;
  auto dt = DataTypesOf(state.range(0));
  struct Shape {
    memory::dim in, out;
    bool gelu;
  };
  const std::vector<Shape> shapes = {{hidden, 3 * hidden, false},
                                     {hidden, hidden, false},
                                     {hidden, 4 * hidden, true},
                                     {4 * hidden, hidden, false}};
  std::vector<std::vector<Variant>> linears;
  double flops = 0;
  for (const Shape& shape : shapes) {
    dnnl::primitive_attr attr;
    if (dt.src == memory::data_type::u8)
      attr.set_output_scales(1 << 1, std::vector<float>(shape.out, 0.01F));
    if (shape.gelu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.F, dnnl::algorithm::eltwise_gelu_erf, 0.F, 0.F);
      attr.set_post_ops(ops);
    }
    std::vector<Variant> variants;
    for (Tag weights_tag : {Tag::any, Tag::ba}) {
      memory::desc a_md({rows, shape.in}, dt.src, Tag::ab);
      memory::desc b_md({shape.in, shape.out}, dt.weights, weights_tag);
      memory::desc c_md({rows, shape.out}, dt.dst, Tag::ab);
      dnnl::matmul::primitive_desc pd;
      if (!MakePrimitiveDesc(state, pd, [&] {
            return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), attr,
                                                Engine());
          })) {
        return;
      }
      memory a(pd.src_desc(), Engine()), b(pd.weights_desc(), Engine()), c(pd.dst_desc(), Engine());
      Fill({&a, &b, &c});
      variants.push_back(
          {dnnl::matmul(pd), {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}}});
    }
    linears.push_back(std::move(variants));
    flops += 2.0 * rows * shape.in * shape.out * layers;
  }
  TimeFastestVariants(state, linears, layers);
  SetFlops(state, flops);
  state.SetLabel("12 layers' 4 linears, GELU fused, best of two weight layouts");
}
BENCHMARK(BM_BertLinears)
    ->ArgsProduct({{0, 1, 2}, {1, 8}})
    ->ArgNames({"dtype", "batch"})
    ->UseManualTime();

// BERT-base's FFN up-projection: 128 tokens x 768 -> 3072, weights laid out as the core's
// linear lays them out.
void BM_OneDnnMatmulFfn(benchmark::State& state) {
  const memory::dim m = 128, kdim = 768, n = 3072;
  auto dt = DataTypesOf(state.range(0));
  memory::desc a_md({m, kdim}, dt.src, Tag::ab);
  memory::desc c_md({m, n}, dt.dst, Tag::ab);
  auto make = [&](Tag weights_tag) {
    memory::desc b_md({kdim, n}, dt.weights, weights_tag);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), Engine());
  };
  dnnl::matmul::primitive_desc pd;
  if (!MakePrimitiveDesc(state, pd,
                         [&] { return ipt::kernels::detail::MatmulWithPreferredWeights(make); })) {
    return;
  }
  memory a(pd.src_desc(), Engine()), b(pd.weights_desc(), Engine()), c(pd.dst_desc(), Engine());
  Fill({&a, &b, &c});
  dnnl::matmul mm(pd);
  dnnl::stream stream(Engine());
  for (auto _ : state) {
    mm.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    stream.wait();
  }
  SetFlops(state, 2.0 * m * kdim * n);
  state.SetLabel(pd.impl_info_str());
}
BENCHMARK(BM_OneDnnMatmulFfn)->DenseRange(0, 2)->ArgName("dtype")->UseRealTime();

// How an int8 linear receives its dequantization scales (kernels/qlinear.cpp), on BERT's FFN
// up-projection at a micro-batch of 2 (256 tokens x 768 -> 3072, u8 x s8 -> fp32, run-time zero
// point): as run-time output scales, as output scales baked into the primitive, or as the
// run-time operand of a per-feature binary post-op (the core's choice: one primitive for every
// layer of a shape).
enum class ScalesAs { kRuntimeOutputScales, kBakedOutputScales, kBinaryPostOp };
void BM_Int8LinearScales(benchmark::State& state, ScalesAs scales_as) {
  const memory::dim m = 256, kdim = 768, n = 3072;
  dnnl::primitive_attr attr;
  dnnl::post_ops ops;
  switch (scales_as) {
    case ScalesAs::kRuntimeOutputScales:
      attr.set_output_scales(1 << 1, {DNNL_RUNTIME_F32_VAL});
      break;
    case ScalesAs::kBakedOutputScales:
      attr.set_output_scales(1 << 1, std::vector<float>(n, 0.01F));
      break;
    case ScalesAs::kBinaryPostOp:
      ops.append_binary(dnnl::algorithm::binary_mul,
                        memory::desc({1, n}, memory::data_type::f32, Tag::ab));
      break;
  }
  attr.set_post_ops(ops);
  attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
  memory::desc a_md({m, kdim}, memory::data_type::u8, Tag::ab);
  memory::desc c_md({m, n}, memory::data_type::f32, Tag::ab);
  dnnl::matmul::primitive_desc pd;
  if (!MakePrimitiveDesc(state, pd, [&] {
        return ipt::kernels::detail::MatmulWithPreferredWeights([&](Tag weights_tag) {
          memory::desc b_md({kdim, n}, memory::data_type::s8, weights_tag);
          return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), attr, Engine());
        });
      })) {
    return;
  }
  memory a(pd.src_desc(), Engine()), b(pd.weights_desc(), Engine()), c(pd.dst_desc(), Engine());
  Fill({&a, &b, &c});
  std::vector<float> scales(n, 0.01F);
  int32_t zero_point = 3;
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, a},
      {DNNL_ARG_WEIGHTS, b},
      {DNNL_ARG_DST, c},
      {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC,
       memory({{1}, memory::data_type::s32, Tag::a}, Engine(), &zero_point)}};
  if (scales_as == ScalesAs::kRuntimeOutputScales)
    args.emplace(DNNL_ARG_ATTR_OUTPUT_SCALES,
                 memory({{n}, memory::data_type::f32, Tag::a}, Engine(), scales.data()));
  if (scales_as == ScalesAs::kBinaryPostOp)
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                 memory({{1, n}, memory::data_type::f32, Tag::ab}, Engine(), scales.data()));
  dnnl::matmul mm(pd);
  dnnl::stream stream(Engine());
  for (auto _ : state) {
    mm.execute(stream, args);
    stream.wait();
  }
  SetFlops(state, 2.0 * m * kdim * n);
  state.SetLabel(pd.impl_info_str());
}
BENCHMARK_CAPTURE(BM_Int8LinearScales, runtime_output_scales, ScalesAs::kRuntimeOutputScales)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Int8LinearScales, baked_output_scales, ScalesAs::kBakedOutputScales)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Int8LinearScales, binary_post_op, ScalesAs::kBinaryPostOp)->UseRealTime();

// The same shapes through stock libtorch (aten): what the core has to beat.
void BM_AtenConv3x3(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  auto x = torch::randn({1, 64, 56, 56});
  auto w = torch::randn({64, 64, 3, 3});
  for (auto _ : state) benchmark::DoNotOptimize(at::conv2d(x, w, {}, 1, 1));
  SetFlops(state, 2.0 * 64 * 64 * 9 * 56 * 56);
}
BENCHMARK(BM_AtenConv3x3)->UseRealTime();

void BM_AtenLinearFfn(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  auto x = torch::randn({128, 768});
  auto w = torch::randn({3072, 768});
  for (auto _ : state) benchmark::DoNotOptimize(at::linear(x, w));
  SetFlops(state, 2.0 * 128 * 768 * 3072);
}
BENCHMARK(BM_AtenLinearFfn)->UseRealTime();

// The core's own fused kernels with each post-op against the same kernel without (issue 4: a
// fusion should cost at most 10%). The first argument is the post-ops' spelling, "" for none.
void BM_FusedLinearFfn(benchmark::State& state, const char* post_ops) {
  torch::NoGradGuard no_grad;
  ipt::kernels::LinearContext linear(torch::randn({3072, 768}), torch::randn({3072}),
                                     ipt::kernels::ParsePostOps(post_ops));
  auto x = torch::randn({128, 768});
  at::Tensor accumulator = linear.post_ops().sum ? torch::randn({128, 3072}) : at::Tensor();
  for (auto _ : state) benchmark::DoNotOptimize(linear.Run(x, accumulator));
  SetFlops(state, 2.0 * 128 * 768 * 3072);
}
BENCHMARK_CAPTURE(BM_FusedLinearFfn, none, "")->UseRealTime();
BENCHMARK_CAPTURE(BM_FusedLinearFfn, relu, "relu")->UseRealTime();
BENCHMARK_CAPTURE(BM_FusedLinearFfn, gelu, "gelu")->UseRealTime();
BENCHMARK_CAPTURE(BM_FusedLinearFfn, sum, "sum")->UseRealTime();

// ResNet-50's layer1 3x3 convolution at batch 1, channels-last as the core runs conv nets.
void BM_FusedConv3x3(benchmark::State& state, const char* post_ops) {
  torch::NoGradGuard no_grad;
  ipt::kernels::ConvContext conv(torch::randn({64, 64, 3, 3}), torch::randn({64}),
                                 {{1, 1}, {1, 1}, {1, 1}, 1}, ipt::kernels::ParsePostOps(post_ops),
                                 /*channels_last=*/true);
  auto x = torch::randn({1, 64, 56, 56}).contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor accumulator =
      conv.post_ops().sum ? torch::randn({1, 64, 56, 56}).contiguous(at::MemoryFormat::ChannelsLast)
                          : at::Tensor();
  for (auto _ : state) benchmark::DoNotOptimize(conv.Run(x, accumulator));
  SetFlops(state, 2.0 * 64 * 64 * 9 * 56 * 56);
}
BENCHMARK_CAPTURE(BM_FusedConv3x3, none, "")->UseRealTime();
BENCHMARK_CAPTURE(BM_FusedConv3x3, relu, "relu")->UseRealTime();
BENCHMARK_CAPTURE(BM_FusedConv3x3, sum_relu, "sum+relu")->UseRealTime();
BENCHMARK_CAPTURE(BM_FusedConv3x3, silu, "silu")->UseRealTime();

// BERT-base's residual add + layer norm at bs8 (1024 tokens x 768), against aten's two ops.
// Argument: 0 fp32, 1 bf16 activations (fp32 parameters either way: the kernel widens bf16 ones
// once per call).
void BM_AddLayerNorm(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  const auto dtype = state.range(0) == 1 ? torch::kBFloat16 : torch::kFloat;
  auto a = torch::randn({8, 128, 768}).to(dtype), b = torch::randn({8, 128, 768}).to(dtype);
  auto weight = torch::randn({768}), bias = torch::randn({768});
  for (auto _ : state)
    benchmark::DoNotOptimize(ipt::kernels::AddLayerNorm(a, b, {768}, weight, bias, 1e-12));
}
BENCHMARK(BM_AddLayerNorm)->Arg(0)->Arg(1)->UseRealTime();

void BM_AtenAddLayerNorm(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({8, 128, 768}), b = torch::randn({8, 128, 768});
  auto weight = torch::randn({768}), bias = torch::randn({768});
  for (auto _ : state) benchmark::DoNotOptimize(at::layer_norm(a + b, {768}, weight, bias, 1e-12));
}
BENCHMARK(BM_AtenAddLayerNorm)->UseRealTime();

// DLRM's feature interaction at batch 256 (27 vectors of 128: the dense feature and 26 tables):
// the core's kernel against the stock composition (bmm, flatten, index_select of the pairs).
std::vector<at::Tensor> DlrmFeatures() {
  std::vector<at::Tensor> features;
  for (int i = 0; i < 27; ++i) features.push_back(torch::randn({256, 128}));
  return features;
}

void SetInteractionFlops(benchmark::State& state) {
  SetFlops(state, 2.0 * 256 * 27 * 26 / 2 * 128);
}

void BM_DlrmInteraction(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  auto features = DlrmFeatures();
  for (auto _ : state) benchmark::DoNotOptimize(ipt::kernels::Interaction(features, true));
  SetInteractionFlops(state);
}
BENCHMARK(BM_DlrmInteraction)->UseRealTime();

void BM_AtenDlrmInteraction(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  auto features = DlrmFeatures();
  auto lower = torch::tril_indices(27, 27, -1);
  auto index = lower[0] * 27 + lower[1];
  for (auto _ : state) {
    auto t = torch::cat(features, 1).view({256, 27, 128});
    auto z = torch::index_select(torch::bmm(t, t.transpose(1, 2)).flatten(1), 1, index);
    benchmark::DoNotOptimize(torch::cat({features[0], z}, 1));
  }
  SetInteractionFlops(state);
}
BENCHMARK(BM_AtenDlrmInteraction)->UseRealTime();

// DLRM's embedding bags at batch 256 over the workload's 26 tables (128 wide, 352,122 rows: 180
// MB in fp32, 45 MB in int8), two uniformly drawn rows a bag, so that lookups miss the caches as
// the rare ids of real traffic do. Argument: 0 fp32 tables, 2 int8 tables.
void BM_DlrmEmbeddingBags(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> weights, scales, indices, offsets;
  for (int64_t rows : ipt::workloads::DefaultTableRows()) {
    at::Tensor table = torch::randn({rows, 128});
    if (state.range(0) == 2) {
      auto q = ipt::kernels::QuantizeEmbeddingTable(table);
      weights.push_back(q.data);
      scales.push_back(q.scales);
    } else {
      weights.push_back(table);
    }
    indices.push_back(torch::randint(0, rows, {512}));
    offsets.push_back(torch::arange(0, 512, 2));
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        state.range(0) == 2
            ? ipt::kernels::QuantizedMergedEmbeddingBagSum(weights, scales, indices, offsets)
            : ipt::kernels::MergedEmbeddingBagSum(weights, indices, offsets));
  }
}
BENCHMARK(BM_DlrmEmbeddingBags)->Arg(0)->Arg(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
