// Bindings for cpp/include/ecgcore/peaks.hpp.
#include "ecgcore/peaks.hpp"
#include "ecgcore/qrs_width.hpp"

#include "common.hpp"

namespace {

using ecgcore::QrsOptions;
using ecgcore_py::carray;

py::array_t<int64_t> to_array(const std::vector<int64_t>& v) {
  py::array_t<int64_t> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

QrsOptions make_options(double fs, double band_low, double band_high, double integration_s, double refractory_s,
                        double t_wave_s, double search_back, double threshold, bool refine, double refine_radius_s,
                        double band2_low, double band2_high, int contrast_power, double level_window_s,
                        double contrast_floor, double detect_fs, double noise_gain, double noise_knee, double early_rr,
                        double early_noise, double early_level, double wide_level, double wide_corr,
                        double wide_noise) {
  QrsOptions o;
  o.fs = fs;
  o.band_low = band_low;
  o.band_high = band_high;
  o.integration_s = integration_s;
  o.refractory_s = refractory_s;
  o.t_wave_s = t_wave_s;
  o.search_back = search_back;
  o.threshold = threshold;
  o.refine = refine;
  o.refine_radius_s = refine_radius_s;
  o.band2_low = band2_low;
  o.band2_high = band2_high;
  o.contrast_power = contrast_power;
  o.level_window_s = level_window_s;
  o.contrast_floor = contrast_floor;
  o.detect_fs = detect_fs;
  o.noise_gain = noise_gain;
  o.noise_knee = noise_knee;
  o.early_rr = early_rr;
  o.early_noise = early_noise;
  o.early_level = early_level;
  o.wide_level = wide_level;
  o.wide_corr = wide_corr;
  o.wide_noise = wide_noise;
  ecgcore::validate_qrs_options(o);
  return o;
}

// float32 stays float32, everything else becomes float64: fn(a) with a C-contiguous carray of either.
template <class Fn>
auto with_float_rows(const py::array& x, Fn&& fn) {
  return ecgcore_py::dispatch_dtype<float, double>(x, [&](auto tag) {
    auto a = py::cast<carray<decltype(tag)>>(x);
    return fn(a);
  });
}

py::list detect(const py::array& x, double fs, double band_low, double band_high, double integration_s,
                double refractory_s, double t_wave_s, double search_back, double threshold, bool refine,
                double refine_radius_s, double band2_low, double band2_high, int contrast_power, double level_window_s,
                double contrast_floor, double detect_fs, double noise_gain, double noise_knee, double early_rr,
                double early_noise, double early_level, double wide_level, double wide_corr, double wide_noise,
                int workers) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be a 2-D [batch, n_samples] array");
  const QrsOptions o =
      make_options(fs, band_low, band_high, integration_s, refractory_s, t_wave_s, search_back, threshold, refine,
                   refine_radius_s, band2_low, band2_high, contrast_power, level_window_s, contrast_floor, detect_fs,
                   noise_gain, noise_knee, early_rr, early_noise, early_level, wide_level, wide_corr, wide_noise);
  auto rows = with_float_rows(x, [&](auto& a) {
    const auto shape = ecgcore_py::rows_of(a);
    const auto* data = a.data();
    py::gil_scoped_release release;
    return ecgcore::detect_r_peaks_batch(data, shape.batch, shape.n, o, workers);
  });
  py::list out;
  for (const auto& r : rows) out.append(to_array(r));
  return out;
}

py::array_t<int64_t> refine(const py::array& x, const carray<int64_t>& peaks, double fs, double radius_s) {
  if (x.ndim() != 1) throw std::invalid_argument("x must be a 1-D signal");
  if (peaks.ndim() != 1) throw std::invalid_argument("r_peaks must be a 1-D array of sample indices");
  QrsOptions o;
  o.fs = fs;
  o.refine_radius_s = radius_s;
  ecgcore::validate_qrs_options(o);
  auto r = with_float_rows(x, [&](auto& a) {
    const auto* data = a.data();
    const auto n = static_cast<int64_t>(a.shape(0));
    py::gil_scoped_release release;
    return ecgcore::refine_r_peaks(data, n, peaks.data(), static_cast<int64_t>(peaks.size()), o);
  });
  return to_array(r);
}

py::tuple bandpasses(const carray<double>& x, double fs, double lo1, double hi1, double lo2, double hi2) {
  if (x.ndim() != 1) throw std::invalid_argument("x must be a 1-D signal");
  std::vector<double> y1, y2;
  bool lanes;
  {
    py::gil_scoped_release release;
    lanes = ecgcore::qrs_bandpasses(x.data(), static_cast<int64_t>(x.size()), fs, lo1, hi1, lo2, hi2, y1, y2);
  }
  py::array_t<double> a(static_cast<py::ssize_t>(y1.size())), b(static_cast<py::ssize_t>(y2.size()));
  std::copy(y1.begin(), y1.end(), a.mutable_data());
  std::copy(y2.begin(), y2.end(), b.mutable_data());
  return py::make_tuple(a, b, lanes);
}

py::array_t<double> qrs_width(const py::array& x, const carray<int64_t>& peaks, const carray<int64_t>& offsets,
                              int64_t half, int64_t smooth, double frac, int workers) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be a 2-D [batch, n_samples] array");
  if (peaks.ndim() != 1 || offsets.ndim() != 1) throw std::invalid_argument("peaks and offsets must be 1-D");
  const auto batch = static_cast<int64_t>(x.shape(0));
  if (static_cast<int64_t>(offsets.size()) != batch + 1)
    throw std::invalid_argument("offsets must hold batch + 1 values");
  if (batch > 0 && offsets.data()[batch] != static_cast<int64_t>(peaks.size()))
    throw std::invalid_argument("offsets must end at the number of peaks");
  auto w = with_float_rows(x, [&](auto& a) {
    const auto shape = ecgcore_py::rows_of(a);
    const auto* data = a.data();
    py::gil_scoped_release release;
    return ecgcore::qrs_width_batch(data, shape.batch, shape.n, peaks.data(), offsets.data(), half, smooth, frac,
                                    workers);
  });
  py::array_t<double> out(static_cast<py::ssize_t>(w.size()));
  std::copy(w.begin(), w.end(), out.mutable_data());
  return out;
}

}  // namespace

