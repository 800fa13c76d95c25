// Tests of the SQLite store: migrations, event numbering, optimistic
// concurrency and the append-only audit trail.
#include "server/store/sqlite_store.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "server/common/timestamp.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::Exec;
using ::vigil::testing::FileBytes;
using ::vigil::testing::TempDir;

PatientChange PutChange(const std::string& id, int64_t revision, int events) {
  PatientChange change;
  change.patient_id = id;
  change.expected_revision = revision;
  change.patient.set_id(id);
  for (int i = 0; i < events; ++i) {
    store::v1::StoredAlert alert;
    alert.mutable_record()->mutable_alert()->set_id(absl::StrCat("al-", id, "-", i));
    alert.mutable_record()->set_status(v1::ALERT_STATUS_ACTIVE);
    change.alerts.push_back(alert);
    v1::AlertEvent event;
    event.set_type(v1::ALERT_EVENT_TYPE_RAISED);
    event.set_patient_id(id);
    *event.mutable_alert() = alert.record().alert();
    change.events.push_back(event);
  }
  return change;
}

TEST(SqliteStoreTest, NewFileHasTheLatestSchema) {
  TempDir dir;
  auto store = SqliteStore::Open(dir.path() + "/v.db");
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->schema_version(), SqliteStore::kSchemaVersion);
}

TEST(SqliteStoreTest, EventNumbersRiseByOneAndHistoryIsRecorded) {
  TempDir dir;
  auto store = SqliteStore::Open(dir.path() + "/v.db");
  ASSERT_TRUE(store.ok());
  auto first = (*store)->Commit(PutChange("a", 0, 2));
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = (*store)->Commit(PutChange("b", 0, 3));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->last_event_number, 5);
  auto events = (*store)->ReadEvents(0, 100);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 5u);
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].number, static_cast<int64_t>(i + 1));
  }
  auto state = (*store)->LoadPatient("b");
  ASSERT_TRUE(state.ok());
  EXPECT_TRUE(state->exists);
  EXPECT_EQ(state->revision, 1);
  ASSERT_EQ(state->alerts.size(), 3u);
  ASSERT_EQ(state->alerts[0].record().history_size(), 1);
  EXPECT_EQ(state->alerts[0].record().history(0).event_number(), 3);
}

TEST(SqliteStoreTest, StaleRevisionIsAbortedAndChangesNothing) {
  TempDir dir;
  auto store = SqliteStore::Open(dir.path() + "/v.db");
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Commit(PutChange("a", 0, 1)).ok());
  const auto stale = (*store)->Commit(PutChange("a", 0, 1));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(*(*store)->LatestEventNumber(), 1);
}

TEST(SqliteStoreTest, OlderFileIsMigratedInPlace) {
  TempDir dir;
  const std::string path = dir.path() + "/old.db";
  // A version-1 file, as the first release wrote it, with one event.
  Exec(path, R"sql(
CREATE TABLE patients (id TEXT PRIMARY KEY, revision INTEGER NOT NULL, data BLOB NOT NULL, update_time TEXT NOT NULL);
CREATE TABLE alerts (alert_id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, status INTEGER NOT NULL, data BLOB NOT NULL,
                     update_time TEXT NOT NULL);
CREATE INDEX alerts_by_patient ON alerts(patient_id);
CREATE TABLE events (event_number INTEGER PRIMARY KEY, patient_id TEXT NOT NULL, type INTEGER NOT NULL,
                     alert_id TEXT NOT NULL, data BLOB NOT NULL, event_time TEXT NOT NULL);
CREATE TABLE patient_revisions (id TEXT PRIMARY KEY, revision INTEGER NOT NULL);
INSERT INTO events VALUES (1, 'p', 1, 'al-1', x'', '2026-01-01T00:00:00Z');
PRAGMA user_version = 1;
)sql");
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->schema_version(), SqliteStore::kSchemaVersion);
  EXPECT_EQ(*(*store)->LatestEventNumber(), 1);
  EXPECT_TRUE((*store)->AppendAudit({v1::AuditEvent()}, Store::AuditDurability::kSynced).ok());
}

