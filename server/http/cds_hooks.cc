#include "server/http/cds_hooks.h"
#include "server/http/audit_event.h"

#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "server/api/validation.h"
#include "server/common/log.h"
#include "server/common/timestamp.h"
#include "server/engine/screening.h"
#include "server/fhir/cards.h"
#include "server/fhir/cds_request.h"

namespace vigil {
namespace {

using nlohmann::json;

constexpr char kSelectService[] = "vigil-order-select";
constexpr char kSignService[] = "vigil-order-sign";
// A request's extension that asks order-sign to show again the cards shown
// at order-select (the default leaves them out, as the HL7 PDDI-CDS guide
// recommends).
constexpr char kRepeatExtension[] = "org.vigil.repeat-select-cards";

// Invalid UTF-8 cannot reach a reply (requests are validated), but a dump
// never throws: it would replace such bytes.
HttpReply JsonReply(int status, const json& body) {
  return HttpReply{status, body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

// The path a message starts with ("context.draftOrders.entry[1]: ..."), for
// an OperationOutcome's expression; empty when it starts with none.
std::string PathOf(absl::string_view message) {
  const size_t colon = message.find(": ");
  if (colon == absl::string_view::npos || message.substr(0, colon).find(' ') != absl::string_view::npos) {
    return "";
  }
  return std::string(message.substr(0, colon));
}

HttpReply Outcome(int status, absl::string_view code, absl::string_view message) {
  return JsonReply(status, fhir::OperationOutcome(code, message, PathOf(message)));
}

// The HTTP status and FHIR issue type of a domain error.
HttpReply FromStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return Outcome(400, "invalid", status.message());
    case absl::StatusCode::kNotFound:
      return Outcome(404, "not-found", status.message());
    case absl::StatusCode::kFailedPrecondition:
      return Outcome(409, "conflict", status.message());
    case absl::StatusCode::kUnauthenticated:
      return Outcome(401, "security", status.message());
    case absl::StatusCode::kPermissionDenied:
      return Outcome(403, "forbidden", status.message());
    case absl::StatusCode::kResourceExhausted:
      return Outcome(429, "throttled", status.message());
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
      return Outcome(503, "transient", status.message());
    default:
      return Outcome(500, "exception", "internal error");
  }
}

const char* HookOf(absl::string_view service_id) {
  if (service_id == kSelectService) {
    return fhir::kOrderSelect;
  }
  if (service_id == kSignService) {
    return fhir::kOrderSign;
  }
  return nullptr;
}

// Percent-encodes a value for a URL query or path.
std::string UrlEncode(absl::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (absl::ascii_isalnum(c) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// The lab LOINC codes the knowledge base's rules read.
std::vector<std::string> LabCodes(const KnowledgeBase& kb) {
  std::set<std::string> codes;
  for (const auto& [id, set] : kb.condition_sets()) {
    for (const auto& lab : set.labs()) {
      codes.insert(lab.loinc_codes().begin(), lab.loinc_codes().end());
    }
  }
  return {codes.begin(), codes.end()};
}

json ServiceDescription(const char* hook, const char* id, const json& prefetch) {
  const bool select = absl::string_view(hook) == fhir::kOrderSelect;
  return {{"hook", hook},
          {"id", id},
          {"title", select ? "Vigil medication screening (order select)" : "Vigil medication screening (order sign)"},
          {"description",
           "Screens the draft medication orders against the patient's conditions, allergies, current medications, "
           "labs and age: contraindications, interactions, allergies, duplicates and cumulative risk. A drug or "
           "fact that could not be screened is a card too."},
          {"prefetch", prefetch},
          {"usageRequirements",
           "Draft orders coded with RxNorm (ingredient, clinical or branded drug), or with text. Send the prefetch "
           "or a fhirServer Vigil can read."}};
}

// Whether the request asks order-sign to repeat cards shown at select.
bool WantsRepeat(absl::string_view body) {
  const json doc = json::parse(body, nullptr, false);
  if (!doc.is_object()) {
    return false;
  }
  const auto ext = doc.find("extension");
  if (ext == doc.end() || !ext->is_object()) {
    return false;
  }
  const auto flag = ext->find(kRepeatExtension);
  return flag != ext->end() && flag->is_boolean() && flag->get<bool>();
}

}  // namespace

CdsHooks::CdsHooks(CdsHooksOptions options, const KnowledgeBaseHolder* kb, PatientRegistry* registry, Store* store,
                   AuditLog* audit, const Authenticator* auth, CdsJwtVerifier* jwt, FhirFetch fetch)
    : options_(std::move(options)),
      kb_(kb),
      registry_(registry),
      store_(store),
      audit_(audit),
      auth_(auth),
      jwt_(jwt),
      fetch_(std::move(fetch)) {}

HttpReply CdsHooks::Discovery() const {
  json prefetch = json::object();
  for (const auto& t : fhir::PrefetchTemplates(LabCodes(*kb_->Get()))) {
    prefetch[t.key] = t.query;
  }
  return JsonReply(200, {{"services", json::array({ServiceDescription(fhir::kOrderSelect, kSelectService, prefetch),
                                                   ServiceDescription(fhir::kOrderSign, kSignService, prefetch)})}});
}

absl::StatusOr<std::string> CdsHooks::Authenticate(absl::string_view service_id, absl::string_view authorization,
                                                   absl::string_view peer) {
  if (jwt_ == nullptr) {
    if (auth_ != nullptr && auth_->development_mode()) {
      return std::string("development");
    }
    return absl::UnauthenticatedError("no CDS client is trusted: the server has no CDS Hooks issuers configured");
  }
  auto claims =
      jwt_->Verify(authorization, absl::StrCat(options_.base_url, "/cds-services/", service_id), absl::Now());
  if (!claims.ok()) {
    LogInfo("cds_hooks_unauthenticated", {{"peer", std::string(peer)}, {"reason", std::string(claims.status().message())}});
    return claims.status();
  }
  return absl::StrCat(claims->iss, claims->sub.empty() ? "" : " ", claims->sub);
}

void CdsHooks::Audit(absl::string_view method, v1::AuditAction action, const std::string& agent,
                     absl::string_view peer, absl::string_view patient_id, absl::string_view alert_id,
                     const absl::Status& status) {
  if (audit_ == nullptr) {
    return;
  }
  v1::AuditEvent event = HttpAuditEvent(method, action, agent, peer, patient_id, alert_id, status);
  audit_->Record(std::move(event), nullptr);
}

bool CdsHooks::ShownAtSelect(const std::string& select_key, const std::string& fingerprint) {
  auto shown = store_->SelectFingerprint(select_key, absl::Now());
  if (!shown.ok()) {
    // Shown again rather than hidden: a repeated card is a nuisance, a
    // missing one could be harm.
    LogError("cds_card_lookup_failed", {{"reason", std::string(shown.status().message())}});
    return false;
  }
  return shown->has_value() && **shown == fingerprint;
}

namespace {

// Fetches the prefetch keys the request lacks from its fhirServer. A key
// that cannot be fetched or read fails with FAILED_PRECONDITION naming it.
absl::Status FetchMissing(const FhirFetch& fetch, const std::vector<fhir::PrefetchTemplate>& templates,
                          fhir::CdsRequest& request) {
  if (request.missing_prefetch.empty()) {
    return absl::OkStatus();
  }
  if (request.fhir_server.empty() || !fetch) {
    return absl::FailedPreconditionError(
        absl::StrCat("prefetch.", request.missing_prefetch.front(), ": is missing and the request names no fhirServer ",
                     "to fetch it from (missing: ", absl::StrJoin(request.missing_prefetch, ", "), ")"));
  }
  const std::string base(absl::StripSuffix(request.fhir_server, "/"));
  const std::string authorization =
      request.fhir_access_token.empty()
          ? ""
          : absl::StrCat(request.fhir_token_type.empty() ? "Bearer" : request.fhir_token_type, " ",
                         request.fhir_access_token);
  const std::vector<std::string> missing = request.missing_prefetch;
  for (const std::string& key : missing) {
    std::string query;
    for (const auto& t : templates) {
      if (t.key == key) {
        query = t.query;
      }
    }
    query = absl::StrReplaceAll(query, {{"{{context.patientId}}", UrlEncode(request.patient_id)},
                                        {"{{context.userId}}", UrlEncode(request.user_id)},
                                        {"{{context.encounterId}}", UrlEncode(request.encounter_id)}});
    auto body = fetch(absl::StrCat(base, "/", query), authorization);
    if (!body.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("prefetch.", key, ": is missing and could not be fetched from fhirServer: ",
                       body.status().message()));
    }
    if (auto st = fhir::ApplyPrefetch(key, *body, request); !st.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("prefetch.", key, ": what fhirServer returned cannot be read: ", st.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

HttpReply CdsHooks::Call(absl::string_view service_id, absl::string_view body, absl::string_view authorization,
                         absl::string_view peer) {
  const char* hook = HookOf(service_id);
  if (hook == nullptr) {
    return Outcome(404, "not-found", absl::StrCat("no CDS service '", service_id.substr(0, 64), "'"));
  }
  auto agent = Authenticate(service_id, authorization, peer);
  if (!agent.ok()) {
    return FromStatus(agent.status());
  }
  const std::string method = absl::StrCat("cds-hooks/", service_id);
  auto request = fhir::ParseCdsRequest(body);
  if (!request.ok()) {
    Audit(method, v1::AUDIT_ACTION_EXECUTE, *agent, peer, "", "", request.status());
    return FromStatus(request.status());
  }
  if (request->hook != hook) {
    return Outcome(400, "invalid", absl::StrCat("hook: is \"", request->hook.substr(0, 64), "\"; service ", service_id,
                                                " answers \"", hook, "\""));
  }
  const std::shared_ptr<const KnowledgeBase> kb = kb_->Get();
  if (auto st = FetchMissing(fetch_, fhir::PrefetchTemplates(LabCodes(*kb)), *request); !st.ok()) {
    Audit(method, v1::AUDIT_ACTION_EXECUTE, *agent, peer, request->patient_id, "", st);
    return Outcome(412, "required", st.message());
  }
  v1::CheckMedicationsUnaryRequest check;
  *check.mutable_patient() = std::move(request->patient);
  for (auto& order : request->draft_orders) {
    *check.add_proposed_medications() = order;
  }
  if (auto st = ValidateCheckRequest(check); !st.ok()) {
    Audit(method, v1::AUDIT_ACTION_EXECUTE, *agent, peer, request->patient_id, "", st);
    return FromStatus(st);
  }
  ScreeningResult result = Screen(*kb, check.patient(), check.proposed_medications());
  const bool at_sign = request->hook == fhir::kOrderSign;
  const bool repeat = at_sign && WantsRepeat(body);
  json cards = json::array();
  const absl::Time now = absl::Now();
  std::vector<ShownCard> shown;
  for (auto& alert : result.alerts) {
    std::string select_key =
        absl::StrCat(request->user_id, "\x1f", request->patient_id, "\x1f", request->encounter_id, "\x1f", alert.id());
    std::string fingerprint = PatientRegistry::Fingerprint(alert);
    if (at_sign && !repeat && ShownAtSelect(select_key, fingerprint)) {
      continue;
    }
    json card = fhir::CardFromAlert(alert, request->draft_orders);
    shown.push_back(ShownCard{card["uuid"].get<std::string>(), request->patient_id, request->user_id,
                              at_sign ? "" : std::move(select_key), std::move(fingerprint), std::move(alert),
                              now + options_.card_memory});
    cards.push_back(std::move(card));
  }
  if (!shown.empty()) {
    // The cards go out even when they cannot be remembered: feedback on them
    // is then refused, and order-sign shows them again.
    if (auto st = store_->RememberCards(shown, now); !st.ok()) {
      LogError("cds_cards_not_remembered", {{"cards", std::to_string(shown.size())},
                                            {"reason", std::string(st.message())}});
    }
  }
  Audit(method, v1::AUDIT_ACTION_EXECUTE, *agent, peer, request->patient_id, "", absl::OkStatus());
  return JsonReply(200, {{"cards", std::move(cards)}});
}

namespace {

struct FeedbackItem {
  std::string uuid;
  v1::AcknowledgeAlertRequest ack;
};

// Reads a feedback body: {"feedback": [{"card", "outcome", "overrideReason":
// {"reason": Coding, "userComment"}, "acceptedSuggestions", ...}]}.
absl::StatusOr<std::vector<FeedbackItem>> ParseFeedback(absl::string_view body) {
  const json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded()) {
    return absl::InvalidArgumentError("body: is not JSON");
  }
  const auto list = doc.is_object() ? doc.find("feedback") : doc.end();
  if (list == doc.end() || !list->is_array() || list->empty() || list->size() > 1000) {
    return absl::InvalidArgumentError("feedback: is required: an array of 1 to 1000 entries");
  }
  std::vector<FeedbackItem> items;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& entry = (*list)[i];
    const std::string path = absl::StrCat("feedback[", i, "]");
    if (!entry.is_object() || !entry.contains("card") || !entry["card"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".card: is required (the card's uuid)"));
    }
    FeedbackItem item;
    item.uuid = std::string(absl::StripPrefix(entry["card"].get<std::string>(), "urn:uuid:"));
    const json outcome = entry.value("outcome", json());
    if (outcome == "accepted") {
      item.ack.set_outcome(v1::ACKNOWLEDGEMENT_OUTCOME_ACCEPTED);
    } else if (outcome == "overridden") {
      item.ack.set_outcome(v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(path, ".outcome: must be \"accepted\" or \"overridden\""));
    }
    const json reason = entry.value("overrideReason", json::object());
    if (!reason.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".overrideReason: must be an object"));
    }
    const json coding = reason.value("reason", json::object());
    if (!coding.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".overrideReason.reason: must be a Coding"));
    }
    for (const char* field : {"system", "code", "display"}) {
      const json value = coding.value(field, json(""));
      if (!value.is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ".overrideReason.reason.", field, ": must be a string"));
      }
    }
    item.ack.mutable_reason()->set_system(coding.value("system", ""));
    item.ack.mutable_reason()->set_code(coding.value("code", ""));
    item.ack.mutable_reason()->set_display(coding.value("display", ""));
    const json comment = reason.value("userComment", json(""));
    if (!comment.is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".overrideReason.userComment: must be a string"));
    }
    item.ack.set_comment(comment.get<std::string>());
    if (item.ack.outcome() == v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN && item.ack.reason().code().empty()) {
      // CDS Hooks makes the reason optional; Vigil's record says none was given.
      item.ack.mutable_reason()->set_system(fhir::kOverrideReasonSystem);
      item.ack.mutable_reason()->set_code("not-given");
      item.ack.mutable_reason()->set_display("No reason given in the EHR's feedback");
    }
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace

