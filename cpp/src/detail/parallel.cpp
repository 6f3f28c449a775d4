#include "ecgcore/detail/parallel.hpp"

#include <omp.h>

#include <algorithm>

namespace ecgcore {

int resolve_threads(int n_threads, int64_t work_items) {
  int t = n_threads > 0 ? n_threads : omp_get_max_threads();
  if (work_items < 1) work_items = 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(t, work_items)));
}

}  // namespace ecgcore
