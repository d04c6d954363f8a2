#include "kernels/matmul.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/dnnl_util.h"

namespace ipt::kernels {
namespace {

using dnnl::memory;

// How the addend joins the product. oneDNN's matmul takes a bias of one row broadcast over
// every other dimension (not a scalar); an addend of the product's full shape goes in through the
// sum post-op (the destination starts as its copy); any other broadcast is added after the
// primitive, in place.
enum class AddendMode { kNone, kBias, kSum, kAfter };

AddendMode AddendModeFor(const memory::dims& addend, const memory::dims& out) {
  if (addend.empty()) return AddendMode::kNone;
  if (addend == out) return AddendMode::kSum;
  const bool row = addend.back() == out.back() &&
                   std::all_of(addend.begin(), addend.end() - 1, [](int64_t d) { return d == 1; });
  return row ? AddendMode::kBias : AddendMode::kAfter;
}

struct Plan {
  dnnl::matmul primitive;
  AddendMode addend;
  at::ScalarType compute;
  bool contiguous;  // the operands are copied to dense row-major first
  memory::desc a_desc, b_desc, bias_desc, dst_desc, scratchpad_desc;
};

// A stream of calls with ever new shapes (a server's sequence lengths) would grow the cache
// without end; past this many plans it starts again. A plan is a primitive of a few KB that
// takes well under a millisecond to make.
constexpr size_t kMaxPlans = 4096;

std::mutex& CacheMutex() {
  static std::mutex mutex;
  return mutex;
}

// Key: the operands' padded sizes and strides, dtypes, the addend's sizes and the thread count.
// A null plan records a case that runs the aten composition.
std::map<std::vector<int64_t>, std::shared_ptr<const Plan>>& Cache() {
  static std::map<std::vector<int64_t>, std::shared_ptr<const Plan>> cache;
  return cache;
}

struct Layout {
  memory::dims dims;
  memory::dims strides;
};

// `t`'s sizes and strides with leading dimensions of size 1 up to `rank`, as oneDNN's matmul
// wants its operands: all of one rank, a 1 where a batch dimension broadcasts.
Layout Padded(const at::Tensor& t, int64_t rank) {
  Layout layout;
  const int64_t extent = std::max<int64_t>(t.numel(), 1);
  for (int64_t i = t.dim(); i < rank; ++i) {
    layout.dims.push_back(1);
    layout.strides.push_back(extent);
  }
  for (int64_t i = 0; i < t.dim(); ++i) {
    layout.dims.push_back(t.size(i));
    // A broadcast (expanded) dimension of size 1 may carry any stride; oneDNN wants a real one.
    layout.strides.push_back(t.size(i) == 1 ? extent : t.stride(i));
  }
  return layout;
}

memory::dims DenseStrides(const memory::dims& dims) {
  memory::dims strides(dims.size());
  int64_t stride = 1;
  for (size_t i = dims.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= std::max<int64_t>(dims[i], 1);
  }
  return strides;
}

// Whether oneDNN can read `layout` in place: one of the last two dimensions dense, and no
// expanded (stride 0) dimension.
bool StridedReadable(const Layout& layout) {
  const size_t r = layout.dims.size();
  if (layout.strides[r - 1] != 1 && layout.strides[r - 2] != 1) return false;
  return std::none_of(layout.strides.begin(), layout.strides.end(),
                      [](int64_t s) { return s == 0; });
}

std::shared_ptr<const Plan> PlanFor(const Layout& a, const Layout& b, const memory::dims& bias,
                                    const memory::dims& out, at::ScalarType dtype) {
  std::vector<int64_t> key = {static_cast<int64_t>(dtype), at::get_num_threads()};
  for (const memory::dims* part : {&a.dims, &a.strides, &b.dims, &b.strides, &bias}) {
    key.push_back(-1);  // separates the parts, which may differ in length
    key.insert(key.end(), part->begin(), part->end());
  }
  std::lock_guard<std::mutex> lock(CacheMutex());
  auto& cache = Cache();
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  if (cache.size() >= kMaxPlans) cache.clear();

  // In order: the operands as they are, then dense copies (what a strided case needs when
  // oneDNN has only its reference kernel for it), then fp32 where the CPU has no fast bf16.
  struct Attempt {
    memory::data_type type;
    bool contiguous;
  };
  const memory::data_type native = *detail::ToDnnl(dtype);
  std::vector<Attempt> attempts;
  if (StridedReadable(a) && StridedReadable(b)) attempts.push_back({native, false});
  attempts.push_back({native, true});
  if (native != memory::data_type::f32) attempts.push_back({memory::data_type::f32, true});
  std::string refused = "no kernel but oneDNN's reference one";
  for (const Attempt& attempt : attempts) {
    auto desc = [&](const Layout& layout) {
      return memory::desc(layout.dims, attempt.type,
                          attempt.contiguous ? DenseStrides(layout.dims) : layout.strides);
    };
    auto plan = std::make_shared<Plan>();
    plan->compute = attempt.type == memory::data_type::f32 ? at::kFloat : at::kBFloat16;
    plan->contiguous = attempt.contiguous;
    plan->a_desc = desc(a);
    plan->b_desc = desc(b);
    plan->dst_desc = memory::desc(out, attempt.type, DenseStrides(out));
    plan->addend = AddendModeFor(bias, out);
    if (plan->addend == AddendMode::kBias)
      plan->bias_desc = memory::desc(bias, attempt.type, DenseStrides(bias));
    PostOps post_ops;
    post_ops.sum = plan->addend == AddendMode::kSum;
    try {
      dnnl::matmul::primitive_desc pd(
          dnnl::matmul::desc(plan->a_desc, plan->b_desc, plan->bias_desc, plan->dst_desc),
          detail::MakeAttr(post_ops), detail::CpuEngine());
      // oneDNN's reference matmul is slower than aten's BLAS call: never take it.
      if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) continue;
      plan->primitive = dnnl::matmul(pd);
      plan->scratchpad_desc = pd.scratchpad_desc();
    } catch (const dnnl::error& e) {
      refused = e.what();
      continue;
    }
    if (attempt.type != native) {
      detail::LogFallback(fmt::format("matmul {}", detail::Dims(out)),
                          "no fast bf16 matmul on this CPU: computed in fp32");
    }
    return cache[key] = plan;
  }
  detail::LogFallback(fmt::format("matmul {}", detail::Dims(out)),
                      fmt::format("aten fallback: oneDNN has {}", refused));
  return cache[key] = nullptr;
}

at::Tensor Reference(const at::Tensor& a, const at::Tensor& b, const at::Tensor& addend) {
  at::Tensor out = at::matmul(a, b);
  return addend.defined() ? out + addend : out;
}

}  // namespace

