#include "core/streams.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <omp.h>
#include <sched.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <optional>
#include <utility>

#include "base/error.h"
#include "core/platform/binding.h"

namespace ipt::core {
namespace {

using platform::CpuSet;
using torch::jit::IValue;

std::string KindName(InputSplit::Kind kind) {
  switch (kind) {
    case InputSplit::Kind::kDim:
      return "dim";
    case InputSplit::Kind::kReplicate:
      return "replicate";
    case InputSplit::Kind::kBagIndices:
      return "bag_indices";
    case InputSplit::Kind::kBagOffsets:
      return "bag_offsets";
  }
  return "?";
}

[[noreturn]] void Fail(const std::string& message) {
  throw Error(ErrorCode::kInvalidArgument, "splitting a batch over streams: " + message);
}

// The tensors of an input that is a tensor or a list of tensors; empty for anything else.
std::vector<at::Tensor> Tensors(const IValue& value) {
  if (value.isTensor()) return {value.toTensor()};
  if (value.isTensorList()) return value.toTensorVector();
  if (value.isList()) {
    std::vector<at::Tensor> tensors;
    for (const IValue& item : value.toListRef()) {
      if (!item.isTensor()) return {};
      tensors.push_back(item.toTensor());
    }
    return tensors;
  }
  return {};
}

// Puts `tensors` back into the shape of `like` (a tensor or a list of tensors).
IValue Rebuild(const IValue& like, std::vector<at::Tensor> tensors) {
  if (like.isTensor()) return tensors.front();
  return c10::List<at::Tensor>(std::move(tensors));
}

InputSplit SplitOf(const std::vector<InputSplit>& split, size_t input) {
  return split.empty() ? InputSplit{} : split[input];
}

int64_t Offset(const at::Tensor& offsets, int64_t bag) { return offsets[bag].item<int64_t>(); }

}  // namespace

std::vector<InputSplit> InferSplit(const torch::jit::Module& module) {
  std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph()->copy();
  torch::jit::Inline(*graph);
  const size_t arguments = graph->inputs().size() - 1;  // input 0 is self
  // The forward argument a value is, or is an element of.
  auto argument = [&](torch::jit::Value* v) -> std::optional<size_t> {
    if (v->node()->kind() == c10::aten::__getitem__) v = v->node()->input(0);
    for (size_t i = 1; i < graph->inputs().size(); ++i) {
      if (graph->inputs()[i] == v) return i - 1;
    }
    return std::nullopt;
  };
  std::vector<InputSplit> split(arguments);
  bool bags = false;
  std::function<void(torch::jit::Block*)> visit = [&](torch::jit::Block* block) {
    for (torch::jit::Node* node : block->nodes()) {
      for (torch::jit::Block* sub : node->blocks()) visit(sub);
      if (node->kind() != c10::aten::embedding_bag) continue;
      const std::optional<size_t> indices = argument(node->input(1));
      const std::optional<size_t> offsets = argument(node->input(2));
      if (!indices || !offsets || *indices == *offsets) continue;
      split[*indices] = {InputSplit::Kind::kBagIndices, 0, static_cast<int64_t>(*offsets)};
      split[*offsets] = {InputSplit::Kind::kBagOffsets};
      bags = true;
    }
  };
  visit(graph->block());
  return bags ? split : std::vector<InputSplit>{};
}

int64_t CountItems(const std::vector<IValue>& inputs, const std::vector<InputSplit>& split) {
  if (!split.empty() && split.size() != inputs.size()) {
    Fail(fmt::format("the split names {} inputs, the call has {}", split.size(), inputs.size()));
  }
  std::optional<int64_t> items;
  size_t first = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const InputSplit s = SplitOf(split, i);
    if (s.kind == InputSplit::Kind::kReplicate || s.kind == InputSplit::Kind::kBagIndices) {
      continue;
    }
    const std::vector<at::Tensor> tensors = Tensors(inputs[i]);
    if (tensors.empty()) {
      Fail(
          fmt::format("input {} is a {}, which cannot be cut ({}); give it split kind "
                      "replicate",
                      i, inputs[i].tagKind(), KindName(s.kind)));
    }
    const int64_t dim = s.kind == InputSplit::Kind::kDim ? s.dim : 0;
    for (const at::Tensor& t : tensors) {
      if (dim >= t.dim()) {
        Fail(fmt::format("input {} has {} dimensions, its split cuts dim {}", i, t.dim(), dim));
      }
      const int64_t n = t.size(dim);
      if (!items) {
        items = n;
        first = i;
      } else if (n != *items) {
        Fail(fmt::format("input {} holds {} items along dim {}, input {} holds {}", i, n, dim,
                         first, *items));
      }
    }
  }
  if (!items) Fail("no input says how many items the batch holds (all are replicated)");
  return *items;
}

