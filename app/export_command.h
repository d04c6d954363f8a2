// `ipex-tune export`: a study's trials and measurements as CSV or JSON, read from the store with
// a read-only connection (safe beside a running tuner).
#pragma once

#include <cstdint>
#include <string>

namespace ipt::app {

struct ExportOptions {
  std::string db_path = "ipex-tune.db";
  int64_t study = 0;  // 0: the only study, or the newest one
  std::string format = "csv";
  std::string output;  // empty: stdout
};

// Returns the process exit status; throws ipt::Error for a missing or corrupt store or study.
int RunExport(const ExportOptions& options);

}  // namespace ipt::app
