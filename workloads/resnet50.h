#pragma once

#include <memory>

#include "workloads/workload.h"

namespace ipt::workloads {

// torchvision's resnet50 (v1.5): 25,557,032 parameters, input N x 3 x 224 x 224.
std::unique_ptr<Workload> MakeResNet50(const WorkloadOptions& options);

}  // namespace ipt::workloads
