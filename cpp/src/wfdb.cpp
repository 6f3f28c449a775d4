// WFDB signal decoding; format definitions from the WFDB Programmer's Guide, "signal(5)".
//
// Layout: a signal file is one stream of samples, frame-major (sample s belongs to signal s % n_sig).
// Every path first decodes a contiguous run of that stream ("stream decoders", one per format); when
// all signals are selected in file order into a [n, n_sig] array of a digital type, the run is the
// output itself and is decoded straight into it. Otherwise runs of a few thousand frames are decoded
// into a small (cache-resident) int32 buffer and then converted/scattered to the selected columns.
// Exception: float64 physical output of whole 212 frames of 1, 2 or 4 signals is decoded and converted
// in one AVX2 pass. Files are read with pread in ~128 K-sample chunks, each decoded while still in cache.
// A request runs on one thread unless it holds more than ~0.5 M samples (see kParallelGrain).
#include "ecgcore/wfdb.hpp"

#include "ecgcore/detail/config.hpp"
#include "ecgcore/detail/simd.hpp"

#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__SSSE3__) && defined(__SSE4_1__)
#include <immintrin.h>
#define ECGCORE_WFDB_SSE 1
#endif

#if defined(_WIN32)
#include <cstdio>
#include <mutex>
#else
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "ecgcore/detail/parallel.hpp"

namespace ecgcore {

bool wfdb_format_supported(int fmt) { return fmt == 212 || fmt == 16 || fmt == 61 || fmt == 80; }

static void check_format(int fmt) {
  if (!wfdb_format_supported(fmt))
    throw std::invalid_argument("WFDB format " + std::to_string(fmt) + " has no native decoder");
}

int64_t wfdb_bytes_needed(int fmt, int64_t n) {
  check_format(fmt);
  // Beyond this the byte count overflows int64 (2 bytes per sample); no file holds that many samples.
  if (n < 0 || n > std::numeric_limits<int64_t>::max() / 2)
    throw std::invalid_argument("WFDB sample count " + std::to_string(n) + " is out of range");
  switch (fmt) {
    case 212: return (n / 2) * 3 + (n % 2 ? 2 : 0);
    case 80: return n;
    default: return 2 * n;
  }
}

int64_t wfdb_samples_available(int fmt, int64_t n_bytes) {
  check_format(fmt);
  if (n_bytes < 0) throw std::invalid_argument("negative byte count " + std::to_string(n_bytes));
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

namespace {

// One request decodes single-threaded below this many samples per thread. A 30-min two-lead MIT-BIH
// record (1.3 M samples) takes two threads: reading all 48 records measured 1.6-1.8x faster than on one
// (int64 36 -> 22 ms, physical 54 -> 34 ms), since writing the output, not decoding, is the cost.
// Pipeline workers that already fill the cores pass workers=1.
constexpr int64_t kParallelGrain = int64_t(1) << 19;

// ---- stream decoders: out[i] = sample (s + i) of the stream, i in [0, count) ----

inline int32_t sample_212(const uint8_t* d, int64_t i) {
  const uint8_t* g = d + (i >> 1) * 3;
  const int32_t v = (i & 1) ? (g[2] | ((g[1] & 0xF0) << 4)) : (g[0] | ((g[1] & 0x0F) << 8));
  return v - ((v & 0x800) << 1);  // 12-bit two's complement
}

#ifdef ECGCORE_WFDB_SSE
template <class T>
inline void store8(T* o, __m128i a, __m128i b) {
  if constexpr (std::is_same<T, int32_t>::value) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), a);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 4), b);
  } else if constexpr (std::is_same<T, int64_t>::value) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_cvtepi32_epi64(a));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 2), _mm_cvtepi32_epi64(_mm_srli_si128(a, 8)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 4), _mm_cvtepi32_epi64(b));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 6), _mm_cvtepi32_epi64(_mm_srli_si128(b, 8)));
  } else {
    static_assert(std::is_same<T, int16_t>::value, "digital output is int16, int32 or int64");
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_packs_epi32(a, b));  // 12-bit values: no saturation
  }
}
#endif

#if defined(ECGCORE_WFDB_SSE) && defined(__GNUC__) && defined(__x86_64__)
#define ECGCORE_WFDB_AVX2 1

