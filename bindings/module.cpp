// ecgcore._core: the private native module. One register_* per C++ domain header.
#include "common.hpp"
#include "ecgcore/detail/simd.hpp"

#ifndef ECGCORE_VERSION
#define ECGCORE_VERSION "unknown"
#endif

void register_filter(py::module_& m);
void register_wfdb(py::module_& m);
void register_peaks(py::module_& m);
void register_segment(py::module_& m);
void register_fft(py::module_& m);
void register_cwt(py::module_& m);
void register_stft(py::module_& m);
void register_mfcc(py::module_& m);
void register_features(py::module_& m);
void register_kmeans(py::module_& m);
void register_cluster_scores(py::module_& m);
void register_checksum(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "ecgcore native core (private; use the ecgcore package API)";
  m.attr("__version__") = ECGCORE_VERSION;
  m.def("simd_path", &ecgcore::simd_path,
        "Which build of the vectorised kernels runs here: 'avx2' (AVX2+FMA) or 'baseline' (x86-64-v2); "
        "ECGCORE_SIMD=baseline in the environment forces the baseline.");
  register_filter(m);
  register_wfdb(m);
  register_peaks(m);
  register_segment(m);
  register_fft(m);
  register_cwt(m);
  register_stft(m);
  register_mfcc(m);
  register_features(m);
  register_kmeans(m);
  register_cluster_scores(m);
  register_checksum(m);
}
