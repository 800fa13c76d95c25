#include "server/fhir/cards.h"

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace vigil::fhir {
namespace {

using nlohmann::json;

constexpr char kActCodeSystem[] = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
// The card's `summary` is under 140 characters.
constexpr size_t kMaxSummaryChars = 139;

// The namespace of card uuids (a random UUID chosen once for Vigil).
constexpr std::array<uint8_t, 16> kCardNamespace = {0x3b, 0x6f, 0x1e, 0x52, 0x8a, 0x0d, 0x4c, 0x2e,
                                                    0x9f, 0x47, 0x61, 0xd2, 0x05, 0xb8, 0x7c, 0x13};

// `text` cut to at most `max_chars` Unicode characters (on a character
// boundary), ending in "..." when cut.
std::string CutChars(absl::string_view text, size_t max_chars) {
  auto is_start = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; };
  size_t chars = 0;
  size_t keep = text.size();  // byte offset of character max_chars - 3
  for (size_t i = 0; i < text.size(); ++i) {
    if (is_start(text[i])) {
      if (chars == max_chars - 3) {
        keep = i;
      }
      ++chars;
    }
  }
  return chars <= max_chars ? std::string(text) : absl::StrCat(text.substr(0, keep), "...");
}

// Markdown's special characters in text that comes from the caller (drug
// references as the EHR sent them) escaped, so that it shows as written.
std::string EscapeMarkdown(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (absl::string_view("\\`*_{}[]()<>#+!|").find(c) != absl::string_view::npos) {
      out.push_back('\\');
    }
    out.push_back(c == '\n' || c == '\r' ? ' ' : c);
  }
  return out;
}

// The reference by which the engine's evidence names an order (see
// MedicationOrder in patient.proto): `drug`, else "system|code", else the
// coding's display, else the text.
std::string OrderReference(const v1::MedicationOrder& order) {
  if (!order.drug().empty()) {
    return order.drug();
  }
  if (!order.coding().code().empty()) {
    return absl::StrCat(order.coding().system(), "|", order.coding().code());
  }
  return order.coding().display().empty() ? order.text() : order.coding().display();
}

std::string OrderName(const v1::MedicationOrder& order) {
  if (!order.coding().display().empty()) {
    return order.coding().display();
  }
  return order.text().empty() ? OrderReference(order) : order.text();
}

std::string DetailMarkdown(const v1::Alert& alert) {
  std::string md = alert.detail();
  if (!alert.recommendation().empty()) {
    absl::StrAppend(&md, "\n\n**What to do:** ", alert.recommendation());
  }
  if (!alert.evidence().empty()) {
    absl::StrAppend(&md, "\n\n**This patient:**");
    for (const auto& e : alert.evidence()) {
      absl::StrAppend(&md, "\n- ", EscapeMarkdown(e.description()));
    }
  }
  if (!alert.sources().empty()) {
    absl::StrAppend(&md, "\n\n**Evidence:**");
    for (const auto& s : alert.sources()) {
      absl::StrAppend(&md, "\n- ", s.url().empty() ? s.title() : absl::StrCat("[", s.title(), "](", s.url(), ")"));
    }
  }
  return md;
}

// Cards about a proposed drug that should not go ahead offer to cancel its
// draft orders.
bool OffersCancel(const v1::Alert& alert) {
  switch (alert.kind()) {
    case v1::ALERT_KIND_CONTRAINDICATION:
    case v1::ALERT_KIND_DRUG_INTERACTION:
    case v1::ALERT_KIND_ALLERGY:
      return alert.severity() >= v1::SEVERITY_MAJOR;
    case v1::ALERT_KIND_DUPLICATE_THERAPY:
      return true;
    default:
      return false;
  }
}

