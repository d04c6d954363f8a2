#include <fmt/format.h>
#include <fmt/ranges.h>

#include <functional>
#include <map>

#include "base/error.h"
#include "base/sha256.h"
#include "workloads/bert.h"
#include "workloads/dlrm.h"
#include "workloads/resnet50.h"
#include "workloads/workload.h"

namespace ipt::workloads {
namespace {

using Factory = std::function<std::unique_ptr<Workload>(const WorkloadOptions&)>;

const std::map<std::string, Factory>& Factories() {
  static const std::map<std::string, Factory> kFactories = {
      {"bert-base", [](const WorkloadOptions& o) { return MakeBert(BertConfig{}, o); }},
      {"bert-large", [](const WorkloadOptions& o) { return MakeBert(BertLargeConfig(), o); }},
      {"dlrm", [](const WorkloadOptions& o) { return MakeDlrm(DlrmConfig{}, o); }},
      {"resnet50", MakeResNet50},
  };
  return kFactories;
}

// Other names users know a workload by; each maps to a registered name.
const std::map<std::string, std::string>& Aliases() {
  static const std::map<std::string, std::string> kAliases = {{"bert", "bert-base"}};
  return kAliases;
}

}  // namespace

std::unique_ptr<Workload> MakeWorkload(const std::string& name, const WorkloadOptions& options) {
  auto alias = Aliases().find(name);
  auto it = Factories().find(alias == Aliases().end() ? name : alias->second);
  if (it == Factories().end()) {
    throw Error(ErrorCode::kNotFound, fmt::format("unknown workload '{}' (known: {})", name,
                                                  fmt::join(WorkloadNames(), ", ")));
  }
  return it->second(options);
}

std::vector<std::string> WorkloadNames() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : Factories()) names.push_back(name);
  return names;
}

std::string ModelHash(const torch::jit::Module& module) {
  Sha256 hash;
  for (const auto& method : module.get_methods()) {
    hash.Update(method.name());
    hash.Update(method.graph()->toString(/*print_source_locations=*/false));
  }
  auto add_tensor = [&hash](const std::string& name, const at::Tensor& value) {
    at::Tensor t = value.contiguous().cpu();
    hash.Update(name);
    hash.Update(fmt::format("{}{}", t.sizes(), c10::toString(t.scalar_type())));
    hash.Update(t.data_ptr(), t.nbytes());
  };
  for (const auto& p : module.named_parameters(/*recurse=*/true)) add_tensor(p.name, p.value);
  for (const auto& b : module.named_buffers(/*recurse=*/true)) add_tensor(b.name, b.value);
  return hash.HexDigest();
}

}  // namespace ipt::workloads
