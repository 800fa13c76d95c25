// The screening engine: checks medications against a patient's context.
#ifndef VIGIL_SERVER_ENGINE_SCREENING_H_
#define VIGIL_SERVER_ENGINE_SCREENING_H_

#include <optional>
#include <vector>

#include "absl/time/civil_time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "server/common/dates.h"
#include "server/engine/answer_view.h"
#include "server/kb/knowledge_base.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/decision_support.pb.h"
#include "vigil/v1/patient.pb.h"

namespace vigil {

// What a check is made for besides the patient and the orders.
struct ScreenOptions {
  // The date of the check: the patient's age and the age of lab results are
  // computed on it.
  absl::CivilDay as_of;

  // How the answer is shaped for the caller (view, sources by reference),
  // applied once every alert is built and ranked.
  AnswerShape shape;

  // Today's date (UTC).
  static ScreenOptions Today();
};


// The outcome of one screening.
struct ScreeningResult {
  // Alerts, most severe first; ties by kind, then id, so the order is stable.
  std::vector<v1::Alert> alerts;
  // What was screened; `alert_count` matches `alerts`.
  v1::CheckSummary summary;
};

// Screens `proposed` for `patient` against `kb`: drug-condition (codes and
// labs), allergy (drug, class, cross-sensitivity), drug-drug (both directions,
// proposed against current and against each other), duplicate therapy,
// additive effects, and every reference or fact that could not be screened.
// With no proposed medications the current list is reviewed as a whole.
// The request must have passed ValidateCheckRequest; the engine itself never
// fails on content, it reports what it could not screen as alerts.
ScreeningResult Screen(const KnowledgeBase& kb, const v1::Patient& patient,
                       const google::protobuf::RepeatedPtrField<v1::MedicationOrder>& proposed,
                       const ScreenOptions& options = ScreenOptions::Today());

// The same screening, written into `result` (its alerts and summary are
// replaced). Everything the check builds is allocated where `result` lives:
// on its protobuf arena when it has one, which makes a check a handful of
// heap allocations (the alerts' longer strings) instead of hundreds of
// small ones. The transport builds its response this way.
void ScreenInto(const KnowledgeBase& kb, const v1::Patient& patient,
                const google::protobuf::RepeatedPtrField<v1::MedicationOrder>& proposed,
                v1::CheckMedicationsUnaryResponse* result, const ScreenOptions& options = ScreenOptions::Today());

// The stable id of a finding for a patient: the same inputs always give the
// same id, in any process.
std::string MakeAlertId(absl::string_view patient_id, absl::string_view finding_key);

}  // namespace vigil

#endif  // VIGIL_SERVER_ENGINE_SCREENING_H_
