#include "server/http/ui_worklist.h"

#include <algorithm>
#include <utility>

namespace vigil {
namespace {

// Events read from the store per page while catching up.
constexpr int kPage = 1000;

}  // namespace

void Worklist::Apply(int64_t number, const v1::AlertEvent& event) {
  absl::MutexLock lock(&mu_);
  ApplyLocked(number, event);
}

void Worklist::ApplyLocked(int64_t number, const v1::AlertEvent& event) {
  applied_ = std::max(applied_, number);
  const std::string& id = event.alert().id();
  // An erased event (its patient was deleted) carries no texts: the alert
  // leaves the list; the deletion resolves it anyway.
  if (event.type() == v1::ALERT_EVENT_TYPE_RAISED && !event.erased()) {
    WorklistEntry entry;
    entry.patient_id = event.patient_id();
    entry.alert = event.alert();
    entry.event_number = number;
    entry.raised_time = event.event_time();
    active_[id] = std::move(entry);
    return;
  }
  // RESOLVED, or ACKNOWLEDGED (accepted or overridden): no action is needed
  // any more.
  active_.erase(id);
}

absl::Status Worklist::CatchUp() {
  while (true) {
    auto events = store_->ReadEvents(applied_, kPage);
    if (!events.ok()) {
      return events.status();
    }
    for (const StoredEvent& stored : *events) {
      ApplyLocked(stored.number, stored.event);
    }
    if (static_cast<int>(events->size()) < kPage) {
      return absl::OkStatus();
    }
  }
}

absl::StatusOr<Worklist::Snapshot> Worklist::Get() {
  Snapshot snapshot;
  {
    absl::MutexLock lock(&mu_);
    if (auto st = CatchUp(); !st.ok()) {
      return st;
    }
    snapshot.latest = applied_;
    snapshot.entries.reserve(active_.size());
    for (const auto& [id, entry] : active_) {
      snapshot.entries.push_back(entry);
    }
  }
  std::sort(snapshot.entries.begin(), snapshot.entries.end(), [](const WorklistEntry& a, const WorklistEntry& b) {
    if (a.alert.severity() != b.alert.severity()) {
      return a.alert.severity() > b.alert.severity();
    }
    return a.event_number > b.event_number;
  });
  return snapshot;
}

}  // namespace vigil
