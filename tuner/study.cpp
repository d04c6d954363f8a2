#include "tuner/study.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <functional>

#include "base/error.h"
#include "base/sha256.h"
#include "base/stats.h"
#include "core/platform/system_source.h"
#include "db/store.h"
#include "recipes/recipe_yaml.h"
#include "tuner/fingerprint.h"
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
  m.raw_json = nlohmann::json{{"blocks", r.value("blocks", nlohmann::json::array())},
                              {"latencies_ms", r.value("latencies_ms", nlohmann::json::array())},
                              {"optimize_s", r.value("optimize_s", 0.0)},
                              {"build_s", r.value("build_s", 0.0)},
                              {"first_call_ms", r.value("first_call_ms", 0.0)}}
                   .dump();
  return m;
}

std::vector<TrialSummary> Summaries(const db::Store& store, int64_t study_id) {
  std::vector<TrialSummary> out;
  std::optional<double> stock;
  for (const db::Trial& t : store.ListTrials(study_id)) {
    TrialSummary s;
    s.number = t.number;
    s.config = Describe(nlohmann::json::parse(t.config_json));
    s.config_json = t.config_json;
    s.status = db::ToString(t.status);
    s.status_value = t.status;
    s.error = t.error;
    s.setup_s = t.setup_s;
    auto measurements = store.ListMeasurements(t.id);
    if (!measurements.empty()) {
      // The search's own measurement; a final comparison adds others after it.
      const db::Measurement& m = measurements.front();
      s.items_per_s = m.items_per_s;
      s.median_ms = m.median_ms;
      s.p90_ms = m.p90_ms;
      s.cv = m.cv;
      s.noisy = m.noisy;
      s.accuracy = nlohmann::json::parse(m.accuracy_json, nullptr, false);
      nlohmann::json raw = nlohmann::json::parse(m.raw_json, nullptr, false);
      if (raw.is_object()) {
        for (const auto& b : raw.value("blocks", nlohmann::json::array())) {
          s.measure_s += b.value("seconds", 0.0);
        }
      }
      if (IsStock(nlohmann::json::parse(t.config_json))) stock = m.items_per_s;
    }
    out.push_back(std::move(s));
  }
  if (stock && *stock > 0) {
    for (TrialSummary& s : out) {
      if (s.status == "done") s.vs_stock = s.items_per_s / *stock;
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
  return {changes, c.value("threads", int64_t{0})};
}

std::vector<double> BlockRates(const nlohmann::json& candidate, int64_t batch) {
  std::vector<double> rates;
  for (const auto& b : candidate.value("blocks", nlohmann::json::array())) {
    double seconds = b.value("seconds", 0.0);
    if (seconds > 0)
      rates.push_back(static_cast<double>(b.value("calls", int64_t{0}) * batch) / seconds);
  }
  return rates;
}

struct FinalComparison {
  int64_t winner = 0;
  std::vector<std::pair<int64_t, db::Measurement>> measurements;  // by trial number, stock 0
  std::vector<std::string> report;
  stats::BootstrapInterval vs_stock;
  stats::BootstrapInterval items_per_s;
};

constexpr double kSignificance = 0.05;
constexpr int kBootstrapResamples = 2000;

// Re-measures the finalists and stock interleaved in one worker, over more blocks than the
// search used, and picks the winner: the fastest, unless a simpler finalist is not
// significantly slower (Mann-Whitney U over block throughputs), in which case the simpler wins.
// Returns nullopt when the comparison could not run (cancelled, or the worker failed).
std::optional<FinalComparison> CompareFinalists(
    const StudyOptions& options, const WorkerClient& worker, const platform::CpuSet& allowed,
    const recipes::WorkloadRef& workload_ref, const std::vector<const TrialSummary*>& finalists,
    StudyObserver& observer, const std::function<void()>& heartbeat,
    const std::atomic<bool>& cancel) {
  char dir_template[] = "/tmp/ipex-tune-final-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return std::nullopt;
  std::string dir = dir_template;
  std::vector<std::string> args = {"bench", "--batch", std::to_string(options.batch), "--baseline",
                                   "stock"};
  for (const std::string& a : options.source.ToArgs()) args.push_back(a);
  MeasureSettings final_settings = options.measure;
  final_settings.min_blocks = std::max<int64_t>(final_settings.min_blocks, 9);
  for (const std::string& a : final_settings.ToArgs()) args.push_back(a);
  std::vector<Candidate> configs;
  for (const TrialSummary* f : finalists) {
    configs.push_back(nlohmann::json::parse(f->config_json));
    std::string path = fmt::format("{}/trial-{}.yaml", dir, f->number);
    recipes::SaveRecipe(CandidateToRecipe(configs.back(), workload_ref), path);
    args.insert(args.end(), {"--recipe", path});
  }
  std::vector<int> cpus(allowed.begin(), allowed.end());
  WorkerReply reply = worker.Run(
      args, "", cpus, {{"OMP_NUM_THREADS", std::to_string(cpus.size())}},
      std::chrono::duration_cast<std::chrono::milliseconds>(options.trial_timeout) *
          static_cast<int64_t>(finalists.size() + 1),
      [&](const nlohmann::json& progress) {
        heartbeat();
        observer.OnTrialProgress(-1, progress);
      },
      &cancel);
  std::filesystem::remove_all(dir);
  if (!reply.ok) {
    if (reply.error_code != "cancelled") {
      observer.OnMessage("Final comparison failed: " + reply.error +
                         "; the winner is the search's fastest");
    }
    return std::nullopt;
  }
  const nlohmann::json& candidates = reply.result.at("candidates");
  FinalComparison out;
  std::vector<double> stock_rates = BlockRates(candidates.at(0), options.batch);
  db::Measurement stock_measurement = MeasurementFromResult(candidates.at(0));
  stock_measurement.scenario = "final";
  out.measurements.emplace_back(0, stock_measurement);
  std::vector<std::vector<double>> rates;
  for (size_t i = 0; i < finalists.size(); ++i) {
    rates.push_back(BlockRates(candidates.at(i + 1), options.batch));
    db::Measurement m = MeasurementFromResult(candidates.at(i + 1));
    m.scenario = "final";
    out.measurements.emplace_back(finalists[i]->number, m);
  }
  size_t fastest = 0;
  for (size_t i = 1; i < finalists.size(); ++i) {
    if (stats::Median(rates[i]) > stats::Median(rates[fastest])) fastest = i;
  }
  size_t chosen = fastest;
  for (size_t i = 0; i < finalists.size(); ++i) {
    if (i == fastest) continue;
    double p = stats::MannWhitneyU(rates[fastest], rates[i]).p_value;
    out.report.push_back(fmt::format("  trial {} vs trial {}: {:.3f}x, p = {:.3f} ({})",
                                     finalists[fastest]->number, finalists[i]->number,
                                     stats::Median(rates[fastest]) / stats::Median(rates[i]), p,
                                     p < kSignificance ? "significant" : "a tie"));
    if (p >= kSignificance && Complexity(configs[i]) < Complexity(configs[chosen])) chosen = i;
  }
  out.winner = finalists[chosen]->number;
  out.vs_stock = stats::BootstrapRatioOfMedians(rates[chosen], stock_rates, 0.95,
                                                kBootstrapResamples, /*seed=*/1);
  out.items_per_s =
      stats::BootstrapRatioOfMedians(rates[chosen], {1.0}, 0.95, kBootstrapResamples, 2);
  double p_stock = stats::MannWhitneyU(rates[chosen], stock_rates).p_value;
  out.report.insert(
      out.report.begin(),
      fmt::format("Winner: trial {} ({}), {:.3f}x stock [95% CI {:.3f}-{:.3f}], p = {:.3f}: {}",
                  out.winner, finalists[chosen]->config, out.vs_stock.estimate, out.vs_stock.low,
                  out.vs_stock.high, p_stock,
                  p_stock < kSignificance ? "significantly different from stock"
                                          : "not significantly different from stock"));
  if (chosen != fastest) {
    out.report.push_back(
        fmt::format("  trial {} ties with the fastest and is simpler: it wins", out.winner));
  }
  return out;
}

}  // namespace

StudyResult RunStudy(const StudyOptions& options, StudyObserver& observer,
                     const std::atomic<bool>& cancel) {
  auto run_started = Clock::now();
  db::Store store = db::Store::Open(options.db_path, db::OpenMode::kReadWrite);
  WorkerClient worker(options.worker);
  WorkerInfo info = worker.Info();
  platform::LinuxSystemSource source;
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
  int64_t machine_id = store.UpsertMachine(fingerprint.key, fingerprint.key_fields.dump(),
                                           fingerprint.context.dump());
  int64_t workload_id =
      store.UpsertWorkload(workload.name, workload.model_hash, workload.flops_per_item,
                           nlohmann::json{{"inputs", workload.inputs}}.dump());
  nlohmann::json settings = {{"batch", options.batch},
                             {"max_trials", options.max_trials},
                             {"strategy", options.strategy},
                             {"seed", options.seed},
                             {"measure", options.measure.ToArgs()}};
  db::Study study = store.FindOrCreateStudy(Sha256Hex(identity.dump()), workload_id, machine_id,
                                            space.ToJson().dump(), settings.dump());
  LeaseGuard lease(store, study.id, LeaseOwner());
  if (int requeued = store.RequeueRunningTrials(study.id); requeued > 0) {
    observer.OnMessage(fmt::format("{} trial(s) interrupted earlier will run again", requeued));
  }

  StudyResult result;
  result.study_id = study.id;
  recipes::WorkloadRef workload_ref;
  workload_ref.name = workload.name;
  workload_ref.model_sha256 = workload.model_hash;
  workload_ref.batch = options.batch;
  workload_ref.model_path = options.source.model_path;
  for (const std::string& input : options.source.inputs) {
    workload_ref.inputs.push_back(recipes::ParseInputSpec(input));
  }

  // A resumed study tells the strategy what it already knows, so nothing is proposed twice.
  int64_t finished_candidates = 0;
  for (const TrialSummary& s : Summaries(store, study.id)) {
    Candidate config = nlohmann::json::parse(s.config_json);
    if (IsStock(config) || !Finished(s.status_value)) continue;
    ++finished_candidates;
    ++result.trials_resumed;
    strategy->Tell(config,
                   s.status == "done" ? std::optional<double>(s.items_per_s) : std::nullopt);
  }
  size_t budget = options.max_trials > 0
                      ? std::min(candidates.size(), static_cast<size_t>(options.max_trials))
                      : candidates.size();
  observer.OnMessage(fmt::format(
      "Study {}: {} strategy, {} of {} configurations, {} already measured, plus the stock "
      "baseline",
      study.id, options.strategy, budget, candidates.size(), finished_candidates));

  size_t index = static_cast<size_t>(finished_candidates);
  // Runs one trial to its stored end. Returns false when the study was cancelled during it.
  auto run_trial = [&](const Candidate& candidate, std::optional<double>* objective) {
    bool stock = IsStock(candidate);
    std::string hash = ConfigHash(candidate);
    std::optional<db::Trial> trial = store.FindTrial(study.id, hash);
    if (!trial) {
      trial = store.AddTrial(study.id, candidate.dump(), hash,
                             stock ? std::optional<int64_t>(0) : std::nullopt);
    }
    recipes::Recipe recipe = stock ? recipes::Recipe{} : CandidateToRecipe(candidate, workload_ref);
    std::string recipe_yaml = stock ? "" : recipes::ToYaml(recipe);
    int64_t threads = candidate.value("threads", allowed_cpus);
    int64_t batch = candidate.value("batch", options.batch);
    store.MarkTrialRunning(trial->id, recipe_yaml);
    observer.OnTrialStarted(trial->number, Describe(candidate), stock ? 0 : index, budget);

    std::vector<std::string> args = {"trial", "--batch", std::to_string(batch), "--threads",
                                     std::to_string(threads)};
    for (const std::string& a : options.source.ToArgs()) args.push_back(a);
    for (const std::string& a : options.measure.ToArgs()) args.push_back(a);
    if (stock) {
      args.insert(args.end(), {"--baseline", "stock"});
    } else {
      args.insert(args.end(), {"--recipe", "-"});
    }
    auto started = Clock::now();
    WorkerReply reply;
    try {
      reply = worker.Run(
          args, recipe_yaml, FirstCpus(fingerprint.topology.allowed, threads),
          WorkerEnvironment(recipe.runtime, threads),
          std::chrono::duration_cast<std::chrono::milliseconds>(options.trial_timeout),
          [&](const nlohmann::json& progress) {
            lease.Heartbeat();
            observer.OnTrialProgress(trial->number, progress);
          },
          &cancel);
    } catch (const Error& e) {
      // Losing the lease ends the study: another tuner owns it now.
      if (e.code() == ErrorCode::kBusy) throw;
      // The trial cannot start here (an allocator that is not installed): a stored result.
      reply.error_code = ErrorCodeName(e.code());
      reply.error = e.what();
    }
    if (reply.error_code == "cancelled") {
      store.RequeueRunningTrials(study.id);
      return false;
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
      store.FinishTrial(trial->id, db::TrialStatus::kDone, "", setup_s,
                        MeasurementFromResult(reply.result));
      *objective = reply.result.value("items_per_s", 0.0);
    } else {
      db::TrialStatus status =
          reply.error_code == "timed_out" ? db::TrialStatus::kTimedOut : db::TrialStatus::kFailed;
      store.FinishTrial(trial->id, status, reply.error, wall_s, std::nullopt);
      *objective = std::nullopt;
    }
    for (const TrialSummary& s : Summaries(store, study.id)) {
      if (s.number == trial->number) observer.OnTrialFinished(s);
    }
    return true;
  };

  Candidate stock = StockCandidate(allowed_cpus);
  std::optional<db::Trial> stock_trial = store.FindTrial(study.id, ConfigHash(stock));
  std::optional<double> objective;
  if (!stock_trial || !Finished(stock_trial->status)) {
    result.interrupted = !run_trial(stock, &objective);
  } else {
    ++result.trials_resumed;
  }
  size_t ran_this_run = 0;
  while (!result.interrupted && static_cast<size_t>(finished_candidates) < budget) {
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
    if (!run_trial(*next, &objective)) {
      result.interrupted = true;
      break;
    }
    strategy->Tell(*next, objective);
    ++finished_candidates;
    ++ran_this_run;
  }

  result.trials = Summaries(store, study.id);
  std::vector<const TrialSummary*> ranked;
  const TrialSummary* stock_summary = nullptr;
  for (const TrialSummary& s : result.trials) {
    if (s.status != "done") continue;
    if (IsStock(nlohmann::json::parse(s.config_json))) {
      stock_summary = &s;
    } else {
      ranked.push_back(&s);
    }
  }
  if (ranked.empty()) return result;
  std::sort(ranked.begin(), ranked.end(), [](const TrialSummary* x, const TrialSummary* y) {
    return x->items_per_s > y->items_per_s;
  });
  result.best_trial = ranked.front()->number;
  if (result.interrupted) return result;

  std::optional<FinalComparison> final_comparison;
  // The final comparison runs every finalist in one process: only candidates that need no
  // process environment of their own (allocator, variables) and share the study's batch can
  // be compared there fairly.
  auto comparable_in_one_process = [&](const TrialSummary* t) {
    recipes::Recipe r = CandidateToRecipe(nlohmann::json::parse(t->config_json), workload_ref);
    return r.runtime.allocator == recipes::Allocator::kDefault && r.runtime.env.empty() &&
           r.workload.batch == options.batch;
  };
  if (stock_summary != nullptr && options.finalists > 0 &&
      !comparable_in_one_process(ranked.front())) {
    observer.OnMessage(
        "Final comparison skipped: the fastest candidate needs a process environment or batch of "
        "its own; its search measurement stands");
  } else if (stock_summary != nullptr && options.finalists > 0) {
    ranked.erase(
        std::remove_if(ranked.begin(), ranked.end(),
                       [&](const TrialSummary* t) { return !comparable_in_one_process(t); }),
        ranked.end());
    ranked.resize(std::min(ranked.size(), static_cast<size_t>(options.finalists)));
    observer.OnMessage(fmt::format(
        "Final comparison: the {} leading candidate(s) and stock, re-measured interleaved",
        ranked.size()));
    final_comparison = CompareFinalists(
        options, worker, fingerprint.topology.allowed, workload_ref, ranked, observer,
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
  for (const db::Trial& t : store.ListTrials(study.id)) {
    if (t.number == best->number) best_row = t;
  }
  recipes::Recipe recipe =
      CandidateToRecipe(nlohmann::json::parse(best_row->config_json), workload_ref);
  recipe.machine.fingerprint = fingerprint.key;
  recipe.machine.cpu = fingerprint.cpu.model_name;
  recipe.machine.isa = fingerprint.cpu.isa_flags;
  recipe.machine.cores = fingerprint.topology.PhysicalCoreCount();
  recipes::Provenance provenance;
  provenance.study = study.id;
  provenance.trial = best->number;
  provenance.created = UtcNow();
  provenance.ipex_tune_version = kIpexTuneVersion;
  provenance.measured.items_per_s = best->items_per_s;
  provenance.measured.median_ms = best->median_ms;
  provenance.measured.p90_ms = best->p90_ms;
  provenance.vs_stock = best->vs_stock;
  if (final_comparison) {
    provenance.vs_stock = final_comparison->vs_stock.estimate;
    provenance.measured.items_per_s = final_comparison->items_per_s.estimate;
    for (const auto& [number, m] : final_comparison->measurements) {
      if (number != final_comparison->winner) continue;
      provenance.measured.median_ms = m.median_ms;
      provenance.measured.p90_ms = m.p90_ms;
    }
    provenance.measured.ci95_items_per_s =
        std::make_pair(final_comparison->items_per_s.low, final_comparison->items_per_s.high);
  }
  recipe.provenance = provenance;
  result.recipe_path =
      options.export_path.empty() ? RecipeFileName(workload.name) : options.export_path;
  recipes::SaveRecipe(recipe, result.recipe_path);
  store.AddRecipe(study.id, best_row->id, recipes::ToYaml(recipe), result.recipe_path);
  return result;
}

}  // namespace ipt::tuner
