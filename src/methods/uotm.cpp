// UOTM: the semi-dual training step as it is (both-relaxed, fixed-source and OTM differ only in
// phi1 / phi2).
#include "uotflow/methods/uotm.h"

#include "uotflow/methods/semidual_method.h"

namespace uotflow {

void register_uotm(MethodRegistry& registry) {
  registry.add(
      "uotm",
      "UOTM: semi-dual unbalanced OT generator (phi1/phi2 = linear gives fixed-source or OTM)", [] {
        return MethodEntry{[](const MethodContext& ctx) -> std::unique_ptr<Method> {
                             return std::make_unique<SemiDualMethod>(
                                 ctx, get<int64_t>(ctx.config, "train.steps"));
                           },
                           [] { return SemiDualOptions().to_json(); }};
      });
}

}  // namespace uotflow
