#include "tuner/study.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <limits>
#include <map>

#include "base/error.h"
#include "base/sha256.h"
#include "base/stats.h"
#include "base/temp_dir.h"
#include "core/platform/core_pool.h"
#include "core/platform/stream_plan.h"
#include "core/platform/system_source.h"
#include "db/store.h"
#include "recipes/qparams_json.h"
#include "recipes/recipe_yaml.h"
#include "tuner/fingerprint.h"
#include "tuner/instances.h"
#include "tuner/load_noise.h"
#include "tuner/space.h"
#include "tuner/space_yaml.h"
#include "tuner/strategy.h"
#include "tuner/worker_environment.h"

namespace ipt::tuner {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kLeaseStaleAfterS = 60;
constexpr double kHeartbeatEveryS = 5;

std::string LeaseOwner() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return fmt::format("{}:{}", host, getpid());
}

std::string UtcNow() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

bool Finished(db::TrialStatus status) {
  return status == db::TrialStatus::kDone || status == db::TrialStatus::kFailed ||
         status == db::TrialStatus::kTimedOut || status == db::TrialStatus::kPruned;
}

// Releases the study's lease however RunStudy ends.
class LeaseGuard {
 public:
  LeaseGuard(db::Store& store, int64_t study_id, std::string owner)
      : store_(store), study_id_(study_id), owner_(std::move(owner)) {
    store_.AcquireLease(study_id_, owner_, kLeaseStaleAfterS);
  }
  ~LeaseGuard() {
    try {
      store_.ReleaseLease(study_id_, owner_);
    } catch (const std::exception&) {
      // The lease goes stale by itself; nothing else to do while unwinding.
    }
  }
  void Heartbeat() {
    if (std::chrono::duration<double>(Clock::now() - last_).count() < kHeartbeatEveryS) return;
    store_.Heartbeat(study_id_, owner_);
    last_ = Clock::now();
  }

 private:
  db::Store& store_;
  int64_t study_id_;
  std::string owner_;
  Clock::time_point last_ = Clock::now();
};

db::Measurement MeasurementFromResult(const nlohmann::json& r) {
  db::Measurement m;
  m.scenario = "latency";
  m.batch = r.value("batch", int64_t{0});
  m.threads = r.value("threads", int64_t{0});
  m.items_per_s = r.value("items_per_s", 0.0);
  m.median_ms = r.value("median_ms", 0.0);
  m.p90_ms = r.value("p90_ms", 0.0);
  m.p99_ms = r.value("p99_ms", 0.0);
  m.mean_ms = r.value("mean_ms", 0.0);
  m.stddev_ms = r.value("stddev_ms", 0.0);
  m.cv = r.value("cv", 0.0);
  m.samples = r.value("samples", int64_t{0});
  m.noisy = r.value("noisy", false);
  m.accuracy_json = r.value("accuracy", nlohmann::json::object()).dump();
  m.applied_json = r.value("applied", nlohmann::json::object()).dump();
  nlohmann::json raw = {{"blocks", r.value("blocks", nlohmann::json::array())},
                        {"latencies_ms", r.value("latencies_ms", nlohmann::json::array())},
                        {"optimize_s", r.value("optimize_s", 0.0)},
                        {"build_s", r.value("build_s", 0.0)},
                        {"first_call_ms", r.value("first_call_ms", 0.0)}};
  for (const char* key :
       {"instances", "rounds_items_per_s", "startup_s", "min_time_s", "calibration_source"}) {
    if (r.contains(key)) raw[key] = r.at(key);
  }
  m.raw_json = raw.dump();
  return m;
}

// Records the load average around the worker that measured `m`, and flags `m` noisy when the
// monitor saw other load then; the reasons go to raw_json's "noise" for the report.
void RecordNoise(db::Measurement& m, std::optional<double> load_before,
                 std::optional<double> load_after, const std::optional<std::string>& other_load) {
  constexpr double kNotRead = std::numeric_limits<double>::quiet_NaN();
  m.load_before = load_before.value_or(kNotRead);
  m.load_after = load_after.value_or(kNotRead);
  nlohmann::json reasons = nlohmann::json::array();
  if (m.noisy) reasons.push_back(fmt::format("block CV {:.1f}%", m.cv * 100));
  if (other_load) {
    m.noisy = true;
    reasons.push_back(*other_load);
  }
  nlohmann::json raw = nlohmann::json::parse(m.raw_json);
  raw["noise"] = reasons;
  m.raw_json = raw.dump();
}

// Every trial of the study, with its ratio to stock on `objective`.
std::vector<TrialSummary> Summaries(const db::Store& store, int64_t study_id, Objective objective) {
  std::vector<TrialSummary> out;
  std::optional<Figures> stock;
  for (const db::Trial& t : store.ListTrials(study_id)) {
    TrialSummary s;
    s.number = t.number;
    s.config = Describe(nlohmann::json::parse(t.config_json));
    s.config_json = t.config_json;
    s.status = db::ToString(t.status);
    s.status_value = t.status;
    s.error = t.error;
    s.infeasible = t.infeasible;
    s.setup_s = t.setup_s;
    auto measurements = store.ListMeasurements(t.id);
    if (!measurements.empty()) {
      // The search's own measurement; a final comparison adds others after it.
      const db::Measurement& m = measurements.front();
      s.items_per_s = m.items_per_s;
      s.median_ms = m.median_ms;
      s.p90_ms = m.p90_ms;
      s.p99_ms = m.p99_ms;
      s.cv = m.cv;
      s.noisy = m.noisy;
      s.accuracy = nlohmann::json::parse(m.accuracy_json, nullptr, false);
      nlohmann::json raw = nlohmann::json::parse(m.raw_json, nullptr, false);
      if (raw.is_object()) {
        for (const auto& b : raw.value("blocks", nlohmann::json::array())) {
          s.measure_s += b.value("seconds", 0.0);
        }
        for (const auto& reason : raw.value("noise", nlohmann::json::array())) {
          s.noise += (s.noise.empty() ? "" : "; ") + reason.get<std::string>();
        }
      }
      if (IsStock(nlohmann::json::parse(t.config_json)) && s.done()) stock = s.figures();
    }
    out.push_back(std::move(s));
  }
  if (stock) {
    for (TrialSummary& s : out) {
      if (s.done()) s.vs_stock = Speedup(objective, s.figures(), *stock);
    }
  }
  return out;
}

