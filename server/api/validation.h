// Validation of vigil.v1 requests, in one place: the transports call these
// before anything reaches the domain, and a failure names the offending
// field ("patient.labs[2].unit: is empty").
#ifndef VIGIL_SERVER_API_VALIDATION_H_
#define VIGIL_SERVER_API_VALIDATION_H_

#include <cstddef>

#include "absl/status/status.h"
#include "vigil/v1/alert_feed.pb.h"
#include "vigil/v1/audit.pb.h"
#include "vigil/v1/decision_support.pb.h"
#include "vigil/v1/patient.pb.h"

namespace vigil {

// Limits on request sizes.
inline constexpr int kMaxMedications = 500;
inline constexpr int kMaxConditions = 500;
inline constexpr int kMaxAllergies = 500;
inline constexpr int kMaxLabs = 500;
inline constexpr size_t kMaxStringBytes = 64 * 1024;
inline constexpr size_t kMaxIdBytes = 256;

// Validates a patient's context. `prefix` names the field in messages
// ("patient"). Returns InvalidArgument whose message starts with the path of
// the offending field, such as "patient.labs[2].unit: is empty".
absl::Status ValidatePatient(const v1::Patient& patient, const std::string& prefix);

// Validates one medication order at `path`.
absl::Status ValidateMedicationOrder(const v1::MedicationOrder& order, const std::string& path);

// Validates a check request: CheckMedicationsRequest or
// CheckMedicationsUnaryRequest (the same fields).
template <typename CheckRequest>
absl::Status ValidateCheckRequest(const CheckRequest& request);

// Validation of the feed's and the admin's requests (field paths in
// messages). A patient id must be valid UTF-8 of at most kMaxIdBytes, with
// no surrounding whitespace, control, format or bidirectional characters.
absl::Status ValidatePatientId(const std::string& patient_id, const std::string& field);
absl::Status ValidateSubscribeRequest(const v1::SubscribeRequest& request);
absl::Status ValidateAcknowledgeRequest(const v1::AcknowledgeAlertRequest& request);
absl::Status ValidateListAlertsRequest(const v1::ListAlertsRequest& request);
absl::Status ValidateListAuditEventsRequest(const v1::ListAuditEventsRequest& request);

}  // namespace vigil

#endif  // VIGIL_SERVER_API_VALIDATION_H_
