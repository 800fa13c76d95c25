// The pharmacist's worklist: every stored patient's ACTIVE alerts (raised,
// not resolved, not yet accepted or overridden), built from the alert feed's
// events as the store keeps them and brought up to date on demand, so that
// it is never behind the event number it reports.
#ifndef VIGIL_SERVER_HTTP_UI_WORKLIST_H_
#define VIGIL_SERVER_HTTP_UI_WORKLIST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"
#include "vigil/v1/alert_feed.pb.h"

namespace vigil {

struct WorklistEntry {
  std::string patient_id;
  v1::Alert alert;
  // The RAISED event that made it active, and when.
  int64_t event_number = 0;
  google::protobuf::Timestamp raised_time;
};

class Worklist {
 public:
  explicit Worklist(Store* store) : store_(store) {}

  // The active alerts, most severe first (then newest first), and the
  // number of the last event they reflect.
  struct Snapshot {
    int64_t latest = 0;
    std::vector<WorklistEntry> entries;
  };
  absl::StatusOr<Snapshot> Get();

  // Applies one event (exposed for tests; Get() reads them from the store).
  void Apply(int64_t number, const v1::AlertEvent& event) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void ApplyLocked(int64_t number, const v1::AlertEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads the events after applied_ from the store.
  absl::Status CatchUp() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Store* const store_;
  absl::Mutex mu_;
  int64_t applied_ ABSL_GUARDED_BY(mu_) = 0;
  // alert id -> entry
  absl::flat_hash_map<std::string, WorklistEntry> active_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vigil

#endif  // VIGIL_SERVER_HTTP_UI_WORKLIST_H_
