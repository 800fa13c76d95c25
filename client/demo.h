// The situations of the silperisone monograph that `vigil demo` runs.
#ifndef VIGIL_CLIENT_DEMO_H_
#define VIGIL_CLIENT_DEMO_H_

#include <string>
#include <vector>

#include "vigil/v1/decision_support.pb.h"

namespace vigil_client {

// One situation: a request and the findings it must (and must not) raise.
struct DemoScenario {
  std::string title;
  vigil::v1::CheckMedicationsRequest request;
  // Rule ids, or alert kinds written "kind:ALERT_KIND_...", that must appear.
  std::vector<std::string> expect;
  // Rule ids that must not appear; "*" means no alert at all.
  std::vector<std::string> expect_absent;
};

// The scenarios, in the order the demo shows them.
std::vector<DemoScenario> DemoScenarios();

}  // namespace vigil_client

#endif  // VIGIL_CLIENT_DEMO_H_