std::vector<int64_t> ShareItems(int64_t batch, int64_t streams) {
  if (streams < 1) throw Error(ErrorCode::kInvalidArgument, "ShareItems: streams must be >= 1");
  const int64_t shares = std::max<int64_t>(1, std::min(batch, streams));
  std::vector<int64_t> counts(shares, batch / shares);
  for (int64_t i = 0; i < batch % shares; ++i) ++counts[i];
  return counts;
}

namespace {

// SplitInputs for inputs CountItems has checked against `split`.
std::vector<std::vector<IValue>> SplitCounted(const std::vector<IValue>& inputs,
                                              const std::vector<InputSplit>& split,
                                              const std::vector<int64_t>& counts) {
  std::vector<std::vector<IValue>> shares(counts.size());
  for (auto& share : shares) share.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const InputSplit s = SplitOf(split, i);
    int64_t start = 0;
    for (size_t k = 0; k < counts.size(); ++k) {
      const int64_t count = counts[k];
      std::vector<at::Tensor> parts;
      switch (s.kind) {
        case InputSplit::Kind::kReplicate:
          shares[k][i] = inputs[i];
          break;
        case InputSplit::Kind::kDim:
          for (const at::Tensor& t : Tensors(inputs[i]))
            parts.push_back(t.narrow(s.dim, start, count));
          shares[k][i] = Rebuild(inputs[i], std::move(parts));
          break;
        case InputSplit::Kind::kBagOffsets:
          for (const at::Tensor& t : Tensors(inputs[i])) {
            parts.push_back(t.narrow(0, start, count) - Offset(t, start));
          }
          shares[k][i] = Rebuild(inputs[i], std::move(parts));
          break;
        case InputSplit::Kind::kBagIndices: {
          const std::vector<at::Tensor> indices = Tensors(inputs[i]);
          const std::vector<at::Tensor> offsets = Tensors(inputs.at(s.offsets));
          if (indices.size() != offsets.size() || indices.empty() ||
              inputs[i].isTensor() != inputs[s.offsets].isTensor()) {
            Fail(
                fmt::format("bag indices (input {}) and their offsets (input {}) must both be "
                            "a tensor or lists of the same length",
                            i, s.offsets));
          }
          for (size_t t = 0; t < indices.size(); ++t) {
            const int64_t bags = offsets[t].size(0);
            const int64_t begin = Offset(offsets[t], start);
            const int64_t end =
                start + count < bags ? Offset(offsets[t], start + count) : indices[t].size(0);
            if (begin < 0 || end < begin || end > indices[t].size(0)) {
              Fail(fmt::format("offsets of input {} (table {}) point outside its {} indices", i, t,
                               indices[t].size(0)));
            }
            parts.push_back(indices[t].narrow(0, begin, end - begin));
          }
          shares[k][i] = Rebuild(inputs[i], std::move(parts));
          break;
        }
      }
      start += count;
    }
  }
  return shares;
}

}  // namespace

std::vector<std::vector<IValue>> SplitInputs(const std::vector<IValue>& inputs,
                                             const std::vector<InputSplit>& split,
                                             const std::vector<int64_t>& counts) {
  CountItems(inputs, split);
  return SplitCounted(inputs, split, counts);
}

