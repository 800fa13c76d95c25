// vigil-migrate: copies a hospital's Vigil data from its SQLite database to
// an empty PostgreSQL database, so that it can run several replicas.
//
//   vigil-migrate SQLITE_FILE POSTGRES_URI
//
// The SQLite file is first opened as the server opens it (SqliteStore::Open:
// an older schema is upgraded to the latest in place) and the target as the
// server opens it (PostgresStore::Open creates or checks its schema), so
// that this tool holds no copy of either schema. Then, in ONE PostgreSQL
// transaction, with the Vigil tables locked against writers:
//   1. the target must hold no Vigil data (no rows, counters at 0), else
//      nothing is written;
//   2. patients, patient_revisions, alerts, events (tombstones included),
//      the CDS Hooks cards remembered and the audit trail are copied with
//      COPY, every column as stored (the serialized protos byte for byte,
//      event numbers and audit ids kept);
//   3. the event and audit counters are set to the copied maxima, so that
//      the next commit numbers event N+1 and audit record M+1;
//   4. per table, the row count, the stored bytes and the largest number
//      are compared with the SQLite file's, read in one SQLite snapshot.
// Any mismatch or error rolls everything back. Only counts are printed,
// never patient data (PostgreSQL's error details, which may quote a row,
// are left out). Exit status: 0 copied and verified, 1 refused or failed,
// 64 usage. scripts/migrate-sqlite-to-postgres.sh is the documented entry.
#include <libpq-fe.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "server/store/postgres_store.h"
#include "server/store/sqlite_store.h"

namespace vigil {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 64;
// Bytes of COPY data sent to PostgreSQL at a time.
constexpr size_t kCopyChunk = 1 << 20;

enum class Kind { kInt, kText, kBlob };

struct Column {
  const char* name;
  Kind kind;
};

// A table both stores have, with the same columns.
struct Table {
  const char* name;
  std::vector<Column> columns;
  const char* key;   // the primary key, the copy's order
  bool numbered;     // the key is a number whose maximum a counter follows
  const char* blob;  // the serialized proto column, or null
};

const std::vector<Table>& Tables() {
  static const auto* const tables = new std::vector<Table>{
      {"patients",
       {{"id", Kind::kText}, {"revision", Kind::kInt}, {"data", Kind::kBlob}, {"update_time", Kind::kText}},
       "id", false, "data"},
      {"patient_revisions", {{"id", Kind::kText}, {"revision", Kind::kInt}}, "id", false, nullptr},
      {"alerts",
       {{"alert_id", Kind::kText}, {"patient_id", Kind::kText}, {"status", Kind::kInt}, {"data", Kind::kBlob},
        {"update_time", Kind::kText}},
       "alert_id", false, "data"},
      {"events",
       {{"event_number", Kind::kInt}, {"patient_id", Kind::kText}, {"type", Kind::kInt}, {"alert_id", Kind::kText},
        {"data", Kind::kBlob}, {"event_time", Kind::kText}},
       "event_number", true, "data"},
      {"cds_cards",
       {{"uuid", Kind::kText}, {"patient_id", Kind::kText}, {"user_id", Kind::kText}, {"select_key", Kind::kText},
        {"fingerprint", Kind::kText}, {"alert", Kind::kBlob}, {"expires", Kind::kInt}},
       "uuid", false, "alert"},
      {"audit",
       {{"id", Kind::kInt}, {"recorded_time", Kind::kText}, {"action", Kind::kText}, {"method", Kind::kText},
        {"agent", Kind::kText}, {"peer", Kind::kText}, {"patient_id", Kind::kText}, {"outcome", Kind::kText},
        {"alert_id", Kind::kText}, {"access_time", Kind::kText}, {"certificate_subject", Kind::kText}},
       "id", true, nullptr},
  };
  return *tables;
}

std::string ColumnList(const Table& table) {
  std::vector<std::string> names;
  for (const auto& c : table.columns) {
    names.push_back(c.name);
  }
  return absl::StrJoin(names, ", ");
}

// What a table holds, as both sides count it.
struct TableStats {
  int64_t rows = 0;
  int64_t blob_bytes = 0;  // of the serialized protos
  int64_t max_key = 0;     // for a numbered table
  bool operator==(const TableStats& o) const {
    return rows == o.rows && blob_bytes == o.blob_bytes && max_key == o.max_key;
  }
};

std::string Describe(const TableStats& s) {
  return absl::StrCat(s.rows, " rows, ", s.blob_bytes, " stored bytes, largest number ", s.max_key);
}

// ---------------------------------------------------------------------------
// SQLite, read in one snapshot.

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
using SqliteDb = std::unique_ptr<sqlite3, SqliteCloser>;

struct StatementFinalizer {
  void operator()(sqlite3_stmt* st) const { sqlite3_finalize(st); }
};
using SqliteStatement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

absl::Status SqliteError(sqlite3* db, const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", sqlite3_errmsg(db)));
}

absl::StatusOr<SqliteStatement> Prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    sqlite3_finalize(st);
    return SqliteError(db, "cannot read the SQLite database");
  }
  return SqliteStatement(st);
}

