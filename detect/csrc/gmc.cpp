// The two OpenCV steps of BoT-SORT's sparse optical-flow camera-motion compensation that the
// opencv crate's enabled modules do not reach: pyramidal Lucas-Kanade (video module) and the
// RANSAC 4-degree-of-freedom affine fit (calib3d). Called from src/track/gmc.rs, with OpenCV's
// default parameters, which are what Ultralytics' GMC uses. Exceptions never cross into Rust:
// each function returns a negative status and writes OpenCV's message instead.

#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

#include <opencv2/calib3d.hpp>
#include <opencv2/core.hpp>
#include <opencv2/video/tracking.hpp>

namespace {
void copy_message(const char* text, char* out, int out_len) {
  if (out == nullptr || out_len <= 0) return;
  std::strncpy(out, text, static_cast<size_t>(out_len - 1));
  out[out_len - 1] = '\0';
}

// Runs `body` (which returns the status), turning any exception into -1 and its message.
template <typename Body>
int guarded(Body body, char* error, int error_len) {
  try {
    return body();
  } catch (const std::exception& e) {
    copy_message(e.what(), error, error_len);
  } catch (...) {
    copy_message("an unknown C++ exception", error, error_len);
  }
  return -1;
}
}  // namespace

extern "C" {

// Tracks `n` points of `prev` (8-bit, `rows` x `cols`, packed) into `next`. Writes the moved
// points (2n floats) and a found flag per point. Returns 0, or -1 with `error` set.
int ferrovis_lk_flow(const uint8_t* prev, const uint8_t* next, int rows, int cols,
                     const float* points, int n, float* moved, uint8_t* found, char* error,
                     int error_len) {
  return guarded([&] {
    cv::Mat a(rows, cols, CV_8UC1, const_cast<uint8_t*>(prev));
    cv::Mat b(rows, cols, CV_8UC1, const_cast<uint8_t*>(next));
    std::vector<cv::Point2f> from(n), to;
    for (int i = 0; i < n; ++i) from[i] = cv::Point2f(points[2 * i], points[2 * i + 1]);
    std::vector<uint8_t> status;
    std::vector<float> err;
    cv::calcOpticalFlowPyrLK(a, b, from, to, status, err);
    for (int i = 0; i < n; ++i) {
      moved[2 * i] = to[i].x;
      moved[2 * i + 1] = to[i].y;
      found[i] = status[i];
    }
    return 0;
  }, error, error_len);
}

// Fits the rotation, uniform scale and translation taking `from` to `to` (n points each, 2n
// floats) with RANSAC. Writes the 2x3 matrix row by row. Returns 1 when found, 0 when the
// points are degenerate, -1 with `error` set on an OpenCV error.
int ferrovis_affine_partial(const float* from, const float* to, int n, double* matrix,
                            char* error, int error_len) {
  return guarded([&] {
    std::vector<cv::Point2f> a(n), b(n);
    for (int i = 0; i < n; ++i) {
      a[i] = cv::Point2f(from[2 * i], from[2 * i + 1]);
      b[i] = cv::Point2f(to[2 * i], to[2 * i + 1]);
    }
    cv::Mat h = cv::estimateAffinePartial2D(a, b, cv::noArray(), cv::RANSAC);
    if (h.empty()) return 0;
    cv::Mat h64;
    h.convertTo(h64, CV_64F);
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 3; ++c) matrix[r * 3 + c] = h64.at<double>(r, c);
    return 1;
  }, error, error_len);
}
}
