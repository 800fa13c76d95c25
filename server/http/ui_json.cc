#include "server/http/ui_json.h"

#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "server/common/timestamp.h"

namespace vigil {

using nlohmann::json;

std::string SeverityCode(v1::Severity severity) {
  return std::string(absl::StripPrefix(v1::Severity_Name(severity), "SEVERITY_"));
}

std::string KindCode(v1::AlertKind kind) {
  return std::string(absl::StripPrefix(v1::AlertKind_Name(kind), "ALERT_KIND_"));
}

json WorklistRowJson(const WorklistEntry& entry) {
  json drugs = json::array();
  for (const auto& drug : entry.alert.drug_ids()) {
    drugs.push_back(drug);
  }
  return {{"alertId", entry.alert.id()},
          {"patientId", entry.patient_id},
          {"severity", SeverityCode(entry.alert.severity())},
          {"severityRank", static_cast<int>(entry.alert.severity())},
          {"kind", KindCode(entry.alert.kind())},
          {"summary", entry.alert.summary()},
          {"drugIds", drugs},
          {"eventNumber", entry.event_number},
          {"raisedTime", Rfc3339(FromTimestamp(entry.raised_time))}};
}

json FeedEventJson(int64_t number, const v1::AlertEvent& event) {
  json out = {{"n", number},
              {"type", std::string(absl::StripPrefix(v1::AlertEventType_Name(event.type()), "ALERT_EVENT_TYPE_"))},
              {"patientId", event.patient_id()},
              {"alertId", event.alert().id()},
              {"time", Rfc3339(FromTimestamp(event.event_time()))},
              {"erased", event.erased()}};
  if (event.type() == v1::ALERT_EVENT_TYPE_RAISED && !event.erased()) {
    WorklistEntry entry;
    entry.patient_id = event.patient_id();
    entry.alert = event.alert();
    entry.event_number = number;
    entry.raised_time = event.event_time();
    out["row"] = WorklistRowJson(entry);
  }
  if (event.has_acknowledgement()) {
    out["ack"] = ProtoJson(event.acknowledgement());
  }
  out["severity"] = SeverityCode(event.alert().severity());
  out["summary"] = event.alert().summary();
  return out;
}

json ProtoJson(const google::protobuf::Message& message) {
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(message, &text).ok()) {
    return json::object();
  }
  return json::parse(text, nullptr, false);
}

std::string Dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace vigil
