// DLRM as MLPerf runs it (dlrm_s_pytorch.py, Criteo Terabyte shape), written as TorchScript
// source over registered parameters so that the graph holds the plain aten ops (linear, relu,
// embedding_bag, bmm, index_select, cat) that the core's passes rewrite. Parameter names are the
// reference's state_dict keys with "." replaced by "_" (bot_l_0, emb_l_3, top_l_8, ...).
#include "workloads/dlrm.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <utility>

#include "base/error.h"
#include "workloads/seeded.h"

namespace ipt::workloads {
namespace {

constexpr int64_t kDefaultMaxRows = 30000;
constexpr int64_t kMinFittedRows = 1000;
constexpr int64_t kMaxBagSize = 3;
constexpr double kEmptyBagProbability = 1.0 / 32;
constexpr double kZipfExponent = 1.05;
constexpr int64_t kCalibrationSamples = 512;
// A prime above any table size, so coprime with it: multiplying ranks by it modulo the rows
// permutes them.
constexpr uint64_t kRowPermutation = 2654435761u;

double UniformDouble(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1p-53; }

// Walks the architecture once: emits the TorchScript source of the body of forward (leaving the
// logit before the sigmoid in `x`), collects each parameter it names (unless `init` is false,
// which only counts FLOPs) and counts FLOPs.
class Builder {
 public:
  Builder(bool init, uint64_t seed) : init_(init), seed_(seed) {}

  void Linear(const std::string& out, const std::string& in, const std::string& name,
              int64_t in_features, int64_t out_features) {
    flops_ += 2.0 * static_cast<double>(in_features * out_features);
    Line(fmt::format("{} = torch.linear({}, self.{}_weight, self.{}_bias)", out, in, name, name));
    if (!init_) return;
    double weight_std = std::sqrt(2.0 / static_cast<double>(in_features + out_features));
    double bias_std = std::sqrt(1.0 / static_cast<double>(out_features));
    Param(name + "_weight",
          Normal({out_features, in_features}, 0.0, weight_std, seed_, name + "_weight"));
    Param(name + "_bias", Normal({out_features}, 0.0, bias_std, seed_, name + "_bias"));
  }

  void EmbeddingBag(const std::string& out, int64_t table, int64_t rows, int64_t dim) {
    const std::string name = fmt::format("emb_l_{}", table);
    Line(
        fmt::format("{} = torch.embedding_bag(self.{}_weight, indices[{}], offsets[{}], False, 0, "
                    "False, None, False)[0]",
                    out, name, table, table));
    if (!init_) return;
    double bound = std::sqrt(1.0 / static_cast<double>(rows));
    Param(name + "_weight", Uniform({rows, dim}, -bound, bound, seed_, name + "_weight"));
  }

  void CountBmm(int64_t rows, int64_t dim) {
    flops_ += 2.0 * static_cast<double>(rows * rows * dim);
  }

  void Buffer(const std::string& name, const at::Tensor& value) {
    if (init_) buffers_.emplace_back(name, value);
  }

  void Line(const std::string& text) { source_ += "    " + text + "\n"; }

  // Registers the collected tensors (the same storage each time) on `module` and defines its
  // forward, returning `result`.
  void DefineOn(torch::jit::Module& module, const std::string& result) const {
    for (const auto& [name, value] : params_) module.register_parameter(name, value, false);
    for (const auto& [name, value] : buffers_) module.register_buffer(name, value);
    module.define("def forward(self, dense, indices: List[Tensor], offsets: List[Tensor]):\n" +
                  source_ + "    return " + result + "\n");
    module.eval();
  }
  double flops() const { return flops_; }

 private:
  void Param(const std::string& name, const at::Tensor& value) {
    params_.emplace_back(name, value);
  }

