// Runs torch_reference.py beside this file: PyTorch's own observers (Debian's python3-torch, a
// test-only dependency) on batches written to a temporary directory. A missing python3 or torch
// throws, failing the test with the reason: the parity tests must not pass by not running.
#pragma once

#include <string>
#include <vector>

#include "core/calibration/qparams.h"

namespace ipt::calibration::testing_util {

struct TorchCase {
  // minmax, moving_average_minmax, histogram, per_channel_symmetric or entropy.
  std::string kind;
  // u8 and s8 use PyTorch's default quint8 and qint8 ranges, u7 quint8 with [0, 127].
  QuantType type = QuantType::kU8;
  bool symmetric = false;
  // "key=value,..." for the script (averaging_constant, exact_range, dst_nbins, channels, ...).
  std::string options;
  std::vector<std::vector<float>> batches;
};

// One vector of numbers per case, as the script documents. Throws std::runtime_error with
// python's stderr when the script fails.
std::vector<std::vector<double>> RunTorchReference(const std::vector<TorchCase>& cases);

}  // namespace ipt::calibration::testing_util
