// What every shim function shares at the C boundary with Rust: a C++ exception becomes a message
// in *err (malloc'd; Rust frees it with fv_free_error, defined once in distributed.cpp) and
// never crosses into Rust; arrays of tch's tensor handles (at::Tensor*) become vectors.
#pragma once

#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace fv {

// A malloc'd, NUL-terminated copy of `s` (nullptr if malloc fails).
inline char *copy_message(const std::string &s) {
  char *out = static_cast<char *>(std::malloc(s.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, s.c_str(), s.size() + 1);
  }
  return out;
}

// Runs f; 0 on success, 1 with *err set when it threw. `what` names the part for exceptions
// that carry no message.
template <typename F> int guarded(char **err, const char *what, F f) {
  try {
    f();
    return 0;
  } catch (const c10::Error &e) {
    *err = copy_message(e.what_without_backtrace());
  } catch (const std::exception &e) {
    *err = copy_message(e.what());
  } catch (...) {
    *err = copy_message(std::string("unknown C++ exception in ") + what);
  }
  return 1;
}

// The n tensors behind tch's handles (shallow: they share storage with the Rust side's).
inline std::vector<at::Tensor> tensors(at::Tensor **handles, int n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int i = 0; i < n; ++i) {
    v.push_back(*handles[i]);
  }
  return v;
}

} // namespace fv
