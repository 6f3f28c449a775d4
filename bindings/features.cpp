// Bindings for cpp/include/ecgcore/features.hpp (not implemented yet).
#include "common.hpp"

void register_features(py::module_& m) { (void)m; }
