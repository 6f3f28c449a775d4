// Shared helpers for the binding translation units: array views, dtype dispatch, threads.
// C++ kernels never see a Python object; everything Python stays in bindings/.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/complex.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;

namespace ecgcore_py {

// C-contiguous array of T; converts (copies) only when the input is not already one.
template <class T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// A C-contiguous array seen as [batch, n] over its last axis.
struct Rows {
  int64_t batch = 1;
  int64_t n = 0;
};

inline Rows rows_of(const py::array& a) {
  if (a.ndim() < 1) throw std::invalid_argument("expected an array with at least one dimension");
  Rows r;
  r.n = a.shape(a.ndim() - 1);
  r.batch = 1;
  for (py::ssize_t d = 0; d + 1 < a.ndim(); ++d) r.batch *= a.shape(d);
  return r;
}

inline std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

// True when the array's dtype is float32 (the only non-float64 float we keep as is).
inline bool is_float32(const py::array& a) { return a.dtype().is(py::dtype::of<float>()); }

// A real input of shape (..., n) as a C-contiguous T array, its [batch, n] view and its shape.
template <class T>
struct RowsInput {
  carray<T> x;
  Rows rows;
  std::vector<py::ssize_t> shape;
};

template <class T>
RowsInput<T> rows_input(const py::array& x_in) {
  carray<T> x = carray<T>::ensure(x_in);
  if (!x || x.ndim() < 1) throw std::invalid_argument("x must be a real array of shape (..., n_samples)");
  return {x, rows_of(x), shape_of(x)};
}

}  // namespace ecgcore_py
