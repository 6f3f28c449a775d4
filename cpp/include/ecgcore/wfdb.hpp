// Native decoders for the WFDB signal formats MIT-BIH and most PhysioNet databases use.
// Bit-identical to wfdb-python's digital samples (rdrecord(physical=False)); physical values are
// (digital - baseline) / gain in double precision, exactly as wfdb computes them, with the WFDB
// "invalid sample" code mapped to NaN.
#pragma once

#include <cstdint>
#include <string>

namespace ecgcore {

// Formats decoded natively: 212 (two 12-bit samples in 3 bytes), 16 (little-endian int16),
// 61 (big-endian int16), 80 (8-bit offset binary). Other formats go through wfdb-python.
bool wfdb_format_supported(int fmt);

// Bytes needed for n_samples multiplexed samples in format fmt (std::invalid_argument when n_samples is
// negative or its byte count would overflow int64).
int64_t wfdb_bytes_needed(int fmt, int64_t n_samples);

// Number of complete samples held in n_bytes.
int64_t wfdb_samples_available(int fmt, int64_t n_bytes);

// The WFDB invalid-sample code of a format (e.g. -2048 for 212, -32768 for 16).
int32_t wfdb_invalid_value(int fmt);

// Decode frames [frame0, frame0 + n_frames) of a file holding n_sig multiplexed signals, one sample
// per signal per frame. `data` is the whole file after its byte offset (n_bytes long). Selected signal
// k (chan[k], an index into 0..n_sig-1) goes to out[f * out_stride + col[k]]; col == nullptr means
// col[k] = k. T is int16_t, int32_t or int64_t (every supported format fits in int16).
// Single-threaded unless the request is large (millions of samples) and n_threads allows it.
template <class T>
void wfdb_decode(const uint8_t* data, int64_t n_bytes, int fmt, int n_sig, int64_t frame0, int64_t n_frames,
                 const int* chan, int n_out, T* out, int64_t out_stride, int n_threads, const int* col = nullptr);

// Decode straight to physical units (fused decode + conversion; no integer intermediate array).
// gain/baseline are per selected channel; T is float or double. For formats 212 and 80 the conversion
// goes through a per-channel table of every possible sample value, each entry computed with the same
// double expression, so the result is identical to the direct computation.
template <class T>
void wfdb_decode_physical(const uint8_t* data, int64_t n_bytes, int fmt, int n_sig, int64_t frame0,
                          int64_t n_frames, const int* chan, int n_out, const double* gain, const double* baseline,
                          T* out, int64_t out_stride, int n_threads, const int* col = nullptr);

// Decode frames [frame0, frame0 + n_frames) of the signal file `path` whose samples start at byte
// `byte_offset`, reading only the bytes those frames occupy, in chunks of ~128 K samples into a small
// buffer (each chunk is decoded while it is still in cache). Same selection/output rules as above.
// Errors name the file (missing, truncated, short read).
template <class T>
void wfdb_read_file(const std::string& path, int64_t byte_offset, int fmt, int n_sig, int64_t frame0,
                    int64_t n_frames, const int* chan, int n_out, T* out, int64_t out_stride, int n_threads,
                    const int* col = nullptr);
template <class T>
void wfdb_read_file_physical(const std::string& path, int64_t byte_offset, int fmt, int n_sig, int64_t frame0,
                             int64_t n_frames, const int* chan, int n_out, const double* gain,
                             const double* baseline, T* out, int64_t out_stride, int n_threads,
                             const int* col = nullptr);

}  // namespace ecgcore
