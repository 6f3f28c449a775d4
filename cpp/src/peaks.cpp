#include "ecgcore/peaks.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "ecgcore/detail/parallel.hpp"
#include "ecgcore/detail/simd.hpp"
#include "ecgcore/filter_design.hpp"
#include "ecgcore/filter_sos.hpp"

namespace ecgcore {

namespace {

int64_t samples(double seconds, double fs) { return std::max<int64_t>(1, std::llround(seconds * fs)); }

std::vector<double> band_sos(double low, double high, double fs) {
  high = std::min(high, 0.45 * fs);
  const Zpk zpk = iir_zpk(butter_prototype(2), {low, high}, BandType::bandpass, fs);
  return zpk_to_sos(zpk);
}

// Zero-phase filtering of one row; one second of odd reflection at each end keeps the start-up
// transient of the high-pass edge out of the record.
void zero_phase(const std::vector<double>& sos, const double* x, int64_t n, std::vector<double>& y, double fs) {
  const int ns = static_cast<int>(sos.size() / 6);
  const int64_t padlen = std::min<int64_t>(n - 1, samples(1.0, fs));
  y.resize(static_cast<size_t>(n));
  sosfiltfilt<double>(sos.data(), ns, RowsView<const double>{x, 1, n, n, 1}, RowsView<double>{y.data(), 1, n, n, 1},
                      PadType::odd, padlen, 1);
}

// Both detection band-passes of one row at once, zero-phase, in float32: lanes 0-3 of an 8-float vector run band
// 1's cascade and lanes 4-7 band 2's, each band on four overlapping stretches of the (odd-extended) row, so one
// AVX2 instruction advances eight recursions (the double cascade advances four; the recursion is bound by
// arithmetic throughput, so this halves the filters' cost, the largest stage of the detector). Float is ample
// here: the outputs only rank and threshold slope energies; they are scipy's to within 7e-7 of their peak value at
// the detection rates and 5e-6 at 360 Hz (tests/dsp/test_peaks.py), and the detections on MIT-BIH and its
// noise-stress records are the double path's.
//
// Layout: every lane covers S consecutive samples of the extended row e[0, N), S = ceil((N + 6 warm) / 4):
// lane 0 [0, S), lanes 1-2 [b_l - warm, b_l - warm + S), lane 3 [N - S, N), owning [b_l, b_{l+1}) with
// b_1 = S - warm, b_2 = b_1 + S - 2 warm, b_3 = N - S + warm. The forward pass runs left to right (lane 0 from
// scipy's exact initial state, the others from a start whose error has decayed below 1e-12 after the warm samples
// before b_l); the backward pass runs right to left on the forward outputs in place (lane 3 from scipy's exact
// zi * y[N - 1]; the others' start decays over the warm samples after their b_{l+1}). Each lane's own samples are
// then exact to float rounding. The forward pass works on the row's differences (see zero_phase_pair), so float
// rounds the signal's changes, never its offset.
struct PairLayout {
  int64_t S = 0, warm = 0, lo[4] = {0, 0, 0, 0}, own[5] = {0, 0, 0, 0, 0};
  int dc_section[2] = {-1, -1};  // per band, a section with a zero at z = 1
};

// The layout for a row of N extended samples, or S = 0 when the pair path does not apply (a short row, or a
// cascade whose poles are too near the unit circle for float: see below).
PairLayout pair_layout(const std::vector<double>& sos1, const std::vector<double>& sos2, int64_t N) {
  PairLayout L;
  if (sos1.size() != 12 || sos2.size() != 12) return L;  // two sections each (order-2 Butterworth band-passes)
  // a section with a zero at z = 1 (b0 + b1 + b2 = 0) in each cascade, for zero_phase_pair's forward pass
  const std::vector<double>* qs[2] = {&sos1, &sos2};
  for (int b = 0; b < 2; ++b) {
    const std::vector<double>& q = *qs[b];
    L.dc_section[b] = -1;
    for (int s = 1; s >= 0; --s)
      if (std::fabs(q[6 * s] + q[6 * s + 1] + q[6 * s + 2]) <= 1e-12 * (std::fabs(q[6 * s]) + std::fabs(q[6 * s + 2])))
        L.dc_section[b] = s;
    if (L.dc_section[b] < 0) return L;
  }
  const double r = std::max(sos_pole_radius(sos1.data(), 2), sos_pole_radius(sos2.data(), 2));
  // Float rounding in the recursion grows as 1 / (1 - r): the default bands at the detection rates (r <= 0.95) and at
  // 360 Hz (0.964) stay within 5e-6 of the output's peak; narrower or lower bands at high rates keep the double path.
  if (!(r <= 0.97)) return L;
  // r^w <= 1e-12: far below float rounding (6e-8)
  const int64_t warm = r < 1e-3 ? 16 : static_cast<int64_t>(std::ceil(std::log(1e-12) / std::log(r))) + 16;
  if (N < 4 * 3 * warm || N < 4096) return L;
  L.warm = warm;
  L.S = (N + 6 * warm + 3) / 4;
  L.own[0] = 0;
  L.own[1] = L.S - warm;
  L.own[2] = L.own[1] + L.S - 2 * warm;
  L.own[3] = N - L.S + warm;
  L.own[4] = N;
  L.lo[0] = 0;
  L.lo[1] = L.own[1] - warm;
  L.lo[2] = L.own[2] - warm;
  L.lo[3] = N - L.S;
  return L;
}

// One pass of the 8-lane cascade over B[0, S): forward (left to right) or backward (in place).
ECGCORE_INLINE void pair_pass_impl(const v8f* co, float* B, int64_t S, bool backward) {
  // co: per section s, {b0, b1, b2, a1, a2} as lane vectors (5 * 2 vectors), then the initial state's zi as
  // {zi0, zi1} per section (lane vectors, 2 * 2), multiplied here by the first sample of each lane's pass.
  v8f b0[2], b1[2], b2[2], a1[2], a2[2], z0[2], z1[2];
  v8f first;
  std::memcpy(&first, B + 8 * (backward ? S - 1 : 0), sizeof first);
  for (int s = 0; s < 2; ++s) {
    b0[s] = co[5 * s];
    b1[s] = co[5 * s + 1];
    b2[s] = co[5 * s + 2];
    a1[s] = co[5 * s + 3];
    a2[s] = co[5 * s + 4];
    z0[s] = co[10 + 2 * s] * first;
    z1[s] = co[10 + 2 * s + 1] * first;
  }
  for (int64_t i = 0; i < S; ++i) {
    float* v = B + 8 * (backward ? S - 1 - i : i);
    v8f x;
    std::memcpy(&x, v, sizeof x);
    for (int s = 0; s < 2; ++s) {
      const v8f y = b0[s] * x + z0[s];
      const v8f u = b1[s] * x + z1[s];
      z0[s] = u - a1[s] * y;
      z1[s] = b2[s] * x - a2[s] * y;
      x = y;
    }
    std::memcpy(v, &x, sizeof x);
  }
}
ECGCORE_MULTIVERSION(void, pair_pass, (const v8f* co, float* B, int64_t S, bool backward), (co, B, S, backward),
                     { pair_pass_impl(co, B, S, backward); })

// Both band-passes of x into y1 and y2 through the float pair path; false (nothing written) where it does not
// apply, and the caller filters each band in double.
bool zero_phase_pair(const std::vector<double>& sos1, const std::vector<double>& sos2, const double* x, int64_t n,
                     double fs, std::vector<double>& y1, std::vector<double>& y2, std::vector<float>& E,
                     std::vector<float>& B) {
  if (n < 2) return false;
  const int64_t edge = std::min<int64_t>(n - 1, samples(1.0, fs)), N = n + 2 * edge;
  const PairLayout L = pair_layout(sos1, sos2, N);
  if (L.S == 0) return false;
  // The forward pass filters the first difference d[t] = e[t] - e[t-1] (d[0] = 0: scipy's steady state at
  // e[0]) by the cascade with one of its zeros at z = 1 taken out: the same filter, but what the
  // float arithmetic rounds is on the scale of the signal's changes, never of its offset (a flat stretch, at
  // any level, is exactly zero, and its output decays to zero as in double).
  E.resize(static_cast<size_t>(N));
  // scipy's odd extension: e[t] = 2 x[0] - x[edge - t] on the left, 2 x[n-1] - x[n-2-i] on the right
  auto ext = [&](int64_t t) {
    return t < edge       ? 2.0 * x[0] - x[edge - t]
           : t < edge + n ? x[t - edge]
                          : 2.0 * x[n - 1] - x[n - 2 - (t - edge - n)];
  };
  E[0] = 0.0f;
  for (int64_t t = 1; t <= edge; ++t) E[t] = static_cast<float>(ext(t) - ext(t - 1));
  for (int64_t t = edge + 1; t < edge + n; ++t) E[t] = static_cast<float>(x[t - edge] - x[t - edge - 1]);
  for (int64_t t = std::max<int64_t>(edge + n, 1); t < N; ++t) E[t] = static_cast<float>(ext(t) - ext(t - 1));
  const int64_t S = L.S;
  B.resize(static_cast<size_t>(8 * S));  // [S][8]: step-major, the 8 lanes of a step side by side
  const float* e0 = E.data() + L.lo[0];
  const float* e1 = E.data() + L.lo[1];
  const float* e2 = E.data() + L.lo[2];
  const float* e3 = E.data() + L.lo[3];
  for (int64_t i = 0; i < S; ++i) {
    float* b = B.data() + 8 * i;
    b[0] = b[4] = e0[i];
    b[1] = b[5] = e1[i];
    b[2] = b[6] = e2[i];
    b[3] = b[7] = e3[i];
  }
  // Coefficients per lane (band 1 in lanes 0-3, band 2 in 4-7): the backward pass runs the cascade from scipy's
  // zi; the forward pass runs it on d with the numerator [b0, b1, b2] = (1 - 1/z)(b0 - b2/z) of a section with a
  // zero at z = 1 (b0 + b1 + b2 = 0) replaced by [b0, -b2, 0], and starts at rest (the steady state of d = 0).
  float co_f[14][8], co_b[14][8];
  const std::vector<double> zi1 = sosfilt_zi(sos1.data(), 2), zi2 = sosfilt_zi(sos2.data(), 2);
  const std::vector<double>* sos[2] = {&sos1, &sos2};
  const std::vector<double>* zi[2] = {&zi1, &zi2};
  const int idx[5] = {0, 1, 2, 4, 5};  // b0 b1 b2 a1 a2 of each section's [b0 b1 b2 a0 a1 a2]
  for (int band = 0; band < 2; ++band) {
    const std::vector<double>& q = *sos[band];
    for (int l = 4 * band; l < 4 * band + 4; ++l)
      for (int s = 0; s < 2; ++s) {
        for (int k = 0; k < 5; ++k) co_b[5 * s + k][l] = co_f[5 * s + k][l] = static_cast<float>(q[6 * s + idx[k]]);
        co_b[10 + 2 * s][l] = static_cast<float>((*zi[band])[2 * s]);
        co_b[10 + 2 * s + 1][l] = static_cast<float>((*zi[band])[2 * s + 1]);
        co_f[10 + 2 * s][l] = co_f[10 + 2 * s + 1][l] = 0.0f;
      }
    const int z = L.dc_section[band];
    for (int l = 4 * band; l < 4 * band + 4; ++l) {
      co_f[5 * z + 1][l] = static_cast<float>(-q[6 * z + 2]);
      co_f[5 * z + 2][l] = 0.0f;
    }
  }
  v8f vf[14], vb[14];
  std::memcpy(vf, co_f, sizeof vf);
  std::memcpy(vb, co_b, sizeof vb);
  pair_pass(vf, B.data(), S, false);
  pair_pass(vb, B.data(), S, true);
  y1.resize(static_cast<size_t>(n));
  y2.resize(static_cast<size_t>(n));
  for (int l = 0; l < 4; ++l) {
    const int64_t a = std::max(L.own[l], edge), b = std::min(L.own[l + 1], edge + n);
    for (int64_t t = a; t < b; ++t) {
      const float* v = B.data() + 8 * (t - L.lo[l]);
      y1[t - edge] = v[l];
      y2[t - edge] = v[l + 4];
    }
  }
  return true;
}

constexpr uint64_t kExpBits = 0x7ff0000000000000ULL;  // all set: NaN or +-inf

inline uint64_t nonfinite_bit(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return static_cast<uint64_t>((b & kExpBits) == kExpBits);
}

// Non-finite samples (ADC gaps) hold the last finite value so the filters see no step. Returns x itself when it
// is double and all finite (no copy), else v's data.
const double* finite_signal(const double* x, int64_t n, std::vector<double>& v) {
  // NaN and +-inf are the doubles whose exponent bits are all set; an integer OR-reduction vectorises.
  uint64_t nonfinite = 0;
  for (int64_t i = 0; i < n; ++i) nonfinite |= nonfinite_bit(x[i]);
  if (!nonfinite) return x;
  v.resize(static_cast<size_t>(n));
  double last = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isfinite(x[i])) last = x[i];
    v[i] = last;
  }
  return v.data();
}

