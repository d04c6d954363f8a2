#include "workloads/model_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/workloads/test_util.h"
#include "workloads/accuracy.h"
#include "workloads/bert.h"
#include "workloads/dlrm.h"
#include "workloads/user_model.h"

namespace ipt::workloads {
namespace {

using testing_util::SeqLen;
using testing_util::TinyBert;

std::vector<at::Tensor> Outputs(torch::jit::Module module, const Workload& workload) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> outputs;
  for (int64_t i = 0; i < 3; ++i) {
    outputs.push_back(module.forward(workload.MakeInputs(2, i)).toTensor());
  }
  return outputs;
}

void ExpectBitIdentical(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].equal(b[i])) << "batch " << i;
}

TEST(ModelCacheDirTest, IsBesideTheReferences) {
  EXPECT_EQ(ModelCacheDir("/c", "/x", "/h"), "/c/models");
  EXPECT_EQ(ModelCacheDir(nullptr, "/x", "/h"), "/x/ipex-tune/models");
  EXPECT_EQ(ModelCacheDir("", "", "/h"), "/h/.cache/ipex-tune/models");
  EXPECT_EQ(ModelCacheDir(nullptr, nullptr, nullptr), "");
  EXPECT_EQ(ModelCacheDir("/c", nullptr, nullptr).parent_path(),
            ReferenceCacheDir("/c", nullptr, nullptr).parent_path());
}

TEST(ExecutableHashTest, IsTheSameWithinAProcess) {
  const std::string hash = ExecutableHash();
  EXPECT_EQ(hash.size(), 64U);
  EXPECT_EQ(ExecutableHash(), hash);
}

TEST(ModelKeyTest, ChangesWithEveryOptionThatShapesTheModel) {
  const ModelKey key = MakeModelKey(*MakeBert(TinyBert(), SeqLen(16)), "1.0", "exe");
  EXPECT_FALSE(key.empty());
  EXPECT_EQ(key.file_name.rfind("bert-tiny-", 0), 0U) << key.file_name;
  EXPECT_EQ(MakeModelKey(*MakeBert(TinyBert(), SeqLen(16)), "1.0", "exe").key, key.key);

  auto expect_other = [&key](const Workload& w, const std::string& what) {
    const ModelKey other = MakeModelKey(w, "1.0", "exe");
    EXPECT_NE(other.key, key.key) << what;
    EXPECT_NE(other.file_name, key.file_name) << what;
  };
  BertConfig c = TinyBert();
  c.layers = 3;
  expect_other(*MakeBert(c, SeqLen(16)), "layers");
  c = TinyBert();
  c.hidden = 64;
  expect_other(*MakeBert(c, SeqLen(16)), "hidden");
  c = TinyBert();
  c.heads = 8;  // neither the inputs nor the FLOPs change
  expect_other(*MakeBert(c, SeqLen(16)), "heads");
  c = TinyBert();
  c.intermediate = 128;
  expect_other(*MakeBert(c, SeqLen(16)), "intermediate");
  c = TinyBert();
  c.name = "bert-small";
  expect_other(*MakeBert(c, SeqLen(16)), "name");
  expect_other(*MakeBert(TinyBert(), SeqLen(32)), "seq_len");
  WorkloadOptions seeded = SeqLen(16);
  seeded.seed = 7;
  expect_other(*MakeBert(TinyBert(), seeded), "seed");

  DlrmConfig d;
  d.table_rows = std::vector<int64_t>(26, 100);
  const ModelKey dlrm = MakeModelKey(*MakeDlrm(d, {}), "1.0", "exe");
  d.table_rows[3] = 101;
  EXPECT_NE(MakeModelKey(*MakeDlrm(d, {}), "1.0", "exe").key, dlrm.key) << "table rows";
  d.table_rows[3] = 100;
  d.top_mlp = {64, 1};
  EXPECT_NE(MakeModelKey(*MakeDlrm(d, {}), "1.0", "exe").key, dlrm.key) << "top MLP";

  // The versions change the file; the executable only the key, so that a rebuilt executable's
  // model replaces its predecessor's.
  const ModelKey version = MakeModelKey(*MakeBert(TinyBert(), SeqLen(16)), "1.1", "exe");
  EXPECT_NE(version.key, key.key);
  EXPECT_NE(version.file_name, key.file_name);
  const ModelKey rebuilt = MakeModelKey(*MakeBert(TinyBert(), SeqLen(16)), "1.0", "exe2");
  EXPECT_NE(rebuilt.key, key.key);
  EXPECT_EQ(rebuilt.file_name, key.file_name);

  // ResNet-50 has no sequence: seq_len does not make another model.
  EXPECT_EQ(MakeModelKey(*MakeWorkload("resnet50", SeqLen(64)), "1.0", "exe").key,
            MakeModelKey(*MakeWorkload("resnet50", {}), "1.0", "exe").key);
  EXPECT_TRUE(MakeModelKey(*MakeBert(TinyBert(), {}), "1.0", "").empty());
}

