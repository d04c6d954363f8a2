#include "workloads/model_cache.h"

#include <caffe2/serialize/file_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/version.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "base/sha256.h"

namespace ipt::workloads {
namespace {

constexpr const char* kCacheMagic = "ipex-tune model v1";
// The archive's extra record that says what the file holds (torch::jit::save stores extra files
// under extra/).
constexpr const char* kRecord = "ipex_tune_cache";

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

// The module `build` gives, as torch::jit::load gives it back. The built module is gone before
// the copy is loaded, so the peak is one model and its bytes, not two models.
torch::jit::Module BuildSerialized(const std::function<torch::jit::Module()>& build) {
  std::stringstream bytes;
  build().save(bytes);
  return torch::jit::load(bytes);
}

// Reads a cache file: the module and its ModelHash; or nullopt, with `why` empty when the file
// holds another key's model and with the reason when it cannot be trusted.
std::optional<CachedModel> ReadModel(const std::filesystem::path& file, const std::string& key,
                                     std::string& why) {
  try {
    // One open file for the record and the module: a concurrent rename over `file` cannot give
    // one file's record and another's module.
    auto adapter = std::make_shared<caffe2::serialize::FileAdapter>(file.string());
    caffe2::serialize::PyTorchStreamReader reader(adapter);
    const std::string record_name = std::string("extra/") + kRecord;
    if (!reader.hasRecord(record_name)) {
      why = "has no ipex-tune record";
      return std::nullopt;
    }
    auto [data, size] = reader.getRecord(record_name);
    std::istringstream record(std::string(static_cast<const char*>(data.get()), size));
    std::string magic, key_line, hash_line;
    if (!std::getline(record, magic) || magic != kCacheMagic || !std::getline(record, key_line) ||
        key_line.rfind("key ", 0) != 0 || !std::getline(record, hash_line) ||
        hash_line.rfind("model_hash ", 0) != 0) {
      why = "has no valid ipex-tune record";
      return std::nullopt;
    }
    if (key_line != "key " + key) return std::nullopt;
    CachedModel cached;
    cached.module = torch::jit::load(adapter);
    cached.model_hash = ModelHash(cached.module);
    // TorchScript archives carry no checksum that loading verifies: a changed byte of a weight
    // would load silently.
    if (hash_line != "model_hash " + cached.model_hash) {
      why = "does not give the model hash it records";
      return std::nullopt;
    }
    return cached;
  } catch (const std::exception& e) {
    why = "cannot be read: " + FirstLine(e.what());
    return std::nullopt;
  }
}

// Writes `model` as `file`; returns an empty string, or why it could not.
std::string WriteModel(const std::filesystem::path& file, const std::string& key,
                       const CachedModel& model) {
  const torch::jit::ExtraFilesMap extra = {
      {kRecord, fmt::format("{}\nkey {}\nmodel_hash {}\n", kCacheMagic, key, model.model_hash)}};
  return WriteFileAtomically(file, [&](const AppendFn& append) {
    torch::jit::ExportModule(
        model.module,
        [&append](const void* data, size_t size) { return append(data, size) ? size : 0; }, extra);
  });
}

}  // namespace

std::filesystem::path ModelCacheDir(const char* ipt_cache_dir, const char* xdg_cache_home,
                                    const char* home) {
  std::filesystem::path root = CacheRoot(ipt_cache_dir, xdg_cache_home, home);
  return root.empty() ? root : root / "models";
}

std::string ExecutableHash() {
  std::ifstream in("/proc/self/exe", std::ios::binary);
  if (!in) return {};
  Sha256 hash;
  std::vector<char> buffer(size_t{1} << 20);
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    hash.Update(buffer.data(), static_cast<size_t>(in.gcount()));
  }
  return in.bad() ? std::string() : hash.HexDigest();
}

ModelKey MakeModelKey(const Workload& workload, std::string_view version,
                      const std::string& executable_hash) {
  const std::string description = workload.BuildDescription();
  if (description.empty() || executable_hash.empty()) return {};
  const std::string configuration = fmt::format("{}\nworkload {}\nipex-tune {}\nlibtorch {}\n",
                                                kCacheMagic, description, version, TORCH_VERSION);
  // The name only helps a person find a model among the files.
  std::string name = workload.name();
  std::replace_if(
      name.begin(), name.end(),
      [](unsigned char c) { return std::isalnum(c) == 0 && c != '-' && c != '_' && c != '.'; },
      '_');
  return {fmt::format("{}-{}.pt", name, Sha256Hex(configuration)),
          Sha256Hex(configuration + "executable " + executable_hash + "\n")};
}

CachedModel LoadOrBuildModel(const std::filesystem::path& dir, const ModelKey& key,
                             const std::function<torch::jit::Module()>& build) {
  std::filesystem::path file;
  std::string warning;
  if (!dir.empty() && !key.empty()) {
    file = dir / key.file_name;
    std::error_code ec;
    if (std::filesystem::exists(file, ec)) {
      std::string why;
      if (std::optional<CachedModel> cached = ReadModel(file, key.key, why)) {
        cached->outcome = CacheOutcome::kHit;
        cached->file = file;
        return std::move(*cached);
      }
      if (!why.empty())
        warning = fmt::format("model cache file {} {}: rebuilt", file.string(), why);
    }
  }
  CachedModel r;
  r.module = BuildSerialized(build);
  r.model_hash = ModelHash(r.module);
  r.file = file;
  r.outcome = warning.empty() ? CacheOutcome::kComputed : CacheOutcome::kCorrupt;
  r.warning = warning;
  if (dir.empty()) {
    r.outcome = CacheOutcome::kNotStored;
    r.warning = "no model cache directory (set IPT_CACHE_DIR or HOME)";
    return r;
  }
  if (key.empty()) {
    r.outcome = CacheOutcome::kNotStored;
    r.warning =
        "no model cache key (the workload has no build description, or the executable "
        "cannot be read)";
    return r;
  }
  std::string why = WriteModel(file, key.key, r);
  if (!why.empty()) {
    r.outcome = CacheOutcome::kNotStored;
    r.warning = (r.warning.empty() ? "" : r.warning + "; ") + "not stored: " + why;
  }
  return r;
}

}  // namespace ipt::workloads
