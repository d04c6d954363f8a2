#include "workloads/accuracy.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "base/error.h"
#include "base/sha256.h"

namespace ipt::workloads {
namespace {

constexpr const char* kCacheMagic = "ipex-tune reference v1";

double Fraction(const at::Tensor& matches) { return matches.to(at::kDouble).mean().item<double>(); }

void HashValue(Sha256& hash, const torch::jit::IValue& value) {
  if (value.isTensor()) {
    at::Tensor t = value.toTensor().contiguous().cpu();
    hash.Update(fmt::format("tensor {} {}\n", t.sizes(), c10::toString(t.scalar_type())));
    hash.Update(t.data_ptr(), t.nbytes());
  } else if (value.isList()) {
    auto list = value.toListRef();
    hash.Update(fmt::format("list {}\n", list.size()));
    for (const auto& element : list) HashValue(hash, element);
  } else if (value.isTuple()) {
    const auto& elements = value.toTupleRef().elements();
    hash.Update(fmt::format("tuple {}\n", elements.size()));
    for (const auto& element : elements) HashValue(hash, element);
  } else {
    // Scalars, strings, None: their printed form is exact enough for a key.
    std::ostringstream text;
    text << value.tagKind() << " " << value << "\n";
    hash.Update(text.str());
  }
}

std::string ShapeText(at::IntArrayRef sizes) { return fmt::format("{}", fmt::join(sizes, " ")); }

// Reads a cache file; returns the tensor, or nullopt with `why` when it cannot be trusted.
std::optional<at::Tensor> ReadReference(const std::filesystem::path& file, const std::string& key,
                                        std::string& why) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    why = "cannot be opened";
    return std::nullopt;
  }
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream header(data);
  std::string magic, key_line, shape_line, sum_line;
  if (!std::getline(header, magic) || magic != kCacheMagic || !std::getline(header, key_line) ||
      !std::getline(header, shape_line) || !std::getline(header, sum_line)) {
    why = "has no valid header";
    return std::nullopt;
  }
  if (key_line != "key " + key) {
    why = "is for another key";
    return std::nullopt;
  }
  std::istringstream shape_text(shape_line);
  std::string word;
  std::vector<int64_t> sizes;
  int64_t numel = 1;
  shape_text >> word;
  for (int64_t d = 0; shape_text >> d;) {
    if (d < 0 || (d > 0 && numel > (int64_t{1} << 40) / d)) break;
    sizes.push_back(d);
    numel *= d;
  }
  if (word != "shape" || !shape_text.eof() || sizes.empty()) {
    why = "has a malformed shape";
    return std::nullopt;
  }
  if (sum_line.rfind("sha256 ", 0) != 0) {
    why = "has no checksum";
    return std::nullopt;
  }
  auto payload_start = static_cast<size_t>(header.tellg());
  size_t payload_bytes = data.size() - payload_start;
  if (payload_bytes != static_cast<size_t>(numel) * sizeof(float)) {
    why = fmt::format("holds {} bytes of outputs where its shape needs {}", payload_bytes,
                      numel * static_cast<int64_t>(sizeof(float)));
    return std::nullopt;
  }
  Sha256 sum;
  sum.Update(data.data() + payload_start, payload_bytes);
  if (sum_line != "sha256 " + sum.HexDigest()) {
    why = "fails its checksum";
    return std::nullopt;
  }
  at::Tensor t = at::empty(sizes, at::kFloat);
  std::memcpy(t.data_ptr(), data.data() + payload_start, payload_bytes);
  return t;
}

// Writes `outputs` as `file`; returns an empty string, or why it could not.
std::string WriteReference(const std::filesystem::path& file, const std::string& key,
                           const at::Tensor& outputs) {
  const char* payload = static_cast<const char*>(outputs.data_ptr());
  size_t payload_bytes = outputs.nbytes();
  Sha256 sum;
  sum.Update(payload, payload_bytes);
  std::string header = fmt::format("{}\nkey {}\nshape {}\nsha256 {}\n", kCacheMagic, key,
                                   ShapeText(outputs.sizes()), sum.HexDigest());
  return WriteFileAtomically(file, [&](const AppendFn& append) {
    append(header.data(), header.size());
    append(payload, payload_bytes);
  });
}

}  // namespace

EvalSet DefaultEvalSet(int64_t batch, double flops_per_item) {
  if (batch < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("the evaluation set needs a batch of at least 1, got {}", batch));
  }
  int64_t batches = (kMinEvalItems + batch - 1) / batch;
  if (flops_per_item > 0) {
    auto affordable =
        static_cast<int64_t>(std::ceil(kEvalFlops / (flops_per_item * static_cast<double>(batch))));
    batches = std::min(batches, affordable);
  }
  return {batch, std::max(kMinEvalBatches, batches)};
}

EvalSet EvalSetOfAtLeast(int64_t batch, int64_t items) {
  if (items < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("the evaluation set needs at least 1 item, got {}", items));
  }
  EvalSet set = DefaultEvalSet(batch);
  set.batches = std::max(kMinEvalBatches, (items + batch - 1) / batch);
  return set;
}

at::Tensor OutputTensor(const torch::jit::IValue& output) {
  if (output.isTensor()) {
    at::Tensor t = output.toTensor().detach().to(at::kCPU, at::kFloat).contiguous();
    return t.dim() == 0 ? t.reshape({1}) : t;
  }
  if (output.isTuple()) {
    for (const auto& element : output.toTupleRef().elements()) {
      if (element.isTensor() || element.isTuple() || element.isList()) return OutputTensor(element);
    }
  }
  if (output.isList()) {
    for (const auto& element : output.toListRef()) {
      if (element.isTensor() || element.isTuple() || element.isList()) return OutputTensor(element);
    }
  }
  throw Error(ErrorCode::kUnsupported, "the model's output holds no tensor");
}

