// Helpers shared by the core's tests.
#pragma once

#include <functional>
#include <string>

#include "base/error.h"

namespace ipt::core::testing {

// The message of the ipt::Error that `f` throws, or "no error".
inline std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace ipt::core::testing
