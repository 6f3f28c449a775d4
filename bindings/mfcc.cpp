// Bindings for cpp/include/ecgcore/mfcc.hpp (not implemented yet).
#include "common.hpp"

void register_mfcc(py::module_& m) { (void)m; }
