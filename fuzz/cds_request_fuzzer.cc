// Fuzzes the CDS Hooks request reader with arbitrary bodies, as the HTTP
// gateway receives them: ParseCdsRequest must refuse bad JSON and FHIR with
// INVALID_ARGUMENT and a message starting with a path, never crash; what it
// accepts and ValidateCheckRequest lets through must screen, and each
// alert must make a well-formed card and DetectedIssue.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_support.h"
#include "server/api/validation.h"
#include "server/fhir/cards.h"
#include "server/fhir/cds_request.h"
#include "vigil/v1/decision_support.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const vigil::KnowledgeBase& kb = vigil::fuzz::BundledKb();
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto request = vigil::fhir::ParseCdsRequest(body);
  if (!request.ok()) {
    VIGIL_FUZZ_CHECK(request.status().code() == absl::StatusCode::kInvalidArgument &&
                         !request.status().message().empty(),
                     request.status().ToString());
    return 0;
  }
  vigil::v1::CheckMedicationsUnaryRequest check;
  *check.mutable_patient() = request->patient;
  for (const auto& order : request->draft_orders) {
    *check.add_proposed_medications() = order;
  }
  if (const absl::Status status = vigil::ValidateCheckRequest(check); !status.ok()) {
    VIGIL_FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument, status.ToString());
    return 0;
  }
  const auto result = vigil::fuzz::ScreenAndCheck(kb, check.patient(), check.proposed_medications());
  for (const auto& alert : result.alerts) {
    const auto card = vigil::fhir::CardFromAlert(alert, request->draft_orders);
    VIGIL_FUZZ_CHECK(card.contains("uuid") && card.contains("summary") && card.contains("indicator"), card.dump());
    const auto issue = vigil::fhir::DetectedIssue(alert, request->patient_id);
    VIGIL_FUZZ_CHECK(issue.contains("resourceType"), issue.dump());
  }
  return 0;
}
