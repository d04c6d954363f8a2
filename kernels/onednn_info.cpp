#include "kernels/onednn_info.h"

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

namespace ipt::kernels {
namespace {

std::string IsaName(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return fmt::format("isa_{:#x}", static_cast<unsigned>(isa));
  }
}

}  // namespace

OneDnnInfo QueryOneDnn() {
  const dnnl_version_t* v = dnnl_version();
  return {fmt::format("{}.{}.{}", v->major, v->minor, v->patch),
          IsaName(dnnl::get_effective_cpu_isa())};
}

}  // namespace ipt::kernels
