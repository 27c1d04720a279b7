// fpq's Python module (nanobind): the formats, quantize / dequantize, the real and pseudo matrix products of
// kernels/cpu, and llama.cpp's Q4_0 x Q8_1 GEMM with the quant_gemm bindings' shapes
// (shared/seeds/quant-gemm-q4_0-bindings.md). Arrays are NumPy: float32 in (other dtypes are converted), new
// arrays out. fpq's errors (bad format, wrong shape, ...) raise ValueError with fpq's one-line message.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/format.h"
#include "formats/quantize.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quant_gemm.h"
#include "util/error.h"
#include "util/parallel.h"

namespace nb = nanobind;

namespace fpq::python {
namespace {

using FloatIn = nb::ndarray<const float, nb::numpy, nb::c_contig, nb::device::cpu>;
using BytesIn = nb::ndarray<const uint8_t, nb::numpy, nb::c_contig, nb::device::cpu>;

// A NumPy array that owns a moved-in vector.
template <typename T>
nb::ndarray<nb::numpy, T> to_numpy(std::vector<T>&& v, std::vector<size_t> shape) {
  auto* owner = new std::vector<T>(std::move(v));
  nb::capsule del(owner, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(owner->data(), shape.size(), shape.data(), del);
}

// Rows x cols of a float32 array whose last axis is the quantization axis (any leading shape).
struct Matrix {
  const float* data;
  int64_t rows, cols;
  std::vector<size_t> shape;
};
Matrix as_matrix(const FloatIn& x, const char* what) {
  if (x.ndim() == 0) fail("{}: need an array with at least one axis, got a scalar", what);
  Matrix m{x.data(), 1, int64_t(x.shape(x.ndim() - 1)), {}};
  for (size_t i = 0; i < x.ndim(); ++i) {
    m.shape.push_back(x.shape(i));
    if (i + 1 < x.ndim()) m.rows *= int64_t(x.shape(i));
  }
  return m;
}

Rounding parse_rounding(const std::string& r) {
  if (r == "nearest") return Rounding::Nearest;
  if (r == "stochastic") return Rounding::Stochastic;
  fail("rounding must be 'nearest' or 'stochastic', got '{}'", r);
}

// A quantized matrix plus the shape of the array it came from.
struct PyQuantized {
  QuantizedTensor q;
  std::vector<size_t> shape;
};

// A weight prepared for the real kernels (tiled codes and scales), with its source for the pseudo path.
struct PyWeight {
  std::shared_ptr<const cpu::PreparedWeight> prepared;
  QuantizedTensor source;
};

PyQuantized quantize_array(const FloatIn& x, const std::string& format, const std::string& rounding, uint64_t seed,
                           std::optional<float> global_scale) {
  const Format f = parse_format(format);
  const Matrix m = as_matrix(x, "quantize");
  if (f.group > 0 && m.cols % f.group != 0)
    fail("quantize: the last axis ({}) is not a multiple of the group size {} of format '{}'", m.cols, f.group, f.name);
  QuantizeOptions opt;
  opt.rounding = parse_rounding(rounding);
  opt.seed = seed;
  if (global_scale) opt.global_scale = *global_scale;
  PyQuantized out;
  {
    nb::gil_scoped_release release;
    out.q = quantize(f, m.data, m.rows, m.cols, opt);
  }
  out.shape = m.shape;
  return out;
}

nb::ndarray<nb::numpy, float> dequantize_array(const PyQuantized& q) {
  std::vector<float> y;
  {
    nb::gil_scoped_release release;
    y = dequantize(q.q);
  }
  return to_numpy(std::move(y), q.shape);
}

// Y[M x N] = X[M x K] . W^T, X float32 (M x K, or K for one row).
nb::ndarray<nb::numpy, float> matmul_array(const FloatIn& x, const PyWeight& w, std::optional<std::string> act_format,
                                           const std::string& kernel, const std::string& sums) {
  const int64_t n = cpu::weight_rows(*w.prepared), k = cpu::weight_cols(*w.prepared);
  if (x.ndim() != 1 && x.ndim() != 2) fail("matmul: x must have 1 or 2 axes (K or M x K), got {}", x.ndim());
  const int64_t xk = int64_t(x.shape(x.ndim() - 1)), m = x.ndim() == 2 ? int64_t(x.shape(0)) : 1;
  if (xk != k) fail("matmul: x has {} columns, the weight {}", xk, k);
  if (sums != "exact" && sums != "float32") fail("sums must be 'exact' or 'float32', got '{}'", sums);
  if (kernel != "real" && kernel != "pseudo") fail("kernel must be 'real' or 'pseudo', got '{}'", kernel);
  std::optional<Format> af;
  if (act_format) af = parse_format(*act_format);
  std::vector<float> y(size_t(m * n));
  {
    nb::gil_scoped_release release;
    if (kernel == "pseudo") {
      if (af) {
        const QuantizedTensor xq = cpu::quantize_activations(*af, x.data(), m, k);
        cpu::matmul_pseudo(&xq, nullptr, m, w.source, y.data());
      } else {
        cpu::matmul_pseudo(nullptr, x.data(), m, w.source, y.data());
      }
    } else {
      cpu::linear(*w.prepared, af ? &*af : nullptr, x.data(), m, y.data(), {},
                  sums == "exact" ? cpu::Sums::Exact : cpu::Sums::Float32);
    }
  }
  return to_numpy(std::move(y), x.ndim() == 2 ? std::vector<size_t>{size_t(m), size_t(n)} : std::vector<size_t>{size_t(n)});
}

// ggml blocks: x[..., K] -> uint8 [..., K/32, block bytes].
template <auto Fn>
nb::ndarray<nb::numpy, uint8_t> quantize_blocks(const FloatIn& x, int block_bytes, const char* name) {
  const Matrix m = as_matrix(x, name);
  if (m.cols % 32 != 0) fail("{}: the last axis ({}) is not a multiple of 32", name, m.cols);
  std::vector<uint8_t> q;
  {
    nb::gil_scoped_release release;
    q = Fn(m.data, m.rows, m.cols);
  }
  std::vector<size_t> shape(m.shape.begin(), m.shape.end() - 1);
  shape.push_back(size_t(m.cols / 32));
  shape.push_back(size_t(block_bytes));
  return to_numpy(std::move(q), shape);
}

// uint8 [..., K/32, block bytes] -> rows (the product of the leading axes).
int64_t block_rows(const BytesIn& q, int64_t k, int block_bytes, const char* what) {
  if (k <= 0 || k % 32 != 0) fail("{}: K must be a positive multiple of 32, got {}", what, k);
  if (q.ndim() < 2 || int64_t(q.shape(q.ndim() - 1)) != block_bytes || int64_t(q.shape(q.ndim() - 2)) != k / 32)
    fail("{}: expected a uint8 array of shape [..., {}, {}] for K = {}", what, k / 32, block_bytes, k);
  int64_t rows = 1;
  for (size_t i = 0; i + 2 < q.ndim(); ++i) rows *= int64_t(q.shape(i));
  return rows;
}

}  // namespace

void register_model(nb::module_& m);  // model.cpp

}  // namespace fpq::python

NB_MODULE(_fpq, m) {
  using namespace fpq;
  using namespace fpq::python;
  m.doc() = "fpq: low-bit floating-point quantization (formats, quantize/dequantize, real low-bit CPU kernels)";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const fpq::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def(
      "formats",
      [] {
        std::vector<nb::dict> out;
        for (const FormatInfo& fi : format_table()) {
          nb::dict d;
          d["name"] = fi.name;
          d["description"] = fi.description;
          d["spec"] = fi.format.spec();
          d["element_bits"] = fi.format.element->bits;
          d["group"] = fi.format.group;
          d["bits_per_value"] = fi.format.bits_per_value();
          out.push_back(d);
        }
        return out;
      },
      "Every named format: name, description, canonical spec, element bits, group (0: per row), bits per value.");
  m.def("info", [] {
    nb::dict d;
    d["isa"] = std::string(cpu::active_isa_name());
    d["threads"] = num_threads();
    return d;
  }, "The CPU kernel variant in use and the thread count.");
  m.def("set_isa", [](const std::string& name) { return std::string(cpu::isa_name(cpu::set_isa(cpu::parse_isa(name)))); },
        nb::arg("name"), "Force a kernel variant (scalar, avx2, avx512; capped at what the CPU has). Returns the one in use.");

  nb::class_<PyQuantized>(m, "QuantizedTensor", "Packed codes, scales (and zero points, global scale) of a matrix.")
      .def_prop_ro("format", [](const PyQuantized& q) { return q.q.format.name; })
      .def_prop_ro("shape", [](const PyQuantized& q) { return q.shape; })
      // (copies: the arrays own their bytes, so they outlive the tensor)
      .def_prop_ro("codes", [](const PyQuantized& q) { return to_numpy(std::vector<uint8_t>(q.q.codes), {q.q.codes.size()}); },
                   nb::rv_policy::automatic)
      .def_prop_ro("scales", [](const PyQuantized& q) { return to_numpy(std::vector<uint8_t>(q.q.scales), {q.q.scales.size()}); },
                   nb::rv_policy::automatic)
      .def_prop_ro("zeros", [](const PyQuantized& q) { return to_numpy(std::vector<uint8_t>(q.q.zeros), {q.q.zeros.size()}); },
                   nb::rv_policy::automatic)
      .def_prop_ro(
          "global_scale",
          [](const PyQuantized& q) { return to_numpy(std::vector<float>(q.q.global_scale), {q.q.global_scale.size()}); },
          nb::rv_policy::automatic)
      .def_prop_ro("nbytes", [](const PyQuantized& q) { return q.q.storage_bytes(); })
      .def("__repr__", [](const PyQuantized& q) {
        return "QuantizedTensor(format='" + q.q.format.name + "', rows=" + std::to_string(q.q.rows) +
               ", cols=" + std::to_string(q.q.cols) + ")";
      });

  m.def("quantize", &quantize_array, nb::arg("x"), nb::arg("format"), nb::arg("rounding") = "nearest",
        nb::arg("seed") = 0, nb::arg("global_scale") = nb::none(),
        "Quantize float32 x (the last axis is the quantization axis) to a format (see formats()).");
  m.def("dequantize", &dequantize_array, nb::arg("q"), "Dequantize to float32, in the original shape.");
  m.def(
      "qdq",
      [](const FloatIn& x, const std::string& format, const std::string& rounding, uint64_t seed) {
        return dequantize_array(quantize_array(x, format, rounding, seed, std::nullopt));
      },
      nb::arg("x"), nb::arg("format"), nb::arg("rounding") = "nearest", nb::arg("seed") = 0,
      "Quantize then dequantize (fake quantization).");

  nb::class_<PyWeight>(m, "Weight", "A weight matrix prepared for the real kernels (prepare()).")
      .def_prop_ro("shape", [](const PyWeight& w) {
        return std::make_tuple(cpu::weight_rows(*w.prepared), cpu::weight_cols(*w.prepared));
      })
      .def_prop_ro("format", [](const PyWeight& w) { return cpu::weight_format(*w.prepared).name; });
  m.def(
      "prepare",
      [](const PyQuantized& q) {
        if (q.shape.size() != 2) fail("prepare: the weight must be a matrix (N x K), got {} axes", q.shape.size());
        nb::gil_scoped_release release;
        return PyWeight{cpu::prepare_weight(q.q), q.q};
      },
      nb::arg("w"), "Prepare a quantized N x K weight for matmul() (once per weight).");
  m.def("matmul", &matmul_array, nb::arg("x"), nb::arg("w"), nb::arg("act_format") = nb::none(),
        nb::arg("kernel") = "real", nb::arg("sums") = "exact",
        "Y = X . W^T. act_format None: weight-only (float32 activations); else X is quantized per row and group to "
        "it first (NVFP4's global scale over all of X; 'e2m1/e4m3/g16/rowglobal' takes one per row, as the model "
        "runtime does). kernel 'real' (packed codes in registers) or 'pseudo' (dequantize, then OpenBLAS sgemm); "
        "sums 'exact' (the pseudo path's float64 group sums) or 'float32'.");

  // The quant_gemm API (llama.cpp blocks, byte for byte as ggml's reference quantizers).
  m.def("quantize_q4_0", [](const FloatIn& x) { return quantize_blocks<&cpu::quantize_q4_0>(x, 18, "quantize_q4_0"); },
        nb::arg("x"), "float32 [..., K] (K % 32 == 0) -> uint8 [..., K/32, 18] (ggml block_q4_0).");
  m.def("quantize_q8_1", [](const FloatIn& x) { return quantize_blocks<&cpu::quantize_q8_1>(x, 36, "quantize_q8_1"); },
        nb::arg("x"), "float32 [..., K] (K % 32 == 0) -> uint8 [..., K/32, 36] (ggml block_q8_1).");
  m.def(
      "dequantize_q4_0",
      [](const BytesIn& q, int64_t k) {
        const int64_t rows = block_rows(q, k, 18, "dequantize_q4_0");
        std::vector<float> y;
        {
          nb::gil_scoped_release release;
          y = cpu::dequantize_q4_0(q.data(), rows, k);
        }
        std::vector<size_t> shape;
        for (size_t i = 0; i + 2 < q.ndim(); ++i) shape.push_back(q.shape(i));
        shape.push_back(size_t(k));
        return to_numpy(std::move(y), shape);
      },
      nb::arg("x_q"), nb::arg("K"), "uint8 [..., K/32, 18] -> float32 [..., K].");
  m.def(
      "gemm_q4_0_q8_1",
      [](const BytesIn& wq, const BytesIn& aq, int64_t M, int64_t N, int64_t K) {
        if (M <= 0 || N <= 0) fail("gemm_q4_0_q8_1: M and N must be positive, got {} and {}", M, N);
        if (block_rows(wq, K, 18, "gemm_q4_0_q8_1 weight_q") != M)
          fail("gemm_q4_0_q8_1: weight_q holds {} rows, M = {}", block_rows(wq, K, 18, "weight_q"), M);
        if (block_rows(aq, K, 36, "gemm_q4_0_q8_1 activation_q") != N)
          fail("gemm_q4_0_q8_1: activation_q holds {} rows, N = {}", block_rows(aq, K, 36, "activation_q"), N);
        std::vector<float> c;
        {
          nb::gil_scoped_release release;
          c = cpu::gemm_q4_0_q8_1(wq.data(), aq.data(), M, N, K);
        }
        return to_numpy(std::move(c), {size_t(M), size_t(N)});
      },
      nb::arg("weight_q"), nb::arg("activation_q"), nb::arg("M"), nb::arg("N"), nb::arg("K"),
      "C[M, N] = W[M, K] . A[N, K]^T, W in Q4_0 ([M, K/32, 18]) and A in Q8_1 ([N, K/32, 36]).");

  register_model(m);
}
