// A folder under /tmp that lives as long as the object: created with mkdtemp, removed with
// everything in it when the object goes (errors while removing are ignored: nothing can be done
// about them then).
#pragma once

#include <string>

namespace ipt {

class TempDir {
 public:
  // `prefix` names the folder: /tmp/<prefix>-XXXXXX. Throws ipt::Error(kIo) with the system's
  // reason when it cannot be created.
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace ipt
