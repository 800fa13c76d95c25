#include "server/store/audit_log.h"

#include <vector>

#include "server/common/log.h"

namespace vigil {

AuditLog::AuditLog(Store* store) : store_(store), thread_([this] { Run(); }) {}

AuditLog::~AuditLog() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void AuditLog::Record(v1::AuditEvent event, std::function<void(const absl::Status&)> done) {
  absl::MutexLock lock(&mu_);
  queue_.emplace_back(std::move(event), std::move(done));
}

int64_t AuditLog::written() const {
  absl::MutexLock lock(&mu_);
  return written_;
}

int64_t AuditLog::failed() const {
  absl::MutexLock lock(&mu_);
  return failed_;
}

void AuditLog::Run() {
  while (true) {
    std::deque<std::pair<v1::AuditEvent, std::function<void(const absl::Status&)>>> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](AuditLog* log) ABSL_EXCLUSIVE_LOCKS_REQUIRED(log->mu_) { return log->stopping_ || !log->queue_.empty(); },
          this));
      if (queue_.empty()) {
        return;
      }
      batch.swap(queue_);
    }
    std::vector<v1::AuditEvent> events;
    events.reserve(batch.size());
    for (const auto& [event, done] : batch) {
      events.push_back(event);
    }
    const absl::Status status = store_->AppendAudit(events);
    if (!status.ok()) {
      // The message names the database and the fault, never patient data.
      LogError("audit_write_failed", {{"records", std::to_string(events.size())}, {"reason", std::string(status.message())}});
    }
    {
      absl::MutexLock lock(&mu_);
      (status.ok() ? written_ : failed_) += static_cast<int64_t>(events.size());
    }
    for (auto& [event, done] : batch) {
      if (done) {
        done(status);
      }
    }
  }
}

}  // namespace vigil
