// WFDB signal decoding; format definitions from the WFDB Programmer's Guide, "signal(5)".
//
// Layout: a signal file is one stream of samples, frame-major (sample s belongs to signal s % n_sig).
// Every path first decodes a contiguous run of that stream ("stream decoders", one per format); when
// all signals are selected in file order into a [n, n_sig] array of a digital type, the run is the
// output itself and is decoded straight into it. Otherwise runs of a few thousand frames are decoded
// into a small (cache-resident) int32 buffer and then converted/scattered to the selected columns.
#include "ecgcore/wfdb.hpp"

#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
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
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

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

namespace {

// One request decodes single-threaded below this many samples per thread: a 30-min two-lead MIT-BIH
// record (1.3 M samples) decodes in well under a millisecond on one core, and on a busy machine an
// OpenMP team costs more than it saves (the second thread waits for a core).
constexpr int64_t kParallelGrain = int64_t(1) << 22;

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

// Run body(f0, f1) over [0, n_frames) in chunks: serially, or over an OpenMP team for large requests.
template <class Body>
void for_frames(const Request& r, int64_t chunk, Body body) {
  const int64_t total = r.n_frames * r.n_sig;
  const int threads = resolve_threads(r.n_threads, total / kParallelGrain + 1);
  if (threads <= 1) {
    body(0, r.n_frames);
    return;
  }
  const int64_t n_chunks = (r.n_frames + chunk - 1) / chunk;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t ci = 0; ci < n_chunks; ++ci) body(ci * chunk, std::min(r.n_frames, (ci + 1) * chunk));
}

// out[f * stride + col[k]] = convert(sample of signal chan[k] in frame f, k), via a small int32 buffer.
template <class T, class Convert>
void decode_selected(const Request& r, T* out, Convert convert) {
  const int n_sig = r.n_sig;
  const int64_t block = std::max<int64_t>(1, 4096 / n_sig);
  std::vector<int> col(r.n_out);
  for (int k = 0; k < r.n_out; ++k) col[k] = r.col ? r.col[k] : k;
  const bool identity = is_identity(r);
  for_frames(r, std::max<int64_t>(block, kParallelGrain / (4 * n_sig)), [&](int64_t f0, int64_t f1) {
    std::vector<int32_t> buf(static_cast<size_t>(block * n_sig));
    for (int64_t b0 = f0; b0 < f1; b0 += block) {
      const int64_t nb = std::min(block, f1 - b0);
      decode_stream(r.data, r.n_bytes, r.fmt, r.s_begin + b0 * n_sig, nb * n_sig, buf.data());
      if (identity) {
        T* o = out + b0 * n_sig;
        if (n_sig == 2) {
          for (int64_t f = 0; f < nb; ++f) {
            o[2 * f] = convert(buf[2 * f], 0);
            o[2 * f + 1] = convert(buf[2 * f + 1], 1);
          }
        } else {
          for (int64_t f = 0; f < nb; ++f)
            for (int k = 0; k < n_sig; ++k) o[f * n_sig + k] = convert(buf[f * n_sig + k], k);
        }
      } else {
        for (int64_t f = 0; f < nb; ++f) {
          T* row = out + (b0 + f) * r.out_stride;
          const int32_t* in = buf.data() + f * n_sig;
          for (int k = 0; k < r.n_out; ++k) row[col[k]] = convert(in[r.chan[k]], k);
        }
      }
    }
  });
}

template <class T>
void decode_digital(const Request& r, T* out) {
  if (is_identity(r)) {  // the stream is the output: decode straight into it
    for_frames(r, std::max<int64_t>(1, kParallelGrain / (4 * r.n_sig)), [&](int64_t f0, int64_t f1) {
      decode_stream(r.data, r.n_bytes, r.fmt, r.s_begin + f0 * r.n_sig, (f1 - f0) * r.n_sig, out + f0 * r.n_sig);
    });
    return;
  }
  decode_selected(r, out, [](int32_t v, int) { return static_cast<T>(v); });
}

template <class T>
void decode_physical(const Request& r, const double* gain, const double* baseline, T* out) {
  for (int k = 0; k < r.n_out; ++k)
    if (!(gain[k] != 0.0) || !std::isfinite(gain[k])) throw std::invalid_argument("ADC gain must be nonzero");
  const int32_t invalid = wfdb_invalid_value(r.fmt);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  // (d - baseline) / gain in double, the same expression as wfdb-python.
  auto value = [&](int32_t v, int k) {
    return v == invalid ? nan : static_cast<T>((static_cast<double>(v) - baseline[k]) / gain[k]);
  };
  if (r.fmt == 212 || r.fmt == 80) {
    // Few possible values (4096 / 256): tabulate them per channel, then convert by lookup.
    const int32_t vmin = invalid, size = r.fmt == 212 ? 4096 : 256;
    std::vector<T> table(static_cast<size_t>(size) * r.n_out);
    for (int k = 0; k < r.n_out; ++k)
      for (int32_t j = 0; j < size; ++j) table[static_cast<size_t>(k) * size + j] = value(vmin + j, k);
    const T* t = table.data();
    decode_selected(r, out, [t, vmin, size](int32_t v, int k) { return t[k * size + (v - vmin)]; });
    return;
  }
  decode_selected(r, out, value);
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
  decode_digital(Request{data, n_bytes, fmt, n_sig, frame0 * n_sig, n_frames, chan, col, n_out, out_stride, n_threads},
                 out);
}

