#include "ecgcore/features.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ecgcore/fft.hpp"
#include "ecgcore/detail/parallel.hpp"

namespace ecgcore {

template <class T>
void shard_statistics(const T* x, int64_t batch, int64_t n, T* out, int n_threads) {
  if (n < 1) throw std::invalid_argument("cannot compute statistics of empty segments");
  RealFftPlan plan(n);
  const int64_t nb = plan.n_bins();
  const int threads = resolve_threads(n_threads, batch);
  const double dn = static_cast<double>(n);
#pragma omp parallel num_threads(threads)
  {
    std::vector<double> v(n);
    std::vector<cplx> spec(nb), scratch(plan.scratch_size());
    std::vector<double> s(n);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      const T* row = x + b * n;
      double mn = static_cast<double>(row[0]), mx = mn, sum = 0.0, sq = 0.0, peak = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const double a = static_cast<double>(row[j]);
        v[j] = a;
        mn = std::min(mn, a);
        mx = std::max(mx, a);
        sum += a;
        sq += a * a;
        peak = std::max(peak, std::fabs(a));
      }
      const double mean = sum / dn;
      double m2 = 0.0, m3 = 0.0, m4 = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const double d = v[j] - mean;
        const double d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
      }
      m2 /= dn;
      m3 /= dn;
      m4 /= dn;
      const double power = sq / dn, rms = std::sqrt(power);
      plan.forward(v.data(), spec.data(), scratch.data());
      // Two-sided power spectrum: bin k and n - k carry the same |X|^2.
      for (int64_t k = 0; k < nb; ++k) {
        const double p = (spec[k].real() * spec[k].real() + spec[k].imag() * spec[k].imag()) / dn;
        s[k] = p;
        if (k > 0 && n - k != k && n - k < n) s[n - k] = p;
      }
      double smax = s[0], ssum = 0.0;
      for (int64_t k = 0; k < n; ++k) {
        smax = std::max(smax, s[k]);
        ssum += s[k];
      }
      const double smean = ssum / dn;
      double svar = 0.0;
      for (int64_t k = 0; k < n; ++k) svar += (s[k] - smean) * (s[k] - smean);
      svar /= dn;
      const double stats[kShardStatistics] = {mn,
                                              mx,
                                              mean,
                                              rms,
                                              m2,
                                              std::sqrt(m2),
                                              power,
                                              peak,
                                              mx - mn,
                                              rms > 0.0 ? peak / rms : 0.0,
                                              m2 > 0.0 ? m3 / std::pow(m2, 1.5) : 0.0,
                                              m2 > 0.0 ? m4 / (m2 * m2) - 3.0 : 0.0,
                                              smax,
                                              ssum,
                                              smean,
                                              svar};
      T* o = out + b * kShardStatistics;
      for (int64_t i = 0; i < kShardStatistics; ++i) o[i] = static_cast<T>(stats[i]);
    }
  }
}

template void shard_statistics<float>(const float*, int64_t, int64_t, float*, int);
template void shard_statistics<double>(const double*, int64_t, int64_t, double*, int);

}  // namespace ecgcore