// An audit append committed without its own flush survives a crash of the
// process that made it: a child process appends and dies without closing the
// database, and the records are there when it is opened again.
TEST(SqliteStoreTest, CommittedAuditSurvivesACrashOfTheProcess) {
  TempDir dir;
  const std::string path = dir.path() + "/v.db";
  ASSERT_TRUE(SqliteStore::Open(path).ok());  // created and migrated
  const pid_t child = fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    auto store = SqliteStore::Open(path);
    v1::AuditEvent e;
    e.set_patient_id("crashed");
    const bool appended = store.ok() && (*store)->AppendAudit({e, e}, Store::AuditDurability::kCommitted).ok();
    _exit(appended ? 0 : 1);  // no destructor runs: the connection is never closed
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto read = (*store)->ReadAudit(0, 10);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[1].patient_id(), "crashed");
}

TEST(SqliteStoreTest, DeleteErasesTheContextAlertsAndEventContent) {
  TempDir dir;
  const std::string path = dir.path() + "/v.db";
  {
    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok());
    PatientChange put = PutChange("p", 0, 2);
    put.patient.add_conditions()->mutable_code()->set_display("Erasable-condition-text");
    for (auto& alert : put.alerts) {
      alert.mutable_record()->mutable_alert()->set_summary("Erasable-alert-summary");
      alert.mutable_record()->mutable_alert()->add_drug_ids("erasable-drug");
    }
    for (auto& event : put.events) {
      event.mutable_alert()->set_summary("Erasable-alert-summary");
      event.mutable_alert()->add_drug_ids("erasable-drug");
      event.mutable_alert()->set_kind(v1::ALERT_KIND_DRUG_INTERACTION);
      event.mutable_alert()->set_severity(v1::SEVERITY_MAJOR);
    }
    ASSERT_TRUE((*store)->Commit(put).ok());
    ASSERT_TRUE((*store)->Commit(PutChange("other", 0, 1)).ok());
    ASSERT_NE(FileBytes(path + "-wal").find("Erasable-alert-summary"), std::string::npos);

    PatientChange del;
    del.op = PatientChange::Op::kDelete;
    del.patient_id = "p";
    del.expected_revision = 1;
    v1::AlertEvent resolved;
    resolved.set_type(v1::ALERT_EVENT_TYPE_RESOLVED);
    resolved.set_patient_id("p");
    resolved.mutable_alert()->set_id("al-p-0");
    resolved.mutable_alert()->set_summary("Erasable-alert-summary");
    del.events.push_back(resolved);
    auto committed = (*store)->Commit(del);
    ASSERT_TRUE(committed.ok()) << committed.status();
    ASSERT_EQ(committed->events.size(), 1u);
    EXPECT_TRUE(committed->events[0].event.erased());
    EXPECT_TRUE(committed->events[0].event.alert().summary().empty());

    auto state = (*store)->LoadPatient("p");
    ASSERT_TRUE(state.ok());
    EXPECT_FALSE(state->exists);
    EXPECT_TRUE(state->alerts.empty());
    EXPECT_EQ(state->revision, 2);
    auto events = (*store)->ReadEvents(0, 100);
    ASSERT_TRUE(events.ok());
    ASSERT_EQ(events->size(), 4u);  // gap-free: 1, 2 (p), 3 (other), 4 (p's deletion)
    for (const auto& e : *events) {
      if (e.event.patient_id() != "p") {
        EXPECT_FALSE(e.event.erased());
        continue;
      }
      EXPECT_TRUE(e.event.erased()) << e.number;
      EXPECT_FALSE(e.event.alert().id().empty());
      EXPECT_TRUE(e.event.alert().summary().empty());
      EXPECT_EQ(e.event.alert().drug_ids_size(), 0);
    }
    EXPECT_EQ((*events)[0].event.alert().severity(), v1::SEVERITY_MAJOR);
    EXPECT_FALSE((*store)->FindAlertPatient("al-p-0")->has_value());
    EXPECT_TRUE((*store)->FindAlertPatient("al-other-0")->has_value());
    // Checkpointed: the log no longer holds the erased frames.
    EXPECT_EQ(FileBytes(path + "-wal").find("Erasable-alert-summary"), std::string::npos);
  }
  const std::string bytes = FileBytes(path) + FileBytes(path + "-wal");
  for (const char* text : {"Erasable-condition-text", "Erasable-alert-summary", "erasable-drug"}) {
    EXPECT_EQ(bytes.find(text), std::string::npos) << text;
  }
}

TEST(SqliteStoreTest, NewerFileIsRefused) {
  TempDir dir;
  const std::string path = dir.path() + "/new.db";
  Exec(path, "PRAGMA user_version = 99;");
  auto store = SqliteStore::Open(path);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("newer"), std::string::npos);
}

