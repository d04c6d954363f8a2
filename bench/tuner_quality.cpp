// ipt_tuner_quality: the tuner quality benchmark of issue 7 (docs/tuner-quality.md).
//   replay   replays a stored, finished grid study through every search strategy: how many
//            trials each needs to reach a recipe within a tolerance of the grid's best, and how
//            the study's trials split their wall time between set-up and measuring;
//   repeat   measures one recipe in several worker processes, one after another: the spread;
//   compare  measures two candidates interleaved in one worker and applies the final
//            comparison's test: tie or difference.
// A measurement that misses its target prints FAIL and still exits 0; bad input (a missing
// store, study or recipe, a study that is not a whole grid) exits 2, a worker that fails 1.
// Needs no libtorch: everything that measures is asked of ipex-tune-worker.
#include <fmt/format.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/stats.h"
#include "base/temp_dir.h"
#include "core/platform/binding.h"
#include "db/store.h"
#include "recipes/recipe.h"
#include "recipes/recipe_yaml.h"
#include "tuner/objective.h"
#include "tuner/space.h"
#include "tuner/strategy.h"
#include "tuner/worker_client.h"
#include "tuner/worker_environment.h"

namespace ipt::bench {
namespace {

using nlohmann::json;
using tuner::Candidate;
using tuner::Objective;

// The final comparison's significance level and minimum block count; both live in
// tuner/study.cpp, which exports neither, so they are repeated here.
constexpr double kSignificance = 0.05;
constexpr int64_t kFinalMinBlocks = 9;
// Issue 7's targets.
constexpr size_t kMinGrid = 48;
constexpr int64_t kMinSeeds = 10;
constexpr double kTpeShareOfGrid = 0.25;
constexpr double kMinMeasuringShare = 0.70;
constexpr double kMaxSpread = 0.03;
// The tuner's own default trial timeout (--trial-timeout).
constexpr std::chrono::minutes kWorkerTimeout{10};

void Verdict(bool pass, const std::string& what) {
  std::printf("%s  %s\n", pass ? "PASS" : "FAIL", what.c_str());
}

Objective ParseObjectiveOrThrow(const std::string& text) {
  std::optional<Objective> objective = recipes::ParseObjective(text);
  if (!objective) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("objective '{}' is not one of {}", text,
                                                         recipes::ObjectiveSpellings()));
  }
  return *objective;
}

// ---------------------------------------------------------------------------------------------
// replay

struct ReplayOptions {
  std::string db_path;
  int64_t study = 0;  // 0: the newest
  int64_t seeds = 20;
  double within = 0.05;
};

// One finished trial as a strategy and the overhead figure see it.
struct StoredTrial {
  int64_t number = 0;
  std::optional<double> score;  // Score on the study's objective; none when failed or infeasible
  double setup_s = 0;
  double measure_s = 0;  // timed blocks of the search measurement, warm-up excluded
  double wall_s = 0;     // from marked running to finished, as the tuner stored it
};

StoredTrial ReadTrial(const db::Store& store, const db::Trial& t, Objective objective) {
  StoredTrial out{t.number, std::nullopt, t.setup_s, 0, t.finished_at - t.started_at};
  std::vector<db::Measurement> measurements = store.ListMeasurements(t.id);
  if (measurements.empty()) return out;
  // The search's own measurement; a final comparison adds others after it.
  const db::Measurement& m = measurements.front();
  const json raw = json::parse(m.raw_json, nullptr, /*allow_exceptions=*/false);
  if (raw.is_object()) {
    for (const json& b : raw.value("blocks", json::array()))
      out.measure_s += b.value("seconds", 0.0);
  }
  if (t.status == db::TrialStatus::kDone && t.infeasible.empty()) {
    out.score = tuner::Score(objective, {m.items_per_s, m.median_ms, m.p90_ms, m.p99_ms});
  }
  return out;
}

