#include "server/store/sqlite_store.h"

#include <sqlite3.h>

#include <memory>
#include <optional>
#include <vector>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/rpc/code.pb.h"
#include "server/common/log.h"
#include "server/common/timestamp.h"

namespace vigil {
namespace {

// Schema migrations: entry i upgrades version i to i + 1.
constexpr const char* kMigrations[] = {
    // 0 -> 1: patients, alerts, events.
    R"sql(
CREATE TABLE patients (
  id TEXT PRIMARY KEY,
  revision INTEGER NOT NULL,
  data BLOB NOT NULL,
  update_time TEXT NOT NULL
);
CREATE TABLE alerts (
  alert_id TEXT PRIMARY KEY,
  patient_id TEXT NOT NULL,
  status INTEGER NOT NULL,
  data BLOB NOT NULL,
  update_time TEXT NOT NULL
);
CREATE INDEX alerts_by_patient ON alerts(patient_id);
CREATE TABLE events (
  event_number INTEGER PRIMARY KEY,
  patient_id TEXT NOT NULL,
  type INTEGER NOT NULL,
  alert_id TEXT NOT NULL,
  data BLOB NOT NULL,
  event_time TEXT NOT NULL
);
CREATE TABLE patient_revisions (
  id TEXT PRIMARY KEY,
  revision INTEGER NOT NULL
);
)sql",
    // 1 -> 2: the append-only audit trail.
    R"sql(
CREATE TABLE audit (
  id INTEGER PRIMARY KEY,
  recorded_time TEXT NOT NULL,
  action TEXT NOT NULL,
  method TEXT NOT NULL,
  agent TEXT NOT NULL,
  peer TEXT NOT NULL,
  patient_id TEXT NOT NULL,
  outcome TEXT NOT NULL,
  alert_id TEXT NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
)sql",
    // 2 -> 3: a patient's events, found without a scan when it is erased.
    R"sql(
CREATE INDEX events_by_patient ON events(patient_id);
)sql",
    // 3 -> 4: the audit trail records when the call came and the client
    // certificate's subject.
    R"sql(
ALTER TABLE audit ADD COLUMN access_time TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN certificate_subject TEXT NOT NULL DEFAULT '';
)sql",
    // 4 -> 5: vigil.v1 fixed its times as google.protobuf.Timestamp and the
    // rule origin as an enum: the stored alerts and events are rewritten
    // (UpgradeBlobsToFixedV1, run with this step).
    "",
    // 5 -> 6: CDS Hooks cards shown, remembered for feedback and order-sign
    // by every server sharing the store (Store::RememberCards).
    R"sql(
CREATE TABLE cds_cards (
  uuid TEXT PRIMARY KEY,
  patient_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  select_key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  alert BLOB NOT NULL,
  expires INTEGER NOT NULL
);
CREATE INDEX cds_cards_by_select_key ON cds_cards(select_key, expires);
CREATE INDEX cds_cards_by_patient ON cds_cards(patient_id);
CREATE INDEX cds_cards_by_expiry ON cds_cards(expires);
)sql",
};

// The fields vigil.v1 changed when it was fixed, as they are found in blobs
// written before: (message, old field number) of a string.
enum class Legacy { kRuleOrigin, kEventTime, kAcknowledgeTime, kHistoryTime };

std::optional<Legacy> LegacyField(const std::string& message, int number) {
  if (message == "vigil.v1.Alert" && number == 13) return Legacy::kRuleOrigin;
  if (message == "vigil.v1.AlertEvent" && number == 4) return Legacy::kEventTime;
  if (message == "vigil.v1.Acknowledgement" && number == 5) return Legacy::kAcknowledgeTime;
  if (message == "vigil.v1.AlertHistoryEntry" && number == 3) return Legacy::kHistoryTime;
  return std::nullopt;
}

