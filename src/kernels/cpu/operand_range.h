#pragma once
// Internal: the magnitudes an operand brings into a real kernel, so the driver can keep the float32 kernels'
// intermediates (sums of value x scale before the global scales, unit scales carrying the integer views' powers
// of two) inside float32's normal range, and send the rare operands that could leave it to the float64 kernel.
#include <cstdint>
#include <vector>

#include "formats/quantize.h"
#include "kernels/cpu/prepared.h"

namespace fpq::cpu::detail {

// (OperandRange: prepared.h)
// From the codes' value table and the tensor's scales (not its codes: a bound, cheap per call).
OperandRange operand_range(const QuantizedTensor& q, const CodeInfo& ci);
// Float activations (weight-only), per row of k values: smallest nonzero and largest finite |x|.
std::vector<OperandRange> float_row_ranges(const float* x, int64_t m, int64_t k);
// The range of several operands together.
OperandRange merged(const std::vector<OperandRange>& parts);

// Whether every intermediate of the float32-summing kernels stays within [2^-100, 2^120] for a product of these
// operands over k columns: the largest sum |w| |x| k (times global scales above 1) and, with `small`, the
// smallest nonzero product (times global scales below 1), with 2^20 to spare for the integer views' powers of two.
// (The weight-only float kernel handles small activations itself: ActView::weight_only.)
bool float32_safe(const OperandRange& w, const OperandRange& x, int64_t k, bool small = true);

}  // namespace fpq::cpu::detail