// Trials a strategy needs until it first proposes a candidate whose score is at least `target`;
// nullopt when it stops proposing before (coordinate descent can converge elsewhere).
std::optional<int64_t> TrialsToTarget(tuner::Strategy& strategy,
                                      const std::unordered_map<std::string, StoredTrial>& results,
                                      double target) {
  int64_t trials = 0;
  while (std::optional<Candidate> next = strategy.Propose()) {
    ++trials;
    const std::optional<double>& score = results.at(tuner::ConfigHash(*next)).score;
    if (score && *score >= target) return trials;
    strategy.Tell(*next, score);
  }
  return std::nullopt;
}

void PrintOverhead(const std::vector<StoredTrial>& trials) {
  double setup = 0;
  double measuring = 0;
  double wall = 0;
  for (const StoredTrial& t : trials) {
    setup += t.setup_s;
    measuring += t.measure_s;
    wall += t.wall_s;
  }
  const auto n = static_cast<double>(trials.size());
  std::printf("\nOverhead: %zu finished trials, stock included (seconds per trial, mean)\n",
              trials.size());
  std::printf("  set-up (start, model, optimise, accuracy check)  %8.2f\n", setup / n);
  std::printf("  measuring (timed blocks)                        %8.2f\n", measuring / n);
  std::printf("  other (warm-up, exit, the tuner's bookkeeping)   %8.2f\n",
              (wall - setup - measuring) / n);
  std::printf("  trial wall time                                 %8.2f\n", wall / n);
  const double share = wall > 0 ? measuring / wall : 0;
  Verdict(share >= kMinMeasuringShare,
          fmt::format("measuring is {:.1f}% of the trials' wall time (target >= {:.0f}%)",
                      share * 100, kMinMeasuringShare * 100));
}

// Study `id` of the store, or its newest for 0.
db::Study PickStudy(const db::Store& store, int64_t id) {
  const std::vector<db::Study> studies = store.ListStudies();
  if (studies.empty()) {
    throw Error(ErrorCode::kNotFound, fmt::format("'{}' holds no study", store.path()));
  }
  if (id == 0) return studies.back();
  auto it =
      std::find_if(studies.begin(), studies.end(), [&](const db::Study& s) { return s.id == id; });
  if (it == studies.end()) {
    throw Error(ErrorCode::kNotFound, fmt::format("'{}' has no study {} (the newest is {})",
                                                  store.path(), id, studies.back().id));
  }
  return *it;
}