// Moves the legacy string fields of `message` and the messages in it (kept
// by protobuf as unknown fields) into their fixed-v1 fields.
void UpgradeToFixedV1(google::protobuf::Message* message) {
  const auto* reflection = message->GetReflection();
  auto* unknown = reflection->MutableUnknownFields(message);
  const std::string& name = message->GetDescriptor()->full_name();
  for (int i = unknown->field_count() - 1; i >= 0; --i) {
    const auto& field = unknown->field(i);
    const auto legacy = LegacyField(name, field.number());
    if (!legacy.has_value() || field.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      continue;
    }
    const std::string text = field.length_delimited();
    switch (*legacy) {
      case Legacy::kRuleOrigin:
        static_cast<v1::Alert*>(message)->set_rule_origin(text == "curated" ? v1::RULE_ORIGIN_CURATED
                                                                           : v1::RULE_ORIGIN_IMPORTED);
        break;
      case Legacy::kEventTime:
        *static_cast<v1::AlertEvent*>(message)->mutable_event_time() = TimestampOfRfc3339(text);
        break;
      case Legacy::kAcknowledgeTime:
        *static_cast<v1::Acknowledgement*>(message)->mutable_acknowledge_time() = TimestampOfRfc3339(text);
        break;
      case Legacy::kHistoryTime:
        *static_cast<v1::AlertHistoryEntry*>(message)->mutable_event_time() = TimestampOfRfc3339(text);
        break;
    }
    unknown->DeleteSubrange(i, 1);
  }
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const auto* f : fields) {
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      continue;
    }
    if (f->is_repeated()) {
      for (int k = 0; k < reflection->FieldSize(*message, f); ++k) {
        UpgradeToFixedV1(reflection->MutableRepeatedMessage(message, f, k));
      }
    } else {
      UpgradeToFixedV1(reflection->MutableMessage(message, f));
    }
  }
}

std::string Now() { return Rfc3339(absl::Now()); }

// The audit table keeps FHIR AuditEvent action codes ("C", "R", "U", "D",
// "E") and status code names ("OK", "NOT_FOUND"), as written before v1 was
// fixed.
std::string AuditActionCode(v1::AuditAction action) {
  switch (action) {
    case v1::AUDIT_ACTION_CREATE:
      return "C";
    case v1::AUDIT_ACTION_READ:
      return "R";
    case v1::AUDIT_ACTION_UPDATE:
      return "U";
    case v1::AUDIT_ACTION_DELETE:
      return "D";
    case v1::AUDIT_ACTION_EXECUTE:
      return "E";
    default:
      return "";
  }
}

v1::AuditAction AuditActionOfCode(const std::string& code) {
  for (const v1::AuditAction action : {v1::AUDIT_ACTION_CREATE, v1::AUDIT_ACTION_READ, v1::AUDIT_ACTION_UPDATE,
                                       v1::AUDIT_ACTION_DELETE, v1::AUDIT_ACTION_EXECUTE}) {
    if (AuditActionCode(action) == code) {
      return action;
    }
  }
  return v1::AUDIT_ACTION_UNSPECIFIED;
}

}  // namespace

// The store's statements, kept prepared from call to call: SQLite compiles
// a statement's SQL each time it is prepared, which a write of a patient
// (a dozen statements, some once per alert or event) paid on every call.
// Keyed by the address of the SQL text, which is always a literal. Used
// under the store's lock only.
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  ~StatementCache() {
    for (auto& [sql, entry] : entries_) {
      sqlite3_finalize(entry.stmt);
    }
  }
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  // The prepared statement of `sql`, marked in use; null when it is already
  // in use (the caller then prepares its own) or cannot be prepared (*rc
  // says why).
  sqlite3_stmt* Acquire(const char* sql, int* rc) {
    *rc = SQLITE_OK;
    auto it = entries_.find(sql);
    if (it == entries_.end()) {
      sqlite3_stmt* stmt = nullptr;
      *rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (*rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        return nullptr;
      }
      it = entries_.emplace(sql, Entry{stmt, false}).first;
    }
    if (it->second.in_use) {
      return nullptr;
    }
    it->second.in_use = true;
    return it->second.stmt;
  }

  // Gives back a statement from Acquire, reset and with its bindings
  // cleared (a statement left mid-result would hold its read transaction).
  void Release(const char* sql) {
    auto it = entries_.find(sql);
    sqlite3_reset(it->second.stmt);
    sqlite3_clear_bindings(it->second.stmt);
    it->second.in_use = false;
  }

  sqlite3* db() const { return db_; }

 private:
  struct Entry {
    sqlite3_stmt* stmt;
    bool in_use;
  };
  sqlite3* const db_;
  absl::flat_hash_map<const char*, Entry> entries_;
};

