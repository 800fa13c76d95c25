// The worklist API's JSON: alert rows, feed events and protobuf messages as
// the browser reads them.
#ifndef VIGIL_SERVER_HTTP_UI_JSON_H_
#define VIGIL_SERVER_HTTP_UI_JSON_H_

#include <cstdint>
#include <string>

#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"
#include "server/http/ui_worklist.h"
#include "vigil/v1/alert_feed.pb.h"

namespace vigil {

// "SEVERITY_MAJOR" -> "MAJOR", "ALERT_KIND_ALLERGY" -> "ALLERGY", ...
std::string SeverityCode(v1::Severity severity);
std::string KindCode(v1::AlertKind kind);

// A worklist row: {alertId, patientId, severity, kind, summary, drugIds,
// eventNumber, raisedTime}.
nlohmann::json WorklistRowJson(const WorklistEntry& entry);

// A feed event for the event stream: {n, type, patientId, alertId, row (for
// RAISED), ack (for ACKNOWLEDGED)}.
nlohmann::json FeedEventJson(int64_t number, const v1::AlertEvent& event);

// A message in protobuf's JSON mapping (lowerCamelCase fields, enum names).
nlohmann::json ProtoJson(const google::protobuf::Message& message);

// Serializes; invalid UTF-8 is replaced, never thrown.
std::string Dump(const nlohmann::json& value);

}  // namespace vigil

#endif  // VIGIL_SERVER_HTTP_UI_JSON_H_