TEST(SqliteStoreTest, AuditTrailIsAppendOnly) {
  TempDir dir;
  const std::string path = dir.path() + "/a.db";
  {
    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok());
    v1::AuditEvent e;
    e.set_action(v1::AUDIT_ACTION_READ);
    e.set_agent("someone");
    ASSERT_TRUE((*store)->AppendAudit({e, e}, Store::AuditDurability::kSynced).ok());
    auto read = (*store)->ReadAudit(0, 10);
    ASSERT_TRUE(read.ok());
    ASSERT_EQ(read->size(), 2u);
    EXPECT_EQ((*read)[1].id(), 2);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "DELETE FROM audit", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "UPDATE audit SET agent = 'x'", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// `message` serialized as a build before vigil.v1 was fixed wrote it: the
// given (field number, text) as strings, the fixed fields left out.
std::string LegacyHex(google::protobuf::Message* message, std::vector<std::pair<int, std::string>> strings) {
  auto* unknown = message->GetReflection()->MutableUnknownFields(message);
  for (const auto& [number, text] : strings) {
    unknown->AddLengthDelimited(number, text);
  }
  const std::string bytes = message->SerializeAsString();
  std::string hex;
  for (char c : bytes) {
    absl::StrAppend(&hex, absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
  }
  return hex;
}

TEST(SqliteStoreTest, MigrationToFixedV1MovesStoredTimesAndOriginsIntoTheirNewFields) {
  TempDir dir;
  const std::string path = dir.path() + "/v.db";
  {
    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Commit(PutChange("a", 0, 1)).ok());
  }
  // Rewrite the stored alert and event as schema 4 held them.
  store::v1::StoredAlert alert;
  alert.mutable_record()->mutable_alert()->set_id("al-a-0");
  alert.mutable_record()->set_status(v1::ALERT_STATUS_ACTIVE);
  alert.mutable_record()->set_patient_id("a");
  auto* alert_message = alert.mutable_record()->mutable_alert();
  auto* history = alert.mutable_record()->add_history();
  history->set_event_number(1);
  history->set_type(v1::ALERT_EVENT_TYPE_RAISED);
  LegacyHex(history, {{3, "2026-11-27T04:27:10.5Z"}});
  LegacyHex(alert_message, {{13, "ddinter"}});
  const std::string alert_hex = LegacyHex(&alert, {});
  v1::AlertEvent event;
  event.set_type(v1::ALERT_EVENT_TYPE_ACKNOWLEDGED);
  event.set_patient_id("a");
  event.mutable_alert()->set_id("al-a-0");
  LegacyHex(event.mutable_acknowledgement(), {{5, "2026-11-27T05:00:00Z"}});
  LegacyHex(event.mutable_alert(), {{13, "curated"}});
  const std::string event_hex = LegacyHex(&event, {{4, "2026-11-27T04:27:10.5Z"}});
  Exec(path, absl::StrCat("UPDATE alerts SET data = X'", alert_hex, "'; UPDATE events SET data = X'", event_hex,
                          "'; DROP TABLE cds_cards; PRAGMA user_version = 4;")
                 .c_str());

  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->schema_version(), SqliteStore::kSchemaVersion);
  auto events = (*store)->ReadEvents(0, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  const v1::AlertEvent& read = (*events)[0].event;
  EXPECT_EQ(Rfc3339(FromTimestamp(read.event_time())), "2026-11-27T04:27:10.5+00:00");
  EXPECT_EQ(Rfc3339(FromTimestamp(read.acknowledgement().acknowledge_time())), "2026-11-27T05:00:00+00:00");
  EXPECT_EQ(read.alert().rule_origin(), v1::RULE_ORIGIN_CURATED);
  EXPECT_EQ(read.GetReflection()->GetUnknownFields(read).field_count(), 0);
  auto state = (*store)->LoadPatient("a");
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(state->alerts.size(), 1u);
  const v1::AlertRecord& record = state->alerts[0].record();
  EXPECT_EQ(record.alert().rule_origin(), v1::RULE_ORIGIN_IMPORTED);
  ASSERT_EQ(record.history_size(), 1);
  EXPECT_EQ(Rfc3339(FromTimestamp(record.history(0).event_time())), "2026-11-27T04:27:10.5+00:00");
  EXPECT_EQ(record.alert().GetReflection()->GetUnknownFields(record.alert()).field_count(), 0);
}

}  // namespace
}  // namespace vigil
