#include "kernels/pool.h"

#include <fmt/format.h>

#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>

#include "base/error.h"
#include "kernels/buffer_pool.h"
#include "kernels/dnnl_util.h"

namespace ipt::kernels {
namespace {

using dnnl::memory;

// One value per spatial dimension: aten takes a single value for both.
std::vector<int64_t> Pair(std::vector<int64_t> values, const char* name,
                          const std::vector<int64_t>& when_empty) {
  if (values.empty() && !when_empty.empty()) return when_empty;
  if (values.size() == 1) values.push_back(values[0]);
  if (values.size() != 2)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt qmax_pool2d: {} takes one or two values, got {}", name,
                            detail::Dims(values)));
  return values;
}

// aten's pooling_output_shape: in ceil mode the last window must start inside the input or its
// left padding.
int64_t OutputSize(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                   bool ceil_mode) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

struct Geometry {
  std::vector<int64_t> kernel, stride, padding, dilation;
  int64_t out_h, out_w;
};

struct Plan {
  dnnl::pooling_v2_forward primitive;
  memory::desc src, dst, scratchpad;
};

// The plan for a geometry and OpenMP thread count (a primitive splits its work for the count it
// was made with), built once: null where oneDNN refuses it.
std::shared_ptr<const Plan> PlanFor(const at::Tensor& x, const Geometry& g) {
  static std::mutex mutex;
  static std::map<std::vector<int64_t>, std::shared_ptr<const Plan>> plans;
  std::vector<int64_t> key(x.sizes().begin(), x.sizes().end());
  for (const auto* v : {&g.kernel, &g.stride, &g.padding, &g.dilation})
    key.insert(key.end(), v->begin(), v->end());
  key.push_back(at::get_num_threads());
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = plans.find(key); it != plans.end()) return it->second;
  std::shared_ptr<const Plan> plan;
  const memory::dims src_dims = {x.size(0), x.size(1), x.size(2), x.size(3)};
  const memory::dims dst_dims = {x.size(0), x.size(1), g.out_h, g.out_w};
  memory::dims right(2);
  const int64_t out[2] = {g.out_h, g.out_w};
  for (int d = 0; d < 2; ++d)
    right[d] = (out[d] - 1) * g.stride[d] + g.dilation[d] * (g.kernel[d] - 1) + 1 - x.size(2 + d) -
               g.padding[d];
  if (right[0] >= 0 && right[1] >= 0) {
    try {
      memory::desc src(src_dims, memory::data_type::u8, memory::format_tag::nhwc);
      memory::desc dst(dst_dims, memory::data_type::u8, memory::format_tag::nhwc);
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      // oneDNN counts dilation from 0 (no gap), aten from 1.
      dnnl::pooling_v2_forward::desc desc(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, src, dst,
          {g.stride[0], g.stride[1]}, {g.kernel[0], g.kernel[1]},
          {g.dilation[0] - 1, g.dilation[1] - 1}, {g.padding[0], g.padding[1]}, right);
      dnnl::pooling_v2_forward::primitive_desc pd(desc, attr, detail::CpuEngine());
      plan = std::make_shared<const Plan>(
          Plan{dnnl::pooling_v2_forward(pd), src, dst, pd.scratchpad_desc()});
    } catch (const dnnl::error& e) {
      detail::LogFallback("qmax_pool2d " + detail::Dims(x.sizes()),
                          fmt::format("oneDNN has no pooling for it ({}); aten's runs", e.what()));
    }
  } else {
    detail::LogFallback("qmax_pool2d " + detail::Dims(x.sizes()),
                        "ceil mode leaves a window short of the input's end; aten's runs");
  }
  plans.emplace(std::move(key), plan);
  return plan;
}

}  // namespace

at::Tensor QuantizedMaxPool2d(const at::Tensor& x, std::vector<int64_t> kernel_size,
                              std::vector<int64_t> stride, std::vector<int64_t> padding,
                              std::vector<int64_t> dilation, bool ceil_mode) {
  if (x.scalar_type() != at::kByte || x.dim() != 4)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt qmax_pool2d: expected a uint8 [N, C, H, W], got {} {}",
                            c10::toString(x.scalar_type()), detail::Dims(x.sizes())));
  Geometry g;
  g.kernel = Pair(std::move(kernel_size), "kernel_size", {});
  g.stride = Pair(std::move(stride), "stride", g.kernel);
  g.padding = Pair(std::move(padding), "padding", {});
  g.dilation = Pair(std::move(dilation), "dilation", {});
  for (int d = 0; d < 2; ++d) {
    if (g.kernel[d] <= 0 || g.stride[d] <= 0 || g.dilation[d] <= 0 || g.padding[d] < 0 ||
        g.padding[d] > g.kernel[d] / 2)
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("ipt qmax_pool2d: kernel {}, stride {} and dilation {} must be "
                              "positive and padding {} at most half the kernel",
                              detail::Dims(g.kernel), detail::Dims(g.stride),
                              detail::Dims(g.dilation), detail::Dims(g.padding)));
  }
  g.out_h = OutputSize(x.size(2), g.kernel[0], g.stride[0], g.padding[0], g.dilation[0], ceil_mode);
  g.out_w = OutputSize(x.size(3), g.kernel[1], g.stride[1], g.padding[1], g.dilation[1], ceil_mode);
  if (g.out_h <= 0 || g.out_w <= 0)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt qmax_pool2d: the result of pooling {} with kernel {} would be "
                            "empty",
                            detail::Dims(x.sizes()), detail::Dims(g.kernel)));

  std::shared_ptr<const Plan> plan = PlanFor(x, g);
  if (!plan || x.numel() == 0) {
    // Bytes are exact as floats, and the float maximum of them is one of them.
    return at::max_pool2d(x.to(at::kFloat), g.kernel, g.stride, g.padding, g.dilation, ceil_mode)
        .to(at::kByte)
        .contiguous(at::MemoryFormat::ChannelsLast);
  }
  at::Tensor src = x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor out = detail::EmptyRecycled({x.size(0), x.size(1), g.out_h, g.out_w}, x.options(),
                                         at::MemoryFormat::ChannelsLast);
  const auto& engine = detail::CpuEngine();
  detail::Execute(plan->primitive, plan->scratchpad,
                  {{DNNL_ARG_SRC, memory(plan->src, engine, src.data_ptr())},
                   {DNNL_ARG_DST, memory(plan->dst, engine, out.data_ptr())}});
  return out;
}

}  // namespace ipt::kernels
