#include "server/store/postgres_store.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/rpc/code.pb.h"
#include "server/common/timestamp.h"

namespace vigil {

// A statement's result, cleared on destruction. Results are requested in
// libpq's binary format: integers (always selected as bigint) arrive as 8
// bytes in network order, text and bytea as their raw bytes.
class PgResult {
 public:
  explicit PgResult(PGresult* result) : result_(result) {}
  PgResult(PgResult&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
  PgResult& operator=(PgResult&& other) noexcept {
    if (this != &other) {
      PQclear(result_);
      result_ = std::exchange(other.result_, nullptr);
    }
    return *this;
  }
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  ~PgResult() { PQclear(result_); }

  PGresult* get() const { return result_; }
  int rows() const { return PQntuples(result_); }
  int64_t Int(int row, int col) const {
    const char* bytes = PQgetvalue(result_, row, col);
    const int length = PQgetlength(result_, row, col);
    uint64_t value = 0;
    for (int i = 0; i < length; ++i) {
      value = (value << 8) | static_cast<unsigned char>(bytes[i]);
    }
    if (length == 4) {  // an integer column not cast to bigint
      return static_cast<int32_t>(static_cast<uint32_t>(value));
    }
    return static_cast<int64_t>(value);
  }
  std::string Bytes(int row, int col) const {
    return std::string(PQgetvalue(result_, row, col), static_cast<size_t>(PQgetlength(result_, row, col)));
  }

 private:
  PGresult* result_;
};

// A statement's parameters. Strings and blobs go in binary format (their
// bytes as they are, so a stray NUL is refused by the server instead of
// cutting the text short); integers as decimal text.
class PgParams {
 public:
  PgParams& Text(std::string value) {
    values_.push_back(std::move(value));
    formats_.push_back(1);
    return *this;
  }
  PgParams& Bytes(std::string value) { return Text(std::move(value)); }
  PgParams& Int(int64_t value) {
    values_.push_back(absl::StrCat(value));
    formats_.push_back(0);
    return *this;
  }
  int size() const { return static_cast<int>(values_.size()); }
  std::vector<const char*> Values() const {
    std::vector<const char*> out;
    for (const auto& v : values_) {
      out.push_back(v.c_str());
    }
    return out;
  }
  std::vector<int> Lengths() const {
    std::vector<int> out;
    for (const auto& v : values_) {
      out.push_back(static_cast<int>(v.size()));
    }
    return out;
  }
  const int* formats() const { return formats_.data(); }

 private:
  std::vector<std::string> values_;
  std::vector<int> formats_;
};

namespace {

// Schema migrations: entry i upgrades version i to i + 1. Version 1 is the
// SQLite store's schema 5, with two counters of its own (see Commit and
// AppendAudit for why).
constexpr const char* kMigrations[] = {
    // 0 -> 1: patients, alerts, events, the append-only audit trail.
    R"sql(
CREATE TABLE patients (
  id TEXT PRIMARY KEY,
  revision BIGINT NOT NULL,
  data BYTEA NOT NULL,
  update_time TEXT NOT NULL
);
CREATE TABLE patient_revisions (
  id TEXT PRIMARY KEY,
  revision BIGINT NOT NULL
);
CREATE TABLE alerts (
  alert_id TEXT PRIMARY KEY,
  patient_id TEXT NOT NULL,
  status INTEGER NOT NULL,
  data BYTEA NOT NULL,
  update_time TEXT NOT NULL
);
CREATE INDEX alerts_by_patient ON alerts(patient_id);
CREATE TABLE events (
  event_number BIGINT PRIMARY KEY,
  patient_id TEXT NOT NULL,
  type INTEGER NOT NULL,
  alert_id TEXT NOT NULL,
  data BYTEA NOT NULL,
  event_time TEXT NOT NULL
);
CREATE INDEX events_by_patient ON events(patient_id);
CREATE TABLE event_counter (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  last_number BIGINT NOT NULL
);
INSERT INTO event_counter(id, last_number) VALUES (1, 0);
CREATE TABLE audit (
  id BIGINT PRIMARY KEY,
  recorded_time TEXT NOT NULL,
  action TEXT NOT NULL,
  method TEXT NOT NULL,
  agent TEXT NOT NULL,
  peer TEXT NOT NULL,
  patient_id TEXT NOT NULL,
  outcome TEXT NOT NULL,
  alert_id TEXT NOT NULL,
  access_time TEXT NOT NULL,
  certificate_subject TEXT NOT NULL
);
CREATE TABLE audit_counter (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  last_id BIGINT NOT NULL
);
INSERT INTO audit_counter(id, last_id) VALUES (1, 0);
CREATE FUNCTION vigil_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only';
END
$$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
  FOR EACH ROW EXECUTE FUNCTION vigil_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
  FOR EACH STATEMENT EXECUTE FUNCTION vigil_audit_append_only();
)sql",
    // 1 -> 2: CDS Hooks cards shown, remembered for feedback and order-sign
    // by every replica (Store::RememberCards).
    R"sql(
CREATE TABLE cds_cards (
  uuid TEXT PRIMARY KEY,
  patient_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  select_key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  alert BYTEA NOT NULL,
  expires BIGINT NOT NULL
);
CREATE INDEX cds_cards_by_select_key ON cds_cards(select_key, expires);
CREATE INDEX cds_cards_by_patient ON cds_cards(patient_id);
CREATE INDEX cds_cards_by_expiry ON cds_cards(expires);
)sql",
};
constexpr int kLatest = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));
static_assert(kLatest == PostgresStore::kSchemaVersion, "a migration per schema version");

