// A C interface over libtorch's operator profiler (the Kineto-based one torch.profiler drives):
// start recording every ATen operator and autograd function on the CPU, then stop and hand the
// events back as text for core/src/profiler.rs to aggregate. Exceptions come back as messages in
// *err (ffi_boundary.h), never across the FFI boundary.

#include "ffi_boundary.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <set>
#include <sstream>
#include <string>

namespace prof = torch::profiler::impl;

extern "C" {

// Starts recording CPU operators (with their input shapes when record_shapes is non-zero).
int fv_profiler_start(int record_shapes, char **err) {
  return fv::guarded(err, "the profiler", [&] {
    prof::ProfilerConfig config(prof::ProfilerState::KINETO, record_shapes != 0);
    std::set<prof::ActivityType> activities{prof::ActivityType::CPU};
    torch::autograd::profiler::prepareProfiler(config, activities);
    torch::autograd::profiler::enableProfiler(config, activities);
  });
}

// Stops recording; *events receives one line per CPU event:
// name TAB thread TAB start_ns TAB duration_ns TAB shapes (e.g. [4, 3, 256, 256];[64, 3, 7, 7]).
int fv_profiler_stop(char **events, char **err) {
  return fv::guarded(err, "the profiler", [&] {
    auto result = torch::autograd::profiler::disableProfiler();
    std::ostringstream out;
    for (const auto &e : result->events()) {
      if (e.deviceType() != c10::DeviceType::CPU || e.isAsync()) {
        continue;
      }
      out << e.name() << '\t' << e.startThreadId() << '\t' << e.startNs() << '\t'
          << e.durationNs() << '\t';
      if (e.hasShapes()) {
        bool first_input = true;
        for (const auto &shape : e.shapes()) {
          out << (first_input ? "" : ";") << '[';
          for (size_t i = 0; i < shape.size(); ++i) {
            out << (i ? ", " : "") << shape[i];
          }
          out << ']';
          first_input = false;
        }
      }
      out << '\n';
    }
    *events = fv::copy_message(out.str());
  });
}

}
