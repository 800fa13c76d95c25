#include "server/engine/screening.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/engine/check.h"

namespace vigil {
namespace {

// The check kinds, in the order they run (the alerts are ranked afterwards,
// so the order decides nothing a caller sees). A new kind is one function in
// its own file, declared in check.h and listed here.
using Check = void (*)(engine_internal::CheckInput&, engine_internal::AlertBuilder&);
constexpr Check kChecks[] = {
    engine_internal::CheckCoverage,     engine_internal::CheckContraindications, engine_internal::CheckAllergies,
    engine_internal::CheckInteractions, engine_internal::CheckDuplicates,        engine_internal::CheckBurden,
};

}  // namespace

std::string MakeAlertId(absl::string_view patient_id, absl::string_view finding_key) {
  return engine_internal::PatientIdHash(patient_id).Update(finding_key).Id();
}

ScreenOptions ScreenOptions::Today() {
  ScreenOptions options;
  options.as_of = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
  return options;
}

void ScreenInto(const KnowledgeBase& kb, const v1::Patient& patient,
                const google::protobuf::RepeatedPtrField<v1::MedicationOrder>& proposed,
                v1::CheckMedicationsUnaryResponse* result, const ScreenOptions& options) {
  using namespace engine_internal;  // NOLINT: the engine's own internals
  CheckInput in(kb, patient, proposed, options);
  AlertBuilder out(in, result);
  for (const Check check : kChecks) {
    check(in, out);
  }
  out.Finish();
  ApplyAnswerShape(options.shape, result);
}

ScreeningResult Screen(const KnowledgeBase& kb, const v1::Patient& patient,
                       const google::protobuf::RepeatedPtrField<v1::MedicationOrder>& proposed,
                       const ScreenOptions& options) {
  v1::CheckMedicationsUnaryResponse screened;
  ScreenInto(kb, patient, proposed, &screened, options);
  ScreeningResult result;
  result.alerts.reserve(static_cast<size_t>(screened.alerts_size()));
  for (auto& alert : *screened.mutable_alerts()) {
    result.alerts.push_back(std::move(alert));
  }
  result.summary = std::move(*screened.mutable_summary());
  return result;
}

}  // namespace vigil
