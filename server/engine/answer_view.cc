#include "server/engine/answer_view.h"

#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace vigil {
namespace {

// What the basic view leaves out of an alert (see v1::AlertView).
void ToBasicView(v1::Alert& alert) {
  alert.clear_detail();
  alert.clear_evidence();
  alert.clear_sources();
  alert.clear_interpretation();
}

// Moves the sources `alert` cites that no earlier message carried (those
// still in `pending`) into `out`, in order of citation.
void MoveFirstCited(const v1::Alert& alert, absl::flat_hash_map<std::string, v1::SourceRef*>& pending,
                    google::protobuf::RepeatedPtrField<v1::SourceRef>* out) {
  for (const auto& ref : alert.sources()) {
    auto it = pending.find(ref.id());
    if (it != pending.end()) {
      out->Add()->Swap(it->second);
      pending.erase(it);
    }
  }
}

// Marks a source already listed in the answer's `sources`.
constexpr int kListed = -1;

}  // namespace

void ApplyAnswerShape(const AnswerShape& shape, v1::CheckMedicationsUnaryResponse* answer) {
  if (shape.view == v1::ALERT_VIEW_BASIC) {
    for (auto& alert : *answer->mutable_alerts()) {
      ToBasicView(alert);
    }
    return;  // no sources left to refer to
  }
  if (!shape.sources_by_reference) {
    return;
  }
  // Citations per source id: only a source cited by two or more alerts is
  // worth listing once (for one citation, listing it would add its id).
  absl::flat_hash_map<absl::string_view, int> citations;
  for (const auto& alert : answer->alerts()) {
    for (const auto& ref : alert.sources()) {
      ++citations[ref.id()];
    }
  }
  auto& listed = *answer->mutable_sources();
  for (auto& alert : *answer->mutable_alerts()) {
    for (auto& ref : *alert.mutable_sources()) {
      int& count = citations[ref.id()];
      if (count == 1) {
        continue;  // cited once: stays in full in its alert
      }
      if (count != kListed) {  // first of several citations
        *listed.Add() = ref;
        count = kListed;
      }
      ref.clear_title();
      ref.clear_url();
    }
  }
}

std::vector<v1::CheckMedicationsResponse*> StreamMessagesOf(const AnswerShape& shape,
                                                             v1::CheckMedicationsUnaryResponse* answer,
                                                             google::protobuf::Arena* arena) {
  using google::protobuf::Arena;
  std::vector<v1::CheckMedicationsResponse*> messages;
  auto& alerts = *answer->mutable_alerts();
  absl::flat_hash_map<std::string, v1::SourceRef*> pending;
  for (auto& source : *answer->mutable_sources()) {
    pending.emplace(source.id(), &source);
  }
  if (shape.max_alerts_per_message <= 1) {
    messages.reserve(static_cast<size_t>(alerts.size()) + 1);
    for (auto& alert : alerts) {
      auto* message = Arena::CreateMessage<v1::CheckMedicationsResponse>(arena);
      MoveFirstCited(alert, pending, message->mutable_sources());
      message->mutable_alert()->Swap(&alert);  // same arena: pointers change hands
      messages.push_back(message);
    }
    auto* summary = Arena::CreateMessage<v1::CheckMedicationsResponse>(arena);
    summary->mutable_summary()->Swap(answer->mutable_summary());
    messages.push_back(summary);
    answer->Clear();
    return messages;
  }
  v1::AlertBatch* batch = nullptr;
  size_t batch_bytes = 0;
  for (auto& alert : alerts) {
    const size_t bytes = alert.ByteSizeLong();
    if (batch == nullptr || batch->alerts_size() >= shape.max_alerts_per_message ||
        (batch_bytes + bytes > kMaxAlertBatchBytes && batch->alerts_size() > 0)) {
      messages.push_back(Arena::CreateMessage<v1::CheckMedicationsResponse>(arena));
      batch = messages.back()->mutable_alert_batch();
      batch_bytes = 0;
    }
    MoveFirstCited(alert, pending, messages.back()->mutable_sources());
    batch->add_alerts()->Swap(&alert);
    batch_bytes += bytes;
  }
  if (batch == nullptr) {  // no alert: the summary alone, in a batch
    messages.push_back(Arena::CreateMessage<v1::CheckMedicationsResponse>(arena));
    batch = messages.back()->mutable_alert_batch();
  }
  batch->mutable_summary()->Swap(answer->mutable_summary());
  answer->Clear();
  return messages;
}

}  // namespace vigil
