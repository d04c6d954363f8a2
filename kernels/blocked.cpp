#include "kernels/blocked.h"

#include <fmt/format.h>

#include "base/error.h"
#include "kernels/buffer_pool.h"
#include "kernels/dnnl_util.h"

namespace ipt::kernels {
namespace {

using dnnl::memory;

void CheckBlock(int64_t block, const char* what) {
  if (block != 8 && block != 16)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: the channel block is 8 or 16, got {}", what, block));
}

// oneDNN's reorder, which is several times faster than aten's strided copy for these permutes;
// aten's copy for the dtypes oneDNN does not have.
bool Reorder(const at::Tensor& from, memory::format_tag from_tag, at::Tensor& to,
             memory::format_tag to_tag, const memory::dims& dims) {
  auto dtype = detail::ToDnnl(from.scalar_type());
  if (!dtype) return false;
  const auto& engine = detail::CpuEngine();
  memory src({dims, *dtype, from_tag}, engine, from.data_ptr());
  memory dst({dims, *dtype, to_tag}, engine, to.data_ptr());
  dnnl::stream stream(engine);
  dnnl::reorder(src, dst).execute(stream, src, dst);
  stream.wait();
  return true;
}

}  // namespace

int64_t PreferredChannelBlock() {
  static const int64_t block = dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core ? 16 : 8;
  return block;
}

at::Tensor ToBlocked(const at::Tensor& x, int64_t block) {
  CheckBlock(block, "ipt to_blocked");
  if (x.dim() != 4 || x.size(1) % block != 0)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt to_blocked: expected [N, C, H, W] with C divisible by {}, got {}",
                            block, detail::Dims(x.sizes())));
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor out = detail::EmptyRecycled({n, c / block, h, w, block}, x.options());
  const bool nhwc = x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous();
  at::Tensor src = nhwc ? x : x.contiguous();
  if (Reorder(src, nhwc ? memory::format_tag::nhwc : memory::format_tag::nchw, out,
              detail::BlockedTag(block), {n, c, h, w}))
    return out;
  out.copy_(src.view({n, c / block, block, h, w}).permute({0, 1, 3, 4, 2}));
  return out;
}

at::Tensor FromBlocked(const at::Tensor& x, bool channels_last) {
  if (x.dim() != 5 || (x.size(4) != 8 && x.size(4) != 16) || !x.is_contiguous())
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt from_blocked: expected a contiguous [N, C/b, H, W, b] with b 8 or "
                            "16, got {}",
                            detail::Dims(x.sizes())));
  const int64_t n = x.size(0), block = x.size(4), c = x.size(1) * block, h = x.size(2),
                w = x.size(3);
  const auto format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::Tensor out = detail::EmptyRecycled({n, c, h, w}, x.options(), format);
  if (Reorder(x, detail::BlockedTag(block), out,
              channels_last ? memory::format_tag::nhwc : memory::format_tag::nchw, {n, c, h, w}))
    return out;
  out.copy_(x.permute({0, 1, 4, 2, 3}).reshape({n, c, h, w}));
  return out;
}

at::Tensor BlockedMaxPool2d(const at::Tensor& x, std::vector<int64_t> kernel_size,
                            std::vector<int64_t> stride, std::vector<int64_t> padding,
                            std::vector<int64_t> dilation, bool ceil_mode) {
  if (x.dim() != 5 || (x.size(4) != 8 && x.size(4) != 16))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt blocked_max_pool2d: expected [N, C/b, H, W, b] with b 8 or 16, "
                            "got {}",
                            detail::Dims(x.sizes())));
  const int64_t n = x.size(0), groups = x.size(1), h = x.size(2), w = x.size(3), block = x.size(4);
  // Each channel block is an image of `block` channels in channels-last order, which aten's
  // max_pool2d takes as it is and answers in the same order: no copy either way.
  at::Tensor images = x.contiguous().view({n * groups, h, w, block}).permute({0, 3, 1, 2});
  at::Tensor pooled = at::max_pool2d(images, kernel_size, stride, padding, dilation, ceil_mode);
  return pooled.permute({0, 2, 3, 1})
      .contiguous()
      .view({n, groups, pooled.size(2), pooled.size(3), block});
}

}  // namespace ipt::kernels