// Taken (for the migration's transaction) by every replica that opens the
// database, so that replicas starting together migrate it once. Any
// constant unlikely to be used by other software sharing the database.
constexpr const char* kTakeMigrationLock = "SELECT pg_advisory_xact_lock(7166452718394851329)";

std::string Trimmed(const char* message) {
  std::string out = message == nullptr ? "" : message;
  absl::StripAsciiWhitespace(&out);
  return out;
}

// The audit table keeps FHIR AuditEvent action codes and status code names,
// as the SQLite store does.
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

// A LIMIT for `limit`: negative means none, as in SQLite.
int64_t LimitOf(int limit) { return limit < 0 ? std::numeric_limits<int64_t>::max() : limit; }

// The change's event as stored with `number` at `now`, its entry appended to
// the history of the alert (in `alerts`) it names.
StoredEvent NumberEvent(const PatientChange& change, const v1::AlertEvent& event_in, int64_t number,
                        const google::protobuf::Timestamp& now,
                        std::vector<store::v1::StoredAlert>* alerts) {
  StoredEvent stored;
  stored.number = number;
  stored.event = change.op == PatientChange::Op::kDelete ? Tombstone(event_in) : event_in;
  *stored.event.mutable_event_time() = now;
  if (stored.event.has_acknowledgement()) {
    *stored.event.mutable_acknowledgement()->mutable_acknowledge_time() = now;
  }
  for (auto& alert : *alerts) {
    if (alert.record().alert().id() == stored.event.alert().id()) {
      auto* h = alert.mutable_record()->add_history();
      h->set_event_number(stored.number);
      h->set_type(stored.event.type());
      *h->mutable_event_time() = now;
      if (stored.event.has_acknowledgement()) {
        *h->mutable_acknowledgement() = stored.event.acknowledgement();
      }
    }
  }
  return stored;
}

// Where a URI's authority (user, password, host) ends.
size_t AuthorityEnd(absl::string_view uri, size_t start) {
  const size_t end = uri.find_first_of("/?", start);
  return end == absl::string_view::npos ? uri.size() : end;
}

}  // namespace

std::string UriWithoutPassword(absl::string_view uri) {
  const size_t scheme = uri.find("://");
  if (scheme == absl::string_view::npos) {
    return std::string(uri);
  }
  const size_t start = scheme + 3;
  const size_t authority_end = AuthorityEnd(uri, start);
  std::string out(uri.substr(0, start));
  const absl::string_view authority = uri.substr(start, authority_end - start);
  const size_t at = authority.rfind('@');
  if (at != absl::string_view::npos) {
    const absl::string_view user = authority.substr(0, at);
    absl::StrAppend(&out, user.substr(0, user.find(':')), authority.substr(at));
  } else {
    absl::StrAppend(&out, authority);
  }
  // The path, then the query without its password= parameter.
  const absl::string_view rest = uri.substr(authority_end);
  const size_t query = rest.find('?');
  absl::StrAppend(&out, rest.substr(0, query));
  if (query == absl::string_view::npos) {
    return out;
  }
  std::string kept;
  for (absl::string_view param : absl::StrSplit(rest.substr(query + 1), '&')) {
    if (!absl::StartsWithIgnoreCase(param, "password=")) {
      absl::StrAppend(&kept, kept.empty() ? "" : "&", param);
    }
  }
  if (!kept.empty()) {
    absl::StrAppend(&out, "?", kept);
  }
  return out;
}

