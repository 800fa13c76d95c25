// The pharmacist's worklist in the browser, under /ui/ on the HTTP listener:
// static files embedded in the binary (ui_assets.h) and a small JSON API
// beside them, which calls the domain directly, as CdsHooks does:
//
//   GET  /ui/api/session    who is signed in, the CSRF token, override reasons
//   POST /ui/api/session    sign in with a bearer token of the tokens file
//   POST /ui/api/signout
//   GET  /ui/api/worklist   the active alerts, most severe first, and the
//                           number of the last event they reflect
//   GET  /ui/api/events     server-sent events from the alert feed's hub,
//                           after Last-Event-ID or ?after=N
//   POST /ui/api/alert      {alertId}: the alert, its history, the patient
//   POST /ui/api/ack        {alertId, outcome, reasonCode, comment}
//   GET  /ui/api/drugs?q=   search the knowledge base
//   GET  /ui/api/drug?name= a drug's monograph
//   GET  /ui/api/kb         the serving knowledge base
//
// Security: a random session id in a `__Host-vigil_session` cookie
// (HttpOnly, Secure, SameSite=Strict); every POST carries the session's CSRF
// token in X-CSRF-Token and a same-origin Origin; a strict
// Content-Security-Policy; patient ids travel only in POST bodies and JSON
// answers, never in URLs or logs. Roles as in the gRPC API: subscriber or
// clinician reads, clinician acknowledges. In development mode (no tokens)
// every visitor is "development", on a loopback listener only.
#ifndef VIGIL_SERVER_HTTP_UI_H_
#define VIGIL_SERVER_HTTP_UI_H_

#include <atomic>
#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/feed/event_hub.h"
#include "server/feed/registry.h"
#include "server/http/ui_sessions.h"
#include "server/http/ui_worklist.h"
#include "server/kb/holder.h"
#include "server/security/auth.h"
#include "server/store/audit_log.h"
#include "server/store/store.h"

namespace httplib {
class Server;
class DataSink;
struct Request;
struct Response;
}  // namespace httplib

namespace vigil {

struct EventStream;

struct UiOptions {
  // A session ends this long after sign-in, or after this long unused.
  absl::Duration session_lifetime = absl::Hours(12);
  absl::Duration session_idle = absl::Minutes(30);
  size_t max_sessions = 10000;
  // Event streams open at once: each holds one of the listener's threads
  // while it is open (the listener gets max_streams + 8 threads).
  size_t max_streams = 24;
  // A stream is closed after this long (the browser resumes from its last
  // event), and carries a heartbeat after this long without events.
  absl::Duration stream_duration = absl::Minutes(10);
  absl::Duration heartbeat = absl::Seconds(15);
};

class Ui {
 public:
  // Every pointer must outlive the Ui; the Ui must outlive the listener.
  Ui(UiOptions options, const KnowledgeBaseHolder* kb, PatientRegistry* registry, EventHub* hub, Store* store,
     AuditLog* audit, const Authenticator* auth);
  ~Ui();
  Ui(const Ui&) = delete;
  Ui& operator=(const Ui&) = delete;

  // Adds the routes under /ui/ (HttpGatewayOptions::routes).
  void Register(httplib::Server& http);

  // Ends the open event streams (within a second) and refuses new ones.
  void Stop();

  // Who made a request, once its session is checked.
  struct Visitor {
    UiSession session;
    Caller caller;
  };

 private:
  // The request's session and caller: Unauthenticated without a live
  // session; for a POST, PermissionDenied without a same-origin Origin and
  // the session's CSRF token.
  absl::StatusOr<Visitor> SignedIn(const httplib::Request& req, bool post);
  absl::StatusOr<Caller> CallerOf(const UiSession& session) const;

  void GetSession(const httplib::Request& req, httplib::Response& res);
  void SignIn(const httplib::Request& req, httplib::Response& res);
  void SignOut(const httplib::Request& req, httplib::Response& res);
  void GetWorklist(const httplib::Request& req, httplib::Response& res);
  void GetAlert(const httplib::Request& req, httplib::Response& res);
  void Acknowledge(const httplib::Request& req, httplib::Response& res);
  void Events(const httplib::Request& req, httplib::Response& res);
  bool Pump(EventStream& stream, httplib::DataSink& sink);
  void SearchDrugs(const httplib::Request& req, httplib::Response& res);
  void GetDrug(const httplib::Request& req, httplib::Response& res);
  void GetKnowledgeBase(const httplib::Request& req, httplib::Response& res);

  void Audit(absl::string_view method, v1::AuditAction action, const std::string& agent,
             const httplib::Request& req, absl::string_view patient_id, absl::string_view alert_id,
             const absl::Status& status);

  const UiOptions options_;
  const KnowledgeBaseHolder* const kb_;
  PatientRegistry* const registry_;
  EventHub* const hub_;
  Store* const store_;
  AuditLog* const audit_;
  const Authenticator* const auth_;
  UiSessions sessions_;
  Worklist worklist_;
  std::atomic<size_t> streams_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace vigil

#endif  // VIGIL_SERVER_HTTP_UI_H_
