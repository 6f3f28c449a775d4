// IIR filter design, numerically equal to scipy.signal (_filter_design.py): analog prototype -> frequency
// transform -> bilinear transform with pre-warping -> zpk2sos with "nearest" pairing; iirnotch. See
// filter_design.hpp.
#include "ecgcore/filter_design.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace ecgcore {

namespace {

constexpr double kPi = 3.14159265358979323846;

bool is_real(const cplx& c) { return c.imag() == 0.0; }

// np.poly: coefficients of prod (x - r), built by successive convolution like numpy.
std::vector<cplx> poly(const std::vector<cplx>& roots) {
  std::vector<cplx> a{cplx(1.0, 0.0)};
  for (const cplx& r : roots) {
    std::vector<cplx> next(a.size() + 1, cplx(0.0, 0.0));
    for (size_t i = 0; i < a.size(); ++i) {
      next[i] += a[i];
      next[i + 1] += a[i] * (-r);
    }
    a.swap(next);
  }
  return a;
}

// scipy's _cplxreal: split into one member of each conjugate pair (averaged) and the reals.
void cplxreal(std::vector<cplx> z, std::vector<cplx>& zc, std::vector<double>& zr) {
  zc.clear();
  zr.clear();
  if (z.empty()) return;
  const double tol = 100.0 * 2.220446049250313e-16;
  std::stable_sort(z.begin(), z.end(), [](const cplx& a, const cplx& b) {
    if (a.real() != b.real()) return a.real() < b.real();
    return std::abs(a.imag()) < std::abs(b.imag());
  });
  std::vector<cplx> zp, zn;
  for (const cplx& v : z) {
    if (std::abs(v.imag()) <= tol * std::abs(v)) {
      zr.push_back(v.real());
    } else if (v.imag() > 0) {
      zp.push_back(v);
    } else {
      zn.push_back(v);
    }
  }
  if (zp.size() != zn.size()) throw std::invalid_argument("filter design: a complex root has no matching conjugate");
  // Runs of (approximately) equal real part are ordered by |imag|.
  size_t i = 0;
  while (i < zp.size()) {
    size_t j = i + 1;
    while (j < zp.size() && (zp[j].real() - zp[j - 1].real()) <= tol * std::abs(zp[j - 1])) ++j;
    auto by_imag = [](const cplx& a, const cplx& b) { return std::abs(a.imag()) < std::abs(b.imag()); };
    std::stable_sort(zp.begin() + i, zp.begin() + j, by_imag);
    std::stable_sort(zn.begin() + i, zn.begin() + j, by_imag);
    i = j;
  }
  for (size_t k = 0; k < zp.size(); ++k) {
    if (std::abs(zp[k] - std::conj(zn[k])) > tol * std::abs(zn[k]))
      throw std::invalid_argument("filter design: a complex root has no matching conjugate");
    zc.push_back((zp[k] + std::conj(zn[k])) / 2.0);
  }
}

size_t idx_worst(const std::vector<cplx>& p) {
  size_t best = 0;
  double bestv = std::abs(1.0 - std::abs(p[0]));
  for (size_t i = 1; i < p.size(); ++i) {
    double v = std::abs(1.0 - std::abs(p[i]));
    if (v < bestv) {
      bestv = v;
      best = i;
    }
  }
  return best;
}

enum class Which { real, complex, any };

// scipy's _nearest_real_complex_idx.
size_t nearest_idx(const std::vector<cplx>& fro, const cplx& to, Which which) {
  std::vector<size_t> order(fro.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return std::abs(fro[a] - to) < std::abs(fro[b] - to); });
  for (size_t idx : order) {
    if (which == Which::any) return idx;
    bool r = is_real(fro[idx]);
    if ((which == Which::real && r) || (which == Which::complex && !r)) return idx;
  }
  throw std::invalid_argument("filter design: no zero of the requested kind to pair with");
}