namespace {

// Connects with defaults the URI may override (it is expanded last): a
// bounded connect, and TCP keepalives so that a vanished server is noticed
// within a minute. Null only when out of memory.
PGconn* Connect(const std::string& uri) {
  const char* const keys[] = {"connect_timeout",   "keepalives",       "keepalives_idle", "keepalives_interval",
                              "keepalives_count",  "tcp_user_timeout", "application_name", "dbname",
                              nullptr};
  const char* const values[] = {"5", "1", "10", "5", "3", "30000", "vigil-server", uri.c_str(), nullptr};
  return PQconnectdbParams(keys, values, /*expand_dbname=*/1);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(const std::string& uri) {
  const std::string name = UriWithoutPassword(uri);
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(uri.c_str(), &error);
  if (parsed == nullptr) {
    const std::string message = error != nullptr ? Trimmed(error) : "out of memory";
    PQfreemem(error);
    return absl::InvalidArgumentError(absl::StrCat("database ", name, ": not a PostgreSQL URI: ", message));
  }
  PQconninfoFree(parsed);
  PGconn* conn = Connect(uri);
  if (conn == nullptr) {
    return absl::UnavailableError(absl::StrCat("database ", name, ": cannot connect: out of memory"));
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string message = Trimmed(PQerrorMessage(conn));
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("database ", name, ": cannot connect: ", message));
  }
  // Notices (e.g. "relation already exists, skipping") are not errors: they
  // would otherwise go to stderr.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  std::unique_ptr<PostgresStore> store(new PostgresStore(conn, uri));
  {
    absl::MutexLock lock(&store->mu_);
    if (auto st = store->MigrateLocked(); !st.ok()) {
      return st;
    }
  }
  return store;
}

PostgresStore::PostgresStore(PGconn* conn, std::string uri)
    : conn_(conn), uri_(std::move(uri)), name_(UriWithoutPassword(uri_)) {}

PostgresStore::~PostgresStore() {
  {
    absl::MutexLock lock(&listen_mu_);
    if (listen_conn_ != nullptr) {
      PQfinish(listen_conn_);
    }
  }
  absl::MutexLock lock(&mu_);
  PQfinish(conn_);
}

// The follower's own connection LISTENs on kEventChannel; a notification
// (sent by another replica's Commit when it commits) ends the wait early.
// A connection made anew may have missed notifications meanwhile: it
// returns at once so that the caller reads the store.
absl::Status PostgresStore::WaitForOtherWriters(absl::Duration timeout) {
  absl::MutexLock lock(&listen_mu_);
  if (listen_conn_ == nullptr || PQstatus(listen_conn_) != CONNECTION_OK) {
    if (listen_conn_ != nullptr) {
      PQfinish(listen_conn_);
    }
    listen_conn_ = Connect(uri_);
    PGresult* listened = listen_conn_ == nullptr || PQstatus(listen_conn_) != CONNECTION_OK
                             ? nullptr
                             : PQexec(listen_conn_, absl::StrCat("LISTEN ", kEventChannel).c_str());
    const bool ok = listened != nullptr && PQresultStatus(listened) == PGRES_COMMAND_OK;
    PQclear(listened);
    if (!ok) {
      const std::string message = listen_conn_ == nullptr ? "out of memory" : Trimmed(PQerrorMessage(listen_conn_));
      PQfinish(listen_conn_);
      listen_conn_ = nullptr;
      absl::SleepFor(std::min(timeout, absl::Seconds(1)));
      return absl::UnavailableError(absl::StrCat("database connection lost: cannot listen for events: ", message));
    }
    PQsetNoticeProcessor(listen_conn_, [](void*, const char*) {}, nullptr);
    return absl::OkStatus();
  }
  auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(listen_mu_) {
    bool any = false;
    while (PGnotify* notify = PQnotifies(listen_conn_)) {
      any = true;
      PQfreemem(notify);
    }
    return any;
  };
  if (PQconsumeInput(listen_conn_) == 0) {
    PQfinish(listen_conn_);
    listen_conn_ = nullptr;
    return absl::UnavailableError("database connection lost: the event listener's connection broke");
  }
  if (drained()) {
    return absl::OkStatus();
  }
  pollfd fd{PQsocket(listen_conn_), POLLIN, 0};
  const int ready = poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready > 0 && PQconsumeInput(listen_conn_) == 0) {
    PQfinish(listen_conn_);
    listen_conn_ = nullptr;
    return absl::UnavailableError("database connection lost: the event listener's connection broke");
  }
  drained();
  return absl::OkStatus();
}

absl::Status PostgresStore::EnsureConnectedLocked() {
  if (PQstatus(conn_) == CONNECTION_OK && !reconnect_) {
    RollbackLocked();  // a transaction a failure left open, if any
    return absl::OkStatus();
  }
  // Blocks for at most the URI's connect_timeout per address.
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("database connection lost: ", Trimmed(PQerrorMessage(conn_)),
                                               " (reconnecting to ", name_, ")"));
  }
  reconnect_ = false;
  return absl::OkStatus();
}

absl::StatusOr<PgResult> PostgresStore::Run(const char* what, const char* sql, const PgParams& params) {
  const std::vector<const char*> values = params.Values();
  const std::vector<int> lengths = params.Lengths();
  PgResult result(PQexecParams(conn_, sql, params.size(), /*paramTypes=*/nullptr, values.data(), lengths.data(),
                               params.formats(), /*resultFormat=*/1));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return StatusOf(what, &result);
  }
  return result;
}

absl::StatusOr<PgResult> PostgresStore::Run(const char* what, const char* sql) {
  PgResult result(PQexec(conn_, sql));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return StatusOf(what, &result);
  }
  return result;
}