at::Tensor Matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& addend) {
  if (a.dim() < 2 || b.dim() < 2 || a.scalar_type() != b.scalar_type() ||
      !detail::ToDnnl(a.scalar_type()) || a.size(-1) != b.size(-2) || a.numel() == 0 ||
      b.numel() == 0) {
    return Reference(a, b, addend);
  }
  const int64_t rank = std::max(a.dim(), b.dim());
  // An addend of another dtype with dimensions of its own promotes the result in aten (fp32 +
  // fp64 is fp64): aten keeps those semantics.
  if (rank > DNNL_MAX_NDIMS ||
      (addend.defined() &&
       (addend.dim() > rank || (addend.dim() > 0 && addend.scalar_type() != a.scalar_type())))) {
    return Reference(a, b, addend);
  }
  const Layout a_layout = Padded(a, rank), b_layout = Padded(b, rank);
  memory::dims out(rank);
  for (int64_t i = 0; i < rank - 2; ++i) {
    const int64_t da = a_layout.dims[i], db = b_layout.dims[i];
    // aten::matmul says what is wrong with batch dimensions that do not broadcast.
    if (da != db && da != 1 && db != 1) return Reference(a, b, addend);
    out[i] = std::max(da, db);
  }
  out[rank - 2] = a.size(-2);
  out[rank - 1] = b.size(-1);
  memory::dims bias;
  if (addend.defined()) {
    bias = Padded(addend, rank).dims;
    for (int64_t i = 0; i < rank; ++i) {
      if (bias[i] != 1 && bias[i] != out[i]) return Reference(a, b, addend);
    }
  }
  std::shared_ptr<const Plan> plan = PlanFor(a_layout, b_layout, bias, out, a.scalar_type());
  if (!plan) return Reference(a, b, addend);

  auto operand = [&](const at::Tensor& t) {
    return plan->contiguous ? t.to(plan->compute).contiguous() : t;
  };
  const at::Tensor a_in = operand(a), b_in = operand(b);
  at::Tensor dst = plan->addend == AddendMode::kSum
                       ? addend.to(plan->compute, /*non_blocking=*/false, /*copy=*/true,
                                   at::MemoryFormat::Contiguous)
                       : at::empty(out, a.options().dtype(plan->compute));
  const auto& engine = detail::CpuEngine();
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(plan->a_desc, engine, a_in.data_ptr())},
      {DNNL_ARG_WEIGHTS, memory(plan->b_desc, engine, b_in.data_ptr())},
      {DNNL_ARG_DST, memory(plan->dst_desc, engine, dst.data_ptr())}};
  at::Tensor bias_in;
  if (plan->addend == AddendMode::kBias) {
    bias_in = addend.to(plan->compute).contiguous();
    args.emplace(DNNL_ARG_BIAS, memory(plan->bias_desc, engine, bias_in.data_ptr()));
  }
  detail::Execute(plan->primitive, plan->scratchpad_desc, std::move(args));
  if (plan->addend == AddendMode::kAfter) dst.add_(addend.to(plan->compute));
  return dst.scalar_type() == a.scalar_type() ? dst : dst.to(a.scalar_type());
}

}  // namespace ipt::kernels
