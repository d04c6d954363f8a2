#include "tuner/worker_client.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>

#include "base/error.h"

namespace ipt::tuner {

std::vector<std::string> MeasureSettings::ToArgs() const {
  std::vector<std::string> args = {
      "--warmup-s",   fmt::format("{}", warmup_s), "--block-s",    fmt::format("{}", block_s),
      "--min-blocks", std::to_string(min_blocks),  "--min-time-s", fmt::format("{}", min_time_s),
      "--min-calls",  std::to_string(min_calls),   "--max-time-s", fmt::format("{}", max_time_s)};
  if (eval_items > 0) args.insert(args.end(), {"--eval-items", std::to_string(eval_items)});
  return args;
}

std::vector<std::string> MeasureSettings::TrialArgs() const {
  std::vector<std::string> args = ToArgs();
  args.insert(args.end(), {"--measure-share", fmt::format("{}", measure_share)});
  return args;
}

std::vector<std::string> WorkloadSource::ToArgs() const {
  if (model_path.empty()) return {"--workload", workload};
  std::vector<std::string> args = {"--model", model_path};
  for (const std::string& input : inputs) args.insert(args.end(), {"--input", input});
  return args;
}

MeasureSettings MeasureSettings::ForBudget(double seconds) {
  MeasureSettings s;
  s.min_time_s = seconds;
  s.block_s = std::min(s.block_s, seconds / static_cast<double>(s.min_blocks));
  s.warmup_s = std::min(s.warmup_s, seconds / 2);
  return s;
}

WorkerClient::WorkerClient(std::string executable) : executable_(std::move(executable)) {}

std::string WorkerClient::DefaultExecutable() {
  if (const char* env = std::getenv("IPT_WORKER"); env != nullptr && *env != '\0') return env;
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    auto beside = std::filesystem::path(self).parent_path() / "ipex-tune-worker";
    if (std::filesystem::exists(beside)) return beside.string();
  }
  return "ipex-tune-worker";
}

WorkerReply WorkerClient::Run(const std::vector<std::string>& args, const std::string& stdin_text,
                              const std::vector<int>& cpus,
                              const std::map<std::string, std::string>& env,
                              std::chrono::milliseconds timeout,
                              const std::function<void(const nlohmann::json&)>& on_progress,
                              const std::atomic<bool>* cancel) const {
  WorkerCommand command;
  command.executable = executable_;
  command.args = args;
  command.env = env;
  command.cpus = cpus;
  command.stdin_text = stdin_text;
  command.timeout = timeout;
  WorkerReply reply;
  std::string last_error;
  std::string last_error_code;
  reply.outcome = RunWorker(
      command,
      [&](const std::string& line) {
        nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (!j.is_object()) return;  // libraries may print to stdout; only our objects count
        std::string type = j.value("type", "");
        if (type == "result") {
          reply.result = std::move(j);
        } else if (type == "error") {
          last_error_code = j.value("code", "internal");
          last_error = j.value("message", "");
        } else if (on_progress) {
          on_progress(j);
        }
      },
      cancel);
  using Kind = WorkerOutcome::Kind;
  const WorkerOutcome& o = reply.outcome;
  // Modes other than trial and bench answer with lines of their own type, not "result".
  if (o.kind == Kind::kExited && o.exit_code == 0 && last_error.empty()) {
    reply.ok = !reply.result.is_null();
    return reply;
  }
  if (!last_error.empty()) {
    reply.error_code = last_error_code;
    reply.error = last_error;
  } else if (o.kind == Kind::kTimedOut) {
    reply.error_code = "timed_out";
    reply.error = "worker " + o.Describe();
  } else if (o.kind == Kind::kCancelled) {
    reply.error_code = "cancelled";
    reply.error = "cancelled";
  } else {
    reply.error_code = "crashed";
    std::string tail = o.stderr_tail;
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
    auto last_line = tail.rfind('\n');
    if (last_line != std::string::npos) tail = tail.substr(last_line + 1);
    reply.error = "worker " + o.Describe() + (tail.empty() ? "" : ": " + tail);
  }
  return reply;
}

nlohmann::json WorkerClient::Ask(const std::vector<std::string>& args,
                                 const std::string& type) const {
  std::vector<nlohmann::json> answers;
  WorkerReply reply = Run(
      args, "", {}, {}, std::chrono::minutes(5),
      [&](const nlohmann::json& j) {
        if (j.value("type", "") == type) answers.push_back(j);
      },
      nullptr);
  if (!reply.error.empty()) {
    ErrorCode code = reply.error_code == "not_found"          ? ErrorCode::kNotFound
                     : reply.error_code == "invalid_argument" ? ErrorCode::kInvalidArgument
                                                              : ErrorCode::kWorkerFailed;
    throw Error(code, reply.error);
  }
  if (type == "result" && !reply.result.is_null()) answers.push_back(reply.result);
  if (answers.empty()) {
    throw Error(ErrorCode::kWorkerFailed,
                fmt::format("'{}' gave no '{}' answer", executable_, type));
  }
  return answers.front();
}

WorkerInfo WorkerClient::Info() const {
  nlohmann::json j = Ask({"info"}, "info");
  return {j.value("libtorch", ""), j.value("onednn", ""), j.value("onednn_isa", ""),
          j.value("aten_cpu_capability", "")};
}

WorkloadInfo WorkerClient::DryRun(const WorkloadSource& source, int64_t batch) const {
  std::vector<std::string> args = {"dry-run", "--batch", std::to_string(batch)};
  for (const std::string& a : source.ToArgs()) args.push_back(a);
  nlohmann::json j = Ask(args, "result");
  return {j.value("workload", ""), j.value("model_hash", ""), j.value("flops_per_item", 0.0),
          j.value("inputs", nlohmann::json::array())};
}

}  // namespace ipt::tuner
