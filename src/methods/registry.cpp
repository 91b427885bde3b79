// The method registry: one registration line per method.
#include "uotflow/methods/sjko.h"
#include "uotflow/methods/uotm.h"
#include "uotflow/train/method.h"

namespace uotflow {

MethodRegistry& method_registry() {
  static MethodRegistry registry = [] {
    MethodRegistry r("method");
    register_uotm(r);
    register_sjko(r);
    return r;
  }();
  return registry;
}

}  // namespace uotflow
