// Bindings for cpp/include/ecgcore/segment.hpp (not implemented yet).
#include "common.hpp"

void register_segment(py::module_& m) { (void)m; }
