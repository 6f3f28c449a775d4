// Bindings for cpp/include/ecgcore/wfdb.hpp. Python parses headers and checks files; C++ maps and decodes.
#include "ecgcore/wfdb.hpp"

#include <optional>
#include <type_traits>

#include "common.hpp"

namespace {

using namespace ecgcore;

// Returns the row stride (elements) of out.
int64_t check_out(py::array& out, int64_t n_frames, const std::vector<int>& chan,
                  const std::optional<std::vector<int>>& col) {
  if (out.ndim() != 2 || out.shape(0) != n_frames || !(out.flags() & py::array::c_style) || !out.writeable())
    throw std::invalid_argument("internal: out must be a writeable C-contiguous [n_frames, columns] array");
  if (col ? col->size() != chan.size() : out.shape(1) < static_cast<py::ssize_t>(chan.size()))
    throw std::invalid_argument("internal: one output column per selected channel");
  return static_cast<int64_t>(out.shape(1));
}

struct Conversion {
  const double* gain = nullptr;
  const double* baseline = nullptr;
};

Conversion check_conversion(const std::vector<int>& chan, const std::optional<std::vector<double>>& gain,
                            const std::optional<std::vector<double>>& baseline) {
  if (!gain || !baseline || gain->size() != chan.size() || baseline->size() != chan.size())
    throw std::invalid_argument("internal: physical output needs one gain and baseline per selected channel");
  return Conversion{gain->data(), baseline->data()};
}

// Calls digital(T*) for integer output (digital samples) or physical(T*, Conversion) for float output, with the
// GIL released.
template <class Digital, class Physical>
void decode_into(py::array& out, const std::vector<int>& chan, const std::optional<std::vector<double>>& gain,
                 const std::optional<std::vector<double>>& baseline, Digital digital, Physical physical) {
  ecgcore_py::dispatch_dtype<int16_t, int32_t, int64_t, float, double>(
      out,
      [&](auto tag) {
        using T = decltype(tag);
        T* p = static_cast<T*>(out.mutable_data());
        if constexpr (std::is_integral_v<T>) {
          py::gil_scoped_release release;
          digital(p);
        } else {
          const Conversion cv = check_conversion(chan, gain, baseline);
          py::gil_scoped_release release;
          physical(p, cv);
        }
      },
      "internal: out must be int16, int32, int64, float32 or float64");
}

}  // namespace

void register_wfdb(py::module_& m) {
  m.def("wfdb_format_supported", &wfdb_format_supported, py::arg("fmt"));
  m.def("wfdb_bytes_needed", &wfdb_bytes_needed, py::arg("fmt"), py::arg("n_samples"));
  m.def("wfdb_samples_available", &wfdb_samples_available, py::arg("fmt"), py::arg("n_bytes"));
  m.def("wfdb_invalid_value", &wfdb_invalid_value, py::arg("fmt"));
  m.def(
      "wfdb_read",
      [](const std::string& path, int64_t byte_offset, int fmt, int n_sig, int64_t frame0, int64_t n_frames,
         const std::vector<int>& chan, py::array out, int workers, std::optional<std::vector<int>> col,
         std::optional<std::vector<double>> gain, std::optional<std::vector<double>> baseline) {
        const int64_t stride = check_out(out, n_frames, chan, col);
        const int* c = col ? col->data() : nullptr;
        const int n_out = static_cast<int>(chan.size());
        decode_into(
            out, chan, gain, baseline,
            [&](auto* p) {
              wfdb_read_file(path, byte_offset, fmt, n_sig, frame0, n_frames, chan.data(), n_out, p, stride, workers,
                             c);
            },
            [&](auto* p, const Conversion& cv) {
              wfdb_read_file_physical(path, byte_offset, fmt, n_sig, frame0, n_frames, chan.data(), n_out,
                                      cv.gain, cv.baseline, p, stride, workers, c);
            });
      },
      py::arg("path"), py::arg("byte_offset"), py::arg("fmt"), py::arg("n_sig"), py::arg("frame0"),
      py::arg("n_frames"), py::arg("chan"), py::arg("out"), py::arg("workers"), py::arg("col") = py::none(),
      py::arg("gain") = py::none(), py::arg("baseline") = py::none(),
      "Read frames [frame0, frame0 + n_frames) of a WFDB signal file (samples from byte_offset on): selected "
      "signal chan[k] goes to out[:, col[k]] (default k). Integer out: digital samples; float out: physical "
      "(d - baseline[k]) / gain[k]. Only the bytes those frames occupy are read (memory-mapped).");
  m.def(
      "wfdb_decode",
      [](py::buffer data, int fmt, int n_sig, int64_t frame0, int64_t n_frames, const std::vector<int>& chan,
         py::array out, int workers, std::optional<std::vector<int>> col, std::optional<std::vector<double>> gain,
         std::optional<std::vector<double>> baseline) {
        py::buffer_info info = data.request();
        if (info.itemsize != 1) throw std::invalid_argument("internal: data must be a byte buffer");
        const int64_t stride = check_out(out, n_frames, chan, col);
        const auto* d = static_cast<const uint8_t*>(info.ptr);
        const int64_t nb = info.size;
        const int* c = col ? col->data() : nullptr;
        const int n_out = static_cast<int>(chan.size());
        decode_into(
            out, chan, gain, baseline,
            [&](auto* p) { wfdb_decode(d, nb, fmt, n_sig, frame0, n_frames, chan.data(), n_out, p, stride, workers, c); },
            [&](auto* p, const Conversion& cv) {
              wfdb_decode_physical(d, nb, fmt, n_sig, frame0, n_frames, chan.data(), n_out, cv.gain, cv.baseline, p,
                                   stride, workers, c);
            });
      },
      py::arg("data"), py::arg("fmt"), py::arg("n_sig"), py::arg("frame0"), py::arg("n_frames"), py::arg("chan"),
      py::arg("out"), py::arg("workers"), py::arg("col") = py::none(), py::arg("gain") = py::none(),
      py::arg("baseline") = py::none(),
      "Decode multiplexed WFDB samples (formats 212, 16, 61, 80) held in a byte buffer; same rules as wfdb_read.");
}