namespace {

// A prepared statement: the cache's when it is free, otherwise one of its
// own, finalized on destruction.
class Statement {
 public:
  Statement(StatementCache* cache, const char* sql) : sql_(sql) {
    stmt_ = cache->Acquire(sql, &rc_);
    if (stmt_ != nullptr) {
      cache_ = cache;
    } else if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_prepare_v2(cache->db(), sql, -1, &stmt_, nullptr);
    }
  }
  ~Statement() {
    if (cache_ != nullptr) {
      cache_->Release(sql_);
    } else {
      sqlite3_finalize(stmt_);
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  int rc() const { return rc_; }
  Statement& Bind(int i, const std::string& text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindBlob(int i, const std::string& bytes) {
    sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(int i, int64_t value) {
    sqlite3_bind_int64(stmt_, i, value);
    return *this;
  }
  // Makes the statement ready to run again, with new bindings.
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  // Returns SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() {
    rc_ = sqlite3_step(stmt_);
    return rc_;
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p),
                                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  std::string Blob(int col) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }

 private:
  const char* const sql_;
  StatementCache* cache_ = nullptr;  // set when the statement is the cache's
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

// Maps an SQLite error to a status: storage faults are UNAVAILABLE (the
// caller may retry once the fault clears), corruption is DATA_LOSS.
absl::Status StatusFor(int rc, sqlite3* db, const std::string& path, const char* what) {
  const std::string detail = absl::StrCat("database ", path, ": ", what, ": ", sqlite3_errstr(rc),
                                          db != nullptr ? absl::StrCat(" (", sqlite3_errmsg(db), ")") : "");
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(detail);
    case SQLITE_FULL:
      return absl::UnavailableError(absl::StrCat(detail, "; the disk is full: writes resume when space is freed"));
    case SQLITE_READONLY:
      return absl::UnavailableError(absl::StrCat(detail, "; the database is read-only: writes resume when it is writable"));
    default:
      return absl::UnavailableError(detail);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    auto status = StatusFor(rc, db, path, "cannot open");
    sqlite3_close(db);
    return status;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, path));
  {
    absl::MutexLock lock(&store->mu_);
    for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON",
                               // Deleted content is overwritten with zeros, not left in free space.
                               "PRAGMA secure_delete=ON"}) {
      if (auto st = store->Exec(pragma); !st.ok()) {
        return st;
      }
    }
    // journal_mode=WAL leaves the mode as it was where WAL is impossible.
    Statement mode(store->statements_.get(), "PRAGMA journal_mode");
    store->wal_ = mode.ok() && mode.Step() == SQLITE_ROW && absl::AsciiStrToLower(mode.Text(0)) == "wal";
  }
  if (auto st = store->Migrate(); !st.ok()) {
    return st;
  }
  return store;
}

SqliteStore::SqliteStore(sqlite3* db, std::string path)
    : db_(db), statements_(std::make_unique<StatementCache>(db)), path_(std::move(path)) {}

SqliteStore::~SqliteStore() {
  absl::MutexLock lock(&mu_);
  statements_.reset();  // finalized before the connection closes
  sqlite3_close(db_);
}

absl::Status SqliteStore::Exec(const char* sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  sqlite3_free(error);
  if (rc != SQLITE_OK) {
    return StatusFor(rc, db_, path_, "statement failed");
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::Migrate() {
  absl::MutexLock lock(&mu_);
  int version = 0;
  {
    Statement st(statements_.get(), "PRAGMA user_version");
    if (!st.ok() || st.Step() != SQLITE_ROW) {
      return StatusFor(st.rc(), db_, path_, "cannot read the schema version");
    }
    version = static_cast<int>(st.Int(0));
  }
  constexpr int kLatest = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));
  static_assert(kLatest == kSchemaVersion, "one migration per schema version");
  if (version > kLatest) {
    return absl::FailedPreconditionError(absl::StrCat("database ", path_, " has schema version ", version,
                                                      ", newer than this server's ", kLatest,
                                                      "; use a newer vigil-server"));
  }
  for (int v = version; v < kLatest; ++v) {
    if (auto st = Exec("BEGIN IMMEDIATE"); !st.ok()) {
      return st;
    }
    auto st = Exec(kMigrations[v]);
    if (st.ok() && v == 4) {
      st = UpgradeBlobsToFixedV1();
    }
    if (st.ok()) {
      st = Exec(absl::StrCat("PRAGMA user_version=", v + 1).c_str());
    }
    if (!st.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return st;
    }
    if (auto commit = Exec("COMMIT"); !commit.ok()) {
      return commit;
    }
  }
  schema_version_ = kLatest;
  return absl::OkStatus();
}

