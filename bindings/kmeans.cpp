// Bindings for cpp/include/ecgcore/kmeans.hpp: the k-means kernels.
// Rows are the last axis: X is (n_rows, n_features). float32 stays float32, anything else is float64.
#include "ecgcore/kmeans.hpp"

#include <utility>

#include "common.hpp"

namespace {

using ecgcore_py::carray;
using ecgcore_py::dispatch_dtype;
using ecgcore_py::matrix;

template <class T>
carray<T> centers_for(const py::array& c, int64_t d) {
  carray<T> m = matrix<T>(c, "centers");
  if (m.shape(1) != d)
    throw std::invalid_argument("centers have " + std::to_string(m.shape(1)) + " features but X has " +
                                std::to_string(d));
  return m;
}

py::tuple plusplus(const py::array& x, int64_t k, uint64_t seed, int n_local_trials, int workers) {
  return dispatch_dtype<float, double>(x, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    carray<T> X = matrix<T>(x, "X");
    const int64_t n = X.shape(0), d = X.shape(1);
    carray<T> centers({static_cast<py::ssize_t>(std::max<int64_t>(k, 0)), static_cast<py::ssize_t>(d)});
    carray<int64_t> idx(static_cast<py::ssize_t>(std::max<int64_t>(k, 0)));
    {
      py::gil_scoped_release release;
      ecgcore::kmeans_plusplus<T>(X.data(), n, d, k, seed, n_local_trials, centers.mutable_data(),
                                  idx.mutable_data(), workers);
    }
    return py::make_tuple(centers, idx);
  });
}

py::tuple lloyd(const py::array& x, const py::array& init, int max_iter, double tol, int workers) {
  return dispatch_dtype<float, double>(x, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    carray<T> X = matrix<T>(x, "X");
    const int64_t n = X.shape(0), d = X.shape(1);
    carray<T> c0 = centers_for<T>(init, d);
    const int64_t k = c0.shape(0);
    carray<T> centers({static_cast<py::ssize_t>(k), static_cast<py::ssize_t>(d)});
    std::copy(c0.data(), c0.data() + k * d, centers.mutable_data());
    carray<int32_t> labels(static_cast<py::ssize_t>(n));
    ecgcore::KMeansFit fit;
    {
      py::gil_scoped_release release;
      fit = ecgcore::kmeans_lloyd<T>(X.data(), n, d, k, centers.mutable_data(), labels.mutable_data(), max_iter,
                                     tol, workers);
    }
    return py::make_tuple(centers, labels, fit.inertia, fit.n_iter);
  });
}

py::tuple assign(const py::array& x, const py::array& c, int workers) {
  return dispatch_dtype<float, double>(x, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    carray<T> X = matrix<T>(x, "X");
    const int64_t n = X.shape(0), d = X.shape(1);
    carray<T> C = centers_for<T>(c, d);
    carray<int32_t> labels(static_cast<py::ssize_t>(n));
    double inertia;
    {
      py::gil_scoped_release release;
      inertia = ecgcore::kmeans_assign<T>(X.data(), n, d, C.data(), C.shape(0), labels.mutable_data(), workers);
    }
    return py::make_tuple(labels, inertia);
  });
}

py::array distances(const py::array& x, const py::array& c, bool squared, int workers) {
  return dispatch_dtype<float, double>(x, [&](auto tag) -> py::array {
    using T = decltype(tag);
    carray<T> X = matrix<T>(x, "X");
    const int64_t n = X.shape(0), d = X.shape(1);
    carray<T> C = centers_for<T>(c, d);
    carray<T> out({static_cast<py::ssize_t>(n), C.shape(0)});
    {
      py::gil_scoped_release release;
      ecgcore::kmeans_distances<T>(X.data(), n, d, C.data(), C.shape(0), out.mutable_data(), squared, workers);
    }
    return out;
  });
}

