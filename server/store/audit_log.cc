#include "server/store/audit_log.h"

#include <pthread.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/log.h"

namespace vigil {

namespace {
// Backoff between attempts after a failed write.
constexpr absl::Duration kFirstRetry = absl::Milliseconds(50);
constexpr absl::Duration kMaxRetry = absl::Seconds(2);
}  // namespace

AuditLog::AuditLog(Store* store, size_t max_pending)
    : store_(store), max_pending_(std::max<size_t>(1, max_pending)), thread_([this] { Run(); }) {}

AuditLog::~AuditLog() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

namespace {

// `text` cut to at most `max` bytes without splitting a UTF-8 character.
void Truncate(std::string* text, size_t max) {
  if (text->size() <= max) {
    return;
  }
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>((*text)[end]) & 0xC0) == 0x80) {
    --end;
  }
  text->resize(end);
}

}  // namespace

void AuditLog::Record(v1::AuditEvent event, std::function<void(const absl::Status&)> done) {
  for (std::string* field : {event.mutable_method(), event.mutable_agent(), event.mutable_peer(),
                             event.mutable_patient_id(), event.mutable_alert_id(),
                             event.mutable_certificate_subject()}) {
    Truncate(field, kMaxFieldBytes);
  }
  std::function<void(const absl::Status&)> overflow;
  {
    absl::MutexLock lock(&mu_);
    if (queue_.size() >= max_pending_) {
      // The oldest record gives way: the disk has been failing for a while.
      overflow = std::move(queue_.front().second);
      waiting_ -= overflow ? 1u : 0u;
      queue_.pop_front();
      if (dropped_++ % 1000 == 0) {
        LogError("audit_records_dropped", {{"dropped", std::to_string(dropped_)},
                                           {"pending_limit", std::to_string(max_pending_)}});
      }
    }
    waiting_ += done ? 1u : 0u;
    queue_.emplace_back(std::move(event), std::move(done));
    ++queued_total_;
  }
  if (overflow) {
    overflow(absl::ResourceExhaustedError("audit record dropped: too many records pending after write failures"));
  }
}

bool AuditLog::WaitUntilWritten(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const int64_t target = queued_total_;
  auto settled = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return written_ + dropped_ >= target; };
  return mu_.AwaitWithTimeout(absl::Condition(&settled), timeout);
}

int64_t AuditLog::written() const {
  absl::MutexLock lock(&mu_);
  return written_;
}

int64_t AuditLog::failed() const {
  absl::MutexLock lock(&mu_);
  return failed_;
}

int64_t AuditLog::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

int64_t AuditLog::pending() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

void AuditLog::Run() {
  // Named for operators (top -H, perf): the trail's writer is a thread of its own.
  pthread_setname_np(pthread_self(), "vigil-audit");
  absl::Duration backoff = kFirstRetry;
  bool last_attempt = false;
  // When the oldest commit not yet on disk was made (InfiniteFuture: none).
  absl::Time unsynced_since = absl::InfiniteFuture();
  auto sync = [this, &unsynced_since] {
    const absl::Status status = store_->SyncAudit();
    if (!status.ok()) {
      LogError("audit_sync_failed", {{"reason", std::string(status.message())}});
    }
    // After a failure, the next attempt comes one interval later.
    unsynced_since = status.ok() ? absl::InfiniteFuture() : absl::Now();
  };
  while (true) {
    std::deque<Entry> batch;
    bool synced = false;
    bool idle = false;
    {
      absl::MutexLock lock(&mu_);
      if (!mu_.AwaitWithDeadline(absl::Condition(
                                     +[](AuditLog* log) ABSL_EXCLUSIVE_LOCKS_REQUIRED(log->mu_) {
                                       return log->stopping_ || !log->queue_.empty();
                                     },
                                     this),
                                 unsynced_since + kSyncInterval)) {
        idle = true;  // with commits not yet on disk for an interval: synced below
      } else {
        if (!stopping_ && waiting_ == 0 && queue_.size() < kMaxBatch) {
          // Only records nobody waits for: gather more for one commit.
          mu_.AwaitWithTimeout(absl::Condition(
                                   +[](AuditLog* log) ABSL_EXCLUSIVE_LOCKS_REQUIRED(log->mu_) {
                                     return log->stopping_ || log->waiting_ > 0 || log->queue_.size() >= kMaxBatch;
                                   },
                                   this),
                               kBatchWindow);
        }
        if (queue_.empty() || last_attempt) {
          if (!queue_.empty()) {
            LogError("audit_records_lost_at_shutdown", {{"records", std::to_string(queue_.size())}});
          }
          break;
        }
        last_attempt = stopping_;
        // A caller waits for durability, the interval is up, or this is the
        // last write: the commit is synced, and with it every earlier one.
        synced = waiting_ > 0 || stopping_ || absl::Now() - unsynced_since >= kSyncInterval;
        batch.swap(queue_);
        waiting_ = 0;
      }
    }
    if (idle) {
      sync();
      continue;
    }
    const size_t records = batch.size();
    const absl::Status status = WriteBatch(std::move(batch), synced);
    if (status.ok()) {
      if (synced) {
        unsynced_since = absl::InfiniteFuture();
      } else if (unsynced_since == absl::InfiniteFuture()) {
        unsynced_since = absl::Now();
      }
      backoff = kFirstRetry;
      continue;
    }
    // The message names the database and the fault, never patient data.
    LogError("audit_write_failed", {{"records", std::to_string(records)},
                                    {"reason", std::string(status.message())},
                                    {"retry_in_ms", std::to_string(absl::ToInt64Milliseconds(backoff))}});
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
    backoff = std::min(backoff * 2, kMaxRetry);
  }
  if (unsynced_since != absl::InfiniteFuture()) {
    sync();
  }
}

absl::Status AuditLog::WriteBatch(std::deque<Entry> batch, bool synced) {
  std::vector<v1::AuditEvent> events;
  std::vector<std::function<void(const absl::Status&)>> callbacks;
  events.reserve(batch.size());
  for (auto& [event, done] : batch) {
    events.push_back(std::move(event));
    if (done) {
      callbacks.push_back(std::move(done));
    }
  }
  const absl::Status status = store_->AppendAudit(
      events, synced ? Store::AuditDurability::kSynced : Store::AuditDurability::kCommitted);
  {
    absl::MutexLock lock(&mu_);
    (status.ok() ? written_ : failed_) += static_cast<int64_t>(events.size());
    if (!status.ok()) {
      // Keep the records for the retry, oldest first, ahead of what came
      // meanwhile; beyond the limit the oldest give way.
      size_t unqueued = events.size();
      while (unqueued > 0 && queue_.size() < max_pending_) {
        --unqueued;
        queue_.emplace_front(std::move(events[unqueued]), nullptr);
      }
      dropped_ += static_cast<int64_t>(unqueued);
    }
  }
  for (auto& done : callbacks) {
    done(status);
  }
  return status;
}

}  // namespace vigil
