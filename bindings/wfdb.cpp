// Bindings for cpp/include/ecgcore/wfdb.hpp. The Python layer reads files; C++ only decodes bytes.
#include "ecgcore/wfdb.hpp"

#include "common.hpp"

void register_wfdb(py::module_& m) {
  using namespace ecgcore;
  m.def("wfdb_format_supported", &wfdb_format_supported, py::arg("fmt"));
  m.def("wfdb_bytes_needed", &wfdb_bytes_needed, py::arg("fmt"), py::arg("n_samples"));
  m.def("wfdb_samples_available", &wfdb_samples_available, py::arg("fmt"), py::arg("n_bytes"));
  m.def("wfdb_invalid_value", &wfdb_invalid_value, py::arg("fmt"));
  m.def(
      "wfdb_decode",
      [](py::buffer data_buf, int fmt, int n_sig, int64_t frame0, int64_t n_frames, std::vector<int> chan,
         py::array_t<int32_t, py::array::c_style> out, int workers) {
        py::buffer_info info = data_buf.request();
        if (info.itemsize != 1) throw std::invalid_argument("internal: data must be a byte buffer");
        if (out.ndim() != 2 || out.shape(0) != n_frames || out.shape(1) < static_cast<py::ssize_t>(chan.size()))
          throw std::invalid_argument("internal: output must be [n_frames, >= n_channels] int32");
        const auto* p = static_cast<const uint8_t*>(info.ptr);
        const int64_t nb = info.size;
        int32_t* o = out.mutable_data();
        const int64_t stride = out.shape(1);
        py::gil_scoped_release release;
        wfdb_decode(p, nb, fmt, n_sig, frame0, n_frames, chan.data(), static_cast<int>(chan.size()), o, stride,
                    workers);
      },
      py::arg("data"), py::arg("fmt"), py::arg("n_sig"), py::arg("frame0"), py::arg("n_frames"), py::arg("chan"),
      py::arg("out"), py::arg("workers"),
      "Decode multiplexed WFDB samples (formats 212, 16, 61, 80) into out[:, :len(chan)].");
  m.def(
      "wfdb_decode_physical",
      [](py::buffer data, int fmt, int n_sig, int64_t frame0, int64_t n_frames, std::vector<int> chan,
         std::vector<double> gain, std::vector<double> baseline, py::array out, int workers) {
        py::buffer_info info = data.request();
        if (info.itemsize != 1) throw std::invalid_argument("internal: data must be a byte buffer");
        if (out.ndim() != 2 || out.shape(0) != n_frames || out.shape(1) < static_cast<py::ssize_t>(chan.size()) ||
            !(out.flags() & py::array::c_style) || !out.writeable())
          throw std::invalid_argument("internal: out must be a writeable C-contiguous [n_frames, >= n_channels] array");
        if (gain.size() != chan.size() || baseline.size() != chan.size())
          throw std::invalid_argument("internal: one gain and baseline per selected channel");
        const auto* p = static_cast<const uint8_t*>(info.ptr);
        const int64_t nb = info.size;
        const int64_t stride = out.shape(1);
        if (ecgcore_py::is_float32(out)) {
          float* o = static_cast<float*>(out.mutable_data());
          py::gil_scoped_release release;
          wfdb_decode_physical<float>(p, nb, fmt, n_sig, frame0, n_frames, chan.data(), static_cast<int>(chan.size()),
                                      gain.data(), baseline.data(), o, stride, workers);
        } else if (out.dtype().is(py::dtype::of<double>())) {
          double* o = static_cast<double*>(out.mutable_data());
          py::gil_scoped_release release;
          wfdb_decode_physical<double>(p, nb, fmt, n_sig, frame0, n_frames, chan.data(),
                                       static_cast<int>(chan.size()), gain.data(), baseline.data(), o, stride, workers);
        } else {
          throw std::invalid_argument("internal: out must be float32 or float64");
        }
      },
      py::arg("data"), py::arg("fmt"), py::arg("n_sig"), py::arg("frame0"), py::arg("n_frames"), py::arg("chan"),
      py::arg("gain"), py::arg("baseline"), py::arg("out"), py::arg("workers"),
      "Decode multiplexed WFDB samples straight to physical units into out[:, :len(chan)].");
}
