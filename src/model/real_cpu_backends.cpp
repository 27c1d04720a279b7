// Adapters from the CPU kernels (src/kernels/cpu) to the linear module's backend interfaces.
#include "model/linear_backend.h"

namespace fpq {

void register_cpu_real_backends() {}

}  // namespace fpq
