// Storage of stored patients, their alerts and the alert feed's events.
//
// The contract, for every implementation: a Commit is atomic and durable
// when it returns OK (it survives a crash of the process); event numbers rise
// by one across the store with no gap; a Commit whose expected revision does
// not match the stored one changes nothing and fails with ABORTED, so several
// servers can share one database; storage faults fail with UNAVAILABLE and a
// clear message, and leave the stored data as it was.
#ifndef VIGIL_SERVER_STORE_STORE_H_
#define VIGIL_SERVER_STORE_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "vigil/store/v1/store.pb.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/alert_feed.pb.h"
#include "vigil/v1/audit.pb.h"
#include "vigil/v1/patient.pb.h"

namespace vigil {

// An event with its number.
struct StoredEvent {
  int64_t number = 0;
  v1::AlertEvent event;
};

// What the store holds for one patient.
struct PatientState {
  // False when the patient is not stored (its alerts may still be, resolved).
  bool exists = false;
  // Rises with every change of the patient; 0 when never stored.
  int64_t revision = 0;
  v1::Patient patient;
  // Every alert ever raised for the patient, keyed by alert id.
  std::vector<store::v1::StoredAlert> alerts;
};

// A change to one patient, written atomically. A kDelete erases the
// patient's clinical data everywhere the store keeps it: the stored context,
// every alert with its history, and the content of every event of the
// patient (each event stays, as a Tombstone, with its number; the change's
// own events are written as tombstones too).
struct PatientChange {
  enum class Op { kPut, kDelete, kAlertsOnly };
  Op op = Op::kPut;
  std::string patient_id;
  // The revision the change was computed from (PatientState::revision).
  int64_t expected_revision = 0;
  // For kPut: the new context.
  v1::Patient patient;
  // Alerts to insert or replace (by alert id).
  std::vector<store::v1::StoredAlert> alerts;
  // Events to append, in order. The store numbers them, sets their time, and
  // appends an entry to the history of the alert (in `alerts`) each names.
  std::vector<v1::AlertEvent> events;
};

// What an event keeps once its patient is deleted (AlertEvent.erased): its
// type, patient id, time and the alert's id, kind and severity; no texts,
// drugs, evidence or acknowledgement.
v1::AlertEvent Tombstone(const v1::AlertEvent& event);

struct CommitResult {
  std::vector<StoredEvent> events;
  // The latest event number after the commit.
  int64_t last_event_number = 0;
  // The alerts as written (with their history entries).
  std::vector<store::v1::StoredAlert> alerts;
};

// A CDS Hooks card the service answered with, remembered for a while so
// that feedback can name it and order-sign does not show again what
// order-select showed: on every server that shares the store.
struct ShownCard {
  std::string uuid;
  std::string patient_id;
  // context.userId of the hook call (the clinician who saw the card).
  std::string user_id;
  // Set when shown at order-select: user|patient|encounter|alert id.
  std::string select_key;
  // The alert's facts when shown (PatientRegistry::Fingerprint).
  std::string fingerprint;
  v1::Alert alert;
  absl::Time expires;
};

class Store {
 public:
  virtual ~Store() = default;

  // Loads a patient's state.
  virtual absl::StatusOr<PatientState> LoadPatient(const std::string& patient_id) = 0;

  // Writes a change atomically (see the contract above).
  virtual absl::StatusOr<CommitResult> Commit(const PatientChange& change) = 0;

  // The patient an alert belongs to, or nullopt when no such alert is stored.
  virtual absl::StatusOr<std::optional<std::string>> FindAlertPatient(const std::string& alert_id) = 0;

  // Events with numbers greater than `after`, in order, at most `limit`.
  virtual absl::StatusOr<std::vector<StoredEvent>> ReadEvents(int64_t after, int limit) = 0;

  // The latest event number (0 when there is none).
  virtual absl::StatusOr<int64_t> LatestEventNumber() = 0;

  // True when the store can be read and written.
  virtual absl::Status Health() = 0;

  // How far an audit append has reached when AppendAudit returns OK.
  enum class AuditDurability {
    // On disk: it survives a power loss or a crash of the operating system.
    kSynced,
    // Committed: it survives a crash of the server process, and reaches the
    // disk with the next synced append or SyncAudit (on PostgreSQL also by
    // the WAL writer, within three wal_writer_delay). A commit that skips its
    // own flush is much cheaper, and the store's lock is held for less time.
    kCommitted,
  };

  // Appends audit events (their ids and times are set by the store) in one
  // transaction, as durable as `durability` says. The trail is append-only:
  // nothing updates or deletes it.
  virtual absl::Status AppendAudit(const std::vector<v1::AuditEvent>& events, AuditDurability durability) = 0;

  // Brings every committed audit record to disk (see kCommitted).
  virtual absl::Status SyncAudit() = 0;

  // Audit events with ids greater than `after_id`, at most `limit`.
  virtual absl::StatusOr<std::vector<v1::AuditEvent>> ReadAudit(int64_t after_id, int limit) = 0;

  // Remembers `cards` (a card of the same uuid is replaced) and forgets
  // every card that expired before `now`. Cards are patient data: a kDelete
  // of their patient erases them. They are written without a flush of their
  // own (like kCommitted audit records): a power loss may forget the last
  // ones, which only means feedback on them is refused and order-sign shows
  // them again.
  virtual absl::Status RememberCards(const std::vector<ShownCard>& cards, absl::Time now) = 0;

  // The card `uuid`, unless it is unknown or expired at `now`.
  virtual absl::StatusOr<std::optional<ShownCard>> FindCard(const std::string& uuid, absl::Time now) = 0;

  // The fingerprint of the card remembered last with `select_key` (shown at
  // order-select), unless none is or it expired at `now`.
  virtual absl::StatusOr<std::optional<std::string>> SelectFingerprint(const std::string& select_key,
                                                                       absl::Time now) = 0;

  // Erases every card of `patient_id` (as a kDelete does); how many there
  // were. For a patient the store holds nothing else of.
  virtual absl::StatusOr<int64_t> ForgetCards(const std::string& patient_id) = 0;

  // True when other servers may write the same store (replicas sharing a
  // PostgreSQL database): their events reach this server's subscribers only
  // through the store, so the server follows it (WaitForOtherWriters).
  virtual bool shared() const { return false; }

  // Returns when other servers may have committed events (a notification),
  // or after `timeout`, whichever comes first. A store only this server
  // writes just waits.
  virtual absl::Status WaitForOtherWriters(absl::Duration timeout) {
    absl::SleepFor(timeout);
    return absl::OkStatus();
  }
};

}  // namespace vigil

#endif  // VIGIL_SERVER_STORE_STORE_H_