int RunReplay(const ReplayOptions& options) {
  const db::Store store = db::Store::Open(options.db_path, db::OpenMode::kReadOnly);
  const db::Study study = PickStudy(store, options.study);
  const Objective objective = ParseObjectiveOrThrow(study.goal.objective);

  std::unordered_map<std::string, StoredTrial> results;  // finished trials by ConfigHash
  std::vector<StoredTrial> finished;
  std::optional<int64_t> cpus;
  for (const db::Trial& t : store.ListTrials(study.id)) {
    if (t.status == db::TrialStatus::kQueued || t.status == db::TrialStatus::kRunning) continue;
    const Candidate config = json::parse(t.config_json);
    // The stock baseline's configuration records the CPUs the study enumerated its space for.
    if (tuner::IsStock(config)) cpus = config.value("threads", int64_t{0});
    StoredTrial trial = ReadTrial(store, t, objective);
    finished.push_back(trial);
    results.emplace(t.config_hash, trial);
  }
  if (!cpus) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("study {} has no finished stock baseline (trial 0): run it to its end "
                            "with ipex-tune first",
                            study.id));
  }
  // The list the study's grid walked: its stored, pruned space enumerated for its CPUs.
  const std::vector<Candidate> candidates =
      tuner::Enumerate(tuner::SpaceDefinition::FromJson(json::parse(study.space_json)), *cpus);
  std::optional<double> best;
  std::optional<int64_t> best_trial;
  size_t missing = 0;
  std::string first_missing;
  for (const Candidate& c : candidates) {
    auto it = results.find(tuner::ConfigHash(c));
    if (it == results.end()) {
      if (missing++ == 0) first_missing = tuner::Describe(c);
      continue;
    }
    if (it->second.score && (!best || *it->second.score > *best)) {
      best = it->second.score;
      best_trial = it->second.number;
    }
  }
  if (missing > 0) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("study {} has finished {} of the {} candidates of its space (first "
                    "missing: {}); replay needs the whole grid: run the study with "
                    "--strategy grid and no --max-trials or --time-limit, to its end",
                    study.id, candidates.size() - missing, candidates.size(), first_missing));
  }
  if (!best) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("no candidate of study {} finished within its targets: there is no "
                            "best to reach",
                            study.id));
  }
  // Within `within` of the best on the objective's own value: for items/s at least
  // best * (1 - within), for a latency at most best * (1 + within). Scores are items/s or minus
  // the latency, so one inequality says both.
  const double target = *best - options.within * std::abs(*best);
  size_t near_best = 0;
  for (const Candidate& c : candidates) {
    const std::optional<double>& score = results.at(tuner::ConfigHash(c)).score;
    if (score && *score >= target) ++near_best;
  }
  std::optional<db::Workload> workload = store.GetWorkload(study.workload_id);
  const std::string unit = tuner::ObjectiveUnit(objective);
  std::printf("Study %lld (%s): %zu candidates, every one finished; objective %s\n",
              static_cast<long long>(study.id), workload ? workload->name.c_str() : "?",
              candidates.size(), tuner::DescribeObjective(objective).c_str());
  std::printf("Best: trial %lld, %.4g %s; target within %g%%: %s %.4g %s, met by %zu of %zu\n",
              static_cast<long long>(*best_trial), std::abs(*best), unit.c_str(),
              options.within * 100, tuner::IsLatency(objective) ? "<=" : ">=", std::abs(target),
              unit.c_str(), near_best, candidates.size());

  // Trials until the target, per seed; a seed that never reaches it ranks above every count,
  // as the whole grid plus one, so that a median above the grid size means "not reached".
  const double never = static_cast<double>(candidates.size() + 1);
  std::map<std::string, double> medians;
  std::printf("\nTrials to the target over %lld seeds (0-%lld)\n",
              static_cast<long long>(options.seeds), static_cast<long long>(options.seeds - 1));
  std::printf("%-12s %8s %6s %6s %8s %12s\n", "strategy", "median", "min", "max", "reached",
              "median/grid");
  auto count = [&](double v) { return v >= never ? std::string("-") : fmt::format("{:g}", v); };
  for (const char* name : {"grid", "random", "tpe", "coordinate"}) {
    std::vector<double> trials;
    int64_t reached = 0;
    for (int64_t seed = 0; seed < options.seeds; ++seed) {
      std::unique_ptr<tuner::Strategy> strategy =
          tuner::MakeStrategy(name, candidates, static_cast<uint64_t>(seed));
      std::optional<int64_t> n = TrialsToTarget(*strategy, results, target);
      reached += n ? 1 : 0;
      trials.push_back(n ? static_cast<double>(*n) : never);
    }
    const double median = stats::Median(trials);
    medians[name] = median;
    const std::string share =
        median >= never
            ? "-"
            : fmt::format("{:.1f}%", median / static_cast<double>(candidates.size()) * 100);
    std::printf("%-12s %8s %6s %6s %5lld/%-3lld %12s\n", name, count(median).c_str(),
                count(*std::min_element(trials.begin(), trials.end())).c_str(),
                count(*std::max_element(trials.begin(), trials.end())).c_str(),
                static_cast<long long>(reached), static_cast<long long>(options.seeds),
                share.c_str());
  }
  std::printf("\n");
  Verdict(candidates.size() >= kMinGrid,
          fmt::format("grid of {} configurations (target >= {})", candidates.size(), kMinGrid));
  Verdict(options.seeds >= kMinSeeds,
          fmt::format("{} seeds (target >= {})", options.seeds, kMinSeeds));
  const double limit = kTpeShareOfGrid * static_cast<double>(candidates.size());
  Verdict(medians["tpe"] <= limit,
          fmt::format("tpe median {} trials <= {:.0f}% of the grid ({:g})", count(medians["tpe"]),
                      kTpeShareOfGrid * 100, limit));
  Verdict(medians["tpe"] < medians["random"],
          fmt::format("tpe median {} < random median {}", count(medians["tpe"]),
                      count(medians["random"])));
  PrintOverhead(finished);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// repeat and compare: real measurements in ipex-tune-worker

