#include "server/http/ui.h"
#include "server/http/audit_event.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/api/validation.h"
#include "server/common/log.h"
#include "server/common/timestamp.h"
#include "server/fhir/cards.h"
#include "server/http/ui_assets.h"
#include "server/http/ui_json.h"
#include "server/kb/catalog.h"

namespace vigil {
namespace {

using nlohmann::json;

constexpr char kCookie[] = "__Host-vigil_session";
constexpr char kCookieAttributes[] = "; Path=/; Secure; HttpOnly; SameSite=Strict";
constexpr char kCsp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
// Drugs a search answers with at most.
constexpr int kMaxSearchResults = 50;

void SecurityHeaders(httplib::Response& res) {
  res.set_header("Content-Security-Policy", kCsp);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Cross-Origin-Opener-Policy", "same-origin");
  res.set_header("Cross-Origin-Resource-Policy", "same-origin");
}

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
  res.set_header("Cache-Control", "no-store");
  SecurityHeaders(res);
}

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
      return 503;
    default:
      return 500;
  }
}

void SendError(httplib::Response& res, const absl::Status& status) {
  const int code = HttpStatusOf(status);
  SendJson(res, code, {{"error", code == 500 ? std::string("internal error") : std::string(status.message())}});
}

std::string Peer(const httplib::Request& req) { return absl::StrCat(req.remote_addr, ":", req.remote_port); }

bool LoopbackPeer(const httplib::Request& req) {
  return absl::StartsWith(req.remote_addr, "127.") || req.remote_addr == "::1" ||
         req.remote_addr == "::ffff:127.0.0.1";
}

