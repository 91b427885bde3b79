// UOTM: generative modeling through the semi-dual form of unbalanced OT (both-relaxed, fixed-source
// and OTM are the same method with other phi1 / phi2).
#pragma once

#include "uotflow/methods/method.h"

namespace uotflow {

/// Registers "uotm" in the method registry.
void register_uotm(MethodRegistry& registry);

}  // namespace uotflow
