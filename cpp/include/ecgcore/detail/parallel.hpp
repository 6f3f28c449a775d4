// Thread-count policy shared by every kernel.
#pragma once
#include <cstdint>

namespace ecgcore {

// n_threads <= 0 means "all available" (omp_get_max_threads()); never more threads than work items.
int resolve_threads(int n_threads, int64_t work_items);

}  // namespace ecgcore