  bool init_;
  uint64_t seed_;
  std::string source_;
  double flops_ = 0;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<std::pair<std::string, at::Tensor>> buffers_;
};

// Flat positions (i * features + j, j < i) of the strictly lower triangle of the features x
// features interaction matrix, in the reference's order.
at::Tensor LowerTriangleIndex(int64_t features) {
  std::vector<int64_t> index;
  for (int64_t i = 0; i < features; ++i) {
    for (int64_t j = 0; j < i; ++j) index.push_back(i * features + j);
  }
  return at::tensor(index, at::kLong);
}

// The whole network, written through `b`.
void BuildDlrm(Builder& b, const DlrmConfig& c) {
  const auto tables = static_cast<int64_t>(c.table_rows.size());
  const int64_t dim = c.bottom_mlp.back();
  b.Line("batch = dense.size(0)");
  int64_t width = c.dense_features;
  std::string in = "dense";
  for (size_t i = 0; i < c.bottom_mlp.size(); ++i) {
    b.Linear("x", in, fmt::format("bot_l_{}", 2 * i), width, c.bottom_mlp[i]);
    b.Line("x = torch.relu(x)");
    width = c.bottom_mlp[i];
    in = "x";
  }
  std::string features = "x";
  for (int64_t t = 0; t < tables; ++t) {
    b.EmbeddingBag(fmt::format("e{}", t), t, c.table_rows[t], dim);
    features += fmt::format(", e{}", t);
  }
  const int64_t vectors = tables + 1;
  b.Line(fmt::format("t = torch.cat([{}], 1).view([batch, {}, {}])", features, vectors, dim));
  b.CountBmm(vectors, dim);
  b.Line("z = torch.bmm(t, torch.transpose(t, 1, 2))");
  b.Buffer("interaction_index", LowerTriangleIndex(vectors));
  b.Line("z = torch.index_select(z.flatten(1), 1, self.interaction_index)");
  b.Line("x = torch.cat([x, z], 1)");
  width = dim + vectors * (vectors - 1) / 2;
  for (size_t i = 0; i < c.top_mlp.size(); ++i) {
    b.Linear("x", "x", fmt::format("top_l_{}", 2 * i), width, c.top_mlp[i]);
    if (i + 1 < c.top_mlp.size()) b.Line("x = torch.relu(x)");
    width = c.top_mlp[i];
  }
}

int64_t MemAvailableBytes() {
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    std::istringstream fields(line);
    std::string key;
    int64_t kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") return kib * 1024;
  }
  throw Error(ErrorCode::kUnsupported, "dlrm mlperf_size: no MemAvailable in /proc/meminfo");
}

void Validate(const DlrmConfig& c) {
  auto positive = [](const std::vector<int64_t>& v) {
    return !v.empty() && std::all_of(v.begin(), v.end(), [](int64_t x) { return x > 0; });
  };
  if (c.dense_features < 1 || !positive(c.bottom_mlp) || !positive(c.top_mlp) ||
      !positive(c.table_rows) || c.top_mlp.back() != 1) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: dense_features, MLP widths and table rows must be positive and "
                            "the top MLP must end in 1",
                            c.name));
  }
  if (c.mlperf_size && !(c.memory_fraction > 0 && c.memory_fraction <= 1)) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("{}: memory_fraction must be in (0, 1], got {}", c.name, c.memory_fraction));
  }
}

class Dlrm : public Workload {
 public:
  Dlrm(const DlrmConfig& config, const WorkloadOptions& options)
      : config_(config), options_(options) {
    Validate(config_);
    if (config_.mlperf_size) {
      constexpr int64_t kGiB = int64_t{1} << 30;
      const int64_t whole_gib = MemAvailableBytes() / kGiB * kGiB;
      auto budget = static_cast<int64_t>(config_.memory_fraction * static_cast<double>(whole_gib));
      config_.table_rows = FitTableRows(MlperfTableRows(), config_.bottom_mlp.back(), budget);
    }
  }

  const std::string& name() const override { return config_.name; }

  // table_rows as fitted: with mlperf_size they depend on the memory of the machine.
  std::string BuildDescription() const override {
    return fmt::format("{} dlrm dense={} bottom=[{}] top=[{}] tables=[{}] seed={}", config_.name,
                       config_.dense_features, fmt::join(config_.bottom_mlp, " "),
                       fmt::join(config_.top_mlp, " "), fmt::join(config_.table_rows, " "),
                       options_.seed);
  }

  torch::jit::Module BuildModel() const override {
    Builder b(/*init=*/true, options_.seed);
    BuildDlrm(b, config_);
    Calibrate(b);
    torch::jit::Module module("DLRM_Net");
    b.DefineOn(module, "torch.sigmoid(x)");
    return module;
  }

