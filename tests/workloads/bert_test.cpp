#include "workloads/bert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "tests/workloads/test_util.h"
#include "workloads/workload.h"

namespace ipt::workloads {
namespace {

using testing_util::SeqLen;
using testing_util::TinyBert;

int64_t CountParameters(const torch::jit::Module& m, bool with_classifier) {
  int64_t total = 0;
  for (const auto& p : m.named_parameters()) {
    if (with_classifier || p.name.rfind("classifier_", 0) != 0) total += p.value.numel();
  }
  return total;
}

at::Tensor Forward(torch::jit::Module& m, const std::vector<torch::jit::IValue>& inputs) {
  torch::NoGradGuard no_grad;
  return m.forward(inputs).toTensor();
}

int CountOps(const torch::jit::Module& m, const char* kind) {
  int count = 0;
  for (const torch::jit::Node* n : m.get_method("forward").graph()->nodes()) {
    count += n->kind() == c10::Symbol::fromQualString(kind);
  }
  return count;
}

// bert-base, built once: its weights and its calibration forward take several seconds.
class BertBaseTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    workload_ = MakeWorkload("bert-base", {});
    module_ = workload_->BuildModel();
  }
  static void TearDownTestSuite() {
    module_.reset();
    workload_.reset();
  }
  static inline std::unique_ptr<Workload> workload_;
  static inline std::optional<torch::jit::Module> module_;
};

TEST_F(BertBaseTest, HasHuggingFaceParameterCount) {
  EXPECT_EQ(CountParameters(*module_, /*with_classifier=*/false), 109482240);
  EXPECT_EQ(CountParameters(*module_, /*with_classifier=*/true), 109482240 + 768 * 2 + 2);
  EXPECT_EQ(workload_->Metric(), MetricKind::kClasses);
}

// Random weights would send every sequence to one class. The calibrated classifier behaves like
// a trained one: the evaluation batches, which the calibration never saw, go to both classes
// about evenly, and keep their class when every weight is rounded to bf16 (a change of up to
// 0.4%). 32 sequences, twice.
TEST_F(BertBaseTest, PredictsBothClassesWithMargins) {
  torch::jit::Module rounded = module_->clone();
  for (const auto& p : rounded.parameters()) p.detach().copy_(p.to(at::kBFloat16));
  int64_t class_one = 0;
  int64_t changed = 0;
  for (int64_t index = 0; index < 4; ++index) {
    auto inputs = workload_->MakeInputs(8, index);
    at::Tensor logits = Forward(*module_, inputs);
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{8, 2}));
    ASSERT_TRUE(logits.isfinite().all().item<bool>());
    class_one += logits.argmax(1).sum().item<int64_t>();
    changed += logits.argmax(1).ne(Forward(rounded, inputs).argmax(1)).sum().item<int64_t>();
  }
  EXPECT_GE(class_one, 8) << "of 32";
  EXPECT_LE(class_one, 24) << "of 32";
  EXPECT_EQ(changed, 0) << "predictions changed by bf16 weights among 32";
}

TEST(BertTest, FlopsMatchTheKnownFigures) {
  // 12 layers x (12 h^2 s + 2 s^2 h) multiply-adds, plus pooler and classifier, counted twice.
  EXPECT_NEAR(MakeWorkload("bert-base", {})->FlopsPerItem(), 22.3e9, 0.1e9);
  EXPECT_DOUBLE_EQ(MakeWorkload("bert-base", {})->FlopsPerItem(), 22348434432.0);
  EXPECT_DOUBLE_EQ(MakeWorkload("bert-large", {})->FlopsPerItem(), 78922125312.0);
  // The attention matmuls grow with the square of the sequence.
  const BertConfig c = TinyBert(2);
  const double s = 16, h = 32, i = 64;
  double expected = 2 * (2 * (s * (4 * h * h + 2 * h * i) + 2 * s * s * h) + h * h + 2 * h);
  EXPECT_DOUBLE_EQ(MakeBert(c, SeqLen(16))->FlopsPerItem(), expected);
}