void single_sos(const std::vector<cplx>& z, const std::vector<cplx>& p, double* row) {
  std::vector<cplx> b = poly(z), a = poly(p);
  for (int i = 0; i < 6; ++i) row[i] = 0.0;
  for (size_t i = 0; i < b.size(); ++i) row[3 - b.size() + i] = b[i].real();
  for (size_t i = 0; i < a.size(); ++i) row[6 - a.size() + i] = a[i].real();
}

template <class V>
void erase_at(V& v, size_t i) {
  v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
}

}  // namespace

BandType parse_band_type(const std::string& name) {
  if (name == "lowpass" || name == "low" || name == "lp") return BandType::lowpass;
  if (name == "highpass" || name == "high" || name == "hp") return BandType::highpass;
  if (name == "bandpass" || name == "band" || name == "pass" || name == "bp") return BandType::bandpass;
  if (name == "bandstop" || name == "stop" || name == "bs") return BandType::bandstop;
  throw std::invalid_argument("btype must be 'lowpass', 'highpass', 'bandpass' or 'bandstop', got '" + name + "'");
}

Zpk butter_prototype(int order) {
  if (order < 1) throw std::invalid_argument("filter order must be a positive integer");
  Zpk out;
  for (int m = -order + 1; m < order; m += 2) {
    // The middle value is exactly real for odd orders, as in scipy.
    double ang = kPi * m / (2.0 * order);
    out.p.push_back(-std::exp(cplx(0.0, ang)));
  }
  out.k = 1.0;
  return out;
}

Zpk cheby1_prototype(int order, double ripple_db) {
  if (order < 1) throw std::invalid_argument("filter order must be a positive integer");
  if (!(ripple_db > 0)) throw std::invalid_argument("passband ripple must be positive (dB)");
  Zpk out;
  double eps = std::sqrt(std::pow(10.0, 0.1 * ripple_db) - 1.0);
  double mu = 1.0 / order * std::asinh(1.0 / eps);
  for (int m = -order + 1; m < order; m += 2) {
    double theta = kPi * m / (2.0 * order);
    out.p.push_back(-std::sinh(cplx(mu, theta)));
  }
  cplx prod(1.0, 0.0);
  for (const cplx& p : out.p) prod *= -p;
  out.k = prod.real();
  if (order % 2 == 0) out.k /= std::sqrt(1.0 + eps * eps);
  return out;
}

