#pragma once
// The quant layer in one include: transforms, calibration statistics, RTN, GPTQ / MR-GPTQ, ARCQuant, reports.
#include "quant/arc.h"
#include "quant/gptq.h"
#include "quant/group_codec.h"
#include "quant/hadamard.h"
#include "quant/hessian.h"
#include "quant/method.h"
#include "quant/report.h"
#include "quant/rtn.h"
#include "quant/transform.h"
