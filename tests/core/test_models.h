// Reduced configurations of the workloads' own model builders, shared by the core's tests.
#pragma once

#include "workloads/bert.h"

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

}  // namespace ipt::core::testing
