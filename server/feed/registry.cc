#include "server/feed/registry.h"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "google/protobuf/util/message_differencer.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/api/defaults.h"
#include "server/common/page_token.h"
#include "server/common/text.h"
#include "server/engine/screening.h"

namespace vigil {
namespace {

bool IsActive(v1::AlertStatus status) {
  return status == v1::ALERT_STATUS_ACTIVE || status == v1::ALERT_STATUS_ACCEPTED ||
         status == v1::ALERT_STATUS_OVERRIDDEN;
}

v1::AlertEvent MakeEvent(v1::AlertEventType type, const std::string& patient_id, const v1::Alert& alert) {
  v1::AlertEvent event;
  event.set_type(type);
  event.set_patient_id(patient_id);
  *event.mutable_alert() = alert;
  return event;
}

// Marks a stored alert resolved in `change`, with its RESOLVED event, and
// copies it to `resolved` (the response).
void Resolve(store::v1::StoredAlert stored, PatientChange* change, v1::Alert* resolved) {
  stored.mutable_record()->set_status(v1::ALERT_STATUS_RESOLVED);
  change->events.push_back(
      MakeEvent(v1::ALERT_EVENT_TYPE_RESOLVED, change->patient_id, stored.record().alert()));
  *resolved = stored.record().alert();
  change->alerts.push_back(std::move(stored));
}

// The acknowledgement `request` records, by `agent`.
v1::Acknowledgement AcknowledgementOf(const v1::AcknowledgeAlertRequest& request, const Agent& agent) {
  v1::Acknowledgement ack;
  ack.set_outcome(request.outcome());
  *ack.mutable_reason() = request.reason();
  ack.set_comment(request.comment());
  ack.set_user(request.user());
  ack.set_agent(agent.name);
  ack.set_agent_certificate_subject(agent.certificate_subject);
  return ack;
}

// Sets the status an acknowledgement gives; an override holds while the
// alert's facts (its fingerprint) stay the same.
void MarkAcknowledged(v1::AcknowledgementOutcome outcome, store::v1::StoredAlert* alert) {
  if (outcome == v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN) {
    alert->mutable_record()->set_status(v1::ALERT_STATUS_OVERRIDDEN);
    alert->set_override_fingerprint(alert->fingerprint());
  } else {
    alert->mutable_record()->set_status(v1::ALERT_STATUS_ACCEPTED);
  }
}

}  // namespace

std::string PatientRegistry::Fingerprint(const v1::Alert& alert) {
  std::vector<std::string> evidence;
  for (const auto& e : alert.evidence()) {
    evidence.push_back(absl::StrCat(e.type(), "\x1f", e.system(), "\x1f", e.code(), "\x1f", e.reference(), "\x1f",
                                    e.description()));
  }
  std::sort(evidence.begin(), evidence.end());
  std::vector<std::string> drugs(alert.drug_ids().begin(), alert.drug_ids().end());
  std::sort(drugs.begin(), drugs.end());
  std::string input = absl::StrCat(alert.severity(), "\x1e", alert.rule_id(), "\x1e");
  for (const auto& d : drugs) {
    absl::StrAppend(&input, d, "\x1f");
  }
  absl::StrAppend(&input, "\x1e");
  for (const auto& e : evidence) {
    absl::StrAppend(&input, e, "\x1e");
  }
  return Sha256Hex(input);
}

absl::StatusOr<CommitResult> PatientRegistry::CommitAndPublish(const PatientChange& change) {
  auto result = store_->Commit(change);
  if (result.ok()) {
    hub_->Publish(result->events);
  }
  return result;
}

absl::StatusOr<v1::PutPatientResponse> PatientRegistry::PutPatient(const v1::Patient& sent) {
  // Patients are keyed by the NFC form of their id.
  v1::Patient normalized;
  const v1::Patient* keyed = &sent;
  if (std::string id = ToNfc(sent.id()); id != sent.id()) {
    normalized = sent;
    normalized.set_id(std::move(id));
    keyed = &normalized;
  }
  const v1::Patient& patient = *keyed;
  absl::MutexLock lock(&write_mu_);
  auto state = store_->LoadPatient(patient.id());
  if (!state.ok()) {
    return state.status();
  }
  const auto kb = kb_->Get();
  // The whole current context, reviewed as a whole.
  const google::protobuf::RepeatedPtrField<v1::MedicationOrder> none;
  ScreeningResult screened = Screen(*kb, patient, none);

  absl::flat_hash_map<std::string, store::v1::StoredAlert> existing;
  for (auto& a : state->alerts) {
    existing.emplace(a.record().alert().id(), std::move(a));
  }
  PatientChange change;
  change.op = PatientChange::Op::kPut;
  change.patient_id = patient.id();
  change.expected_revision = state->revision;
  change.patient = patient;
  v1::PutPatientResponse response;
  absl::flat_hash_set<std::string> current_ids;
  for (const auto& alert : screened.alerts) {
    current_ids.insert(alert.id());
    const std::string fingerprint = Fingerprint(alert);
    store::v1::StoredAlert stored;
    const auto it = existing.find(alert.id());
    if (it != existing.end()) {
      stored = it->second;
    }
    auto* record = stored.mutable_record();
    const v1::AlertStatus before = it == existing.end() ? v1::ALERT_STATUS_UNSPECIFIED : record->status();
    *record->mutable_alert() = alert;
    record->set_patient_id(patient.id());
    bool raise = false;
    if (IsActive(before)) {
      if (before == v1::ALERT_STATUS_OVERRIDDEN && fingerprint != stored.override_fingerprint()) {
        // The facts behind an overridden alert changed: raise it again.
        record->set_status(v1::ALERT_STATUS_ACTIVE);
        stored.clear_override_fingerprint();
        raise = true;
      }
    } else if (!stored.override_fingerprint().empty() && stored.override_fingerprint() == fingerprint) {
      // Back with the same facts it was overridden on: stays suppressed.
      record->set_status(v1::ALERT_STATUS_OVERRIDDEN);
    } else {
      record->set_status(v1::ALERT_STATUS_ACTIVE);
      stored.clear_override_fingerprint();
      raise = true;
    }
    const bool changed = it == existing.end() || raise || stored.fingerprint() != fingerprint ||
                         before != record->status() ||
                         !google::protobuf::util::MessageDifferencer::Equals(it->second.record().alert(), alert);
    stored.set_fingerprint(fingerprint);
    if (raise) {
      change.events.push_back(MakeEvent(v1::ALERT_EVENT_TYPE_RAISED, patient.id(), alert));
      *response.add_raised() = alert;
    }
    if (changed) {
      change.alerts.push_back(stored);
    }
    *response.add_active() = alert;
  }
  for (auto& [id, stored] : existing) {
    if (current_ids.contains(id) || !IsActive(stored.record().status())) {
      continue;
    }
    Resolve(std::move(stored), &change, response.add_resolved());
  }
  auto committed = CommitAndPublish(change);
  if (!committed.ok()) {
    return committed.status();
  }
  response.set_last_event_number(committed->last_event_number);
  response.set_knowledge_base_version(kb->version());
  response.set_created(!state->exists);
  return response;
}

absl::StatusOr<v1::Patient> PatientRegistry::GetPatient(const std::string& sent_id) {
  const std::string patient_id = ToNfc(sent_id);
  auto state = store_->LoadPatient(patient_id);
  if (!state.ok()) {
    return state.status();
  }
  if (!state->exists) {
    return absl::NotFoundError(absl::StrCat("patient_id: no stored patient '", patient_id.substr(0, 128), "'"));
  }
  return std::move(state->patient);
}

absl::StatusOr<v1::DeletePatientResponse> PatientRegistry::DeletePatient(const std::string& sent_id) {
  const std::string patient_id = ToNfc(sent_id);
  absl::MutexLock lock(&write_mu_);
  auto state = store_->LoadPatient(patient_id);
  if (!state.ok()) {
    return state.status();
  }
  // A patient who was never stored may still have alerts: those
  // acknowledged on a CDS Hooks card (AcknowledgeShown). They are erased too,
  // and so are the cards shown for the patient (the commit erases them).
  if (!state->exists && state->alerts.empty()) {
    auto forgot = store_->ForgetCards(patient_id);
    if (!forgot.ok()) {
      return forgot.status();
    }
    if (*forgot > 0) {
      // Only cards were held, now erased: no event is written.
      auto latest = store_->LatestEventNumber();
      if (!latest.ok()) {
        return latest.status();
      }
      v1::DeletePatientResponse response;
      response.set_last_event_number(*latest);
      return response;
    }
    return absl::NotFoundError(absl::StrCat("patient_id: no stored patient '", patient_id.substr(0, 128), "'"));
  }
  PatientChange change;
  change.op = PatientChange::Op::kDelete;
  change.patient_id = patient_id;
  change.expected_revision = state->revision;
  v1::DeletePatientResponse response;
  for (auto& stored : state->alerts) {
    if (!IsActive(stored.record().status())) {
      continue;
    }
    Resolve(std::move(stored), &change, response.add_resolved());
  }
  auto committed = CommitAndPublish(change);
  if (!committed.ok()) {
    return committed.status();
  }
  response.set_last_event_number(committed->last_event_number);
  return response;
}

absl::StatusOr<v1::AcknowledgeAlertResponse> PatientRegistry::Acknowledge(const v1::AcknowledgeAlertRequest& request,
                                                                         const Agent& agent) {
  absl::MutexLock lock(&write_mu_);
  auto patient_id = store_->FindAlertPatient(request.alert_id());
  if (!patient_id.ok()) {
    return patient_id.status();
  }
  if (!patient_id->has_value()) {
    return absl::NotFoundError(absl::StrCat("alert_id: no alert '", request.alert_id().substr(0, 128),
                                            "' of a stored patient"));
  }
  auto state = store_->LoadPatient(**patient_id);
  if (!state.ok()) {
    return state.status();
  }
  store::v1::StoredAlert* target = nullptr;
  for (auto& a : state->alerts) {
    if (a.record().alert().id() == request.alert_id()) {
      target = &a;
    }
  }
  if (target == nullptr) {
    return absl::NotFoundError(absl::StrCat("alert_id: no alert '", request.alert_id().substr(0, 128), "'"));
  }
  if (!IsActive(target->record().status())) {
    return absl::FailedPreconditionError("alert_id: the alert is resolved; only active alerts can be acknowledged");
  }
  MarkAcknowledged(request.outcome(), target);
  return CommitAcknowledgement(**patient_id, state->revision, *target, AcknowledgementOf(request, agent));
}

absl::StatusOr<v1::AcknowledgeAlertResponse> PatientRegistry::AcknowledgeShown(const std::string& patient_id_in,
                                                                             const v1::Alert& alert,
                                                                             const v1::AcknowledgeAlertRequest& request,
                                                                             const Agent& agent) {
  v1::AcknowledgeAlertRequest by_id = request;
  by_id.set_alert_id(alert.id());
  auto owner = store_->FindAlertPatient(alert.id());
  if (!owner.ok()) {
    return owner.status();
  }
  if (owner->has_value()) {
    return Acknowledge(by_id, agent);
  }
  const std::string patient_id = ToNfc(patient_id_in);
  absl::MutexLock lock(&write_mu_);
  auto state = store_->LoadPatient(patient_id);
  if (!state.ok()) {
    return state.status();
  }
  store::v1::StoredAlert stored;
  *stored.mutable_record()->mutable_alert() = alert;
  stored.mutable_record()->set_patient_id(patient_id);
  stored.set_fingerprint(Fingerprint(alert));
  MarkAcknowledged(request.outcome(), &stored);
  return CommitAcknowledgement(patient_id, state->revision, stored, AcknowledgementOf(request, agent));
}

absl::StatusOr<v1::AcknowledgeAlertResponse> PatientRegistry::CommitAcknowledgement(
    const std::string& patient_id, int64_t revision, const store::v1::StoredAlert& alert,
    const v1::Acknowledgement& ack) {
  PatientChange change;
  change.op = PatientChange::Op::kAlertsOnly;
  change.patient_id = patient_id;
  change.expected_revision = revision;
  change.alerts.push_back(alert);
  v1::AlertEvent event = MakeEvent(v1::ALERT_EVENT_TYPE_ACKNOWLEDGED, patient_id, alert.record().alert());
  *event.mutable_acknowledgement() = ack;
  change.events.push_back(std::move(event));
  auto committed = CommitAndPublish(change);
  if (!committed.ok()) {
    return committed.status();
  }
  v1::AcknowledgeAlertResponse response;
  response.set_event_number(committed->last_event_number);
  *response.mutable_alert() = committed->alerts.front().record();
  return response;
}

absl::StatusOr<v1::ListAlertsResponse> PatientRegistry::ListAlerts(const v1::ListAlertsRequest& request) {
  const std::string patient_id = ToNfc(request.patient_id());
  // The order of the list: active first, then most severe, then by id.
  using Key = std::tuple<int, int, std::string>;
  auto key_of = [](const v1::AlertRecord& r) {
    return Key(IsActive(r.status()) ? 0 : 1, -static_cast<int>(r.alert().severity()), r.alert().id());
  };
  const std::string query = absl::StrCat(patient_id, "\x1f", request.include_resolved() ? "all" : "active");
  std::optional<Key> after;
  if (!request.page_token().empty()) {
    auto parts = DecodePageToken(request.page_token(), query, 3, "page_token");
    if (!parts.ok()) {
      return parts.status();
    }
    int rank = 0;
    int severity = 0;
    if (!absl::SimpleAtoi((*parts)[0], &rank) || !absl::SimpleAtoi((*parts)[1], &severity)) {
      return absl::InvalidArgumentError("page_token: is not a token from a previous response");
    }
    after = Key(rank, severity, (*parts)[2]);
  }
  auto state = store_->LoadPatient(patient_id);
  if (!state.ok()) {
    return state.status();
  }
  if (!state->exists && state->alerts.empty()) {
    return absl::NotFoundError(absl::StrCat("patient_id: no stored patient '", request.patient_id().substr(0, 128), "'"));
  }
  std::vector<const v1::AlertRecord*> records;
  for (const auto& a : state->alerts) {
    if ((request.include_resolved() || IsActive(a.record().status())) && (!after || key_of(a.record()) > *after)) {
      records.push_back(&a.record());
    }
  }
  std::sort(records.begin(), records.end(),
            [&](const v1::AlertRecord* a, const v1::AlertRecord* b) { return key_of(*a) < key_of(*b); });
  const size_t page_size = static_cast<size_t>(request.page_size() == 0 ? api::kDefaultAlertsPageSize : request.page_size());
  v1::ListAlertsResponse response;
  for (size_t i = 0; i < records.size() && i < page_size; ++i) {
    *response.add_alerts() = *records[i];
  }
  if (records.size() > page_size) {
    const auto [rank, severity, id] = key_of(*records[page_size - 1]);
    response.set_next_page_token(EncodePageToken(query, {absl::StrCat(rank), absl::StrCat(severity), id}));
  }
  return response;
}

}  // namespace vigil
