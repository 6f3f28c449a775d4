// Bindings for cpp/include/ecgcore/cluster_scores.hpp: clustering quality scores of labelled rows.
// X is (n_rows, n_features); float32 stays float32, anything else is float64. Labels come encoded
// 0..n_labels-1 as int64 (the Python layer encodes them).
#include "ecgcore/cluster_scores.hpp"

#include "common.hpp"

namespace {

using ecgcore_py::carray;
using ecgcore_py::dispatch_dtype;
using ecgcore_py::matrix;

carray<int64_t> labels_for(const py::array& l, int64_t n) {
  carray<int64_t> lab = carray<int64_t>::ensure(l);
  if (!lab || lab.ndim() != 1 || lab.shape(0) != n)
    throw std::invalid_argument("labels must be a 1-D array with one entry per row of X (" + std::to_string(n) + ")");
  return lab;
}

template <class Kernel>
double score(const py::array& x, const py::array& l, int64_t n_labels, int workers, Kernel kernel) {
  return dispatch_dtype<float, double>(x, [&](auto tag) -> double {
    using T = decltype(tag);
    carray<T> X = matrix<T>(x, "X");
    carray<int64_t> lab = labels_for(l, X.shape(0));
    py::gil_scoped_release release;
    return kernel(tag, X.data(), X.shape(0), X.shape(1), lab.data(), n_labels, workers);
  });
}

}  // namespace

void register_cluster_scores(py::module_& m) {
  m.def(
      "davies_bouldin",
      [](const py::array& x, const py::array& labels, int64_t n_labels, int workers) {
        return score(x, labels, n_labels, workers,
                     [](auto tag, auto... a) { return ecgcore::davies_bouldin<decltype(tag)>(a...); });
      },
      py::arg("x"), py::arg("labels"), py::arg("n_labels"), py::arg("workers") = 0,
      R"doc(Davies-Bouldin index; labels encoded 0..n_labels-1 (int64).)doc");
  m.def(
      "calinski_harabasz",
      [](const py::array& x, const py::array& labels, int64_t n_labels, int workers) {
        return score(x, labels, n_labels, workers,
                     [](auto tag, auto... a) { return ecgcore::calinski_harabasz<decltype(tag)>(a...); });
      },
      py::arg("x"), py::arg("labels"), py::arg("n_labels"), py::arg("workers") = 0,
      R"doc(Calinski-Harabasz index; labels encoded 0..n_labels-1 (int64).)doc");
  m.def(
      "silhouette_samples",
      [](const py::array& x, const py::array& labels, int64_t n_labels, int workers) {
        return dispatch_dtype<float, double>(x, [&](auto tag) -> py::array {
          using T = decltype(tag);
          carray<T> X = matrix<T>(x, "X");
          carray<int64_t> lab = labels_for(labels, X.shape(0));
          carray<double> out(X.shape(0));
          {
            py::gil_scoped_release release;
            ecgcore::silhouette_samples<T>(X.data(), X.shape(0), X.shape(1), lab.data(), n_labels, out.mutable_data(),
                                           workers);
          }
          return out;
        });
      },
      py::arg("x"), py::arg("labels"), py::arg("n_labels"), py::arg("workers") = 0,
      R"doc(Silhouette coefficient of every row (float64, shape (n_rows,)); O(n_rows^2).)doc");
}
