// Modules built from TorchScript source for pass tests: small, with registered parameters, so
// that freezing turns them into the constants the passes look for.
#pragma once

#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/script.h>

#include <map>
#include <string>

namespace ipt::core::passes::testing {

inline torch::jit::Module MakeModule(const std::string& forward,
                                     const std::map<std::string, at::Tensor>& parameters) {
  torch::jit::Module module("M");
  for (const auto& [name, tensor] : parameters) module.register_parameter(name, tensor, false);
  module.define(forward);
  module.eval();
  return module;
}

inline torch::jit::Module Freeze(const torch::jit::Module& module) {
  return torch::jit::freeze(module.clone(), c10::nullopt, /*optimize_numerics=*/false);
}

inline at::Tensor Forward(torch::jit::Module& module,
                          const std::vector<torch::jit::IValue>& inputs) {
  torch::NoGradGuard no_grad;
  return module.forward(inputs).toTensor();
}

inline double RelativeL2(const at::Tensor& expected, const at::Tensor& actual) {
  return ((expected - actual).norm() / expected.norm()).item<double>();
}

}  // namespace ipt::core::passes::testing
