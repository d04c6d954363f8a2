#include "tests/core/calibration/torch_reference.h"

#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace ipt::calibration::testing_util {

namespace {

namespace fs = std::filesystem;

constexpr char kPython[] = "/usr/bin/python3";

// A fresh directory under the system temp dir, removed with its files.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "ipt_calibration_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string WriteBatch(const fs::path& path, const std::vector<float>& batch) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(batch.data()),
            static_cast<std::streamsize>(batch.size() * sizeof(float)));
  if (!out) throw std::runtime_error("cannot write " + path.string());
  return path.string();
}

std::string TorchSpelling(const TorchCase& c) {
  const std::string scheme = c.symmetric ? "symmetric" : "affine";
  switch (c.type) {
    case QuantType::kU8:
      return "quint8 " + scheme + " default";
    case QuantType::kU7:
      return "quint8 " + scheme + " 0:127";
    case QuantType::kS8:
      return "qint8 " + scheme + " default";
  }
  return "";
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

std::vector<std::vector<double>> RunTorchReference(const std::vector<TorchCase>& cases) {
  if (!fs::exists(kPython)) {
    throw std::runtime_error(std::string(kPython) +
                             " not found: the calibration parity tests need python3 with "
                             "python3-torch (scripts/setup.sh installs them)");
  }
  const TempDir dir;
  std::ostringstream manifest;
  for (size_t i = 0; i < cases.size(); ++i) {
    const TorchCase& c = cases[i];
    manifest << c.kind << ' ' << TorchSpelling(c) << ' ' << (c.options.empty() ? "-" : c.options)
             << ' ';
    for (size_t b = 0; b < c.batches.size(); ++b) {
      const fs::path path = dir.path() / ("case" + std::to_string(i) + "_" + std::to_string(b));
      manifest << (b == 0 ? "" : ",") << WriteBatch(path, c.batches[b]);
    }
    manifest << '\n';
  }
  const fs::path manifest_path = dir.path() / "cases.txt";
  std::ofstream(manifest_path) << manifest.str();
  const fs::path stderr_path = dir.path() / "stderr.txt";
  const std::string command = std::string(kPython) + " " + IPT_SOURCE_DIR +
                              "/tests/core/calibration/torch_reference.py " +
                              manifest_path.string() + " 2>" + stderr_path.string();
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::string output;
  char buffer[4096];
  while (const size_t read = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, read);
  const int status = pclose(pipe);
  if (status != 0) {
    throw std::runtime_error("PyTorch reference failed (" + command + ", exit status " +
                             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                             "): " + ReadFile(stderr_path));
  }
  std::vector<std::vector<double>> results;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream numbers(line);
    results.emplace_back(std::istream_iterator<double>(numbers), std::istream_iterator<double>());
  }
  if (results.size() != cases.size()) {
    throw std::runtime_error("PyTorch reference printed " + std::to_string(results.size()) +
                             " results for " + std::to_string(cases.size()) + " cases:\n" + output);
  }
  return results;
}

}  // namespace ipt::calibration::testing_util
