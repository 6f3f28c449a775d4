// Bindings for cpp/include/ecgcore/segment.hpp.
#include "ecgcore/segment.hpp"

#include "common.hpp"

namespace {

using ecgcore_py::carray;

// float32 stays float32, everything else becomes float64: fn(a, tag) with a C-contiguous carray of either.
template <class Fn>
py::object with_float(const py::array& x, Fn&& fn) {
  return ecgcore_py::dispatch_dtype<float, double>(x, [&](auto tag) -> py::object {
    auto a = py::cast<carray<decltype(tag)>>(x);
    return fn(a, tag);
  });
}

py::tuple beats(const py::array& x, const carray<int64_t>& r_peaks, int64_t before, int64_t after,
                const std::string& edge, double pad_value, int workers) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be a 2-D [n_leads, n_samples] array");
  if (r_peaks.ndim() != 1) throw std::invalid_argument("r_peaks must be a 1-D array of sample indices");
  const auto policy = ecgcore::parse_edge_policy(edge);
  const int64_t n_leads = x.shape(0), n = x.shape(1);
  std::vector<int64_t> kept =
      ecgcore::kept_beats(r_peaks.data(), static_cast<int64_t>(r_peaks.size()), n, before, after, policy);
  py::array_t<int64_t> kept_arr(static_cast<py::ssize_t>(kept.size()));
  std::copy(kept.begin(), kept.end(), kept_arr.mutable_data());
  py::object out = with_float(x, [&](auto& a, auto tag) -> py::object {
    using T = decltype(tag);
    py::array_t<T> res({static_cast<py::ssize_t>(n_leads), static_cast<py::ssize_t>(kept.size()),
                        static_cast<py::ssize_t>(before + 1 + after)});
    const T* src = a.data();
    T* dst = res.mutable_data();
    {
      py::gil_scoped_release release;
      ecgcore::segment_beats<T>(src, n_leads, n, r_peaks.data(), kept.data(), static_cast<int64_t>(kept.size()),
                                before, after, static_cast<T>(pad_value), dst, workers);
    }
    return std::move(res);
  });
  return py::make_tuple(out, kept_arr);
}

py::object windows(const py::array& x, int64_t size, int64_t step, int workers) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be a 2-D [batch, n_samples] array");
  const int64_t batch = x.shape(0), n = x.shape(1);
  const int64_t m = ecgcore::n_windows(n, size, step);
  return with_float(x, [&](auto& a, auto tag) -> py::object {
    using T = decltype(tag);
    py::array_t<T> res({static_cast<py::ssize_t>(batch), static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(size)});
    const T* src = a.data();
    T* dst = res.mutable_data();
    {
      py::gil_scoped_release release;
      ecgcore::segment_windows<T>(src, batch, n, size, step, dst, workers);
    }
    return std::move(res);
  });
}

py::array_t<double> rr(const carray<int64_t>& r_peaks, double fs, int64_t local_beats) {
  if (r_peaks.ndim() != 1) throw std::invalid_argument("r_peaks must be a 1-D array of sample indices");
  const auto n = static_cast<py::ssize_t>(r_peaks.size());
  py::array_t<double> out({n, static_cast<py::ssize_t>(4)});
  const int64_t* p = r_peaks.data();
  double* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    ecgcore::rr_features(p, n, fs, local_beats, o);
  }
  return out;
}

}  // namespace

void register_segment(py::module_& m) {
  m.def("segment_beats", &beats, py::arg("x"), py::arg("r_peaks"), py::arg("before") = 93,
        py::arg("after") = 93, py::arg("edge") = "drop", py::arg("pad_value") = 0.0, py::arg("workers") = 0,
        R"doc(Fixed windows around R-peaks shared by all leads.

Parameters
----------
x : ndarray, shape (n_leads, n_samples), float32 or float64
r_peaks : int64 ndarray, shape (n_peaks,)
before, after : int
    Samples before and after the R sample (window length before + 1 + after).
edge : {"drop", "pad"}
pad_value : float
workers : int
    0 means all cores.

Returns
-------
(beats (n_leads, n_kept, before + 1 + after), kept (n_kept,) int64 indices into r_peaks)
)doc");
  m.def("segment_windows", &windows, py::arg("x"), py::arg("size"), py::arg("step"), py::arg("workers") = 0,
        R"doc(Sliding windows over the rows of a [batch, n_samples] array.

Returns
-------
ndarray, shape (batch, n_windows, size); window k starts at k * step.
)doc");
  m.def("rr_features", &rr, py::arg("r_peaks"), py::arg("fs"), py::arg("local_beats") = 10,
        R"doc(RR-interval features of strictly increasing R-peaks.

Returns
-------
ndarray, shape (n_peaks, 4), seconds: pre-RR, post-RR, local RR, record-average RR.
)doc");
}