json Suggestions(const v1::Alert& alert, const std::vector<v1::MedicationOrder>& draft_orders) {
  json suggestions = json::array();
  if (!OffersCancel(alert)) {
    return suggestions;
  }
  std::set<std::string> proposed;
  for (const auto& e : alert.evidence()) {
    if (e.type() == v1::EVIDENCE_TYPE_PROPOSED_MEDICATION) {
      proposed.insert(e.reference());
    }
  }
  std::set<std::string> offered;
  for (const auto& order : draft_orders) {
    const std::string& id = order.order_id();
    if (!absl::StartsWith(id, "MedicationRequest/") || proposed.count(OrderReference(order)) == 0 ||
        !offered.insert(id).second) {
      continue;
    }
    const std::string label = CutChars(absl::StrCat("Cancel the draft order for ", OrderName(order)), 139);
    suggestions.push_back({{"label", label},
                           {"uuid", CardUuid(absl::StrCat(alert.id(), "/cancel/", id))},
                           {"isRecommended", alert.severity() == v1::SEVERITY_CONTRAINDICATED},
                           {"actions", json::array({{{"type", "delete"},
                                                     {"description", label},
                                                     {"resourceId", id}}})}});
  }
  return suggestions;
}

const char* ActCode(const v1::Alert& alert, const char** display) {
  switch (alert.kind()) {
    case v1::ALERT_KIND_DRUG_INTERACTION:
      *display = "Drug Interaction Alert";
      return "DRG";
    case v1::ALERT_KIND_DUPLICATE_THERAPY:
      *display = "Duplicate Therapy Alert";
      return "DUPTHPY";
    case v1::ALERT_KIND_ALLERGY:
      *display = "Allergy Alert";
      return "ALGY";
    case v1::ALERT_KIND_CONTRAINDICATION:
      *display = "Condition Alert";
      return "COND";
    default:
      return nullptr;
  }
}

}  // namespace

std::string CardUuid(absl::string_view alert_id) {
  // RFC 4122 section 4.3: SHA-1 of namespace and name, version 5.
  std::string name(reinterpret_cast<const char*>(kCardNamespace.data()), kCardNamespace.size());
  name.append(alert_id.data(), alert_id.size());
  std::array<uint8_t, EVP_MAX_MD_SIZE> digest{};
  EVP_Digest(name.data(), name.size(), digest.data(), nullptr, EVP_sha1(), nullptr);
  digest[6] = static_cast<uint8_t>((digest[6] & 0x0F) | 0x50);
  digest[8] = static_cast<uint8_t>((digest[8] & 0x3F) | 0x80);
  std::string out;
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out.push_back('-');
    }
    absl::StrAppendFormat(&out, "%02x", digest[i]);
  }
  return out;
}

json OverrideReasons() {
  static const std::pair<const char*, const char*> kReasons[] = {
      {"benefit-outweighs-risk", "Benefit outweighs the risk for this patient"},
      {"tolerated-before", "Patient has tolerated this combination before"},
      {"will-monitor", "Will monitor or adjust the dose"},
      {"not-applicable", "Does not apply to this patient"},
      {"data-incorrect", "The patient's record is incorrect"},
  };
  json out = json::array();
  for (const auto& [code, display] : kReasons) {
    out.push_back({{"system", kOverrideReasonSystem}, {"code", code}, {"display", display}});
  }
  return out;
}

const char* Indicator(v1::Severity severity) {
  if (severity >= v1::SEVERITY_CONTRAINDICATED) {
    return "critical";
  }
  return severity >= v1::SEVERITY_MODERATE ? "warning" : "info";
}