  std::vector<torch::jit::IValue> MakeInputs(int64_t batch, int64_t index) const override {
    return MakeBatch(batch, options_.seed ^ 0x5eed, "samples/" + std::to_string(index));
  }

  double FlopsPerItem() const override {
    Builder b(/*init=*/false, options_.seed);
    BuildDlrm(b, config_);
    return b.flops();
  }

  std::vector<recipes::InputSpec> DescribeInputs(int64_t batch) const override {
    // indices and offsets are lists of one tensor per table; a bag holds about 2 ids on
    // average, so the indices' second dimension is an expectation, not a fixed size.
    const auto tables = static_cast<int64_t>(config_.table_rows.size());
    return {{"dense", {batch, config_.dense_features}, "float32"},
            {"indices", {tables, 2 * batch}, "int64"},
            {"offsets", {tables, batch}, "int64"}};
  }

  MetricKind Metric() const override { return MetricKind::kProbability; }

 private:
  std::vector<torch::jit::IValue> MakeBatch(int64_t batch, uint64_t seed,
                                            const std::string& name) const {
    auto generator = SeededGenerator(seed, name + "/dense");
    at::Tensor dense =
        at::empty({batch, config_.dense_features}, at::kFloat).normal_(0, 1, generator).exp_();
    c10::List<at::Tensor> indices;
    c10::List<at::Tensor> offsets;
    for (size_t t = 0; t < config_.table_rows.size(); ++t) {
      const uint64_t rows = config_.table_rows[t];
      std::mt19937_64 rng(DerivedSeed(seed, fmt::format("{}/sparse/{}", name, t)));
      ZipfSampler zipf(static_cast<int64_t>(rows), kZipfExponent);
      std::vector<int64_t> bag_ids;
      std::vector<int64_t> bag_offsets;
      for (int64_t i = 0; i < batch; ++i) {
        bag_offsets.push_back(static_cast<int64_t>(bag_ids.size()));
        if (UniformDouble(rng) < kEmptyBagProbability) continue;
        auto size = 1 + static_cast<int64_t>(UniformDouble(rng) * kMaxBagSize);
        for (int64_t k = 0; k < size; ++k) {
          auto rank = static_cast<uint64_t>(zipf(rng) - 1);
          bag_ids.push_back(static_cast<int64_t>(rank * kRowPermutation % rows));
        }
      }
      indices.push_back(at::tensor(bag_ids, at::kLong));
      offsets.push_back(at::tensor(bag_offsets, at::kLong));
    }
    return {dense.log1p_(), indices, offsets};
  }

  // See MakeDlrm's contract for why. It runs a twin module over the same tensors that returns
  // the logit itself, which the sigmoid would flatten where the predictions saturate.
  void Calibrate(const Builder& b) const {
    torch::jit::Module logits_module("DLRM_Net_Logits");
    b.DefineOn(logits_module, "x");
    torch::NoGradGuard no_grad;
    at::Tensor z =
        logits_module.forward(MakeBatch(kCalibrationSamples, options_.seed ^ 0x5eed, "calibration"))
            .toTensor()
            .to(at::kDouble);
    double spread = z.std().item<double>();
    if (!(spread > 0)) {
      throw Error(ErrorCode::kInternal,
                  fmt::format("{}: the model gives one prediction for every input", config_.name));
    }
    const std::string last = fmt::format("top_l_{}_", 2 * (config_.top_mlp.size() - 1));
    double scale = CoarseRound(1.0 / spread, 1.0 / spread);
    // The logits times `scale` spread by about 1.
    double shift = CoarseRound(-scale * z.quantile(0.5).item<double>(), 1.0);
    at::Tensor weight = logits_module.attr(last + "weight").toTensor();
    at::Tensor bias = logits_module.attr(last + "bias").toTensor();
    weight.mul_(scale);
    bias.mul_(scale).add_(shift);
  }

  DlrmConfig config_;
  WorkloadOptions options_;
};

}  // namespace

