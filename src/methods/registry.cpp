// The method registry, owned by the methods layer: one registration line per method. Programs
// and tests may add their own with method_registry().add(...).
#include "uotflow/methods/autoencoder.h"
#include "uotflow/methods/jko_icnn.h"
#include "uotflow/methods/method.h"
#include "uotflow/methods/sjko.h"
#include "uotflow/methods/swjko.h"
#include "uotflow/methods/uotm.h"

namespace uotflow {

MethodRegistry& method_registry() {
  static MethodRegistry registry = [] {
    MethodRegistry r("method");
    register_uotm(r);
    register_sjko(r);
    register_swjko(r);
    register_jko_icnn(r);
    register_autoencoder(r);
    return r;
  }();
  return registry;
}

}  // namespace uotflow