template <typename Message>
absl::Status SqliteStore::UpgradeBlobs(const char* select, const char* update) {
  std::vector<std::pair<std::string, std::string>> rewritten;  // (key, data)
  {
    Statement st(statements_.get(), select);
    int rc = 0;
    while ((rc = st.Step()) == SQLITE_ROW) {
      Message message;
      if (!message.ParseFromString(st.Blob(1))) {
        return absl::DataLossError(absl::StrCat("database ", path_, ": a stored record cannot be read (", st.Text(0), ")"));
      }
      UpgradeToFixedV1(&message);
      rewritten.emplace_back(st.Text(0), message.SerializeAsString());
    }
    if (rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot read the records to upgrade");
    }
  }
  for (const auto& [key, data] : rewritten) {
    Statement st(statements_.get(), update);
    st.BindBlob(1, data).Bind(2, key);
    if (const int rc = st.Step(); rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot upgrade a stored record");
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::UpgradeBlobsToFixedV1() {
  if (auto st = UpgradeBlobs<store::v1::StoredAlert>("SELECT alert_id, data FROM alerts",
                                                     "UPDATE alerts SET data = ? WHERE alert_id = ?");
      !st.ok()) {
    return st;
  }
  return UpgradeBlobs<v1::AlertEvent>("SELECT CAST(event_number AS TEXT), data FROM events",
                                      "UPDATE events SET data = ? WHERE event_number = CAST(? AS INTEGER)");
}

absl::StatusOr<PatientState> SqliteStore::LoadPatient(const std::string& patient_id) {
  absl::MutexLock lock(&mu_);
  PatientState state;
  {
    Statement st(statements_.get(), "SELECT revision FROM patient_revisions WHERE id = ?");
    st.Bind(1, patient_id);
    const int rc = st.Step();
    if (rc == SQLITE_ROW) {
      state.revision = st.Int(0);
    } else if (rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot read the patient's revision");
    }
  }
  {
    Statement st(statements_.get(), "SELECT data FROM patients WHERE id = ?");
    st.Bind(1, patient_id);
    const int rc = st.Step();
    if (rc == SQLITE_ROW) {
      state.exists = true;
      if (!state.patient.ParseFromString(st.Blob(0))) {
        return absl::DataLossError(absl::StrCat("database ", path_, ": patient record cannot be parsed"));
      }
    } else if (rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot read the patient");
    }
  }
  Statement st(statements_.get(), "SELECT data FROM alerts WHERE patient_id = ? ORDER BY alert_id");
  st.Bind(1, patient_id);
  int rc = 0;
  while ((rc = st.Step()) == SQLITE_ROW) {
    auto& alert = state.alerts.emplace_back();
    if (!alert.ParseFromString(st.Blob(0))) {
      return absl::DataLossError(absl::StrCat("database ", path_, ": alert record cannot be parsed"));
    }
  }
  if (rc != SQLITE_DONE) {
    return StatusFor(rc, db_, path_, "cannot read the patient's alerts");
  }
  return state;
}

absl::StatusOr<CommitResult> SqliteStore::Commit(const PatientChange& change) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<CommitResult> result;
  if (auto st = TransactionLocked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        result = CommitLocked(change);
        return result.status();
      });
      !st.ok()) {
    return st;
  }
  if (change.op == PatientChange::Op::kDelete) {
    // The erased content is still in the write-ahead log's frames: copy the
    // log into the database and truncate it. The delete is durable already;
    // a checkpoint that cannot finish now happens at the next one.
    Exec("PRAGMA wal_checkpoint(TRUNCATE)").IgnoreError();
  }
  return result;
}