HttpReply CdsHooks::Feedback(absl::string_view service_id, absl::string_view body, absl::string_view authorization,
                             absl::string_view peer) {
  if (HookOf(service_id) == nullptr) {
    return Outcome(404, "not-found", absl::StrCat("no CDS service '", service_id.substr(0, 64), "'"));
  }
  auto agent = Authenticate(service_id, authorization, peer);
  if (!agent.ok()) {
    return FromStatus(agent.status());
  }
  auto items = ParseFeedback(body);
  if (!items.ok()) {
    return FromStatus(items.status());
  }
  // Every card must be known before any acknowledgement is recorded.
  std::vector<ShownCard> shown;
  const absl::Time now = absl::Now();
  for (size_t i = 0; i < items->size(); ++i) {
    auto card = store_->FindCard((*items)[i].uuid, now);
    if (!card.ok()) {
      return FromStatus(card.status());
    }
    if (!card->has_value()) {
      return Outcome(404, "not-found",
                     absl::StrCat("feedback[", i, "].card: no card '", (*items)[i].uuid.substr(0, 64),
                                  "' was returned by this service in the last ",
                                  absl::FormatDuration(options_.card_memory)));
    }
    shown.push_back(**std::move(card));
  }
  const std::string method = absl::StrCat("cds-hooks/", service_id, "/feedback");
  for (size_t i = 0; i < items->size(); ++i) {
    v1::AcknowledgeAlertRequest& ack = (*items)[i].ack;
    ack.set_user(shown[i].user_id.empty() ? *agent : shown[i].user_id);
    auto done = registry_->AcknowledgeShown(shown[i].patient_id, shown[i].alert, ack, Agent{*agent, ""});
    Audit(method, v1::AUDIT_ACTION_UPDATE, *agent, peer, shown[i].patient_id, shown[i].alert.id(), done.status());
    if (!done.ok()) {
      HttpReply reply = FromStatus(done.status());
      return reply;
    }
  }
  return JsonReply(200, json::object());
}