struct MeasureOptions {
  tuner::WorkloadSource source;
  std::vector<std::string> recipes;
  std::string objective = "throughput";
  double measure_time_s = tuner::MeasureSettings{}.min_time_s;
  std::string worker = tuner::WorkerClient::DefaultExecutable();
};

void AddMeasureOptions(CLI::App* cmd, MeasureOptions& o) {
  auto* workload = cmd->add_option("--workload", o.source.workload, "Workload (resnet50, ...)");
  auto* model = cmd->add_option("--model", o.source.model_path, "A TorchScript file instead")
                    ->excludes(workload);
  cmd->add_option("--input", o.source.inputs, "An input of --model: NAME:SHAPE[:DTYPE]")
      ->needs(model);
  cmd->callback([cmd, workload, model] {
    if (workload->count() == 0 && model->count() == 0) {
      throw CLI::RequiredError(cmd->get_name() + ": --workload or --model");
    }
  });
  cmd->add_option("--objective", o.objective,
                  "throughput, p50, p90 or p99: the scenario, and what compare tests")
      ->capture_default_str();
  cmd->add_option("--measure-time", o.measure_time_s, "Minimum measured seconds per candidate")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--worker", o.worker, "The ipex-tune-worker to run")->capture_default_str();
}

// The first `count` CPUs this process may use: every worker of a run gets the same ones.
std::vector<int> FirstCpus(int64_t count) {
  const platform::CpuSet allowed = platform::CurrentAffinity();
  if (count > static_cast<int64_t>(allowed.size())) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{} threads asked for, but only {} CPUs are available to this process",
                            count, allowed.size()));
  }
  return {allowed.ids().begin(), allowed.ids().begin() + count};
}

int64_t DefaultThreads(const recipes::Recipe& recipe) {
  return recipe.runtime.threads > 0 ? recipe.runtime.threads
                                    : static_cast<int64_t>(platform::CurrentAffinity().size());
}

// repeat and compare measure in one worker process each time: a recipe that runs as several
// processes at once would be measured as one of them.
recipes::Recipe LoadOneProcessRecipe(const std::string& path) {
  recipes::Recipe recipe = recipes::LoadRecipe(path);
  if (recipe.runtime.instances > 1) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: runtime.instances is {}; repeat and compare measure one worker "
                            "process, not several at once",
                            path, recipe.runtime.instances));
  }
  return recipe;
}

// Runs one worker to its result; its failure is an error, mapped to exit status 2 when it is
// the request's fault (a missing model, a wrong input).
json RunWorker(const MeasureOptions& o, const std::vector<std::string>& args,
               const std::vector<int>& cpus, const std::map<std::string, std::string>& env) {
  tuner::WorkerClient worker(o.worker);
  tuner::WorkerReply reply = worker.Run(args, "", cpus, env, kWorkerTimeout, {}, nullptr);
  if (reply.ok) return reply.result;
  const ErrorCode code = reply.error_code == "not_found"          ? ErrorCode::kNotFound
                         : reply.error_code == "invalid_argument" ? ErrorCode::kInvalidArgument
                                                                  : ErrorCode::kWorkerFailed;
  throw Error(code, fmt::format("worker '{}': {}", o.worker,
                                reply.error.empty() ? "exited without a result" : reply.error));
}

