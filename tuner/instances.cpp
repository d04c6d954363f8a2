#include "tuner/instances.h"

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "base/error.h"
#include "base/temp_dir.h"
#include "tuner/objective.h"

namespace ipt::tuner {
namespace {

// How often the waiting thread looks at the study's cancel flag.
constexpr std::chrono::milliseconds kCancelPoll{20};

std::vector<double> Doubles(const nlohmann::json& j) {
  return j.is_array() ? j.get<std::vector<double>>() : std::vector<double>{};
}

}  // namespace

WorkerReply RunInstances(const WorkerClient& worker, const std::vector<std::string>& args,
                         const std::string& stdin_text,
                         const std::vector<platform::Stream>& instances,
                         const std::map<std::string, std::string>& env,
                         std::chrono::milliseconds timeout,
                         const std::function<void(const nlohmann::json&)>& on_progress,
                         const std::atomic<bool>* cancel) {
  const size_t n = instances.size();
  // Where the instances meet before timing.
  TempDir folder("ipt-instances");
  std::atomic<bool> stop{false};
  std::atomic<size_t> running{n};
  std::mutex progress_mutex;
  std::vector<WorkerReply> replies(n);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      const platform::Stream& instance = instances[i];
      std::vector<std::string> instance_args = args;
      instance_args.insert(instance_args.end(),
                           {"--threads", std::to_string(instance.threads), "--sync-dir",
                            folder.path(), "--sync-count", std::to_string(n)});
      if (instance.numa_node >= 0) {
        instance_args.insert(instance_args.end(),
                             {"--membind", std::to_string(instance.numa_node)});
      }
      std::map<std::string, std::string> instance_env = env;
      instance_env["OMP_NUM_THREADS"] = std::to_string(instance.threads);
      try {
        replies[i] = worker.Run(
            instance_args, stdin_text, instance.cpus.ids(), instance_env, timeout,
            [&, i](const nlohmann::json& progress) {
              if (i != 0 || !on_progress) return;
              std::lock_guard<std::mutex> lock(progress_mutex);
              on_progress(progress);
            },
            &stop);
      } catch (const Error& e) {
        replies[i].error_code = ErrorCodeName(e.code());
        replies[i].error = e.what();
      }
      if (!replies[i].ok) stop = true;
      --running;
    });
  }
  while (running.load() > 0) {
    if (cancel != nullptr && cancel->load()) stop = true;
    std::this_thread::sleep_for(kCancelPoll);
  }
  for (std::thread& t : threads) t.join();

  WorkerReply out;
  if (cancel != nullptr && cancel->load()) {
    out.error_code = "cancelled";
    out.error = "cancelled";
    return out;
  }
  // The instance that failed first in its own right; the others were stopped because of it.
  for (size_t i = 0; i < n; ++i) {
    if (replies[i].ok || replies[i].error_code == "cancelled") continue;
    out = replies[i];
    if (out.error.empty()) out.error = "the worker exited without a result";
    out.error = fmt::format("instance {} of {} (cpus {}): {}", i + 1, n,
                            instances[i].cpus.ToString(), out.error);
    return out;
  }
  std::vector<nlohmann::json> results;
  for (const WorkerReply& r : replies) results.push_back(r.result);
  out.ok = true;
  out.outcome = replies.front().outcome;
  out.result = MergeInstanceResults(results);
  return out;
}

nlohmann::json MergeInstanceResults(const std::vector<nlohmann::json>& results) {
  if (results.empty()) throw Error(ErrorCode::kInternal, "no instance results to merge");
  nlohmann::json merged = results.front();
  for (const char* key : {"setup_s", "build_s", "optimize_s", "first_call_ms"}) {
    double slowest = 0;
    for (const nlohmann::json& r : results) slowest = std::max(slowest, r.value(key, 0.0));
    merged[key] = slowest;
  }
  // The k-th timed block of every instance, summed: the instances start timing together and
  // time blocks of the same length, so their k-th blocks overlap. Blocks not every instance
  // has (one may time one more) are left out, with their calls.
  size_t common_blocks = SIZE_MAX;
  for (const nlohmann::json& r : results) {
    common_blocks = std::min(common_blocks, r.value("blocks", nlohmann::json::array()).size());
  }
  std::vector<size_t> next_call(results.size(), 0);
  std::vector<std::vector<double>> calls_ms;
  for (const nlohmann::json& r : results) {
    calls_ms.push_back(Doubles(r.value("latencies_ms", nlohmann::json())));
  }
  nlohmann::json blocks = nlohmann::json::array();
  std::vector<double> latencies;
  for (size_t k = 0; k < common_blocks; ++k) {
    int64_t calls = 0;
    double seconds = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      const nlohmann::json& block = results[i].at("blocks").at(k);
      const std::vector<double>& all = calls_ms[i];
      const auto n = static_cast<size_t>(block.value("calls", int64_t{0}));
      for (size_t c = next_call[i]; c < std::min(all.size(), next_call[i] + n); ++c) {
        latencies.push_back(all[c]);
      }
      next_call[i] += n;
      calls += block.value("calls", int64_t{0});
      seconds += block.value("seconds", 0.0);
    }
    // Summed calls over the instances' mean block length: their summed rate.
    blocks.push_back(
        {{"calls", calls}, {"seconds", seconds / static_cast<double>(results.size())}});
  }
  double items_per_s = 0;
  double worst_cv = 0;
  bool noisy = false;
  int64_t threads = 0;
  std::vector<std::string> cpus;
  nlohmann::json warnings = nlohmann::json::array();
  nlohmann::json each = nlohmann::json::array();
  for (const nlohmann::json& r : results) {
    items_per_s += r.value("items_per_s", 0.0);
    worst_cv = std::max(worst_cv, r.value("cv", 0.0));
    noisy = noisy || r.value("noisy", false);
    threads += r.value("threads", int64_t{0});
    cpus.push_back(r.value("cpus", ""));
    for (const nlohmann::json& w : r.value("warnings", nlohmann::json::array())) {
      if (std::find(warnings.begin(), warnings.end(), w) == warnings.end()) warnings.push_back(w);
    }
    nlohmann::json instance = {{"cpus", r.value("cpus", "")},
                               {"threads", r.value("threads", int64_t{0})},
                               {"items_per_s", r.value("items_per_s", 0.0)},
                               {"median_ms", r.value("median_ms", 0.0)}};
    if (r.contains("memory")) instance["memory"] = r.at("memory");
    each.push_back(std::move(instance));
  }
  merged["items_per_s"] = items_per_s;
  merged["cv"] = worst_cv;
  merged["noisy"] = noisy;
  merged["threads"] = threads;
  merged["cpus"] = fmt::format("{}", fmt::join(cpus, ","));
  merged["blocks"] = std::move(blocks);
  SetCallFigures(merged, latencies);
  if (warnings.empty()) {
    merged.erase("warnings");
  } else {
    merged["warnings"] = std::move(warnings);
  }
  merged.erase("memory");
  merged["instances"] = std::move(each);
  return merged;
}

}  // namespace ipt::tuner
