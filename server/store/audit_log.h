// The audit trail's writer: records accesses to patient data durably, with
// group commit (one transaction for every record queued meanwhile).
#ifndef VIGIL_SERVER_STORE_AUDIT_LOG_H_
#define VIGIL_SERVER_STORE_AUDIT_LOG_H_

#include <deque>
#include <functional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"
#include "vigil/v1/audit.pb.h"

namespace vigil {

class AuditLog {
 public:
  explicit AuditLog(Store* store);
  // Writes what is queued, then stops.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Queues `event`; `done` runs on the audit thread once it is durable (OK)
  // or could not be written (the status says why).
  void Record(v1::AuditEvent event, std::function<void(const absl::Status&)> done);

  // Records written and failed so far.
  int64_t written() const;
  int64_t failed() const;

 private:
  void Run();

  Store* const store_;
  mutable absl::Mutex mu_;
  std::deque<std::pair<v1::AuditEvent, std::function<void(const absl::Status&)>>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_STORE_AUDIT_LOG_H_
