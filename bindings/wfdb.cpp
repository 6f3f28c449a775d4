// Bindings for cpp/include/ecgcore/wfdb.hpp (not implemented yet).
#include "common.hpp"

void register_wfdb(py::module_& m) { (void)m; }