// Unpack the 16 samples of the 8 groups at p (reads p[0, 28)) into a = samples 0-3 | 8-11 and
// b = samples 4-7 | 12-15 (int32 lanes).
ECGCORE_TARGET_AVX2_NOFMA inline void unpack16_212(const uint8_t* p, __m256i* a, __m256i* b) {
  const __m256i shuf_a = _mm256_setr_epi8(0, 1, -1, -1, 2, 1, -1, -1, 3, 4, -1, -1, 5, 4, -1, -1,  //
                                          0, 1, -1, -1, 2, 1, -1, -1, 3, 4, -1, -1, 5, 4, -1, -1);
  const __m256i shuf_b = _mm256_setr_epi8(6, 7, -1, -1, 8, 7, -1, -1, 9, 10, -1, -1, 11, 10, -1, -1,  //
                                          6, 7, -1, -1, 8, 7, -1, -1, 9, 10, -1, -1, 11, 10, -1, -1);
  const __m256i low = _mm256_set1_epi32(0xFF), high = _mm256_set1_epi32(0xF00);
  const __m256i shift = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);  // odd samples: b1's high nibble
  const __m256i x = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 12)), 1);
  const __m256i wa = _mm256_shuffle_epi8(x, shuf_a), wb = _mm256_shuffle_epi8(x, shuf_b);
  const __m256i va = _mm256_or_si256(_mm256_and_si256(wa, low), _mm256_and_si256(_mm256_srlv_epi32(wa, shift), high));
  const __m256i vb = _mm256_or_si256(_mm256_and_si256(wb, low), _mm256_and_si256(_mm256_srlv_epi32(wb, shift), high));
  *a = _mm256_srai_epi32(_mm256_slli_epi32(va, 20), 20);
  *b = _mm256_srai_epi32(_mm256_slli_epi32(vb, 20), 20);
}

// AVX2 bulk of the 212 decoder: 8 groups (24 bytes) -> 16 samples per step, the two 12-byte halves in the
// two 128-bit lanes (vpshufb works within lanes). Starts at an even sample at p; a step runs while its
// second 16-byte load (at p + 12) starts by p_end. Returns the number of samples written.
template <class T>
ECGCORE_TARGET_AVX2_NOFMA int64_t stream_212_avx2(const uint8_t* p, const uint8_t* p_end, int64_t count, T* out) {
  int64_t i = 0;
  for (; i + 16 <= count && p + 12 <= p_end; i += 16, p += 24) {
    __m256i a, b;
    unpack16_212(p, &a, &b);
    T* o = out + i;
    if constexpr (std::is_same<T, int32_t>::value) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm256_permute2x128_si256(a, b, 0x20));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8), _mm256_permute2x128_si256(a, b, 0x31));
    } else if constexpr (std::is_same<T, int64_t>::value) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(a)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 4), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(b)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(a, 1)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 12), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(b, 1)));
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm256_packs_epi32(a, b));  // in-lane pack keeps order
    }
  }
  return i;
}

// Physical 212 for all signals of a file with n_sig in {1, 2, 4} (channel of out[i] = i % n_sig, a period
// that divides 4): out[i] = (double(d) - baseline) / gain, four at a time, NaN for the invalid code.
ECGCORE_TARGET_AVX2_NOFMA int64_t physical_212_avx2(const uint8_t* p, const uint8_t* p_end, int64_t count, int n_sig,
                                       const double* gain, const double* baseline, double* out) {
  const __m256d g = _mm256_setr_pd(gain[0], gain[1 % n_sig], gain[2 % n_sig], gain[3 % n_sig]);
  const __m256d b = _mm256_setr_pd(baseline[0], baseline[1 % n_sig], baseline[2 % n_sig], baseline[3 % n_sig]);
  const __m128i invalid = _mm_set1_epi32(-2048);
  const __m256d nan = _mm256_set1_pd(std::numeric_limits<double>::quiet_NaN());
  int64_t i = 0;
  for (; i + 16 <= count && p + 12 <= p_end; i += 16, p += 24) {
    __m256i a, bb;
    unpack16_212(p, &a, &bb);
    double* o = out + i;
    const __m128i q[4] = {_mm256_castsi256_si128(a), _mm256_castsi256_si128(bb), _mm256_extracti128_si256(a, 1),
                          _mm256_extracti128_si256(bb, 1)};
    for (int j = 0; j < 4; ++j) {
      const __m256d v = _mm256_div_pd(_mm256_sub_pd(_mm256_cvtepi32_pd(q[j]), b), g);
      const __m256d bad = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_cmpeq_epi32(q[j], invalid)));
      _mm256_storeu_pd(o + 4 * j, _mm256_blendv_pd(v, nan, bad));
    }
  }
  return i;
}

