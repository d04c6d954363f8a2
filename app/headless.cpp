#include "app/headless.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "recipes/recipe.h"

namespace ipt::app {
namespace {

// The trial's accuracy loss against the fp32 reference (docs/accuracy.md), or "-" without one.
std::string Loss(const nlohmann::json& accuracy) {
  if (!accuracy.is_object()) return "-";
  auto loss = accuracy.find("loss");
  if (loss == accuracy.end() || !loss->is_number()) return "-";
  return fmt::format("{:.4g}", loss->get<double>());
}

class TerminalObserver : public tuner::StudyObserver {
 public:
  TerminalObserver() : tty_(isatty(STDERR_FILENO) != 0) {}

  void OnMessage(const std::string& text) override { Line(text); }

  void OnTrialStarted(int64_t number, const std::string& config, size_t index,
                      size_t total) override {
    prefix_ = index == 0 ? fmt::format("[baseline] trial {} ({})", number, config)
                         : fmt::format("[{}/{}] trial {} ({})", index, total, number, config);
    Status(prefix_ + ": starting");
  }

  void OnTrialProgress(int64_t number, const nlohmann::json& progress) override {
    if (number == tuner::kFinalComparisonProgress) prefix_ = "[final comparison]";
    if (number == tuner::kEnvironmentSplitProgress) prefix_ = "[environment]";
    std::string phase = progress.value("phase", "");
    if (phase == "measure" && progress.contains("blocks")) {
      Status(fmt::format("{}: measuring, block {} ({:.1f} s)", prefix_, progress.value("blocks", 0),
                         progress.value("elapsed_s", 0.0)));
    } else if (phase == "fallback" && progress.contains("what")) {
      Status(fmt::format("{}: fallback search, {} ({} of {})", prefix_, progress.value("what", ""),
                         progress.value("step", 0), progress.value("of", 0)));
    } else if (!phase.empty()) {
      Status(fmt::format("{}: {}", prefix_, phase));
    }
  }

  void OnTrialFinished(const tuner::TrialSummary& t) override {
    if (t.status == "done") {
      Line(fmt::format("{}: {:.2f} items/s, median {:.2f} ms, p99 {:.2f} ms, accuracy loss {}{}{}",
                       prefix_, t.items_per_s, t.median_ms, t.p99_ms, Loss(t.accuracy),
                       t.noisy ? " (noisy: " + t.noise + ")" : "",
                       t.infeasible.empty() ? "" : "; infeasible: " + t.infeasible));
    } else {
      Line(fmt::format("{}: {}: {}", prefix_, t.status, t.error));
    }
  }

 private:
  // A status line overwrites itself on a terminal; in a log it is printed once per change.
  void Status(const std::string& text) {
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", text.c_str());
    } else if (text.find("measuring") == std::string::npos) {
      std::fprintf(stderr, "%s\n", text.c_str());
    }
    std::fflush(stderr);
  }
  void Line(const std::string& text) {
    std::fprintf(stderr, tty_ ? "\r\033[K%s\n" : "%s\n", text.c_str());
    std::fflush(stderr);
  }

  bool tty_;
  std::string prefix_;
};

// The results, trials in the order they ran. `loss` is the accuracy loss against the fp32
// reference, `vs stock` the ratio on the study's objective (above 1 better); `*` marks the
// winner, and notes say why a trial is infeasible or noisy.
void PrintTable(const tuner::StudyResult& result) {
  std::printf("\nObjective: %s\n", result.goal.Describe().c_str());
  std::printf("%-6s %-28s %-9s %12s %10s %10s %10s %7s %7s %9s\n", "trial", "configuration",
              "status", "items/s", "median ms", "p90 ms", "p99 ms", "cv %", "loss", "vs stock");
  for (const tuner::TrialSummary& t : result.trials) {
    std::string notes = result.best_trial && *result.best_trial == t.number ? " *" : "";
    if (!t.infeasible.empty()) notes += "  infeasible: " + t.infeasible;
    if (t.noisy) notes += "  noisy: " + t.noise;
    if (t.status == "done") {
      std::printf("%-6lld %-28s %-9s %12.2f %10.2f %10.2f %10.2f %7.1f %7s %9s%s\n",
                  static_cast<long long>(t.number), t.config.c_str(), t.status.c_str(),
                  t.items_per_s, t.median_ms, t.p90_ms, t.p99_ms, t.cv * 100,
                  Loss(t.accuracy).c_str(),
                  t.vs_stock ? fmt::format("{:.2f}x", *t.vs_stock).c_str() : "-", notes.c_str());
    } else {
      std::printf("%-6lld %-28s %-9s %s\n", static_cast<long long>(t.number), t.config.c_str(),
                  t.status.c_str(), t.error.c_str());
    }
  }
  if (!result.target_report.empty()) std::printf("\n");
  for (const std::string& line : result.target_report) std::printf("%s\n", line.c_str());
}

}  // namespace

int RunHeadless(HeadlessOptions options, const std::atomic<bool>& cancel) {
  options.study.trial_timeout =
      std::chrono::seconds(static_cast<int64_t>(options.trial_timeout_s + 0.5));
  TerminalObserver observer;
  tuner::StudyResult result = tuner::RunStudy(options.study, observer, cancel);
  PrintTable(result);
  if (result.interrupted) {
    std::fprintf(stderr,
                 "\nInterrupted: finished trials are stored in %s. Run the same command again to "
                 "resume study %lld.\n",
                 options.study.db_path.c_str(), static_cast<long long>(result.study_id));
    return 130;
  }
  if (result.trials_resumed > 0) {
    std::printf("(%lld trial(s) came from an earlier run of this study)\n",
                static_cast<long long>(result.trials_resumed));
  }
  if (result.recipe_path.empty()) {
    std::fprintf(stderr, result.target_report.empty()
                             ? "No candidate finished: no recipe written.\n"
                             : "No candidate meets the targets: no recipe written.\n");
    return 1;
  }
  std::printf("\nBest: trial %lld (objective: %s). Recipe written to %s\n",
              static_cast<long long>(*result.best_trial), recipes::ToString(result.goal.objective),
              result.recipe_path.c_str());
  if (!result.targets_met) {
    std::fprintf(stderr, "Targets not met: the recipe is the best found, below --min-speedup.\n");
    return 3;
  }
  return 0;
}

}  // namespace ipt::app
