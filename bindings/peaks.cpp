// Bindings for cpp/include/ecgcore/peaks.hpp (not implemented yet).
#include "common.hpp"

void register_peaks(py::module_& m) { (void)m; }