// One switch for every kernel (ECGCORE_SIMD=baseline forces the baseline; see simd.hpp).
bool cpu_has_avx2() { return use_avx2(); }
#endif

// Format 212: byte groups (b0, b1, b2) hold sample 2k = b0 | (b1 & 0x0F) << 8 and
// sample 2k+1 = b2 | (b1 & 0xF0) << 4, each a 12-bit two's-complement value.
template <class T>
void stream_212(const uint8_t* d, int64_t n_bytes, int64_t s, int64_t count, T* out) {
  int64_t i = 0;
  if (count > 0 && (s & 1)) {
    out[i++] = static_cast<T>(sample_212(d, s));
  }
#ifdef ECGCORE_WFDB_SSE
  // 4 groups (12 bytes) -> 8 samples per step; each step loads 16 bytes, so stop 16 bytes short of the end.
  {
    const __m128i shuf_a = _mm_setr_epi8(0, 1, -1, -1, 2, 1, -1, -1, 3, 4, -1, -1, 5, 4, -1, -1);
    const __m128i shuf_b = _mm_setr_epi8(6, 7, -1, -1, 8, 7, -1, -1, 9, 10, -1, -1, 11, 10, -1, -1);
    const __m128i low = _mm_set1_epi32(0xFF);
    const __m128i hi_even = _mm_setr_epi32(0xF00, 0, 0xF00, 0);
    const __m128i hi_odd = _mm_setr_epi32(0, 0xF00, 0, 0xF00);
    // Lanes hold (lo byte | b1 << 8): even samples take b1's low nibble, odd ones its high nibble.
    auto unpack = [&](__m128i w) {
      const __m128i v = _mm_or_si128(_mm_and_si128(w, low), _mm_or_si128(_mm_and_si128(w, hi_even),
                                                                          _mm_and_si128(_mm_srli_epi32(w, 4), hi_odd)));
      return _mm_srai_epi32(_mm_slli_epi32(v, 20), 20);
    };
    const uint8_t* p = d + ((s + i) >> 1) * 3;
    const uint8_t* p_end = d + n_bytes - 16;  // last position a 16-byte load may start
#ifdef ECGCORE_WFDB_AVX2
    if (cpu_has_avx2() && p <= p_end) {
      const int64_t done = stream_212_avx2(p, p_end, count - i, out + i);
      i += done;
      p += done / 2 * 3;
    }
#endif
    for (; i + 8 <= count && p <= p_end; i += 8, p += 12) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      store8(out + i, unpack(_mm_shuffle_epi8(x, shuf_a)), unpack(_mm_shuffle_epi8(x, shuf_b)));
    }
  }
#endif
  for (; i + 2 <= count; i += 2) {
    const uint8_t* g = d + ((s + i) >> 1) * 3;
    const int32_t v0 = g[0] | ((g[1] & 0x0F) << 8), v1 = g[2] | ((g[1] & 0xF0) << 4);
    out[i] = static_cast<T>(v0 - ((v0 & 0x800) << 1));
    out[i + 1] = static_cast<T>(v1 - ((v1 & 0x800) << 1));
  }
  if (i < count) out[i] = static_cast<T>(sample_212(d, s + i));
}

template <class T>
void stream_16(const uint8_t* d, int64_t s, int64_t count, T* out, bool big_endian) {
  const uint8_t* p = d + 2 * s;
  if (big_endian) {
    for (int64_t i = 0; i < count; ++i)
      out[i] = static_cast<T>(static_cast<int16_t>(static_cast<uint16_t>((p[2 * i] << 8) | p[2 * i + 1])));
  } else {
    for (int64_t i = 0; i < count; ++i)
      out[i] = static_cast<T>(static_cast<int16_t>(static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8))));
  }
}

template <class T>
void stream_80(const uint8_t* d, int64_t s, int64_t count, T* out) {
  const uint8_t* p = d + s;
  for (int64_t i = 0; i < count; ++i) out[i] = static_cast<T>(static_cast<int32_t>(p[i]) - 128);
}