py::tuple minibatch(const py::array& x, const py::array& c, const py::array& counts, int workers) {
  return dispatch_dtype<float, double>(x, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    carray<T> X = matrix<T>(x, "X");
    const int64_t n = X.shape(0), d = X.shape(1);
    carray<T> c0 = centers_for<T>(c, d);
    const int64_t k = c0.shape(0);
    carray<double> n0 = carray<double>::ensure(counts);
    if (!n0 || n0.ndim() != 1 || n0.shape(0) != k)
      throw std::invalid_argument("counts must be a 1-D array with one entry per center (" + std::to_string(k) + ")");
    carray<T> centers({static_cast<py::ssize_t>(k), static_cast<py::ssize_t>(d)});
    std::copy(c0.data(), c0.data() + k * d, centers.mutable_data());
    carray<double> cnt(static_cast<py::ssize_t>(k));
    std::copy(n0.data(), n0.data() + k, cnt.mutable_data());
    carray<int32_t> labels(static_cast<py::ssize_t>(n));
    double inertia;
    {
      py::gil_scoped_release release;
      inertia = ecgcore::kmeans_minibatch_update<T>(X.data(), n, d, centers.mutable_data(), k, cnt.mutable_data(),
                                                    labels.mutable_data(), workers);
    }
    return py::make_tuple(centers, cnt, labels, inertia);
  });
}

py::array normalize(const py::array& x, int workers) {
  return dispatch_dtype<float, double>(x, [&](auto tag) -> py::array {
    using T = decltype(tag);
    carray<T> X = matrix<T>(x, "X");
    carray<T> out({X.shape(0), X.shape(1)});
    {
      py::gil_scoped_release release;
      ecgcore::l2_normalize_rows<T>(X.data(), X.shape(0), X.shape(1), out.mutable_data(), workers);
    }
    return out;
  });
}

}  // namespace

void register_kmeans(py::module_& m) {
  m.def("kmeans_plusplus", &plusplus, py::arg("x"), py::arg("n_clusters"), py::arg("seed"),
        py::arg("n_local_trials") = 0, py::arg("workers") = 0,
        R"doc(Greedy k-means++ seeding.

Parameters
----------
x : ndarray, shape (n_rows, n_features), float32 or float64
n_clusters : int
seed : int
    Seed of the generator (xoshiro256**); same seed -> same centers on any thread count.
n_local_trials : int
    Candidates per new center; 0 means 2 + floor(ln k).
workers : int
    OpenMP threads, 0 = all.

Returns
-------
centers : ndarray, shape (n_clusters, n_features), dtype of x
indices : ndarray of int64, shape (n_clusters,)
)doc");
  m.def("kmeans_lloyd", &lloyd, py::arg("x"), py::arg("init"), py::arg("max_iter") = 300, py::arg("tol") = 1e-4,
        py::arg("workers") = 0,
        R"doc(Lloyd k-means from the given initial centers (scikit-learn's stopping rules).

Parameters
----------
x : ndarray, shape (n_rows, n_features)
init : ndarray, shape (n_clusters, n_features)
max_iter : int
tol : float
    Relative to mean(var(x, axis=0)).
workers : int

Returns
-------
centers : ndarray, shape (n_clusters, n_features)
labels : ndarray of int32, shape (n_rows,)
inertia : float
n_iter : int
)doc");
  m.def("kmeans_assign", &assign, py::arg("x"), py::arg("centers"), py::arg("workers") = 0,
        R"doc(Nearest center of each row and the inertia.

Returns
-------
labels : ndarray of int32, shape (n_rows,)
inertia : float
)doc");
  m.def("kmeans_distances", &distances, py::arg("x"), py::arg("centers"), py::arg("squared") = false,
        py::arg("workers") = 0,
        R"doc(Euclidean (or squared) distances of every row to every center, shape (n_rows, n_clusters).)doc");
  m.def("kmeans_minibatch_update", &minibatch, py::arg("x"), py::arg("centers"), py::arg("counts"),
        py::arg("workers") = 0,
        R"doc(One mini-batch k-means step (no random reassignment).

Returns
-------
centers : ndarray, shape (n_clusters, n_features), updated copy
counts : ndarray of float64, shape (n_clusters,), updated copy
labels : ndarray of int32, shape (n_rows,), assignments before the update
inertia : float, batch inertia before the update
)doc");
  m.def("l2_normalize_rows", &normalize, py::arg("x"), py::arg("workers") = 0,
        R"doc(Rows divided by their L2 norm (all-zero rows stay zero), shape of x.)doc");
}
