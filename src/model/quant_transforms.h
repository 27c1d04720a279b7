#pragma once
// Input transforms of the quant layer installed in the linear module's transform slot: block transforms
// (Hadamard with optional random signs, dense GxG, shared or per block) and ARCQuant's reorder + residual
// channels. Both save and load losslessly (registered loaders "block" and "arc").
#include <memory>
#include <optional>

#include "formats/quantize.h"
#include "model/input_transform.h"
#include "quant/arc.h"
#include "quant/transform.h"

namespace fpq {

std::shared_ptr<const InputTransform> make_block_input_transform(quant::BlockTransform t);
// ARC: `act` is the activation format the residual is computed with (nullopt: weight-residual only).
std::shared_ptr<const InputTransform> make_arc_input_transform(quant::ArcPlan plan, std::optional<Format> act,
                                                               std::optional<float> act_global_scale);

// Registers the loaders (idempotent; called by checkpoint loading).
void register_quant_transform_loaders();

}  // namespace fpq
