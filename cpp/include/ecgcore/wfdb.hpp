// Native decoders for the WFDB signal formats MIT-BIH and most PhysioNet databases use.
// Bit-identical to wfdb-python's digital samples (rdrecord(physical=False)); physical values are
// (digital - baseline) / gain in double precision, exactly as wfdb computes them, with the WFDB
// "invalid sample" code mapped to NaN.
#pragma once

#include <cstdint>

namespace ecgcore {

// Formats decoded natively: 212 (two 12-bit samples in 3 bytes), 16 (little-endian int16),
// 61 (big-endian int16), 80 (8-bit offset binary). Other formats go through wfdb-python.
bool wfdb_format_supported(int fmt);

// Bytes needed for n_samples multiplexed samples in format fmt.
int64_t wfdb_bytes_needed(int fmt, int64_t n_samples);

// Number of complete samples held in n_bytes.
int64_t wfdb_samples_available(int fmt, int64_t n_bytes);

// The WFDB invalid-sample code of a format (e.g. -2048 for 212, -32768 for 16).
int32_t wfdb_invalid_value(int fmt);

// Decode frames [frame0, frame0 + n_frames) of a file holding n_sig multiplexed signals, one sample
// per signal per frame. `data` is the whole file after its byte offset. out: [n_frames, n_out] int32
// with n_out = number of selected channels `chan` (indices into 0..n_sig-1).
void wfdb_decode(const uint8_t* data, int64_t n_bytes, int fmt, int n_sig, int64_t frame0, int64_t n_frames,
                 const int* chan, int n_out, int32_t* out, int64_t out_stride, int n_threads);

// Decode straight to physical units (fused decode + conversion; no integer intermediate).
// gain/baseline are per selected channel; out: [n_frames, out_stride] with the first n_out columns written.
template <class T>
void wfdb_decode_physical(const uint8_t* data, int64_t n_bytes, int fmt, int n_sig, int64_t frame0,
                          int64_t n_frames, const int* chan, int n_out, const double* gain, const double* baseline,
                          T* out, int64_t out_stride, int n_threads);

}  // namespace ecgcore
