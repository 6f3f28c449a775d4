// WFDB signal decoding; format definitions from the WFDB Programmer's Guide, "signal(5)".
#include "ecgcore/wfdb.hpp"

#include <omp.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "ecgcore/parallel.hpp"

namespace ecgcore {

bool wfdb_format_supported(int fmt) { return fmt == 212 || fmt == 16 || fmt == 61 || fmt == 80; }

static void check_format(int fmt) {
  if (!wfdb_format_supported(fmt))
    throw std::invalid_argument("WFDB format " + std::to_string(fmt) + " has no native decoder");
}

int64_t wfdb_bytes_needed(int fmt, int64_t n) {
  check_format(fmt);
  switch (fmt) {
    case 212: return (n / 2) * 3 + (n % 2 ? 2 : 0);
    case 80: return n;
    default: return 2 * n;
  }
}

int64_t wfdb_samples_available(int fmt, int64_t n_bytes) {
  check_format(fmt);
  switch (fmt) {
    case 212: return (n_bytes / 3) * 2 + (n_bytes % 3 >= 2 ? 1 : 0);
    case 80: return n_bytes;
    default: return n_bytes / 2;
  }
}

int32_t wfdb_invalid_value(int fmt) {
  switch (fmt) {
    case 212: return -2048;
    case 80: return -128;
    default: return -32768;
  }
}

static inline int32_t sample_at(const uint8_t* d, int fmt, int64_t i) {
  switch (fmt) {
    case 212: {
      const uint8_t* g = d + (i / 2) * 3;
      int32_t v = (i % 2 == 0) ? (g[0] | ((g[1] & 0x0F) << 8)) : (g[2] | ((g[1] & 0xF0) << 4));
      return v >= 2048 ? v - 4096 : v;
    }
    case 16: return static_cast<int16_t>(static_cast<uint16_t>(d[2 * i] | (d[2 * i + 1] << 8)));
    case 61: return static_cast<int16_t>(static_cast<uint16_t>((d[2 * i] << 8) | d[2 * i + 1]));
    default: return static_cast<int32_t>(d[i]) - 128;  // 80
  }
}

namespace {

void check_request(int64_t n_bytes, int fmt, int n_sig, int64_t frame0, int64_t n_frames, const int* chan,
                   int n_out) {
  check_format(fmt);
  if (n_sig < 1 || n_out < 1) throw std::invalid_argument("a WFDB signal file must hold at least one signal");
  if (frame0 < 0 || n_frames < 0) throw std::invalid_argument("negative frame range");
  for (int c = 0; c < n_out; ++c)
    if (chan[c] < 0 || chan[c] >= n_sig) throw std::invalid_argument("channel index out of range");
  const int64_t need = wfdb_bytes_needed(fmt, (frame0 + n_frames) * n_sig);
  if (need > n_bytes)
    throw std::invalid_argument("signal file is truncated: " + std::to_string(n_frames + frame0) + " frames of " +
                                std::to_string(n_sig) + " signals need " + std::to_string(need) +
                                " bytes but it holds " + std::to_string(n_bytes));
}

// Decode frames into out[f * out_stride + c] = convert(sample, c). The common MIT-BIH layout (format 212,
// two signals, all selected) takes a fast path where one 3-byte group is exactly one frame.
template <class T, class Convert>
void decode_frames(const uint8_t* data, int fmt, int n_sig, int64_t frame0, int64_t n_frames, const int* chan,
                   int n_out, T* out, int64_t out_stride, int n_threads, Convert convert) {
  const int threads = resolve_threads(n_threads, n_frames * n_sig / 262144 + 1);
  bool identity = n_out == n_sig && out_stride == n_sig;
  for (int c = 0; identity && c < n_out; ++c) identity = chan[c] == c;
  if (identity && fmt == 212 && n_sig == 2) {
    const uint8_t* g = data + frame0 * 3;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t f = 0; f < n_frames; ++f) {
      const uint8_t* b = g + 3 * f;
      int32_t v0 = b[0] | ((b[1] & 0x0F) << 8);
      int32_t v1 = b[2] | ((b[1] & 0xF0) << 4);
      out[2 * f] = convert(v0 - ((v0 & 0x800) << 1), 0);
      out[2 * f + 1] = convert(v1 - ((v1 & 0x800) << 1), 1);
    }
    return;
  }
  const int64_t chunk = 16384;
  const int64_t n_chunks = (n_frames + chunk - 1) / chunk;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t ci = 0; ci < n_chunks; ++ci) {
    const int64_t f0 = ci * chunk, f1 = std::min(n_frames, f0 + chunk);
    for (int64_t f = f0; f < f1; ++f) {
      const int64_t base = (frame0 + f) * n_sig;
      T* row = out + f * out_stride;
      for (int c = 0; c < n_out; ++c) row[c] = convert(sample_at(data, fmt, base + chan[c]), c);
    }
  }
}

}  // namespace

void wfdb_decode(const uint8_t* data, int64_t n_bytes, int fmt, int n_sig, int64_t frame0, int64_t n_frames,
                 const int* chan, int n_out, int32_t* out, int64_t out_stride, int n_threads) {
  check_request(n_bytes, fmt, n_sig, frame0, n_frames, chan, n_out);
  decode_frames(data, fmt, n_sig, frame0, n_frames, chan, n_out, out, out_stride, n_threads,
                [](int32_t v, int) { return v; });
}

template <class T>
void wfdb_decode_physical(const uint8_t* data, int64_t n_bytes, int fmt, int n_sig, int64_t frame0,
                          int64_t n_frames, const int* chan, int n_out, const double* gain, const double* baseline,
                          T* out, int64_t out_stride, int n_threads) {
  check_request(n_bytes, fmt, n_sig, frame0, n_frames, chan, n_out);
  for (int c = 0; c < n_out; ++c)
    if (!(gain[c] != 0.0) || !std::isfinite(gain[c])) throw std::invalid_argument("ADC gain must be nonzero");
  const int32_t invalid = wfdb_invalid_value(fmt);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  // (d - baseline) / gain in double, the same expression as wfdb-python.
  decode_frames(data, fmt, n_sig, frame0, n_frames, chan, n_out, out, out_stride, n_threads, [&](int32_t v, int c) {
    return v == invalid ? nan : static_cast<T>((static_cast<double>(v) - baseline[c]) / gain[c]);
  });
}

template void wfdb_decode_physical<float>(const uint8_t*, int64_t, int, int, int64_t, int64_t, const int*, int,
                                          const double*, const double*, float*, int64_t, int);
template void wfdb_decode_physical<double>(const uint8_t*, int64_t, int, int, int64_t, int64_t, const int*, int,
                                           const double*, const double*, double*, int64_t, int);

}  // namespace ecgcore