// "resnet50-recipe.yaml", "model-mynet-recipe.yaml": a file name from a workload name.
std::string RecipeFileName(std::string workload) {
  for (char& c : workload) {
    if (c == ':' || c == '/') c = '-';
  }
  return workload + "-recipe.yaml";
}

std::vector<int> FirstCpus(const platform::CpuSet& allowed, int64_t count) {
  std::vector<int> cpus;
  for (int cpu : allowed) {
    if (static_cast<int64_t>(cpus.size()) == count) break;
    cpus.push_back(cpu);
  }
  return cpus;
}

// Where a trial's instances run: its CPUs cut into `instances` compact sets, each with its node.
std::vector<platform::Stream> InstancePlan(const platform::Topology& topology,
                                           const std::vector<int>& cpus, int64_t instances) {
  platform::CorePoolOptions every_cpu;
  every_cpu.physical_cores_only = false;  // exactly the trial's CPUs, as a single process gets
  platform::CorePool pool =
      platform::CorePool::FromCpus(topology, platform::CpuSet(cpus), every_cpu);
  return platform::PlanInstances(topology, pool, static_cast<int>(instances));
}

// A candidate's complexity, for breaking ties: a recipe that changes less from libtorch's own
// defaults is easier to trust and to deploy, and fewer threads leave cores for other work.
std::pair<int, int64_t> Complexity(const Candidate& c) {
  int changes = 0;
  std::string dtype = c.value("dtype", "fp32");
  changes += dtype == "fp32" ? 0 : dtype == "bf16" ? 1 : 2;
  if (c.contains("fusions")) changes += static_cast<int>(c["fusions"].size());
  if (c.value("allocator", "default") != "default") ++changes;
  if (c.value("memory_format", "auto") != "auto") ++changes;
  changes += static_cast<int>(c.value("streams", int64_t{1}) - 1);
  changes += static_cast<int>(c.value("instances", int64_t{1}) - 1);
  return {changes, c.value("threads", int64_t{0})};
}

struct FinalComparison {
  int64_t winner = 0;
  std::vector<std::pair<int64_t, db::Measurement>> measurements;  // by trial number, stock 0
  std::vector<std::string> report;
  stats::BootstrapInterval vs_stock;  // on the objective, above 1 better
  stats::BootstrapInterval items_per_s;
  // The objective percentile (median over blocks of each block's), with a latency objective.
  std::optional<stats::BootstrapInterval> latency_ms;
};

constexpr double kSignificance = 0.05;
// Worker processes per candidate when the finalists cannot share one process: each round runs
// stock and every finalist once, in turn, so drift hits them alike and the blocks carry
// process-to-process variation too.
constexpr int kFinalRounds = 3;
constexpr int kBootstrapResamples = 2000;

// Reads the 1-minute load average around the study's workers and says which measurements saw
// other load (load_noise.h).
class LoadWatch {
 public:
  LoadWatch(const platform::SystemSource& source, Clock::time_point epoch)
      : source_(source), epoch_(epoch) {}
  void Started(int64_t threads) {
    before_ = Load();
    started_s_ = Now();
    monitor_.WorkerStarted(started_s_, threads);
  }
  // Call when the worker ended; then before(), after() and other_load() describe its run.
  void Ended() {
    after_ = Load();
    ended_s_ = Now();
    monitor_.WorkerEnded(ended_s_);
  }
  std::optional<double> before() const { return before_; }
  std::optional<double> after() const { return after_; }
  std::optional<std::string> other_load() const {
    return monitor_.OtherLoad(before_, started_s_, after_, ended_s_);
  }

 private:
  double Now() const { return std::chrono::duration<double>(Clock::now() - epoch_).count(); }
  std::optional<double> Load() const {
    std::optional<platform::LoadAverage> load = source_.ReadLoadAverage();
    if (!load) return std::nullopt;
    return load->one_min;
  }
  const platform::SystemSource& source_;
  Clock::time_point epoch_;
  LoadMonitor monitor_;
  std::optional<double> before_;
  std::optional<double> after_;
  double started_s_ = 0;
  double ended_s_ = 0;
};

// Stock and `recipes` measured side by side in one `ipex-tune-worker bench` on `cpus` with
// `env`, for the comparisons after the search. The recipes are written to a temporary folder
// for the worker and removed after it. A failed worker is the reply's error.
WorkerReply RunBench(const StudyOptions& options, const WorkerClient& worker,
                     const std::vector<std::pair<std::string, recipes::Recipe>>& recipes,
                     const MeasureSettings& settings, const std::vector<int>& cpus,
                     const std::map<std::string, std::string>& env,
                     std::chrono::milliseconds timeout, StudyObserver& observer, LoadWatch& load,
                     const std::function<void()>& heartbeat, int64_t progress_number,
                     const std::atomic<bool>& cancel) {
  std::optional<TempDir> folder;
  try {
    folder.emplace("ipex-tune-bench");
  } catch (const Error& e) {
    WorkerReply failed;
    failed.error = e.what();
    return failed;
  }
  const std::string& dir = folder->path();
  std::vector<std::string> args = {
      "bench", "--batch",    std::to_string(options.batch),   "--baseline",
      "stock", "--scenario", Scenario(options.goal.objective)};
  for (const std::string& a : options.source.ToArgs()) args.push_back(a);
  for (const std::string& a : settings.ToArgs()) args.push_back(a);
  for (const auto& [name, recipe] : recipes) {
    const std::string path = dir + "/" + name + ".yaml";
    recipes::SaveRecipe(recipe, path);
    args.insert(args.end(), {"--recipe", path});
  }
  load.Started(static_cast<int64_t>(cpus.size()));
  WorkerReply reply = worker.Run(
      args, "", cpus, env, timeout,
      [&](const nlohmann::json& progress) {
        heartbeat();
        observer.OnTrialProgress(progress_number, progress);
      },
      &cancel);
  load.Ended();
  return reply;
}

