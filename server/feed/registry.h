// The patient registry: stored patients, their active alerts, and the events
// that record every change of those alerts. The domain side of the Patients
// and AlertFeed services; it blocks on storage, so call it from threads the
// application owns, never from gRPC's callback threads.
#ifndef VIGIL_SERVER_FEED_REGISTRY_H_
#define VIGIL_SERVER_FEED_REGISTRY_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/feed/event_hub.h"
#include "server/kb/holder.h"
#include "server/store/store.h"
#include "vigil/v1/alert_feed.pb.h"
#include "vigil/v1/patients.pb.h"

namespace vigil {

// Who makes a change, as the transport authenticated the call.
struct Agent {
  // The caller's name from the tokens file ("development" in development
  // mode).
  std::string name;
  // The client certificate's subject under mutual TLS, or empty.
  std::string certificate_subject;
};

// Patient ids are keyed in Unicode NFC form (ToNfc): two canonically
// equivalent spellings of an id are one patient, stored under the NFC one.
class PatientRegistry {
 public:
  PatientRegistry(Store* store, const KnowledgeBaseHolder* kb, EventHub* hub) : store_(store), kb_(kb), hub_(hub) {}

  // Creates or replaces a patient's context and re-screens it: alerts that
  // appear are raised, alerts that no longer apply are resolved, an
  // overridden alert whose facts are unchanged stays suppressed.
  absl::StatusOr<v1::PutPatientResponse> PutPatient(const v1::Patient& patient);

  absl::StatusOr<v1::Patient> GetPatient(const std::string& patient_id);

  // Deletes a patient; their active alerts are resolved.
  absl::StatusOr<v1::DeletePatientResponse> DeletePatient(const std::string& patient_id);

  // Acknowledges an alert on behalf of `agent`, the authenticated caller
  // (recorded in Acknowledgement.agent; request.user is kept as the
  // clinician the caller acts for).
  absl::StatusOr<v1::AcknowledgeAlertResponse> Acknowledge(const v1::AcknowledgeAlertRequest& request,
                                                           const Agent& agent);

  // Acknowledges an alert that was shown to a user outside the feed (a CDS
  // Hooks card for `patient_id`): an alert of a stored patient is
  // acknowledged as Acknowledge does; any other alert is stored, for the
  // patient's id, with its acknowledgement, and the ACKNOWLEDGED event is
  // published, so that the feed and the audit trail see it and an override
  // holds when the patient is stored later. `request.alert_id` is ignored.
  absl::StatusOr<v1::AcknowledgeAlertResponse> AcknowledgeShown(const std::string& patient_id, const v1::Alert& alert,
                                                                const v1::AcknowledgeAlertRequest& request,
                                                                const Agent& agent);

  absl::StatusOr<v1::ListAlertsResponse> ListAlerts(const v1::ListAlertsRequest& request);

  // The fingerprint of the facts behind an alert: severity, rule, drugs and
  // evidence. An override holds while it does not change.
  static std::string Fingerprint(const v1::Alert& alert);

 private:
  absl::StatusOr<CommitResult> CommitAndPublish(const PatientChange& change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Writes `alert` (acknowledged) and its ACKNOWLEDGED event carrying `ack`.
  absl::StatusOr<v1::AcknowledgeAlertResponse> CommitAcknowledgement(const std::string& patient_id, int64_t revision,
                                                                     const store::v1::StoredAlert& alert,
                                                                     const v1::Acknowledgement& ack)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  Store* const store_;
  const KnowledgeBaseHolder* const kb_;
  EventHub* const hub_;
  // Serializes writes, so that events are published in commit order.
  absl::Mutex write_mu_;
};


}  // namespace vigil

#endif  // VIGIL_SERVER_FEED_REGISTRY_H_
