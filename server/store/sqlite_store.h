// The SQLite implementation of Store: one file, WAL mode, synchronous=FULL
// (NORMAL only for the audit appends that may defer their flush).
#ifndef VIGIL_SERVER_STORE_SQLITE_STORE_H_
#define VIGIL_SERVER_STORE_SQLITE_STORE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"

struct sqlite3;

namespace vigil {

class StatementCache;

class SqliteStore final : public Store {
 public:
  // The schema version this build writes. Older files are migrated in place
  // when opened; a file from a newer version is refused.
  static constexpr int kSchemaVersion = 6;

  // Opens (creating if needed) and migrates the database at `path`.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);

  ~SqliteStore() override;

  absl::StatusOr<PatientState> LoadPatient(const std::string& patient_id) override;
  absl::StatusOr<CommitResult> Commit(const PatientChange& change) override;
  absl::StatusOr<std::optional<std::string>> FindAlertPatient(const std::string& alert_id) override;
  absl::StatusOr<std::vector<StoredEvent>> ReadEvents(int64_t after, int limit) override;
  absl::StatusOr<int64_t> LatestEventNumber() override;
  absl::Status Health() override;
  absl::Status AppendAudit(const std::vector<v1::AuditEvent>& events, AuditDurability durability) override;
  absl::Status SyncAudit() override;
  absl::StatusOr<std::vector<v1::AuditEvent>> ReadAudit(int64_t after_id, int limit) override;
  absl::Status RememberCards(const std::vector<ShownCard>& cards, absl::Time now) override;
  absl::StatusOr<std::optional<ShownCard>> FindCard(const std::string& uuid, absl::Time now) override;
  absl::StatusOr<std::optional<std::string>> SelectFingerprint(const std::string& select_key,
                                                               absl::Time now) override;
  absl::StatusOr<int64_t> ForgetCards(const std::string& patient_id) override;

  // The schema version of the open file.
  int schema_version() const { return schema_version_; }

 private:
  explicit SqliteStore(sqlite3* db, std::string path);
  absl::Status Migrate();
  // The 4 -> 5 migration: stored alerts and events rewritten to the fixed
  // vigil.v1 (Timestamp times, the rule-origin enum).
  absl::Status UpgradeBlobsToFixedV1() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  template <typename Message>
  absl::Status UpgradeBlobs(const char* select, const char* update) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AppendAuditLocked(const std::vector<v1::AuditEvent>& events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` in one write transaction: committed when it returns OK,
  // rolled back when it or the commit fails.
  absl::Status TransactionLocked(const std::function<absl::Status()>& body) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `write` (a transaction) without a flush of its own: committed, and
  // on disk with the next synced commit or SyncAudit (WAL mode only; a file
  // in another mode syncs every commit).
  absl::Status UnflushedLocked(const std::function<absl::Status()>& write) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<CommitResult> CommitLocked(const PatientChange& change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes the patient's context and alerts and turns its events into
  // tombstones, inside the caller's transaction.
  absl::Status ErasePatientLocked(const std::string& patient_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  // Statements kept prepared from call to call (see sqlite_store.cc).
  std::unique_ptr<StatementCache> statements_ ABSL_GUARDED_BY(mu_);
  const std::string path_;
  // Whether the file is in WAL mode (set once by Open; see AppendAudit).
  bool wal_ ABSL_GUARDED_BY(mu_) = false;
  int schema_version_ = 0;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_STORE_SQLITE_STORE_H_
