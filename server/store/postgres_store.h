// The PostgreSQL implementation of Store: the shared store when a hospital
// runs several replicas of the server against one database.
//
// Blobs of serialized protos as in the SQLite store (bytea here), written
// through libpq. One connection, used under a lock: every call is a short
// round trip on a local network, and a Commit holds the connection for its
// transaction. A broken connection fails the call with UNAVAILABLE ("database
// connection lost: ...") and is re-established by the next call.
#ifndef VIGIL_SERVER_STORE_POSTGRES_STORE_H_
#define VIGIL_SERVER_STORE_POSTGRES_STORE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"

// libpq's connection, declared as libpq-fe.h does (kept out of this header).
typedef struct pg_conn PGconn;

namespace vigil {

class PgParams;
class PgResult;

// `uri` without its password (in the user part or a password= parameter),
// for logs and messages.
std::string UriWithoutPassword(absl::string_view uri);

class PostgresStore final : public Store {
 public:
  // The schema version this build writes. Older databases are migrated when
  // opened; a database from a newer version is refused.
  static constexpr int kSchemaVersion = 2;

  // Connects to the database at `uri` (any libpq connection URI, e.g.
  // postgresql://vigil@db.example:5432/vigil?sslmode=require) and migrates
  // its schema. Replicas opening one database together migrate it once.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(const std::string& uri);

  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

  absl::StatusOr<PatientState> LoadPatient(const std::string& patient_id) override;
  absl::StatusOr<CommitResult> Commit(const PatientChange& change) override;
  absl::StatusOr<std::optional<std::string>> FindAlertPatient(const std::string& alert_id) override;
  absl::Status RememberCards(const std::vector<ShownCard>& cards, absl::Time now) override;
  absl::StatusOr<std::optional<ShownCard>> FindCard(const std::string& uuid, absl::Time now) override;
  absl::StatusOr<std::optional<std::string>> SelectFingerprint(const std::string& select_key,
                                                               absl::Time now) override;
  absl::StatusOr<int64_t> ForgetCards(const std::string& patient_id) override;
  absl::StatusOr<std::vector<StoredEvent>> ReadEvents(int64_t after, int limit) override;
  absl::StatusOr<int64_t> LatestEventNumber() override;
  absl::Status Health() override;
  absl::Status AppendAudit(const std::vector<v1::AuditEvent>& events, AuditDurability durability) override;
  absl::Status SyncAudit() override;
  absl::StatusOr<std::vector<v1::AuditEvent>> ReadAudit(int64_t after_id, int limit) override;

  // Replicas share the database: each follows the others' commits.
  bool shared() const override { return true; }
  // Waits for a notification on kEventChannel (LISTEN on a connection of
  // its own), or `timeout`.
  absl::Status WaitForOtherWriters(absl::Duration timeout) override;

  // The schema version of the open database.
  int schema_version() const { return schema_version_; }

  // The URI the store was opened with (with its password: for a listener
  // connection of its own; log UriWithoutPassword(uri()) instead).
  const std::string& uri() const { return uri_; }

  // The channel a Commit that appends events notifies, with the latest event
  // number as payload (a hint: readers still read the events table).
  static constexpr const char* kEventChannel = "vigil_events";

 private:
  PostgresStore(PGconn* conn, std::string uri);

  // Connects the store's connection again when it is broken.
  absl::Status EnsureConnectedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs one statement; the result of a statement that succeeded, or the
  // status of its failure (`what` says what the statement was for).
  absl::StatusOr<PgResult> Run(const char* what, const char* sql, const PgParams& params)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<PgResult> Run(const char* what, const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The status of a failed statement or connection.
  absl::Status StatusOf(const char* what, const PgResult* result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status BeginLocked(const char* what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CommitTransactionLocked(const char* what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RollbackLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` in one transaction: committed when it returns OK, rolled
  // back when it fails. `unflushed`: the COMMIT does not wait for the WAL
  // flush (synchronous_commit off for this transaction only).
  absl::Status TransactionLocked(const char* begin_what, const char* commit_what, bool unflushed,
                                 const std::function<absl::Status()>& body) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Status MigrateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status MigrateInTransactionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<CommitResult> CommitLocked(const PatientChange& change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks the expected revision (locking the patient's revision row until
  // the transaction ends) and writes the next one, which it returns.
  absl::StatusOr<int64_t> AdvanceRevisionLocked(const PatientChange& change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Numbers and appends the change's events and writes its alerts.
  absl::Status AppendEventsLocked(const PatientChange& change, CommitResult* result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes the patient's context and alerts and turns its events into
  // tombstones, inside the caller's transaction.
  absl::Status ErasePatientLocked(const std::string& patient_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AppendAuditLocked(const std::vector<v1::AuditEvent>& events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  PGconn* conn_ ABSL_GUARDED_BY(mu_);
  // Set when a statement failed with a connection error: the next call
  // connects again even if libpq still reports the connection as open.
  bool reconnect_ ABSL_GUARDED_BY(mu_) = false;
  const std::string uri_;
  // The URI without its password, for messages.
  const std::string name_;
  int schema_version_ = 0;

  // The connection that LISTENs for other replicas' commits (the store
  // follower's; null until first used or after it broke).
  absl::Mutex listen_mu_;
  PGconn* listen_conn_ ABSL_GUARDED_BY(listen_mu_) = nullptr;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_STORE_POSTGRES_STORE_H_
