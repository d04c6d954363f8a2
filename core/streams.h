// Multi-stream execution: N streams share one model (one set of weights); each stream is a
// thread of its own with its own OpenMP team, pinned to its share of the CPUs. A call's batch is
// cut into one share per stream, the shares run at once, and the outputs are concatenated back
// in order.
#pragma once

#include <torch/script.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/platform/cpu_set.h"
#include "core/platform/stream_plan.h"
#include "recipes/recipe.h"

namespace ipt::core {

using recipes::InputSplit;

// The split a model's forward needs, read from its graph: EmbeddingBag indices and offsets that
// come straight from forward's inputs (a tensor, or an element of a list input) are cut as
// bags, every other input along dim 0. Empty when every input is cut along dim 0.
std::vector<InputSplit> InferSplit(const torch::jit::Module& module);

// How many items `inputs` hold, read from each input as `split` says (empty `split`: every
// input along dim 0). Throws ipt::Error(kInvalidArgument) naming the inputs when they disagree,
// when an input cannot be cut as its split says (a scalar, a dim it does not have), or when
// `split` does not have one entry per input.
int64_t CountItems(const std::vector<torch::jit::IValue>& inputs,
                   const std::vector<InputSplit>& split);

// Item counts of `batch` items over at most `streams` shares: the sizes differ by at most one,
// larger shares first, and there is no empty share (fewer shares than streams when
// batch < streams).
std::vector<int64_t> ShareItems(int64_t batch, int64_t streams);

// Cuts `inputs` into shares of `counts` items (which sum to CountItems). Tensors are narrowed
// (views, no copy) except EmbeddingBag offsets, which are rebased to start at 0.
std::vector<std::vector<torch::jit::IValue>> SplitInputs(
    const std::vector<torch::jit::IValue>& inputs, const std::vector<InputSplit>& split,
    const std::vector<int64_t>& counts);

// Joins the shares' outputs in order: tensors along dim 0, tuples and lists element by element.
// Throws ipt::Error(kInvalidArgument) for outputs of different structure or a 0-dim tensor.
torch::jit::IValue ConcatOutputs(std::vector<torch::jit::IValue> parts);

// Pins the calling thread and an OpenMP team of `cpus.size()` threads (thread i to the i-th CPU
// of the set, the calling thread being thread 0) and sets the calling thread's OpenMP thread
// count to match; the destructor puts back every thread's previous mask and the previous count.
//
// GNU OpenMP keeps one pool of team threads per thread that starts parallel regions, and gives
// team member i the same pool thread in every region of the same or smaller size, so pinning
// once holds for the libtorch and oneDNN regions that follow on this thread. Not copyable; the
// scope is lexical and must end on the thread that began it.
// Throws ipt::Error(kInvalidArgument) naming the set when it is empty or the kernel refuses it.
class ScopedTeamBinding {
 public:
  explicit ScopedTeamBinding(const platform::CpuSet& cpus);
  ~ScopedTeamBinding();
  ScopedTeamBinding(const ScopedTeamBinding&) = delete;
  ScopedTeamBinding& operator=(const ScopedTeamBinding&) = delete;

  // Each team thread's mask as the kernel reports it after pinning, thread 0 first.
  const std::vector<platform::CpuSet>& applied() const { return applied_; }

 private:
  void Restore();

  int previous_threads_ = 1;
  std::vector<platform::CpuSet> previous_;
  std::vector<platform::CpuSet> applied_;
};

// What a stream was given and what its threads were really bound to.
struct StreamBinding {
  platform::CpuSet cpus;  // the plan's CPUs for the stream
  int threads = 0;        // its OpenMP thread count
  // Per team thread, read back from the kernel; empty when the executor does not bind.
  std::vector<platform::CpuSet> applied;
};

// Runs `fn` (a model's forward) on N stream threads. Thread-safe: calls from several threads at
// once queue per stream in arrival order.
class StreamExecutor {
 public:
  using Forward = std::function<torch::jit::IValue(const std::vector<torch::jit::IValue>&)>;

  // One stream per plan entry. With `bind`, each stream pins its team to its CPUs; without, the
  // streams only get their thread counts. Returns once every stream is bound and idle.
  // Throws what a stream's binding threw.
  StreamExecutor(const platform::StreamPlan& plan, Forward forward, std::vector<InputSplit> split,
                 bool bind);
  // Finishes the queued work, then joins the streams.
  ~StreamExecutor();
  StreamExecutor(const StreamExecutor&) = delete;
  StreamExecutor& operator=(const StreamExecutor&) = delete;

  // Cuts the batch over the streams (ShareItems), runs the shares at once and concatenates
  // the outputs. With one stream, or one item, the inputs go through uncut.
  torch::jit::IValue Run(std::vector<torch::jit::IValue> inputs);
  // The same, without waiting: the future's get() concatenates and rethrows a stream's error.
  std::future<torch::jit::IValue> RunAsync(std::vector<torch::jit::IValue> inputs);
  // Runs the whole call, uncut, on the next stream in turn: for throughput, where every stream
  // is kept busy with calls of its own (N calls in flight for N streams).
  std::future<torch::jit::IValue> Submit(std::vector<torch::jit::IValue> inputs);

  size_t streams() const { return streams_.size(); }
  const std::vector<StreamBinding>& bindings() const { return bindings_; }

 private:
  struct Stream;
  void Loop(Stream& stream, size_t index, bool bind, std::promise<void>& ready);
  void Stop();
  std::future<torch::jit::IValue> Enqueue(size_t stream, std::vector<torch::jit::IValue> inputs);

  Forward forward_;
  std::vector<InputSplit> split_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<StreamBinding> bindings_;
  std::atomic<size_t> next_stream_{0};
};

// `forward` run on consecutive pieces of at most `micro_batch` items of each call (cut and
// joined as the streams cut a batch), for models whose intermediates at a large batch spill the
// caches: BERT-base at bs8 ran its matmuls 7.5% slower per item than at bs1, its attention
// scores 2.5x slower. `forward` itself when `micro_batch` is 0; a call of at most
// `micro_batch` items goes through uncut.
StreamExecutor::Forward MicroBatched(StreamExecutor::Forward forward, int64_t micro_batch,
                                     std::vector<InputSplit> split);

}  // namespace ipt::core
