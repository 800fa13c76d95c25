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

std::optional<absl::CivilDay> ParseIsoDate(absl::string_view s) {
  if (s.size() < 10 || s[4] != '-' || s[7] != '-' || (s.size() > 10 && s[10] != 'T' && s[10] != ' ')) {
    return std::nullopt;
  }
  for (size_t i : {0u, 1u, 2u, 3u, 5u, 6u, 8u, 9u}) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) {
      return std::nullopt;
    }
  }
  const int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
  const int month = (s[5] - '0') * 10 + (s[6] - '0');
  const int day = (s[8] - '0') * 10 + (s[9] - '0');
  // CivilDay normalizes out-of-range fields (February 30 becomes March 1 or
  // 2), so a date that does not survive the round trip does not exist.
  const absl::CivilDay civil(year, month, day);
  if (civil.year() != year || civil.month() != month || civil.day() != day) {
    return std::nullopt;
  }
  return civil;
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