// One candidate (or the stock baseline) measured in a worker of its own, as its trial is: its
// threads on the first of the study's CPUs, its environment and allocator, its batch, and one
// worker per instance. Throws ipt::Error when the candidate cannot start here (an allocator that
// is not installed); everything the worker does is in the reply.
WorkerReply MeasureCandidate(const StudyOptions& options, const WorkerClient& worker,
                             const platform::Topology& topology, const Candidate& candidate,
                             const recipes::WorkloadRef& workload_ref,
                             const MeasureSettings& settings, LoadWatch& load,
                             const std::function<void(const nlohmann::json&)>& on_progress,
                             const std::atomic<bool>& cancel) {
  const bool stock = IsStock(candidate);
  const recipes::Recipe recipe =
      stock ? recipes::Recipe{}
            : CandidateToRecipe(candidate, workload_ref, options.goal.accuracy_loss);
  const int64_t instances = recipe.runtime.instances;
  // Threads of each instance; without a threads dimension the instances share every CPU.
  const int64_t threads =
      candidate.value("threads", static_cast<int64_t>(topology.allowed.size()) / instances);
  std::vector<std::string> args = {"trial", "--batch",
                                   std::to_string(candidate.value("batch", options.batch)),
                                   "--scenario", Scenario(options.goal.objective)};
  for (const std::string& a : options.source.ToArgs()) args.push_back(a);
  for (const std::string& a : settings.TrialArgs()) args.push_back(a);
  if (stock) {
    args.insert(args.end(), {"--baseline", "stock"});
  } else {
    args.insert(args.end(), {"--recipe", "-"});
  }
  const std::string recipe_yaml = stock ? "" : recipes::ToYaml(recipe);
  const std::vector<int> cpus = FirstCpus(topology.allowed, threads * instances);
  const std::map<std::string, std::string> env = WorkerEnvironment(recipe.runtime, threads);
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(options.trial_timeout);
  load.Started(threads * instances);
  WorkerReply reply;
  if (instances == 1) {
    args.insert(args.end(), {"--threads", std::to_string(threads)});
    reply = worker.Run(args, recipe_yaml, cpus, env, timeout, on_progress, &cancel);
  } else {
    reply = RunInstances(worker, args, recipe_yaml, InstancePlan(topology, cpus, instances), env,
                         timeout, on_progress, &cancel);
  }
  load.Ended();
  return reply;
}

// One measurement from a candidate's results in several worker processes: their timed blocks
// and calls together, in order, and the figures recomputed over them. items/s is the median
// block rate, as the worker reports it.
nlohmann::json PoolRounds(const std::vector<nlohmann::json>& rounds, int64_t batch) {
  nlohmann::json pooled = rounds.front();
  nlohmann::json blocks = nlohmann::json::array();
  std::vector<double> latencies;
  nlohmann::json per_round = nlohmann::json::array();
  bool noisy = false;
  for (const nlohmann::json& r : rounds) {
    for (const nlohmann::json& b : r.value("blocks", nlohmann::json::array())) blocks.push_back(b);
    for (const nlohmann::json& ms : r.value("latencies_ms", nlohmann::json::array())) {
      latencies.push_back(ms.get<double>());
    }
    noisy = noisy || r.value("noisy", false);
    per_round.push_back(r.value("items_per_s", 0.0));
  }
  pooled["blocks"] = blocks;
  SetCallFigures(pooled, latencies);
  pooled["rounds_items_per_s"] = per_round;
  const std::vector<double> rates = BlockValues(Objective::kThroughput, pooled, batch);
  if (!rates.empty()) {
    pooled["items_per_s"] = stats::Median(rates);
    pooled["cv"] = stats::CoefficientOfVariation(rates);
  }
  pooled["noisy"] = noisy;
  return pooled;
}

// The environment's share of a winner's gain (the environment alone moves stock libtorch by
// 2-3x here): stock and the winner re-measured interleaved in one worker started with the
// winner's environment, beside stock in the default environment (trial 0).
struct EnvironmentSplit {
  db::Measurement stock_tuned;
  db::Measurement ours_tuned;
  std::vector<std::string> report;
};

// "jemalloc, OMP_WAIT_POLICY=PASSIVE": what a recipe sets in its worker's environment; empty
// when it needs none of its own.
std::string DescribeEnvironment(const recipes::Runtime& runtime) {
  std::vector<std::string> parts;
  if (runtime.allocator != recipes::Allocator::kDefault) {
    parts.push_back(recipes::ToString(runtime.allocator));
  }
  for (const auto& [name, value] : runtime.env) parts.push_back(name + "=" + value);
  return fmt::format("{}", fmt::join(parts, ", "));
}

std::optional<EnvironmentSplit> SplitEnvironmentGain(
    const StudyOptions& options, const WorkerClient& worker, const platform::CpuSet& allowed,
    const recipes::Recipe& winner, const TrialSummary& stock, StudyObserver& observer,
    LoadWatch& load, const std::function<void()>& heartbeat, const std::atomic<bool>& cancel) {
  const int64_t threads =
      winner.runtime.threads > 0 ? winner.runtime.threads : static_cast<int64_t>(allowed.size());
  observer.OnMessage(
      fmt::format("Environment: stock and the winner re-measured in the winner's environment ({})",
                  DescribeEnvironment(winner.runtime)));
  WorkerReply reply =
      RunBench(options, worker, {{"winner", winner}}, options.measure, FirstCpus(allowed, threads),
               WorkerEnvironment(winner.runtime, threads),
               std::chrono::duration_cast<std::chrono::milliseconds>(options.trial_timeout) * 2,
               observer, load, heartbeat, kEnvironmentSplitProgress, cancel);
  if (!reply.ok) {
    if (reply.error_code != "cancelled") {
      observer.OnMessage("Environment split failed: " + reply.error);
    }
    return std::nullopt;
  }
  const nlohmann::json& candidates = reply.result.at("candidates");
  EnvironmentSplit out;
  out.stock_tuned = MeasurementFromResult(candidates.at(0));
  out.ours_tuned = MeasurementFromResult(candidates.at(1));
  for (db::Measurement* m : {&out.stock_tuned, &out.ours_tuned}) {
    m->scenario = "environment";
    RecordNoise(*m, load.before(), load.after(), load.other_load());
  }
  const Objective objective = options.goal.objective;
  const Figures stock_default = stock.figures();
  const Figures stock_tuned = {out.stock_tuned.items_per_s, out.stock_tuned.median_ms,
                               out.stock_tuned.p90_ms, out.stock_tuned.p99_ms};
  const Figures ours_tuned = {out.ours_tuned.items_per_s, out.ours_tuned.median_ms,
                              out.ours_tuned.p90_ms, out.ours_tuned.p99_ms};
  auto ratio = [&](const Figures& a, const Figures& b) {
    const std::optional<double> r = Speedup(objective, a, b);
    return r ? fmt::format("{:.2f}x", *r) : std::string("n/a");
  };
  const std::string unit = ObjectiveUnit(objective);
  out.report.push_back(fmt::format("  stock, default environment (trial 0):  {:.4g} {}",
                                   ObjectiveValue(objective, stock_default), unit));
  out.report.push_back(
      fmt::format("  stock, winner's environment:          {:.4g} {}  ({} from "
                  "the environment)",
                  ObjectiveValue(objective, stock_tuned), unit, ratio(stock_tuned, stock_default)));
  out.report.push_back(
      fmt::format("  winner, its environment:              {:.4g} {}  ({} from "
                  "the core, {} in all)",
                  ObjectiveValue(objective, ours_tuned), unit, ratio(ours_tuned, stock_tuned),
                  ratio(ours_tuned, stock_default)));
  return out;
}