absl::Status PostgresStore::StatusOf(const char* what, const PgResult* result) {
  PGresult* r = result != nullptr ? result->get() : nullptr;
  std::string message = r != nullptr ? Trimmed(PQresultErrorMessage(r)) : "";
  if (message.empty()) {
    message = Trimmed(PQerrorMessage(conn_));
  }
  const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state != nullptr ? state : "";
  // Class 08 is a connection exception; 57P01-57P03 the server shutting
  // down or starting: the connection is gone or about to be.
  if (PQstatus(conn_) != CONNECTION_OK || absl::StartsWith(sqlstate, "08") || absl::StartsWith(sqlstate, "57P")) {
    reconnect_ = true;
    return absl::UnavailableError(absl::StrCat("database connection lost: ", message, " (", what, "; ", name_, ")"));
  }
  const std::string detail = absl::StrCat("database ", name_, ": ", what, ": ", message);
  if (sqlstate == "40001" || sqlstate == "40P01") {  // serialization failure, deadlock
    return absl::AbortedError(absl::StrCat(detail, "; retry"));
  }
  if (sqlstate == "53100") {
    return absl::UnavailableError(absl::StrCat(detail, "; the disk is full: writes resume when space is freed"));
  }
  if (sqlstate == "25006") {
    return absl::UnavailableError(
        absl::StrCat(detail, "; the database is read-only: writes resume when it is writable (a primary)"));
  }
  if (absl::StartsWith(sqlstate, "XX00")) {  // data corrupted, index corrupted
    return absl::DataLossError(detail);
  }
  if (absl::StartsWith(sqlstate, "22")) {  // data exception: a value the database refuses
    return absl::InvalidArgumentError(detail);
  }
  return absl::UnavailableError(detail);
}

absl::Status PostgresStore::BeginLocked(const char* what) {
  if (auto st = EnsureConnectedLocked(); !st.ok()) {
    return st;
  }
  auto begun = Run(what, "BEGIN");
  return begun.ok() ? absl::OkStatus() : begun.status();
}

absl::Status PostgresStore::CommitTransactionLocked(const char* what) {
  auto committed = Run(what, "COMMIT");
  if (committed.ok()) {
    return absl::OkStatus();
  }
  RollbackLocked();
  if (PQstatus(conn_) != CONNECTION_OK) {
    // The server may have committed before the connection broke.
    return absl::UnavailableError(
        absl::StrCat(committed.status().message(), "; whether the transaction was committed is unknown"));
  }
  return committed.status();
}

absl::Status PostgresStore::TransactionLocked(const char* begin_what, const char* commit_what, bool unflushed,
                                              const std::function<absl::Status()>& body) {
  if (auto st = BeginLocked(begin_what); !st.ok()) {
    return st;
  }
  if (unflushed) {
    // This transaction's COMMIT returns without waiting for its WAL flush;
    // the WAL writer, or the next synchronous commit, flushes it.
    if (auto set = Run(begin_what, "SET LOCAL synchronous_commit TO off"); !set.ok()) {
      RollbackLocked();
      return set.status();
    }
  }
  if (auto st = body(); !st.ok()) {
    RollbackLocked();
    return st;
  }
  return CommitTransactionLocked(commit_what);
}

void PostgresStore::RollbackLocked() {
  if (PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    PQclear(PQexec(conn_, "ROLLBACK"));
  }
}

absl::Status PostgresStore::MigrateLocked() {
  return TransactionLocked("cannot start the schema migration", "cannot commit the schema migration",
                           /*unflushed=*/false,
                           [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return MigrateInTransactionLocked(); });
}

absl::Status PostgresStore::MigrateInTransactionLocked() {
  if (auto locked = Run("cannot take the migration lock", kTakeMigrationLock); !locked.ok()) {
    return locked.status();
  }
  if (auto created = Run("cannot create the schema_version table",
                         "CREATE TABLE IF NOT EXISTS schema_version ("
                         "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL); "
                         "INSERT INTO schema_version(id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING");
      !created.ok()) {
    return created.status();
  }
  auto read = Run("cannot read the schema version", "SELECT version::bigint FROM schema_version WHERE id = 1",
                  PgParams());
  if (!read.ok()) {
    return read.status();
  }
  const int64_t version = read->rows() == 1 ? read->Int(0, 0) : 0;
  if (version > kLatest) {
    return absl::FailedPreconditionError(absl::StrCat("database ", name_, " has schema version ", version,
                                                      ", newer than this server's ", kLatest,
                                                      "; use a newer vigil-server"));
  }
  for (int64_t v = version; v < kLatest; ++v) {
    if (auto migrated = Run("cannot migrate the schema", kMigrations[v]); !migrated.ok()) {
      return migrated.status();
    }
  }
  if (version < kLatest) {
    if (auto written = Run("cannot write the schema version", "UPDATE schema_version SET version = $1 WHERE id = 1",
                           PgParams().Int(kLatest));
        !written.ok()) {
      return written.status();
    }
  }
  schema_version_ = kLatest;
  return absl::OkStatus();
}

