// engine/shape.h — Shape: rank 0..4, row-major, with the helpers ops need to check and
// print shapes. Nothing here allocates.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "engine/error.h"

namespace cg {

constexpr int kMaxRank = 4;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) {
    if (dims.size() > kMaxRank) throw ShapeError("Shape: rank " + std::to_string(dims.size()) + " > 4");
    for (int64_t d : dims) push(d);
  }
  template <class It>
  static Shape from(It begin, It end) {
    Shape s;
    for (It it = begin; it != end; ++it) {
      if (s.rank_ == kMaxRank) throw ShapeError("Shape: rank > 4");
      s.push(static_cast<int64_t>(*it));
    }
    return s;
  }

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return d_[norm_axis(i)]; }
  int64_t& operator[](int i) { return d_[norm_axis(i)]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= d_[i];
    return n;
  }
  // Product of all dims but the last (the "rows" of a row-major matrix view).
  int64_t rows() const { return rank_ == 0 ? 1 : numel() / d_[rank_ - 1]; }
  int64_t cols() const { return rank_ == 0 ? 1 : d_[rank_ - 1]; }
  // Negative axes count from the end, as in numpy.
  int norm_axis(int axis) const {
    int a = axis < 0 ? axis + rank_ : axis;
    if (a < 0 || a >= rank_) throw ShapeError("axis " + std::to_string(axis) + " out of range for shape " + str());
    return a;
  }
  void push(int64_t d) {
    if (rank_ == kMaxRank) throw ShapeError("Shape: rank > 4");
    if (d < 0) throw ShapeError("Shape: negative dimension " + std::to_string(d));
    d_[rank_++] = d;
  }
  bool operator==(const Shape& o) const {
    if (rank_ != o.rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (d_[i] != o.d_[i]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) s += (i ? "," : "") + std::to_string(d_[i]);
    return s + "]";
  }
  // The shape right-aligned into 4 dims, padded with leading 1s.
  std::array<int64_t, kMaxRank> padded() const {
    std::array<int64_t, kMaxRank> p{1, 1, 1, 1};
    for (int i = 0; i < rank_; ++i) p[kMaxRank - rank_ + i] = d_[i];
    return p;
  }

 private:
  std::array<int64_t, kMaxRank> d_{0, 0, 0, 0};
  int rank_ = 0;
};

}  // namespace cg
