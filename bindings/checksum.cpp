// Bindings for cpp/include/ecgcore/checksum.hpp.
#include "ecgcore/checksum.hpp"

#include "common.hpp"

void register_checksum(py::module_& m) {
  m.def(
      "crc32c",
      [](py::buffer data, bool masked) {
        py::buffer_info info = data.request();
        const auto* p = static_cast<const uint8_t*>(info.ptr);
        const size_t n = static_cast<size_t>(info.size * info.itemsize);
        uint32_t out;
        {
          py::gil_scoped_release release;
          out = masked ? ecgcore::masked_crc32c(p, n) : ecgcore::crc32c(p, n);
        }
        return out;
      },
      py::arg("data"), py::arg("masked") = false,
      "CRC-32C of a contiguous buffer (masked=True: TFRecord's masked form).");
}
