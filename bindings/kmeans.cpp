// Bindings for cpp/include/ecgcore/kmeans.hpp (not implemented yet).
#include "common.hpp"

void register_kmeans(py::module_& m) { (void)m; }
