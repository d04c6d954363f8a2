// The machine fingerprint: what changes results (CPU model, ISA, topology, library versions),
// hashed into a key that says whether a stored result may be reused here, plus the context that
// is recorded but does not split studies (memory, kernel, governor, load).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/platform/cpu_info.h"
#include "core/platform/machine_key.h"
#include "core/platform/topology.h"
#include "tuner/worker_client.h"

namespace ipt::tuner {

using platform::kIpexTuneVersion;

struct Fingerprint {
  nlohmann::json key_fields;  // hashed into `key`
  nlohmann::json context;     // stored beside it
  std::string key;            // SHA-256 of key_fields
  platform::CpuInfo cpu;
  platform::Topology topology;
};

Fingerprint MakeFingerprint(const platform::SystemSource& source, const WorkerInfo& worker);

}  // namespace ipt::tuner
