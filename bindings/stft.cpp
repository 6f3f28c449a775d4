// Bindings for cpp/include/ecgcore/stft.hpp (not implemented yet).
#include "common.hpp"

void register_stft(py::module_& m) { (void)m; }