TEST(BertTest, BertIsAnAliasOfBertBase) {
  auto alias = MakeWorkload("bert", {});
  EXPECT_EQ(alias->name(), "bert-base");
  EXPECT_EQ(alias->FlopsPerItem(), MakeWorkload("bert-base", {})->FlopsPerItem());
  EXPECT_EQ(MakeWorkload("bert-large", {})->name(), "bert-large");
  EXPECT_EQ(WorkloadNames(),
            (std::vector<std::string>{"bert-base", "bert-large", "dlrm", "resnet50"}));
}

TEST(BertTest, RejectsBadShapes) {
  BertConfig uneven = TinyBert(1);
  uneven.heads = 5;
  for (const auto& make : std::vector<std::function<void()>>{
           [&] { MakeBert(uneven, {}); },
           [] { MakeWorkload("bert-base", SeqLen(3)); },
           [] { MakeWorkload("bert-base", SeqLen(513)); },
       }) {
    try {
      make();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    }
  }
}

TEST(BertTest, InputsAreSequencesWithPadding) {
  auto w = MakeWorkload("bert-base", {});
  std::vector<torch::jit::IValue> inputs = w->MakeInputs(16, 0);
  ASSERT_EQ(inputs.size(), 3u);
  at::Tensor ids = inputs[0].toTensor();
  at::Tensor mask = inputs[1].toTensor();
  at::Tensor types = inputs[2].toTensor();
  for (const at::Tensor& t : {ids, mask, types}) {
    EXPECT_EQ(t.sizes(), (std::vector<int64_t>{16, 128}));
    EXPECT_EQ(t.scalar_type(), at::kLong);
  }
  at::Tensor lengths = mask.sum(1);
  EXPECT_GE(lengths.min().item<int64_t>(), 64);
  EXPECT_LE(lengths.max().item<int64_t>(), 128);
  EXPECT_GT(lengths.max().item<int64_t>(), lengths.min().item<int64_t>());
  for (int64_t b = 0; b < 16; ++b) {
    int64_t n = lengths[b].item<int64_t>();
    EXPECT_EQ(mask[b].slice(0, 0, n).min().item<int64_t>(), 1);
    EXPECT_EQ(ids[b][0].item<int64_t>(), 101);
    EXPECT_EQ(ids[b][n - 1].item<int64_t>(), 102);
    at::Tensor words = ids[b].slice(0, 1, n - 1);
    EXPECT_GE(words.min().item<int64_t>(), 1000);
    EXPECT_LT(words.max().item<int64_t>(), 30000);
    EXPECT_EQ(types[b].slice(0, 0, n / 2).max().item<int64_t>(), 0);
    EXPECT_EQ(types[b].slice(0, n / 2, n).min().item<int64_t>(), 1);
    if (n < 128) {
      EXPECT_EQ(ids[b].slice(0, n).abs().max().item<int64_t>(), 0);
      EXPECT_EQ(mask[b].slice(0, n).max().item<int64_t>(), 0);
      EXPECT_EQ(types[b].slice(0, n).max().item<int64_t>(), 0);
    }
  }
  EXPECT_EQ(w->DescribeInputs(4).size(), 3u);
  EXPECT_EQ(w->DescribeInputs(4)[2].shape, (std::vector<int64_t>{4, 128}));
  EXPECT_EQ(MakeWorkload("bert-base", SeqLen(32))->MakeInputs(2, 0)[0].toTensor().size(1), 32);
}

TEST(BertTest, WeightsAndInputsAreDeterministic) {
  auto a = MakeBert(TinyBert(2), SeqLen(16));
  auto b = MakeBert(TinyBert(2), SeqLen(16));
  EXPECT_EQ(ModelHash(a->BuildModel()), ModelHash(b->BuildModel()));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(a->MakeInputs(4, 3)[i].toTensor().equal(b->MakeInputs(4, 3)[i].toTensor()));
  }
  EXPECT_FALSE(a->MakeInputs(4, 3)[0].toTensor().equal(a->MakeInputs(4, 4)[0].toTensor()));
  WorkloadOptions other = SeqLen(16);
  other.seed = 7;
  EXPECT_NE(ModelHash(a->BuildModel()), ModelHash(MakeBert(TinyBert(2), other)->BuildModel()));
}

