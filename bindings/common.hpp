// Shared helpers for the binding translation units: array views and the one dtype dispatch.
// C++ kernels never see a Python object; everything Python stays in bindings/.
#pragma once
#include <pybind11/complex.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <complex>
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

// ---- The one dtype dispatch of the bindings ---------------------------------------------------------------
// dispatch_dtype<Ts...>(a, fn) calls fn(T{}) for the first T of Ts that is the dtype of `a`; the argument is a
// value of the element type used as a tag (`using T = decltype(tag);`). Any other dtype runs the last of Ts,
// to which carray<T>::ensure then converts the input -- dispatch_dtype<float, double>: float32 stays float32,
// everything else becomes float64 -- or, when `reject` is given, raises ValueError(reject).
// std::complex<T> in Ts matches complex input; real_t<decltype(tag)> is its T (float for complex64).
// Call it with the GIL held (it reads the dtype); release the GIL inside fn, around the kernel.
template <class T>
struct real_of {
  using type = T;
};
template <class T>
struct real_of<std::complex<T>> {
  using type = T;
};
template <class T>
using real_t = typename real_of<T>::type;

namespace detail {
template <class T, class... Rest, class Fn>
decltype(auto) dispatch_first(const py::dtype& dt, Fn& fn, const char* reject) {
  if constexpr (sizeof...(Rest) == 0) {
    if (reject && !dt.is(py::dtype::of<T>())) throw std::invalid_argument(reject);
    return fn(T{});
  } else {
    if (dt.is(py::dtype::of<T>())) return fn(T{});
    return dispatch_first<Rest...>(dt, fn, reject);
  }
}
}  // namespace detail

template <class... Ts, class Fn>
decltype(auto) dispatch_dtype(const py::array& a, Fn&& fn, const char* reject = nullptr) {
  static_assert(sizeof...(Ts) > 0, "dispatch_dtype needs at least one element type");
  return detail::dispatch_first<Ts...>(a.dtype(), fn, reject);
}

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

// Observations as a C-contiguous (n_rows, n_features) array of T; 1-D input is one row.
template <class T>
carray<T> matrix(const py::array& a, const char* name) {
  carray<T> m = carray<T>::ensure(a);
  if (!m) throw std::invalid_argument(std::string(name) + " must be a numeric array");
  if (m.ndim() == 1) m = m.reshape({py::ssize_t(1), m.shape(0)});
  if (m.ndim() != 2)
    throw std::invalid_argument(std::string(name) + " must have shape (n_rows, n_features), got " +
                                std::to_string(m.ndim()) + " dimensions");
  return m;
}

}  // namespace ecgcore_py