absl::StatusOr<PatientState> PostgresStore::LoadPatient(const std::string& patient_id) {
  absl::MutexLock lock(&mu_);
  if (auto st = EnsureConnectedLocked(); !st.ok()) {
    return st;
  }
  // One statement, so one snapshot: the revision, context and alerts of the
  // same commit. Alerts in byte order of their ids, as SQLite sorts them.
  auto rows = Run("cannot read the patient",
                  "SELECT 0::bigint AS kind, ''::text COLLATE \"C\" AS key, revision::bigint, NULL::bytea "
                  "FROM patient_revisions WHERE id = $1 "
                  "UNION ALL SELECT 1::bigint, '', 0::bigint, data FROM patients WHERE id = $1 "
                  "UNION ALL SELECT 2::bigint, alert_id COLLATE \"C\", 0::bigint, data FROM alerts WHERE patient_id = $1 "
                  "ORDER BY kind, key",
                  PgParams().Text(patient_id));
  if (!rows.ok()) {
    return rows.status();
  }
  PatientState state;
  for (int i = 0; i < rows->rows(); ++i) {
    switch (rows->Int(i, 0)) {
      case 0:
        state.revision = rows->Int(i, 2);
        break;
      case 1:
        state.exists = true;
        if (!state.patient.ParseFromString(rows->Bytes(i, 3))) {
          return absl::DataLossError(absl::StrCat("database ", name_, ": patient record cannot be parsed"));
        }
        break;
      default:
        if (!state.alerts.emplace_back().ParseFromString(rows->Bytes(i, 3))) {
          return absl::DataLossError(absl::StrCat("database ", name_, ": alert record cannot be parsed"));
        }
        break;
    }
  }
  return state;
}

absl::StatusOr<CommitResult> PostgresStore::Commit(const PatientChange& change) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<CommitResult> result;
  if (auto st = TransactionLocked("cannot start the commit", "cannot commit the change", /*unflushed=*/false,
                                  [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                                    result = CommitLocked(change);
                                    return result.status();
                                  });
      !st.ok()) {
    return st;
  }
  return result;
}

absl::StatusOr<CommitResult> PostgresStore::CommitLocked(const PatientChange& change) {
  auto revision = AdvanceRevisionLocked(change);
  if (!revision.ok()) {
    return revision.status();
  }
  if (change.op == PatientChange::Op::kPut) {
    auto written = Run("cannot write the patient",
                       "INSERT INTO patients(id, revision, data, update_time) VALUES($1, $2, $3, $4) "
                       "ON CONFLICT (id) DO UPDATE SET revision = EXCLUDED.revision, data = EXCLUDED.data, "
                       "update_time = EXCLUDED.update_time",
                       PgParams()
                           .Text(change.patient_id)
                           .Int(*revision)
                           .Bytes(change.patient.SerializeAsString())
                           .Text(Rfc3339(absl::Now())));
    if (!written.ok()) {
      return written.status();
    }
  } else if (change.op == PatientChange::Op::kDelete) {
    if (auto st = ErasePatientLocked(change.patient_id); !st.ok()) {
      return st;
    }
  }
  CommitResult result;
  result.alerts = change.alerts;
  if (auto st = AppendEventsLocked(change, &result); !st.ok()) {
    return st;
  }
  return result;
}

absl::StatusOr<int64_t> PostgresStore::AdvanceRevisionLocked(const PatientChange& change) {
  // Optimistic concurrency: the change must be computed from the stored
  // revision. FOR UPDATE holds the row until the transaction ends, so a
  // concurrent writer of the same patient (in any process) waits here and
  // then reads the revision this one wrote.
  auto read = Run("cannot read the patient's revision",
                  "SELECT revision::bigint FROM patient_revisions WHERE id = $1 FOR UPDATE",
                  PgParams().Text(change.patient_id));
  if (!read.ok()) {
    return read.status();
  }
  const bool stored = read->rows() > 0;
  const int64_t revision = stored ? read->Int(0, 0) : 0;
  if (revision != change.expected_revision) {
    return absl::AbortedError(absl::StrCat("patient ", change.patient_id, " changed concurrently (revision ", revision,
                                           ", expected ", change.expected_revision, "); retry"));
  }
  if (stored) {
    auto updated = Run("cannot write the patient's revision", "UPDATE patient_revisions SET revision = $2 WHERE id = $1",
                       PgParams().Text(change.patient_id).Int(revision + 1));
    return updated.ok() ? absl::StatusOr<int64_t>(revision + 1) : updated.status();
  }
  // A new patient: a writer creating it concurrently makes this insert wait
  // for its commit and then do nothing.
  auto inserted = Run("cannot write the patient's revision",
                      "INSERT INTO patient_revisions(id, revision) VALUES($1, 1) ON CONFLICT (id) DO NOTHING "
                      "RETURNING revision::bigint",
                      PgParams().Text(change.patient_id));
  if (!inserted.ok()) {
    return inserted.status();
  }
  if (inserted->rows() == 0) {
    return absl::AbortedError(absl::StrCat("patient ", change.patient_id,
                                           " changed concurrently (created by another writer, expected revision 0); "
                                           "retry"));
  }
  return 1;
}