std::string CookieValue(const httplib::Request& req, absl::string_view name) {
  for (absl::string_view part : absl::StrSplit(req.get_header_value("Cookie"), ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

// A POST from a page of this listener: its Origin names the Host it was
// sent to. Browsers send Origin with every POST; anything else is refused.
bool SameOrigin(const httplib::Request& req) {
  const std::string header = req.get_header_value("Origin");
  absl::string_view origin = header;
  const std::string host = req.get_header_value("Host");
  if (!absl::ConsumePrefix(&origin, "https://") && !absl::ConsumePrefix(&origin, "http://")) {
    return false;
  }
  return !host.empty() && origin == host;
}

// The request's body as a JSON object (sent as application/json).
absl::StatusOr<json> JsonBody(const httplib::Request& req) {
  if (!absl::StartsWith(req.get_header_value("Content-Type"), "application/json")) {
    return absl::InvalidArgumentError("the body must be application/json");
  }
  json body = json::parse(req.body, nullptr, false);
  if (!body.is_object()) {
    return absl::InvalidArgumentError("the body must be a JSON object");
  }
  return body;
}

std::string StringField(const json& body, const char* name) {
  const auto it = body.find(name);
  return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool CanRead(const Caller& caller) { return caller.Has(Role::kSubscriber) || caller.Has(Role::kClinician); }

json RolesJson(const Caller& caller) {
  json roles = json::array();
  for (Role role : caller.roles) {
    roles.push_back(std::string(RoleName(role)));
  }
  return roles;
}

}  // namespace

Ui::Ui(UiOptions options, const KnowledgeBaseHolder* kb, PatientRegistry* registry, EventHub* hub, Store* store,
       AuditLog* audit, const Authenticator* auth)
    : options_(options), kb_(kb), registry_(registry), hub_(hub), store_(store), audit_(audit), auth_(auth),
      sessions_(options.session_lifetime, options.session_idle, options.max_sessions), worklist_(store) {}

Ui::~Ui() { Stop(); }

void Ui::Stop() { stopping_ = true; }

void Ui::Audit(absl::string_view method, v1::AuditAction action, const std::string& agent,
               const httplib::Request& req, absl::string_view patient_id, absl::string_view alert_id,
               const absl::Status& status) {
  if (audit_ == nullptr) {
    return;
  }
  v1::AuditEvent event = HttpAuditEvent(method, action, agent, Peer(req), patient_id, alert_id, status);
  audit_->Record(std::move(event), nullptr);
}

absl::StatusOr<Caller> Ui::CallerOf(const UiSession& session) const {
  if (auth_->development_mode()) {
    return Caller{"development", {Role::kEhr, Role::kSubscriber, Role::kClinician, Role::kAdmin}};
  }
  auto caller = auth_->Authenticate(absl::StrCat("Bearer ", session.token));
  if (!caller.ok()) {
    return absl::UnauthenticatedError("the session's token is no longer valid; sign in again");
  }
  return caller;
}

absl::StatusOr<Ui::Visitor> Ui::SignedIn(const httplib::Request& req, bool post) {
  if (auth_->development_mode() && !LoopbackPeer(req)) {
    return absl::PermissionDeniedError("development mode serves this machine only");
  }
  auto session = sessions_.Find(CookieValue(req, kCookie));
  if (!session.has_value()) {
    return absl::UnauthenticatedError("not signed in");
  }
  if (post && (!SameOrigin(req) || !UiSessions::CsrfMatches(*session, req.get_header_value("X-CSRF-Token")))) {
    return absl::PermissionDeniedError("the request's CSRF token or origin is missing or wrong");
  }
  auto caller = CallerOf(*session);
  if (!caller.ok()) {
    sessions_.Remove(session->id);
    return caller.status();
  }
  return Visitor{*std::move(session), *std::move(caller)};
}

void Ui::Register(httplib::Server& http) {
  // Each open event stream holds a thread of the listener's pool.
  http.new_task_queue = [threads = options_.max_streams + 8] { return new httplib::ThreadPool(threads); };
  http.Get("/ui", [](const httplib::Request&, httplib::Response& res) {
    SecurityHeaders(res);
    res.set_redirect("/ui/");
  });
  auto asset = [](const std::string& name, httplib::Response& res) {
    const UiAsset* found = FindUiAsset(name);
    if (found == nullptr) {
      SendJson(res, 404, {{"error", "no such file"}});
      return;
    }
    res.set_content(reinterpret_cast<const char*>(found->data), found->size, found->content_type);
    res.set_header("Cache-Control", "no-cache");
    SecurityHeaders(res);
  };
  http.Get("/ui/", [asset](const httplib::Request&, httplib::Response& res) { asset("index.html", res); });
  http.Get(R"(/ui/([A-Za-z0-9_-]+\.(?:js|css|svg|png)))",
           [asset](const httplib::Request& req, httplib::Response& res) { asset(req.matches[1].str(), res); });
  auto bind = [this](void (Ui::*handler)(const httplib::Request&, httplib::Response&)) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) { (this->*handler)(req, res); };
  };
  http.Get("/ui/api/session", bind(&Ui::GetSession));
  http.Post("/ui/api/session", bind(&Ui::SignIn));
  http.Post("/ui/api/signout", bind(&Ui::SignOut));
  http.Get("/ui/api/worklist", bind(&Ui::GetWorklist));
  http.Post("/ui/api/alert", bind(&Ui::GetAlert));
  http.Post("/ui/api/ack", bind(&Ui::Acknowledge));
  http.Get("/ui/api/events", bind(&Ui::Events));
  http.Get("/ui/api/drugs", bind(&Ui::SearchDrugs));
  http.Get("/ui/api/drug", bind(&Ui::GetDrug));
  http.Get("/ui/api/kb", bind(&Ui::GetKnowledgeBase));
}

namespace {

json SessionJson(const Ui::Visitor& visitor, bool development) {
  return {{"signedIn", true},
          {"user", visitor.caller.name},
          {"roles", RolesJson(visitor.caller)},
          {"canRead", CanRead(visitor.caller)},
          {"canAcknowledge", visitor.caller.Has(Role::kClinician)},
          {"csrf", visitor.session.csrf},
          {"development", development},
          {"overrideReasons", fhir::OverrideReasons()}};
}

void SetSessionCookie(httplib::Response& res, const std::string& id) {
  res.set_header("Set-Cookie", absl::StrCat(kCookie, "=", id, kCookieAttributes));
}

}  // namespace

void Ui::GetSession(const httplib::Request& req, httplib::Response& res) {
  auto visitor = SignedIn(req, false);
  if (!visitor.ok() && absl::IsUnauthenticated(visitor.status()) && auth_->development_mode()) {
    // Development mode: no sign-in, but a session all the same, for the
    // CSRF token.
    auto session = sessions_.Create("");
    if (!session.ok()) {
      SendError(res, session.status());
      return;
    }
    SetSessionCookie(res, session->id);
    visitor = Visitor{*std::move(session), *CallerOf(UiSession())};
  }
  if (!visitor.ok()) {
    if (absl::IsUnauthenticated(visitor.status())) {
      SendJson(res, 200, {{"signedIn", false}, {"development", false}});
    } else {
      SendError(res, visitor.status());
    }
    return;
  }
  SendJson(res, 200, SessionJson(*visitor, auth_->development_mode()));
}

void Ui::SignIn(const httplib::Request& req, httplib::Response& res) {
  if (!SameOrigin(req)) {
    SendError(res, absl::PermissionDeniedError("the request's origin is missing or wrong"));
    return;
  }
  auto body = JsonBody(req);
  if (!body.ok()) {
    SendError(res, body.status());
    return;
  }
  const std::string token = StringField(*body, "token");
  UiSession probe;
  probe.token = token;
  auto caller = auth_->development_mode() ? CallerOf(probe) : auth_->Authenticate(absl::StrCat("Bearer ", token));
  if (!caller.ok()) {
    LogInfo("ui_sign_in_refused", {{"peer", Peer(req)}});
    SendError(res, absl::UnauthenticatedError("the token is not valid"));
    return;
  }
  if (!CanRead(*caller)) {
    SendError(res, absl::PermissionDeniedError("the worklist needs the subscriber or clinician role"));
    return;
  }
  auto session = sessions_.Create(auth_->development_mode() ? "" : token);
  if (!session.ok()) {
    SendError(res, session.status());
    return;
  }
  LogInfo("ui_signed_in", {{"user", caller->name}, {"peer", Peer(req)}});
  SetSessionCookie(res, session->id);
  SendJson(res, 200, SessionJson(Visitor{*std::move(session), *std::move(caller)}, auth_->development_mode()));
}

void Ui::SignOut(const httplib::Request& req, httplib::Response& res) {
  auto visitor = SignedIn(req, true);
  if (!visitor.ok()) {
    SendError(res, visitor.status());
    return;
  }
  sessions_.Remove(visitor->session.id);
  res.set_header("Set-Cookie", absl::StrCat(kCookie, "=", kCookieAttributes, "; Max-Age=0"));
  SendJson(res, 200, {{"signedIn", false}});
}

void Ui::GetWorklist(const httplib::Request& req, httplib::Response& res) {
  auto visitor = SignedIn(req, false);
  if (visitor.ok() && !CanRead(visitor->caller)) {
    visitor = absl::PermissionDeniedError("the worklist needs the subscriber or clinician role");
  }
  if (!visitor.ok()) {
    SendError(res, visitor.status());
    return;
  }
  auto snapshot = worklist_.Get();
  Audit("ui/worklist", v1::AUDIT_ACTION_READ, visitor->caller.name, req, "*", "", snapshot.status());
  if (!snapshot.ok()) {
    SendError(res, snapshot.status());
    return;
  }
  json rows = json::array();
  for (const WorklistEntry& entry : snapshot->entries) {
    rows.push_back(WorklistRowJson(entry));
  }
  SendJson(res, 200, {{"latest", snapshot->latest}, {"alerts", rows}});
}

namespace {

// The stored record of `alert_id` among the patient's alerts, resolved ones
// included.
absl::StatusOr<v1::AlertRecord> FindRecord(PatientRegistry* registry, const std::string& patient_id,
                                           const std::string& alert_id) {
  v1::ListAlertsRequest list;
  list.set_patient_id(patient_id);
  list.set_include_resolved(true);
  do {
    auto page = registry->ListAlerts(list);
    if (!page.ok()) {
      return page.status();
    }
    for (const auto& record : page->alerts()) {
      if (record.alert().id() == alert_id) {
        return record;
      }
    }
    list.set_page_token(page->next_page_token());
  } while (!list.page_token().empty());
  return absl::NotFoundError("no such alert");
}

}  // namespace

void Ui::GetAlert(const httplib::Request& req, httplib::Response& res) {
  auto visitor = SignedIn(req, true);
  if (visitor.ok() && !CanRead(visitor->caller)) {
    visitor = absl::PermissionDeniedError("reading alerts needs the subscriber or clinician role");
  }
  if (!visitor.ok()) {
    SendError(res, visitor.status());
    return;
  }
  auto body = JsonBody(req);
  const std::string alert_id = body.ok() ? StringField(*body, "alertId") : "";
  absl::StatusOr<std::optional<std::string>> patient_id =
      alert_id.empty() ? absl::InvalidArgumentError("alertId: is required") : store_->FindAlertPatient(alert_id);
  if (patient_id.ok() && !patient_id->has_value()) {
    patient_id = absl::NotFoundError("no such alert");
  }
  absl::StatusOr<v1::AlertRecord> record =
      patient_id.ok() ? FindRecord(registry_, **patient_id, alert_id) : patient_id.status();
  Audit("ui/alert", v1::AUDIT_ACTION_READ, visitor->caller.name, req, patient_id.ok() ? **patient_id : "", alert_id,
        record.status());
  if (!record.ok()) {
    SendError(res, record.status());
    return;
  }
  json out = {{"record", ProtoJson(*record)}, {"patient", nullptr}};
  if (auto patient = registry_->GetPatient(**patient_id); patient.ok()) {
    out["patient"] = ProtoJson(*patient);
  }
  SendJson(res, 200, out);
}

namespace {

// The acknowledgement a POST /ui/api/ack body asks for, by `user`.
absl::StatusOr<v1::AcknowledgeAlertRequest> AckRequestOf(const json& body, const std::string& user) {
  v1::AcknowledgeAlertRequest request;
  request.set_alert_id(StringField(body, "alertId"));
  const std::string outcome = StringField(body, "outcome");
  if (outcome == "accepted") {
    request.set_outcome(v1::ACKNOWLEDGEMENT_OUTCOME_ACCEPTED);
  } else if (outcome == "overridden") {
    request.set_outcome(v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN);
  } else {
    return absl::InvalidArgumentError("outcome: must be accepted or overridden");
  }
  const std::string code = StringField(body, "reasonCode");
  if (!code.empty()) {
    bool known = false;
    for (const auto& reason : fhir::OverrideReasons()) {
      if (reason.value("code", "") == code) {
        known = true;
        *request.mutable_reason() = v1::Coding();
        request.mutable_reason()->set_system(reason.value("system", ""));
        request.mutable_reason()->set_code(code);
        request.mutable_reason()->set_display(reason.value("display", ""));
      }
    }
    if (!known) {
      return absl::InvalidArgumentError("reasonCode: is not one of the override reasons");
    }
  }
  request.set_comment(StringField(body, "comment"));
  request.set_user(user);
  if (auto st = ValidateAcknowledgeRequest(request); !st.ok()) {
    return st;
  }
  return request;
}

}  // namespace

void Ui::Acknowledge(const httplib::Request& req, httplib::Response& res) {
  auto visitor = SignedIn(req, true);
  if (visitor.ok() && !visitor->caller.Has(Role::kClinician)) {
    visitor = absl::PermissionDeniedError("acknowledging an alert needs the clinician role");
  }
  if (!visitor.ok()) {
    SendError(res, visitor.status());
    return;
  }
  auto body = JsonBody(req);
  auto request = body.ok() ? AckRequestOf(*body, visitor->caller.name) : body.status();
  absl::StatusOr<v1::AcknowledgeAlertResponse> result =
      request.ok() ? registry_->Acknowledge(*request, Agent{visitor->caller.name, ""}) : request.status();
  Audit("ui/acknowledge", v1::AUDIT_ACTION_UPDATE, visitor->caller.name, req,
        result.ok() ? result->alert().patient_id() : "", request.ok() ? request->alert_id() : "", result.status());
  if (!result.ok()) {
    SendError(res, result.status());
    return;
  }
  SendJson(res, 200,
           {{"eventNumber", result->event_number()},
            {"status", std::string(absl::StripPrefix(v1::AlertStatus_Name(result->alert().status()), "ALERT_STATUS_"))}});
}

void Ui::SearchDrugs(const httplib::Request& req, httplib::Response& res) {
  auto visitor = SignedIn(req, false);
  if (!visitor.ok()) {
    SendError(res, visitor.status());
    return;
  }
  v1::SearchDrugsRequest request;
  request.set_query(req.get_param_value("q"));
  request.set_page_size(kMaxSearchResults);
  auto found = vigil::SearchDrugs(*kb_->Get(), request);
  if (!found.ok()) {
    SendError(res, found.status());
    return;
  }
  json drugs = json::array();
  for (const auto& drug : found->drugs()) {
    json brands = json::array();
    for (const auto& brand : drug.brand_names()) {
      brands.push_back(brand);
    }
    drugs.push_back({{"id", drug.id()}, {"name", drug.name()}, {"brandNames", brands}});
  }
  SendJson(res, 200, {{"drugs", drugs}, {"more", !found->next_page_token().empty()}});
}

void Ui::GetDrug(const httplib::Request& req, httplib::Response& res) {
  auto visitor = SignedIn(req, false);
  if (!visitor.ok()) {
    SendError(res, visitor.status());
    return;
  }
  v1::GetDrugRequest request;
  request.set_name(req.get_param_value("name"));
  request.set_view(v1::DRUG_VIEW_FULL);
  auto drug = vigil::GetDrug(*kb_->Get(), request);
  if (!drug.ok()) {
    SendError(res, drug.status());
    return;
  }
  SendJson(res, 200, ProtoJson(*drug));
}

void Ui::GetKnowledgeBase(const httplib::Request& req, httplib::Response& res) {
  auto visitor = SignedIn(req, false);
  if (!visitor.ok()) {
    SendError(res, visitor.status());
    return;
  }
  SendJson(res, 200, ProtoJson(DescribeKnowledgeBase(*kb_->Get(), kb_->serving_since())));
}

}  // namespace vigil