TEST(BertTest, WeightsFollowTheInitialisation) {
  torch::jit::Module m = MakeBert(TinyBert(1), SeqLen(16))->BuildModel();
  auto param = [&m](const std::string& name) { return m.attr(name).toTensor(); };
  at::Tensor words = param("embeddings_word_embeddings_weight");
  EXPECT_EQ(words.sizes(), (std::vector<int64_t>{30522, 32}));
  EXPECT_EQ(words[0].abs().max().item<float>(), 0.0f);  // the padding row, as HuggingFace
  // Truncated at 2 standard deviations: the standard deviation shrinks to 0.88 of 0.02.
  EXPECT_LE(words.abs().max().item<float>(), 0.04f);
  EXPECT_GT(words.abs().max().item<float>(), 0.039f);
  EXPECT_NEAR(words.std().item<double>(), 0.02 * 0.8796, 0.0005);
  at::Tensor query = param("encoder_layer_0_attention_self_query_weight");
  EXPECT_LE(query.abs().max().item<float>(), 0.04f);
  EXPECT_EQ(param("encoder_layer_0_attention_self_query_bias").abs().max().item<float>(), 0.0f);
  at::Tensor gamma = param("encoder_layer_0_output_LayerNorm_weight");
  EXPECT_GE(gamma.min().item<float>(), 0.9f);
  EXPECT_LE(gamma.max().item<float>(), 1.1f);
  EXPECT_GT(param("encoder_layer_0_output_LayerNorm_bias").abs().max().item<float>(), 0.0f);
}

TEST(BertTest, GraphHoldsPlainAtenOpsForThePasses) {
  torch::jit::Module m = MakeBert(TinyBert(2), SeqLen(16))->BuildModel();
  EXPECT_EQ(CountOps(m, "aten::embedding"), 3);
  EXPECT_EQ(CountOps(m, "aten::linear"), 2 * 6 + 2);
  EXPECT_EQ(CountOps(m, "aten::matmul"), 2 * 2);
  EXPECT_EQ(CountOps(m, "aten::softmax"), 2);
  EXPECT_EQ(CountOps(m, "aten::layer_norm"), 2 * 2 + 1);
  EXPECT_EQ(CountOps(m, "aten::gelu"), 2);
  EXPECT_EQ(CountOps(m, "aten::tanh"), 1);
}

// Padded positions are masked out of every attention, so whatever tokens they hold cannot
// reach the [CLS] vector and the logits.
TEST(BertTest, PaddedPositionsDoNotChangeTheLogits) {
  auto w = MakeBert(TinyBert(2), SeqLen(32));
  torch::jit::Module m = w->BuildModel();
  std::vector<torch::jit::IValue> inputs = w->MakeInputs(6, 0);
  at::Tensor ids = inputs[0].toTensor();
  at::Tensor padded = inputs[1].toTensor().eq(0);
  ASSERT_GT(padded.sum().item<int64_t>(), 0);
  at::Tensor reference = Forward(m, inputs);

  at::Tensor words = at::arange(ids.numel(), at::kLong).view(ids.sizes()) % 29000 + 1000;
  at::Tensor other_ids = at::where(padded, words, ids);
  at::Tensor logits = Forward(m, {other_ids, inputs[1], inputs[2]});
  EXPECT_TRUE(at::allclose(logits, reference, /*rtol=*/0, /*atol=*/1e-6))
      << (logits - reference).abs().max();

  // A real token does reach them: the comparison above could fail.
  at::Tensor changed = ids.clone();
  changed.select(1, 1).fill_(4242);
  EXPECT_FALSE(at::allclose(Forward(m, {changed, inputs[1], inputs[2]}), reference, 0, 1e-6));
}

