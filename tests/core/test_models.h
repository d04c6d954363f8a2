// Reduced configurations of the workloads' own model builders, shared by the core's tests.
#pragma once

#include <torch/script.h>

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

// The reduced BERT's classifier tells its two classes apart by magnifying small differences
// between pooled vectors (two narrow layers mix little of the words into [CLS]), so the error of
// int8 on its logits says more about the model than about the core. With an identity in place
// of the classifier, `module` returns the pooled vectors themselves, [batch, hidden].
inline void ReturnPooledVectors(torch::jit::Module& module, int64_t hidden) {
  module.setattr("classifier_weight", at::eye(hidden));
  module.setattr("classifier_bias", at::zeros({hidden}));
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