template <class T>
void decode_stream(const uint8_t* d, int64_t n_bytes, int fmt, int64_t s, int64_t count, T* out) {
  switch (fmt) {
    case 212: return stream_212(d, n_bytes, s, count, out);
    case 16: return stream_16(d, s, count, out, false);
    case 61: return stream_16(d, s, count, out, true);
    default: return stream_80(d, s, count, out);
  }
}

// ---- requests ----

struct Request {
  const uint8_t* data;
  int64_t n_bytes;
  int fmt;
  int n_sig;
  int64_t s_begin;  // stream index (relative to data) of the first frame's first sample
  int64_t n_frames;
  const int* chan;
  const int* col;  // nullptr: col[k] = k
  int n_out;
  int64_t out_stride;
  int n_threads;
};

void check_selection(int fmt, int n_sig, int64_t frame0, int64_t n_frames, const int* chan, int n_out,
                     const int* col, int64_t out_stride) {
  check_format(fmt);
  if (n_sig < 1 || n_out < 1) throw std::invalid_argument("a WFDB signal file must hold at least one signal");
  if (frame0 < 0 || n_frames < 0) throw std::invalid_argument("negative frame range");
  if (frame0 > std::numeric_limits<int64_t>::max() / 2 / n_sig - n_frames)
    throw std::invalid_argument("frame range [" + std::to_string(frame0) + ", +" + std::to_string(n_frames) +
                                ") of " + std::to_string(n_sig) + " signals is out of range");
  for (int k = 0; k < n_out; ++k) {
    if (chan[k] < 0 || chan[k] >= n_sig) throw std::invalid_argument("channel index out of range");
    const int c = col ? col[k] : k;
    if (c < 0 || c >= out_stride) throw std::invalid_argument("output column out of range");
  }
}

void check_length(int64_t n_bytes, int fmt, int n_sig, int64_t frame0, int64_t n_frames) {
  const int64_t need = wfdb_bytes_needed(fmt, (frame0 + n_frames) * n_sig);
  if (need > n_bytes)
    throw std::invalid_argument("signal file is truncated: " + std::to_string(n_frames + frame0) + " frames of " +
                                std::to_string(n_sig) + " signals need " + std::to_string(need) +
                                " bytes but it holds " + std::to_string(n_bytes));
}

bool is_identity(const Request& r) {
  if (r.n_out != r.n_sig || r.out_stride != r.n_sig) return false;
  for (int k = 0; k < r.n_out; ++k)
    if (r.chan[k] != k || (r.col && r.col[k] != k)) return false;
  return true;
}

// ---- conversions: digital value of selected signal k -> output element ----

template <class T>
struct Digital {
  static constexpr bool kDirect = true;  // the stream decoders can write T themselves
  T operator()(int32_t v, int) const { return static_cast<T>(v); }
};

// (d - baseline) / gain in double, the same expression as wfdb-python; the invalid code becomes NaN.
// Formats 212 and 80 have few possible values (4096 / 256): they are tabulated once per channel with
// that expression and converted by lookup (same values, no division per sample).
template <class T>
struct Physical {
  static constexpr bool kDirect = false;
  int32_t invalid, vmin, size = 0;
  const double* gain;
  const double* baseline;
  std::vector<T> table;

  Physical(int fmt, int n_out, const double* g, const double* b)
      : invalid(wfdb_invalid_value(fmt)), vmin(invalid), gain(g), baseline(b) {
    for (int k = 0; k < n_out; ++k)
      if (!(g[k] != 0.0) || !std::isfinite(g[k])) throw std::invalid_argument("ADC gain must be nonzero");
    if (fmt == 212 || fmt == 80) {
      size = fmt == 212 ? 4096 : 256;
      table.resize(static_cast<size_t>(size) * n_out);
      for (int k = 0; k < n_out; ++k)
        for (int32_t j = 0; j < size; ++j) table[static_cast<size_t>(k) * size + j] = direct(vmin + j, k);
    }
  }
  T direct(int32_t v, int k) const {
    return v == invalid ? std::numeric_limits<T>::quiet_NaN()
                        : static_cast<T>((static_cast<double>(v) - baseline[k]) / gain[k]);
  }
  T operator()(int32_t v, int k) const { return size ? table[static_cast<size_t>(k) * size + (v - vmin)] : direct(v, k); }
};

// Frames [f0, f1) of request r into out (row f of the request at out + f * out_stride), single-threaded.
// `scratch` holds at least kBlock int32 samples.
constexpr int64_t kBlock = 4096;

