// What oneDNN, the library behind every kernel of ipex-tune, reports about itself and this CPU.
#pragma once

#include <string>

namespace ipt::kernels {

struct OneDnnInfo {
  std::string version;        // "2.6.3"
  std::string effective_isa;  // the best ISA oneDNN dispatches to here ("avx512_core_bf16")
};

OneDnnInfo QueryOneDnn();

}  // namespace ipt::kernels
