// Bindings for cpp/include/ecgcore/stft.hpp.
#include "ecgcore/stft.hpp"

#include "common.hpp"

namespace {

using ecgcore_py::carray;

ecgcore::StftPad pad_of(const std::string& s) {
  if (s == "zeros" || s == "constant") return ecgcore::StftPad::Zeros;
  if (s == "reflect") return ecgcore::StftPad::Reflect;
  if (s == "edge" || s == "replicate") return ecgcore::StftPad::Edge;
  throw std::invalid_argument("pad mode must be 'zeros', 'reflect' or 'edge', got '" + s + "'");
}

ecgcore::StftOutput output_of(const std::string& s) {
  if (s == "complex") return ecgcore::StftOutput::Complex;
  if (s == "magnitude") return ecgcore::StftOutput::Magnitude;
  if (s == "power") return ecgcore::StftOutput::Power;
  if (s == "db") return ecgcore::StftOutput::Decibel;
  throw std::invalid_argument("output must be 'complex', 'magnitude', 'power' or 'db', got '" + s + "'");
}

py::array stft(const py::array& x_in, const carray<double>& window, int64_t hop, int64_t n_frames, int64_t pad_left,
               const std::string& pad, bool onesided, const std::string& output, double db_offset, double top_db,
               int workers) {
  if (window.ndim() != 1) throw std::invalid_argument("window must be one-dimensional (n_fft,)");
  ecgcore::StftParams p;
  p.n_fft = window.shape(0);
  p.hop = hop;
  p.n_frames = n_frames;
  p.pad_left = pad_left;
  p.pad = pad_of(pad);
  p.onesided = onesided;
  p.output = output_of(output);
  p.db_offset = db_offset;
  p.top_db = top_db;
  const double* wp = window.data();
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto in = ecgcore_py::rows_input<T>(x_in);
    const carray<T>& x = in.x;
    const auto r = in.rows;
    auto shape = in.shape;
    shape.back() = static_cast<py::ssize_t>(ecgcore::stft_bins(p));
    shape.push_back(static_cast<py::ssize_t>(n_frames));
    const T* xp = x.data();
    if (p.output == ecgcore::StftOutput::Complex) {
      py::array_t<std::complex<T>> out(shape);
      auto* op = out.mutable_data();
      py::gil_scoped_release release;
      ecgcore::stft<T>(xp, r.batch, r.n, wp, p, op, nullptr, workers);
      return std::move(out);
    }
    py::array_t<T> out(shape);
    T* op = out.mutable_data();
    py::gil_scoped_release release;
    ecgcore::stft<T>(xp, r.batch, r.n, wp, p, nullptr, op, workers);
    return std::move(out);
  };
  // float32 stays float32 (arithmetic is float64 inside), everything else float64.
  return ecgcore_py::dispatch_dtype<float, double>(x_in, run);
}

}  // namespace

void register_stft(py::module_& m) {
  m.def("stft", &stft, py::arg("x"), py::arg("window"), py::arg("hop"), py::arg("n_frames"), py::arg("pad_left"),
        py::arg("pad") = "zeros", py::arg("onesided") = true, py::arg("output") = "complex",
        py::arg("db_offset") = 1e-5, py::arg("top_db") = -1.0, py::arg("workers") = 0,
        R"doc(Short-time Fourier transform of the rows of x (the Python layer sets the convention).

Parameters
----------
x : (..., n) float32 or float64
window : (n_fft,) window placed and scaled inside the FFT buffer
hop : frame step; frame f starts at extended sample f * hop - pad_left
n_frames : number of frames
pad_left : samples of extension before the signal
pad : 'zeros', 'reflect' or 'edge' extension outside the signal
onesided : n_fft // 2 + 1 bins, else n_fft
output : 'complex', 'magnitude', 'power' or 'db' (20 log10(|X| + db_offset), floored per row and bin at the
    maximum over frames minus top_db when top_db >= 0)
workers : threads (<= 0: all cores)

Returns
-------
(..., n_bins, n_frames), complex64/float32 for float32 input, complex128/float64 otherwise.)doc");
}