absl::StatusOr<CommitResult> SqliteStore::CommitLocked(const PatientChange& change) {
  const absl::Time now_at = absl::Now();
  const std::string now = Rfc3339(now_at);
  const google::protobuf::Timestamp now_time = ToTimestamp(now_at);
  // Optimistic concurrency: the change must be computed from the stored revision.
  int64_t revision = 0;
  {
    Statement st(statements_.get(), "SELECT revision FROM patient_revisions WHERE id = ?");
    st.Bind(1, change.patient_id);
    const int rc = st.Step();
    if (rc == SQLITE_ROW) {
      revision = st.Int(0);
    } else if (rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot read the patient's revision");
    }
  }
  if (revision != change.expected_revision) {
    return absl::AbortedError(absl::StrCat("patient ", change.patient_id, " changed concurrently (revision ", revision,
                                           ", expected ", change.expected_revision, "); retry"));
  }
  {
    Statement st(statements_.get(), "INSERT INTO patient_revisions(id, revision) VALUES(?, ?) "
                      "ON CONFLICT(id) DO UPDATE SET revision = excluded.revision");
    st.Bind(1, change.patient_id).Bind(2, revision + 1);
    if (const int rc = st.Step(); rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot write the patient's revision");
    }
  }
  if (change.op == PatientChange::Op::kPut) {
    Statement st(statements_.get(), "INSERT INTO patients(id, revision, data, update_time) VALUES(?, ?, ?, ?) "
                      "ON CONFLICT(id) DO UPDATE SET revision = excluded.revision, data = excluded.data, "
                      "update_time = excluded.update_time");
    st.Bind(1, change.patient_id).Bind(2, revision + 1).BindBlob(3, change.patient.SerializeAsString()).Bind(4, now);
    if (const int rc = st.Step(); rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot write the patient");
    }
  } else if (change.op == PatientChange::Op::kDelete) {
    if (auto st = ErasePatientLocked(change.patient_id); !st.ok()) {
      return st;
    }
  }
  int64_t latest = 0;
  {
    Statement st(statements_.get(), "SELECT COALESCE(MAX(event_number), 0) FROM events");
    if (const int rc = st.Step(); rc != SQLITE_ROW) {
      return StatusFor(rc, db_, path_, "cannot read the latest event number");
    }
    latest = st.Int(0);
  }
  CommitResult result;
  result.alerts = change.alerts;
  for (const auto& event_in : change.events) {
    StoredEvent stored;
    stored.number = ++latest;
    stored.event = change.op == PatientChange::Op::kDelete ? Tombstone(event_in) : event_in;
    *stored.event.mutable_event_time() = now_time;
    if (stored.event.has_acknowledgement()) {
      *stored.event.mutable_acknowledgement()->mutable_acknowledge_time() = now_time;
    }
    // Append to the alert's history.
    for (auto& alert : result.alerts) {
      if (alert.record().alert().id() == stored.event.alert().id()) {
        auto* h = alert.mutable_record()->add_history();
        h->set_event_number(stored.number);
        h->set_type(stored.event.type());
        *h->mutable_event_time() = now_time;
        if (stored.event.has_acknowledgement()) {
          *h->mutable_acknowledgement() = stored.event.acknowledgement();
        }
      }
    }
    Statement st(statements_.get(), "INSERT INTO events(event_number, patient_id, type, alert_id, data, event_time) "
                      "VALUES(?, ?, ?, ?, ?, ?)");
    st.Bind(1, stored.number)
        .Bind(2, stored.event.patient_id())
        .Bind(3, static_cast<int64_t>(stored.event.type()))
        .Bind(4, stored.event.alert().id())
        .BindBlob(5, stored.event.SerializeAsString())
        .Bind(6, now);
    if (const int rc = st.Step(); rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot append an event");
    }
    result.events.push_back(std::move(stored));
  }
  for (const auto& alert : result.alerts) {
    if (change.op == PatientChange::Op::kDelete) {
      break;  // erased above
    }
    Statement st(statements_.get(), "INSERT INTO alerts(alert_id, patient_id, status, data, update_time) VALUES(?, ?, ?, ?, ?) "
                      "ON CONFLICT(alert_id) DO UPDATE SET status = excluded.status, data = excluded.data, "
                      "update_time = excluded.update_time");
    st.Bind(1, alert.record().alert().id())
        .Bind(2, change.patient_id)
        .Bind(3, static_cast<int64_t>(alert.record().status()))
        .BindBlob(4, alert.SerializeAsString())
        .Bind(5, now);
    if (const int rc = st.Step(); rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot write an alert");
    }
  }
  result.last_event_number = latest;
  return result;
}

