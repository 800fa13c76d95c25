// CDS Hooks cards and FHIR R4 resources made from Vigil's alerts: the card an
// EHR shows for an alert (summary, markdown detail, indicator, sources,
// override reasons, suggestions), the DetectedIssue that records it, and the
// OperationOutcome of a refused request.
#ifndef VIGIL_SERVER_FHIR_CARDS_H_
#define VIGIL_SERVER_FHIR_CARDS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/patient.pb.h"

namespace vigil::fhir {

// The code system of Vigil's override reasons (the Codings a card offers in
// `overrideReasons` and feedback sends back).
inline constexpr char kOverrideReasonSystem[] = "urn:vigil:v1:override-reason";

// The card's uuid: a name-based UUID (RFC 4122 version 5) of the alert id,
// so the same finding for the same patient always has the same card uuid.
std::string CardUuid(absl::string_view alert_id);

// The Codings of Vigil's override reasons.
nlohmann::json OverrideReasons();

// The indicator of a severity: "critical" for contraindicated, "warning" for
// major and moderate, "info" below.
const char* Indicator(v1::Severity severity);

// A card for `alert`. `draft_orders` are the hook's draft orders: a card
// about a proposed drug offers to cancel the draft orders of that drug (a
// `delete` action on "MedicationRequest/<id>") where the alert is
// contraindicated or major, or a duplicate.
nlohmann::json CardFromAlert(const v1::Alert& alert, const std::vector<v1::MedicationOrder>& draft_orders);

// The FHIR R4 DetectedIssue recording `alert` for `patient_id`: status
// final, severity high/moderate/low, code from v3 ActCode (DRG, DUPTHPY,
// ALGY, COND...), implicated medications, evidence, mitigation (the
// acknowledgement, when given).
nlohmann::json DetectedIssue(const v1::Alert& alert, absl::string_view patient_id);

// A FHIR OperationOutcome with one issue: `code` from the FHIR IssueType
// value set ("invalid", "required", "security", "not-found", "exception",
// "throttled"), `diagnostics` for a person, and `expression` (a path, may be
// empty).
nlohmann::json OperationOutcome(absl::string_view code, absl::string_view diagnostics,
                                absl::string_view expression = "");

}  // namespace vigil::fhir

#endif  // VIGIL_SERVER_FHIR_CARDS_H_