absl::StatusOr<SqliteDb> OpenSqliteReadOnly(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    SqliteDb owned(db);
    return SqliteError(db, absl::StrCat("cannot open ", path));
  }
  sqlite3_busy_timeout(db, 5000);
  return SqliteDb(db);
}

// The file's schema version (0: not a Vigil database, or empty).
absl::StatusOr<int64_t> SqliteSchemaVersion(const std::string& path) {
  auto db = OpenSqliteReadOnly(path);
  if (!db.ok()) {
    return db.status();
  }
  auto st = Prepare(db->get(), "PRAGMA user_version");
  if (!st.ok()) {
    return st.status();
  }
  if (sqlite3_step(st->get()) != SQLITE_ROW) {
    return SqliteError(db->get(), absl::StrCat(path, " is not an SQLite database"));
  }
  return sqlite3_column_int64(st->get(), 0);
}

absl::StatusOr<TableStats> SqliteStats(sqlite3* db, const Table& table) {
  const std::string bytes =
      table.blob != nullptr ? absl::StrCat("COALESCE(SUM(LENGTH(CAST(", table.blob, " AS BLOB))), 0)") : "0";
  const std::string max_key = table.numbered ? absl::StrCat("COALESCE(MAX(", table.key, "), 0)") : "0";
  auto st = Prepare(db, absl::StrCat("SELECT COUNT(*), ", bytes, ", ", max_key, " FROM ", table.name));
  if (!st.ok()) {
    return st.status();
  }
  if (sqlite3_step(st->get()) != SQLITE_ROW) {
    return SqliteError(db, absl::StrCat("cannot count the SQLite table ", table.name));
  }
  return TableStats{sqlite3_column_int64(st->get(), 0), sqlite3_column_int64(st->get(), 1),
                    sqlite3_column_int64(st->get(), 2)};
}

// ---------------------------------------------------------------------------
// PostgreSQL, through libpq.

struct PgFinisher {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using PgConnection = std::unique_ptr<PGconn, PgFinisher>;

struct PgClearer {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgClearer>;

// The status of a failed statement: its primary message and SQLSTATE only
// (the detail and context may quote a row).
absl::Status PgError(PGconn* conn, const PGresult* result, const std::string& what) {
  const char* primary = result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = primary != nullptr ? primary : PQerrorMessage(conn);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.pop_back();
  }
  return absl::UnavailableError(
      absl::StrCat(what, ": ", message, state != nullptr ? absl::StrCat(" (SQLSTATE ", state, ")") : ""));
}

absl::StatusOr<PgResultPtr> PgRun(PGconn* conn, const std::string& sql, const std::string& what) {
  PgResultPtr result(PQexec(conn, sql.c_str()));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return PgError(conn, result.get(), what);
  }
  return result;
}

// An integer of a text-format result.
int64_t PgInt(const PGresult* result, int row, int col) {
  return std::stoll(PQgetvalue(result, row, col));
}

absl::StatusOr<PgConnection> ConnectPostgres(const std::string& uri) {
  const char* const keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* const values[] = {"10", "vigil-migrate", uri.c_str(), nullptr};
  PgConnection conn(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", UriWithoutPassword(uri), ": ",
                                               conn == nullptr ? "out of memory" : PQerrorMessage(conn.get())));
  }
  PQsetNoticeProcessor(conn.get(), [](void*, const char*) {}, nullptr);
  if (PQsetClientEncoding(conn.get(), "UTF8") != 0) {
    return PgError(conn.get(), nullptr, "cannot set the client encoding to UTF8");
  }
  return conn;
}