absl::Status SqliteStore::ErasePatientLocked(const std::string& patient_id) {
  for (const char* sql : {"DELETE FROM patients WHERE id = ?", "DELETE FROM alerts WHERE patient_id = ?",
                          "DELETE FROM cds_cards WHERE patient_id = ?"}) {
    Statement st(statements_.get(), sql);
    st.Bind(1, patient_id);
    if (const int rc = st.Step(); rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot delete the patient");
    }
  }
  // Each event of the patient becomes a tombstone in place.
  std::vector<std::pair<int64_t, std::string>> tombstones;
  {
    Statement st(statements_.get(), "SELECT event_number, data FROM events WHERE patient_id = ?");
    st.Bind(1, patient_id);
    int rc = 0;
    while ((rc = st.Step()) == SQLITE_ROW) {
      v1::AlertEvent event;
      if (!event.ParseFromString(st.Blob(1))) {
        return absl::DataLossError(absl::StrCat("database ", path_, ": event ", st.Int(0), " cannot be parsed"));
      }
      if (!event.erased()) {
        tombstones.emplace_back(st.Int(0), Tombstone(event).SerializeAsString());
      }
    }
    if (rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot read the patient's events");
    }
  }
  for (const auto& [number, data] : tombstones) {
    Statement st(statements_.get(), "UPDATE events SET data = ? WHERE event_number = ?");
    st.BindBlob(1, data).Bind(2, number);
    if (const int rc = st.Step(); rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot erase an event");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> SqliteStore::FindAlertPatient(const std::string& alert_id) {
  absl::MutexLock lock(&mu_);
  Statement st(statements_.get(), "SELECT patient_id FROM alerts WHERE alert_id = ?");
  st.Bind(1, alert_id);
  const int rc = st.Step();
  if (rc == SQLITE_ROW) {
    return std::optional<std::string>(st.Text(0));
  }
  if (rc != SQLITE_DONE) {
    return StatusFor(rc, db_, path_, "cannot look the alert up");
  }
  return std::optional<std::string>();
}

absl::StatusOr<std::vector<StoredEvent>> SqliteStore::ReadEvents(int64_t after, int limit) {
  absl::MutexLock lock(&mu_);
  Statement st(statements_.get(), "SELECT event_number, data FROM events WHERE event_number > ? ORDER BY event_number LIMIT ?");
  st.Bind(1, after).Bind(2, static_cast<int64_t>(limit));
  std::vector<StoredEvent> out;
  int rc = 0;
  while ((rc = st.Step()) == SQLITE_ROW) {
    auto& e = out.emplace_back();
    e.number = st.Int(0);
    if (!e.event.ParseFromString(st.Blob(1))) {
      return absl::DataLossError(absl::StrCat("database ", path_, ": event ", e.number, " cannot be parsed"));
    }
  }
  if (rc != SQLITE_DONE) {
    return StatusFor(rc, db_, path_, "cannot read events");
  }
  return out;
}

absl::StatusOr<int64_t> SqliteStore::LatestEventNumber() {
  absl::MutexLock lock(&mu_);
  Statement st(statements_.get(), "SELECT COALESCE(MAX(event_number), 0) FROM events");
  if (const int rc = st.Step(); rc != SQLITE_ROW) {
    return StatusFor(rc, db_, path_, "cannot read the latest event number");
  }
  return st.Int(0);
}

absl::Status SqliteStore::AppendAudit(const std::vector<v1::AuditEvent>& events, AuditDurability durability) {
  if (events.empty()) {
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  if (durability == AuditDurability::kCommitted) {
    return UnflushedLocked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return AppendAuditLocked(events); });
  }
  return AppendAuditLocked(events);
}

absl::Status SqliteStore::UnflushedLocked(const std::function<absl::Status()>& write) {
  // In WAL mode, synchronous=NORMAL commits without an fsync: the frames are
  // in the WAL file, safe from a crash of this process, and reach the disk
  // with the next commit made under synchronous=FULL (every other write of
  // this store) or SyncAudit. Outside WAL mode NORMAL could corrupt the file
  // on a power loss, so every write is synced there.
  if (!wal_) {
    return write();
  }
  if (auto st = Exec("PRAGMA synchronous=NORMAL"); !st.ok()) {
    return st;
  }
  const absl::Status written = write();
  // Back to FULL before the lock is released: patient writes stay synced.
  if (auto st = Exec("PRAGMA synchronous=FULL"); !st.ok()) {
    LogError("sqlite_synchronous_not_restored", {{"database", path_}, {"reason", std::string(st.message())}});
    return st;
  }
  return written;
}

absl::Status SqliteStore::TransactionLocked(const std::function<absl::Status()>& body) {
  if (auto st = Exec("BEGIN IMMEDIATE"); !st.ok()) {
    return st;
  }
  if (auto st = body(); !st.ok()) {
    Exec("ROLLBACK").IgnoreError();
    return st;
  }
  if (auto st = Exec("COMMIT"); !st.ok()) {
    Exec("ROLLBACK").IgnoreError();
    return st;
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::RememberCards(const std::vector<ShownCard>& cards, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto write = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
    Statement forget(statements_.get(), "DELETE FROM cds_cards WHERE expires <= ?");
    forget.Bind(1, absl::ToUnixMicros(now));
    if (const int rc = forget.Step(); rc != SQLITE_DONE) {
      return StatusFor(rc, db_, path_, "cannot forget expired cards");
    }
    Statement insert(statements_.get(),
                     "INSERT OR REPLACE INTO cds_cards(uuid, patient_id, user_id, select_key, fingerprint, alert, "
                     "expires) VALUES(?, ?, ?, ?, ?, ?, ?)");
    for (const ShownCard& card : cards) {
      insert.Reset();
      insert.Bind(1, card.uuid).Bind(2, card.patient_id).Bind(3, card.user_id).Bind(4, card.select_key)
          .Bind(5, card.fingerprint).BindBlob(6, card.alert.SerializeAsString())
          .Bind(7, absl::ToUnixMicros(card.expires));
      if (const int rc = insert.Step(); rc != SQLITE_DONE) {
        return StatusFor(rc, db_, path_, "cannot remember a card");
      }
    }
    return absl::OkStatus();
  };
  return UnflushedLocked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return TransactionLocked(write); });
}

