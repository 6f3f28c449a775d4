// Bindings for cpp/include/ecgcore/cwt.hpp: Morlet scalograms.
#include "ecgcore/cwt.hpp"

#include "common.hpp"

namespace {

using ecgcore_py::carray;

py::array morlet_scalogram(const py::array& x_in, const carray<double>& scales, bool complex_wavelet,
                           double bandwidth, double center, int precision, int workers) {
  if (scales.ndim() != 1) throw std::invalid_argument("scales must be one-dimensional");
  ecgcore::MorletWavelet w;
  w.complex = complex_wavelet;
  w.bandwidth = bandwidth;
  w.center = center;
  w.precision = precision;
  const int64_t ns = scales.shape(0);
  const double* sp = scales.data();
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    carray<T> x = carray<T>::ensure(x_in);
    if (!x) throw std::invalid_argument("x must be a real numeric array");
    if (x.ndim() < 1) throw std::invalid_argument("x must have at least one dimension (..., n_samples)");
    const auto r = ecgcore_py::rows_of(x);
    auto shape = ecgcore_py::shape_of(x);
    shape.insert(shape.end() - 1, static_cast<py::ssize_t>(ns));
    py::array_t<float> out(shape);
    const T* xp = x.data();
    float* op = out.mutable_data();
    {
      py::gil_scoped_release release;
      ecgcore::morlet_scalogram<T>(xp, r.batch, r.n, sp, ns, w, op, workers);
    }
    return out;
  };
  // float32 is read as is, everything else as float64 (arithmetic is float64).
  return ecgcore_py::dispatch_dtype<float, double>(x_in, run);
}

double centre_frequency(bool complex_wavelet, double bandwidth, double center) {
  ecgcore::MorletWavelet w;
  w.complex = complex_wavelet;
  w.bandwidth = bandwidth;
  w.center = center;
  return ecgcore::morlet_centre_frequency(w);
}

}  // namespace

void register_cwt(py::module_& m) {
  m.def("morlet_scalogram", &morlet_scalogram, py::arg("x"), py::arg("scales"), py::arg("complex_wavelet") = false,
        py::arg("bandwidth") = 1.0, py::arg("center") = 1.0, py::arg("precision") = 12, py::arg("workers") = 0,
        R"doc(Morlet CWT magnitudes, |pywt.cwt(x, scales, wavelet, method="conv", precision)| as float32.

Parameters
----------
x : (..., n) float32 or float64 (computed in float64 either way)
scales : (n_scales,) positive scales
complex_wavelet : False for "morl", True for "cmor{bandwidth}-{center}"
precision : the wavelet is sampled on 2**precision points
workers : threads (<= 0: all cores)

Returns
-------
(..., n_scales, n) float32)doc");
  m.def("morlet_centre_frequency", &centre_frequency, py::arg("complex_wavelet") = false, py::arg("bandwidth") = 1.0,
        py::arg("center") = 1.0, "Centre frequency of the wavelet at scale 1, cycles/sample (pywt.central_frequency).");
}