at::Tensor RunEvalSet(const Workload& workload, const EvalSet& set, const RunFn& run) {
  std::vector<at::Tensor> outputs;
  for (int64_t i = 0; i < set.batches; ++i) {
    outputs.push_back(OutputTensor(run(workload.MakeInputs(set.batch, i))));
  }
  return at::cat(outputs);
}

const char* MetricKindName(MetricKind kind) {
  switch (kind) {
    case MetricKind::kTopK:
      return "top_k";
    case MetricKind::kClasses:
      return "classes";
    case MetricKind::kProbability:
      return "probability";
    case MetricKind::kGeneric:
      return "generic";
  }
  return "unknown";
}

Accuracy CompareOutputs(MetricKind kind, const at::Tensor& reference, const at::Tensor& candidate) {
  if (reference.sizes() != candidate.sizes() || reference.dim() == 0 || reference.size(0) == 0) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("cannot compare outputs of shape [{}] with the reference's [{}]",
                    fmt::join(candidate.sizes(), ", "), fmt::join(reference.sizes(), ", ")));
  }
  const int64_t items = reference.size(0);
  at::Tensor ref = reference.to(at::kDouble).reshape({items, -1});
  at::Tensor got = candidate.to(at::kDouble).reshape({items, -1});
  Accuracy a;
  a.kind = kind;
  a.items = items;
  double ref_norm = ref.norm().item<double>();
  double got_norm = got.norm().item<double>();
  double dot = (ref * got).sum().item<double>();
  a.cosine = ref_norm == 0 && got_norm == 0 ? 1.0 : dot / std::max(ref_norm * got_norm, 1e-300);
  a.relative_l2 = (got - ref).norm().item<double>() / std::max(ref_norm, 1e-12);
  a.max_abs_error = (got - ref).abs().max().item<double>();
  a.distance_ok = got.isfinite().all().item<bool>() && a.relative_l2 <= kMaxRelativeL2;

  const int64_t columns = ref.size(1);
  a.top1_agreement = Fraction(ref.argmax(1) == got.argmax(1));
  double agreement = a.top1_agreement;
  switch (kind) {
    case MetricKind::kTopK: {
      at::Tensor top5 = std::get<1>(got.topk(std::min<int64_t>(5, columns), 1));
      a.top5_agreement = Fraction((top5 == ref.argmax(1, /*keepdim=*/true)).any(1));
      break;
    }
    case MetricKind::kClasses:
      a.class_agreement = a.top1_agreement;
      break;
    case MetricKind::kProbability:
      a.agreement_at_half = agreement = Fraction((ref > 0.5) == (got > 0.5));
      break;
    case MetricKind::kGeneric:
      if (reference.dim() != 2 || columns < 2) agreement = 1 - std::min(1.0, a.relative_l2);
      break;
  }
  a.loss = a.distance_ok ? 1 - agreement : 1.0;
  return a;
}

std::filesystem::path ReferenceCacheDir(const char* ipt_cache_dir, const char* xdg_cache_home,
                                        const char* home) {
  std::filesystem::path root = CacheRoot(ipt_cache_dir, xdg_cache_home, home);
  return root.empty() ? root : root / "references";
}

std::string ReferenceKey(const std::string& model_hash, const Workload& workload,
                         const EvalSet& set) {
  Sha256 hash;
  hash.Update(fmt::format("{}\nmodel {}\nworkload {}\nmetric {}\nbatch {}\nbatches {}\n",
                          kCacheMagic, model_hash, workload.name(),
                          static_cast<int>(workload.Metric()), set.batch, set.batches));
  for (int64_t i = 0; i < set.batches; ++i) {
    for (const auto& input : workload.MakeInputs(set.batch, i)) HashValue(hash, input);
  }
  return hash.HexDigest();
}

CachedReference LoadOrComputeReference(const std::filesystem::path& dir, const std::string& key,
                                       const std::function<at::Tensor()>& compute) {
  CachedReference r;
  std::error_code ec;
  if (!dir.empty()) {
    r.file = dir / (key + ".ref");
    if (std::filesystem::exists(r.file, ec)) {
      std::string why;
      if (std::optional<at::Tensor> cached = ReadReference(r.file, key, why)) {
        r.outputs = *cached;
        r.outcome = CacheOutcome::kHit;
        return r;
      }
      r.outcome = CacheOutcome::kCorrupt;
      r.warning = fmt::format("reference cache file {} {}: recomputed", r.file.string(), why);
    }
  }
  r.outputs = compute().detach().to(at::kCPU, at::kFloat).contiguous();
  if (r.outputs.dim() == 0) r.outputs = r.outputs.reshape({1});
  if (dir.empty()) {
    r.outcome = CacheOutcome::kNotStored;
    r.warning = "no reference cache directory (set IPT_CACHE_DIR or HOME)";
    return r;
  }
  std::string why = WriteReference(r.file, key, r.outputs);
  if (!why.empty()) {
    r.outcome = CacheOutcome::kNotStored;
    r.warning = (r.warning.empty() ? "" : r.warning + "; ") + "not stored: " + why;
  }
  return r;
}

}  // namespace ipt::workloads