json CardFromAlert(const v1::Alert& alert, const std::vector<v1::MedicationOrder>& draft_orders) {
  json card = {{"uuid", CardUuid(alert.id())},
               {"summary", CutChars(alert.summary(), kMaxSummaryChars)},
               {"detail", DetailMarkdown(alert)},
               {"indicator", Indicator(alert.severity())}};
  json source = {{"label", "Vigil"}};
  if (!alert.sources().empty()) {
    source["label"] = CutChars(alert.sources(0).title(), 200);
    if (!alert.sources(0).url().empty()) {
      source["url"] = alert.sources(0).url();
    }
  }
  source["topic"] = {{"system", "urn:vigil:v1:alert-kind"}, {"code", v1::AlertKind_Name(alert.kind())}};
  card["source"] = std::move(source);
  json links = json::array();
  for (int i = 1; i < alert.sources_size(); ++i) {
    const auto& s = alert.sources(i);
    if (!s.url().empty()) {
      links.push_back({{"label", CutChars(s.title(), 200)}, {"url", s.url()}, {"type", "absolute"}});
    }
  }
  if (!links.empty()) {
    card["links"] = std::move(links);
  }
  json suggestions = Suggestions(alert, draft_orders);
  if (!suggestions.empty()) {
    card["suggestions"] = std::move(suggestions);
    card["selectionBehavior"] = "at-most-one";
  }
  if (alert.kind() != v1::ALERT_KIND_UNSCREENED_DRUG && alert.kind() != v1::ALERT_KIND_INCOMPLETE_DATA) {
    card["overrideReasons"] = OverrideReasons();
  }
  return card;
}

json DetectedIssue(const v1::Alert& alert, absl::string_view patient_id) {
  json issue = {{"resourceType", "DetectedIssue"},
                {"id", CardUuid(alert.id())},
                {"status", "final"},
                {"patient", {{"reference", absl::StrCat("Patient/", patient_id)}}},
                {"detail", alert.detail()}};
  const char* severity = alert.severity() >= v1::SEVERITY_MAJOR      ? "high"
                         : alert.severity() >= v1::SEVERITY_MODERATE ? "moderate"
                                                                     : "low";
  issue["severity"] = severity;
  const char* display = "";
  if (const char* code = ActCode(alert, &display); code != nullptr) {
    issue["code"] = {{"coding", json::array({{{"system", kActCodeSystem}, {"code", code}, {"display", display}}})},
                     {"text", alert.summary()}};
  } else {
    issue["code"] = {{"text", alert.summary()}};
  }
  issue["identifier"] = json::array({{{"system", "urn:vigil:v1:alert-id"}, {"value", alert.id()}}});
  json implicated = json::array();
  for (const auto& e : alert.evidence()) {
    if (e.type() == v1::EVIDENCE_TYPE_PROPOSED_MEDICATION || e.type() == v1::EVIDENCE_TYPE_CURRENT_MEDICATION) {
      implicated.push_back({{"display", e.description()}});
    }
  }
  if (!implicated.empty()) {
    issue["implicated"] = std::move(implicated);
  }
  json evidence = json::array();
  for (const auto& e : alert.evidence()) {
    if (!e.system().empty() && !e.code().empty()) {
      evidence.push_back(
          {{"code", json::array({{{"coding", json::array({{{"system", e.system()}, {"code", e.code()}}})},
                                  {"text", e.description()}}})}});
    } else if (e.type() != v1::EVIDENCE_TYPE_PROPOSED_MEDICATION &&
               e.type() != v1::EVIDENCE_TYPE_CURRENT_MEDICATION) {
      evidence.push_back({{"code", json::array({{{"text", e.description()}}})}});
    }
  }
  if (!evidence.empty()) {
    issue["evidence"] = std::move(evidence);
  }
  if (!alert.recommendation().empty()) {
    issue["mitigation"] = json::array({{{"action", {{"text", alert.recommendation()}}}}});
  }
  json refs = json::array();
  for (const auto& s : alert.sources()) {
    if (!s.url().empty()) {
      refs.push_back(s.url());
    }
  }
  if (!refs.empty()) {
    issue["reference"] = refs.front();
  }
  return issue;
}

json OperationOutcome(absl::string_view code, absl::string_view diagnostics, absl::string_view expression) {
  json issue = {{"severity", "error"}, {"code", std::string(code)}, {"diagnostics", std::string(diagnostics)}};
  if (!expression.empty()) {
    issue["expression"] = json::array({std::string(expression)});
  }
  return {{"resourceType", "OperationOutcome"}, {"issue", json::array({std::move(issue)})}};
}

}  // namespace vigil::fhir
