// The tuner's multi-instance mode: one trial measured as N worker processes side by side, each
// bound to its own CPUs (platform::PlanInstances) and, where the kernel allows, its memory to its
// NUMA node. This is how a server runs a model for throughput when one process cannot keep every
// core busy: the figure to compare is their summed throughput.
//
// The instances build and warm up independently, then meet (the worker's --sync-dir) so that
// their timed blocks overlap; a trial's numbers are the merge of what each one measured.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/platform/stream_plan.h"
#include "tuner/worker_client.h"

namespace ipt::tuner {

// Runs worker `args` (a `trial` without --threads) once per entry of `instances`, all at once:
// each on its CPUs with its thread count (also OMP_NUM_THREADS in `env`), its memory bound to
// its node when it has one. The first instance's progress lines go to `on_progress`, from the
// threads that wait for the workers, one call at a time.
//
// When one instance fails, the others are stopped and the reply is that instance's failure,
// prefixed with which instance it was ("instance 2 of 2 (cpus 1): ..."); when `cancel` is set,
// every instance is stopped and the reply is "cancelled". Only a failure to make the meeting
// folder throws (ipt::Error kIo).
WorkerReply RunInstances(const WorkerClient& worker, const std::vector<std::string>& args,
                         const std::string& stdin_text,
                         const std::vector<platform::Stream>& instances,
                         const std::map<std::string, std::string>& env,
                         std::chrono::milliseconds timeout,
                         const std::function<void(const nlohmann::json&)>& on_progress,
                         const std::atomic<bool>* cancel);

// One trial result from every instance's worker result, in the worker's own format, so it is
// stored and compared like any trial: items/s summed (the instances ran at once); timed blocks
// summed index by index over the blocks every instance has (calls added, seconds averaged), with
// their calls in the same order, and the latency figures over those calls; the worst block CV,
// noisy when any was; set-up the slowest instance's; accuracy, batch and applied passes from the
// first (every instance runs the same optimised model on the same data); warnings of all, each
// once. "instances" lists each one's CPUs, threads, items/s, median and memory policy.
nlohmann::json MergeInstanceResults(const std::vector<nlohmann::json>& results);

}  // namespace ipt::tuner