// How much better `a` is than `b` on the objective: above 1 when a is better.
double Ratio(Objective objective, double a, double b) {
  return IsLatency(objective) ? b / a : a / b;
}

// Re-measures the finalists and stock interleaved in one worker, over more blocks than the
// search used, and picks the winner: the best on the objective (median over blocks of the
// block throughputs, or of the block percentiles), unless a simpler finalist is not
// significantly worse (Mann-Whitney U over those block values), in which case the simpler wins.
// Returns nullopt when the comparison could not run (cancelled, or the worker failed).
std::optional<FinalComparison> CompareFinalists(
    const StudyOptions& options, const WorkerClient& worker, const platform::Topology& topology,
    const recipes::WorkloadRef& workload_ref, const std::vector<const TrialSummary*>& finalists,
    bool in_one_process, StudyObserver& observer, LoadWatch& load,
    const std::function<void()>& heartbeat, const std::atomic<bool>& cancel) {
  const Objective objective = options.goal.objective;
  std::vector<Candidate> configs;
  for (const TrialSummary* f : finalists) configs.push_back(nlohmann::json::parse(f->config_json));
  auto failed = [&](const WorkerReply& reply, const std::string& what) {
    if (reply.error_code != "cancelled") {
      observer.OnMessage("Final comparison failed: " + what + reply.error +
                         "; the winner is the search's fastest");
    }
    return std::nullopt;
  };
  // Stock first, then the finalists: each with its blocks and calls.
  std::vector<nlohmann::json> candidates;
  if (in_one_process) {
    MeasureSettings final_settings = options.measure;
    final_settings.min_blocks = std::max<int64_t>(final_settings.min_blocks, 9);
    std::vector<std::pair<std::string, recipes::Recipe>> recipes;
    for (size_t i = 0; i < finalists.size(); ++i) {
      recipes.emplace_back(fmt::format("trial-{}", finalists[i]->number),
                           CandidateToRecipe(configs[i], workload_ref, options.goal.accuracy_loss));
    }
    std::vector<int> cpus(topology.allowed.begin(), topology.allowed.end());
    WorkerReply reply =
        RunBench(options, worker, recipes, final_settings, cpus,
                 {{"OMP_NUM_THREADS", std::to_string(cpus.size())}},
                 std::chrono::duration_cast<std::chrono::milliseconds>(options.trial_timeout) *
                     static_cast<int64_t>(finalists.size() + 1),
                 observer, load, heartbeat, kFinalComparisonProgress, cancel);
    if (!reply.ok) return failed(reply, "");
    for (const nlohmann::json& c : reply.result.at("candidates")) candidates.push_back(c);
  } else {
    configs.insert(configs.begin(), StockCandidate(static_cast<int64_t>(topology.allowed.size())));
    std::vector<std::vector<nlohmann::json>> rounds(configs.size());
    for (int round = 0; round < kFinalRounds; ++round) {
      for (size_t i = 0; i < configs.size(); ++i) {
        WorkerReply reply;
        try {
          reply = MeasureCandidate(
              options, worker, topology, configs[i], workload_ref, options.measure, load,
              [&](const nlohmann::json& progress) {
                heartbeat();
                observer.OnTrialProgress(kFinalComparisonProgress, progress);
              },
              cancel);
        } catch (const Error& e) {
          reply.error = e.what();
        }
        if (!reply.ok) return failed(reply, Describe(configs[i]) + ": ");
        rounds[i].push_back(std::move(reply.result));
      }
    }
    configs.erase(configs.begin());
    for (size_t i = 0; i < rounds.size(); ++i) {
      const int64_t batch = i == 0 ? options.batch : configs[i - 1].value("batch", options.batch);
      candidates.push_back(PoolRounds(rounds[i], batch));
    }
  }
  FinalComparison out;
  std::optional<std::string> other_load = load.other_load();
  auto final_measurement = [&](const nlohmann::json& candidate) {
    db::Measurement m = MeasurementFromResult(candidate);
    m.scenario = "final";
    RecordNoise(m, load.before(), load.after(), other_load);
    return m;
  };
  // Per block: items/s, or the objective percentile in ms.
  std::vector<double> stock_values = BlockValues(objective, candidates.at(0), options.batch);
  out.measurements.emplace_back(0, final_measurement(candidates.at(0)));
  std::vector<std::vector<double>> values;
  std::vector<std::vector<double>> rates;
  for (size_t i = 0; i < finalists.size(); ++i) {
    values.push_back(BlockValues(objective, candidates.at(i + 1), options.batch));
    rates.push_back(BlockValues(Objective::kThroughput, candidates.at(i + 1), options.batch));
    out.measurements.emplace_back(finalists[i]->number, final_measurement(candidates.at(i + 1)));
  }
  for (size_t i = 0; i <= finalists.size(); ++i) {
    const std::vector<double>& v = i == 0 ? stock_values : values[i - 1];
    if (v.empty() || (i > 0 && rates[i - 1].empty())) {
      observer.OnMessage(
          "Final comparison failed: a candidate has no timed blocks; the winner is "
          "the search's best");
      return std::nullopt;
    }
  }
  const bool latency = IsLatency(objective);
  const std::string on = latency ? fmt::format(" on {}", recipes::ToString(objective)) : "";
  size_t best = 0;
  for (size_t i = 1; i < finalists.size(); ++i) {
    if (Ratio(objective, stats::Median(values[i]), stats::Median(values[best])) > 1) best = i;
  }
  size_t chosen = best;
  for (size_t i = 0; i < finalists.size(); ++i) {
    if (i == best) continue;
    double p = stats::MannWhitneyU(values[best], values[i]).p_value;
    out.report.push_back(
        fmt::format("  trial {} vs trial {}: {:.3f}x{}, p = {:.3f} ({})", finalists[best]->number,
                    finalists[i]->number,
                    Ratio(objective, stats::Median(values[best]), stats::Median(values[i])), on, p,
                    p < kSignificance ? "significant" : "a tie"));
    if (p >= kSignificance && Complexity(configs[i]) < Complexity(configs[chosen])) chosen = i;
  }
  out.winner = finalists[chosen]->number;
  // Both ratios above 1 when the winner is better: items/s over stock's, stock's ms over ours.
  out.vs_stock = latency ? stats::BootstrapRatioOfMedians(stock_values, values[chosen], 0.95,
                                                          kBootstrapResamples, /*seed=*/1)
                         : stats::BootstrapRatioOfMedians(values[chosen], stock_values, 0.95,
                                                          kBootstrapResamples, /*seed=*/1);
  out.items_per_s =
      stats::BootstrapRatioOfMedians(rates[chosen], {1.0}, 0.95, kBootstrapResamples, 2);
  if (latency) {
    out.latency_ms =
        stats::BootstrapRatioOfMedians(values[chosen], {1.0}, 0.95, kBootstrapResamples, 3);
  }
  double p_stock = stats::MannWhitneyU(values[chosen], stock_values).p_value;
  out.report.insert(
      out.report.begin(),
      fmt::format("Winner: trial {} ({}), {:.3f}x stock{} [95% CI {:.3f}-{:.3f}], p = {:.3f}: {}",
                  out.winner, finalists[chosen]->config, out.vs_stock.estimate, on,
                  out.vs_stock.low, out.vs_stock.high, p_stock,
                  p_stock < kSignificance ? "significantly different from stock"
                                          : "not significantly different from stock"));
  if (other_load) out.report.push_back("  noisy: " + *other_load);
  if (chosen != best) {
    out.report.push_back(
        fmt::format("  trial {} ties with the best and is simpler: it wins", out.winner));
  }
  return out;
}