void register_peaks(py::module_& m) {
  m.def("qrs_width", &qrs_width, py::arg("x"), py::arg("peaks"), py::arg("offsets"), py::arg("half"), py::arg("smooth"),
        py::arg("frac"), py::arg("workers") = 0,
        R"doc(Median QRS width, in samples, of each row of a [batch, n_samples] array (float32 or float64).

Parameters
----------
x : ndarray, shape (batch, n_samples)
peaks : int64 ndarray
    The R-peaks of every row, concatenated.
offsets : int64 ndarray, shape (batch + 1,)
    Row r's peaks are peaks[offsets[r]:offsets[r + 1]].
half : int
    Samples either side of the peak searched for the QRS.
smooth : int
    Odd length of the moving average of the absolute slope.
frac : float
    Fraction of the beat's largest smoothed slope that delimits the QRS.
workers : int
    Threads over rows; 0 means all cores.

Returns
-------
float64 ndarray, shape (batch,): the median width over the row's measurable beats, NaN where there is none
(see ecgcore.dsp.qrs.qrs_width for the definition).
)doc");
  m.def("qrs_bandpasses", &bandpasses, py::arg("x"), py::arg("fs"), py::arg("lo1"), py::arg("hi1"), py::arg("lo2"),
        py::arg("hi2"),
        R"doc(The R-peak detector's two zero-phase band-passes of one row, as detect_r_peaks computes them (for tests).

Returns
-------
(y1, y2, float_lanes): the two float64 outputs, and whether the float32 pair path ran (long rows) rather than
double sosfiltfilt.
)doc");
  m.def("detect_r_peaks", &detect, py::arg("x"), py::arg("fs"), py::arg("band_low") = 5.0, py::arg("band_high") = 15.0,
        py::arg("integration_s") = 0.120, py::arg("refractory_s") = 0.250, py::arg("t_wave_s") = 0.300,
        py::arg("search_back") = 1.40, py::arg("threshold") = 0.25, py::arg("refine") = true,
        py::arg("refine_radius_s") = 0.075, py::arg("band2_low") = 15.0, py::arg("band2_high") = 30.0,
        py::arg("contrast_power") = 8, py::arg("level_window_s") = 4.0, py::arg("contrast_floor") = 0.2,
        py::arg("detect_fs") = 0.0, py::arg("noise_gain") = 1.5, py::arg("noise_knee") = 0.05,
        py::arg("early_rr") = 0.5, py::arg("early_noise") = 0.08, py::arg("early_level") = 1.0,
        py::arg("wide_level") = 0.7, py::arg("wide_corr") = 0.95, py::arg("wide_noise") = 0.08, py::arg("workers") = 0,
        R"doc(R-peak detection over the rows of a [batch, n_samples] array (float32 or float64).

Parameters
----------
x : ndarray, shape (batch, n_samples)
fs : float
    Sampling rate in Hz.
band_low, band_high, integration_s, refractory_s, t_wave_s, search_back, threshold, refine, refine_radius_s,
band2_low, band2_high, contrast_power, level_window_s, contrast_floor, detect_fs, noise_gain, noise_knee, early_rr,
early_noise, early_level, wide_level, wide_corr, wide_noise
    Detector settings (see ecgcore.dsp.peaks.detect_r_peaks).
workers : int
    Threads over rows; 0 means all cores.

Returns
-------
list of int64 ndarrays, one per row.
)doc");
  m.def("refine_r_peaks", &refine, py::arg("x"), py::arg("r_peaks"), py::arg("fs"), py::arg("radius_s") = 0.075,
        R"doc(Move R-peaks to the largest |deflection| of the zero-phase refinement band-pass (detector stage 5).

Parameters
----------
x : ndarray, shape (n_samples,)
r_peaks : int64 ndarray, shape (n_peaks,)
fs : float
radius_s : float
    Search radius around each peak in seconds.

Returns
-------
int64 ndarray, sorted, without duplicates.
)doc");
}