HttpReply CdsHooks::DetectedIssues(absl::string_view patient_id, absl::string_view authorization,
                                   absl::string_view peer) {
  if (auth_ == nullptr) {
    return Outcome(401, "security", "no caller is trusted");
  }
  auto caller = auth_->Authenticate(authorization);
  if (!caller.ok()) {
    return FromStatus(caller.status());
  }
  if (!caller->Has(Role::kSubscriber) && !caller->Has(Role::kClinician) && !auth_->development_mode()) {
    return Outcome(403, "forbidden", "reading alerts needs the subscriber or clinician role");
  }
  v1::ListAlertsRequest list;
  list.set_patient_id(std::string(patient_id));
  if (auto st = ValidateListAlertsRequest(list); !st.ok()) {
    return FromStatus(absl::InvalidArgumentError(absl::StrCat("patient: ", st.message())));
  }
  json entries = json::array();
  absl::Status status;
  do {
    auto page = registry_->ListAlerts(list);
    if (!page.ok()) {
      // A patient with nothing stored has no issues: an empty searchset.
      status = absl::IsNotFound(page.status()) ? absl::OkStatus() : page.status();
      break;
    }
    for (const auto& record : page->alerts()) {
      entries.push_back({{"fullUrl", absl::StrCat("urn:uuid:", fhir::CardUuid(record.alert().id()))},
                         {"resource", fhir::DetectedIssue(record.alert(), record.patient_id())},
                         {"search", {{"mode", "match"}}}});
    }
    list.set_page_token(page->next_page_token());
  } while (!list.page_token().empty());
  Audit("fhir/DetectedIssue", v1::AUDIT_ACTION_READ, caller->name, peer, patient_id, "", status);
  if (!status.ok()) {
    return FromStatus(status);
  }
  const size_t total = entries.size();
  return JsonReply(200, {{"resourceType", "Bundle"}, {"type", "searchset"}, {"total", total}, {"entry", entries}});
}

}  // namespace vigil
