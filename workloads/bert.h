// BERT encoders for sequence classification: "bert-base" (alias "bert") and "bert-large".
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "workloads/workload.h"

namespace ipt::workloads {

// The encoder's shape; the vocabulary (30522 word pieces, 512 positions, 2 token types) and the
// two labels are fixed. The default is bert-base: 109,482,240 parameters without the classifier
// head (1,538 more with it), about 22.3 GFLOP per sequence of 128 tokens.
struct BertConfig {
  std::string name = "bert-base";  // the workload's name
  int64_t layers = 12;
  int64_t hidden = 768;
  int64_t heads = 12;  // must divide hidden
  int64_t intermediate = 3072;
};

// bert-large: 24 layers, hidden 1024, 16 heads, intermediate 4096.
BertConfig BertLargeConfig();

// HuggingFace BertForSequenceClassification in eval mode. forward(input_ids, attention_mask,
// token_type_ids), each int64 [batch, seq_len], returns the logits [batch, 2]. seq_len is
// options.seq_len, 128 by default, at least 4 and at most 512.
//
// Random weights make every input's pooled vector nearly alike, so an untouched classifier
// predicts nearly always the same class and a broken optimisation could not flip a prediction.
// BuildModel therefore runs the model on a calibration batch (32 sequences of their own seed,
// never among MakeInputs' batches) and sets the classifier bias so that the mean difference of
// the two logits there is zero: about half of any inputs then go to each class. (The mean, not
// the median: the differences are about symmetric and the mean is the steadier estimate.) This
// costs one forward of 32 sequences per build: 0.7 TFLOP for bert-base at seq_len 128, several
// seconds on one core, 3.5 times that for bert-large.
//
// Throws ipt::Error(kInvalidArgument) for a config or seq_len outside those bounds.
std::unique_ptr<Workload> MakeBert(const BertConfig& config, const WorkloadOptions& options);

}  // namespace ipt::workloads
