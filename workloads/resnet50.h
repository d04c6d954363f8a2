#pragma once

#include <memory>

#include "workloads/workload.h"

namespace ipt::workloads {

// torchvision's resnet50 (v1.5): 25,557,032 parameters, input N x 3 x 224 x 224, logits
// [N, 1000]; accuracy metric kTopK.
//
// Inputs are synthetic images normalised like ImageNet's: per image a brightness and a tint,
// smooth blobs of colour, texture and pixel noise, each of a random strength, so that images
// differ as a whole and not only pixel by pixel (white noise would give every image nearly the
// same features).
//
// Random weights give every image nearly the same features: a large common part, and
// differences that lie mostly along a few directions. An untouched classifier sends every image
// to one class; centring its logits alone spreads them over a few dozen classes at most, and
// makes the predictions hang on parts in a thousand of the features. BuildModel therefore
// replaces the classifier, as training would, by one that reads the informative directions:
// it runs the backbone in double precision on 12 calibration images (MakeCalibrationInputs(12,
// 0), never an evaluation batch), takes the 4 principal directions of their features around
// their mean, and gives each class a random unit vector in those 4 whitened coordinates. The
// logits then spread by about 1 per class, the predictions over most of the 1000 classes (a
// test checks it), and a change of 1% in the features moves few predictions. This costs a
// double-precision forward of 12 images per build: about 5 s on two cores.
std::unique_ptr<Workload> MakeResNet50(const WorkloadOptions& options);

}  // namespace ipt::workloads