Zpk iir_zpk(const Zpk& proto, const std::vector<double>& wn_hz, BandType btype, double fs) {
  if (!(fs > 0) || !std::isfinite(fs)) throw std::invalid_argument("fs must be a positive, finite sampling rate");
  const bool band = btype == BandType::bandpass || btype == BandType::bandstop;
  if (band && wn_hz.size() != 2)
    throw std::invalid_argument("band-pass and band-stop filters need two critical frequencies (low, high) in Hz");
  if (!band && wn_hz.size() != 1)
    throw std::invalid_argument("low-pass and high-pass filters need one critical frequency in Hz");
  std::vector<double> wn;
  for (double w : wn_hz) {
    double v = w / (fs / 2.0);
    if (!(v > 0.0 && v < 1.0))
      throw std::invalid_argument("critical frequencies must satisfy 0 < f < fs/2 = " + std::to_string(fs / 2) +
                                  " Hz, got " + std::to_string(w) + " Hz");
    wn.push_back(v);
  }
  if (band && !(wn[0] < wn[1])) throw std::invalid_argument("the low band edge must be below the high one");
  const double fs2 = 2.0;  // normalised design rate, as scipy
  std::vector<double> warped;
  for (double v : wn) warped.push_back(2.0 * fs2 * std::tan(kPi * v / fs2));

  std::vector<cplx> z = proto.z, p = proto.p;
  double k = proto.k;
  const int degree = static_cast<int>(p.size()) - static_cast<int>(z.size());
  if (btype == BandType::lowpass) {
    const double wo = warped[0];
    for (auto& v : z) v *= wo;
    for (auto& v : p) v *= wo;
    k *= std::pow(wo, degree);
  } else if (btype == BandType::highpass) {
    const double wo = warped[0];
    cplx pz(1.0, 0.0), pp(1.0, 0.0);
    for (auto& v : z) pz *= -v;
    for (auto& v : p) pp *= -v;
    for (auto& v : z) v = wo / v;
    for (auto& v : p) v = wo / v;
    for (int i = 0; i < degree; ++i) z.push_back(0.0);
    k *= (pz / pp).real();
  } else {
    const double bw = warped[1] - warped[0];
    const double wo = std::sqrt(warped[0] * warped[1]);
    std::vector<cplx> zz, pp2;
    if (btype == BandType::bandpass) {
      std::vector<cplx> zl, pl;
      for (auto& v : z) zl.push_back(v * bw / 2.0);
      for (auto& v : p) pl.push_back(v * bw / 2.0);
      for (auto& v : zl) zz.push_back(v + std::sqrt(v * v - wo * wo));
      for (auto& v : zl) zz.push_back(v - std::sqrt(v * v - wo * wo));
      for (auto& v : pl) pp2.push_back(v + std::sqrt(v * v - wo * wo));
      for (auto& v : pl) pp2.push_back(v - std::sqrt(v * v - wo * wo));
      for (int i = 0; i < degree; ++i) zz.push_back(0.0);
      k *= std::pow(bw, degree);
    } else {
      cplx pz(1.0, 0.0), pp(1.0, 0.0);
      for (auto& v : z) pz *= -v;
      for (auto& v : p) pp *= -v;
      std::vector<cplx> zh, ph;
      for (auto& v : z) zh.push_back((bw / 2.0) / v);
      for (auto& v : p) ph.push_back((bw / 2.0) / v);
      for (auto& v : zh) zz.push_back(v + std::sqrt(v * v - wo * wo));
      for (auto& v : zh) zz.push_back(v - std::sqrt(v * v - wo * wo));
      for (auto& v : ph) pp2.push_back(v + std::sqrt(v * v - wo * wo));
      for (auto& v : ph) pp2.push_back(v - std::sqrt(v * v - wo * wo));
      for (int i = 0; i < degree; ++i) zz.push_back(cplx(0.0, wo));
      for (int i = 0; i < degree; ++i) zz.push_back(cplx(0.0, -wo));
      k *= (pz / pp).real();
    }
    z.swap(zz);
    p.swap(pp2);
  }
  // Bilinear transform.
  const double f2 = 2.0 * fs2;
  const int deg2 = static_cast<int>(p.size()) - static_cast<int>(z.size());
  cplx nz(1.0, 0.0), np_(1.0, 0.0);
  for (auto& v : z) nz *= (f2 - v);
  for (auto& v : p) np_ *= (f2 - v);
  Zpk out;
  for (auto& v : z) out.z.push_back((f2 + v) / (f2 - v));
  for (auto& v : p) out.p.push_back((f2 + v) / (f2 - v));
  for (int i = 0; i < deg2; ++i) out.z.push_back(-1.0);
  out.k = k * (nz / np_).real();
  return out;
}

