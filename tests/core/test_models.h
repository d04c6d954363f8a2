// Reduced configurations of the workloads' own model builders, shared by the core's tests.
#pragma once

#include "workloads/bert.h"
#include "workloads/dlrm.h"

namespace ipt::core::testing {

// BERT-base's builder at two layers and a width that keeps the tests fast; every pattern of the
// full model is there.
inline workloads::BertConfig TwoLayerBert() {
  workloads::BertConfig config;
  config.name = "bert-2l";
  config.layers = 2;
  config.hidden = 128;
  config.heads = 4;
  config.intermediate = 512;
  return config;
}

// DLRM's builder with its 26 tables at 100 rows and narrow MLPs: the full graph (interaction,
// merged bags) in milliseconds.
inline workloads::DlrmConfig SmallDlrm() {
  workloads::DlrmConfig config;
  config.bottom_mlp = {32, 16};
  config.top_mlp = {32, 1};
  config.table_rows = std::vector<int64_t>(26, 100);
  return config;
}

}  // namespace ipt::core::testing
