#include "tuner/study.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

#include "base/error.h"
#include "base/sha256.h"
#include "core/platform/system_source.h"
#include "db/store.h"
#include "recipes/recipe_yaml.h"
#include "tuner/fingerprint.h"
#include "tuner/space.h"

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
    s.status = db::ToString(t.status);
    s.error = t.error;
    s.setup_s = t.setup_s;
    auto measurements = store.ListMeasurements(t.id);
    if (!measurements.empty()) {
      const db::Measurement& m = measurements.back();
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

std::vector<int> FirstCpus(const platform::CpuSet& allowed, int64_t count) {
  std::vector<int> cpus;
  for (int cpu : allowed) {
    if (static_cast<int64_t>(cpus.size()) == count) break;
    cpus.push_back(cpu);
  }
  return cpus;
}

}  // namespace

StudyResult RunStudy(const StudyOptions& options, StudyObserver& observer,
                     const std::atomic<bool>& cancel) {
  db::Store store = db::Store::Open(options.db_path, db::OpenMode::kReadWrite);
  WorkerClient worker(options.worker);
  WorkerInfo info = worker.Info();
  platform::LinuxSystemSource source;
  Fingerprint fingerprint = MakeFingerprint(source, info);
  observer.OnMessage(fmt::format("Machine: {} ({} CPUs allowed), libtorch {}, oneDNN {} ({})",
                                 fingerprint.cpu.model_name, fingerprint.topology.allowed.size(),
                                 info.libtorch, info.onednn, info.onednn_isa));
  observer.OnMessage(fmt::format("Building workload '{}'...", options.workload));
  WorkloadInfo workload = worker.DescribeWorkload(options.workload);

  auto allowed_cpus = static_cast<int64_t>(fingerprint.topology.allowed.size());
  SearchSpace space =
      DefaultSpace(options.workload, {allowed_cpus, fingerprint.cpu.HasIsa("avx512_bf16")});
  nlohmann::json identity = {{"workload", workload.name},
                             {"model_hash", workload.model_hash},
                             {"batch", options.batch},
                             {"space", space.ToJson()},
                             {"fingerprint", fingerprint.key}};
  int64_t machine_id = store.UpsertMachine(fingerprint.key, fingerprint.key_fields.dump(),
                                           fingerprint.context.dump());
  int64_t workload_id =
      store.UpsertWorkload(workload.name, workload.model_hash, workload.flops_per_item,
                           nlohmann::json{{"inputs", workload.inputs}}.dump());
  nlohmann::json settings = {{"batch", options.batch},
                             {"max_trials", options.max_trials},
                             {"strategy", "grid"},
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

  std::vector<Candidate> plan = {StockCandidate(allowed_cpus)};
  for (Candidate& c : GridCandidates(space)) plan.push_back(std::move(c));
  int64_t finished_candidates = 0;
  size_t planned = options.max_trials > 0
                       ? std::min(plan.size(), static_cast<size_t>(options.max_trials) + 1)
                       : plan.size();
  observer.OnMessage(fmt::format("Study {}: {} of {} configurations (stock baseline included)",
                                 study.id, planned, plan.size()));
  size_t index = 0;
  for (const Candidate& candidate : plan) {
    bool stock = IsStock(candidate);
    if (!stock && options.max_trials > 0 && finished_candidates >= options.max_trials) break;
    ++index;
    std::string hash = ConfigHash(candidate);
    std::optional<db::Trial> trial = store.FindTrial(study.id, hash);
    if (trial && Finished(trial->status)) {
      ++result.trials_resumed;
      if (!stock) ++finished_candidates;
      continue;
    }
    if (!trial) {
      trial = store.AddTrial(study.id, candidate.dump(), hash,
                             stock ? std::optional<int64_t>(0) : std::nullopt);
    }
    std::string recipe_yaml =
        stock ? "" : recipes::ToYaml(CandidateToRecipe(candidate, workload_ref));
    int64_t threads = candidate.value("threads", allowed_cpus);
    store.MarkTrialRunning(trial->id, recipe_yaml);
    observer.OnTrialStarted(trial->number, Describe(candidate), index, planned);

    std::vector<std::string> args = {"trial",
                                     "--workload",
                                     workload.name,
                                     "--batch",
                                     std::to_string(options.batch),
                                     "--threads",
                                     std::to_string(threads)};
    for (const std::string& a : options.measure.ToArgs()) args.push_back(a);
    if (stock) {
      args.insert(args.end(), {"--baseline", "stock"});
    } else {
      args.insert(args.end(), {"--recipe", "-"});
    }
    auto started = Clock::now();
    WorkerReply reply = worker.Run(
        args, recipe_yaml, FirstCpus(fingerprint.topology.allowed, threads),
        {{"OMP_NUM_THREADS", std::to_string(threads)}},
        std::chrono::duration_cast<std::chrono::milliseconds>(options.trial_timeout),
        [&](const nlohmann::json& progress) {
          lease.Heartbeat();
          observer.OnTrialProgress(trial->number, progress);
        },
        &cancel);
    if (reply.error_code == "cancelled") {
      store.RequeueRunningTrials(study.id);
      result.interrupted = true;
      break;
    }
    double wall_s = std::chrono::duration<double>(Clock::now() - started).count();
    if (reply.ok) {
      double setup_s = reply.result.value("setup_s", wall_s);
      store.FinishTrial(trial->id, db::TrialStatus::kDone, "", setup_s,
                        MeasurementFromResult(reply.result));
    } else {
      db::TrialStatus status =
          reply.error_code == "timed_out" ? db::TrialStatus::kTimedOut : db::TrialStatus::kFailed;
      store.FinishTrial(trial->id, status, reply.error, wall_s, std::nullopt);
    }
    if (!stock) ++finished_candidates;
    for (const TrialSummary& s : Summaries(store, study.id)) {
      if (s.number == trial->number) observer.OnTrialFinished(s);
    }
  }

  result.trials = Summaries(store, study.id);
  const TrialSummary* best = nullptr;
  for (const TrialSummary& s : result.trials) {
    if (s.number == 0 || s.status != "done") continue;
    if (best == nullptr || s.items_per_s > best->items_per_s) best = &s;
  }
  if (best == nullptr) return result;
  result.best_trial = best->number;
  if (result.interrupted) return result;

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
  recipe.provenance = provenance;
  result.recipe_path =
      options.export_path.empty() ? workload.name + "-recipe.yaml" : options.export_path;
  recipes::SaveRecipe(recipe, result.recipe_path);
  store.AddRecipe(study.id, best_row->id, recipes::ToYaml(recipe), result.recipe_path);
  return result;
}

}  // namespace ipt::tuner
