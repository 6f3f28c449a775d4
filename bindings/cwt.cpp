// Bindings for cpp/include/ecgcore/cwt.hpp (not implemented yet).
#include "common.hpp"

void register_cwt(py::module_& m) { (void)m; }