const std::vector<int64_t>& MlperfTableRows() {
  static const std::vector<int64_t> kRows = {
      39884406, 39043,    17289,    7420,     20263,  3,     7120, 1543, 63,
      38532951, 2953546,  403346,   10,       2208,   11938, 155,  4,    976,
      14,       39979771, 25641295, 39664984, 585935, 12972, 108,  36};
  return kRows;
}

std::vector<int64_t> DefaultTableRows() {
  std::vector<int64_t> rows = MlperfTableRows();
  for (int64_t& r : rows) r = std::min(r, kDefaultMaxRows);
  return rows;
}

std::vector<int64_t> FitTableRows(const std::vector<int64_t>& rows, int64_t dim,
                                  int64_t budget_bytes) {
  const int64_t budget_rows = budget_bytes / (dim * static_cast<int64_t>(sizeof(float)));
  if (std::accumulate(rows.begin(), rows.end(), int64_t{0}) <= budget_rows) return rows;
  std::vector<int64_t> floor(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) floor[i] = std::min(rows[i], kMinFittedRows);
  const int64_t floor_rows = std::accumulate(floor.begin(), floor.end(), int64_t{0});
  if (floor_rows > budget_rows) {
    throw Error(ErrorCode::kUnsupported,
                fmt::format("dlrm: {} bytes cannot hold even {} rows of the tables", budget_bytes,
                            floor_rows));
  }
  // Tables that the common factor would push below their floor keep the floor; the factor is
  // then recomputed over the others until no more tables reach their floor.
  std::vector<bool> at_floor(rows.size(), false);
  double factor = 0;
  for (bool changed = true; changed;) {
    int64_t fixed = 0;
    int64_t scaled = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (at_floor[i]) {
        fixed += floor[i];
      } else {
        scaled += rows[i];
      }
    }
    if (scaled == 0) break;
    factor = static_cast<double>(budget_rows - fixed) / static_cast<double>(scaled);
    changed = false;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (!at_floor[i] && static_cast<double>(rows[i]) * factor < static_cast<double>(floor[i])) {
        at_floor[i] = changed = true;
      }
    }
  }
  std::vector<int64_t> fitted(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    fitted[i] =
        at_floor[i] ? floor[i] : static_cast<int64_t>(static_cast<double>(rows[i]) * factor);
  }
  return fitted;
}

ZipfSampler::ZipfSampler(int64_t n, double exponent) : n_(n), exponent_(exponent) {
  h_integral_x1_ = HIntegral(1.5) - 1.0;
  h_integral_n_ = HIntegral(static_cast<double>(n) + 0.5);
  s_ = 2.0 - HIntegralInverse(HIntegral(2.5) - H(2.0));
}

int64_t ZipfSampler::operator()(std::mt19937_64& rng) const {
  for (;;) {
    double u = h_integral_n_ + UniformDouble(rng) * (h_integral_x1_ - h_integral_n_);
    double x = HIntegralInverse(u);
    auto k = std::clamp(static_cast<int64_t>(std::llround(x)), int64_t{1}, n_);
    auto kd = static_cast<double>(k);
    if (kd - x <= s_ || u >= HIntegral(kd + 0.5) - H(kd)) return k;
  }
}

double ZipfSampler::H(double x) const { return std::exp(-exponent_ * std::log(x)); }

// The integral of H from 1 to x: (x^(1-s) - 1) / (1 - s), written to stay exact near s = 1.
double ZipfSampler::HIntegral(double x) const {
  double log_x = std::log(x);
  double t = (1.0 - exponent_) * log_x;
  double expm1_over_t = std::abs(t) > 1e-8 ? std::expm1(t) / t : 1.0 + t / 2 * (1.0 + t / 3);
  return expm1_over_t * log_x;
}

double ZipfSampler::HIntegralInverse(double x) const {
  double t = std::max(x * (1.0 - exponent_), -1.0);
  double log1p_over_t = std::abs(t) > 1e-8 ? std::log1p(t) / t : 1.0 - t * (0.5 - t / 3);
  return std::exp(log1p_over_t * x);
}

std::unique_ptr<Workload> MakeDlrm(const DlrmConfig& config, const WorkloadOptions& options) {
  return std::make_unique<Dlrm>(config, options);
}

}  // namespace ipt::workloads
