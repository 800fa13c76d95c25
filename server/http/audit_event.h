// The audit record of an HTTP call (CDS Hooks, FHIR, the worklist), as the
// gRPC services write theirs: timed at the access, strings cut to the audit
// log's bound.
#ifndef VIGIL_SERVER_HTTP_AUDIT_EVENT_H_
#define VIGIL_SERVER_HTTP_AUDIT_EVENT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "server/common/timestamp.h"
#include "server/store/audit_log.h"
#include "vigil/v1/audit.pb.h"

namespace vigil {

inline v1::AuditEvent HttpAuditEvent(absl::string_view method, v1::AuditAction action, const std::string& agent,
                                     absl::string_view peer, absl::string_view patient_id,
                                     absl::string_view alert_id, const absl::Status& status) {
  v1::AuditEvent event;
  event.set_method(std::string(method));
  event.set_action(action);
  event.set_agent(agent);
  event.set_peer(std::string(peer));
  event.set_patient_id(std::string(patient_id.substr(0, AuditLog::kMaxFieldBytes)));
  event.set_alert_id(std::string(alert_id.substr(0, AuditLog::kMaxFieldBytes)));
  event.set_outcome(static_cast<google::rpc::Code>(status.code()));
  *event.mutable_access_time() = ToTimestamp(absl::Now());
  return event;
}

}  // namespace vigil

#endif  // VIGIL_SERVER_HTTP_AUDIT_EVENT_H_
