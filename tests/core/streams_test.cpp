// Multi-stream execution on this machine: shares cut and joined exactly, OpenMP teams pinned and
// restored as the kernel reports them, and model outputs equal to one stream's.
#include "core/streams.h"

#include <gtest/gtest.h>
#include <omp.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "core/optimize.h"
#include "core/platform/binding.h"
#include "tests/core/test_models.h"
#include "tests/core/test_util.h"

namespace ipt::core {
namespace {

using platform::CpuSet;
using testing::ErrorOf;
using torch::jit::IValue;
using Kind = InputSplit::Kind;

// A stream plan of `streams` streams that all run on the CPUs this process may use, for tests
// that need more streams than this machine has cores.
platform::StreamPlan Oversubscribed(int streams) {
  const CpuSet allowed = platform::CurrentAffinity();
  platform::StreamPlan plan;
  for (int i = 0; i < streams; ++i) {
    plan.streams.push_back({CpuSet{allowed.ids()[i % allowed.size()]}, 1, 0});
  }
  return plan;
}

void ExpectSame(const IValue& a, const IValue& b) {
  if (a.isTensor()) {
    ASSERT_TRUE(b.isTensor());
    EXPECT_TRUE(at::equal(a.toTensor(), b.toTensor()))
        << "max abs difference " << (a.toTensor() - b.toTensor()).abs().max().item<double>();
    return;
  }
  ASSERT_TRUE(a.isTuple() && b.isTuple());
  const auto& x = a.toTupleRef().elements();
  const auto& y = b.toTupleRef().elements();
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    SCOPED_TRACE("output " + std::to_string(i));
    ExpectSame(x[i], y[i]);
  }
}

TEST(ShareItemsTest, UnevenBatchesDifferByOneLargerFirstAndNoShareIsEmpty) {
  EXPECT_EQ(ShareItems(8, 2), (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(ShareItems(7, 2), (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(ShareItems(8, 3), (std::vector<int64_t>{3, 3, 2}));
  EXPECT_EQ(ShareItems(1, 4), (std::vector<int64_t>{1}));
  EXPECT_EQ(ShareItems(3, 4), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_THROW(ShareItems(4, 0), Error);
}

TEST(SplitInputsTest, DimSplitNarrowsTensorsAndListsAndReplicatesTheRest) {
  const at::Tensor x = at::arange(5 * 3).reshape({5, 3});
  const at::Tensor y = at::arange(2 * 5).reshape({2, 5});  // batch along dim 1
  c10::List<at::Tensor> list({at::arange(5), at::arange(10).reshape({5, 2})});
  const std::vector<IValue> inputs = {x, y, list, IValue(int64_t{7})};
  const std::vector<InputSplit> split = {
      {Kind::kDim, 0}, {Kind::kDim, 1}, {Kind::kDim, 0}, {Kind::kReplicate}};
  EXPECT_EQ(CountItems(inputs, split), 5);
  const auto shares = SplitInputs(inputs, split, {3, 2});
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_TRUE(at::equal(shares[0][0].toTensor(), x.narrow(0, 0, 3)));
  EXPECT_TRUE(at::equal(shares[1][0].toTensor(), x.narrow(0, 3, 2)));
  EXPECT_TRUE(at::equal(shares[1][1].toTensor(), y.narrow(1, 3, 2)));
  EXPECT_TRUE(at::equal(shares[1][2].toTensorVector()[1], list.get(1).narrow(0, 3, 2)));
  EXPECT_EQ(shares[0][3].toInt(), 7);
  EXPECT_EQ(shares[1][3].toInt(), 7);
}

TEST(SplitInputsTest, EmbeddingBagSharesGiveTheWholeBatchsBags) {
  // Bags of uneven size, an empty bag among them, two tables.
  const at::Tensor table = at::randn({40, 4});
  c10::List<at::Tensor> indices({at::randint(0, 40, {11}), at::randint(0, 40, {6})});
  c10::List<at::Tensor> offsets(
      {at::tensor({0, 3, 3, 4, 8, 10}, at::kLong), at::tensor({0, 1, 2, 3, 4, 5}, at::kLong)});
  const std::vector<IValue> inputs = {indices, offsets};
  const std::vector<InputSplit> split = {{Kind::kBagIndices, 0, 1}, {Kind::kBagOffsets}};
  ASSERT_EQ(CountItems(inputs, split), 6);
  for (const std::vector<int64_t>& counts :
       {std::vector<int64_t>{3, 3}, {4, 2}, {2, 2, 2}, {1, 1, 1, 1, 1, 1}}) {
    const auto shares = SplitInputs(inputs, split, counts);
    for (size_t t = 0; t < 2; ++t) {
      const at::Tensor whole = std::get<0>(
          at::embedding_bag(table, indices.get(t), offsets.get(t), false, /*mode=sum*/ 0));
      std::vector<at::Tensor> parts;
      for (const auto& share : shares) {
        const at::Tensor o = share[1].toTensorVector()[t];
        EXPECT_EQ(o[0].item<int64_t>(), 0) << "offsets are rebased to 0";
        parts.push_back(
            std::get<0>(at::embedding_bag(table, share[0].toTensorVector()[t], o, false, 0)));
      }
      EXPECT_TRUE(at::equal(at::cat(parts, 0), whole)) << "table " << t;
    }
  }
}

TEST(SplitInputsTest, InputsThatCannotBeCutAreRefusedNamingThem) {
  EXPECT_EQ(ErrorOf([] {
              CountItems({at::ones({4, 2}), at::ones({3, 2})}, {});
            }),
            "splitting a batch over streams: input 1 holds 3 items along dim 0, input 0 holds 4");
  EXPECT_EQ(ErrorOf([] {
              CountItems({at::ones({4, 2}), IValue(2.0)}, {});
            }),
            "splitting a batch over streams: input 1 is a Double, which cannot be cut (dim); "
            "give it split kind replicate");
  EXPECT_EQ(ErrorOf([] {
              CountItems({at::ones({4})}, {{Kind::kDim, 1}});
            }),
            "splitting a batch over streams: input 0 has 1 dimensions, its split cuts dim 1");
  EXPECT_EQ(ErrorOf([] {
              CountItems({at::ones({4})}, {{}, {}});
            }),
            "splitting a batch over streams: the split names 2 inputs, the call has 1");
  EXPECT_EQ(ErrorOf([] { CountItems({at::ones({4})}, {{Kind::kReplicate}}); }),
            "splitting a batch over streams: no input says how many items the batch holds (all "
            "are replicated)");
}

TEST(ConcatOutputsTest, JoinsTensorsTuplesAndListsInOrder) {
  const at::Tensor a = at::randn({2, 3}), b = at::randn({1, 3});
  ExpectSame(ConcatOutputs({a, b}), at::cat({a, b}));
  const IValue joined = ConcatOutputs(
      {c10::ivalue::Tuple::create({a, a * 2}), c10::ivalue::Tuple::create({b, b * 2})});
  ExpectSame(joined, c10::ivalue::Tuple::create({at::cat({a, b}), at::cat({a * 2, b * 2})}));
  const IValue list = ConcatOutputs({c10::List<at::Tensor>({a}), c10::List<at::Tensor>({b})});
  EXPECT_TRUE(at::equal(list.toTensorVector()[0], at::cat({a, b})));
  EXPECT_THROW(ConcatOutputs({at::ones({}), at::ones({})}), Error);
  EXPECT_THROW(ConcatOutputs({a, c10::ivalue::Tuple::create({b})}), Error);
}

// Every team thread's mask, read in a parallel region of `n` threads on the calling thread.
std::vector<CpuSet> TeamAffinity(int n) {
  std::vector<CpuSet> masks(n);
#pragma omp parallel num_threads(n)
  masks[omp_get_thread_num()] = platform::CurrentAffinity();
  return masks;
}

TEST(ScopedTeamBindingTest, PinsEachTeamThreadToOneCpuAndRestoresThem) {
  const CpuSet allowed = platform::CurrentAffinity();
  const int n = static_cast<int>(allowed.size());
  std::thread([&] {  // a fresh thread: its own OpenMP pool, as a stream has
    const std::vector<CpuSet> before = TeamAffinity(n);
    const int threads_before = at::get_num_threads();  // after libtorch's lazy set-up
    {
      ScopedTeamBinding binding(allowed);
      ASSERT_EQ(binding.applied().size(), allowed.size());
      for (int t = 0; t < n; ++t) EXPECT_EQ(binding.applied()[t], CpuSet{allowed.ids()[t]});
      EXPECT_EQ(omp_get_max_threads(), n);
      // Later regions (libtorch's, oneDNN's) run on the same pinned threads.
      const std::vector<CpuSet> during = TeamAffinity(n);
      for (int t = 0; t < n; ++t) EXPECT_EQ(during[t], CpuSet{allowed.ids()[t]}) << t;
      EXPECT_EQ(platform::CurrentAffinity(), CpuSet{allowed.ids()[0]});
    }
    EXPECT_EQ(TeamAffinity(n), before);
    EXPECT_EQ(platform::CurrentAffinity(), allowed);
    EXPECT_EQ(omp_get_max_threads(), threads_before);
  })
      .join();
}

TEST(ScopedTeamBindingTest, RefusesEmptyAndForbiddenSets) {
  EXPECT_EQ(ErrorOf([] { ScopedTeamBinding b{CpuSet{}}; }),
            "cannot bind an OpenMP team to an empty CPU set");
  const int forbidden = platform::CurrentAffinity().max() + 1000;
  const CpuSet before = platform::CurrentAffinity();
  EXPECT_THROW(ScopedTeamBinding{CpuSet{forbidden}}, Error);
  EXPECT_EQ(platform::CurrentAffinity(), before);
}

// A small conv net and an MLP head, optimised by the core in fp32.
torch::jit::Module SmallNet() {
  torch::jit::Module m("Net");
  at::manual_seed(3);
  m.register_parameter("w1", at::randn({16, 3, 3, 3}) * 0.2, false);
  m.register_parameter("b1", at::randn({16}), false);
  m.register_parameter("w2", at::randn({10, 16}) * 0.2, false);
  m.register_parameter("b2", at::randn({10}), false);
  m.define(R"(
def forward(self, x):
  y = torch.relu(torch.conv2d(x, self.w1, self.b1, [1, 1], [1, 1]))
  y = torch.flatten(torch.adaptive_avg_pool2d(y, [1, 1]), 1)
  return torch.linear(y, self.w2, self.b2), y
)");
  m.eval();
  return m;
}

// What one stream gives for the same items: each share of the batch run on a one-stream
// executor with the same thread count, in order. oneDNN's fp32 GEMM picks its kernel by the
// number of rows, so a linear layer can differ from the whole batch in the last bit (1 ulp
// here); a convolution does not.
IValue OneStreamShares(StreamExecutor& one, const std::vector<IValue>& inputs,
                       const std::vector<InputSplit>& split, int64_t streams) {
  const std::vector<int64_t> counts = ShareItems(CountItems(inputs, split), streams);
  std::vector<IValue> outputs;
  for (const auto& share : SplitInputs(inputs, split, counts)) outputs.push_back(one.Run(share));
  return ConcatOutputs(std::move(outputs));
}

double RelativeDifference(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

TEST(StreamExecutorTest, StreamsCutTheBatchAndMatchOneStreamBitForBit) {
  OptimizedModel model = Optimize(SmallNet(), recipes::Recipe{});
  auto forward = [&](const std::vector<IValue>& in) { return model.Run(in); };
  StreamExecutor one(Oversubscribed(1), forward, {}, true);
  StreamExecutor two(Oversubscribed(2), forward, {}, true);
  StreamExecutor three(Oversubscribed(3), forward, {}, true);
  ASSERT_EQ(two.streams(), 2u);
  for (int64_t batch : {1, 2, 5, 8}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const at::Tensor x = at::randn({batch, 3, 12, 12});
    ExpectSame(two.Run({x}), OneStreamShares(one, {x}, {}, 2));
    ExpectSame(three.Run({x}), OneStreamShares(one, {x}, {}, 3));
    const IValue whole = one.Run({x});
    const IValue two_out = two.Run({x});
    const auto& joined = two_out.toTupleRef().elements();
    EXPECT_TRUE(at::equal(joined[1].toTensor(), whole.toTupleRef().elements()[1].toTensor()))
        << "the convolution's output does not depend on the batch";
    EXPECT_LT(RelativeDifference(joined[0].toTensor(), whole.toTupleRef().elements()[0].toTensor()),
              1e-6);
  }
  for (const StreamBinding& b : two.bindings()) {
    ASSERT_EQ(b.applied.size(), 1u);
    EXPECT_EQ(b.applied[0], b.cpus);
  }
}

TEST(StreamExecutorTest, DlrmBagsRunOnTwoStreamsLikeOne) {
  const auto dlrm = workloads::MakeDlrm(testing::SmallDlrm(), {});
  OptimizedModel model = Optimize(dlrm->BuildModel(), recipes::Recipe{});
  auto forward = [&](const std::vector<IValue>& in) { return model.Run(in); };
  const std::vector<InputSplit> split = {
      {Kind::kDim, 0}, {Kind::kBagIndices, 0, 2}, {Kind::kBagOffsets}};
  EXPECT_EQ(InferSplit(dlrm->BuildModel()), split) << "read from the model's EmbeddingBags";
  EXPECT_TRUE(InferSplit(SmallNet()).empty());
  StreamExecutor one(Oversubscribed(1), forward, split, true);
  StreamExecutor two(Oversubscribed(2), forward, split, true);
  for (int64_t batch : {7, 16}) {
    const std::vector<IValue> inputs = dlrm->MakeInputs(batch, 0);
    const IValue joined = two.Run(inputs);
    EXPECT_EQ(joined.toTensor().size(0), batch);
    ExpectSame(joined, OneStreamShares(one, inputs, split, 2));
    EXPECT_LT(RelativeDifference(joined.toTensor(), one.Run(inputs).toTensor()), 1e-6);
  }
  // Without the bag split, the indices would be cut as if they had one row per item.
  StreamExecutor naive(Oversubscribed(2), forward, {}, true);
  EXPECT_THROW(naive.Run(dlrm->MakeInputs(7, 0)), Error);
}

// runtime.micro_batch: each call runs as consecutive pieces of at most N items, whole bags for
// DLRM, and gives what running those pieces one by one gives; on two streams each stream cuts
// its own share.
TEST(MicroBatchedTest, PiecesOfAtMostNItemsGiveWhatThePiecesGiveOneByOne) {
  const auto dlrm = workloads::MakeDlrm(testing::SmallDlrm(), {});
  OptimizedModel model = Optimize(dlrm->BuildModel(), recipes::Recipe{});
  const std::vector<InputSplit> split = InferSplit(dlrm->BuildModel());
  std::vector<int64_t> calls;
  auto forward = [&](const std::vector<IValue>& in) {
    calls.push_back(CountItems(in, split));
    return model.Run(in);
  };
  EXPECT_EQ(MicroBatched(forward, 0, split)(dlrm->MakeInputs(7, 0)).toTensor().size(0), 7);
  EXPECT_EQ(calls, (std::vector<int64_t>{7})) << "0: the whole call";

  const StreamExecutor::Forward pieces = MicroBatched(forward, 3, split);
  for (int64_t batch : {2, 3, 7}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const std::vector<IValue> inputs = dlrm->MakeInputs(batch, 1);
    std::vector<int64_t> counts;
    for (int64_t left = batch; left > 0; left -= 3) counts.push_back(std::min<int64_t>(left, 3));
    std::vector<IValue> one_by_one;
    for (const auto& piece : SplitInputs(inputs, split, counts)) {
      one_by_one.push_back(model.Run(piece));
    }
    calls.clear();
    const IValue out = pieces(inputs);
    EXPECT_EQ(calls, counts);
    ExpectSame(out, ConcatOutputs(std::move(one_by_one)));
    EXPECT_LT(RelativeDifference(out.toTensor(), model.Run(inputs).toTensor()), 1e-6);
  }

  calls.clear();
  std::mutex mutex;
  auto counted = [&](const std::vector<IValue>& in) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      calls.push_back(CountItems(in, split));
    }
    return model.Run(in);
  };
  StreamExecutor two(Oversubscribed(2), MicroBatched(counted, 2, split), split, true);
  EXPECT_EQ(two.Run(dlrm->MakeInputs(7, 2)).toTensor().size(0), 7);
  std::sort(calls.begin(), calls.end());
  EXPECT_EQ(calls, (std::vector<int64_t>{1, 2, 2, 2})) << "shares of 4 (2 + 2) and 3 (2 + 1)";
}

TEST(StreamExecutorTest, ConcurrentCallersEachGetTheirOwnResult) {
  OptimizedModel model = Optimize(SmallNet(), recipes::Recipe{});
  StreamExecutor streams(
      Oversubscribed(2), [&](const std::vector<IValue>& in) { return model.Run(in); }, {}, true);
  std::vector<at::Tensor> inputs, expected;
  for (int i = 0; i < 6; ++i) {
    inputs.push_back(at::randn({3, 3, 12, 12}));
    expected.push_back(streams.Run({inputs.back()}).toTupleRef().elements()[0].toTensor());
  }
  std::atomic<int> mismatches{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 6; ++i) {
    callers.emplace_back([&, i] {
      for (int repeat = 0; repeat < 5; ++repeat) {
        auto future = streams.RunAsync({inputs[i]});
        const at::Tensor out = future.get().toTupleRef().elements()[0].toTensor();
        if (!at::equal(out, expected[i])) ++mismatches;
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(StreamExecutorTest, AStreamsErrorReachesTheCallerAndTheStreamsGoOn) {
  std::atomic<int> calls{0};
  StreamExecutor streams(
      Oversubscribed(2),
      [&](const std::vector<IValue>& in) -> IValue {
        if (calls++ == 0) throw Error(ErrorCode::kInvalidArgument, "first call fails");
        return in[0].toTensor() * 2;
      },
      {}, false);
  EXPECT_THROW(streams.Run({at::ones({1, 2})}), Error);
  EXPECT_TRUE(at::equal(streams.Run({at::ones({4, 2})}).toTensor(), at::full({4, 2}, 2.0f)));
}

TEST(StreamExecutorTest, UnboundStreamsGetTheirThreadCountsAndLeaveAffinityAlone) {
  const CpuSet allowed = platform::CurrentAffinity();
  platform::StreamPlan plan;
  plan.streams.push_back({allowed, static_cast<int>(allowed.size()), 0});
  StreamExecutor streams(
      plan,
      [&](const std::vector<IValue>&) -> IValue {
        return at::tensor({static_cast<int64_t>(omp_get_max_threads()),
                           static_cast<int64_t>(platform::CurrentAffinity().size())});
      },
      {}, false);
  const at::Tensor seen = streams.Run({at::ones({1})}).toTensor();
  EXPECT_EQ(seen[0].item<int64_t>(), static_cast<int64_t>(allowed.size()));
  EXPECT_EQ(seen[1].item<int64_t>(), static_cast<int64_t>(allowed.size()));
  EXPECT_TRUE(streams.bindings()[0].applied.empty());
}

}  // namespace
}  // namespace ipt::core
