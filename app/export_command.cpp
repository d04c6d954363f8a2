#include "app/export_command.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "db/store.h"

namespace ipt::app {
namespace {

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// A figure that was not measured (NaN) is an empty CSV field and a JSON null.
std::string CsvFigure(double value) { return std::isnan(value) ? "" : fmt::format("{}", value); }
nlohmann::json JsonFigure(double value) {
  return std::isnan(value) ? nlohmann::json() : nlohmann::json(value);
}

}  // namespace

int RunExport(const ExportOptions& options) {
  db::Store store = db::Store::Open(options.db_path, db::OpenMode::kReadOnly);
  std::vector<db::Study> studies = store.ListStudies();
  if (studies.empty()) {
    throw Error(ErrorCode::kNotFound, fmt::format("'{}' holds no study", options.db_path));
  }
  const db::Study* study = &studies.back();
  if (options.study != 0) {
    study = nullptr;
    for (const db::Study& s : studies) {
      if (s.id == options.study) study = &s;
    }
    if (study == nullptr) {
      throw Error(ErrorCode::kNotFound,
                  fmt::format("'{}' has no study {} (it has {} studies, the newest is {})",
                              options.db_path, options.study, studies.size(), studies.back().id));
    }
  }
  std::optional<db::Workload> workload = store.GetWorkload(study->workload_id);
  std::string workload_name = workload ? workload->name : "";

  std::ostringstream out;
  if (options.format == "csv") {
    out << "study,workload,trial,config,status,error,scenario,batch,threads,items_per_s,median_ms,"
           "p90_ms,p99_ms,cv,samples,noisy,infeasible,load_before,load_after\n";
    for (const db::Trial& t : store.ListTrials(study->id)) {
      std::string prefix =
          fmt::format("{},{},{},{},{},{}", study->id, CsvField(workload_name), t.number,
                      CsvField(t.config_json), db::ToString(t.status), CsvField(t.error));
      std::vector<db::Measurement> measurements = store.ListMeasurements(t.id);
      if (measurements.empty()) out << prefix << ",,,,,,,,,,," << CsvField(t.infeasible) << ",,\n";
      for (const db::Measurement& m : measurements) {
        out << prefix
            << fmt::format(",{},{},{},{},{},{},{},{},{},{},{},{},{}\n", m.scenario, m.batch,
                           m.threads, m.items_per_s, m.median_ms, m.p90_ms, m.p99_ms, m.cv,
                           m.samples, m.noisy ? 1 : 0, CsvField(t.infeasible),
                           CsvFigure(m.load_before), CsvFigure(m.load_after));
      }
    }
  } else if (options.format == "json") {
    nlohmann::json trials = nlohmann::json::array();
    for (const db::Trial& t : store.ListTrials(study->id)) {
      nlohmann::json measurements = nlohmann::json::array();
      for (const db::Measurement& m : store.ListMeasurements(t.id)) {
        nlohmann::json raw = nlohmann::json::parse(m.raw_json, nullptr, false);
        nlohmann::json noise =
            raw.is_object() ? raw.value("noise", nlohmann::json::array()) : nlohmann::json::array();
        measurements.push_back(
            {{"scenario", m.scenario},
             {"batch", m.batch},
             {"threads", m.threads},
             {"items_per_s", m.items_per_s},
             {"median_ms", m.median_ms},
             {"p90_ms", m.p90_ms},
             {"p99_ms", m.p99_ms},
             {"cv", m.cv},
             {"samples", m.samples},
             {"noisy", m.noisy},
             {"noise", noise},
             {"load_before", JsonFigure(m.load_before)},
             {"load_after", JsonFigure(m.load_after)},
             {"accuracy", nlohmann::json::parse(m.accuracy_json, nullptr, false)},
             {"applied", nlohmann::json::parse(m.applied_json, nullptr, false)}});
      }
      trials.push_back({{"number", t.number},
                        {"config", nlohmann::json::parse(t.config_json, nullptr, false)},
                        {"status", db::ToString(t.status)},
                        {"error", t.error},
                        {"infeasible", t.infeasible},
                        {"setup_s", t.setup_s},
                        {"measurements", measurements}});
    }
    std::optional<db::Machine> machine = store.GetMachine(study->machine_id);
    nlohmann::json document = {
        {"schema_version", 1},
        {"study", study->id},
        {"workload", workload_name},
        {"model_hash", workload ? workload->model_hash : ""},
        {"machine", machine ? nlohmann::json::parse(machine->fingerprint_json, nullptr, false)
                            : nlohmann::json()},
        {"space", nlohmann::json::parse(study->space_json, nullptr, false)},
        {"goal",
         {{"objective", study->goal.objective},
          {"mode", study->goal.mode},
          {"latency_bound_ms", study->goal.latency_bound_ms
                                   ? nlohmann::json(*study->goal.latency_bound_ms)
                                   : nlohmann::json()},
          {"min_speedup",
           study->goal.min_speedup ? nlohmann::json(*study->goal.min_speedup) : nlohmann::json()},
          {"max_accuracy_loss", study->goal.max_accuracy_loss
                                    ? nlohmann::json(*study->goal.max_accuracy_loss)
                                    : nlohmann::json()}}},
        {"trials", trials}};
    out << document.dump(2) << '\n';
  } else {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("--format {}: expected csv or json", options.format));
  }
  if (options.output.empty()) {
    std::cout << out.str();
    return 0;
  }
  std::ofstream file(options.output);
  file << out.str();
  if (!file.flush()) {
    throw Error(ErrorCode::kIo, fmt::format("cannot write '{}'", options.output));
  }
  return 0;
}

}  // namespace ipt::app
