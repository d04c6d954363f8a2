// BERT for sequence classification as HuggingFace builds it (BertForSequenceClassification,
// eval mode), written as TorchScript source over registered parameters so that the graph holds
// the plain aten ops (linear, matmul, softmax, layer_norm, gelu) that the core's passes rewrite.
// Parameter names are HuggingFace's state_dict keys with "." replaced by "_" and no "bert."
// prefix, so a recipe's per-op fallback reads the same here as for a real checkpoint.
#include "workloads/bert.h"

#include <fmt/format.h>

#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "workloads/seeded.h"

namespace ipt::workloads {
namespace {

constexpr int64_t kVocabSize = 30522;
constexpr int64_t kMaxPositions = 512;
constexpr int64_t kTokenTypes = 2;
constexpr int64_t kLabels = 2;
constexpr int64_t kDefaultSeqLen = 128;
constexpr int64_t kPadId = 0;
constexpr int64_t kClsId = 101;
constexpr int64_t kSepId = 102;
// Word pieces drawn for the real tokens: clear of [PAD], [unused*] and the special tokens.
constexpr int64_t kFirstWordId = 1000;
constexpr int64_t kEndWordId = 30000;
constexpr double kInitStd = 0.02;  // HuggingFace's initializer_range
// The two classes (see MakeBert): each has a topic of its own kTopicWords word pieces, from
// which each word of one of its sequences comes with probability kTopicShare.
constexpr int64_t kTopicWords = 100;
constexpr double kTopicShare = 0.5;
// Sequences of each class whose pooled vectors the classifier calibration averages; each costs
// a double-precision forward (about 0.4 s for bert-base at seq_len 128 on two cores).
constexpr int64_t kCalibrationSequencesPerClass = 8;
// The spread of the logit difference over the calibration sequences, about a trained
// classifier's.
constexpr double kLogitSpread = 4.0;

// A TorchScript float literal that keeps every digit of `value`.
std::string FloatLiteral(double value) {
  std::string text = fmt::format("{:.17g}", value);
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

// Walks the architecture once: emits the TorchScript source of forward, creates each parameter
// it names (unless `init` is false, which only counts FLOPs) and counts FLOPs.
class Builder {
 public:
  Builder(bool init, uint64_t seed, int64_t seq_len)
      : init_(init), seed_(seed), seq_len_(seq_len) {}

  // torch.linear over `tokens` rows per sequence.
  void Linear(const std::string& out, const std::string& in, const std::string& name,
              int64_t in_features, int64_t out_features, int64_t tokens) {
    flops_ += 2.0 * static_cast<double>(in_features * out_features * tokens);
    Line(fmt::format("{} = torch.linear({}, self.{}_weight, self.{}_bias)", out, in, name, name));
    if (!init_) return;
    Param(name + "_weight",
          TruncatedNormal({out_features, in_features}, 0.0, kInitStd, seed_, name + "_weight"));
    Param(name + "_bias", at::zeros({out_features}, at::kFloat));
  }

  void LayerNorm(const std::string& out, const std::string& in, const std::string& name,
                 int64_t features) {
    Line(fmt::format("{} = torch.layer_norm({}, [{}], self.{}_weight, self.{}_bias, 1e-12, True)",
                     out, in, features, name, name));
    if (!init_) return;
    // Away from the (1, 0) HuggingFace starts with, so that folding or fusing them is tested.
    Param(name + "_weight", Uniform({features}, 0.9, 1.1, seed_, name + "_weight"));
    Param(name + "_bias", Normal({features}, 0.0, kInitStd, seed_, name + "_bias"));
  }

  void Embedding(const std::string& name, int64_t rows, int64_t features,
                 std::optional<int64_t> padding_row = std::nullopt) {
    if (!init_) return;
    at::Tensor weight = TruncatedNormal({rows, features}, 0.0, kInitStd, seed_, name);
    // HuggingFace zeroes the padding token's row.
    if (padding_row) weight[*padding_row].zero_();
    Param(name + "_weight", weight);
  }

  // Q K^T and P V over all heads: each seq_len x seq_len x hidden multiply-adds.
  void CountAttention(int64_t hidden) {
    flops_ += 2.0 * 2.0 * static_cast<double>(seq_len_ * seq_len_ * hidden);
  }

  void Buffer(const std::string& name, const at::Tensor& value) {
    if (init_) buffers_.emplace_back(name, value);
  }

  void Line(const std::string& text) { source_ += "    " + text + "\n"; }

  // Registers the created tensors (the same storage each time, unless `dtype` asks for a copy in
  // another) and forward on `module`.
  void DefineOn(torch::jit::Module& module, at::ScalarType dtype = at::kFloat) const {
    for (const auto& [name, value] : params_) {
      module.register_parameter(name, value.to(dtype), false);
    }
    for (const auto& [name, value] : buffers_) module.register_buffer(name, value);
    module.define("def forward(self, input_ids, attention_mask, token_type_ids):\n" + source_);
    module.eval();
  }

  double flops() const { return flops_; }
  int64_t seq_len() const { return seq_len_; }

  // A created parameter, to be changed in place before DefineOn.
  at::Tensor Parameter(const std::string& name) const {
    for (const auto& [n, value] : params_) {
      if (n == name) return value;
    }
    throw Error(ErrorCode::kInternal, "bert: no parameter " + name);
  }

 private:
  void Param(const std::string& name, const at::Tensor& value) {
    params_.emplace_back(name, value);
  }

  bool init_;
  uint64_t seed_;
  int64_t seq_len_;
  std::string source_;
  double flops_ = 0;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<std::pair<std::string, at::Tensor>> buffers_;
};

void BuildEmbeddings(Builder& b, const BertConfig& c) {
  b.Embedding("embeddings_word_embeddings", kVocabSize, c.hidden, kPadId);
  b.Embedding("embeddings_position_embeddings", kMaxPositions, c.hidden);
  b.Embedding("embeddings_token_type_embeddings", kTokenTypes, c.hidden);
  b.Buffer("embeddings_position_ids", at::arange(kMaxPositions, at::kLong).unsqueeze(0));
  b.Line("batch = input_ids.size(0)");
  b.Line("seq_len = input_ids.size(1)");
  b.Line("position_ids = self.embeddings_position_ids[:, 0:seq_len]");
  b.Line("x = torch.embedding(self.embeddings_word_embeddings_weight, input_ids, 0, False, False)");
  b.Line(
      "x = x + torch.embedding(self.embeddings_token_type_embeddings_weight, token_type_ids, -1, "
      "False, False)");
  b.Line(
      "x = x + torch.embedding(self.embeddings_position_embeddings_weight, position_ids, -1, "
      "False, False)");
  b.LayerNorm("x", "x", "embeddings_LayerNorm", c.hidden);
  // HuggingFace's get_extended_attention_mask: padded keys get -10000 before the softmax, in
  // the model's dtype so that a bf16 model stays bf16.
  b.Line(
      "extended_mask = ((1.0 - attention_mask[:, None, None, :].float()) * -10000.0).to(x.dtype)");
}

void BuildLayer(Builder& b, const BertConfig& c, int64_t layer) {
  const std::string p = fmt::format("encoder_layer_{}_", layer);
  const int64_t seq = b.seq_len();
  const int64_t head_dim = c.hidden / c.heads;
  const std::string split_heads =
      fmt::format(".view([batch, seq_len, {}, {}]).permute([0, 2, 1, 3])", c.heads, head_dim);
  b.Linear("q", "x", p + "attention_self_query", c.hidden, c.hidden, seq);
  b.Linear("k", "x", p + "attention_self_key", c.hidden, c.hidden, seq);
  b.Linear("v", "x", p + "attention_self_value", c.hidden, c.hidden, seq);
  b.Line("q = q" + split_heads);
  b.Line("k = k" + split_heads);
  b.Line("v = v" + split_heads);
  b.CountAttention(c.hidden);
  b.Line(fmt::format("scores = torch.matmul(q, k.transpose(-1, -2)) / {}",
                     FloatLiteral(std::sqrt(static_cast<double>(head_dim)))));
  b.Line("scores = scores + extended_mask");
  b.Line("probs = torch.softmax(scores, -1)");
  b.Line("context = torch.matmul(probs, v).permute([0, 2, 1, 3]).contiguous()");
  b.Line(fmt::format("context = context.view([batch, seq_len, {}])", c.hidden));
  b.Linear("attention", "context", p + "attention_output_dense", c.hidden, c.hidden, seq);
  b.LayerNorm("x", "attention + x", p + "attention_output_LayerNorm", c.hidden);
  b.Linear("h", "x", p + "intermediate_dense", c.hidden, c.intermediate, seq);
  b.Line("h = torch.gelu(h)");
  b.Linear("h", "h", p + "output_dense", c.intermediate, c.hidden, seq);
  b.LayerNorm("x", "h + x", p + "output_LayerNorm", c.hidden);
}

// The whole network, written through `b`.
void BuildBert(Builder& b, const BertConfig& c) {
  BuildEmbeddings(b, c);
  for (int64_t layer = 0; layer < c.layers; ++layer) BuildLayer(b, c, layer);
  b.Line("first = x[:, 0]");
  b.Linear("pooled", "first", "pooler_dense", c.hidden, c.hidden, 1);
  b.Line("pooled = torch.tanh(pooled)");
  b.Linear("logits", "pooled", "classifier", c.hidden, kLabels, 1);
  b.Line("return logits");
}

// `batch` sequences of seq_len tokens drawn from `generator`, of the given classes (0 or 1, one
// per sequence) or else of random ones: [CLS], word pieces, [SEP], then padding; the real length
// varies between seq_len / 2 and seq_len, the second half of the real tokens is segment 1. A
// word is one of its class's topic words with probability kTopicShare, else any word piece.
std::vector<torch::jit::IValue> MakeSequences(int64_t batch, int64_t seq_len,
                                              const at::Generator& generator,
                                              at::Tensor classes = {}) {
  if (!classes.defined()) classes = at::randint(kLabels, {batch}, generator, at::kLong);
  at::Tensor lengths = at::randint(seq_len / 2, seq_len + 1, {batch, 1}, generator, at::kLong);
  at::Tensor words = at::randint(kFirstWordId, kEndWordId, {batch, seq_len}, generator, at::kLong);
  at::Tensor topic = at::randint(kTopicWords, {batch, seq_len}, generator, at::kLong) +
                     kFirstWordId + classes.unsqueeze(1) * kTopicWords;
  words = at::where(at::rand({batch, seq_len}, generator) < kTopicShare, topic, words);
  at::Tensor positions = at::arange(seq_len, at::kLong).unsqueeze(0);
  at::Tensor real = positions < lengths;
  at::Tensor input_ids = words.masked_fill(real.logical_not(), kPadId);
  input_ids.select(1, 0).fill_(kClsId);
  input_ids.scatter_(1, lengths - 1, kSepId);
  at::Tensor second_segment = positions >= at::div(lengths, 2, "floor");
  at::Tensor token_type_ids = real.logical_and(second_segment).to(at::kLong);
  return {input_ids, real.to(at::kLong), token_type_ids};
}

class Bert : public Workload {
 public:
  Bert(const BertConfig& config, const WorkloadOptions& options)
      : config_(config), options_(options), seq_len_(options.seq_len.value_or(kDefaultSeqLen)) {
    if (config.layers < 1 || config.hidden < 1 || config.heads < 1 || config.intermediate < 1 ||
        config.hidden % config.heads != 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("{}: layers, hidden, heads and intermediate must be positive and "
                              "heads must divide hidden (got {}, {}, {}, {})",
                              config.name, config.layers, config.hidden, config.heads,
                              config.intermediate));
    }
    if (seq_len_ < 4 || seq_len_ > kMaxPositions) {
      throw Error(ErrorCode::kInvalidArgument, fmt::format("{}: seq_len must be in [4, {}], got {}",
                                                           config.name, kMaxPositions, seq_len_));
    }
  }

  const std::string& name() const override { return config_.name; }

  std::string BuildDescription() const override {
    return fmt::format("{} bert layers={} hidden={} heads={} intermediate={} seq_len={} seed={}",
                       config_.name, config_.layers, config_.hidden, config_.heads,
                       config_.intermediate, seq_len_, options_.seed);
  }

  torch::jit::Module BuildModel() const override {
    Builder b(/*init=*/true, options_.seed, seq_len_);
    BuildBert(b, config_);
    CalibrateClassifier(b);
    torch::jit::Module module("BertForSequenceClassification");
    b.DefineOn(module);
    return module;
  }

  std::vector<torch::jit::IValue> MakeInputs(int64_t batch, int64_t index) const override {
    return MakeSequences(
        batch, seq_len_,
        SeededGenerator(options_.seed ^ 0x5eed, "tokens/" + std::to_string(index)));
  }

  double FlopsPerItem() const override {
    Builder b(/*init=*/false, options_.seed, seq_len_);
    BuildBert(b, config_);
    return b.flops();
  }

  std::vector<recipes::InputSpec> DescribeInputs(int64_t batch) const override {
    return {{"input_ids", {batch, seq_len_}, "int64"},
            {"attention_mask", {batch, seq_len_}, "int64"},
            {"token_type_ids", {batch, seq_len_}, "int64"}};
  }

  MetricKind Metric() const override { return MetricKind::kClasses; }

 private:
  // See MakeBert's contract for why. A twin module in double precision gives the pooled
  // vectors, so that the executor of the module returned has seen no call and no batch size
  // yet, and so that every process gets the same classifier: another thread count or ISA moves
  // the pooled vectors by about 1e-14 of their size, and the values derived from them are
  // rounded to 1/16384 of their scale (odds that one rounds another way: about 1e-5 in all).
  void CalibrateClassifier(const Builder& b) const {
    torch::jit::Module twin("BertPooled");
    b.DefineOn(twin, at::kDouble);
    twin.setattr("classifier_weight", at::eye(config_.hidden, at::kDouble));
    twin.setattr("classifier_bias", at::zeros({config_.hidden}, at::kDouble));
    torch::NoGradGuard no_grad;
    at::Tensor classes = at::arange(2 * kCalibrationSequencesPerClass, at::kLong).remainder(2);
    auto inputs = MakeSequences(2 * kCalibrationSequencesPerClass, seq_len_,
                                SeededGenerator(options_.seed ^ 0x5eed, "calibration"), classes);
    at::Tensor pooled = twin.forward(inputs).toTensor();
    // Row i is of class i % 2.
    at::Tensor means = pooled.view({kCalibrationSequencesPerClass, kLabels, -1}).mean(0);
    at::Tensor difference = (means[1] - means[0]).contiguous();
    at::Tensor middle = ((means[1] + means[0]) / 2).contiguous();
    auto rounded = [](const at::Tensor& t) {
      const double scale = t.abs().max().item<double>();
      std::vector<double> values(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
      for (double& v : values) v = FineRound(v, scale);
      return values;
    };
    std::vector<double> d = rounded(difference);
    std::vector<double> m = rounded(middle);
    // logit 1 - logit 0 = scale * d . (pooled - m), scaled to spread by kLogitSpread over the
    // calibration sequences. (Scaled by d's length instead, a model whose classes lie close
    // together would get a classifier that magnifies the smallest change of its pooled vectors.)
    at::Tensor projections =
        (pooled - at::tensor(m, at::kDouble)).matmul(at::tensor(d, at::kDouble));
    double spread = projections.std().item<double>();
    if (!(spread > 0)) {
      throw Error(
          ErrorCode::kInternal,
          fmt::format("{}: the calibration sequences give the same pooled vectors", config_.name));
    }
    const double scale = kLogitSpread / CoarseRound(spread, spread);
    std::vector<double> weight(kLabels * config_.hidden);
    double offset = 0;
    for (int64_t i = 0; i < config_.hidden; ++i) {
      weight[i] = -scale * d[i] / 2;
      weight[config_.hidden + i] = scale * d[i] / 2;
      offset += scale * d[i] * m[i];
    }
    b.Parameter("classifier_weight").copy_(at::tensor(weight).view({kLabels, config_.hidden}));
    b.Parameter("classifier_bias").copy_(at::tensor({offset / 2, -offset / 2}, at::kDouble));
  }

  BertConfig config_;
  WorkloadOptions options_;
  int64_t seq_len_;
};

}  // namespace

BertConfig BertLargeConfig() {
  BertConfig config;
  config.name = "bert-large";
  config.layers = 24;
  config.hidden = 1024;
  config.heads = 16;
  config.intermediate = 4096;
  return config;
}

std::unique_ptr<Workload> MakeBert(const BertConfig& config, const WorkloadOptions& options) {
  return std::make_unique<Bert>(config, options);
}

}  // namespace ipt::workloads