// Each kernel's median rate in each process of the machine floor (MeasureFloor).
struct Floor {
  std::vector<double> copy_gbps;
  std::vector<double> loop_gops;
};

// The median over blocks of 0.3 s, for at least `seconds`, of a copy of 8 MiB into 8 MiB (GB/s
// moved) or of an arithmetic loop that touches no memory (Gop/s).
double MedianKernelRate(bool copy, double seconds) {
  constexpr size_t kBytes = size_t{8} << 20;
  std::vector<char> from(copy ? kBytes : 0, 1);
  std::vector<char> to(copy ? kBytes : 0, 2);
  std::vector<double> rates;
  volatile double sink = 0;
  const auto start = std::chrono::steady_clock::now();
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  while (since(start) < seconds || rates.size() < 3) {
    const auto block = std::chrono::steady_clock::now();
    double work = 0;
    while (since(block) < 0.3) {
      if (copy) {
        std::memcpy(to.data(), from.data(), kBytes);
        sink = sink + to[kBytes - 1];  // read, so the copy cannot be left out
        work += 2.0 * kBytes / 1e9;
      } else {
        double x = sink;
        for (int i = 0; i < 1000000; ++i) x = x * 0.999999 + 1e-6;
        sink = x;
        work += 2e-3;
      }
    }
    rates.push_back(work / since(block));
  }
  return stats::Median(rates);
}

// The machine's own floor for the spread: fixed kernels with no libtorch, no allocator and no
// OpenMP, measured as the recipe is (`processes` fresh processes one after another, `seconds`
// each) on `cpu`. The copy lives in the last-level cache as a model's weights and activations
// do, and on a virtual machine shares it with the host's other tenants.
Floor MeasureFloor(int cpu, int64_t processes, double seconds) {
  Floor floor;
  for (int64_t i = 0; i < processes; ++i) {
    for (bool copy : {true, false}) {
      int fds[2];
      if (pipe(fds) != 0) throw Error(ErrorCode::kIo, "machine floor: pipe failed");
      const pid_t pid = fork();
      if (pid < 0) throw Error(ErrorCode::kIo, "machine floor: fork failed");
      if (pid == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof(set), &set);
        const double rate = MedianKernelRate(copy, seconds);
        (void)!write(fds[1], &rate, sizeof(rate));
        _exit(0);
      }
      close(fds[1]);
      double rate = 0;
      const bool got = read(fds[0], &rate, sizeof(rate)) == static_cast<ssize_t>(sizeof(rate));
      close(fds[0]);
      waitpid(pid, nullptr, 0);
      if (!got) throw Error(ErrorCode::kIo, "machine floor: a measuring process died");
      (copy ? floor.copy_gbps : floor.loop_gops).push_back(rate);
    }
  }
  return floor;
}

double Spread(const std::vector<double>& v) {
  const auto [low, high] = std::minmax_element(v.begin(), v.end());
  return (*high - *low) / stats::Median(v);
}

struct RepeatOptions {
  MeasureOptions measure;
  int64_t processes = 5;
  int64_t threads = 0;  // 0: the recipe's, else every allowed CPU
};