absl::StatusOr<std::optional<ShownCard>> SqliteStore::FindCard(const std::string& uuid, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Statement st(statements_.get(),
               "SELECT patient_id, user_id, select_key, fingerprint, alert, expires FROM cds_cards "
               "WHERE uuid = ? AND expires > ?");
  st.Bind(1, uuid).Bind(2, absl::ToUnixMicros(now));
  const int rc = st.Step();
  if (rc == SQLITE_DONE) {
    return std::optional<ShownCard>();
  }
  if (rc != SQLITE_ROW) {
    return StatusFor(rc, db_, path_, "cannot look the card up");
  }
  ShownCard card;
  card.uuid = uuid;
  card.patient_id = st.Text(0);
  card.user_id = st.Text(1);
  card.select_key = st.Text(2);
  card.fingerprint = st.Text(3);
  if (!card.alert.ParseFromString(st.Blob(4))) {
    return absl::DataLossError(absl::StrCat("database ", path_, ": the alert of a card cannot be parsed"));
  }
  card.expires = absl::FromUnixMicros(st.Int(5));
  return std::optional<ShownCard>(std::move(card));
}

absl::StatusOr<int64_t> SqliteStore::ForgetCards(const std::string& patient_id) {
  absl::MutexLock lock(&mu_);
  Statement st(statements_.get(), "DELETE FROM cds_cards WHERE patient_id = ?");
  st.Bind(1, patient_id);
  if (const int rc = st.Step(); rc != SQLITE_DONE) {
    return StatusFor(rc, db_, path_, "cannot forget the patient's cards");
  }
  return static_cast<int64_t>(sqlite3_changes(db_));
}