class ModelCacheTest : public testing_util::TempDirTest {
 protected:
  ModelCacheTest() : TempDirTest("ipt-model-cache-test") {}

  // The tiny BERT's model through the cache in `dir`, counting builds.
  CachedModel Get(const std::filesystem::path& dir, const std::string& executable = "exe") {
    return LoadOrBuildModel(dir, MakeModelKey(*workload_, "test", executable), [this] {
      ++built_;
      return workload_->BuildModel();
    });
  }

  std::unique_ptr<Workload> workload_ = MakeBert(TinyBert(), SeqLen(16));
  std::atomic<int> built_{0};
};

TEST_F(ModelCacheTest, IsBuiltOnceThenLoadedAsTheSameModel) {
  CachedModel first = Get(dir_);
  EXPECT_EQ(first.outcome, CacheOutcome::kComputed);
  EXPECT_TRUE(first.warning.empty()) << first.warning;
  EXPECT_EQ(first.file, dir_ / MakeModelKey(*workload_, "test", "exe").file_name);
  ASSERT_TRUE(std::filesystem::exists(first.file));
  EXPECT_EQ(Files(), std::vector<std::string>{first.file.filename().string()});  // no temporary
  auto written = std::filesystem::last_write_time(first.file);

  CachedModel second = Get(dir_);
  EXPECT_EQ(second.outcome, CacheOutcome::kHit);
  EXPECT_TRUE(second.warning.empty()) << second.warning;
  EXPECT_EQ(built_.load(), 1);
  EXPECT_EQ(std::filesystem::last_write_time(first.file), written);

  // The study's identity: the model hash of a hit is the one of the miss that stored it and of a
  // process without a cache, and it is the module's own.
  EXPECT_EQ(second.model_hash, first.model_hash);
  EXPECT_EQ(ModelHash(second.module), first.model_hash);
  EXPECT_EQ(ModelHash(first.module), first.model_hash);
  CachedModel uncached = Get({});
  EXPECT_EQ(uncached.outcome, CacheOutcome::kNotStored);
  EXPECT_EQ(uncached.model_hash, first.model_hash);

  // The same model as built: every parameter and buffer, the mode, and the outputs bit for bit.
  torch::jit::Module built = workload_->BuildModel();
  EXPECT_EQ(second.module.is_training(), built.is_training());
  std::vector<std::pair<std::string, at::Tensor>> expected;
  for (const auto& p : built.named_parameters()) expected.emplace_back(p.name, p.value);
  for (const auto& b : built.named_buffers()) expected.emplace_back(b.name, b.value);
  size_t i = 0;
  for (const auto& p : second.module.named_parameters()) {
    ASSERT_LT(i, expected.size());
    EXPECT_EQ(p.name, expected[i].first);
    EXPECT_TRUE(p.value.equal(expected[i++].second)) << p.name;
  }
  for (const auto& b : second.module.named_buffers()) {
    ASSERT_LT(i, expected.size());
    EXPECT_EQ(b.name, expected[i].first);
    EXPECT_TRUE(b.value.equal(expected[i++].second)) << b.name;
  }
  EXPECT_EQ(i, expected.size());
  const std::vector<at::Tensor> outputs = Outputs(built, *workload_);
  ExpectBitIdentical(Outputs(first.module, *workload_), outputs);
  ExpectBitIdentical(Outputs(second.module, *workload_), outputs);
}