IValue ConcatOutputs(std::vector<IValue> parts) {
  if (parts.size() == 1) return std::move(parts.front());
  const IValue& first = parts.front();
  if (first.isTensor()) {
    std::vector<at::Tensor> tensors;
    for (const IValue& p : parts) {
      if (!p.isTensor()) Fail("the streams returned outputs of different kinds");
      if (p.toTensor().dim() == 0) Fail("an output is a 0-dim tensor, which has no batch to join");
      tensors.push_back(p.toTensor());
    }
    return at::cat(tensors, 0);
  }
  auto elements = [&](const IValue& p) -> std::vector<IValue> {
    if (p.isTuple()) return p.toTupleRef().elements().vec();
    if (p.isList()) return p.toListRef().vec();
    Fail(fmt::format("an output is a {}, which cannot be joined", p.tagKind()));
  };
  const size_t size = elements(first).size();
  std::vector<std::vector<IValue>> columns(size);
  for (const IValue& p : parts) {
    std::vector<IValue> items = elements(p);
    if (items.size() != size || p.isTuple() != first.isTuple()) {
      Fail("the streams returned outputs of different structure");
    }
    for (size_t c = 0; c < size; ++c) columns[c].push_back(std::move(items[c]));
  }
  std::vector<IValue> joined;
  for (auto& column : columns) joined.push_back(ConcatOutputs(std::move(column)));
  if (first.isTuple()) return c10::ivalue::Tuple::create(std::move(joined));
  if (first.isTensorList()) {
    c10::List<at::Tensor> list;
    for (const IValue& v : joined) list.push_back(v.toTensor());
    return list;
  }
  c10::impl::GenericList list(first.toList().elementType());
  for (IValue& v : joined) list.push_back(std::move(v));
  return list;
}

ScopedTeamBinding::ScopedTeamBinding(const CpuSet& cpus) {
  if (cpus.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "cannot bind an OpenMP team to an empty CPU set");
  }
  // libtorch sets a thread's OpenMP count lazily at its first parallel call; do it now so that
  // it cannot later overwrite the count set here.
  at::internal::lazy_init_num_threads();
  previous_threads_ = omp_get_max_threads();
  const int n = static_cast<int>(cpus.size());
  std::vector<platform::CpuMask> masks;
  for (int id : cpus) masks.emplace_back(CpuSet{id});
  previous_.resize(n);
  applied_.resize(n);
  std::vector<std::string> errors(n);
  int team = 0;
#pragma omp parallel num_threads(n)
  {
    const int t = omp_get_thread_num();
    if (t == 0) team = omp_get_num_threads();
    try {
      previous_[t] = platform::CurrentAffinity();
      if (sched_setaffinity(0, masks[t].size_bytes(), masks[t].data()) != 0) {
        errors[t] = std::strerror(errno);
      } else {
        applied_[t] = platform::CurrentAffinity();
      }
    } catch (const std::exception& e) {
      errors[t] = e.what();
    }
  }
  omp_set_num_threads(n);
  std::string failure;
  if (team != n) failure = fmt::format("OpenMP gave a team of {} threads, not {}", team, n);
  for (int t = 0; t < n && failure.empty(); ++t) {
    if (!errors[t].empty()) failure = fmt::format("thread {}: {}", t, errors[t]);
  }
  if (!failure.empty()) {
    Restore();
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("cannot bind an OpenMP team to CPUs {}: {}", cpus.ToString(), failure));
  }
}

ScopedTeamBinding::~ScopedTeamBinding() { Restore(); }

void ScopedTeamBinding::Restore() {
  if (previous_.empty()) return;
  const int n = static_cast<int>(previous_.size());
  // A thread whose mask could not be read was never pinned: nothing to put back.
  std::vector<std::optional<platform::CpuMask>> masks(n);
  for (int t = 0; t < n; ++t) {
    if (!previous_[t].empty()) masks[t].emplace(previous_[t]);
  }
#pragma omp parallel num_threads(n)
  {
    const int t = omp_get_thread_num();
    if (masks[t]) sched_setaffinity(0, masks[t]->size_bytes(), masks[t]->data());
  }
  previous_.clear();
  omp_set_num_threads(previous_threads_);
}

struct StreamExecutor::Stream {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::function<void()>> tasks;
  bool stop = false;
  std::thread thread;
};

StreamExecutor::StreamExecutor(const platform::StreamPlan& plan, Forward forward,
                               std::vector<InputSplit> split, bool bind)
    : forward_(std::move(forward)), split_(std::move(split)) {
  if (plan.streams.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "a stream plan needs at least one stream");
  }
  const size_t n = plan.streams.size();
  std::vector<std::promise<void>> ready(n);
  std::vector<std::future<void>> bound;
  for (size_t i = 0; i < n; ++i) {
    streams_.push_back(std::make_unique<Stream>());
    bindings_.push_back({plan.streams[i].cpus, plan.streams[i].threads, {}});
    bound.push_back(ready[i].get_future());
  }
  for (size_t i = 0; i < n; ++i) {
    streams_[i]->thread =
        std::thread([this, i, bind, &ready] { Loop(*streams_[i], i, bind, ready[i]); });
  }
  std::exception_ptr error;
  for (auto& f : bound) {
    try {
      f.get();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) {
    Stop();
    std::rethrow_exception(error);
  }
}