int RunRepeat(const RepeatOptions& options) {
  const MeasureOptions& o = options.measure;
  const Objective objective = ParseObjectiveOrThrow(o.objective);
  const std::string& path = o.recipes.front();
  const recipes::Recipe recipe = LoadOneProcessRecipe(path);
  const int64_t threads = options.threads > 0 ? options.threads : DefaultThreads(recipe);
  const std::vector<int> cpus = FirstCpus(threads);
  const std::map<std::string, std::string> env = tuner::WorkerEnvironment(recipe.runtime, threads);
  std::vector<std::string> args = {"trial",
                                   "--batch",
                                   std::to_string(recipe.workload.batch),
                                   "--threads",
                                   std::to_string(threads),
                                   "--scenario",
                                   tuner::Scenario(objective)};
  for (const std::string& a : o.source.ToArgs()) args.push_back(a);
  // As a study's trial measures, set-up-dependent minimum included.
  for (const std::string& a : tuner::MeasureSettings::ForBudget(o.measure_time_s).TrialArgs())
    args.push_back(a);
  args.insert(args.end(), {"--recipe", path});

  std::printf("%s in %lld worker processes, one after another, on CPUs %s\n", path.c_str(),
              static_cast<long long>(options.processes), platform::CpuSet(cpus).ToString().c_str());
  std::printf("%-8s %12s %10s %7s %9s %10s\n", "process", "items/s", "median ms", "cv %", "setup s",
              "measure s");
  std::vector<double> rates;
  std::vector<double> medians;
  std::vector<double> measured_s;
  for (int64_t i = 1; i <= options.processes; ++i) {
    const json r = RunWorker(o, args, cpus, env);
    double measure_s = 0;
    for (const json& b : r.value("blocks", json::array())) measure_s += b.value("seconds", 0.0);
    measured_s.push_back(measure_s);
    rates.push_back(r.value("items_per_s", 0.0));
    medians.push_back(r.value("median_ms", 0.0));
    std::printf("%-8lld %12.2f %10.3f %7.1f %9.2f %10.2f%s\n", static_cast<long long>(i),
                rates.back(), medians.back(), r.value("cv", 0.0) * 100, r.value("setup_s", 0.0),
                measure_s, r.value("noisy", false) ? "  noisy" : "");
  }
  std::printf("spread of items/s: %.2f%%\n", Spread(rates) * 100);
  // As long as the recipe's processes measured, so both see the machine over the same spans.
  const double floor_seconds = stats::Median(measured_s);
  const Floor floor = MeasureFloor(cpus.front(), options.processes, floor_seconds);
  auto list = [](const std::vector<double>& v) {
    std::string text;
    for (double x : v) text += fmt::format(" {:.2f}", x);
    return text;
  };
  std::printf(
      "machine floor, %lld processes of %.1f s on CPU %d without libtorch:\n"
      "  copy of 8 MiB in cache, GB/s:%s  spread %.2f%%\n"
      "  arithmetic loop, Gop/s:%s  spread %.2f%%\n",
      static_cast<long long>(options.processes), floor_seconds, cpus.front(),
      list(floor.copy_gbps).c_str(), Spread(floor.copy_gbps) * 100, list(floor.loop_gops).c_str(),
      Spread(floor.loop_gops) * 100);
  Verdict(Spread(medians) <= kMaxSpread,
          fmt::format("spread of the {} median latencies (max - min) / median = {:.2f}% (target "
                      "<= {:.0f}%; the machine's own, copy in cache: {:.2f}%)",
                      medians.size(), Spread(medians) * 100, kMaxSpread * 100,
                      Spread(floor.copy_gbps) * 100));
  return 0;
}

struct CompareOptions {
  MeasureOptions measure;
  bool aa = false;         // the one recipe against itself
  std::string threads_vs;  // "1,2": the one recipe at each thread count
};

std::pair<int64_t, int64_t> ParseThreadPair(const std::string& text) {
  int64_t a = 0;
  int64_t b = 0;
  char rest = 0;
  if (std::sscanf(text.c_str(), "%" SCNd64 ",%" SCNd64 "%c", &a, &b, &rest) != 2 || a < 1 ||
      b < 1 || a == b) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("--threads-vs '{}': expected two different thread counts, as 1,2", text));
  }
  return {a, b};
}

