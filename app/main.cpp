// ipex-tune: the front end. `--headless` runs a tuning study in the terminal; `bench` measures
// recipes against a baseline side by side. Never loads libtorch: everything that needs it is
// asked of ipex-tune-worker.
#include <fmt/format.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "app/bench_command.h"
#include "app/export_command.h"
#include "app/headless.h"
#include "base/error.h"
#include "recipes/recipe.h"
#include "tuner/objective.h"
#include "tuner/strategy.h"

namespace {

// Set by SIGINT/SIGTERM; the study polls it and stops cleanly. A second signal kills at once.
std::atomic<bool> g_cancel{false};

void OnSignal(int signal) {
  g_cancel.store(true);
  std::signal(signal, SIG_DFL);
}

// What is wrong with an option's value, or "" when nothing is; CLI11 prefixes the option name.
using Problem = std::string (*)(const std::string& text);

CLI::Validator Check(std::string description, Problem problem) {
  return CLI::Validator([problem](std::string& text) { return problem(text); },
                        std::move(description));
}

// A number > 0 that is finite: "0", "-1", "nan" and "inf" are refused with what was given.
std::string NotPositive(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  const bool ok = end != text.c_str() && *end == '\0' && std::isfinite(value) && value > 0;
  return ok ? "" : "expected a positive number, got '" + text + "'";
}

std::string NotAnObjective(const std::string& text) {
  if (ipt::recipes::ParseObjective(text)) return "";
  return "'" + text + "' is not one of " + ipt::recipes::ObjectiveSpellings();
}

std::string NotAnAccuracyLoss(const std::string& text) {
  try {
    ipt::tuner::ParseAccuracyLoss(text);
    return "";
  } catch (const ipt::Error& e) {
    return e.what();
  }
}

int ExitCodeFor(ipt::ErrorCode code) {
  switch (code) {
    case ipt::ErrorCode::kInvalidArgument:
    case ipt::ErrorCode::kNotFound:
      return 2;
    default:
      return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ipex-tune: benchmarks and auto-tunes deep-learning inference on CPUs.\n"
      "  ipex-tune --workload resnet50 --headless     tune in the terminal\n"
      "  ipex-tune bench --workload resnet50 --recipe r.yaml   measure recipes against stock"};
  ipt::app::HeadlessOptions tune;
  auto* tune_workload =
      app.add_option("--workload", tune.study.source.workload, "Workload to tune (resnet50)");
  auto* tune_model = app.add_option("--model", tune.study.source.model_path,
                                    "A TorchScript file (scripted or traced) to tune instead")
                         ->excludes(tune_workload);
  app.add_option("--input", tune.study.source.inputs,
                 "An input of --model, in forward's order: NAME:SHAPE[:DTYPE], dimension 0 the "
                 "batch (e.g. x:1x3x224x224:float32); repeatable")
      ->needs(tune_model);
  app.add_flag("--headless", tune.headless, "Run in the terminal, without the desktop app");
  app.add_option("--db", tune.study.db_path, "SQLite store of studies and results")
      ->capture_default_str();
  app.add_option("--export", tune.study.export_path,
                 "Where to write the best recipe (default: <workload>-recipe.yaml)");
  app.add_option("--max-trials", tune.study.max_trials,
                 "Finished trials other than the stock baseline (0: the whole space)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--space", tune.study.space_path,
                 "Search space YAML (docs/search-space.md); default: the workload's own");
  app.add_option("--strategy", tune.study.strategy, "grid, random, coordinate or tpe")
      ->check(CLI::IsMember(ipt::tuner::StrategyNames()))
      ->capture_default_str();
  app.add_option("--seed", tune.study.seed, "Seed of the random and tpe strategies")
      ->capture_default_str();
  std::string objective = "throughput";
  app.add_option("--objective", objective,
                 "What the search and the final comparison optimise: throughput (items/s), or "
                 "p50, p90, p99 (that percentile of call latency in ms, lower is better)")
      ->check(Check("{" + ipt::recipes::ObjectiveSpellings() + "}", NotAnObjective))
      ->capture_default_str();
  double latency_bound_ms = 0;
  auto* latency_bound =
      app.add_option("--latency-bound", latency_bound_ms,
                     "Hard bound in ms on the objective percentile (p99 with throughput): a "
                     "trial over it is stored as infeasible and never wins")
          ->check(Check("POSITIVE", NotPositive));
  double min_speedup = 0;
  auto* min_speedup_opt =
      app.add_option("--min-speedup", min_speedup,
                     "Target ratio to stock on the objective (e.g. 1.5); exit status 3 when the "
                     "exported winner misses it")
          ->check(Check("POSITIVE", NotPositive));
  std::string accuracy_loss = fmt::format("{:g}", ipt::tuner::kDefaultAccuracyLoss);
  auto* accuracy_loss_opt =
      app.add_option("--accuracy-loss", accuracy_loss,
                     "Tolerable accuracy loss against the fp32 reference: the fraction of the "
                     "reference's predictions a candidate may change (docs/accuracy.md), as 0.01 "
                     "or 1%; a trial over it is stored as infeasible and never wins; none: no "
                     "accuracy target")
          ->check(Check("LOSS|none", NotAnAccuracyLoss))
          ->capture_default_str();
  app.add_flag("--stop-when-met", tune.study.goal.stop_when_met,
               "Stop at the first trial that meets every target (--latency-bound, "
               "--min-speedup, --accuracy-loss given explicitly) instead of using the whole "
               "budget");
  app.add_option("--time-limit", tune.study.time_limit_s,
                 "Seconds this run may search before the final comparison (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--finalists", tune.study.finalists,
                 "Leading candidates re-measured against stock at the end (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("--keep-unsupported", tune.study.keep_unsupported,
               "Keep dtypes this CPU only emulates (bf16 without avx512_bf16)");
  app.add_option("--batch", tune.study.batch, "Batch size")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  double tune_measure_s = tune.study.measure.min_time_s;
  app.add_option("--measure-time", tune_measure_s, "Minimum measured seconds per trial")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  double tune_measure_share = tune.study.measure.measure_share;
  app.add_option("--measure-share", tune_measure_share,
                 "Least share of each trial's time spent measuring: a trial slow to set up "
                 "(start, build, optimise, check accuracy) measures at least set-up x F / (1 - F) "
                 "seconds, beyond --measure-time and up to 6 times it (0: --measure-time "
                 "alone)")
      ->check(CLI::Range(0.0, 0.95))
      ->capture_default_str();
  int64_t tune_eval_items = 0;
  app.add_option("--eval-items", tune_eval_items,
                 "Items of the evaluation set accuracy is judged on (default: 16 at batch 1, "
                 "fewer for very slow models); one changed prediction in N items is a loss of "
                 "1/N, so --accuracy-loss 0.01 needs 100 to allow any")
      ->check(CLI::PositiveNumber);
  app.add_option("--trial-timeout", tune.trial_timeout_s, "Seconds before a trial is killed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  ipt::app::BenchOptions bench;
  CLI::App* bench_cmd = app.add_subcommand(
      "bench", "Measure recipes and a baseline side by side in one worker, interleaved");
  auto* bench_workload = bench_cmd->add_option("--workload", bench.source.workload, "Workload");
  auto* bench_model =
      bench_cmd->add_option("--model", bench.source.model_path, "A TorchScript file instead")
          ->excludes(bench_workload);
  bench_cmd
      ->add_option("--input", bench.source.inputs,
                   "An input of --model: NAME:SHAPE[:DTYPE] (repeatable)")
      ->needs(bench_model);
  bench_cmd->add_option("--recipe", bench.recipes, "Recipe YAML (repeatable)")->required();
  bench_cmd
      ->add_option("--baseline", bench.baseline,
                   "Baseline: stock (libtorch's fastest fp32 path), stock-bf16 or stock-int8 "
                   "(libtorch's graph-mode quantization, static or dynamic, the faster)")
      ->capture_default_str();
  bench_cmd->add_option("--batch", bench.batch, "Batch size (overrides the recipes')")
      ->check(CLI::PositiveNumber);
  bench_cmd->add_option("--threads", bench.threads, "CPUs given to the run (default: all allowed)")
      ->check(CLI::PositiveNumber);
  bench_cmd
      ->add_option("--scenario", bench.scenario,
                   "latency: a multi-stream recipe cuts each batch over its streams; throughput: "
                   "every stream runs a batch of its own at once")
      ->check(CLI::IsMember({"latency", "throughput"}))
      ->capture_default_str();
  double bench_measure_s = bench.measure.min_time_s;
  bench_cmd->add_option("--measure-time", bench_measure_s, "Minimum measured seconds per candidate")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  int64_t bench_eval_items = 0;
  bench_cmd
      ->add_option("--eval-items", bench_eval_items,
                   "Items of the evaluation set accuracy is judged on (default: 16 at batch 1)")
      ->check(CLI::PositiveNumber);
  bench_cmd->add_flag("--json", bench.json, "Machine output (schema: docs/bench-json.md)");

  ipt::app::ExportOptions export_options;
  CLI::App* export_cmd =
      app.add_subcommand("export", "Write a study's trials and measurements as CSV or JSON");
  export_cmd->add_option("--db", export_options.db_path, "SQLite store")->capture_default_str();
  export_cmd->add_option("--study", export_options.study, "Study id (default: the newest)");
  export_cmd->add_option("--format", export_options.format, "csv or json")
      ->check(CLI::IsMember({"csv", "json"}))
      ->capture_default_str();
  export_cmd->add_option("--output", export_options.output, "File to write (default: stdout)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "ipex-tune: error: %s (see --help)\n", e.what());
    return 2;
  }
  tune.study.goal.objective = *ipt::recipes::ParseObjective(objective);
  if (latency_bound->count() > 0) tune.study.goal.latency_bound_ms = latency_bound_ms;
  if (min_speedup_opt->count() > 0) tune.study.goal.min_speedup = min_speedup;
  tune.study.goal.accuracy_loss = ipt::tuner::ParseAccuracyLoss(accuracy_loss);
  // Satisfice needs a target the user gave: the default accuracy target alone would stop the
  // search at the first accurate candidate.
  const bool given_target = tune.study.goal.latency_bound_ms || tune.study.goal.min_speedup ||
                            (accuracy_loss_opt->count() > 0 && tune.study.goal.accuracy_loss);
  if (tune.study.goal.stop_when_met && !given_target) {
    std::fprintf(stderr,
                 "ipex-tune: error: --stop-when-met needs a target: --latency-bound MS, "
                 "--min-speedup X and/or --accuracy-loss L\n");
    return 2;
  }
  tune.study.measure = ipt::tuner::MeasureSettings::ForBudget(tune_measure_s);
  bench.measure = ipt::tuner::MeasureSettings::ForBudget(bench_measure_s);
  tune.study.measure.eval_items = tune_eval_items;
  tune.study.measure.measure_share = tune_measure_share;
  bench.measure.eval_items = bench_eval_items;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  try {
    if (*export_cmd) return ipt::app::RunExport(export_options);
    if (*bench_cmd) {
      if (bench.source.workload.empty() && bench.source.model_path.empty()) {
        std::fprintf(stderr, "ipex-tune: bench needs --workload or --model\n");
        return 2;
      }
      return ipt::app::RunBench(bench, g_cancel);
    }
    if (!tune.headless) {
      std::fprintf(stderr,
                   "ipex-tune: the desktop app is not built yet; run in the terminal with "
                   "--headless (see --help)\n");
      return 2;
    }
    if (tune.study.source.workload.empty() && tune.study.source.model_path.empty()) {
      std::fprintf(stderr,
                   "ipex-tune: --workload or --model is required (e.g. --workload resnet50)\n");
      return 2;
    }
    return ipt::app::RunHeadless(tune, g_cancel);
  } catch (const ipt::Error& e) {
    std::fprintf(stderr, "ipex-tune: error: %s\n", e.what());
    return ExitCodeFor(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipex-tune: internal error: %s\n", e.what());
    return 1;
  }
}
