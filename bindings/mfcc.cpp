// Bindings for cpp/include/ecgcore/mfcc.hpp.
#include "ecgcore/mfcc.hpp"

#include "common.hpp"

namespace {

using ecgcore_py::carray;

py::array mfcc(const py::array& x_in, const std::string& mode, double fs, int64_t n_mfcc, int64_t n_mels, double fmin,
               double fmax, double lifter, int delta_order, int64_t delta_width, int64_t n_fft, int64_t hop,
               int64_t win_length, bool center, bool htk, double top_db, int64_t frame_length, int64_t frame_shift,
               bool round_pow2, double preemphasis, bool remove_dc, int workers) {
  ecgcore::MfccParams p;
  if (mode == "librosa") p.mode = ecgcore::MfccMode::Librosa;
  else if (mode == "kaldi") p.mode = ecgcore::MfccMode::Kaldi;
  else throw std::invalid_argument("mode must be 'librosa' or 'kaldi', got '" + mode + "'");
  p.fs = fs;
  p.n_mfcc = n_mfcc;
  p.n_mels = n_mels;
  p.fmin = fmin;
  p.fmax = fmax;
  p.lifter = lifter;
  p.delta_order = delta_order;
  p.delta_width = delta_width;
  p.n_fft = n_fft;
  p.hop = hop;
  p.win_length = win_length;
  p.center = center;
  p.htk = htk;
  p.top_db = top_db;
  p.frame_length = frame_length;
  p.frame_shift = frame_shift;
  p.round_pow2 = round_pow2;
  p.preemphasis = preemphasis;
  p.remove_dc = remove_dc;
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto in = ecgcore_py::rows_input<T>(x_in);
    const carray<T>& x = in.x;
    const auto r = in.rows;
    auto shape = in.shape;
    shape.back() = static_cast<py::ssize_t>(ecgcore::mfcc_rows(p));
    shape.push_back(static_cast<py::ssize_t>(ecgcore::mfcc_frames(p, r.n)));
    py::array_t<T> out(shape);
    const T* xp = x.data();
    T* op = out.mutable_data();
    py::gil_scoped_release release;
    ecgcore::mfcc<T>(xp, r.batch, r.n, p, op, workers);
    return std::move(out);
  };
  // float32 stays float32 (arithmetic is float64 inside), everything else float64.
  return ecgcore_py::dispatch_dtype<float, double>(x_in, run);
}

py::array_t<double> mel_filterbank(const std::string& mode, double fs, int64_t n_fft, int64_t n_mels, double fmin,
                                   double fmax, bool htk) {
  if (fs <= 0 || n_fft < 2 || n_mels < 1) throw std::invalid_argument("fs, n_fft and n_mels must be positive");
  std::vector<double> w;
  if (mode == "librosa") w = ecgcore::mel_filterbank_librosa(fs, n_fft, n_mels, fmin, fmax, htk);
  else if (mode == "kaldi") w = ecgcore::mel_filterbank_kaldi(fs, n_fft, n_mels, fmin, fmax <= 0 ? fs / 2 + fmax : fmax);
  else throw std::invalid_argument("mode must be 'librosa' or 'kaldi', got '" + mode + "'");
  py::array_t<double> out({static_cast<py::ssize_t>(n_mels), static_cast<py::ssize_t>(n_fft / 2 + 1)});
  std::copy(w.begin(), w.end(), out.mutable_data());
  return out;
}

py::array_t<double> deltas(const carray<double>& x, const std::string& mode, int64_t width, int order) {
  if (x.ndim() < 1) throw std::invalid_argument("x must have at least one dimension (..., n_frames)");
  if (order != 1 && order != 2) throw std::invalid_argument("order must be 1 or 2");
  const auto r = ecgcore_py::rows_of(x);
  py::array_t<double> out(ecgcore_py::shape_of(x));
  const double* xp = x.data();
  double* op = out.mutable_data();
  py::gil_scoped_release release;
  if (mode == "kaldi") {
    ecgcore::kaldi_delta(xp, r.batch, r.n, width, op);
    if (order == 2) {
      std::vector<double> tmp(op, op + r.batch * r.n);
      ecgcore::kaldi_delta(tmp.data(), r.batch, r.n, width, op);
    }
  } else if (mode == "librosa") {
    if (width < 3 || width % 2 == 0) throw std::invalid_argument("width must be an odd integer >= 3");
    ecgcore::savgol_delta(xp, r.batch, r.n, width, order, op);
  } else {
    throw std::invalid_argument("mode must be 'librosa' or 'kaldi', got '" + mode + "'");
  }
  return out;
}

}  // namespace

void register_mfcc(py::module_& m) {
  m.def("mfcc", &mfcc, py::arg("x"), py::arg("mode"), py::arg("fs"), py::arg("n_mfcc"), py::arg("n_mels"),
        py::arg("fmin"), py::arg("fmax"), py::arg("lifter"), py::arg("delta_order"), py::arg("delta_width"),
        py::arg("n_fft"), py::arg("hop"), py::arg("win_length"), py::arg("center"), py::arg("htk"),
        py::arg("top_db"), py::arg("frame_length"), py::arg("frame_shift"), py::arg("round_pow2"),
        py::arg("preemphasis"), py::arg("remove_dc"), py::arg("workers") = 0,
        R"doc(MFCCs (+ deltas) of the rows of x; see ecgcore.features.mfcc for the meaning of each argument.

Parameters
----------
x : (..., n) float32 or float64
mode : 'librosa' or 'kaldi'

Returns
-------
(..., n_mfcc * (1 + delta_order), n_frames), float32 for float32 input, float64 otherwise.)doc");
  m.def("deltas", &deltas, py::arg("x"), py::arg("mode"), py::arg("width"), py::arg("order") = 1,
        R"doc(Deltas along the last axis: librosa.feature.delta (Savitzky-Golay, mode 'interp') or Kaldi's
compute_deltas (replicated edges; order 2 = delta of delta). x : (..., n_frames) -> same shape, float64.)doc");
  m.def("mel_filterbank", &mel_filterbank, py::arg("mode"), py::arg("fs"), py::arg("n_fft"), py::arg("n_mels"),
        py::arg("fmin") = 0.0, py::arg("fmax") = 0.0, py::arg("htk") = false,
        R"doc(Mel filterbank (n_mels, n_fft // 2 + 1): librosa.filters.mel (Slaney norm) or Kaldi's mel banks.)doc");
}
