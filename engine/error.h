// engine/error.h — the exception types every layer throws. Messages name the op and
// the shapes/dtypes/devices involved, so a caller can print e.what() and be done.
#pragma once
#include <stdexcept>
#include <string>

namespace cg {

// Base of every chaingrad error.
struct Error : std::runtime_error {
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};
// Shapes that do not fit the op (mismatched inner dims, bad axis, bad rank...).
struct ShapeError : Error {
  explicit ShapeError(const std::string& msg) : Error(msg) {}
};
// Mixed or unsupported dtypes.
struct DTypeError : Error {
  explicit DTypeError(const std::string& msg) : Error(msg) {}
};
// Tensors on different devices, or a device this build or machine lacks.
struct DeviceError : Error {
  explicit DeviceError(const std::string& msg) : Error(msg) {}
};
// A file that is missing, truncated or corrupt; bad user input in general.
struct FormatError : Error {
  explicit FormatError(const std::string& msg) : Error(msg) {}
};

}  // namespace cg