StreamExecutor::~StreamExecutor() { Stop(); }

void StreamExecutor::Stop() {
  for (auto& stream : streams_) {
    {
      std::lock_guard<std::mutex> lock(stream->mutex);
      stream->stop = true;
    }
    stream->wake.notify_one();
  }
  for (auto& stream : streams_) {
    if (stream->thread.joinable()) stream->thread.join();
  }
  streams_.clear();
}

void StreamExecutor::Loop(Stream& stream, size_t index, bool bind, std::promise<void>& ready) {
  std::optional<ScopedTeamBinding> binding;
  try {
    if (bind) {
      binding.emplace(bindings_[index].cpus);
      bindings_[index].applied = binding->applied();
    } else {
      at::internal::lazy_init_num_threads();
      omp_set_num_threads(bindings_[index].threads);
    }
  } catch (...) {
    ready.set_exception(std::current_exception());
    return;
  }
  ready.set_value();
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(stream.mutex);
      stream.wake.wait(lock, [&] { return stream.stop || !stream.tasks.empty(); });
      if (stream.tasks.empty()) return;  // stopping, and the queue is drained
      task = std::move(stream.tasks.front());
      stream.tasks.pop_front();
    }
    task();
  }
}

std::future<IValue> StreamExecutor::RunAsync(std::vector<IValue> inputs) {
  // Calls start on the streams in turn, so that small concurrent calls (one item each) spread
  // over every stream instead of queueing on the first.
  const size_t first = next_stream_.fetch_add(1);
  std::vector<std::vector<IValue>> shares;
  const std::vector<int64_t> counts = streams_.size() == 1
                                          ? std::vector<int64_t>{1}
                                          : ShareItems(CountItems(inputs, split_), streams_.size());
  if (counts.size() == 1) {
    shares.push_back(std::move(inputs));
  } else {
    shares = SplitCounted(inputs, split_, counts);
  }
  std::vector<std::future<IValue>> parts;
  for (size_t k = 0; k < shares.size(); ++k) {
    parts.push_back(Enqueue((first + k) % streams_.size(), std::move(shares[k])));
  }
  return std::async(std::launch::deferred, [parts = std::move(parts)]() mutable {
    std::vector<IValue> outputs;
    for (auto& part : parts) outputs.push_back(part.get());
    return ConcatOutputs(std::move(outputs));
  });
}

std::future<IValue> StreamExecutor::Submit(std::vector<IValue> inputs) {
  return Enqueue(next_stream_.fetch_add(1) % streams_.size(), std::move(inputs));
}

std::future<IValue> StreamExecutor::Enqueue(size_t index, std::vector<IValue> inputs) {
  auto task = std::make_shared<std::packaged_task<IValue()>>(
      [this, inputs = std::move(inputs)] { return forward_(inputs); });
  std::future<IValue> result = task->get_future();
  Stream& stream = *streams_[index];
  {
    std::lock_guard<std::mutex> lock(stream.mutex);
    stream.tasks.emplace_back([task] { (*task)(); });
  }
  stream.wake.notify_one();
  return result;
}

IValue StreamExecutor::Run(std::vector<IValue> inputs) { return RunAsync(std::move(inputs)).get(); }

StreamExecutor::Forward MicroBatched(StreamExecutor::Forward forward, int64_t micro_batch,
                                     std::vector<InputSplit> split) {
  if (micro_batch <= 0) return forward;
  return [forward = std::move(forward), micro_batch,
          split = std::move(split)](const std::vector<torch::jit::IValue>& inputs) {
    const int64_t items = CountItems(inputs, split);
    if (items <= micro_batch) return forward(inputs);
    std::vector<int64_t> counts;
    for (int64_t left = items; left > 0; left -= micro_batch) {
      counts.push_back(std::min(left, micro_batch));
    }
    std::vector<torch::jit::IValue> parts;
    for (const auto& piece : SplitInputs(inputs, split, counts)) parts.push_back(forward(piece));
    return ConcatOutputs(std::move(parts));
  };
}

}  // namespace ipt::core