int RunCompare(const CompareOptions& options) {
  const MeasureOptions& o = options.measure;
  const Objective objective = ParseObjectiveOrThrow(o.objective);
  const std::optional<std::pair<int64_t, int64_t>> thread_pair =
      options.threads_vs.empty() ? std::nullopt
                                 : std::optional(ParseThreadPair(options.threads_vs));
  const size_t wanted = options.aa || thread_pair ? 1 : 2;
  if (o.recipes.size() != wanted) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("compare takes {} --recipe {}, got {}", wanted,
                    wanted == 1 ? "with --aa or --threads-vs" : "without them", o.recipes.size()));
  }
  // Candidates A and B: (label, recipe file, recipe).
  struct Side {
    std::string label;
    std::string path;
    recipes::Recipe recipe;
  };
  std::vector<Side> sides;
  for (const std::string& path : o.recipes)
    sides.push_back({path, path, LoadOneProcessRecipe(path)});
  // The thread-count variants, written for the worker; removed however the comparison ends.
  std::optional<TempDir> dir;
  std::string mode = "A/B";
  if (options.aa) {
    mode = "A/A";
    sides.push_back(sides.front());
  } else if (thread_pair) {
    const auto [a, b] = *thread_pair;
    mode = fmt::format("{} against {} threads", a, b);
    dir.emplace("ipt-tuner-quality");
    Side base = sides.front();
    sides.clear();
    for (int64_t t : {a, b}) {
      Side side = base;
      side.recipe.runtime.threads = t;
      side.label = fmt::format("{} at {} thread(s)", base.path, t);
      side.path = fmt::format("{}/threads-{}.yaml", dir->path(), t);
      recipes::SaveRecipe(side.recipe, side.path);
      sides.push_back(std::move(side));
    }
  }
  const int64_t threads =
      std::max(DefaultThreads(sides[0].recipe), DefaultThreads(sides[1].recipe));
  // One process has one environment: as the tuner's final comparison, only candidates that
  // want the same one (allocator, OpenMP variables) can be compared fairly in it.
  const std::map<std::string, std::string> env =
      tuner::WorkerEnvironment(sides[0].recipe.runtime, threads);
  if (env != tuner::WorkerEnvironment(sides[1].recipe.runtime, threads) ||
      sides[0].recipe.workload.batch != sides[1].recipe.workload.batch) {
    throw Error(ErrorCode::kInvalidArgument,
                "the two recipes need different process environments or batches: one worker "
                "cannot measure both fairly");
  }
  tuner::MeasureSettings settings = tuner::MeasureSettings::ForBudget(o.measure_time_s);
  settings.min_blocks = std::max(settings.min_blocks, kFinalMinBlocks);
  const int64_t batch = sides[0].recipe.workload.batch;
  // The worker's bench mode always measures the stock baseline too, as candidate 0.
  std::vector<std::string> args = {"bench", "--batch",    std::to_string(batch),     "--baseline",
                                   "stock", "--scenario", tuner::Scenario(objective)};
  for (const std::string& a : o.source.ToArgs()) args.push_back(a);
  for (const std::string& a : settings.ToArgs()) args.push_back(a);
  for (const Side& s : sides) args.insert(args.end(), {"--recipe", s.path});
  const json result = RunWorker(o, args, FirstCpus(threads), env);
  const json& candidates = result.at("candidates");

  std::printf("compare %s, %s, batch %lld, %lld CPU(s), interleaved in one worker\n", mode.c_str(),
              result.value("workload", "").c_str(), static_cast<long long>(batch),
              static_cast<long long>(threads));
  std::printf("%-4s %-48s %12s %10s %7s %7s\n", "", "candidate", "items/s", "median ms", "cv %",
              "blocks");
  std::vector<std::vector<double>> values;
  for (size_t i = 0; i < 2; ++i) {
    const json& c = candidates.at(i + 1);
    values.push_back(tuner::BlockValues(objective, c, batch));
    std::printf("%-4s %-48s %12.2f %10.3f %7.1f %7zu\n", i == 0 ? "A" : "B", sides[i].label.c_str(),
                c.value("items_per_s", 0.0), c.value("median_ms", 0.0), c.value("cv", 0.0) * 100,
                values.back().size());
  }
  if (values[0].empty() || values[1].empty()) {
    throw Error(ErrorCode::kWorkerFailed, "a candidate has no timed blocks to compare");
  }
  const double a = stats::Median(values[0]);
  const double b = stats::Median(values[1]);
  // Above 1 when B is better: its items/s over A's, or A's latency over B's.
  const double ratio = tuner::IsLatency(objective) ? a / b : b / a;
  const double p = stats::MannWhitneyU(values[0], values[1]).p_value;
  const bool difference = p < kSignificance;
  std::printf("B against A: %.3fx on %s (medians over blocks), Mann-Whitney U p = %.4f: %s\n",
              ratio, recipes::ToString(objective), p, difference ? "difference" : "tie");
  if (options.aa) Verdict(!difference, "the A/A comparison is called a tie");
  if (thread_pair) Verdict(difference, fmt::format("{} is called a difference", mode));
  return 0;
}