absl::StatusOr<TableStats> PostgresStats(PGconn* conn, const Table& table) {
  const std::string bytes =
      table.blob != nullptr ? absl::StrCat("COALESCE(SUM(octet_length(", table.blob, ")), 0)") : "0";
  const std::string max_key = table.numbered ? absl::StrCat("COALESCE(MAX(", table.key, "), 0)") : "0";
  auto result = PgRun(conn, absl::StrCat("SELECT COUNT(*)::bigint, (", bytes, ")::bigint, (", max_key,
                                         ")::bigint FROM ", table.name),
                      absl::StrCat("cannot count the PostgreSQL table ", table.name));
  if (!result.ok()) {
    return result.status();
  }
  return TableStats{PgInt(result->get(), 0, 0), PgInt(result->get(), 0, 1), PgInt(result->get(), 0, 2)};
}

// ---------------------------------------------------------------------------
// The copy.

// Appends `bytes` as a value of COPY's text format.
void AppendCopyText(const char* bytes, size_t size, std::string* out) {
  for (size_t i = 0; i < size; ++i) {
    switch (const char c = bytes[i]) {
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        out->push_back(c);
    }
  }
}

// Appends `bytes` as a bytea in COPY's text format: \x and hex digits, the
// backslash doubled for COPY.
void AppendCopyBytea(const unsigned char* bytes, size_t size, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->append("\\\\x");
  for (size_t i = 0; i < size; ++i) {
    out->push_back(kHex[bytes[i] >> 4]);
    out->push_back(kHex[bytes[i] & 0xf]);
  }
}

// Appends the current row of `st` as a line of COPY's text format.
void AppendCopyRow(sqlite3_stmt* st, const Table& table, std::string* out) {
  for (size_t i = 0; i < table.columns.size(); ++i) {
    const int col = static_cast<int>(i);
    if (i > 0) {
      out->push_back('\t');
    }
    switch (table.columns[i].kind) {
      case Kind::kInt:
        absl::StrAppend(out, sqlite3_column_int64(st, col));
        break;
      case Kind::kText: {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(st, col));
        AppendCopyText(text, static_cast<size_t>(sqlite3_column_bytes(st, col)), out);
        break;
      }
      case Kind::kBlob: {
        const auto* blob = static_cast<const unsigned char*>(sqlite3_column_blob(st, col));
        AppendCopyBytea(blob, static_cast<size_t>(sqlite3_column_bytes(st, col)), out);
        break;
      }
    }
  }
  out->push_back('\n');
}

absl::Status PutCopyData(PGconn* conn, std::string* buffer, const Table& table) {
  if (!buffer->empty() && PQputCopyData(conn, buffer->data(), static_cast<int>(buffer->size())) != 1) {
    return PgError(conn, nullptr, absl::StrCat("cannot copy the table ", table.name));
  }
  buffer->clear();
  return absl::OkStatus();
}

// Ends a COPY (aborted with `error` when not null) and returns its outcome.
absl::Status EndCopy(PGconn* conn, const char* error, const Table& table) {
  const std::string what = absl::StrCat("cannot copy the table ", table.name);
  if (PQputCopyEnd(conn, error) != 1) {
    return PgError(conn, nullptr, what);
  }
  absl::Status status = absl::OkStatus();
  while (PGresult* raw = PQgetResult(conn)) {
    PgResultPtr result(raw);
    if (PQresultStatus(raw) != PGRES_COMMAND_OK && status.ok()) {
      status = PgError(conn, raw, what);
    }
  }
  return status;
}

// Copies one table, in key order; `*rows` counts the rows sent.
absl::Status CopyTable(sqlite3* source, PGconn* target, const Table& table, int64_t* rows) {
  const std::string columns = ColumnList(table);
  auto select = Prepare(source, absl::StrCat("SELECT ", columns, " FROM ", table.name, " ORDER BY ", table.key));
  if (!select.ok()) {
    return select.status();
  }
  {
    const PgResultPtr started(PQexec(target, absl::StrCat("COPY ", table.name, " (", columns, ") FROM STDIN").c_str()));
    if (PQresultStatus(started.get()) != PGRES_COPY_IN) {
      return PgError(target, started.get(), absl::StrCat("cannot start copying the table ", table.name));
    }
  }
  std::string buffer;
  int rc = SQLITE_OK;
  absl::Status status = absl::OkStatus();
  while (status.ok() && (rc = sqlite3_step(select->get())) == SQLITE_ROW) {
    AppendCopyRow(select->get(), table, &buffer);
    ++*rows;
    if (buffer.size() >= kCopyChunk) {
      status = PutCopyData(target, &buffer, table);
    }
  }
  if (status.ok() && rc != SQLITE_DONE) {
    status = SqliteError(source, absl::StrCat("cannot read the SQLite table ", table.name));
  }
  if (status.ok()) {
    status = PutCopyData(target, &buffer, table);
  }
  const absl::Status ended = EndCopy(target, status.ok() ? nullptr : "vigil-migrate: the copy failed", table);
  return status.ok() ? ended : status;
}

