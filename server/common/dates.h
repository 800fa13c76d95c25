// Dates as requests carry them (ISO 8601 text).
#ifndef VIGIL_SERVER_COMMON_DATES_H_
#define VIGIL_SERVER_COMMON_DATES_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"

namespace vigil {

// The date of an ISO 8601 date or date-time ("2026-12-04",
// "2026-12-04T10:00:00Z"): its first ten characters; nullopt when they are
// not a real date.
std::optional<absl::CivilDay> ParseIsoDate(absl::string_view text);

}  // namespace vigil

#endif  // VIGIL_SERVER_COMMON_DATES_H_