// The network written with plain aten calls from HuggingFace's modeling_bert.py, reading the
// built module's parameters by name.
at::Tensor ReferenceBert(const torch::jit::Module& m, const BertConfig& c,
                         const std::vector<torch::jit::IValue>& inputs) {
  auto param = [&m](const std::string& name) { return m.attr(name).toTensor(); };
  auto linear = [&](const at::Tensor& x, const std::string& name) {
    return at::matmul(x, param(name + "_weight").t()) + param(name + "_bias");
  };
  auto layer_norm = [&](const at::Tensor& x, const std::string& name) {
    at::Tensor mean = x.mean(-1, /*keepdim=*/true);
    at::Tensor var = (x - mean).pow(2).mean(-1, /*keepdim=*/true);
    return (x - mean) / (var + 1e-12).sqrt() * param(name + "_weight") + param(name + "_bias");
  };
  at::Tensor ids = inputs[0].toTensor();
  at::Tensor mask = inputs[1].toTensor();
  at::Tensor types = inputs[2].toTensor();
  const int64_t batch = ids.size(0), seq = ids.size(1), head_dim = c.hidden / c.heads;
  auto lookup = [&](const std::string& table, const at::Tensor& rows) {
    return param(table).index_select(0, rows.flatten()).view({-1, seq, c.hidden});
  };
  at::Tensor x = lookup("embeddings_word_embeddings_weight", ids) +
                 lookup("embeddings_token_type_embeddings_weight", types) +
                 lookup("embeddings_position_embeddings_weight", at::arange(seq, at::kLong));
  x = layer_norm(x, "embeddings_LayerNorm");
  at::Tensor mask_bias = (1 - mask.to(at::kFloat)).view({batch, 1, 1, seq}) * -10000.0;
  auto heads = [&](const at::Tensor& t) {
    return t.view({batch, seq, c.heads, head_dim}).transpose(1, 2);
  };
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "encoder_layer_" + std::to_string(l) + "_";
    at::Tensor q = heads(linear(x, p + "attention_self_query"));
    at::Tensor k = heads(linear(x, p + "attention_self_key"));
    at::Tensor v = heads(linear(x, p + "attention_self_value"));
    at::Tensor scores = at::matmul(q, k.transpose(2, 3)) / std::sqrt(double(head_dim)) + mask_bias;
    at::Tensor e = (scores - std::get<0>(scores.max(-1, true))).exp();
    at::Tensor context = at::matmul(e / e.sum(-1, true), v).transpose(1, 2).reshape(x.sizes());
    x = layer_norm(linear(context, p + "attention_output_dense") + x,
                   p + "attention_output_LayerNorm");
    at::Tensor h = linear(x, p + "intermediate_dense");
    h = 0.5 * h * (1 + (h / std::sqrt(2.0)).erf());
    x = layer_norm(linear(h, p + "output_dense") + x, p + "output_LayerNorm");
  }
  at::Tensor pooled = linear(x.select(1, 0), "pooler_dense").tanh();
  return linear(pooled, "classifier");
}

TEST(BertTest, MatchesAReferenceWrittenInAten) {
  for (int64_t layers : {1, 2}) {
    const BertConfig config = TinyBert(layers);
    auto w = MakeBert(config, SeqLen(24));
    torch::jit::Module m = w->BuildModel();
    std::vector<torch::jit::IValue> inputs = w->MakeInputs(5, 1);
    torch::NoGradGuard no_grad;
    at::Tensor expected = ReferenceBert(m, config, inputs);
    at::Tensor logits = Forward(m, inputs);
    // The classifier reads small differences between pooled vectors (at most 1 in size, after
    // tanh) through large weights: float rounding of the pooled vectors moves a logit by up to
    // about 1e-7 of the absolute sum of its row of weights.
    double rounding = m.attr("classifier_weight").toTensor().abs().sum(1).max().item<double>();
    EXPECT_LE((logits - expected).abs().max().item<double>(), 1e-5 + 1e-6 * rounding)
        << layers << " layer(s)";
  }
}

}  // namespace
}  // namespace ipt::workloads