std::vector<double> zpk_to_sos(const Zpk& zpk) {
  std::vector<cplx> z = zpk.z, p = zpk.p;
  if (z.empty() && p.empty()) return {zpk.k, 0.0, 0.0, 1.0, 0.0, 0.0};
  while (p.size() < z.size()) p.push_back(0.0);
  while (z.size() < p.size()) z.push_back(0.0);
  const size_t n_sections = (std::max(p.size(), z.size()) + 1) / 2;
  if (p.size() % 2 == 1) {
    p.push_back(0.0);
    z.push_back(0.0);
  }
  {
    std::vector<cplx> zc;
    std::vector<double> zr;
    cplxreal(z, zc, zr);
    z = zc;
    for (double r : zr) z.push_back(r);
    cplxreal(p, zc, zr);
    p = zc;
    for (double r : zr) p.push_back(r);
  }
  std::vector<double> sos(n_sections * 6, 0.0);
  auto count_real = [](const std::vector<cplx>& v) {
    return std::count_if(v.begin(), v.end(), [](const cplx& c) { return c.imag() == 0.0; });
  };
  for (int si = static_cast<int>(n_sections) - 1; si >= 0; --si) {
    double* row = &sos[static_cast<size_t>(si) * 6];
    size_t p1_idx = idx_worst(p);
    cplx p1 = p[p1_idx];
    erase_at(p, p1_idx);
    if (is_real(p1) && count_real(p) == 0) {
      // Last remaining real pole: pair with the nearest real zero and a zero/pole at the origin.
      size_t z1_idx = nearest_idx(z, p1, Which::real);
      cplx z1 = z[z1_idx];
      erase_at(z, z1_idx);
      single_sos({z1, 0.0}, {p1, 0.0}, row);
    } else if (p.size() + 1 == z.size() && !is_real(p1) && count_real(p) == 1 && count_real(z) == 1) {
      // One real pole and one real zero left: this complex pole must take a complex zero.
      size_t z1_idx = nearest_idx(z, p1, Which::complex);
      cplx z1 = z[z1_idx];
      erase_at(z, z1_idx);
      single_sos({z1, std::conj(z1)}, {p1, std::conj(p1)}, row);
    } else {
      cplx p2;
      if (is_real(p1)) {
        std::vector<size_t> real_idx;
        std::vector<cplx> reals;
        for (size_t i = 0; i < p.size(); ++i)
          if (is_real(p[i])) {
            real_idx.push_back(i);
            reals.push_back(p[i]);
          }
        size_t p2_idx = real_idx[idx_worst(reals)];
        p2 = p[p2_idx];
        erase_at(p, p2_idx);
      } else {
        p2 = std::conj(p1);
      }
      if (!z.empty()) {
        size_t z1_idx = nearest_idx(z, p1, Which::any);
        cplx z1 = z[z1_idx];
        erase_at(z, z1_idx);
        if (!is_real(z1)) {
          single_sos({z1, std::conj(z1)}, {p1, p2}, row);
        } else if (!z.empty()) {
          size_t z2_idx = nearest_idx(z, p1, Which::real);
          cplx z2 = z[z2_idx];
          erase_at(z, z2_idx);
          single_sos({z1, z2}, {p1, p2}, row);
        } else {
          single_sos({z1}, {p1, p2}, row);
        }
      } else {
        single_sos({}, {p1, p2}, row);
      }
    }
  }
  for (int i = 0; i < 3; ++i) sos[i] *= zpk.k;
  return sos;
}

void zpk_to_tf(const Zpk& zpk, std::vector<double>& b, std::vector<double>& a) {
  std::vector<cplx> bz = poly(zpk.z), ap = poly(zpk.p);
  b.resize(bz.size());
  a.resize(ap.size());
  for (size_t i = 0; i < bz.size(); ++i) b[i] = zpk.k * bz[i].real();
  for (size_t i = 0; i < ap.size(); ++i) a[i] = ap[i].real();
}

void iirnotch(double w0, double quality, double fs, double b[3], double a[3]) {
  if (!(fs > 0)) throw std::invalid_argument("fs must be positive");
  if (!(quality > 0)) throw std::invalid_argument("notch quality factor Q must be positive");
  double w = 2.0 * w0 / fs;
  if (!(w > 0.0 && w < 1.0))
    throw std::invalid_argument("notch frequency must satisfy 0 < w0 < fs/2, got " + std::to_string(w0) + " Hz");
  double bw = w / quality * kPi;
  w *= kPi;
  double beta = std::tan(bw / 2.0);
  double gain = 1.0 / (1.0 + beta);
  b[0] = gain;
  b[1] = gain * -2.0 * std::cos(w);
  b[2] = gain;
  a[0] = 1.0;
  a[1] = -2.0 * gain * std::cos(w);
  a[2] = 2.0 * gain - 1.0;
}

}  // namespace ecgcore