absl::Status PostgresStore::AppendEventsLocked(const PatientChange& change, CommitResult* result) {
  const int64_t count = static_cast<int64_t>(change.events.size());
  // Event numbers come from a one-row counter, updated inside the writing
  // transaction: the row lock the UPDATE takes is held until COMMIT, so
  // writers that append events (in every process sharing the database)
  // number and commit them one after another. Numbers are therefore gap-free
  // (a rolled-back transaction rolls its increment back too) and commit in
  // order: no reader can see N+1 committed before N. A sequence would leave
  // gaps and let N+1 commit first. The lock is taken after the patient's
  // own writes, so it is held only for the events' and alerts' inserts.
  const char* const sql = count > 0
                              ? "UPDATE event_counter SET last_number = last_number + $1 WHERE id = 1 "
                                "RETURNING last_number::bigint"
                              : "SELECT last_number::bigint FROM event_counter WHERE id = 1";
  auto counter = Run("cannot number the events", sql, count > 0 ? PgParams().Int(count) : PgParams());
  if (!counter.ok()) {
    return counter.status();
  }
  if (counter->rows() != 1) {
    return absl::DataLossError(absl::StrCat("database ", name_, ": the event counter is missing"));
  }
  const int64_t last = counter->Int(0, 0);
  const absl::Time now_at = absl::Now();
  const std::string now = Rfc3339(now_at);
  const google::protobuf::Timestamp now_time = ToTimestamp(now_at);
  int64_t number = last - count;
  for (const auto& event_in : change.events) {
    StoredEvent stored = NumberEvent(change, event_in, ++number, now_time, &result->alerts);
    auto inserted = Run("cannot append an event",
                        "INSERT INTO events(event_number, patient_id, type, alert_id, data, event_time) "
                        "VALUES($1, $2, $3, $4, $5, $6)",
                        PgParams()
                            .Int(stored.number)
                            .Text(stored.event.patient_id())
                            .Int(static_cast<int64_t>(stored.event.type()))
                            .Text(stored.event.alert().id())
                            .Bytes(stored.event.SerializeAsString())
                            .Text(now));
    if (!inserted.ok()) {
      return inserted.status();
    }
    result->events.push_back(std::move(stored));
  }
  for (const auto& alert : result->alerts) {
    if (change.op == PatientChange::Op::kDelete) {
      break;  // erased
    }
    auto written = Run("cannot write an alert",
                       "INSERT INTO alerts(alert_id, patient_id, status, data, update_time) VALUES($1, $2, $3, $4, $5) "
                       "ON CONFLICT (alert_id) DO UPDATE SET status = EXCLUDED.status, data = EXCLUDED.data, "
                       "update_time = EXCLUDED.update_time",
                       PgParams()
                           .Text(alert.record().alert().id())
                           .Text(change.patient_id)
                           .Int(static_cast<int64_t>(alert.record().status()))
                           .Bytes(alert.SerializeAsString())
                           .Text(now));
    if (!written.ok()) {
      return written.status();
    }
  }
  if (count > 0) {
    // Delivered to listeners when the transaction commits (never if it does
    // not); the payload is a hint, the events table is the truth.
    auto notified = Run("cannot notify the new events", "SELECT pg_notify($1, $2)",
                        PgParams().Text(kEventChannel).Text(absl::StrCat(last)));
    if (!notified.ok()) {
      return notified.status();
    }
  }
  result->last_event_number = last;
  return absl::OkStatus();
}

