// Bindings for cpp/include/ecgcore/fft.hpp (not implemented yet).
#include "common.hpp"

void register_fft(py::module_& m) { (void)m; }
