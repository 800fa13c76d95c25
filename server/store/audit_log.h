// The audit trail's writer: records accesses to patient data durably, with
// group commit (one transaction for every record queued meanwhile).
//
// Two guarantees, chosen per call:
//  - Record(event, done): `done` runs once the record is on disk (synced) or
//    the attempt failed; writes of patient data wait for it.
//  - Record(event, nullptr): the caller does not wait (screening answers
//    without an fsync on its path). Such records are gathered for up to
//    kBatchWindow (or kMaxBatch records) and committed in one transaction
//    without a flush of its own (Store::AuditDurability::kCommitted); the
//    writer syncs them within kSyncInterval of the first such commit, with
//    the next synced commit or on its own when idle. A crash of the server
//    process loses at most the records of the window and of the commit in
//    progress; a power loss or a crash of the operating system, at most
//    those of the last kSyncInterval as well.
// A failed write (disk full, read-only file) is retried with backoff, keeping
// up to `max_pending` records in memory; beyond that the oldest are dropped
// and counted, so a broken disk can never exhaust memory or stop screening.
#ifndef VIGIL_SERVER_STORE_AUDIT_LOG_H_
#define VIGIL_SERVER_STORE_AUDIT_LOG_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/store.h"
#include "vigil/v1/audit.pb.h"

namespace vigil {

class AuditLog {
 public:
  static constexpr absl::Duration kBatchWindow = absl::Milliseconds(5);
  // How long a committed record may wait for its sync (see above).
  static constexpr absl::Duration kSyncInterval = absl::Milliseconds(200);
  static constexpr size_t kMaxBatch = 1024;
  // Every string of a record (ids, method, agent, peer, certificate
  // subject) is cut to this many bytes, on a UTF-8 character boundary, so
  // that callers cannot grow the trail with long ids.
  static constexpr size_t kMaxFieldBytes = 256;

  explicit AuditLog(Store* store, size_t max_pending = 100000);
  // Writes what is queued (one last attempt), then stops.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Queues `event`. `done`, if set, runs on the audit thread once the record
  // is durable (OK) or its write failed (the status says why; the record
  // stays queued for a retry).
  void Record(v1::AuditEvent event, std::function<void(const absl::Status&)> done);

  // Records written so far; records whose write failed (each attempt);
  // records dropped because too many were pending; records pending.
  int64_t written() const;
  // Waits until every record queued before the call is written (or
  // dropped), at most `timeout`; false on timeout. Readers of the trail call
  // it so that they see the accesses that preceded their read.
  bool WaitUntilWritten(absl::Duration timeout);

  int64_t failed() const;
  int64_t dropped() const;
  int64_t pending() const;

 private:
  using Entry = std::pair<v1::AuditEvent, std::function<void(const absl::Status&)>>;
  void Run();
  // Appends `batch` (synced or only committed), settles its counters and
  // callbacks, and on failure queues its records again for the retry.
  absl::Status WriteBatch(std::deque<Entry> batch, bool synced);

  Store* const store_;
  const size_t max_pending_;
  mutable absl::Mutex mu_;
  std::deque<Entry> queue_ ABSL_GUARDED_BY(mu_);
  // Queued records whose caller waits (they are written without delay).
  size_t waiting_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  // Records ever queued (written_ + dropped_ of them are settled).
  int64_t queued_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_STORE_AUDIT_LOG_H_
