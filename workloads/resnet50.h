#pragma once

#include <memory>

#include "workloads/workload.h"

namespace ipt::workloads {

// torchvision's resnet50 (v1.5): 25,557,032 parameters, input N x 3 x 224 x 224, logits
// [N, 1000]; accuracy metric kTopK.
//
// Inputs are synthetic images normalised like ImageNet's, each of one of 32 classes: its class's
// prototype (a brightness and a tint, smooth blobs of colour, texture and pixel noise, each of a
// random strength, so that images differ as a whole and not only pixel by pixel) plus a
// variation of the same kind at 0.3 times the strength, drawn for the image alone.
//
// Random weights give every image nearly the same features: a large common part, and
// differences that lie mostly along a few directions. An untouched classifier sends every image
// to one class, and one that merely spreads the images over the classes leaves most of them so
// close to another class that bf16 changes a quarter of the predictions. BuildModel therefore
// replaces the classifier, as training would, by one that tells the classes apart: it runs the
// backbone in double precision on the 32 prototypes, whitens their features along the 31
// directions they span around their mean, and gives each class the mean of a nearest-mean
// classifier there: its prototype's coordinates, or for the 968 classes without images a random
// point twice as far out. The evaluation images, which it never saw, go to their classes with
// margins like a trained network's (a test checks that bf16 weights change at most one of 32
// predictions). This costs a double-precision forward of 32 images per build: about 11 s on two
// cores.
std::unique_ptr<Workload> MakeResNet50(const WorkloadOptions& options);

}  // namespace ipt::workloads