template <class T, class Conv>
void decode_range(const Request& r, int64_t f0, int64_t f1, T* out, const Conv& conv, int32_t* scratch) {
  const int n_sig = r.n_sig;
  const bool identity = is_identity(r);
  if (Conv::kDirect && identity) {  // the stream is the output: decode straight into it
    if constexpr (Conv::kDirect)
      decode_stream(r.data, r.n_bytes, r.fmt, r.s_begin + f0 * n_sig, (f1 - f0) * n_sig, out + f0 * n_sig);
    return;
  }
#ifdef ECGCORE_WFDB_AVX2
  if constexpr (std::is_same<Conv, Physical<double>>::value) {
    // Fused decode + lookup for whole 212 frames of 1, 2 or 4 signals (MIT-BIH: 2).
    const int64_t s = r.s_begin + f0 * n_sig;
    if (r.fmt == 212 && identity && (n_sig == 1 || n_sig == 2 || n_sig == 4) && s % 2 == 0 && cpu_has_avx2()) {
      const int64_t count = (f1 - f0) * n_sig;
      double* o = out + f0 * n_sig;
      int64_t i = 0;
      if (r.n_bytes >= 16)
        i = physical_212_avx2(r.data + (s / 2) * 3, r.data + r.n_bytes - 16, count, n_sig, conv.gain, conv.baseline, o);
      for (; i < count; ++i) o[i] = conv(sample_212(r.data, s + i), static_cast<int>(i % n_sig));
      return;
    }
  }
#endif
  const int64_t block = std::max<int64_t>(1, kBlock / n_sig);
  for (int64_t b0 = f0; b0 < f1; b0 += block) {
    const int64_t nb = std::min(block, f1 - b0);
    decode_stream(r.data, r.n_bytes, r.fmt, r.s_begin + b0 * n_sig, nb * n_sig, scratch);
    if (identity) {
      T* o = out + b0 * n_sig;
      if (n_sig == 2) {
        for (int64_t f = 0; f < nb; ++f) {
          o[2 * f] = conv(scratch[2 * f], 0);
          o[2 * f + 1] = conv(scratch[2 * f + 1], 1);
        }
      } else {
        for (int64_t i = 0; i < nb * n_sig; ++i) o[i] = conv(scratch[i], static_cast<int>(i % n_sig));
      }
    } else {
      for (int64_t f = 0; f < nb; ++f) {
        T* row = out + (b0 + f) * r.out_stride;
        const int32_t* in = scratch + f * n_sig;
        for (int k = 0; k < r.n_out; ++k) row[r.col ? r.col[k] : k] = conv(in[r.chan[k]], k);
      }
    }
  }
}

int request_threads(int n_threads, int64_t n_frames, int n_sig) {
  return resolve_threads(n_threads, n_frames * n_sig / kParallelGrain + 1);
}

// A request over bytes in memory: serially, or over an OpenMP team for large requests.
template <class T, class Conv>
void decode_memory(const Request& r, T* out, const Conv& conv) {
  const int threads = request_threads(r.n_threads, r.n_frames, r.n_sig);
  if (threads <= 1) {
    std::vector<int32_t> scratch(kBlock);
    decode_range(r, 0, r.n_frames, out, conv, scratch.data());
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, kParallelGrain / (4 * r.n_sig));
  const int64_t n_chunks = (r.n_frames + chunk - 1) / chunk;
#pragma omp parallel num_threads(threads)
  {
    std::vector<int32_t> scratch(kBlock);
#pragma omp for schedule(static)
    for (int64_t ci = 0; ci < n_chunks; ++ci)
      decode_range(r, ci * chunk, std::min(r.n_frames, (ci + 1) * chunk), out, conv, scratch.data());
  }
}

// Byte range [b0, b1) of the stream holding samples [s0, s1), and the index of s0 relative to b0.
void byte_range(int fmt, int64_t s0, int64_t s1, int64_t* b0, int64_t* b1, int64_t* rel) {
  switch (fmt) {
    case 212: *b0 = (s0 / 2) * 3; *rel = s0 % 2; break;
    case 80: *b0 = s0; *rel = 0; break;
    default: *b0 = 2 * s0; *rel = 0; break;
  }
  *b1 = wfdb_bytes_needed(fmt, s1);
}

}  // namespace

