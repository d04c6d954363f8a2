#include "workloads/accuracy.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "base/error.h"
#include "tests/workloads/test_util.h"
#include "workloads/dlrm.h"

namespace ipt::workloads {
namespace {

at::Tensor Rows(const std::vector<std::vector<float>>& rows) {
  std::vector<at::Tensor> t;
  for (const auto& r : rows) t.push_back(at::tensor(r, at::kFloat));
  return at::stack(t);
}

TEST(AccuracyTest, TopKCountsTop1AndWhetherTheReferenceClassIsInTheTop5) {
  // Six classes; item 0 keeps its class, item 1 moves it to second place, item 2 to sixth.
  at::Tensor reference = Rows({{9, 1, 2, 3, 4, 5}, {0, 9, 1, 2, 3, 4}, {0, 1, 2, 3, 4, 9}});
  at::Tensor candidate = Rows({{9, 1, 2, 3, 4, 5}, {0, 8, 9, 2, 3, 4}, {9, 8, 7, 6, 5, 0}});
  Accuracy a = CompareOutputs(MetricKind::kTopK, reference, candidate);
  EXPECT_EQ(a.items, 3);
  EXPECT_DOUBLE_EQ(a.top1_agreement, 1.0 / 3);
  EXPECT_DOUBLE_EQ(*a.top5_agreement, 2.0 / 3);
  EXPECT_FALSE(a.class_agreement.has_value());
  EXPECT_FALSE(a.agreement_at_half.has_value());
  // Far apart: the distance check fails, and the loss with it.
  EXPECT_FALSE(a.distance_ok);
  EXPECT_DOUBLE_EQ(a.loss, 1.0);
}

TEST(AccuracyTest, LossIsOneMinusAgreementWhileTheDistanceIsSmall) {
  // 4 items of 3 classes; item 3's two top logits are close and swap under a small change.
  at::Tensor reference = Rows({{3, 0, 0}, {0, 3, 0}, {0, 0, 3}, {2, 2.01f, 0}});
  at::Tensor candidate = reference.clone();
  candidate[3][0] = 2.02f;
  Accuracy a = CompareOutputs(MetricKind::kTopK, reference, candidate);
  EXPECT_TRUE(a.distance_ok);
  EXPECT_DOUBLE_EQ(a.top1_agreement, 0.75);
  EXPECT_DOUBLE_EQ(*a.top5_agreement, 1.0);
  EXPECT_DOUBLE_EQ(a.loss, 0.25);
  EXPECT_NEAR(a.max_abs_error, 0.02, 1e-6);
}

TEST(AccuracyTest, CosineRelativeL2AndMaxAbsErrorAreOverAllOutputs) {
  at::Tensor reference = Rows({{3, 4}, {0, 0}});
  at::Tensor candidate = Rows({{3, 4}, {0, 1}});
  Accuracy a = CompareOutputs(MetricKind::kGeneric, reference, candidate);
  // |ref| = 5, |cand| = sqrt(26), ref . cand = 25.
  EXPECT_NEAR(a.cosine, 25 / (5 * std::sqrt(26.0)), 1e-12);
  EXPECT_NEAR(a.relative_l2, 1.0 / 5, 1e-12);
  EXPECT_NEAR(a.max_abs_error, 1.0, 1e-12);
  EXPECT_TRUE(a.distance_ok);  // 0.2 <= kMaxRelativeL2
  // Generic 2-D: top-1 agreement; row 1 has argmax 0 in the reference (a tie) and 1 here.
  EXPECT_DOUBLE_EQ(a.top1_agreement, 0.5);
  EXPECT_DOUBLE_EQ(a.loss, 0.5);
}

TEST(AccuracyTest, ClassesAgreementIsTheArgmax) {
  at::Tensor reference = Rows({{1, 0}, {0, 1}, {0.4f, 0.5f}, {2, 1}});
  at::Tensor candidate = Rows({{1, 0}, {0, 1}, {0.5f, 0.4f}, {2, 1}});
  Accuracy a = CompareOutputs(MetricKind::kClasses, reference, candidate);
  EXPECT_DOUBLE_EQ(*a.class_agreement, 0.75);
  EXPECT_DOUBLE_EQ(a.top1_agreement, 0.75);
  EXPECT_FALSE(a.top5_agreement.has_value());
  EXPECT_DOUBLE_EQ(a.loss, 0.25);
  EXPECT_GT(a.cosine, 0.99);
}

TEST(AccuracyTest, ProbabilityAgreementIsAtOneHalf) {
  at::Tensor reference = at::tensor({0.1f, 0.49f, 0.51f, 0.9f, 0.5f}).unsqueeze(1);
  // 0.49 -> 0.52 crosses; 0.5 -> 0.5 stays "not above"; 0.51 -> 0.6 stays above.
  at::Tensor candidate = at::tensor({0.12f, 0.52f, 0.6f, 0.88f, 0.5f}).unsqueeze(1);
  Accuracy a = CompareOutputs(MetricKind::kProbability, reference, candidate);
  EXPECT_EQ(a.items, 5);
  EXPECT_DOUBLE_EQ(*a.agreement_at_half, 0.8);
  EXPECT_DOUBLE_EQ(a.loss, 0.2);
  EXPECT_NEAR(a.max_abs_error, 0.09, 1e-6);
  EXPECT_DOUBLE_EQ(a.top1_agreement, 1.0);  // one output per item: always its own argmax
}

TEST(AccuracyTest, GenericOneColumnOutputsUseTheRelativeDistance) {
  at::Tensor reference = at::tensor({1.0f, 2.0f, 2.0f});
  Accuracy a = CompareOutputs(MetricKind::kGeneric, reference, reference * 1.1);
  EXPECT_DOUBLE_EQ(a.top1_agreement, 1.0);
  EXPECT_NEAR(a.loss, 0.1, 1e-6);
}

TEST(AccuracyTest, NonFiniteCandidatesFailTheDistanceCheck) {
  at::Tensor reference = Rows({{1, 0}, {0, 1}});
  at::Tensor candidate = reference.clone();
  candidate[1][1] = std::numeric_limits<float>::quiet_NaN();
  Accuracy a = CompareOutputs(MetricKind::kClasses, reference, candidate);
  EXPECT_FALSE(a.distance_ok);
  EXPECT_DOUBLE_EQ(a.loss, 1.0);
}

TEST(AccuracyTest, MismatchedShapesAreRefused) {
  try {
    CompareOutputs(MetricKind::kTopK, at::zeros({2, 3}), at::zeros({3, 2}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("[3, 2]"), std::string::npos) << e.what();
  }
}

TEST(AccuracyTest, DefaultEvalSetHasFourBatchesAndSixteenItemsUnlessCostly) {
  EXPECT_EQ(DefaultEvalSet(1).batches, 16);
  EXPECT_EQ(DefaultEvalSet(3).batches, 6);
  EXPECT_EQ(DefaultEvalSet(4).batches, 4);
  EXPECT_EQ(DefaultEvalSet(8).items(), 32);
  EXPECT_EQ(DefaultEvalSet(64).batches, 4);
  EXPECT_THROW(DefaultEvalSet(0), Error);
  // A costly model gets fewer items, never fewer than 4 calls: bert-large at bs1 gets 6.
  EXPECT_EQ(DefaultEvalSet(1, 22.35e9).batches, 16);
  EXPECT_EQ(DefaultEvalSet(1, 78.92e9).batches, 6);
  EXPECT_EQ(DefaultEvalSet(8, 78.92e9).batches, 4);
}

TEST(AccuracyTest, EvalSetOfAtLeastHoldsWhatWasAskedForWhateverItCosts) {
  EXPECT_EQ(EvalSetOfAtLeast(1, 100).items(), 100);
  EXPECT_EQ(EvalSetOfAtLeast(8, 100).batches, 13);
  EXPECT_EQ(EvalSetOfAtLeast(8, 100).items(), 104);
  EXPECT_EQ(EvalSetOfAtLeast(4, 2).batches, 4) << "still several calls";
  EXPECT_THROW(EvalSetOfAtLeast(1, 0), Error);
  EXPECT_THROW(EvalSetOfAtLeast(0, 16), Error);
}

TEST(AccuracyTest, CacheDirectoryFollowsTheEnvironment) {
  EXPECT_EQ(ReferenceCacheDir("/c", "/x", "/h"), "/c/references");
  EXPECT_EQ(ReferenceCacheDir(nullptr, "/x", "/h"), "/x/ipex-tune/references");
  EXPECT_EQ(ReferenceCacheDir("", "", "/h"), "/h/.cache/ipex-tune/references");
  EXPECT_EQ(ReferenceCacheDir(nullptr, nullptr, nullptr), "");
}

TEST(AccuracyTest, OutputTensorTakesTheFirstTensorAsFloat) {
  auto tuple = c10::ivalue::Tuple::create({at::ones({2, 3}, at::kBFloat16), at::zeros({1})});
  at::Tensor t = OutputTensor(tuple);
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(OutputTensor(at::scalar_tensor(2.0)).sizes(), (std::vector<int64_t>{1}));
  EXPECT_THROW(OutputTensor(torch::jit::IValue(3)), Error);
}

class ReferenceCacheTest : public testing_util::TempDirTest {
 protected:
  ReferenceCacheTest() : TempDirTest("ipt-reference-test") {}

  // Outputs that count how often they were computed.
  CachedReference Get(const std::string& key) {
    return LoadOrComputeReference(dir_, key, [this] {
      ++computed_;
      return at::arange(12, at::kFloat).reshape({4, 3});
    });
  }

  int computed_ = 0;
};

TEST_F(ReferenceCacheTest, IsWrittenOnceThenRead) {
  CachedReference first = Get("k1");
  EXPECT_EQ(first.outcome, CacheOutcome::kComputed);
  EXPECT_TRUE(first.warning.empty()) << first.warning;
  EXPECT_EQ(first.file, dir_ / "k1.ref");
  ASSERT_TRUE(std::filesystem::exists(first.file));
  EXPECT_EQ(Files(), std::vector<std::string>{"k1.ref"});  // no temporary left behind
  auto written = std::filesystem::last_write_time(first.file);

  CachedReference second = Get("k1");
  EXPECT_EQ(second.outcome, CacheOutcome::kHit);
  EXPECT_EQ(computed_, 1);
  EXPECT_TRUE(second.outputs.equal(first.outputs));
  EXPECT_EQ(std::filesystem::last_write_time(first.file), written);

  // Another key is another file.
  EXPECT_EQ(Get("k2").outcome, CacheOutcome::kComputed);
  EXPECT_EQ(computed_, 2);
}

TEST_F(ReferenceCacheTest, CorruptFilesAreRecomputedWithAWarning) {
  const std::filesystem::path file = Get("k").file;
  std::string good;
  {
    std::ifstream in(file, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string flipped = good;
  flipped.back() ^= 0x01;
  std::string other_key = good;
  other_key.replace(other_key.find("key k"), 5, "key x");
  const std::vector<std::pair<std::string, std::string>> corruptions = {
      {"truncated", good.substr(0, good.size() - 5)}, {"checksum", flipped},      {"empty", ""},
      {"garbage", "not a reference at all\n"},        {"another key", other_key},
  };
  for (const auto& [what, content] : corruptions) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << content;
    int before = computed_;
    CachedReference r = Get("k");
    EXPECT_EQ(r.outcome, CacheOutcome::kCorrupt) << what;
    EXPECT_EQ(computed_, before + 1) << what;
    EXPECT_NE(r.warning.find(file.string()), std::string::npos) << what << ": " << r.warning;
    EXPECT_TRUE(r.outputs.equal(at::arange(12, at::kFloat).reshape({4, 3}))) << what;
    // Replaced by a good file: the next call reads it.
    EXPECT_EQ(Get("k").outcome, CacheOutcome::kHit) << what;
  }
}

TEST_F(ReferenceCacheTest, AnUnwritableCacheStillGivesTheOutputs) {
  std::filesystem::create_directories(dir_.parent_path());
  std::ofstream(dir_) << "a file where the directory should be";
  CachedReference r = Get("k");
  EXPECT_EQ(r.outcome, CacheOutcome::kNotStored);
  EXPECT_FALSE(r.warning.empty());
  EXPECT_EQ(r.outputs.size(0), 4);
  std::filesystem::remove(dir_);
  EXPECT_EQ(LoadOrComputeReference({}, "k", [] { return at::ones({2}); }).outcome,
            CacheOutcome::kNotStored);
}

DlrmConfig TinyDlrm() {
  DlrmConfig config;
  config.name = "dlrm-tiny";
  config.dense_features = 4;
  config.bottom_mlp = {8, 4};
  config.top_mlp = {16, 1};
  config.table_rows = {5, 7, 1, 50};
  return config;
}

TEST(ReferenceKeyTest, ChangesWithTheModelTheSetAndTheInputs) {
  auto w = MakeDlrm(TinyDlrm(), {});
  WorkloadOptions other_seed;
  other_seed.seed = 7;
  auto other = MakeDlrm(TinyDlrm(), other_seed);
  const std::string key = ReferenceKey("m", *w, {8, 4});
  EXPECT_EQ(key, ReferenceKey("m", *MakeDlrm(TinyDlrm(), {}), {8, 4}));
  EXPECT_NE(key, ReferenceKey("m2", *w, {8, 4}));
  EXPECT_NE(key, ReferenceKey("m", *w, {8, 5}));
  EXPECT_NE(key, ReferenceKey("m", *w, {4, 8}));
  EXPECT_NE(key, ReferenceKey("m", *other, {8, 4}));  // other inputs, same model hash
}

TEST(RunEvalSetTest, ConcatenatesTheBatchesInOrder) {
  auto w = MakeDlrm(TinyDlrm(), {});
  torch::jit::Module m = w->BuildModel();
  torch::NoGradGuard no_grad;
  at::Tensor all = RunEvalSet(*w, {4, 3}, [&m](const std::vector<torch::jit::IValue>& inputs) {
    return m.forward(inputs);
  });
  EXPECT_EQ(all.sizes(), (std::vector<int64_t>{12, 1}));
  at::Tensor second = m.forward(w->MakeInputs(4, 1)).toTensor();
  EXPECT_TRUE(all.slice(0, 4, 8).equal(second));
}

}  // namespace
}  // namespace ipt::workloads