// 2 for bad input (a missing or foreign file, an unknown study, a wrong flag), else 1.
int ExitCodeFor(ErrorCode code) {
  return code == ErrorCode::kInvalidArgument || code == ErrorCode::kNotFound ||
                 code == ErrorCode::kCorrupt
             ? 2
             : 1;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "ipt_tuner_quality: the tuner quality benchmark of issue 7 "
      "(docs/tuner-quality.md)"};
  app.require_subcommand(1);

  ReplayOptions replay;
  CLI::App* replay_cmd = app.add_subcommand(
      "replay", "Replay a stored grid study through every strategy, and its overhead");
  replay_cmd->add_option("--db", replay.db_path, "SQLite store")->required();
  replay_cmd->add_option("--study", replay.study, "Study id (default: the newest)");
  replay_cmd->add_option("--seeds", replay.seeds, "Seeds per strategy, 0 to N-1")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  replay_cmd->add_option("--within", replay.within, "Target: this share of the grid's best")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();

  RepeatOptions repeat;
  CLI::App* repeat_cmd = app.add_subcommand(
      "repeat", "Measure one recipe in several worker processes, one after another");
  AddMeasureOptions(repeat_cmd, repeat.measure);
  repeat_cmd->add_option("--recipe", repeat.measure.recipes, "Recipe YAML")
      ->required()
      ->expected(1);
  repeat_cmd->add_option("--processes", repeat.processes, "Worker processes")
      ->check(CLI::Range(int64_t{2}, int64_t{1000}))
      ->capture_default_str();
  repeat_cmd->add_option("--threads", repeat.threads, "Threads (default: the recipe's)")
      ->check(CLI::PositiveNumber);

  CompareOptions compare;
  CLI::App* compare_cmd = app.add_subcommand(
      "compare", "Measure two candidates interleaved in one worker: tie or difference");
  AddMeasureOptions(compare_cmd, compare.measure);
  compare_cmd->add_option("--recipe", compare.measure.recipes, "Recipe YAML (A, then B)")
      ->required();
  auto* aa = compare_cmd->add_flag("--aa", compare.aa, "Compare the one recipe with itself");
  compare_cmd
      ->add_option("--threads-vs", compare.threads_vs,
                   "Compare the one recipe at two thread counts, as 1,2")
      ->excludes(aa);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "ipt_tuner_quality: error: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    if (*replay_cmd) return RunReplay(replay);
    if (*repeat_cmd) return RunRepeat(repeat);
    return RunCompare(compare);
  } catch (const Error& e) {
    std::fprintf(stderr, "ipt_tuner_quality: error: %s\n", e.what());
    return ExitCodeFor(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipt_tuner_quality: internal error: %s\n", e.what());
    return 1;
  }
}

}  // namespace
}  // namespace ipt::bench

int main(int argc, char** argv) { return ipt::bench::Main(argc, argv); }