// Locks the Vigil tables against writers (readers go on) and checks that
// they hold nothing.
absl::Status LockAndCheckEmpty(PGconn* conn) {
  std::vector<std::string> names = {"event_counter", "audit_counter"};
  for (const auto& table : Tables()) {
    names.push_back(table.name);
  }
  auto locked = PgRun(conn, absl::StrCat("SET LOCAL lock_timeout = '30s'; LOCK TABLE ", absl::StrJoin(names, ", "),
                                         " IN EXCLUSIVE MODE"),
                      "cannot lock the target's tables (is a vigil-server writing to it?)");
  if (!locked.ok()) {
    return locked.status();
  }
  std::vector<std::string> counts;
  for (const auto& table : Tables()) {
    counts.push_back(absl::StrCat("(SELECT COUNT(*) FROM ", table.name, ")"));
  }
  auto read = PgRun(conn,
                    absl::StrCat("SELECT (", absl::StrJoin(counts, " + "), ")::bigint, ",
                                 "(SELECT last_number FROM event_counter WHERE id = 1)::bigint, ",
                                 "(SELECT last_id FROM audit_counter WHERE id = 1)::bigint"),
                    "cannot read the target's tables");
  if (!read.ok()) {
    return read.status();
  }
  const int64_t rows = PgInt(read->get(), 0, 0);
  const int64_t events = PgInt(read->get(), 0, 1);
  const int64_t audit = PgInt(read->get(), 0, 2);
  if (rows != 0 || events != 0 || audit != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the target database already holds Vigil data (", rows, " rows; event counter ", events, ", audit counter ",
        audit, "); nothing was copied: migrate into an empty database"));
  }
  return absl::OkStatus();
}

// Sets the counters PostgreSQL numbers new events and audit records from.
absl::Status SetCounters(PGconn* conn, int64_t last_event, int64_t last_audit) {
  auto set = PgRun(conn,
                   absl::StrCat("UPDATE event_counter SET last_number = ", last_event, " WHERE id = 1; ",
                                "UPDATE audit_counter SET last_id = ", last_audit, " WHERE id = 1"),
                   "cannot set the counters");
  if (!set.ok()) {
    return set.status();
  }
  auto read = PgRun(conn,
                    "SELECT (SELECT last_number FROM event_counter WHERE id = 1)::bigint, "
                    "(SELECT last_id FROM audit_counter WHERE id = 1)::bigint",
                    "cannot read the counters");
  if (!read.ok()) {
    return read.status();
  }
  if (PgInt(read->get(), 0, 0) != last_event || PgInt(read->get(), 0, 1) != last_audit) {
    return absl::DataLossError(absl::StrCat("the counters read ", PgInt(read->get(), 0, 0), " and ",
                                            PgInt(read->get(), 0, 1), " after being set to ", last_event, " and ",
                                            last_audit));
  }
  return absl::OkStatus();
}

// The largest number of table `name` in `copied` (in the order of Tables()).
int64_t LargestNumber(const std::vector<TableStats>& copied, absl::string_view name) {
  for (size_t i = 0; i < copied.size(); ++i) {
    if (Tables()[i].name == name) {
      return copied[i].max_key;
    }
  }
  return 0;
}

