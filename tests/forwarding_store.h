// A Store that passes every call on to a real one. Tests derive from it to
// inject faults or to record calls, and override only those calls.
#ifndef VIGIL_TESTS_FORWARDING_STORE_H_
#define VIGIL_TESTS_FORWARDING_STORE_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "server/store/store.h"

namespace vigil::testing {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(std::unique_ptr<Store> real) : real_(std::move(real)) {}

  absl::StatusOr<PatientState> LoadPatient(const std::string& id) override { return real_->LoadPatient(id); }
  absl::StatusOr<CommitResult> Commit(const PatientChange& change) override { return real_->Commit(change); }
  absl::StatusOr<std::optional<std::string>> FindAlertPatient(const std::string& id) override {
    return real_->FindAlertPatient(id);
  }
  absl::StatusOr<std::vector<StoredEvent>> ReadEvents(int64_t after, int limit) override {
    return real_->ReadEvents(after, limit);
  }
  absl::StatusOr<int64_t> LatestEventNumber() override { return real_->LatestEventNumber(); }
  absl::Status Health() override { return real_->Health(); }
  absl::Status AppendAudit(const std::vector<v1::AuditEvent>& events, AuditDurability durability) override {
    return real_->AppendAudit(events, durability);
  }
  absl::Status SyncAudit() override { return real_->SyncAudit(); }
  absl::StatusOr<std::vector<v1::AuditEvent>> ReadAudit(int64_t after_id, int limit) override {
    return real_->ReadAudit(after_id, limit);
  }
  absl::Status RememberCards(const std::vector<ShownCard>& cards, absl::Time now) override {
    return real_->RememberCards(cards, now);
  }
  absl::StatusOr<std::optional<ShownCard>> FindCard(const std::string& uuid, absl::Time now) override {
    return real_->FindCard(uuid, now);
  }
  absl::StatusOr<std::optional<std::string>> SelectFingerprint(const std::string& select_key,
                                                               absl::Time now) override {
    return real_->SelectFingerprint(select_key, now);
  }
  absl::StatusOr<int64_t> ForgetCards(const std::string& patient_id) override {
    return real_->ForgetCards(patient_id);
  }
  bool shared() const override { return real_->shared(); }
  absl::Status WaitForOtherWriters(absl::Duration timeout) override { return real_->WaitForOtherWriters(timeout); }

 private:
  std::unique_ptr<Store> real_;
};

}  // namespace vigil::testing

#endif  // VIGIL_TESTS_FORWARDING_STORE_H_
