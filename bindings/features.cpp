// Bindings for cpp/include/ecgcore/features.hpp.
#include "ecgcore/features.hpp"

#include "common.hpp"

namespace {

using ecgcore_py::carray;

py::array shard_statistics(const py::array& x_in, int workers) {
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto in = ecgcore_py::rows_input<T>(x_in);
    const carray<T>& x = in.x;
    const auto r = in.rows;
    auto shape = in.shape;
    shape.back() = static_cast<py::ssize_t>(ecgcore::kShardStatistics);
    py::array_t<T> out(shape);
    const T* xp = x.data();
    T* op = out.mutable_data();
    py::gil_scoped_release release;
    ecgcore::shard_statistics<T>(xp, r.batch, r.n, op, workers);
    return std::move(out);
  };
  // float32 stays float32 (arithmetic is float64 inside), everything else float64.
  return ecgcore_py::dispatch_dtype<float, double>(x_in, run);
}

}  // namespace

void register_features(py::module_& m) {
  m.def("shard_statistics", &shard_statistics, py::arg("x"), py::arg("workers") = 0,
        R"doc(The 16 HuBERT-ECG time-frequency statistics of each row.

Parameters
----------
x : (..., n) float32 or float64 segments
workers : threads (<= 0: all cores)

Returns
-------
(..., 16): min, max, mean, RMS, variance, std, power, peak, peak-to-peak, crest factor, skewness, kurtosis,
then max, sum, mean and variance of |FFT(x)|^2 / n.)doc");
}