// `applied.<key>` of the first of the trial's measurements whose worker reported it: what an
// exported recipe takes from the trial as it was measured. Null when none did.
nlohmann::json AppliedOf(const db::Store& store, int64_t trial_id, const char* key) {
  for (const db::Measurement& m : store.ListMeasurements(trial_id)) {
    auto applied = nlohmann::json::parse(m.applied_json, nullptr, /*allow_exceptions=*/false);
    if (applied.is_object() && applied.contains(key)) return applied[key];
  }
  return nullptr;
}

// The calibration parameters the winning trial's worker used (its `applied.qparams`), so the
// exported recipe quantizes exactly as the measured model did and production never
// recalibrates. nullopt when the trial stored none.
std::optional<recipes::QParams> CalibratedQParams(const db::Store& store, int64_t trial_id) {
  const nlohmann::json q = AppliedOf(store, trial_id, "qparams");
  if (!q.is_object()) return std::nullopt;
  try {
    return recipes::QParamsFromJson(q);
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace

StudyResult RunStudy(const StudyOptions& options, StudyObserver& observer,
                     const std::atomic<bool>& cancel) {
  auto run_started = Clock::now();
  const Goal& goal = options.goal;
  goal.Validate();
  const Objective objective = goal.objective;
  db::Store store = db::Store::Open(options.db_path, db::OpenMode::kReadWrite);
  WorkerClient worker(options.worker);
  WorkerInfo info = worker.Info();
  platform::LinuxSystemSource source;
  LoadWatch load(source, run_started);
  Fingerprint fingerprint = MakeFingerprint(source, info);
  observer.OnMessage(fmt::format("Machine: {} ({} CPUs allowed), libtorch {}, oneDNN {} ({})",
                                 fingerprint.cpu.model_name, fingerprint.topology.allowed.size(),
                                 info.libtorch, info.onednn, info.onednn_isa));
  observer.OnMessage(fmt::format(
      "Building '{}' and running one batch...",
      options.source.model_path.empty() ? options.source.workload : options.source.model_path));
  WorkloadInfo workload = worker.DryRun(options.source, options.batch);

  auto allowed_cpus = static_cast<int64_t>(fingerprint.topology.allowed.size());
  SpaceDefinition declared =
      options.space_path.empty() ? DefaultSpace(workload.name) : LoadSpace(options.space_path);
  std::vector<PruneNote> notes;
  SpaceDefinition space = Prune(
      declared,
      {allowed_cpus, fingerprint.cpu.HasIsa("avx512_bf16"), fingerprint.cpu.HasIsa("avx512_vnni")},
      options.keep_unsupported, &notes);
  for (const PruneNote& n : notes) {
    observer.OnMessage(
        fmt::format("Space: {}={} {}: {}", n.dimension,
                    n.value.is_string() ? n.value.get<std::string>() : n.value.dump(),
                    n.dropped ? "left out" : "kept", n.reason));
  }
  std::vector<Candidate> candidates = Enumerate(space, allowed_cpus);
  std::unique_ptr<Strategy> strategy = MakeStrategy(options.strategy, candidates, options.seed);

  nlohmann::json identity = {{"workload", workload.name}, {"model_hash", workload.model_hash},
                             {"inputs", workload.inputs}, {"batch", options.batch},
                             {"space", space.ToJson()},   {"fingerprint", fingerprint.key}};
  // Accuracy is judged on this set: another size is another study. Absent when default, so
  // studies from before the option keep their identity.
  if (options.measure.eval_items > 0) identity["eval_items"] = options.measure.eval_items;
  int64_t machine_id = store.UpsertMachine(fingerprint.key, fingerprint.key_fields.dump(),
                                           fingerprint.context.dump());
  int64_t workload_id =
      store.UpsertWorkload(workload.name, workload.model_hash, workload.flops_per_item,
                           nlohmann::json{{"inputs", workload.inputs}}.dump());
  nlohmann::json settings = {{"batch", options.batch},
                             {"max_trials", options.max_trials},
                             {"strategy", options.strategy},
                             {"seed", options.seed},
                             {"measure", options.measure.TrialArgs()}};
  db::Study study = store.FindOrCreateStudy(Sha256Hex(identity.dump()), workload_id, machine_id,
                                            space.ToJson().dump(), settings.dump());
  LeaseGuard lease(store, study.id, LeaseOwner());
  store.SetStudyGoal(study.id, goal.ToStore());
  if (int requeued = store.RequeueRunningTrials(study.id); requeued > 0) {
    observer.OnMessage(fmt::format("{} trial(s) interrupted earlier will run again", requeued));
  }

  StudyResult result;
  result.study_id = study.id;
  result.goal = goal;
  recipes::WorkloadRef workload_ref;
  workload_ref.name = workload.name;
  workload_ref.model_sha256 = workload.model_hash;
  workload_ref.batch = options.batch;
  workload_ref.model_path = options.source.model_path;
  for (const std::string& input : options.source.inputs) {
    workload_ref.inputs.push_back(recipes::ParseInputSpec(input));
  }

  // Why a done trial is infeasible ("" when it is not). Stock is judged by the latency bound
  // alone: it is the baseline, not a candidate the accuracy target could exclude.
  auto infeasible_reason = [&](bool stock, const Figures& figures,
                               const nlohmann::json& accuracy) -> std::string {
    return (stock ? goal.OverLatencyBound(figures) : goal.Infeasible(figures, accuracy))
        .value_or("");
  };
  // Trials stored by an earlier run are judged by this run's targets.
  {
    std::map<int64_t, int64_t> trial_ids;  // by number
    for (const db::Trial& t : store.ListTrials(study.id)) trial_ids[t.number] = t.id;
    for (const TrialSummary& s : Summaries(store, study.id, objective)) {
      if (!s.done()) continue;
      std::string infeasible =
          infeasible_reason(IsStock(nlohmann::json::parse(s.config_json)), s.figures(), s.accuracy);
      if (infeasible != s.infeasible) store.SetTrialInfeasible(trial_ids.at(s.number), infeasible);
    }
  }
  // What the strategies rank: the objective, higher is better; a failed or infeasible trial
  // has none.
  auto score = [&](const TrialSummary& s) -> std::optional<double> {
    if (!s.done() || !s.infeasible.empty()) return std::nullopt;
    return Score(objective, s.figures());
  };
  // Satisfice: a candidate that meets every target, judged on its search measurement.
  auto meets_targets = [&](const TrialSummary& s, const std::vector<TrialSummary>& all) {
    if (!s.done() || !s.infeasible.empty() || IsStock(nlohmann::json::parse(s.config_json))) {
      return false;
    }
    std::optional<Figures> stock;
    for (const TrialSummary& t : all) {
      if (t.done() && IsStock(nlohmann::json::parse(t.config_json))) stock = t.figures();
    }
    return goal.FastEnough(s.figures(), stock);
  };

  // A resumed study tells the strategy what it already knows, so nothing is proposed twice.
  int64_t finished_candidates = 0;
  for (const TrialSummary& s : Summaries(store, study.id, objective)) {
    Candidate config = nlohmann::json::parse(s.config_json);
    if (IsStock(config) || !Finished(s.status_value)) continue;
    ++finished_candidates;
    ++result.trials_resumed;
    strategy->Tell(config, score(s));
  }
  size_t budget = options.max_trials > 0
                      ? std::min(candidates.size(), static_cast<size_t>(options.max_trials))
                      : candidates.size();
  observer.OnMessage(fmt::format(
      "Study {}: {} strategy, {} of {} configurations, {} already measured, plus the stock "
      "baseline",
      study.id, options.strategy, budget, candidates.size(), finished_candidates));
  observer.OnMessage("Objective: " + goal.Describe());

  size_t index = static_cast<size_t>(finished_candidates);
  // Runs one trial to its stored end and returns its summary, or nullopt when the study was
  // cancelled during it.
  auto run_trial = [&](const Candidate& candidate) -> std::optional<TrialSummary> {
    bool stock = IsStock(candidate);
    std::string hash = ConfigHash(candidate);
    std::optional<db::Trial> trial = store.FindTrial(study.id, hash);
    if (!trial) {
      trial = store.AddTrial(study.id, candidate.dump(), hash,
                             stock ? std::optional<int64_t>(0) : std::nullopt);
    }
    recipes::Recipe recipe =
        stock ? recipes::Recipe{}
              : CandidateToRecipe(candidate, workload_ref, options.goal.accuracy_loss);
    std::string recipe_yaml = stock ? "" : recipes::ToYaml(recipe);
    store.MarkTrialRunning(trial->id, recipe_yaml);
    observer.OnTrialStarted(trial->number, Describe(candidate), stock ? 0 : index, budget);

    auto started = Clock::now();
    WorkerReply reply;
    try {
      reply = MeasureCandidate(
          options, worker, fingerprint.topology, candidate, workload_ref, options.measure, load,
          [&](const nlohmann::json& progress) {
            lease.Heartbeat();
            observer.OnTrialProgress(trial->number, progress);
          },
          cancel);
    } catch (const Error& e) {
      // Losing the lease ends the study: another tuner owns it now.
      if (e.code() == ErrorCode::kBusy) throw;
      // The trial cannot start here (an allocator that is not installed): a stored result.
      reply.error_code = ErrorCodeName(e.code());
      reply.error = e.what();
    }
    if (reply.error_code == "cancelled") {
      store.RequeueRunningTrials(study.id);
      return std::nullopt;
    }
    double wall_s = std::chrono::duration<double>(Clock::now() - started).count();
    if (!reply.ok && reply.error.empty()) reply.error = "the worker exited without a result";
    std::string expected = stock ? "stock" : "recipe";
    if (reply.ok && reply.result.value("name", "") != expected) {
      reply.ok = false;
      reply.error = fmt::format("the worker measured '{}' instead of the {}",
                                reply.result.value("name", ""), expected);
    }
    if (reply.ok) {
      double setup_s = reply.result.value("setup_s", wall_s);
      db::Measurement m = MeasurementFromResult(reply.result);
      RecordNoise(m, load.before(), load.after(), load.other_load());
      std::string infeasible =
          infeasible_reason(stock, {m.items_per_s, m.median_ms, m.p90_ms, m.p99_ms},
                            reply.result.value("accuracy", nlohmann::json::object()));
      store.FinishTrial(trial->id, db::TrialStatus::kDone, "", setup_s, m, infeasible);
    } else {
      db::TrialStatus status =
          reply.error_code == "timed_out" ? db::TrialStatus::kTimedOut : db::TrialStatus::kFailed;
      store.FinishTrial(trial->id, status, reply.error, wall_s, std::nullopt);
    }
    std::optional<TrialSummary> finished;
    for (const TrialSummary& s : Summaries(store, study.id, objective)) {
      if (s.number == trial->number) finished = s;
    }
    observer.OnTrialFinished(*finished);
    return finished;
  };

  Candidate stock = StockCandidate(allowed_cpus);
  std::optional<db::Trial> stock_trial = store.FindTrial(study.id, ConfigHash(stock));
  if (!stock_trial || !Finished(stock_trial->status)) {
    result.interrupted = !run_trial(stock);
  } else {
    ++result.trials_resumed;
  }
  if (goal.stop_when_met && !result.interrupted) {
    std::vector<TrialSummary> all = Summaries(store, study.id, objective);
    for (const TrialSummary& s : all) {
      if (!result.met_by && meets_targets(s, all)) result.met_by = s.number;
    }
    if (result.met_by) {
      observer.OnMessage(fmt::format(
          "Trial {}, measured earlier, already meets the targets: nothing left to search",
          *result.met_by));
    }
  }
  size_t ran_this_run = 0;
  while (!result.interrupted && !result.met_by &&
         static_cast<size_t>(finished_candidates) < budget) {
    double elapsed_s = std::chrono::duration<double>(Clock::now() - run_started).count();
    if (options.time_limit_s > 0 && elapsed_s >= options.time_limit_s) {
      observer.OnMessage(fmt::format(
          "Time limit of {:.0f} s reached after {} trial(s) in this run; run the same command "
          "again to continue the search",
          options.time_limit_s, ran_this_run));
      break;
    }
    std::optional<Candidate> next = strategy->Propose();
    if (!next) break;
    ++index;
    std::optional<TrialSummary> finished = run_trial(*next);
    if (!finished) {
      result.interrupted = true;
      break;
    }
    strategy->Tell(*next, score(*finished));
    ++finished_candidates;
    ++ran_this_run;
    if (goal.stop_when_met && meets_targets(*finished, Summaries(store, study.id, objective))) {
      result.met_by = finished->number;
      observer.OnMessage(fmt::format(
          "Trial {} meets the targets: the search stops here (stop when met)", finished->number));
    }
  }

  result.trials = Summaries(store, study.id, objective);
  std::vector<const TrialSummary*> ranked;
  const TrialSummary* stock_summary = nullptr;
  // Infeasible candidates, by the target they miss (one can miss both).
  size_t over_bound = 0;
  size_t inaccurate = 0;
  for (const TrialSummary& s : result.trials) {
    if (!s.done()) continue;
    if (IsStock(nlohmann::json::parse(s.config_json))) {
      stock_summary = &s;
    } else if (!s.infeasible.empty()) {
      if (goal.OverLatencyBound(s.figures())) ++over_bound;
      if (goal.OverAccuracyLoss(s.accuracy)) ++inaccurate;
    } else if (!result.met_by || *result.met_by == s.number) {
      // Satisfice: the trial that met the targets is the result, whatever came before it.
      ranked.push_back(&s);
    }
  }
  if (ranked.empty()) {
    std::vector<std::string> misses;
    if (over_bound > 0) {
      misses.push_back(fmt::format("{} finished over the latency bound of {:g} ms on {}",
                                   over_bound, *goal.latency_bound_ms,
                                   recipes::ToString(goal.BoundPercentile())));
    }
    if (inaccurate > 0) {
      misses.push_back(fmt::format("{} finished over the tolerable accuracy loss of {:g}",
                                   inaccurate, *goal.accuracy_loss));
    }
    if (!misses.empty()) {
      std::string line = "No candidate meets the targets: " + misses.front();
      if (misses.size() > 1) line += ", " + misses.back();
      result.target_report.push_back(line);
    }
    for (const std::string& line : result.target_report) observer.OnMessage(line);
    return result;
  }
  std::stable_sort(ranked.begin(), ranked.end(), [&](const TrialSummary* x, const TrialSummary* y) {
    return Score(objective, x->figures()) > Score(objective, y->figures());
  });
  result.best_trial = ranked.front()->number;
  if (result.interrupted) return result;

  std::optional<FinalComparison> final_comparison;
  // One process measures every finalist with the tightest interleaving (block by block), but
  // only candidates that need no process environment of their own (allocator, variables),
  // share the study's batch and run as one instance can share it fairly.
  auto comparable_in_one_process = [&](const TrialSummary* t) {
    recipes::Recipe r = CandidateToRecipe(nlohmann::json::parse(t->config_json), workload_ref,
                                          options.goal.accuracy_loss);
    return DescribeEnvironment(r.runtime).empty() && r.workload.batch == options.batch &&
           r.runtime.instances == 1;
  };
  if (stock_summary != nullptr && options.finalists > 0) {
    ranked.resize(std::min(ranked.size(), static_cast<size_t>(options.finalists)));
    const bool in_one_process =
        std::all_of(ranked.begin(), ranked.end(), comparable_in_one_process);
    observer.OnMessage(
        in_one_process
            ? fmt::format("Final comparison: the {} leading candidate(s) and stock, re-measured "
                          "interleaved in one worker",
                          ranked.size())
            : fmt::format("Final comparison: the {} leading candidate(s) and stock, each in "
                          "workers of its own, {} interleaved rounds (a finalist needs a process "
                          "environment, batch or instance count of its own)",
                          ranked.size(), kFinalRounds));
    final_comparison = CompareFinalists(
        options, worker, fingerprint.topology, workload_ref, ranked, in_one_process, observer, load,
        [&lease] { lease.Heartbeat(); }, cancel);
    if (!final_comparison && cancel.load()) {
      result.interrupted = true;
      return result;
    }
    if (final_comparison) {
      std::vector<db::Trial> rows = store.ListTrials(study.id);
      for (const auto& [number, measurement] : final_comparison->measurements) {
        for (const db::Trial& t : rows) {
          if (t.number == number) store.AddMeasurement(t.id, measurement);
        }
      }
      result.best_trial = final_comparison->winner;
      result.final_report = final_comparison->report;
      for (const std::string& line : final_comparison->report) observer.OnMessage(line);
    }
  }

  const TrialSummary* best = nullptr;
  for (const TrialSummary& s : result.trials) {
    if (s.number == *result.best_trial) best = &s;
  }
  std::optional<db::Trial> best_row;
  std::optional<db::Trial> stock_row;
  for (const db::Trial& t : store.ListTrials(study.id)) {
    if (t.number == best->number) best_row = t;
    if (t.number == 0) stock_row = t;
  }
  recipes::Recipe recipe = CandidateToRecipe(nlohmann::json::parse(best_row->config_json),
                                             workload_ref, options.goal.accuracy_loss);
  if (recipe.runtime.instances > 1) {
    const int64_t instances = recipe.runtime.instances;
    const int64_t threads =
        recipe.runtime.threads > 0 ? recipe.runtime.threads : allowed_cpus / instances;
    std::vector<std::string> layout;
    for (const platform::Stream& instance :
         InstancePlan(fingerprint.topology,
                      FirstCpus(fingerprint.topology.allowed, threads * instances), instances)) {
      layout.push_back(
          fmt::format("cpus {} (node {})", instance.cpus.ToString(), instance.numa_node));
    }
    // Both halves of the split run in one process; the winner's figure is a sum over several.
    observer.OnMessage(fmt::format(
        "The winner runs as {} instances, as measured on {}: start one process per instance, "
        "each bound to its CPUs (docs/runtime.md); the environment's share of the gain is not "
        "split out for it",
        instances, fmt::join(layout, ", ")));
  } else if (stock_summary != nullptr && stock_row &&
             !DescribeEnvironment(recipe.runtime).empty()) {
    std::optional<EnvironmentSplit> split = SplitEnvironmentGain(
        options, worker, fingerprint.topology.allowed, recipe, *stock_summary, observer, load,
        [&lease] { lease.Heartbeat(); }, cancel);
    if (!split && cancel.load()) {
      result.interrupted = true;
      return result;
    }
    if (split) {
      store.AddMeasurement(stock_row->id, split->stock_tuned);
      store.AddMeasurement(best_row->id, split->ours_tuned);
      result.environment_report = split->report;
      for (const std::string& line : split->report) observer.OnMessage(line);
    }
  }
  if (recipe.precision.dtype == recipes::Dtype::kInt8)
    recipe.precision.qparams = CalibratedQParams(store, best_row->id);
  if (recipe.precision.auto_fallback) {
    // The ops the trial's search kept (in the recipe's fallback_dtype), as a plain list:
    // production never searches.
    const nlohmann::json kept = AppliedOf(
        store, best_row->id,
        recipe.precision.fallback_dtype == recipes::Dtype::kBf16 ? "kept_bf16" : "kept_fp32");
    recipe.precision.fallback =
        kept.is_array() ? kept.get<std::vector<std::string>>() : std::vector<std::string>{};
    recipe.precision.auto_fallback.reset();
  }
  recipe.machine.fingerprint = fingerprint.key;
  recipe.machine.cpu = fingerprint.cpu.model_name;
  recipe.machine.isa = fingerprint.cpu.isa_flags;
  recipe.machine.cores = fingerprint.topology.PhysicalCoreCount();
  recipes::Provenance provenance;
  provenance.study = study.id;
  provenance.trial = best->number;
  provenance.created = UtcNow();
  provenance.ipex_tune_version = kIpexTuneVersion;
  provenance.objective = objective;
  provenance.latency_bound_ms = goal.latency_bound_ms;
  provenance.max_accuracy_loss = goal.accuracy_loss;
  if (best->accuracy.is_object()) {
    auto loss = best->accuracy.find("loss");
    if (loss != best->accuracy.end() && loss->is_number()) {
      provenance.measured.accuracy_loss = loss->get<double>();
    }
  }
  provenance.measured.items_per_s = best->items_per_s;
  provenance.measured.median_ms = best->median_ms;
  provenance.measured.p90_ms = best->p90_ms;
  provenance.measured.p99_ms = best->p99_ms;
  provenance.vs_stock = best->vs_stock;
  Figures reported = best->figures();
  if (final_comparison) {
    provenance.vs_stock = final_comparison->vs_stock.estimate;
    provenance.measured.items_per_s = final_comparison->items_per_s.estimate;
    for (const auto& [number, m] : final_comparison->measurements) {
      if (number != final_comparison->winner) continue;
      provenance.measured.median_ms = m.median_ms;
      provenance.measured.p90_ms = m.p90_ms;
      provenance.measured.p99_ms = m.p99_ms;
      reported = {m.items_per_s, m.median_ms, m.p90_ms, m.p99_ms};
    }
    provenance.measured.ci95_items_per_s =
        std::make_pair(final_comparison->items_per_s.low, final_comparison->items_per_s.high);
    if (final_comparison->latency_ms) {
      provenance.measured.ci95_latency_ms =
          std::make_pair(final_comparison->latency_ms->low, final_comparison->latency_ms->high);
    }
  }
  recipe.provenance = provenance;
  result.recipe_path =
      options.export_path.empty() ? RecipeFileName(workload.name) : options.export_path;
  recipes::SaveRecipe(recipe, result.recipe_path);
  store.AddRecipe(study.id, best_row->id, recipes::ToYaml(recipe), result.recipe_path);

  // The targets, as the exported winner meets them.
  result.targets_met = true;
  if (goal.latency_bound_ms) {
    result.target_report.push_back(fmt::format(
        "Latency bound {:g} ms on {}: met by trial {} in the search ({} candidate(s) over it)",
        *goal.latency_bound_ms, recipes::ToString(goal.BoundPercentile()), best->number,
        over_bound));
    if (final_comparison) {
      double final_ms = ObjectiveValue(goal.BoundPercentile(), reported);
      if (std::optional<std::string> over = goal.OverLatencyBound(reported)) {
        result.target_report.push_back(
            fmt::format("  warning: in the final comparison {}; the bound is judged on the "
                        "search measurement",
                        *over));
      } else {
        result.target_report.push_back(fmt::format("  final comparison: {} {:.2f} ms",
                                                   recipes::ToString(goal.BoundPercentile()),
                                                   final_ms));
      }
    }
  }
  if (goal.accuracy_loss) {
    result.target_report.push_back(fmt::format(
        "Accuracy loss at most {:g} against fp32: met by trial {} (loss {}; {} candidate(s) "
        "over it)",
        *goal.accuracy_loss, best->number,
        provenance.measured.accuracy_loss
            ? fmt::format("{:.4g}", *provenance.measured.accuracy_loss)
            : "-",
        inaccurate));
  }
  if (goal.min_speedup) {
    const char* where = final_comparison ? "final comparison" : "search";
    if (!provenance.vs_stock) {
      result.targets_met = false;
      result.target_report.push_back(
          fmt::format("Min speedup {:g}x: not met, stock has no measurement to compare with",
                      *goal.min_speedup));
    } else {
      bool met = *provenance.vs_stock >= *goal.min_speedup;
      result.targets_met = met;
      result.target_report.push_back(
          fmt::format("Min speedup {:g}x on {}: {} by trial {} ({:.3f}x stock in the {})",
                      *goal.min_speedup, recipes::ToString(objective), met ? "met" : "NOT met",
                      best->number, *provenance.vs_stock, where));
    }
  }
  if (goal.stop_when_met && !result.met_by) {
    result.target_report.push_back(
        "Stop when met: no trial met every target within the budget; the best one was exported");
  }
  for (const std::string& line : result.target_report) observer.OnMessage(line);
  return result;
}

}  // namespace ipt::tuner