template <class T>
void wfdb_decode(const uint8_t* data, int64_t n_bytes, int fmt, int n_sig, int64_t frame0, int64_t n_frames,
                 const int* chan, int n_out, T* out, int64_t out_stride, int n_threads, const int* col) {
  check_selection(fmt, n_sig, frame0, n_frames, chan, n_out, col, out_stride);
  check_length(n_bytes, fmt, n_sig, frame0, n_frames);
  decode_memory(Request{data, n_bytes, fmt, n_sig, frame0 * n_sig, n_frames, chan, col, n_out, out_stride, n_threads},
                out, Digital<T>{});
}

template <class T>
void wfdb_decode_physical(const uint8_t* data, int64_t n_bytes, int fmt, int n_sig, int64_t frame0,
                          int64_t n_frames, const int* chan, int n_out, const double* gain, const double* baseline,
                          T* out, int64_t out_stride, int n_threads, const int* col) {
  check_selection(fmt, n_sig, frame0, n_frames, chan, n_out, col, out_stride);
  check_length(n_bytes, fmt, n_sig, frame0, n_frames);
  decode_memory(Request{data, n_bytes, fmt, n_sig, frame0 * n_sig, n_frames, chan, col, n_out, out_stride, n_threads},
                out, Physical<T>(fmt, n_out, gain, baseline));
}

// ---- files ----

