#include "recipes/qparams_json.h"

#include <fmt/format.h>

#include "base/error.h"

namespace ipt::recipes {
namespace {

nlohmann::json OpsToJson(const std::map<std::string, ActivationQParams>& ops) {
  nlohmann::json json = nlohmann::json::object();
  for (const auto& [op, p] : ops) {
    json[op] = {{"scale", p.scale}, {"zero_point", p.zero_point}, {"qmax", p.qmax}};
  }
  return json;
}

std::map<std::string, ActivationQParams> OpsFromJson(const nlohmann::json& json) {
  std::map<std::string, ActivationQParams> ops;
  for (const auto& [op, p] : json.items()) {
    ops[op] = {p.at("scale").get<double>(), p.at("zero_point").get<int64_t>(),
               p.at("qmax").get<int64_t>()};
  }
  return ops;
}

}  // namespace

nlohmann::json QParamsToJson(const QParams& qparams) {
  nlohmann::json json = {{"graph", qparams.graph},
                         {"inputs", OpsToJson(qparams.inputs)},
                         {"accumulators", OpsToJson(qparams.accumulators)}};
  if (!qparams.smoothing.empty()) json["smoothing"] = qparams.smoothing;
  return json;
}

QParams QParamsFromJson(const nlohmann::json& json) {
  QParams qparams;
  try {
    qparams.graph = json.at("graph").get<std::string>();
    qparams.inputs = OpsFromJson(json.at("inputs"));
    if (json.contains("accumulators")) qparams.accumulators = OpsFromJson(json["accumulators"]);
    if (json.contains("smoothing")) {
      qparams.smoothing = json["smoothing"].get<std::map<std::string, std::vector<double>>>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kCorrupt, fmt::format("calibrated parameters: {}", e.what()));
  }
  if (qparams.graph.empty()) {
    throw Error(ErrorCode::kCorrupt, "calibrated parameters: no graph digest");
  }
  return qparams;
}

}  // namespace ipt::recipes
