// The message of the coupling::Error a call throws ("" when it throws none), for tests that check
// what a user would read.
#pragma once

#include "coupling/error.h"

#include <string>

namespace test_support {

template <class Call>
std::string error_of(Call&& call) {
  try {
    call();
  } catch (const coupling::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace test_support