TEST_F(ModelCacheTest, CorruptFilesAreRebuiltWithAWarning) {
  const CachedModel good = Get(dir_);
  std::string bytes;
  {
    std::ifstream in(good.file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  // The middle of the file is the word embeddings: a changed weight that loads without error.
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x01;
  const std::vector<std::pair<std::string, std::string>> corruptions = {
      {"changed weight", flipped},
      {"truncated", bytes.substr(0, bytes.size() - 100)},
      {"empty", ""},
      {"garbage", "not a model at all\n"},
  };
  for (const auto& [what, content] : corruptions) {
    std::ofstream(good.file, std::ios::binary | std::ios::trunc) << content;
    int before = built_;
    CachedModel r = Get(dir_);
    EXPECT_EQ(r.outcome, CacheOutcome::kCorrupt) << what;
    EXPECT_EQ(built_.load(), before + 1) << what;
    EXPECT_NE(r.warning.find(good.file.string()), std::string::npos) << what << ": " << r.warning;
    EXPECT_EQ(r.model_hash, good.model_hash) << what;
    if (what == "changed weight") {
      EXPECT_NE(r.warning.find("model hash"), std::string::npos) << r.warning;
    }
    // Replaced by a good file: the next call reads it.
    EXPECT_EQ(Get(dir_).outcome, CacheOutcome::kHit) << what;
  }
}

TEST_F(ModelCacheTest, AnotherExecutablesModelIsReplacedWithoutAWarning) {
  const CachedModel old = Get(dir_, "old-exe");
  CachedModel r = Get(dir_, "new-exe");
  EXPECT_EQ(r.outcome, CacheOutcome::kComputed);
  EXPECT_TRUE(r.warning.empty()) << r.warning;
  EXPECT_EQ(r.file, old.file);
  EXPECT_EQ(Files().size(), 1U);
  EXPECT_EQ(Get(dir_, "new-exe").outcome, CacheOutcome::kHit);
  EXPECT_EQ(built_.load(), 2);
}

TEST_F(ModelCacheTest, AnUnwritableCacheStillGivesTheModel) {
  std::filesystem::create_directories(dir_.parent_path());
  std::ofstream(dir_) << "a file where the directory should be";
  CachedModel r = Get(dir_);
  EXPECT_EQ(r.outcome, CacheOutcome::kNotStored);
  EXPECT_NE(r.warning.find("not stored"), std::string::npos) << r.warning;
  EXPECT_EQ(ModelHash(r.module), r.model_hash);
  EXPECT_EQ(Outputs(r.module, *workload_)[0].sizes(), (std::vector<int64_t>{2, 2}));
  std::filesystem::remove(dir_);

  CachedModel no_dir = Get({});
  EXPECT_EQ(no_dir.outcome, CacheOutcome::kNotStored);
  EXPECT_FALSE(no_dir.warning.empty());
  CachedModel no_key = LoadOrBuildModel(dir_, {}, [this] { return workload_->BuildModel(); });
  EXPECT_EQ(no_key.outcome, CacheOutcome::kNotStored);
  EXPECT_FALSE(no_key.warning.empty());
  EXPECT_FALSE(std::filesystem::exists(dir_));
}

// Side-by-side workers that all miss: each builds and renames its own file over the others', and
// the one left is whole.
TEST_F(ModelCacheTest, ConcurrentMissesLeaveOneGoodFile) {
  std::vector<CachedModel> results(3);
  std::vector<std::thread> threads;
  for (auto& r : results) threads.emplace_back([this, &r] { r = Get(dir_); });
  for (auto& t : threads) t.join();
  for (const CachedModel& r : results) {
    EXPECT_NE(r.outcome, CacheOutcome::kNotStored) << r.warning;
    EXPECT_EQ(r.model_hash, results[0].model_hash);
  }
  EXPECT_EQ(Files().size(), 1U);
  EXPECT_EQ(Get(dir_).outcome, CacheOutcome::kHit);
}

TEST(ModelKeyTest, UserModelsAreNotCached) {
  const std::filesystem::path file = std::filesystem::temp_directory_path() /
                                     ("ipt-model-cache-user-" + std::to_string(getpid()) + ".pt");
  torch::jit::Module m("Double");
  m.define("def forward(self, x):\n    return x * 2\n");
  m.save(file.string());
  WorkloadOptions options;
  options.model_path = file.string();
  options.inputs = {{"x", {1, 4}, "float32"}};
  EXPECT_TRUE(MakeModelKey(*MakeUserModel(options), "1.0", ExecutableHash()).empty());
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace ipt::workloads
