#pragma once

#include <memory>

#include "workloads/workload.h"

namespace ipt::workloads {

// A user's TorchScript file (scripted or traced) with declared inputs. Checked when made, before
// any tuning: a missing file (kNotFound), a file that is not a TorchScript archive (kCorrupt),
// inputs whose count or names do not match forward's arguments (kInvalidArgument); and by
// CheckRuns: a shape or dtype forward rejects (kInvalidArgument, quoting libtorch's reason).
std::unique_ptr<Workload> MakeUserModel(const WorkloadOptions& options);

}  // namespace ipt::workloads
