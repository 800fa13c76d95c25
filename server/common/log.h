// Structured logging: one JSON object a line on standard error. Logs carry
// ids and counts only, never health data.
#ifndef VIGIL_SERVER_COMMON_LOG_H_
#define VIGIL_SERVER_COMMON_LOG_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace vigil {

using LogFields = std::vector<std::pair<std::string, std::string>>;

void Log(absl::string_view level, absl::string_view event, const LogFields& fields);
inline void LogInfo(absl::string_view event, const LogFields& fields) { Log("info", event, fields); }
inline void LogWarning(absl::string_view event, const LogFields& fields) { Log("warning", event, fields); }
inline void LogError(absl::string_view event, const LogFields& fields) { Log("error", event, fields); }

// Escapes a string for a JSON string literal (without the quotes).
std::string JsonEscape(absl::string_view text);

}  // namespace vigil

#endif  // VIGIL_SERVER_COMMON_LOG_H_
