// Bindings for cpp/include/ecgcore/filter.hpp.
#include "ecgcore/filter.hpp"

#include "common.hpp"

namespace {

using namespace ecgcore;

// A 2-D array (any strides, last axis = time) as a RowsView; the Python layer guarantees ndim == 2.
template <class T>
RowsView<T> view2d(py::array& a) {
  if (a.ndim() != 2) throw std::invalid_argument("internal: expected a 2-D [batch, n] view");
  const auto isz = static_cast<int64_t>(sizeof(T));
  if (a.strides(0) % isz || a.strides(1) % isz) throw std::invalid_argument("array strides are not aligned");
  return RowsView<T>{static_cast<T*>(a.mutable_data()), a.shape(0), a.shape(1), a.strides(0) / isz,
                     a.strides(1) / isz};
}

template <class T>
RowsView<const T> cview2d(const py::array& a) {
  if (a.ndim() != 2) throw std::invalid_argument("internal: expected a 2-D [batch, n] view");
  const auto isz = static_cast<int64_t>(sizeof(T));
  if (a.strides(0) % isz || a.strides(1) % isz) throw std::invalid_argument("array strides are not aligned");
  return RowsView<const T>{static_cast<const T*>(a.data()), a.shape(0), a.shape(1), a.strides(0) / isz,
                           a.strides(1) / isz};
}

// Runs fn(x_view, out_view) with T = float or double (x and out must agree), GIL released.
template <class Fn>
void run_rows(const py::array& x, py::array& out, Fn&& fn) {
  if (!out.writeable()) throw std::invalid_argument("output array is read-only");
  const char* mismatch = "internal: x and out must both be float32 or both float64";
  ecgcore_py::dispatch_dtype<float, double>(
      x,
      [&](auto tag) {
        using T = decltype(tag);
        if (!out.dtype().is(py::dtype::of<T>())) throw std::invalid_argument(mismatch);
        auto xv = cview2d<T>(x);
        auto yv = view2d<T>(out);
        py::gil_scoped_release release;
        fn(xv, yv);
      },
      mismatch);
}

// Optional initial state [batch, n_state] in, final state [batch, n_state] out (causal filters).
struct FilterState {
  std::vector<double> zi;
  const double* zi_ptr = nullptr;
  py::array_t<double> zf;
};

FilterState filter_state(const py::object& zi, const py::array& x, int64_t n_state) {
  FilterState st;
  const int64_t batch = x.ndim() == 2 ? x.shape(0) : 0;
  if (!zi.is_none()) {
    auto z = py::cast<ecgcore_py::carray<double>>(zi);
    if (z.size() != batch * n_state)
      throw std::invalid_argument("zi must hold " + std::to_string(n_state) + " state values per row of x");
    st.zi.assign(z.data(), z.data() + z.size());
    st.zi_ptr = st.zi.data();
  }
  st.zf = py::array_t<double>({static_cast<py::ssize_t>(batch), static_cast<py::ssize_t>(n_state)});
  return st;
}

std::vector<double> sos_vector(const ecgcore_py::carray<double>& sos, int& ns) {
  if (sos.ndim() != 2 || sos.shape(1) != 6)
    throw std::invalid_argument("sos must have shape (n_sections, 6), got ndim " + std::to_string(sos.ndim()));
  ns = static_cast<int>(sos.shape(0));
  return std::vector<double>(sos.data(), sos.data() + sos.size());
}

py::array_t<double> to_array(const std::vector<double>& v) {
  py::array_t<double> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

py::array_t<double> sos_array(const std::vector<double>& sos) {
  py::array_t<double> a({static_cast<py::ssize_t>(sos.size() / 6), static_cast<py::ssize_t>(6)});
  std::copy(sos.begin(), sos.end(), a.mutable_data());
  return a;
}

Zpk design(const std::string& family, int order, double rp, const std::vector<double>& wn, const std::string& btype,
           double fs) {
  Zpk proto;
  if (family == "butter") {
    proto = butter_prototype(order);
  } else if (family == "cheby1") {
    proto = cheby1_prototype(order, rp);
  } else {
    throw std::invalid_argument("unknown filter family '" + family + "' (expected 'butter' or 'cheby1')");
  }
  return iir_zpk(proto, wn, parse_band_type(btype), fs);
}

}  // namespace

void register_filter(py::module_& m) {
  m.def(
      "iir_design",
      [](const std::string& family, int order, double rp, std::vector<double> wn, const std::string& btype, double fs,
         const std::string& output) -> py::object {
        Zpk zpk = design(family, order, rp, wn, btype, fs);
        if (output == "sos") return sos_array(zpk_to_sos(zpk));
        if (output == "ba") {
          std::vector<double> b, a;
          zpk_to_tf(zpk, b, a);
          return py::make_tuple(to_array(b), to_array(a));
        }
        if (output == "zpk") {
          py::array_t<std::complex<double>> z(static_cast<py::ssize_t>(zpk.z.size()));
          py::array_t<std::complex<double>> p(static_cast<py::ssize_t>(zpk.p.size()));
          std::copy(zpk.z.begin(), zpk.z.end(), z.mutable_data());
          std::copy(zpk.p.begin(), zpk.p.end(), p.mutable_data());
          return py::make_tuple(z, p, zpk.k);
        }
        throw std::invalid_argument("output must be 'sos', 'ba' or 'zpk'");
      },
      py::arg("family"), py::arg("order"), py::arg("rp"), py::arg("wn"), py::arg("btype"), py::arg("fs"),
      py::arg("output"),
      "Digital IIR design (butter/cheby1) like scipy.signal.iirfilter; wn in Hz.");

  m.def(
      "iirnotch",
      [](double w0, double q, double fs) {
        double b[3], a[3];
        iirnotch(w0, q, fs, b, a);
        return py::make_tuple(to_array({b[0], b[1], b[2]}), to_array({a[0], a[1], a[2]}));
      },
      py::arg("w0"), py::arg("Q"), py::arg("fs"), "IIR notch (b, a) like scipy.signal.iirnotch.");

  m.def(
      "sosfilt_zi",
      [](ecgcore_py::carray<double> sos) {
        int ns = 0;
        auto s = sos_vector(sos, ns);
        auto zi = sosfilt_zi(s.data(), ns);
        py::array_t<double> out({static_cast<py::ssize_t>(ns), static_cast<py::ssize_t>(2)});
        std::copy(zi.begin(), zi.end(), out.mutable_data());
        return out;
      },
      py::arg("sos"));

  m.def(
      "lfilter_zi",
      [](std::vector<double> b, std::vector<double> a) { return to_array(lfilter_zi(b, a)); }, py::arg("b"),
      py::arg("a"));

  m.def(
      "sosfiltfilt",
      [](ecgcore_py::carray<double> sos, py::array x, py::array out, const std::string& padtype, int64_t padlen,
         int workers) {
        int ns = 0;
        auto s = sos_vector(sos, ns);
        PadType pad = parse_pad_type(padtype);
        run_rows(x, out, [&](auto xv, auto yv) { sosfiltfilt(s.data(), ns, xv, yv, pad, padlen, workers); });
      },
      py::arg("sos"), py::arg("x"), py::arg("out"), py::arg("padtype"), py::arg("padlen"), py::arg("workers"),
      "Zero-phase SOS filtering of a 2-D [batch, n] view into out (padlen < 0: scipy's default).");

  m.def(
      "sosfilt",
      [](ecgcore_py::carray<double> sos, py::array x, py::array out, py::object zi, int workers) {
        int ns = 0;
        auto s = sos_vector(sos, ns);
        FilterState st = filter_state(zi, x, 2 * ns);
        double* zf = st.zf.mutable_data();
        run_rows(x, out, [&](auto xv, auto yv) { sosfilt(s.data(), ns, xv, yv, st.zi_ptr, zf, workers); });
        return st.zf;
      },
      py::arg("sos"), py::arg("x"), py::arg("out"), py::arg("zi"), py::arg("workers"),
      "Causal SOS filtering of a 2-D [batch, n] view into out; returns the final state [batch, ns, 2].");

  m.def(
      "filtfilt",
      [](std::vector<double> b, std::vector<double> a, py::array x, py::array out, const std::string& padtype,
         int64_t padlen, int workers) {
        PadType pad = parse_pad_type(padtype);
        run_rows(x, out, [&](auto xv, auto yv) { filtfilt(b, a, xv, yv, pad, padlen, workers); });
      },
      py::arg("b"), py::arg("a"), py::arg("x"), py::arg("out"), py::arg("padtype"), py::arg("padlen"),
      py::arg("workers"));

  m.def(
      "lfilter",
      [](std::vector<double> b, std::vector<double> a, py::array x, py::array out, py::object zi, int workers) {
        const int64_t m = static_cast<int64_t>(std::max(a.size(), b.size())) - 1;
        FilterState st = filter_state(zi, x, m);
        double* zf = st.zf.mutable_data();
        run_rows(x, out, [&](auto xv, auto yv) { lfilter(b, a, xv, yv, st.zi_ptr, zf, workers); });
        return st.zf;
      },
      py::arg("b"), py::arg("a"), py::arg("x"), py::arg("out"), py::arg("zi"), py::arg("workers"));

  m.def(
      "resample_poly_filter", [](int up, int down, double beta) { return to_array(resample_poly_filter(up, down, beta)); },
      py::arg("up"), py::arg("down"), py::arg("beta"));

  m.def("resample_poly_length", &resample_poly_length, py::arg("n_in"), py::arg("up"), py::arg("down"));

  m.def(
      "resample_poly",
      [](py::array x, py::array out, int up, int down, std::vector<double> h, double cval, int workers) {
        run_rows(x, out, [&](auto xv, auto yv) { resample_poly(xv, yv, up, down, h, cval, workers); });
      },
      py::arg("x"), py::arg("out"), py::arg("up"), py::arg("down"), py::arg("h"), py::arg("cval"), py::arg("workers"),
      "Polyphase resampling of a 2-D [batch, n] view into out [batch, n_out].");
}
