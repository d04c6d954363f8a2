// Helpers shared by the workloads tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "workloads/bert.h"
#include "workloads/workload.h"

namespace ipt::workloads::testing_util {

// bert-base's builder at a size whose forward takes milliseconds.
inline BertConfig TinyBert(int64_t layers = 2) {
  BertConfig config;
  config.name = "bert-tiny";
  config.layers = layers;
  config.hidden = 32;
  config.heads = 4;
  config.intermediate = 64;
  return config;
}

inline WorkloadOptions SeqLen(int64_t seq_len) {
  WorkloadOptions options;
  options.seq_len = seq_len;
  return options;
}

// A fresh cache directory per test (`prefix`-<pid>-<test name> under the system's temp
// directory), removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  explicit TempDirTest(std::string prefix) : prefix_(std::move(prefix)) {}
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           (prefix_ + "-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The names of the files in the directory: what a cache left behind.
  std::vector<std::string> Files() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      names.push_back(e.path().filename().string());
    }
    return names;
  }

  std::filesystem::path dir_;

 private:
  std::string prefix_;
};

}  // namespace ipt::workloads::testing_util