absl::Status PostgresStore::ErasePatientLocked(const std::string& patient_id) {
  for (const char* sql : {"DELETE FROM patients WHERE id = $1", "DELETE FROM alerts WHERE patient_id = $1",
                          "DELETE FROM cds_cards WHERE patient_id = $1"}) {
    if (auto deleted = Run("cannot delete the patient", sql, PgParams().Text(patient_id)); !deleted.ok()) {
      return deleted.status();
    }
  }
  // Each event of the patient becomes a tombstone in place.
  auto events = Run("cannot read the patient's events",
                    "SELECT event_number::bigint, data FROM events WHERE patient_id = $1 ORDER BY event_number",
                    PgParams().Text(patient_id));
  if (!events.ok()) {
    return events.status();
  }
  for (int i = 0; i < events->rows(); ++i) {
    v1::AlertEvent event;
    if (!event.ParseFromString(events->Bytes(i, 1))) {
      return absl::DataLossError(absl::StrCat("database ", name_, ": event ", events->Int(i, 0), " cannot be parsed"));
    }
    if (event.erased()) {
      continue;
    }
    auto erased = Run("cannot erase an event", "UPDATE events SET data = $1 WHERE event_number = $2",
                      PgParams().Bytes(Tombstone(event).SerializeAsString()).Int(events->Int(i, 0)));
    if (!erased.ok()) {
      return erased.status();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> PostgresStore::FindAlertPatient(const std::string& alert_id) {
  absl::MutexLock lock(&mu_);
  if (auto st = EnsureConnectedLocked(); !st.ok()) {
    return st;
  }
  auto found = Run("cannot look the alert up", "SELECT patient_id FROM alerts WHERE alert_id = $1",
                   PgParams().Text(alert_id));
  if (!found.ok()) {
    return found.status();
  }
  if (found->rows() == 0) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(found->Bytes(0, 0));
}

absl::StatusOr<std::vector<StoredEvent>> PostgresStore::ReadEvents(int64_t after, int limit) {
  absl::MutexLock lock(&mu_);
  if (auto st = EnsureConnectedLocked(); !st.ok()) {
    return st;
  }
  auto rows = Run("cannot read events",
                  "SELECT event_number::bigint, data FROM events WHERE event_number > $1 ORDER BY event_number LIMIT $2",
                  PgParams().Int(after).Int(LimitOf(limit)));
  if (!rows.ok()) {
    return rows.status();
  }
  std::vector<StoredEvent> out;
  out.reserve(static_cast<size_t>(rows->rows()));
  for (int i = 0; i < rows->rows(); ++i) {
    auto& e = out.emplace_back();
    e.number = rows->Int(i, 0);
    if (!e.event.ParseFromString(rows->Bytes(i, 1))) {
      return absl::DataLossError(absl::StrCat("database ", name_, ": event ", e.number, " cannot be parsed"));
    }
  }
  return out;
}

absl::StatusOr<int64_t> PostgresStore::LatestEventNumber() {
  absl::MutexLock lock(&mu_);
  if (auto st = EnsureConnectedLocked(); !st.ok()) {
    return st;
  }
  auto read = Run("cannot read the latest event number", "SELECT last_number::bigint FROM event_counter WHERE id = 1",
                  PgParams());
  if (!read.ok()) {
    return read.status();
  }
  if (read->rows() != 1) {
    return absl::DataLossError(absl::StrCat("database ", name_, ": the event counter is missing"));
  }
  return read->Int(0, 0);
}

absl::Status PostgresStore::Health() {
  absl::MutexLock lock(&mu_);
  if (auto st = EnsureConnectedLocked(); !st.ok()) {
    return st;
  }
  auto read = Run("health check", "SELECT 1", PgParams());
  return read.ok() ? absl::OkStatus() : read.status();
}

absl::Status PostgresStore::AppendAudit(const std::vector<v1::AuditEvent>& events, AuditDurability durability) {
  if (events.empty()) {
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  return TransactionLocked("cannot start the audit transaction", "cannot commit to the audit trail",
                           durability == AuditDurability::kCommitted,
                           [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return AppendAuditLocked(events); });
}

absl::Status PostgresStore::RememberCards(const std::vector<ShownCard>& cards, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto write = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
    if (auto forgot = Run("cannot forget expired cards", "DELETE FROM cds_cards WHERE expires <= $1",
                          PgParams().Int(absl::ToUnixMicros(now)));
        !forgot.ok()) {
      return forgot.status();
    }
    for (const ShownCard& card : cards) {
      auto inserted = Run("cannot remember a card",
                          "INSERT INTO cds_cards(uuid, patient_id, user_id, select_key, fingerprint, alert, expires) "
                          "VALUES($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (uuid) DO UPDATE SET "
                          "patient_id = excluded.patient_id, user_id = excluded.user_id, "
                          "select_key = excluded.select_key, fingerprint = excluded.fingerprint, "
                          "alert = excluded.alert, expires = excluded.expires",
                          PgParams()
                              .Text(card.uuid)
                              .Text(card.patient_id)
                              .Text(card.user_id)
                              .Text(card.select_key)
                              .Text(card.fingerprint)
                              .Bytes(card.alert.SerializeAsString())
                              .Int(absl::ToUnixMicros(card.expires)));
      if (!inserted.ok()) {
        return inserted.status();
      }
    }
    return absl::OkStatus();
  };
  // Without waiting for the WAL flush, as audit records of checks (see
  // Store::RememberCards).
  return TransactionLocked("cannot remember cards", "cannot remember cards", /*unflushed=*/true, write);
}

absl::StatusOr<std::optional<ShownCard>> PostgresStore::FindCard(const std::string& uuid, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (auto st = EnsureConnectedLocked(); !st.ok()) {
    return st;
  }
  auto found = Run("cannot look the card up",
                   "SELECT patient_id, user_id, select_key, fingerprint, alert, expires::bigint FROM cds_cards "
                   "WHERE uuid = $1 AND expires > $2",
                   PgParams().Text(uuid).Int(absl::ToUnixMicros(now)));
  if (!found.ok()) {
    return found.status();
  }
  if (found->rows() == 0) {
    return std::optional<ShownCard>();
  }
  ShownCard card;
  card.uuid = uuid;
  card.patient_id = found->Bytes(0, 0);
  card.user_id = found->Bytes(0, 1);
  card.select_key = found->Bytes(0, 2);
  card.fingerprint = found->Bytes(0, 3);
  if (!card.alert.ParseFromString(found->Bytes(0, 4))) {
    return absl::DataLossError(absl::StrCat("database ", name_, ": the alert of a card cannot be parsed"));
  }
  card.expires = absl::FromUnixMicros(found->Int(0, 5));
  return std::optional<ShownCard>(std::move(card));
}

absl::StatusOr<int64_t> PostgresStore::ForgetCards(const std::string& patient_id) {
  absl::MutexLock lock(&mu_);
  if (auto st = EnsureConnectedLocked(); !st.ok()) {
    return st;
  }
  auto forgot = Run("cannot forget the patient's cards",
                    "WITH gone AS (DELETE FROM cds_cards WHERE patient_id = $1 RETURNING 1) "
                    "SELECT COUNT(*)::bigint FROM gone",
                    PgParams().Text(patient_id));
  if (!forgot.ok()) {
    return forgot.status();
  }
  return forgot->Int(0, 0);
}

absl::StatusOr<std::optional<std::string>> PostgresStore::SelectFingerprint(const std::string& select_key,
                                                                            absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (auto st = EnsureConnectedLocked(); !st.ok()) {
    return st;
  }
  auto found = Run("cannot look the card up",
                   "SELECT fingerprint FROM cds_cards WHERE select_key = $1 AND expires > $2 "
                   "ORDER BY expires DESC LIMIT 1",
                   PgParams().Text(select_key).Int(absl::ToUnixMicros(now)));
  if (!found.ok()) {
    return found.status();
  }
  if (found->rows() == 0) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(found->Bytes(0, 0));
}

absl::Status PostgresStore::SyncAudit() {
  absl::MutexLock lock(&mu_);
  if (auto st = EnsureConnectedLocked(); !st.ok()) {
    return st;
  }
  // A transaction given an id commits with a WAL record, and a synchronous
  // commit waits until the WAL is flushed up to it: every earlier
  // asynchronous commit with it.
  auto synced = Run("cannot sync the audit trail", "SELECT txid_current()");
  return synced.ok() ? absl::OkStatus() : synced.status();
}

namespace {
// Audit records per INSERT statement: one round trip carries this many rows
// (11 parameters each, far below PostgreSQL's limit of 65,535 parameters).
constexpr size_t kAuditRowsPerStatement = 128;
constexpr int kAuditColumns = 11;
}  // namespace

absl::Status PostgresStore::AppendAuditLocked(const std::vector<v1::AuditEvent>& events) {
  // Ids from a counter held until COMMIT, as event numbers are: a reader
  // paging the trail by id (ReadAudit) never skips a record committed late.
  auto counter = Run("cannot append to the audit trail",
                     "UPDATE audit_counter SET last_id = last_id + $1 WHERE id = 1 RETURNING last_id::bigint",
                     PgParams().Int(static_cast<int64_t>(events.size())));
  if (!counter.ok()) {
    return counter.status();
  }
  if (counter->rows() != 1) {
    return absl::DataLossError(absl::StrCat("database ", name_, ": the audit counter is missing"));
  }
  int64_t id = counter->Int(0, 0) - static_cast<int64_t>(events.size());
  const std::string now = Rfc3339(absl::Now());
  for (size_t first = 0; first < events.size(); first += kAuditRowsPerStatement) {
    const size_t rows = std::min(kAuditRowsPerStatement, events.size() - first);
    std::string sql =
        "INSERT INTO audit(id, recorded_time, action, method, agent, peer, patient_id, outcome, alert_id, "
        "access_time, certificate_subject) VALUES";
    PgParams params;
    for (size_t row = 0; row < rows; ++row) {
      const int base = static_cast<int>(row) * kAuditColumns;
      absl::StrAppend(&sql, row == 0 ? "(" : ", (");
      for (int column = 1; column <= kAuditColumns; ++column) {
        absl::StrAppend(&sql, column == 1 ? "$" : ", $", base + column);
      }
      sql += ")";
      const v1::AuditEvent& e = events[first + row];
      params.Int(++id)
          .Text(now)
          .Text(AuditActionCode(e.action()))
          .Text(e.method())
          .Text(e.agent())
          .Text(e.peer())
          .Text(e.patient_id())
          .Text(google::rpc::Code_Name(e.outcome()))
          .Text(e.alert_id())
          .Text(e.has_access_time() ? Rfc3339(FromTimestamp(e.access_time())) : now)
          .Text(e.certificate_subject());
    }
    if (auto inserted = Run("cannot append to the audit trail", sql.c_str(), params); !inserted.ok()) {
      return inserted.status();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::AuditEvent>> PostgresStore::ReadAudit(int64_t after_id, int limit) {
  absl::MutexLock lock(&mu_);
  if (auto st = EnsureConnectedLocked(); !st.ok()) {
    return st;
  }
  auto rows = Run("cannot read the audit trail",
                  "SELECT id::bigint, recorded_time, action, method, agent, peer, patient_id, outcome, alert_id, "
                  "access_time, certificate_subject FROM audit WHERE id > $1 ORDER BY id LIMIT $2",
                  PgParams().Int(after_id).Int(LimitOf(limit)));
  if (!rows.ok()) {
    return rows.status();
  }
  std::vector<v1::AuditEvent> out;
  for (int i = 0; i < rows->rows(); ++i) {
    auto& e = out.emplace_back();
    e.set_id(rows->Int(i, 0));
    *e.mutable_record_time() = TimestampOfRfc3339(rows->Bytes(i, 1));
    e.set_action(AuditActionOfCode(rows->Bytes(i, 2)));
    e.set_method(rows->Bytes(i, 3));
    e.set_agent(rows->Bytes(i, 4));
    e.set_peer(rows->Bytes(i, 5));
    e.set_patient_id(rows->Bytes(i, 6));
    google::rpc::Code outcome = google::rpc::UNKNOWN;
    google::rpc::Code_Parse(rows->Bytes(i, 7), &outcome);
    e.set_outcome(outcome);
    e.set_alert_id(rows->Bytes(i, 8));
    *e.mutable_access_time() = TimestampOfRfc3339(rows->Bytes(i, 9));
    e.set_certificate_subject(rows->Bytes(i, 10));
  }
  return out;
}

}  // namespace vigil