namespace {

std::runtime_error file_error(const std::string& path, const std::string& what) {
  return std::runtime_error(path + ": " + what + ": " + std::strerror(errno));
}

struct File {
  explicit File(const std::string& path) {
#if defined(_WIN32)
    fh = std::fopen(path.c_str(), "rb");
    if (!fh) throw file_error(path, "cannot open signal file");
    std::fseek(fh, 0, SEEK_END);
    size = static_cast<int64_t>(_ftelli64(fh));
#else
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw file_error(path, "cannot open signal file");
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      errno = e;
      throw file_error(path, "cannot stat signal file");
    }
    size = static_cast<int64_t>(st.st_size);
#endif
  }
  ~File() {
#if defined(_WIN32)
    std::fclose(fh);
#else
    ::close(fd);
#endif
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Read exactly len bytes at offset into buf (thread-safe on POSIX); false on a short read.
  bool read(uint8_t* buf, int64_t offset, int64_t len) const {
#if defined(_WIN32)
    std::lock_guard<std::mutex> lock(mu);
    if (_fseeki64(fh, offset, SEEK_SET) != 0) return false;
    return std::fread(buf, 1, static_cast<size_t>(len), fh) == static_cast<size_t>(len);
#else
    int64_t got = 0;
    while (got < len) {
      const ssize_t n = ::pread(fd, buf + got, static_cast<size_t>(len - got), static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      got += n;
    }
    return true;
#endif
  }

#if defined(_WIN32)
  std::FILE* fh = nullptr;
  mutable std::mutex mu;
#else
  int fd = -1;
#endif
  int64_t size = 0;
};

// Frames per read: about 128 K samples (192 KB of format 212), so that the bytes just read are still in
// the core's cache when they are decoded; even, so that every chunk of a 212 file starts on a byte group.
int64_t chunk_frames(int n_sig) { return std::max<int64_t>(2, ((int64_t(1) << 17) / n_sig) & ~int64_t(1)); }

// Read the frames chunk by chunk (pread into a small per-thread buffer) and decode each chunk.
template <class T, class Conv>
void decode_file(const std::string& path, int64_t byte_offset, int fmt, int n_sig, int64_t frame0, int64_t n_frames,
                 const int* chan, int n_out, T* out, int64_t out_stride, int n_threads, const int* col,
                 const Conv& conv) {
  check_selection(fmt, n_sig, frame0, n_frames, chan, n_out, col, out_stride);
  if (byte_offset < 0) throw std::invalid_argument(path + ": negative byte offset");
  const File file(path);
  const int64_t need = byte_offset + wfdb_bytes_needed(fmt, (frame0 + n_frames) * n_sig);
  if (file.size < need)
    throw std::invalid_argument(path + ": signal file is truncated: " + std::to_string(frame0 + n_frames) +
                                " frames of " + std::to_string(n_sig) + " signals in format " + std::to_string(fmt) +
                                " need " + std::to_string(need) + " bytes but it holds " + std::to_string(file.size));
  if (n_frames == 0) return;
  const int64_t chunk = chunk_frames(n_sig);
  const int64_t n_chunks = (n_frames + chunk - 1) / chunk;
  const int64_t buf_len = wfdb_bytes_needed(fmt, chunk * n_sig + 1) + 3;
  constexpr int64_t kPad = 16;  // the 212 decoder's 16-byte loads may run past the last group it uses
  auto run = [&](int64_t ci, std::vector<uint8_t>& buf, std::vector<int32_t>& scratch) {
    const int64_t f0 = ci * chunk, f1 = std::min(n_frames, f0 + chunk);
    int64_t b0, b1, rel;
    byte_range(fmt, (frame0 + f0) * n_sig, (frame0 + f1) * n_sig, &b0, &b1, &rel);
    if (!file.read(buf.data(), byte_offset + b0, b1 - b0))
      throw std::runtime_error(path + ": short read (was the signal file changed while it was read?)");
    std::memset(buf.data() + (b1 - b0), 0, kPad);
    const Request r{buf.data(), b1 - b0 + kPad, fmt, n_sig, rel, f1 - f0, chan, col, n_out, out_stride, 1};
    decode_range(r, 0, f1 - f0, out + f0 * out_stride, conv, scratch.data());
  };
  const int threads = request_threads(n_threads, n_frames, n_sig);
  if (threads <= 1) {
    std::vector<uint8_t> buf(static_cast<size_t>(buf_len + kPad));
    std::vector<int32_t> scratch(kBlock);
    for (int64_t ci = 0; ci < n_chunks; ++ci) run(ci, buf, scratch);
    return;
  }
  std::string error;
#pragma omp parallel num_threads(threads)
  {
    std::vector<uint8_t> buf(static_cast<size_t>(buf_len + kPad));
    std::vector<int32_t> scratch(kBlock);
#pragma omp for schedule(static)
    for (int64_t ci = 0; ci < n_chunks; ++ci) {
      try {
        run(ci, buf, scratch);
      } catch (const std::exception& e) {
#pragma omp critical(ecgcore_wfdb_error)
        if (error.empty()) error = e.what();
      }
    }
  }
  if (!error.empty()) throw std::runtime_error(error);
}

}  // namespace

template <class T>
void wfdb_read_file(const std::string& path, int64_t byte_offset, int fmt, int n_sig, int64_t frame0,
                    int64_t n_frames, const int* chan, int n_out, T* out, int64_t out_stride, int n_threads,
                    const int* col) {
  decode_file(path, byte_offset, fmt, n_sig, frame0, n_frames, chan, n_out, out, out_stride, n_threads, col,
              Digital<T>{});
}

template <class T>
void wfdb_read_file_physical(const std::string& path, int64_t byte_offset, int fmt, int n_sig, int64_t frame0,
                             int64_t n_frames, const int* chan, int n_out, const double* gain,
                             const double* baseline, T* out, int64_t out_stride, int n_threads, const int* col) {
  check_format(fmt);
  decode_file(path, byte_offset, fmt, n_sig, frame0, n_frames, chan, n_out, out, out_stride, n_threads, col,
              Physical<T>(fmt, n_out, gain, baseline));
}

#define ECGCORE_WFDB_DIGITAL(T)                                                                                 \
  template void wfdb_decode<T>(const uint8_t*, int64_t, int, int, int64_t, int64_t, const int*, int, T*,       \
                               int64_t, int, const int*);                                                      \
  template void wfdb_read_file<T>(const std::string&, int64_t, int, int, int64_t, int64_t, const int*, int, T*, \
                                  int64_t, int, const int*);
#define ECGCORE_WFDB_PHYSICAL(T)                                                                                \
  template void wfdb_decode_physical<T>(const uint8_t*, int64_t, int, int, int64_t, int64_t, const int*, int,  \
                                        const double*, const double*, T*, int64_t, int, const int*);           \
  template void wfdb_read_file_physical<T>(const std::string&, int64_t, int, int, int64_t, int64_t, const int*, \
                                           int, const double*, const double*, T*, int64_t, int, const int*);
ECGCORE_WFDB_DIGITAL(int16_t)
ECGCORE_WFDB_DIGITAL(int32_t)
ECGCORE_WFDB_DIGITAL(int64_t)
ECGCORE_WFDB_PHYSICAL(float)
ECGCORE_WFDB_PHYSICAL(double)

}  // namespace ecgcore
