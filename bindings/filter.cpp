// Bindings for cpp/include/ecgcore/filter.hpp (not implemented yet).
#include "common.hpp"

void register_filter(py::module_& m) { (void)m; }