template <class T>
void wfdb_decode_physical(const uint8_t* data, int64_t n_bytes, int fmt, int n_sig, int64_t frame0,
                          int64_t n_frames, const int* chan, int n_out, const double* gain, const double* baseline,
                          T* out, int64_t out_stride, int n_threads, const int* col) {
  check_selection(fmt, n_sig, frame0, n_frames, chan, n_out, col, out_stride);
  check_length(n_bytes, fmt, n_sig, frame0, n_frames);
  decode_physical(
      Request{data, n_bytes, fmt, n_sig, frame0 * n_sig, n_frames, chan, col, n_out, out_stride, n_threads}, gain,
      baseline, out);
}

// ---- files ----

static std::runtime_error file_error(const std::string& path, const std::string& what) {
  return std::runtime_error(path + ": " + what + ": " + std::strerror(errno));
}

WfdbFileView::WfdbFileView(const std::string& path, int64_t offset, int64_t length) {
  if (offset < 0) throw std::invalid_argument(path + ": negative byte offset");
#if defined(_WIN32)
  std::FILE* fh = std::fopen(path.c_str(), "rb");
  if (!fh) throw file_error(path, "cannot open signal file");
  std::fseek(fh, 0, SEEK_END);
  file_size_ = std::ftell(fh);
  const int64_t len = std::max<int64_t>(0, std::min(length < 0 ? file_size_ : length, file_size_ - offset));
  heap_ = new uint8_t[static_cast<size_t>(len) + 1];
  std::fseek(fh, static_cast<long>(offset), SEEK_SET);
  const size_t got = len ? std::fread(heap_, 1, static_cast<size_t>(len), fh) : 0;
  std::fclose(fh);
  data_ = heap_;
  size_ = static_cast<int64_t>(got);
#else
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw file_error(path, "cannot open signal file");
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    throw file_error(path, "cannot stat signal file");
  }
  file_size_ = static_cast<int64_t>(st.st_size);
  const int64_t len = std::max<int64_t>(0, std::min(length < 0 ? file_size_ : length, file_size_ - offset));
  if (len > 0) {
    const int64_t page = static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
    const int64_t map_off = offset - offset % page;
    map_len_ = len + (offset - map_off);
    // MAP_POPULATE maps the (page-cached) file in one go instead of faulting page by page.
    void* m = ::mmap(nullptr, static_cast<size_t>(map_len_), PROT_READ, MAP_PRIVATE
#ifdef MAP_POPULATE
                                                                           | MAP_POPULATE
#endif
                     , fd, static_cast<off_t>(map_off));
    if (m != MAP_FAILED) {
      map_ = m;
      data_ = static_cast<const uint8_t*>(m) + (offset - map_off);
      size_ = len;
    } else {  // e.g. a pipe or a file system without mmap: read instead
      map_len_ = 0;
      heap_ = new uint8_t[static_cast<size_t>(len)];
      int64_t got = 0;
      while (got < len) {
        const ssize_t n = ::pread(fd, heap_ + got, static_cast<size_t>(len - got), static_cast<off_t>(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += n;
      }
      data_ = heap_;
      size_ = got;
    }
  }
  ::close(fd);
#endif
}

WfdbFileView::~WfdbFileView() {
#if !defined(_WIN32)
  if (map_) ::munmap(map_, static_cast<size_t>(map_len_));
#endif
  delete[] heap_;
}

namespace {

// Map the bytes the frames occupy and describe them as a request (r.data points into the view).
std::unique_ptr<WfdbFileView> file_request(Request* r, const std::string& path, int64_t byte_offset, int fmt,
                                           int n_sig, int64_t frame0, int64_t n_frames, const int* chan, int n_out,
                                           const int* col, int64_t out_stride, int n_threads) {
  check_selection(fmt, n_sig, frame0, n_frames, chan, n_out, col, out_stride);
  if (byte_offset < 0) throw std::invalid_argument(path + ": negative byte offset");
  int64_t b0, b1, rel;
  byte_range(fmt, frame0 * n_sig, (frame0 + n_frames) * n_sig, &b0, &b1, &rel);
  auto v = std::make_unique<WfdbFileView>(path, byte_offset + b0, b1 - b0);
  if (v->size() < b1 - b0)
    throw std::invalid_argument(path + ": signal file is truncated: " + std::to_string(frame0 + n_frames) +
                                " frames of " + std::to_string(n_sig) + " signals in format " + std::to_string(fmt) +
                                " need " + std::to_string(byte_offset + b1) + " bytes but it holds " +
                                std::to_string(v->file_size()));
  *r = Request{v->data(), v->size(), fmt, n_sig, rel, n_frames, chan, col, n_out, out_stride, n_threads};
  return v;
}

}  // namespace

template <class T>
void wfdb_read_file(const std::string& path, int64_t byte_offset, int fmt, int n_sig, int64_t frame0,
                    int64_t n_frames, const int* chan, int n_out, T* out, int64_t out_stride, int n_threads,
                    const int* col) {
  Request r{};
  const auto view =
      file_request(&r, path, byte_offset, fmt, n_sig, frame0, n_frames, chan, n_out, col, out_stride, n_threads);
  decode_digital(r, out);
}

template <class T>
void wfdb_read_file_physical(const std::string& path, int64_t byte_offset, int fmt, int n_sig, int64_t frame0,
                             int64_t n_frames, const int* chan, int n_out, const double* gain,
                             const double* baseline, T* out, int64_t out_stride, int n_threads, const int* col) {
  Request r{};
  const auto view =
      file_request(&r, path, byte_offset, fmt, n_sig, frame0, n_frames, chan, n_out, col, out_stride, n_threads);
  decode_physical(r, gain, baseline, out);
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
