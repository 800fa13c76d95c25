// The CDS Hooks 2.0 service: discovery, the order-select and order-sign
// services, feedback, and FHIR DetectedIssue for stored patients. Transport
// free: the HTTP gateway (gateway.h) passes each request's path, body and
// Authorization header and sends back the reply, so the whole exchange is
// testable without a socket.
#ifndef VIGIL_SERVER_HTTP_CDS_HOOKS_H_
#define VIGIL_SERVER_HTTP_CDS_HOOKS_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/feed/registry.h"
#include "server/kb/holder.h"
#include "server/security/auth.h"
#include "server/security/jwt.h"
#include "server/store/audit_log.h"
#include "server/store/store.h"
#include "vigil/v1/alert.pb.h"

namespace vigil {

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// A GET of a FHIR query on the EHR's FHIR server: (absolute URL, value of
// the Authorization header or empty) -> the body, or why it failed.
using FhirFetch = std::function<absl::StatusOr<std::string>(const std::string& url, const std::string& authorization)>;

struct CdsHooksOptions {
  // The service's public base URL, such as "https://vigil.example.org:8443".
  // A token's `aud` must be <base_url>/cds-services/<service id>.
  std::string base_url;
  // How long a card is remembered in the store (Store::RememberCards), by
  // every server sharing it, so that order-sign does not show again what
  // order-select showed, and feedback can name it.
  absl::Duration card_memory = absl::Hours(2);
};

class CdsHooks {
 public:
  // `jwt` null: no CDS client is trusted by token (development mode when
  // `auth` is in development mode too; the listener is loopback only then).
  // `auth` authorizes the FHIR read (the tokens of the gRPC API).
  // Cards shown are remembered in `store`, the registry's.
  CdsHooks(CdsHooksOptions options, const KnowledgeBaseHolder* kb, PatientRegistry* registry, Store* store,
           AuditLog* audit, const Authenticator* auth, CdsJwtVerifier* jwt, FhirFetch fetch);

  // Sets the base URL tokens must name (before the first call).
  void set_base_url(std::string base_url) { options_.base_url = std::move(base_url); }

  // GET /cds-services
  HttpReply Discovery() const;
  // POST /cds-services/{id}
  HttpReply Call(absl::string_view service_id, absl::string_view body, absl::string_view authorization,
                 absl::string_view peer);
  // POST /cds-services/{id}/feedback
  HttpReply Feedback(absl::string_view service_id, absl::string_view body, absl::string_view authorization,
                     absl::string_view peer);
  // GET /fhir/DetectedIssue?patient=ID: a searchset Bundle of the stored
  // patient's active alerts as DetectedIssue.
  HttpReply DetectedIssues(absl::string_view patient_id, absl::string_view authorization, absl::string_view peer);

 private:
  // Who called: the token's issuer and subject, or "development".
  absl::StatusOr<std::string> Authenticate(absl::string_view service_id, absl::string_view authorization,
                                           absl::string_view peer);
  // Whether the card remembered last for `select_key` (at order-select)
  // showed these facts. When the store cannot say, false: the card is shown
  // again rather than hidden.
  bool ShownAtSelect(const std::string& select_key, const std::string& fingerprint);
  void Audit(absl::string_view method, v1::AuditAction action, const std::string& agent, absl::string_view peer,
             absl::string_view patient_id, absl::string_view alert_id, const absl::Status& status);

  CdsHooksOptions options_;
  const KnowledgeBaseHolder* const kb_;
  PatientRegistry* const registry_;
  Store* const store_;
  AuditLog* const audit_;
  const Authenticator* const auth_;
  CdsJwtVerifier* const jwt_;
  const FhirFetch fetch_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_HTTP_CDS_HOOKS_H_
