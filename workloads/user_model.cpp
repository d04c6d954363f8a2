#include "workloads/user_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "workloads/seeded.h"

namespace ipt::workloads {
namespace {

at::ScalarType ScalarType(const std::string& dtype) {
  if (dtype == "float32") return at::kFloat;
  if (dtype == "bfloat16") return at::kBFloat16;
  if (dtype == "int64") return at::kLong;
  if (dtype == "int32") return at::kInt;
  if (dtype == "bool") return at::kBool;
  throw Error(ErrorCode::kInvalidArgument, fmt::format("input dtype '{}' is not supported", dtype));
}

std::string FirstLine(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.empty() ? text : line;
}

class UserModel : public Workload {
 public:
  explicit UserModel(const WorkloadOptions& options) : options_(options) {
    const std::string& path = options.model_path;
    if (!std::filesystem::exists(path)) {
      throw Error(ErrorCode::kNotFound, fmt::format("model file '{}' does not exist", path));
    }
    if (options.inputs.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("model '{}' needs its inputs declared: --input NAME:SHAPE:DTYPE "
                              "for each argument of forward",
                              path));
    }
    try {
      module_ = torch::jit::load(path);
    } catch (const c10::Error& e) {
      throw Error(ErrorCode::kCorrupt, fmt::format("'{}' is not a TorchScript archive: {}", path,
                                                   FirstLine(e.what_without_backtrace())));
    }
    module_.eval();
    if (!module_.find_method("forward")) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("model '{}' has no forward method", path));
    }
    const auto& arguments = module_.get_method("forward").function().getSchema().arguments();
    std::vector<std::string> names;
    for (size_t i = 1; i < arguments.size(); ++i) names.push_back(arguments[i].name());
    if (names.size() != options.inputs.size()) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("model '{}': forward takes {} input(s) ({}), {} declared", path,
                              names.size(), fmt::join(names, ", "), options.inputs.size()));
    }
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] != options.inputs[i].name) {
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("model '{}': input {} is '{}' in forward, declared as '{}'", path,
                                i + 1, names[i], options.inputs[i].name));
      }
      ScalarType(options.inputs[i].dtype);
    }
    name_ = "model:" + std::filesystem::path(path).stem().string();
  }

  const std::string& name() const override { return name_; }

  torch::jit::Module BuildModel() const override { return module_.clone(); }

  std::vector<torch::jit::IValue> MakeInputs(int64_t batch, int64_t index) const override {
    std::vector<torch::jit::IValue> inputs;
    for (const recipes::InputSpec& spec : options_.inputs) {
      std::vector<int64_t> shape = spec.shape;
      shape[0] = batch;
      auto generator =
          SeededGenerator(options_.seed ^ 0x5eed, spec.name + "/" + std::to_string(index));
      at::ScalarType type = ScalarType(spec.dtype);
      at::Tensor t;
      if (type == at::kFloat || type == at::kBFloat16) {
        t = at::empty(shape, at::kFloat).normal_(0, 1, generator).to(type);
      } else if (type == at::kBool) {
        t = at::empty(shape, at::kFloat).uniform_(0, 1, generator).gt(0.5);
      } else {
        // Small non-negative ids: valid indices for any embedding with at least 10 rows.
        t = at::empty(shape, at::kFloat).uniform_(0, 10, generator).floor().to(type);
      }
      inputs.emplace_back(std::move(t));
    }
    return inputs;
  }

  // Unknown for an arbitrary model: reported as n/a.
  double FlopsPerItem() const override { return 0; }

  std::vector<recipes::InputSpec> DescribeInputs(int64_t batch) const override {
    std::vector<recipes::InputSpec> specs = options_.inputs;
    for (auto& s : specs) s.shape[0] = batch;
    return specs;
  }

 private:
  WorkloadOptions options_;
  torch::jit::Module module_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Workload> MakeUserModel(const WorkloadOptions& options) {
  return std::make_unique<UserModel>(options);
}

}  // namespace ipt::workloads