const double* finite_signal(const float* x, int64_t n, std::vector<double>& v) {
  v.resize(static_cast<size_t>(n));
  bool all_finite = true;
  for (int64_t i = 0; i < n; ++i) {
    const double s = static_cast<double>(x[i]);
    all_finite &= (s - s) == 0.0;
    v[i] = s;
  }
  if (all_finite) return v.data();
  double last = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double s = static_cast<double>(x[i]);
    if (std::isfinite(s)) last = s;
    v[i] = last;
  }
  return v.data();
}

struct Candidate {
  int64_t t;     // sample index of the integrated-signal peak
  double value;  // integrated energy at t
  double slope;  // largest |slope| of the band-passed signal near t
};

// Local maxima of the integrated signal, thinned so that no two lie within `gap` samples
// (the larger one wins, ties to the earlier one, as in greedy non-maximum suppression).
// `maxima` and `order` are caller-owned scratch.
ECGCORE_INLINE std::vector<Candidate> candidates_impl(const double* mwi, const double* slope, int64_t n, int64_t gap,
                                                      int64_t half_width, std::vector<int64_t>& maxima,
                                                      std::vector<std::pair<double, int64_t>>& order,
                                                      std::vector<char>& kept) {
  // Only grown, never shrunk: the first m entries are this call's (a shrink-then-grow would zero-fill it again).
  if (maxima.size() < static_cast<size_t>(std::max<int64_t>(n, 1))) maxima.resize(static_cast<size_t>(n));
  int64_t m = 0;
  int64_t i = 1;
  // Four samples per step: the two comparisons as lane masks, then the maxima among them appended in order.
  for (; i + 4 < n; i += 4) {
    v4d c, l, r;
    std::memcpy(&c, mwi + i, sizeof c);
    std::memcpy(&l, mwi + i - 1, sizeof l);
    std::memcpy(&r, mwi + i + 1, sizeof r);
    const v4i is_max = (c > l) & (c >= r);
    unsigned bits = 0;
    for (int q = 0; q < 4; ++q) bits |= static_cast<unsigned>(is_max[q] & 1) << q;
    while (bits) {
      maxima[m++] = i + __builtin_ctz(bits);
      bits &= bits - 1;
    }
  }
  for (; i + 1 < n; ++i) {  // branch-free append: maxima are frequent and unpredictable
    maxima[m] = i;
    m += (mwi[i] > mwi[i - 1]) & (mwi[i] >= mwi[i + 1]);
  }
  // Greedy suppression by value is the unique labelling in which a maximum is kept iff no kept
  // maximum of higher priority (larger value; on a tie, earlier) lies within `gap`. Resolve it by
  // memoised depth-first search over those neighbours (a handful each) instead of sorting by value.
  auto above = [&](int64_t k, int64_t j) {
    const double vk = mwi[maxima[k]], vj = mwi[maxima[j]];
    return vk > vj || (vk == vj && k < j);
  };
  kept.assign(static_cast<size_t>(m), 0);  // 0 unknown, 1 kept, 2 suppressed
  order.clear();                           // used as the DFS stack (second member: index)
  for (int64_t j0 = 0; j0 < m; ++j0) {
    if (kept[j0]) continue;
    order.push_back({0.0, j0});
    while (!order.empty()) {
      const int64_t j = order.back().second, t = maxima[j];
      int64_t pending = -1;  // an unresolved neighbour of higher priority, resolved first
      bool suppressed = false;
      auto look = [&](int64_t k) {
        if (!above(k, j)) return;
        if (kept[k] == 1) suppressed = true;
        else if (kept[k] == 0) pending = k;
      };
      for (int64_t k = j - 1; k >= 0 && t - maxima[k] < gap && !suppressed && pending < 0; --k) look(k);
      for (int64_t k = j + 1; k < m && maxima[k] - t < gap && !suppressed && pending < 0; ++k) look(k);
      if (!suppressed && pending >= 0) {
        order.push_back({0.0, pending});
        continue;
      }
      kept[j] = suppressed ? 2 : 1;
      order.pop_back();
    }
  }
  std::vector<Candidate> out;
  out.reserve(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) {
    if (kept[j] != 1) continue;
    const int64_t t = maxima[j];
    // Largest |slope| in the window; four independent maxima (max is exact, so the order is free).
    const int64_t k0 = std::max<int64_t>(0, t - half_width), k1 = std::min(n - 1, t + half_width) + 1;
    double s4[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t k = k0;
    for (; k + 4 <= k1; k += 4)
      for (int q = 0; q < 4; ++q) {
        const double a = std::fabs(slope[k + q]);
        s4[q] = a > s4[q] ? a : s4[q];
      }
    for (; k < k1; ++k) {
      const double a = std::fabs(slope[k]);
      s4[0] = a > s4[0] ? a : s4[0];
    }
    const double s = std::max(std::max(s4[0], s4[1]), std::max(s4[2], s4[3]));
    out.push_back({t, mwi[t], s});
  }
  return out;
}
ECGCORE_MULTIVERSION_T(ECGCORE_TARGET_AVX2_NOFMA, std::vector<Candidate>, candidates,
                       (const double* mwi, const double* slope, int64_t n, int64_t gap, int64_t half_width,
                        std::vector<int64_t>& maxima, std::vector<std::pair<double, int64_t>>& order,
                        std::vector<char>& kept),
                       (mwi, slope, n, gap, half_width, maxima, order, kept),
                       { return candidates_impl(mwi, slope, n, gap, half_width, maxima, order, kept); })

struct Levels {
  double signal = 0.0;
  double noise = 0.0;
};

// The adaptive-threshold decision stage. Returns the indices (into cands) of accepted beats.
// ratio: for each accepted beat, the noise-to-signal level ratio when it was accepted.
std::vector<size_t> decide(const std::vector<Candidate>& cands, const QrsOptions& o, std::vector<float>& ratio) {
  std::vector<size_t> beats;
  ratio.clear();
  if (cands.empty()) return beats;
  const double fs = o.fs;
  const int64_t refractory = samples(o.refractory_s, fs);
  const int64_t t_wave = samples(o.t_wave_s, fs);
  const int64_t silence = samples(3.0, fs);

  // Learning phase: the signal level starts at the median of the 1-s maxima of the first 8 s.
  Levels lv;
  {
    const int64_t block = samples(1.0, fs);
    const int64_t learn_end = cands.front().t + samples(8.0, fs);
    std::vector<double> block_max;
    int64_t current = -1;
    for (const auto& c : cands) {
      if (c.t >= learn_end) break;
      const int64_t b = c.t / block;
      if (b != current) {
        block_max.push_back(c.value);
        current = b;
      } else {
        block_max.back() = std::max(block_max.back(), c.value);
      }
    }
    std::nth_element(block_max.begin(), block_max.begin() + block_max.size() / 2, block_max.end());
    lv.signal = block_max[block_max.size() / 2];
    lv.noise = 0.0;
  }

  double rr[8];
  int rr_count = 0, rr_next = 0;
  double rr_mean = 0.8 * fs;
  int64_t last_t = -1;
  double last_slope = 0.0;
  size_t last_idx = 0;
  int64_t last_decay = -1;

  // Noise-aware threshold: the fraction between the noise and signal levels grows with the noise-to-signal
  // level ratio above noise_knee (capped at 0.9, or at the base fraction when that is higher), so noisy
  // stretches need a clearer peak.
  const double cap = std::max(0.9, o.threshold);
  auto threshold = [&]() {
    const double ratio = lv.signal > 0.0 ? lv.noise / lv.signal : 0.0;
    const double c = std::min(cap, o.threshold + o.noise_gain * std::max(0.0, ratio - o.noise_knee));
    return lv.noise + c * (lv.signal - lv.noise);
  };
  auto is_t_wave = [&](const Candidate& c) {
    return last_t >= 0 && c.t - last_t < t_wave && c.slope < o.t_wave_slope * last_slope;
  };
  auto accept = [&](size_t i) {
    const Candidate& c = cands[i];
    if (last_t >= 0) {
      rr[rr_next] = static_cast<double>(c.t - last_t);
      rr_next = (rr_next + 1) % 8;
      rr_count = std::min(rr_count + 1, 8);
      double s = 0.0;
      for (int k = 0; k < rr_count; ++k) s += rr[k];
      rr_mean = s / rr_count;
    }
    last_t = c.t;
    last_slope = c.slope;
    last_idx = i;
    beats.push_back(i);
    ratio.push_back(lv.signal > 0.0 ? static_cast<float>(lv.noise / lv.signal) : 0.0f);
  };

  for (size_t i = 0; i < cands.size(); ++i) {
    const Candidate& c = cands[i];
    // Search back over the candidates skipped since the last beat when the gap has grown too long.
    while (last_t >= 0 && static_cast<double>(c.t - last_t) > o.search_back * rr_mean) {
      const double thr2 = 0.5 * threshold();
      size_t best = cands.size();
      for (size_t j = last_idx + 1; j < i; ++j) {
        const Candidate& b = cands[j];
        if (b.t - last_t < refractory || b.value <= thr2 || is_t_wave(b)) continue;
        if (best == cands.size() || b.value > cands[best].value) best = j;
      }
      if (best == cands.size()) break;
      lv.signal = 0.25 * cands[best].value + 0.75 * lv.signal;
      accept(best);
    }
    // A long silence means the amplitude dropped (or the lead came off): let the levels decay.
    if (last_t >= 0 && c.t - last_t > silence && c.t - last_decay > samples(1.0, fs)) {
      lv.signal *= 0.5;
      lv.noise *= 0.5;
      last_decay = c.t;
    }
    // An early candidate in a noisy stretch needs the size of a beat (issue 25: noise peaks between beats).
    const bool early_in_noise =
        o.early_rr > 0.0 && last_t >= 0 && rr_count >= 4 && lv.noise > o.early_noise * lv.signal &&
        static_cast<double>(c.t - last_t) < o.early_rr * rr_mean && c.value < o.early_level * lv.signal;
    if (c.value > threshold() && (last_t < 0 || c.t - last_t >= refractory) && !early_in_noise) {
      if (is_t_wave(c)) {
        lv.noise = 0.125 * c.value + 0.875 * lv.noise;
        continue;
      }
      lv.signal = 0.125 * c.value + 0.875 * lv.signal;
      accept(i);
    } else {
      lv.noise = 0.125 * c.value + 0.875 * lv.noise;
    }
  }
  return beats;
}

// Refinement signal, evaluated only where needed: a difference of centred box averages
// (+-10 ms smoothing minus a +-100 ms local baseline), a zero-phase band-pass. Each peak's window
// gets its own short prefix sum, so refinement costs O(peaks * (radius + baseline)), not O(n).
struct BoxBandpass {
  const double* sig;
  int64_t n, smooth, baseline;
  BoxBandpass(const double* sig_, int64_t n_, double fs)
      : sig(sig_),
        n(n_),
        smooth(std::max<int64_t>(0, std::llround(0.010 * fs))),
        baseline(std::max<int64_t>(1, std::llround(0.100 * fs))) {}
};

// Per-thread scratch reused across calls: fresh signal-sized buffers would cost a page fault per
// 4 KiB on every call (more than the detector itself on short records). Released after very long rows.
struct Workspace {
  std::vector<double> sig, bp, slope, mwi, prefix;
  std::vector<double> bp2, slope2, mwi2, level1, mean1, level2, mean2, mx, wt1, wt2;  // second band
  std::vector<double> dec;                                                            // decimated copy (detect_fs)
  std::vector<double> vh_fwd, vh_bwd;                                                 // sliding-maximum scratch
  std::vector<float> ext;                                                             // float pair path: extended row
  std::vector<float> lanes;                                                           //   and its 8-lane buffer
  std::vector<int64_t> maxima;
  std::vector<std::pair<double, int64_t>> order;
  std::vector<char> kept;
  void trim(int64_t n) {
    if (n <= (int64_t{1} << 21)) return;
    for (auto* v : {&sig, &bp, &slope, &mwi, &prefix, &bp2, &slope2, &mwi2, &level1, &mean1, &level2, &mean2, &mx, &wt1,
                    &wt2, &dec, &vh_fwd, &vh_bwd})
      std::vector<double>().swap(*v);
    std::vector<int64_t>().swap(maxima);
    std::vector<float>().swap(ext);
    std::vector<float>().swap(lanes);
  }
};

Workspace& workspace() {
  thread_local Workspace w;
  return w;
}

// The detector's box band-pass of sig at samples [a, b) (0 <= a <= b <= n): the mean over +-s samples minus the mean
// over +-w, each window shrunk to the record at its ends, from a prefix sum of just the samples it reads (scratch
// prefix). out[k - a]. Stage 5 refines on it (s = 10 ms, w = 100 ms; its unclipped windows take refine_interior's
// running sums instead), stage 4b measures wide complexes on it (30 ms, 150 ms).
void box_bandpass(const double* sig, int64_t n, int64_t a, int64_t b, int64_t s, int64_t w, std::vector<double>& prefix,
                  std::vector<double>& out) {
  out.resize(static_cast<size_t>(b - a));
  if (b <= a) return;
  const int64_t r = std::max(s, w);
  const int64_t lo = std::max<int64_t>(0, a - r), hi = std::min<int64_t>(n - 1, b - 1 + r);
  prefix.resize(static_cast<size_t>(hi - lo + 2));
  double* P = prefix.data();  // P[i] = sum of sig[lo .. lo+i)
  P[0] = 0.0;
  for (int64_t k = lo; k <= hi; ++k) P[k - lo + 1] = P[k - lo] + sig[k];
  auto mean = [&](int64_t k, int64_t h) {
    const int64_t s0 = std::max<int64_t>(0, k - h), s1 = std::min<int64_t>(n - 1, k + h);
    return (P[s1 + 1 - lo] - P[s0 - lo]) / static_cast<double>(s1 - s0 + 1);
  };
  for (int64_t k = a; k < b; ++k) out[k - a] = mean(k, s) - mean(k, w);
}

// The refinement of K peaks whose windows the record's ends do not clip, side by side (independent chains, each
// with the arithmetic of one peak alone): fixed divisors and two running window sums per peak, the
// entering-minus-leaving terms off their chains. best[r]: the first largest |smooth - baseline| in p +- radius.
template <int K>
ECGCORE_INLINE void refine_interior(const double* x, const int64_t* ps, int64_t radius, int64_t S, int64_t B,
                                    int64_t* best) {
  const double inv_s = 1.0 / static_cast<double>(2 * S + 1), inv_b = 1.0 / static_cast<double>(2 * B + 1);
  double ss[K], sb[K], bv[K];
  int64_t a[K];
  for (int r = 0; r < K; ++r) {
    a[r] = ps[r] - radius;
    best[r] = ps[r];
    bv[r] = -1.0;
    double acc = 0.0, q[4] = {0.0, 0.0, 0.0, 0.0};
    for (int64_t k = a[r] - S; k <= a[r] + S; ++k) acc += x[k];
    ss[r] = acc;
    int64_t k = a[r] - B;
    for (; k + 4 <= a[r] + B + 1; k += 4)
      for (int j = 0; j < 4; ++j) q[j] += x[k + j];
    for (; k <= a[r] + B; ++k) q[0] += x[k];
    sb[r] = (q[0] + q[1]) + (q[2] + q[3]);
  }
  for (int64_t i = 0;; ++i) {
    for (int r = 0; r < K; ++r) {
      const double v = std::fabs(ss[r] * inv_s - sb[r] * inv_b);
      if (v > bv[r]) {
        bv[r] = v;
        best[r] = a[r] + i;
      }
    }
    if (i == 2 * radius) break;
    for (int r = 0; r < K; ++r) {
      const int64_t k = a[r] + i;
      ss[r] += x[k + S + 1] - x[k - S];
      sb[r] += x[k + B + 1] - x[k - B];
    }
  }
}

ECGCORE_INLINE std::vector<int64_t> refine_on_impl(const BoxBandpass& y, const std::vector<int64_t>& peaks,
                                                   int64_t radius, std::vector<double>& prefix) {
  const int64_t n = y.n;
  std::vector<int64_t> out;
  std::vector<double> clipped;  // the band-pass over a window the record's ends clip
  out.reserve(peaks.size());
  // Peaks whose windows are not clipped (the usual case) go four at a time; the order of out does not matter
  // (it is sorted below).
  int64_t batch[4], found[4];
  int nbatch = 0;
  for (int64_t p : peaks) {
    const int64_t a = std::max<int64_t>(0, p - radius), b = std::min<int64_t>(n - 1, p + radius);
    int64_t best = p;
    double bv = -1.0;
    if (a - y.baseline >= 0 && b + y.baseline <= n - 1) {
      batch[nbatch++] = p;
      if (nbatch == 4) {
        refine_interior<4>(y.sig, batch, radius, y.smooth, y.baseline, found);
        out.insert(out.end(), found, found + 4);
        nbatch = 0;
      }
      continue;
    } else {
      box_bandpass(y.sig, n, a, b + 1, y.smooth, y.baseline, prefix, clipped);
      for (int64_t k = a; k <= b; ++k) {
        const double v = std::fabs(clipped[k - a]);
        if (v > bv) {
          bv = v;
          best = k;
        }
      }
    }
    out.push_back(best);
  }
  for (int r = 0; r < nbatch; ++r) {
    refine_interior<1>(y.sig, batch + r, radius, y.smooth, y.baseline, found);
    out.push_back(found[0]);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}
ECGCORE_MULTIVERSION_T(ECGCORE_TARGET_AVX2_NOFMA, std::vector<int64_t>, refine_on,
                       (const BoxBandpass& y, const std::vector<int64_t>& peaks, int64_t radius,
                        std::vector<double>& prefix),
                       (y, peaks, radius, prefix), { return refine_on_impl(y, peaks, radius, prefix); })

// Slope (+-h samples central difference) of the band-passed signal and its centred moving average of
// squares over 2*half+1 samples (the integrated energy).
ECGCORE_INLINE void slope_energy_impl(const double* bp, int64_t n, int64_t h, int64_t half, double* slope,
                                      double* mwi) {
  for (int64_t i = 0; i < std::min(h, n); ++i) slope[i] = bp[std::min(n - 1, i + h)] - bp[0];
  for (int64_t i = h; i < n - h; ++i) slope[i] = bp[i + h] - bp[i - h];
  for (int64_t i = std::max(h, n - h); i < n; ++i) slope[i] = bp[n - 1] - bp[std::max<int64_t>(0, i - h)];
  // Centred moving average of the squared slope (a running sum, so O(n) at any width).
  const double width = static_cast<double>(2 * half + 1), inv_width = 1.0 / width;
  double acc = 0.0;
  int64_t lo = 0, hi = -1;
  auto step = [&](int64_t i) {
    const int64_t a = std::max<int64_t>(0, i - half), b = std::min(n - 1, i + half);
    while (hi < b) {
      ++hi;
      acc += slope[hi] * slope[hi];
    }
    while (lo < a) {
      acc -= slope[lo] * slope[lo];
      ++lo;
    }
    mwi[i] = std::max(0.0, acc) * inv_width;
  };
  const int64_t mid0 = std::min(n, half + 1), mid1 = std::max(mid0, n - half);
  for (int64_t i = 0; i < mid0; ++i) step(i);
  // Interior: one sample enters and one leaves per step. The entering-minus-leaving terms are computed in one
  // vectorised pass; the running sum is then cut into kChains consecutive stretches, each seeded with its own
  // exact window sum and run side by side, so the additions of different stretches overlap in the pipeline
  // (a single running sum is bound by the add latency).
  const int64_t m = mid1 - mid0;
  if (m > 0) {
    for (int64_t i = mid0; i < mid1; ++i)
      mwi[i] = slope[i + half] * slope[i + half] - slope[i - half - 1] * slope[i - half - 1];
    constexpr int kChains = 4;
    const int64_t seg = (m + kChains - 1) / kChains;
    if (m < 64 * kChains) {
      for (int64_t i = mid0; i < mid1; ++i) {
        acc += mwi[i];
        mwi[i] = std::max(0.0, acc) * inv_width;
      }
    } else {
      double a[kChains];
      int64_t s0[kChains];
      a[0] = acc;
      s0[0] = mid0;
      for (int c = 1; c < kChains; ++c) {
        s0[c] = mid0 + c * seg;
        double w = 0.0;  // the window of the sample before the stretch: [s0 - 1 - half, s0 - 1 + half]
        for (int64_t k = s0[c] - 1 - half; k <= s0[c] - 1 + half; ++k) w += slope[k] * slope[k];
        a[c] = w;
      }
      const int64_t last = mid1 - s0[kChains - 1];  // the last stretch is the shortest (seg - 3 .. seg)
      for (int64_t j = 0; j < last; ++j)
        for (int c = 0; c < kChains; ++c) {
          a[c] += mwi[s0[c] + j];
          mwi[s0[c] + j] = std::max(0.0, a[c]) * inv_width;
        }
      for (int c = 0; c + 1 < kChains; ++c)
        for (int64_t j = last; j < seg; ++j) {
          a[c] += mwi[s0[c] + j];
          mwi[s0[c] + j] = std::max(0.0, a[c]) * inv_width;
        }
      acc = a[kChains - 1];
    }
    hi = mid1 - 1 + half;
    lo = mid1 - 1 - half;
  }
  for (int64_t i = mid1; i < n; ++i) step(i);
}
ECGCORE_MULTIVERSION_T(ECGCORE_TARGET_AVX2_NOFMA, void, slope_energy,
                       (const double* bp, int64_t n, int64_t h, int64_t half, double* slope, double* mwi),
                       (bp, n, h, half, slope, mwi), { slope_energy_impl(bp, n, h, half, slope, mwi); })

bool two_bands(const QrsOptions& o) { return o.band2_low > 0.0 && o.band2_low < 0.45 * o.fs; }

// Per block of `block` samples: the local QRS level of an energy signal (the largest block maximum within
// +-reach blocks, a window that holds a QRS at any rate above 50 bpm, then averaged over +-win blocks) and
// the local mean energy (over +-win blocks). Both vary over seconds, so blocks of 50 ms lose nothing.
//
// In three phases so that the two bands' running prefixes (serial additions, bound by their latency) run side by
// side: per band, the block sums into P[k + 1] and the sliding maxima into Q[k + 1]; then the four prefixes in one
// loop (each the same additions in the same order as alone); then per band the windows. P, Q: nb + 1 entries.
ECGCORE_INLINE void block_stats_impl(const double* e, int64_t n, int64_t block, int64_t reach, double* __restrict P,
                                     double* __restrict Q, Workspace& w) {
  const int64_t nb = (n + block - 1) / block;
  std::vector<double>& bmax = w.mx;
  // Every entry is written below (resize, not assign: no zero-filling pass over scratch reused across calls).
  bmax.resize(static_cast<size_t>(nb));
  P[0] = 0.0;
  Q[0] = 0.0;
  // Block maxima and sums, four blocks side by side (independent chains; a block's own sum runs in order).
  const int64_t full = n / block;
  double* __restrict bm = bmax.data();
  int64_t k = 0;
  for (; k + 4 <= full; k += 4) {
    const double* b0 = e + k * block;
    double m[4] = {0.0, 0.0, 0.0, 0.0}, sum[4] = {0.0, 0.0, 0.0, 0.0};
    for (int64_t j = 0; j < block; ++j)
      for (int q = 0; q < 4; ++q) {
        const double v = b0[q * block + j];
        m[q] = v > m[q] ? v : m[q];
        sum[q] += v;
      }
    for (int q = 0; q < 4; ++q) {
      bm[k + q] = m[q];
      P[k + q + 1] = sum[q];
    }
  }
  for (; k < nb; ++k) {
    const int64_t i0 = k * block, i1 = std::min(n, i0 + block);
    double m = 0.0, sum = 0.0;
    for (int64_t i = i0; i < i1; ++i) {
      m = e[i] > m ? e[i] : m;
      sum += e[i];
    }
    bm[k] = m;
    P[k + 1] = sum;
  }
  // Sliding maximum over +-reach blocks (van Herk / Gil-Werman: running maxima forward and backward within
  // aligned spans of W = 2 reach + 1 blocks, then one max per block, branch-free); windows clipped by the
  // record's ends take a direct maximum.
  const int64_t W = 2 * reach + 1;
  std::vector<double>& fwd = w.vh_fwd;
  std::vector<double>& bwd = w.vh_bwd;
  fwd.resize(static_cast<size_t>(nb));
  bwd.resize(static_cast<size_t>(nb));
  for (int64_t s0 = 0; s0 < nb; s0 += W) {
    const int64_t s1 = std::min(nb, s0 + W);
    double f = 0.0, b = 0.0;
    for (int64_t k = s0; k < s1; ++k) {
      f = bmax[k] > f ? bmax[k] : f;
      fwd[k] = f;
    }
    for (int64_t k = s1 - 1; k >= s0; --k) {
      b = bmax[k] > b ? bmax[k] : b;
      bwd[k] = b;
    }
  }
  auto direct = [&](int64_t k) {
    double v = 0.0;
    for (int64_t j = std::max<int64_t>(0, k - reach), j1 = std::min(nb - 1, k + reach); j <= j1; ++j)
      v = bmax[j] > v ? bmax[j] : v;
    return v;
  };
  const int64_t r0 = std::min(nb, reach), r1 = std::max(r0, nb - reach);
  for (int64_t k = 0; k < r0; ++k) Q[k + 1] = direct(k);
  const double* __restrict fw = fwd.data();
  const double* __restrict bw = bwd.data();
  for (int64_t k = r0; k < r1; ++k) {
    const double a = bw[k - reach], b = fw[k + reach];
    Q[k + 1] = a > b ? a : b;
  }
  for (int64_t k = r1; k < nb; ++k) Q[k + 1] = direct(k);
}

// The windows of one band from its prefixes P (block sums) and Q (levels).
ECGCORE_INLINE void block_windows_impl(const double* P, const double* Q, int64_t n, int64_t block, int64_t win,
                                       std::vector<double>& level, std::vector<double>& mean) {
  const int64_t nb = (n + block - 1) / block;
  level.resize(static_cast<size_t>(nb));
  mean.resize(static_cast<size_t>(nb));
  auto window = [&](int64_t k) {
    const int64_t a = std::max<int64_t>(0, k - win), b = std::min(nb - 1, k + win);
    level[k] = (Q[b + 1] - Q[a]) / static_cast<double>(b - a + 1);
    const int64_t s0 = a * block, s1 = std::min(n, (b + 1) * block);
    mean[k] = (P[b + 1] - P[a]) / static_cast<double>(s1 - s0);
  };
  // Interior blocks (the whole window inside the record, the last block not in it) share one divisor.
  const int64_t in0 = std::min(nb, win), in1 = std::max(in0, nb - 1 - win);
  for (int64_t k = 0; k < in0; ++k) window(k);
  const double inv_l = 1.0 / static_cast<double>(2 * win + 1), inv_m = 1.0 / static_cast<double>((2 * win + 1) * block);
  for (int64_t k = in0; k < in1; ++k) {
    level[k] = (Q[k + win + 1] - Q[k - win]) * inv_l;
    mean[k] = (P[k + win + 1] - P[k - win]) * inv_m;
  }
  for (int64_t k = in1; k < nb; ++k) window(k);
}

ECGCORE_INLINE void block_levels_two_impl(const double* e1, const double* e2, int64_t n, int64_t block, int64_t reach,
                                          int64_t win, Workspace& w) {
  const int64_t nb = (n + block - 1) / block;
  w.prefix.resize(static_cast<size_t>(4 * (nb + 1)));  // P1, Q1, P2, Q2
  double* P1 = w.prefix.data();
  double* Q1 = P1 + (nb + 1);
  double* P2 = Q1 + (nb + 1);
  double* Q2 = P2 + (nb + 1);
  block_stats_impl(e1, n, block, reach, P1, Q1, w);
  block_stats_impl(e2, n, block, reach, P2, Q2, w);
  // The running prefixes in registers (a store-to-load round trip per block otherwise), four chains side by side.
  double p1 = 0.0, q1 = 0.0, p2 = 0.0, q2 = 0.0;
  for (int64_t k = 1; k <= nb; ++k) {
    p1 += P1[k];
    q1 += Q1[k];
    p2 += P2[k];
    q2 += Q2[k];
    P1[k] = p1;
    Q1[k] = q1;
    P2[k] = p2;
    Q2[k] = q2;
  }
  block_windows_impl(P1, Q1, n, block, win, w.level1, w.mean1);
  block_windows_impl(P2, Q2, n, block, win, w.level2, w.mean2);
}
ECGCORE_MULTIVERSION_T(ECGCORE_TARGET_AVX2_NOFMA, void, block_levels_two,
                       (const double* e1, const double* e2, int64_t n, int64_t block, int64_t reach, int64_t win,
                        Workspace& w),
                       (e1, e2, n, block, reach, win, w), { block_levels_two_impl(e1, e2, n, block, reach, win, w); })

// e1 <- a1 * e1 + a2 * e2 with a_b = c_b / (L_b * (c1 + c2)), c_b = max(floor, (k_b / max(k1, k2))^power)
// and k_b = L_b / mean_b: a contrast-weighted mix of the two energies, each in units of its local QRS level L_b. The
// weights are computed per 50 ms block and interpolated linearly between block centres.
ECGCORE_INLINE void mix_bands_impl(double* e1, const double* e2, int64_t n, double fs, const QrsOptions& o,
                                   Workspace& w) {
  const int64_t block = samples(0.05, fs);
  const int64_t reach = std::max<int64_t>(1, std::llround(0.6 / 0.05)), win = std::llround(o.level_window_s / 0.05);
  block_levels_two(e1, e2, n, block, reach, win, w);
  const int64_t nb = static_cast<int64_t>(w.level1.size());
  constexpr double tiny = 1e-300;
  // A stretch without energy (lead off, a flat line) must not be scaled up to QRS level: each band's level is
  // floored at 5 % of its median over the record.
  auto floor_levels = [nb](std::vector<double>& level, std::vector<double>& scratch) {
    // The median of non-negative levels is at most twice their mean (else more than half of them would exceed
    // it), so when the smallest level is at least 0.1 x the mean no level is below the floor: the selection
    // is skipped (the usual case; a NaN mean takes the selection).
    double mn[4] = {level[0], level[0], level[0], level[0]}, sum[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t k = 0;
    for (; k + 4 <= nb; k += 4)  // four independent chains (the order of the sum does not matter here)
      for (int q = 0; q < 4; ++q) {
        const double v = level[k + q];
        mn[q] = v < mn[q] ? v : mn[q];
        sum[q] += v;
      }
    for (; k < nb; ++k) {
      mn[0] = level[k] < mn[0] ? level[k] : mn[0];
      sum[0] += level[k];
    }
    const double lowest = std::min(std::min(mn[0], mn[1]), std::min(mn[2], mn[3]));
    if (lowest >= 0.1000001 * (((sum[0] + sum[1]) + (sum[2] + sum[3])) / static_cast<double>(nb))) return;
    scratch.assign(level.begin(), level.end());
    std::nth_element(scratch.begin(), scratch.begin() + nb / 2, scratch.end());
    const double lo = 0.05 * scratch[static_cast<size_t>(nb / 2)];
    for (double& v : level) v = std::max(v, lo);
  };
  floor_levels(w.level1, w.mx);
  floor_levels(w.level2, w.mx);
  const double* __restrict l1s = w.level1.data();
  const double* __restrict l2s = w.level2.data();
  w.wt1.resize(static_cast<size_t>(nb));
  w.wt2.resize(static_cast<size_t>(nb));
  double* __restrict a1 = w.wt1.data();
  double* __restrict a2 = w.wt2.data();
  const double* __restrict m1 = w.mean1.data();
  const double* __restrict m2 = w.mean2.data();
  const double floor_c = o.contrast_floor;
  // Contrast weights c1, c2 of block k (l1, l2 its floored levels + tiny).
  auto contrast = [&](int64_t k, auto pow_fn, double& l1, double& l2, double& c1, double& c2) {
    l1 = l1s[k] + tiny;
    l2 = l2s[k] + tiny;
    const double r1 = l1 / (m1[k] + tiny), r2 = l2 / (m2[k] + tiny), rm = r1 < r2 ? r2 : r1;  // std::max
    // the floor keeps a band that sees the beats other than the noise (wide PVCs in the low band) in play
    const double p1 = pow_fn(r1 / rm), p2 = pow_fn(r2 / rm);
    // std::max(floor, p): the floor also when p is NaN (inf / inf where a band's mean energy is 0)
    c1 = floor_c < p1 ? p1 : floor_c;
    c2 = floor_c < p2 ? p2 : floor_c;
  };
  // Branch-free, so the loop vectorises; the power is unrolled for the default 8 (the same multiplications as
  // squaring in the generic case). A flat stretch (x1 or x2 NaN or inf: a band without energy) is rare and
  // fixed up afterwards, which keeps its fallback's divisions out of this loop.
  auto weights = [&](auto pow_fn) {
    for (int64_t k = 0; k < nb; ++k) {
      double l1, l2, c1, c2;
      contrast(k, pow_fn, l1, l2, c1, c2);
      a1[k] = c1 / (l1 * (c1 + c2));
      a2[k] = c2 / (l2 * (c1 + c2));
    }
    uint64_t any_flat = 0;  // a NaN or inf weight, in a second pass (an integer reduction, which vectorises too)
    for (int64_t k = 0; k < nb; ++k) any_flat |= nonfinite_bit(a1[k]) | nonfinite_bit(a2[k]);
    if (!any_flat) return;
    // There the band with the larger contrast weight leads alone, in units of its level.
    for (int64_t k = 0; k < nb; ++k) {
      if (((a1[k] - a1[k]) == 0.0) && ((a2[k] - a2[k]) == 0.0)) continue;
      double l1, l2, c1, c2;
      contrast(k, pow_fn, l1, l2, c1, c2);
      const bool first = c1 >= c2;
      a1[k] = first ? 1.0 / l1 : 0.0;
      a2[k] = first ? 0.0 : 1.0 / l2;
    }
  };
  const int p = o.contrast_power;
  if (p == 8) {
    weights([](double v) {
      v *= v;
      v *= v;
      return v * v;
    });
  } else {
    weights([p](double v) {  // by squaring
      double out = 1.0;
      for (int e = p; e > 0; e >>= 1, v *= v)
        if (e & 1) out *= v;
      return out;
    });
  }
  // Linear interpolation of the weights between block centres c_k = k * block + block / 2; before the
  // first centre and after the last the weights hold.
  auto span = [e1, e2](int64_t i0, int64_t i1, double w1, double d1, double w2, double d2) {
    double* __restrict y = e1 + i0;
    const double* __restrict z = e2 + i0;
    const int64_t m = i1 - i0;
    for (int64_t j = 0; j < m; ++j) {
      const double t = static_cast<double>(j);
      y[j] = (w1 + d1 * t) * y[j] + (w2 + d2 * t) * z[j];
    }
  };
  const int64_t c0 = std::min(n, block / 2);
  span(0, c0, a1[0], 0.0, a2[0], 0.0);
  const double inv = 1.0 / static_cast<double>(block);
  int64_t k = 0;
  // Blocks wholly inside the record with the usual block length (6 samples from 110 to 129 Hz: the decimated
  // rates) in straight-line code; the same arithmetic as span.
  if (block == 6) {
    for (; k + 1 < nb && k * 6 + 3 + 6 <= n; ++k) {
      double* __restrict y = e1 + k * 6 + 3;
      const double* __restrict z = e2 + k * 6 + 3;
      const double w1 = a1[k], d1 = (a1[k + 1] - a1[k]) * inv, w2 = a2[k], d2 = (a2[k + 1] - a2[k]) * inv;
      for (int j = 0; j < 6; ++j) {
        const double t = static_cast<double>(j);
        y[j] = (w1 + d1 * t) * y[j] + (w2 + d2 * t) * z[j];
      }
    }
  }
  for (; k + 1 < nb; ++k) {
    const int64_t i0 = k * block + block / 2, i1 = std::min(n, i0 + block);
    span(i0, i1, a1[k], (a1[k + 1] - a1[k]) * inv, a2[k], (a2[k + 1] - a2[k]) * inv);
  }
  span(std::min(n, (nb - 1) * block + block / 2), n, a1[nb - 1], 0.0, a2[nb - 1], 0.0);
}
ECGCORE_MULTIVERSION_T(ECGCORE_TARGET_AVX2_NOFMA, void, mix_bands,
                       (double* e1, const double* e2, int64_t n, double fs, const QrsOptions& o, Workspace& w),
                       (e1, e2, n, fs, o, w), { mix_bands_impl(e1, e2, n, fs, o, w); })

}  // namespace

void validate_qrs_options(const QrsOptions& o) {
  if (!(o.fs >= 50.0) || !std::isfinite(o.fs))
    throw std::invalid_argument("fs must be a sampling rate of at least 50 Hz, got " + std::to_string(o.fs));
  if (!(o.band_low > 0.0) || !(o.band_high > o.band_low) || !(o.band_low < 0.45 * o.fs))
    throw std::invalid_argument("the detection band must satisfy 0 < low < high and low < 0.45 * fs");
  if (!(o.integration_s > 0.0) || !(o.refractory_s > 0.0) || !(o.t_wave_s >= 0.0) || !(o.refine_radius_s >= 0.0))
    throw std::invalid_argument("integration, refractory, T-wave and refinement times must be positive");
  if (!(o.search_back > 1.0)) throw std::invalid_argument("search_back must be greater than 1 RR interval");
  if (!(o.early_rr >= 0.0 && o.early_rr < 1.0) || !(o.early_noise >= 0.0) || !(o.early_level >= 0.0))
    throw std::invalid_argument("early_rr must lie in [0, 1), early_noise and early_level must be >= 0");
  if (!(o.threshold > 0.0 && o.threshold < 1.0)) throw std::invalid_argument("threshold must lie in (0, 1)");
  if (!(o.wide_level >= 0.0) || !std::isfinite(o.wide_level) || !(o.wide_corr >= -1.0 && o.wide_corr <= 1.0) ||
      !(o.wide_noise >= 0.0))
    throw std::invalid_argument("wide_level must be finite and >= 0, wide_corr in [-1, 1], wide_noise >= 0");
  if (!(o.band2_low >= 0.0) || (o.band2_low > 0.0 && !(o.band2_high > o.band2_low)))
    throw std::invalid_argument("the second detection band must satisfy 0 < low < high (or low = 0 to turn it off)");
  if (o.contrast_power < 0 || o.contrast_power > 32)
    throw std::invalid_argument("contrast_power must lie in 0..32, got " + std::to_string(o.contrast_power));
  if (!(o.level_window_s > 0.0) || !std::isfinite(o.level_window_s))
    throw std::invalid_argument("level_window_s must be positive");
  if (!(o.contrast_floor >= 0.0 && o.contrast_floor <= 1.0))
    throw std::invalid_argument("contrast_floor must lie in [0, 1]");
  if (!(o.noise_gain >= 0.0) || !std::isfinite(o.noise_gain) || !(o.noise_knee >= 0.0) || !std::isfinite(o.noise_knee))
    throw std::invalid_argument("noise_gain and noise_knee must be finite and non-negative");
  if (!(o.detect_fs == 0.0 || (std::isfinite(o.detect_fs) && o.detect_fs >= 100.0)))
    throw std::invalid_argument("detect_fs must be 0 (detect at fs) or at least 100 Hz");
}

namespace {

// Decimation factor of the detection stages (QrsOptions::detect_fs).
int64_t decimation(const QrsOptions& o) {
  if (!(o.detect_fs > 0.0)) return 1;
  const int64_t d = static_cast<int64_t>(std::floor(o.fs / o.detect_fs));
  return d >= 2 ? d : 1;
}

// y[j] = triangular average (weights D - |k|, |k| < D, sum D^2) of x around sample j * D + D / 2, j < n / D:
// two D-sample boxes, first zero at fs / D, so what folds into the decimated band is attenuated (muscle noise
// at 90-105 Hz folding onto 15-30 Hz at 120 Hz by 20-30 dB).
template <int D>
void decimate_interior(const double* x, int64_t j0, int64_t j1, double* y) {
  constexpr double norm = 1.0 / static_cast<double>(D * D);
  for (int64_t j = j0; j < j1; ++j) {
    const double* c = x + j * D + D / 2;
    double acc = 0.0;
    for (int k = 1 - D; k < D; ++k) acc += static_cast<double>(D - (k < 0 ? -k : k)) * c[k];
    y[j] = acc * norm;
  }
}

// Returns false when x holds a non-finite sample (y is then meaningless).
ECGCORE_INLINE bool decimate_triangular_impl(const double* x, int64_t n, int64_t d, std::vector<double>& y) {
  const int64_t m = n / d;
  y.resize(static_cast<size_t>(m));
  const double norm = 1.0 / static_cast<double>(d * d);
  auto clamped = [&](int64_t j) {
    const int64_t c = j * d + d / 2;
    double acc = 0.0;
    for (int64_t k = 1 - d; k < d; ++k)
      acc += static_cast<double>(d - std::abs(k)) * x[std::clamp<int64_t>(c + k, 0, n - 1)];
    y[j] = acc * norm;
  };
  // Outputs whose 2D-1 taps lie inside the signal: j * d + d / 2 - d + 1 >= 0 and j * d + d / 2 + d - 1 < n.
  int64_t j0 = 0;
  while (j0 < m && j0 * d + d / 2 - d + 1 < 0) ++j0;
  int64_t j1 = m;
  while (j1 > j0 && (j1 - 1) * d + d / 2 + d - 1 >= n) --j1;
  for (int64_t j = 0; j < j0; ++j) clamped(j);
  switch (d) {  // fixed tap counts unroll (~12 % of the whole detector at 360 Hz); other factors: the same loop
    case 2: decimate_interior<2>(x, j0, j1, y.data()); break;
    case 3: decimate_interior<3>(x, j0, j1, y.data()); break;
    case 4: decimate_interior<4>(x, j0, j1, y.data()); break;
    case 5: decimate_interior<5>(x, j0, j1, y.data()); break;
    case 6: decimate_interior<6>(x, j0, j1, y.data()); break;
    case 8: decimate_interior<8>(x, j0, j1, y.data()); break;
    default:
      for (int64_t j = j0; j < j1; ++j) {
        const double* c = x + j * d + d / 2;
        double acc = 0.0;
        for (int64_t k = 1 - d; k < d; ++k) acc += static_cast<double>(d - std::abs(k)) * c[k];
        y[j] = acc * norm;
      }
  }
  for (int64_t j = j1; j < m; ++j) clamped(j);
  // Every sample up to (m - 1) d + d / 2 + d - 1 is a tap of some output, all weights are positive, so a
  // non-finite sample makes its outputs non-finite: checking the m outputs (and the few samples after the last
  // output's taps) checks x.
  uint64_t bad = 0;
  for (int64_t j = 0; j < m; ++j) bad |= nonfinite_bit(y[j]);
  for (int64_t i = std::max<int64_t>(0, (m - 1) * d + d / 2 + d); i < n; ++i) bad |= nonfinite_bit(x[i]);
  return bad == 0;
}
ECGCORE_MULTIVERSION_T(ECGCORE_TARGET_AVX2_NOFMA, bool, decimate_triangular,
                       (const double* x, int64_t n, int64_t d, std::vector<double>& y), (x, n, d, y),
                       { return decimate_triangular_impl(x, n, d, y); })

// Pearson correlation of a[0, len) and b[0, len).
double pearson(const double* a, const double* b, int64_t len) {
  double ma = 0.0, mb = 0.0;
  for (int64_t k = 0; k < len; ++k) {
    ma += a[k];
    mb += b[k];
  }
  ma /= static_cast<double>(len);
  mb /= static_cast<double>(len);
  double ab = 0.0, aa = 0.0, bb = 0.0;
  for (int64_t k = 0; k < len; ++k) {
    const double u = a[k] - ma, v = b[k] - mb;
    ab += u * v;
    aa += u * u;
    bb += v * v;
  }
  return ab / (std::sqrt(aa) * std::sqrt(bb) + 1e-300);
}

// The wide-complex energy of sig over [k0, k1): the slope (+-h samples) of the box band-pass with a +-30 ms short and
// a +-150 ms long window (box_bandpass), squared and averaged over 2 * half + 1 samples (the band-pass held at
// the record's end samples beyond them). Its power response peaks near 5 Hz (half power 3.6-7.2 Hz at 120 Hz,
// 3.7-12 Hz at 360 Hz), where a wide complex has more slope energy than a narrow one, with a side lobe near 21 Hz
// of 0.8 (120 Hz) to 0.5 (360 Hz) of the peak. (A triangular +-30 ms average, side lobe 0.16, was measured and not
// chosen: one more tuning cell behind.) O(k1 - k0 + the window widths), not O(n).
void wide_energy(const double* sig, int64_t n, int64_t k0, int64_t k1, int64_t h, int64_t half, double fs,
                 std::vector<double>& prefix, std::vector<double>& y, std::vector<double>& out) {
  const int64_t y0 = std::max<int64_t>(0, k0 - half - h), y1 = std::min(n, k1 + half + h);
  box_bandpass(sig, n, y0, y1, samples(0.03, fs), samples(0.15, fs), prefix, y);
  auto at = [&](int64_t j) { return y[std::clamp(j, y0, y1 - 1) - y0]; };
  // The squared slope at k - half ... k + half, summed with a running window.
  auto sq = [&](int64_t j) {
    const double d = at(j + h) - at(j - h);
    return d * d;
  };
  out.resize(static_cast<size_t>(k1 - k0));
  const double inv = 1.0 / static_cast<double>(2 * half + 1);
  double acc = 0.0;
  for (int64_t j = k0 - half; j <= k0 + half; ++j) acc += sq(j);
  out[0] = acc * inv;
  for (int64_t k = k0 + 1; k < k1; ++k) {
    acc += sq(k + half) - sq(k - half - 1);
    out[k - k0] = std::max(0.0, acc) * inv;
  }
}

// Stage 4b, the wide-complex search-back (QrsOptions::wide_level; issue 25: wide ventricular beats carry most of
// their slope energy below 5 Hz, so the detection bands see a fraction of a normal beat's and search-back at half
// the threshold misses them). peaks: stage 4's beats in time order, ratio their noise-to-signal level ratios; beats
// found here are merged in. Everything is computed only where a gap is examined: the energy over the gap and around
// its 8 reference beats, and the 1-40 Hz band (2 s on each side for the filter to settle) only for a gap whose
// energy passed (on the 48 MIT-BIH records about 40 of some 3,300 long gaps).
void wide_search_back(const double* sig, int64_t n, std::vector<int64_t>& peaks, const std::vector<float>& ratio,
                      const QrsOptions& o) {
  const size_t m = peaks.size();
  if (!(o.wide_level > 0.0) || m < 4) return;
  const double fs = o.fs;
  constexpr size_t kLevelBeats = 8, kShapeBeats = 32;
  constexpr int kMatches = 2;  // a shape the record has shown at least twice: noise seldom matches two beats
  // a candidate keeps the T-wave distance (and at least the refractory period) from both beats of its gap
  const int64_t excl = std::max(samples(o.t_wave_s, fs), samples(o.refractory_s, fs));
  const int64_t around = samples(0.06, fs), hw = samples(0.1, fs);
  const int64_t lag = samples(0.03, fs), len = 2 * hw + 1, margin = samples(2.0, fs);
  const int64_t h = std::max<int64_t>(1, std::llround(0.01 * fs)), half = samples(o.integration_s, fs) / 2;
  std::vector<double> sos_q;
  std::vector<double> prefix, y, e, q;
  std::vector<int64_t> found;
  std::vector<double> levels, beat_level;
  for (size_t i = 2; i < m; ++i) {
    const size_t j0 = i - 1 >= kLevelBeats ? i - 1 - kLevelBeats : 0;  // the RR intervals before the gap
    const double rr_mean = static_cast<double>(peaks[i - 1] - peaks[j0]) / static_cast<double>(i - 1 - j0);
    if (static_cast<double>(peaks[i] - peaks[i - 1]) <= o.search_back * rr_mean) continue;
    if (std::max(ratio[i - 1], ratio[i]) > o.wide_noise) continue;
    const int64_t a = peaks[i - 1] + excl, b = peaks[i] - excl;
    if (b <= a) continue;
    if (beat_level.empty()) beat_level.assign(m, -1.0);
    wide_energy(sig, n, a, b, h, half, fs, prefix, y, e);
    const int64_t t = a + (std::max_element(e.begin(), e.end()) - e.begin());
    const double peak = e[t - a];
    levels.clear();
    for (size_t j = i >= kLevelBeats ? i - kLevelBeats : 0; j < i; ++j) {
      if (beat_level[j] < 0.0) {  // each beat's level once: consecutive gaps share their reference beats
        wide_energy(sig, n, peaks[j] - around, peaks[j] + around + 1, h, half, fs, prefix, y, e);
        beat_level[j] = *std::max_element(e.begin(), e.end());
      }
      levels.push_back(beat_level[j]);
    }
    std::nth_element(levels.begin(), levels.begin() + levels.size() / 2, levels.end());
    if (!(peak >= o.wide_level * levels[levels.size() / 2])) continue;
    // The shape: the 1-40 Hz band over the reference beats and the candidate.
    const size_t r0 = i >= kShapeBeats ? i - kShapeBeats : 0;
    const int64_t s0 = std::max<int64_t>(0, peaks[r0] - hw - margin), s1 = std::min(n, peaks[i] + margin);
    if (sos_q.empty()) sos_q = band_sos(1.0, 40.0, fs);
    zero_phase(sos_q, sig + s0, s1 - s0, q, fs);
    auto window = [&](int64_t c) { return q.data() + (c - hw - s0); };  // the complex at record position c
    int matches = 0;
    for (size_t j = r0; j < i && matches < kMatches; ++j) {
      if (peaks[j] - hw < s0 || peaks[j] + hw >= s1) continue;
      double best = -1.0;
      for (int64_t l = -lag; l <= lag; ++l) {
        const int64_t c = t + l;
        if (c - hw < s0 || c + hw >= s1) continue;
        best = std::max(best, pearson(window(c), window(peaks[j]), len));
      }
      matches += best >= o.wide_corr;
    }
    if (matches >= kMatches) found.push_back(t);
  }
  if (found.empty()) return;
  peaks.insert(peaks.end(), found.begin(), found.end());
  std::sort(peaks.begin(), peaks.end());
}

// Stages 1-4 on sig (at o.fs): detection times, sorted, not refined.
std::vector<int64_t> detect_stages(const double* sig, int64_t n, const QrsOptions& o, Workspace& w) {
  const double fs = o.fs;
  if (n < samples(0.5, fs)) return {};
  const std::vector<double> sos1 = band_sos(o.band_low, o.band_high, fs);
  const std::vector<double> sos2 = two_bands(o) ? band_sos(o.band2_low, o.band2_high, fs) : std::vector<double>{};
  const bool pair = two_bands(o) && zero_phase_pair(sos1, sos2, sig, n, fs, w.bp, w.bp2, w.ext, w.lanes);
  if (!pair) zero_phase(sos1, sig, n, w.bp, fs);
  const double* bp = w.bp.data();

  const int64_t h = std::max<int64_t>(1, std::llround(0.01 * fs));
  const int64_t half = samples(o.integration_s, fs) / 2;
  w.slope.resize(static_cast<size_t>(n));
  w.mwi.resize(static_cast<size_t>(n));
  double* slope = w.slope.data();
  double* mwi = w.mwi.data();
  slope_energy(bp, n, h, half, slope, mwi);
  if (two_bands(o)) {
    // Second band: its own slope energy, then both energies are put on the scale of their local QRS level
    // and mixed with weights that favour the band with the higher local contrast (QRS level / mean energy),
    // so electrode-motion noise (mostly below 15 Hz) and muscle noise (mostly above) each lose to the band
    // they spare.
    if (!pair) zero_phase(sos2, sig, n, w.bp2, fs);
    w.slope2.resize(static_cast<size_t>(n));
    w.mwi2.resize(static_cast<size_t>(n));
    slope_energy(w.bp2.data(), n, h, half, w.slope2.data(), w.mwi2.data());
    mix_bands(mwi, w.mwi2.data(), n, fs, o, w);
  }

  const auto cands = candidates(mwi, slope, n, samples(o.refractory_s, fs), half, w.maxima, w.order, w.kept);
  std::vector<float> ratio;
  const auto accepted = decide(cands, o, ratio);
  std::vector<int64_t> peaks;
  peaks.reserve(accepted.size());
  for (size_t i : accepted) peaks.push_back(cands[i].t);  // accepted in time order (search-back looks only ahead
  wide_search_back(sig, n, peaks, ratio, o);              // of the last beat)
  return peaks;
}

}  // namespace

template <class T>
std::vector<int64_t> detect_r_peaks(const T* x, int64_t n, const QrsOptions& o) {
  validate_qrs_options(o);
  const double fs = o.fs;
  // Shorter than one integration window plus a beat: nothing to find.
  if (n < samples(0.5, fs)) return {};
  Workspace& w = workspace();
  const int64_t d = decimation(o);
  std::vector<int64_t> peaks;
  const double* sig;
  if (d == 1) {
    sig = finite_signal(x, n, w.sig);
    peaks = detect_stages(sig, n, o, w);
  } else {
    // Double input is decimated straight from x, its finiteness checked in the same pass; gaps (or float
    // input) go through the gap-filled double copy.
    sig = nullptr;
    if constexpr (std::is_same_v<T, double>) {
      if (decimate_triangular(x, n, d, w.dec)) sig = x;
    }
    if (sig == nullptr) {
      sig = finite_signal(x, n, w.sig);
      decimate_triangular(sig, n, d, w.dec);
    }
    QrsOptions od = o;
    od.fs = fs / static_cast<double>(d);
    peaks = detect_stages(w.dec.data(), static_cast<int64_t>(w.dec.size()), od, w);
    for (int64_t& p : peaks) p = std::min(n - 1, p * d + d / 2);
  }
  if (o.refine)
    peaks =
        refine_on(BoxBandpass(sig, n, fs), peaks, static_cast<int64_t>(std::llround(o.refine_radius_s * fs)), w.prefix);
  w.trim(n);
  return peaks;
}

template <class T>
std::vector<std::vector<int64_t>> detect_r_peaks_batch(const T* x, int64_t batch, int64_t n, const QrsOptions& o,
                                                       int n_threads) {
  validate_qrs_options(o);
  if (batch < 0 || n < 0) throw std::invalid_argument("batch and n must be non-negative");
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(batch));
  const int threads = resolve_threads(n_threads, batch);
  // Each row is independent; errors cannot occur past validation, so no exception crosses the region.
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t r = 0; r < batch; ++r) out[r] = detect_r_peaks(x + r * n, n, o);
  return out;
}