// Copies every table and sets the counters inside the caller's
// transaction, then compares each table with the source; `*copied` gets
// the source's figures.
absl::Status CopyAndVerify(sqlite3* source, PGconn* target, std::vector<TableStats>* copied) {
  for (const auto& table : Tables()) {
    auto expected = SqliteStats(source, table);
    if (!expected.ok()) {
      return expected.status();
    }
    int64_t sent = 0;
    if (auto st = CopyTable(source, target, table, &sent); !st.ok()) {
      return st;
    }
    auto actual = PostgresStats(target, table);
    if (!actual.ok()) {
      return actual.status();
    }
    if (sent != expected->rows || !(*actual == *expected)) {
      return absl::DataLossError(absl::StrCat("table ", table.name, " does not match after the copy: SQLite has ",
                                              Describe(*expected), "; ", sent, " rows were sent; PostgreSQL has ",
                                              Describe(*actual)));
    }
    copied->push_back(*expected);
  }
  return SetCounters(target, LargestNumber(*copied, "events"), LargestNumber(*copied, "audit"));
}

void PrintReport(const std::string& path, const std::string& uri, const std::vector<TableStats>& copied) {
  std::cout << "vigil-migrate: copied " << path << " (SQLite schema " << SqliteStore::kSchemaVersion << ") to "
            << UriWithoutPassword(uri) << " (PostgreSQL schema " << PostgresStore::kSchemaVersion << ")\n";
  for (size_t i = 0; i < copied.size(); ++i) {
    const Table& table = Tables()[i];
    std::cout << "  " << table.name << ": " << copied[i].rows << " rows";
    if (table.blob != nullptr) {
      std::cout << ", " << copied[i].blob_bytes << " stored bytes";
    }
    if (table.numbered) {
      std::cout << ", largest number " << copied[i].max_key;
    }
    std::cout << "\n";
  }
  std::cout << "  counters: event_counter " << LargestNumber(copied, "events") << ", audit_counter "
            << LargestNumber(copied, "audit") << "\n"
            << "verified: row counts, stored bytes, largest numbers and counters match; committed\n";
}

// Opens both stores as the server does (upgrading the SQLite file's schema,
// creating the PostgreSQL one), then closes them.
absl::Status PrepareSchemas(const std::string& path, const std::string& uri) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return absl::NotFoundError(absl::StrCat("no SQLite database at ", path));
  }
  auto version = SqliteSchemaVersion(path);
  if (!version.ok()) {
    return version.status();
  }
  if (*version < 1) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a Vigil database (schema version 0)"));
  }
  if (auto sqlite = SqliteStore::Open(path); !sqlite.ok()) {
    return sqlite.status();
  }
  if (auto postgres = PostgresStore::Open(uri); !postgres.ok()) {
    return postgres.status();
  }
  return absl::OkStatus();
}

absl::Status Migrate(const std::string& path, const std::string& uri) {
  if (auto st = PrepareSchemas(path, uri); !st.ok()) {
    return st;
  }
  auto source = OpenSqliteReadOnly(path);
  if (!source.ok()) {
    return source.status();
  }
  auto target = ConnectPostgres(uri);
  if (!target.ok()) {
    return target.status();
  }
  // One read transaction: every table and figure from the same snapshot.
  if (sqlite3_exec(source->get(), "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteError(source->get(), "cannot start reading the SQLite database");
  }
  if (auto begun = PgRun(target->get(), "BEGIN", "cannot start the transaction"); !begun.ok()) {
    return begun.status();
  }
  std::vector<TableStats> copied;
  absl::Status status = LockAndCheckEmpty(target->get());
  if (status.ok()) {
    status = CopyAndVerify(source->get(), target->get(), &copied);
  }
  if (!status.ok()) {
    PgRun(target->get(), "ROLLBACK", "cannot roll back").IgnoreError();
    return status;
  }
  if (auto committed = PgRun(target->get(), "COMMIT", "cannot commit the copy"); !committed.ok()) {
    return committed.status();
  }
  sqlite3_exec(source->get(), "COMMIT", nullptr, nullptr, nullptr);
  PrintReport(path, uri, copied);
  return absl::OkStatus();
}

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: vigil-migrate SQLITE_FILE POSTGRES_URI\n"
                 "  copies a Vigil SQLite database into an empty PostgreSQL database\n"
                 "  (e.g. postgresql://vigil@db.example:5432/vigil); prints counts only\n";
    return vigil::kExitUsage;
  }
  if (const absl::Status st = vigil::Migrate(argv[1], argv[2]); !st.ok()) {
    std::cerr << "vigil-migrate: " << st.message() << "\n";
    return vigil::kExitFailure;
  }
  return 0;
}
