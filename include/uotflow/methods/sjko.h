// S-JKO: a Wasserstein gradient flow whose JKO steps are fixed-source UOT problems, trained with
// warm starts so that K steps cost O(K).
#pragma once

#include "uotflow/methods/method.h"

namespace uotflow {

/// Registers "sjko" in the method registry.
void register_sjko(MethodRegistry& registry);

}  // namespace uotflow