template <class T>
std::vector<int64_t> refine_r_peaks(const T* x, int64_t n, const int64_t* peaks, int64_t n_peaks, const QrsOptions& o) {
  validate_qrs_options(o);
  std::vector<int64_t> p(peaks, peaks + n_peaks);
  for (int64_t v : p)
    if (v < 0 || v >= n)
      throw std::invalid_argument("R-peak index " + std::to_string(v) + " lies outside the signal (0.." +
                                  std::to_string(n - 1) + ")");
  if (n < 2) return p;
  Workspace& w = workspace();
  p = refine_on(BoxBandpass(finite_signal(x, n, w.sig), n, o.fs), p,
                static_cast<int64_t>(std::llround(o.refine_radius_s * o.fs)), w.prefix);
  w.trim(n);
  return p;
}

bool qrs_bandpasses(const double* x, int64_t n, double fs, double lo1, double hi1, double lo2, double hi2,
                    std::vector<double>& y1, std::vector<double>& y2) {
  if (!(fs > 0.0) || !(0.0 < lo1 && lo1 < hi1) || !(0.0 < lo2 && lo2 < hi2) || lo1 >= 0.45 * fs || lo2 >= 0.45 * fs)
    throw std::invalid_argument("qrs_bandpasses: bands must satisfy 0 < low < high with low below 0.45 fs");
  if (n < 2) throw std::invalid_argument("qrs_bandpasses: the row needs at least 2 samples");
  const std::vector<double> sos1 = band_sos(lo1, hi1, fs), sos2 = band_sos(lo2, hi2, fs);
  std::vector<float> ext, lanes;
  if (zero_phase_pair(sos1, sos2, x, n, fs, y1, y2, ext, lanes)) return true;
  zero_phase(sos1, x, n, y1, fs);
  zero_phase(sos2, x, n, y2, fs);
  return false;
}

template std::vector<int64_t> detect_r_peaks<float>(const float*, int64_t, const QrsOptions&);
template std::vector<int64_t> detect_r_peaks<double>(const double*, int64_t, const QrsOptions&);
template std::vector<std::vector<int64_t>> detect_r_peaks_batch<float>(const float*, int64_t, int64_t,
                                                                       const QrsOptions&, int);
template std::vector<std::vector<int64_t>> detect_r_peaks_batch<double>(const double*, int64_t, int64_t,
                                                                        const QrsOptions&, int);
template std::vector<int64_t> refine_r_peaks<float>(const float*, int64_t, const int64_t*, int64_t, const QrsOptions&);
template std::vector<int64_t> refine_r_peaks<double>(const double*, int64_t, const int64_t*, int64_t,
                                                     const QrsOptions&);

}  // namespace ecgcore
