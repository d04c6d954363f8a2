#include "app/bench_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "base/error.h"
#include "core/platform/binding.h"
#include "recipes/recipe_yaml.h"

namespace ipt::app {
namespace {

nlohmann::json Figures(const nlohmann::json& c) {
  nlohmann::json figures = {{"items_per_s", c.value("items_per_s", 0.0)},
                            {"median_ms", c.value("median_ms", 0.0)},
                            {"p90_ms", c.value("p90_ms", 0.0)},
                            {"cv", c.value("cv", 0.0)},
                            {"samples", c.value("samples", 0)},
                            {"applied", c.value("applied", nlohmann::json())},
                            {"accuracy", c.value("accuracy", nlohmann::json())}};
  for (const char* key : {"calibration_source", "auto_fallback"}) {
    if (c.contains(key)) figures[key] = c[key];
  }
  return figures;
}

// `applied` (docs/bench-json.md) for people: what was fused, what was left alone and why, what
// int8 quantized and kept, and what the core could not apply.
void PrintApplied(const std::string& recipe, const nlohmann::json& applied) {
  if (!applied.is_object()) return;
  std::printf("\n%s (%s):\n", recipe.c_str(), applied.value("dtype", "").c_str());
  std::string fused;
  const nlohmann::json fusions = applied.value("fusions", nlohmann::json::object());
  for (const auto& [pattern, count] : fusions.items())
    fused += fmt::format("{}{} x{}", fused.empty() ? "" : ", ", pattern, count.get<int64_t>());
  std::printf("  fused: %s\n", fused.empty() ? "nothing" : fused.c_str());
  const nlohmann::json not_fused = applied.value("not_fused", nlohmann::json::array());
  constexpr size_t kShown = 8;
  for (size_t i = 0; i < not_fused.size() && i < kShown; ++i) {
    std::printf("  left alone: %s at %s: %s\n", not_fused[i].value("pattern", "").c_str(),
                not_fused[i].value("where", "").c_str(), not_fused[i].value("reason", "").c_str());
  }
  if (not_fused.size() > kShown)
    std::printf("  left alone: %zu more (bench --json lists them)\n", not_fused.size() - kShown);
  if (applied.contains("quantized")) {
    std::printf("  int8: %zu op(s)\n", applied["quantized"].size());
    for (const char* key : {"kept_fp32", "kept_bf16", "smoothed"}) {
      const nlohmann::json names = applied.value(key, nlohmann::json::array());
      if (!names.empty())
        fmt::print("  {}: {}\n", key, fmt::join(names.get<std::vector<std::string>>(), ", "));
    }
  }
  const nlohmann::json fallbacks = applied.value("fallbacks", nlohmann::json::array());
  for (const auto& f : fallbacks)
    std::printf("  not applied: %s: %s\n", f.value("what", "").c_str(),
                f.value("reason", "").c_str());
}

}  // namespace

int RunBench(const BenchOptions& options, const std::atomic<bool>& cancel) {
  // Read every recipe here first: a malformed one fails in milliseconds, before any worker.
  std::vector<recipes::Recipe> recipes;
  for (const std::string& path : options.recipes) recipes.push_back(recipes::LoadRecipe(path));
  int64_t batch = options.batch > 0 ? options.batch : recipes.front().workload.batch;

  platform::CpuSet allowed = platform::CurrentAffinity();
  std::vector<int> cpus(allowed.begin(), allowed.end());
  if (options.threads > 0) {
    if (options.threads > static_cast<int64_t>(cpus.size())) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("--threads {}: only {} CPUs are available to this process",
                              options.threads, cpus.size()));
    }
    cpus.resize(static_cast<size_t>(options.threads));
  }
  auto threads = static_cast<int64_t>(cpus.size());

  std::vector<std::string> args = {"bench",         "--batch",        std::to_string(batch),
                                   "--baseline",    options.baseline, "--scenario",
                                   options.scenario};
  for (const std::string& a : options.source.ToArgs()) args.push_back(a);
  for (const std::string& a : options.measure.ToArgs()) args.push_back(a);
  for (const std::string& path : options.recipes) args.insert(args.end(), {"--recipe", path});
  tuner::WorkerClient worker(tuner::WorkerClient::DefaultExecutable());
  bool tty = isatty(STDERR_FILENO) != 0;
  tuner::WorkerReply reply = worker.Run(
      args, "", cpus, {{"OMP_NUM_THREADS", std::to_string(threads)}}, std::chrono::hours(2),
      [&](const nlohmann::json& p) {
        std::string phase = p.value("phase", "");
        std::string text =
            phase == "measure" && p.contains("blocks")
                ? fmt::format("measuring {} (block {}, {:.1f} s)", p.value("candidate", ""),
                              p.value("blocks", 0), p.value("elapsed_s", 0.0))
                : fmt::format("{} {}", phase, p.value("candidate", ""));
        if (tty) std::fprintf(stderr, "\r\033[K%s", text.c_str());
      },
      &cancel);
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (!reply.ok) {
    if (reply.error_code == "cancelled") {
      std::fprintf(stderr, "ipex-tune: bench interrupted\n");
      return 130;
    }
    std::fprintf(stderr, "ipex-tune: error: %s\n", reply.error.c_str());
    return reply.error_code == "invalid_argument" || reply.error_code == "not_found" ? 2 : 1;
  }

  // Compared with the worker's own name of the workload, so aliases (bert) match.
  std::string workload = reply.result.value("workload", "");
  for (size_t i = 0; i < recipes.size(); ++i) {
    const recipes::WorkloadRef& tuned_for = recipes[i].workload;
    bool same = options.source.model_path.empty()
                    ? tuned_for.name == workload
                    : tuned_for.model_path == options.source.model_path;
    if (!same) {
      std::fprintf(stderr, "ipex-tune: warning: %s was tuned for workload '%s', not '%s'\n",
                   options.recipes[i].c_str(), tuned_for.name.c_str(), workload.c_str());
    }
  }
  const nlohmann::json& candidates = reply.result.at("candidates");
  const nlohmann::json& base = candidates.at(0);
  double base_rate = base.value("items_per_s", 0.0);
  nlohmann::json out = {{"schema_version", kBenchJsonSchemaVersion},
                        {"workload", workload},
                        {"model_hash", reply.result.value("model_hash", "")},
                        {"batch", batch},
                        {"threads", threads},
                        {"baseline", Figures(base)},
                        {"results", nlohmann::json::array()}};
  out["baseline"]["name"] = options.baseline;
  out["baseline"]["path"] = base.value("path", "");
  out["baseline"]["paths"] = base.value("paths", nlohmann::json::array());
  for (size_t i = 1; i < candidates.size(); ++i) {
    nlohmann::json r = Figures(candidates[i]);
    r["recipe"] = options.recipes[i - 1];
    r["speedup"] = base_rate > 0 ? r["items_per_s"].get<double>() / base_rate : 0.0;
    for (const char* key : {"items_per_call", "streams", "warnings"}) {
      if (candidates[i].contains(key)) r[key] = candidates[i][key];
    }
    for (const auto& w : r.value("warnings", nlohmann::json::array())) {
      std::fprintf(stderr, "ipex-tune: warning: %s: %s\n", options.recipes[i - 1].c_str(),
                   w.get<std::string>().c_str());
    }
    out["results"].push_back(r);
  }
  if (options.json) {
    std::cout << out.dump(2) << '\n';
    return 0;
  }
  std::printf("%s, batch %lld, %lld thread(s)\n", out["workload"].get<std::string>().c_str(),
              static_cast<long long>(batch), static_cast<long long>(threads));
  std::printf("%-36s %12s %10s %10s %7s %8s %7s\n", "candidate", "items/s", "median ms", "p90 ms",
              "cv %", "speedup", "loss");
  auto row = [](const std::string& name, const nlohmann::json& r, double speedup) {
    // The accuracy loss against the fp32 reference (docs/accuracy.md); "-" when not finite.
    const nlohmann::json loss =
        r.value("accuracy", nlohmann::json::object()).value("loss", nlohmann::json());
    const std::string loss_text =
        loss.is_number() ? fmt::format("{:.4g}", loss.get<double>()) : "-";
    std::printf("%-36s %12.2f %10.2f %10.2f %7.1f %7.2fx %7s\n", name.c_str(),
                r["items_per_s"].get<double>(), r["median_ms"].get<double>(),
                r["p90_ms"].get<double>(), r["cv"].get<double>() * 100, speedup, loss_text.c_str());
  };
  row(fmt::format("{} ({})", options.baseline, out["baseline"]["path"].get<std::string>()),
      out["baseline"], 1.0);
  for (const auto& r : out["results"])
    row(r["recipe"].get<std::string>(), r, r["speedup"].get<double>());
  for (const auto& r : out["results"]) PrintApplied(r["recipe"].get<std::string>(), r["applied"]);
  return 0;
}

}  // namespace ipt::app