absl::StatusOr<std::optional<std::string>> SqliteStore::SelectFingerprint(const std::string& select_key,
                                                                          absl::Time now) {
  absl::MutexLock lock(&mu_);
  Statement st(statements_.get(),
               "SELECT fingerprint FROM cds_cards WHERE select_key = ? AND expires > ? ORDER BY expires DESC LIMIT 1");
  st.Bind(1, select_key).Bind(2, absl::ToUnixMicros(now));
  const int rc = st.Step();
  if (rc == SQLITE_ROW) {
    return std::optional<std::string>(st.Text(0));
  }
  if (rc != SQLITE_DONE) {
    return StatusFor(rc, db_, path_, "cannot look the card up");
  }
  return std::optional<std::string>();
}

absl::Status SqliteStore::AppendAuditLocked(const std::vector<v1::AuditEvent>& events) {
  return TransactionLocked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
    const std::string now = Now();
    // Prepared once for the batch (a group commit can hold a thousand records).
    Statement insert(statements_.get(), "INSERT INTO audit(recorded_time, action, method, agent, peer, patient_id, "
                                        "outcome, alert_id, access_time, certificate_subject) "
                                        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (const auto& e : events) {
      insert.Reset();
      insert.Bind(1, now).Bind(2, AuditActionCode(e.action())).Bind(3, e.method()).Bind(4, e.agent())
          .Bind(5, e.peer()).Bind(6, e.patient_id()).Bind(7, google::rpc::Code_Name(e.outcome()))
          .Bind(8, e.alert_id()).Bind(9, e.has_access_time() ? Rfc3339(FromTimestamp(e.access_time())) : now)
          .Bind(10, e.certificate_subject());
      if (const int rc = insert.Step(); rc != SQLITE_DONE) {
        return StatusFor(rc, db_, path_, "cannot append to the audit trail");
      }
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteStore::SyncAudit() {
  absl::MutexLock lock(&mu_);
  if (!wal_) {
    return absl::OkStatus();  // every append was synced
  }
  // The WAL file holds every commit not yet synced: its fsync makes them durable.
  sqlite3_file* wal = nullptr;
  if (const int rc = sqlite3_file_control(db_, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
      rc != SQLITE_OK || wal == nullptr || wal->pMethods == nullptr) {
    // No WAL file open (nothing written since the last checkpoint closed it).
    return absl::OkStatus();
  }
  if (const int rc = wal->pMethods->xSync(wal, SQLITE_SYNC_FULL); rc != SQLITE_OK) {
    return StatusFor(rc, db_, path_, "cannot sync the audit trail");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::AuditEvent>> SqliteStore::ReadAudit(int64_t after_id, int limit) {
  absl::MutexLock lock(&mu_);
  Statement st(statements_.get(), "SELECT id, recorded_time, action, method, agent, peer, patient_id, outcome, alert_id, access_time, "
                    "certificate_subject FROM audit "
                    "WHERE id > ? ORDER BY id LIMIT ?");
  st.Bind(1, after_id).Bind(2, static_cast<int64_t>(limit));
  std::vector<v1::AuditEvent> out;
  int rc = 0;
  while ((rc = st.Step()) == SQLITE_ROW) {
    auto& e = out.emplace_back();
    e.set_id(st.Int(0));
    *e.mutable_record_time() = TimestampOfRfc3339(st.Text(1));
    e.set_action(AuditActionOfCode(st.Text(2)));
    e.set_method(st.Text(3));
    e.set_agent(st.Text(4));
    e.set_peer(st.Text(5));
    e.set_patient_id(st.Text(6));
    google::rpc::Code outcome = google::rpc::UNKNOWN;
    google::rpc::Code_Parse(st.Text(7), &outcome);
    e.set_outcome(outcome);
    e.set_alert_id(st.Text(8));
    *e.mutable_access_time() = TimestampOfRfc3339(st.Text(9));
    e.set_certificate_subject(st.Text(10));
  }
  if (rc != SQLITE_DONE) {
    return StatusFor(rc, db_, path_, "cannot read the audit trail");
  }
  return out;
}

absl::Status SqliteStore::Health() {
  auto latest = LatestEventNumber();
  return latest.ok() ? absl::OkStatus() : latest.status();
}

}  // namespace vigil
