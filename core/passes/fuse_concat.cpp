#include "core/passes/fuse_concat.h"

#include <cmath>

#include "core/passes/graph_util.h"

namespace ipt::core::passes {

using torch::jit::Node;

FusionReport FuseConcatBatchNorm(const std::shared_ptr<torch::jit::Graph>& graph) {
  FusionReport report;
  std::vector<Node*> norms;
  for (Node* node : AllNodes(graph)) {
    if (IsKind(node, {"aten::batch_norm"}) && IsKind(node->input(0)->node(), {"aten::cat"}))
      norms.push_back(node);
  }
  for (Node* norm : norms) {
    Node* cat = norm->input(0)->node();
    Node* relu = OnlyUser(norm->output());
    if (relu && !IsKind(relu, {"aten::relu", "aten::relu_"})) relu = nullptr;
    const std::string pattern = relu ? "cat+batch_norm+relu" : "cat+batch_norm";
    auto refuse = [&](const char* reason) {
      report.not_fused.push_back({pattern, Where(norm->output()), reason});
    };
    // batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
    auto training = torch::jit::constant_as<bool>(norm->input(5));
    auto mean = ConstantTensor(norm->input(3));
    auto var = ConstantTensor(norm->input(4));
    auto weight = OptionalConstantTensor(norm->input(1));
    auto bias = OptionalConstantTensor(norm->input(2));
    auto eps = ConstantNumber(norm->input(7));
    auto dim = ConstantNumber(cat->input(1));
    if (!dim || *dim != 1) {
      refuse("the concatenation is not over dimension 1 (the channels)");
    } else if (cat->input(0)->node()->kind() != c10::prim::ListConstruct) {
      refuse("the concatenated tensors are not a list built in the graph");
    } else if (!training || *training) {
      refuse("the batch norm is not in inference mode");
    } else if (!mean || !var || !mean->defined() || !var->defined() || !weight || !bias || !eps) {
      refuse("the batch norm's statistics or affine parameters are not constants");
    } else if (cat->output()->uses().size() != 1) {
      refuse("the concatenation has other uses");
    } else if (!NoWritesBetween(cat, relu ? relu : norm)) {
      refuse("a node between may write to an input");
    } else {
      const at::Tensor inv_std = (var->to(at::kDouble) + *eps).rsqrt();
      at::Tensor scale = weight->defined() ? inv_std * weight->to(at::kDouble) : inv_std;
      at::Tensor shift = -mean->to(at::kDouble) * scale;
      if (bias->defined()) shift = shift + bias->to(at::kDouble);
      Node* last = relu ? relu : norm;
      torch::jit::WithInsertPoint guard(last);
      InsertInPlaceOf(last->output(), "ipt::concat_batch_norm",
                      {cat->input(0), graph->insertConstant(scale.to(at::kFloat).contiguous()),
                       graph->insertConstant(shift.to(at::kFloat).contiguous()),
                       graph->insertConstant(relu != nullptr)});
      if (relu) relu->destroy();
      norm->destroy();
      cat->destroy();
      ++report.fused[pattern];
    }
  }
  return report;
}

}  // namespace ipt::core::passes
