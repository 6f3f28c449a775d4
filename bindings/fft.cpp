// Bindings for cpp/include/ecgcore/fft.hpp: batch FFTs over the last axis (float32 stays float32).
#include "ecgcore/fft.hpp"

#include "common.hpp"

namespace {

using ecgcore_py::carray;

std::vector<py::ssize_t> with_last(const py::array& a, int64_t last) {
  auto shape = ecgcore_py::shape_of(a);
  shape.back() = static_cast<py::ssize_t>(last);
  return shape;
}

// float32 stays float32, everything else float64; complex64 is single precision too (irfft, fft).
using ecgcore_py::dispatch_dtype;
using ecgcore_py::real_t;

py::array rfft(const py::array& x_in, int64_t n_fft, int workers) {
  return dispatch_dtype<float, double>(x_in, [&](auto tag) -> py::array {
    using T = decltype(tag);
    carray<T> x = carray<T>::ensure(x_in);
    if (!x) throw std::invalid_argument("x must be a real numeric array");
    const auto r = ecgcore_py::rows_of(x);
    const int64_t nf = n_fft > 0 ? n_fft : r.n;
    py::array_t<std::complex<T>> out(with_last(x, nf / 2 + 1));
    const T* xp = x.data();
    auto* op = out.mutable_data();
    {
      py::gil_scoped_release release;
      ecgcore::rfft_batch<T>(xp, r.batch, r.n, nf, op, workers);
    }
    return out;
  });
}

py::array irfft(const py::array& x_in, int64_t n_out, int workers) {
  return dispatch_dtype<std::complex<float>, float, double>(x_in, [&](auto tag) -> py::array {
    using T = real_t<decltype(tag)>;
    carray<std::complex<T>> x = carray<std::complex<T>>::ensure(x_in);
    if (!x) throw std::invalid_argument("x must be a numeric array");
    const auto r = ecgcore_py::rows_of(x);
    const int64_t no = n_out > 0 ? n_out : 2 * (r.n - 1);
    py::array_t<T> out(with_last(x, no));
    const auto* xp = x.data();
    T* op = out.mutable_data();
    {
      py::gil_scoped_release release;
      ecgcore::irfft_batch<T>(xp, r.batch, r.n, no, op, workers);
    }
    return out;
  });
}

py::array fft(const py::array& x_in, int64_t n_fft, bool inverse, int workers) {
  return dispatch_dtype<std::complex<float>, float, double>(x_in, [&](auto tag) -> py::array {
    using T = real_t<decltype(tag)>;
    carray<std::complex<T>> x = carray<std::complex<T>>::ensure(x_in);
    if (!x) throw std::invalid_argument("x must be a numeric array");
    const auto r = ecgcore_py::rows_of(x);
    const int64_t nf = n_fft > 0 ? n_fft : r.n;
    py::array_t<std::complex<T>> out(with_last(x, nf));
    const auto* xp = x.data();
    auto* op = out.mutable_data();
    {
      py::gil_scoped_release release;
      ecgcore::fft_batch<T>(xp, r.batch, r.n, nf, inverse, op, workers);
    }
    return out;
  });
}

}  // namespace

void register_fft(py::module_& m) {
  m.def("rfft", &rfft, py::arg("x"), py::arg("n_fft") = 0, py::arg("workers") = 0,
        R"doc(Real FFT over the last axis (numpy.fft.rfft semantics).

Parameters
----------
x : (..., n) float32 or float64 (other real dtypes are converted to float64)
n_fft : transform length (<= 0: n); shorter rows are zero-padded, longer ones truncated
workers : threads (<= 0: all cores)

Returns
-------
(..., n_fft // 2 + 1) complex64 for float32 input, complex128 otherwise.)doc");
  m.def("irfft", &irfft, py::arg("x"), py::arg("n_out") = 0, py::arg("workers") = 0,
        R"doc(Inverse real FFT over the last axis (numpy.fft.irfft semantics, 1/n scaling).

Parameters
----------
x : (..., n_bins) complex
n_out : output length (<= 0: 2 * (n_bins - 1))
workers : threads (<= 0: all cores)

Returns
-------
(..., n_out) float32 for complex64 input, float64 otherwise.)doc");
  m.def("fft", &fft, py::arg("x"), py::arg("n_fft") = 0, py::arg("inverse") = false, py::arg("workers") = 0,
        R"doc(Complex FFT over the last axis (numpy.fft.fft / ifft semantics; the inverse is scaled by 1/n).

Parameters
----------
x : (..., n) complex or real
n_fft : transform length (<= 0: n)
inverse : inverse transform
workers : threads (<= 0: all cores)

Returns
-------
(..., n_fft) complex64 for complex64/float32 input, complex128 otherwise.)doc");
}
