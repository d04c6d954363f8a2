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
// Each sequence belongs to one of the two classes: each class has a topic of 100 word pieces of
// its own, and half of a sequence's words (on average) come from its class's topic, the others
// from the whole vocabulary. Random weights make every input's pooled vector nearly alike, so an
// untouched classifier predicts nearly always the same class, and one that merely splits the
// inputs evenly leaves many near the boundary, where bf16 flips an eighth of the predictions.
// BuildModel therefore replaces the classifier, as training would, by one that reads the
// difference of the two classes: it runs the model in double precision on 8 calibration
// sequences of each class (a seed of their own, never among MakeInputs' batches) and makes the
// logit difference proportional to the projection of the pooled vector on the difference of the
// two classes' mean pooled vectors, zero halfway between them and spread by about 4 over the
// calibration sequences, as a trained classifier's logits are. This costs a double-precision
// forward of 16 sequences per build: about 7 s for bert-base at seq_len 128 on two cores, 3.5 times
// that for bert-large.
//
// Throws ipt::Error(kInvalidArgument) for a config or seq_len outside those bounds.
std::unique_ptr<Workload> MakeBert(const BertConfig& config, const WorkloadOptions& options);

}  // namespace ipt::workloads
