// The one exception type of ipex-tune. Library code throws ipt::Error with a code that says
// which kind of failure it is, so edges (main, the trial runner, the GUI worker) can map it to
// an exit status or a stored trial result without parsing text.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace ipt {

enum class ErrorCode {
  kInvalidArgument,  // bad flag, malformed recipe or space file, wrong input spec
  kNotFound,         // unknown workload, missing file
  kIo,               // a file or database that cannot be read or written
  kCorrupt,          // a file or database that is not what it claims to be
  kBusy,             // a resource held by someone else (a study leased by another tuner)
  kUnsupported,      // asked for something this machine or build cannot do
  kWorkerFailed,     // a worker process crashed, hung or answered nonsense
  kInternal,         // a broken invariant: a bug in ipex-tune
};

// Stable lower-case name of a code, used in JSON output and stored trial errors.
std::string_view ErrorCodeName(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}

  ErrorCode code() const { return code_; }

  // A copy of this error whose message is prefixed by `context` ("loading r.yaml: ...").
  Error WithContext(std::string_view context) const;

 private:
  ErrorCode code_;
};

}  // namespace ipt
