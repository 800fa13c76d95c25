// The Store contract (server/store/store.h), run against every backend:
// SQLite (a file) and PostgreSQL (a throwaway cluster, tests/pg_cluster.h).
// Then what only a shared PostgreSQL database shows: several stores
// committing at once, schema versions, and a lost connection.
#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/store/open_store.h"
#include "server/store/postgres_store.h"
#include "server/store/sqlite_store.h"
#include "tests/pg_cluster.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::PgCluster;
using ::vigil::testing::TempDir;

// One cluster for the tests of a process, started when first needed and
// stopped when the tests end.
std::unique_ptr<PgCluster>& SharedClusterSlot() {
  static auto* slot = new std::unique_ptr<PgCluster>();
  return *slot;
}

absl::StatusOr<PgCluster*> SharedCluster() {
  static absl::Status failed = absl::OkStatus();
  auto& slot = SharedClusterSlot();
  if (slot == nullptr && failed.ok()) {
    auto created = PgCluster::Create();
    if (!created.ok()) {
      failed = created.status();
    } else {
      slot = *std::move(created);
    }
  }
  if (!failed.ok()) {
    return failed;
  }
  return slot.get();
}

class SharedClusterEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { SharedClusterSlot().reset(); }
};
[[maybe_unused]] ::testing::Environment* const kSharedClusterEnvironment =
    ::testing::AddGlobalTestEnvironment(new SharedClusterEnvironment);

// A change that stores patient `id` with `events` raised alerts.
PatientChange PutChange(const std::string& id, int64_t revision, int events, const std::string& tag = "") {
  PatientChange change;
  change.patient_id = id;
  change.expected_revision = revision;
  change.patient.set_id(id);
  for (int i = 0; i < events; ++i) {
    store::v1::StoredAlert alert;
    alert.mutable_record()->mutable_alert()->set_id(absl::StrCat("al-", id, tag, "-", i));
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

// A fresh PostgreSQL database of the shared cluster: its name, or the
// reason there is none.
absl::StatusOr<std::string> FreshDatabase() {
  auto cluster = SharedCluster();
  if (!cluster.ok()) {
    return cluster.status();
  }
  return (*cluster)->CreateDatabase();
}

class StoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      location_ = "sqlite:" + dir_.path() + "/v.db";
    } else {
      auto database = FreshDatabase();
      ASSERT_TRUE(database.ok()) << database.status();
      location_ = (*SharedCluster())->Uri(*database);
    }
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }

  // Opens the test's store through OpenStore, as the server does.
  std::unique_ptr<Store> Open() {
    auto opened = OpenStore(location_);
    EXPECT_TRUE(opened.ok()) << opened.status();
    return opened.ok() ? *std::move(opened) : nullptr;
  }

  TempDir dir_;
  std::string location_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreContractTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& backend) { return backend.param; });

TEST_P(StoreContractTest, NewStoreHasTheLatestSchemaAndIsHealthy) {
  const int latest = GetParam() == "sqlite" ? SqliteStore::kSchemaVersion : PostgresStore::kSchemaVersion;
  EXPECT_EQ(StoreSchemaVersion(*store_), latest);
  EXPECT_TRUE(store_->Health().ok());
  EXPECT_EQ(*store_->LatestEventNumber(), 0);
  auto missing = store_->LoadPatient("nobody");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->exists);
  EXPECT_EQ(missing->revision, 0);
  EXPECT_TRUE(missing->alerts.empty());
}

TEST_P(StoreContractTest, PutLoadAndStaleRevisionsAreAborted) {
  PatientChange put = PutChange("a", 0, 1);
  put.patient.set_birth_date("1950-01-01");
  ASSERT_TRUE(store_->Commit(put).ok());
  auto state = store_->LoadPatient("a");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_TRUE(state->exists);
  EXPECT_EQ(state->revision, 1);
  EXPECT_EQ(state->patient.birth_date(), "1950-01-01");
  ASSERT_EQ(state->alerts.size(), 1u);

  // Computed from revision 0, which is no longer the stored one.
  auto stale = store_->Commit(PutChange("a", 0, 1));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted) << stale.status();
  EXPECT_EQ(store_->Commit(PutChange("a", 7, 1)).status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store_->Commit(PutChange("new", 3, 1)).status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(*store_->LatestEventNumber(), 1);
  EXPECT_FALSE(store_->LoadPatient("new")->exists);

  // An alerts-only change keeps the context and moves the revision.
  PatientChange alerts_only = PutChange("a", 1, 1, "-second");
  alerts_only.op = PatientChange::Op::kAlertsOnly;
  alerts_only.patient.set_birth_date("1999-09-09");
  auto committed = store_->Commit(alerts_only);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(committed->last_event_number, 2);
  state = store_->LoadPatient("a");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->revision, 2);
  EXPECT_EQ(state->patient.birth_date(), "1950-01-01");
  EXPECT_EQ(state->alerts.size(), 2u);
}

TEST_P(StoreContractTest, EventNumbersRiseByOneAndHistoryIsRecorded) {
  auto first = store_->Commit(PutChange("a", 0, 2));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->last_event_number, 2);
  auto second = store_->Commit(PutChange("b", 0, 3));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->last_event_number, 5);
  ASSERT_EQ(second->events.size(), 3u);
  EXPECT_EQ(second->events[0].number, 3);
  EXPECT_GT(second->events[0].event.event_time().seconds(), 0);
  auto events = store_->ReadEvents(0, 100);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 5u);
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].number, static_cast<int64_t>(i + 1));
  }
  EXPECT_EQ((*events)[2].event.alert().id(), "al-b-0");
  auto state = store_->LoadPatient("b");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->revision, 1);
  ASSERT_EQ(state->alerts.size(), 3u);
  ASSERT_EQ(state->alerts[0].record().history_size(), 1);
  EXPECT_EQ(state->alerts[0].record().history(0).event_number(), 3);
  // A change without events leaves the numbering where it was.
  PatientChange quiet = PutChange("b", 1, 0);
  auto committed = store_->Commit(quiet);
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ(committed->last_event_number, 5);
  EXPECT_TRUE(committed->events.empty());
}

TEST_P(StoreContractTest, ReadEventsPagesInOrder) {
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE(store_->Commit(PutChange(id, 0, 4)).ok());
  }
  EXPECT_EQ(*store_->LatestEventNumber(), 12);
  int64_t after = 0;
  std::vector<int64_t> pages;
  for (;;) {
    auto page = store_->ReadEvents(after, 5);
    ASSERT_TRUE(page.ok()) << page.status();
    if (page->empty()) {
      break;
    }
    pages.push_back(static_cast<int64_t>(page->size()));
    for (const auto& e : *page) {
      EXPECT_EQ(e.number, ++after);
    }
  }
  EXPECT_EQ(pages, (std::vector<int64_t>{5, 5, 2}));
  EXPECT_EQ(after, 12);
  EXPECT_TRUE(store_->ReadEvents(12, 5)->empty());
  EXPECT_TRUE(store_->ReadEvents(3, 0)->empty());
  EXPECT_EQ(store_->ReadEvents(10, 100)->front().event.patient_id(), "c");
}

TEST_P(StoreContractTest, AlertsLoadInByteOrderOfTheirIds) {
  PatientChange put = PutChange("p", 0, 0);
  for (const char* id : {"al-b", "al-B", "al-_", "al-a"}) {
    store::v1::StoredAlert alert;
    alert.mutable_record()->mutable_alert()->set_id(id);
    put.alerts.push_back(alert);
  }
  ASSERT_TRUE(store_->Commit(put).ok());
  auto state = store_->LoadPatient("p");
  ASSERT_TRUE(state.ok());
  std::vector<std::string> ids;
  for (const auto& alert : state->alerts) {
    ids.push_back(alert.record().alert().id());
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"al-B", "al-_", "al-a", "al-b"}));
}

TEST_P(StoreContractTest, DeleteErasesTheContextAlertsAndEventContentLeavingTombstones) {
  PatientChange put = PutChange("p", 0, 2);
  put.patient.add_conditions()->mutable_code()->set_display("Erasable-condition-text");
  for (auto& event : put.events) {
    event.mutable_alert()->set_summary("Erasable-alert-summary");
    event.mutable_alert()->add_drug_ids("erasable-drug");
    event.mutable_alert()->set_kind(v1::ALERT_KIND_DRUG_INTERACTION);
    event.mutable_alert()->set_severity(v1::SEVERITY_MAJOR);
  }
  ASSERT_TRUE(store_->Commit(put).ok());
  ASSERT_TRUE(store_->Commit(PutChange("other", 0, 1)).ok());

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
  auto committed = store_->Commit(del);
  ASSERT_TRUE(committed.ok()) << committed.status();
  ASSERT_EQ(committed->events.size(), 1u);
  EXPECT_EQ(committed->events[0].number, 4);
  EXPECT_TRUE(committed->events[0].event.erased());
  EXPECT_TRUE(committed->events[0].event.alert().summary().empty());

  auto state = store_->LoadPatient("p");
  ASSERT_TRUE(state.ok());
  EXPECT_FALSE(state->exists);
  EXPECT_TRUE(state->alerts.empty());
  EXPECT_EQ(state->revision, 2);
  auto events = store_->ReadEvents(0, 100);
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
  EXPECT_EQ((*events)[0].event.alert().kind(), v1::ALERT_KIND_DRUG_INTERACTION);
  // Stored again after the deletion: from the revision the deletion left.
  EXPECT_EQ(store_->Commit(PutChange("p", 0, 0)).status().code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(store_->Commit(PutChange("p", 2, 0)).ok());
}

TEST_P(StoreContractTest, FindAlertPatient) {
  ASSERT_TRUE(store_->Commit(PutChange("a", 0, 2)).ok());
  auto found = store_->FindAlertPatient("al-a-1");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->value_or(""), "a");
  auto missing = store_->FindAlertPatient("al-none");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StoreContractTest, AuditIsAppendedAndReadBack) {
  EXPECT_TRUE(store_->AppendAudit({}, Store::AuditDurability::kSynced).ok());
  std::vector<v1::AuditEvent> batch;
  for (int i = 0; i < 3; ++i) {
    v1::AuditEvent e;
    e.set_action(i == 0 ? v1::AUDIT_ACTION_READ : v1::AUDIT_ACTION_EXECUTE);
    e.set_method("vigil.v1.Patients/GetPatient");
    e.set_agent("clinician");
    e.set_peer("ipv4:10.0.0.1:5555");
    e.set_patient_id(absl::StrCat("p", i));
    e.set_outcome(i == 2 ? google::rpc::NOT_FOUND : google::rpc::OK);
    e.set_alert_id("al-1");
    e.set_certificate_subject("CN=ward");
    e.mutable_access_time()->set_seconds(1767225600 + i);
    batch.push_back(e);
  }
  ASSERT_TRUE(store_->AppendAudit(batch, Store::AuditDurability::kSynced).ok());
  ASSERT_TRUE(store_->AppendAudit({batch[0]}, Store::AuditDurability::kSynced).ok());
  auto read = store_->ReadAudit(0, 10);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 4u);
  for (size_t i = 0; i < read->size(); ++i) {
    EXPECT_EQ((*read)[i].id(), static_cast<int64_t>(i + 1));
    EXPECT_GT((*read)[i].record_time().seconds(), 0);
  }
  const v1::AuditEvent& third = (*read)[2];
  EXPECT_EQ(third.action(), v1::AUDIT_ACTION_EXECUTE);
  EXPECT_EQ(third.method(), "vigil.v1.Patients/GetPatient");
  EXPECT_EQ(third.agent(), "clinician");
  EXPECT_EQ(third.peer(), "ipv4:10.0.0.1:5555");
  EXPECT_EQ(third.patient_id(), "p2");
  EXPECT_EQ(third.outcome(), google::rpc::NOT_FOUND);
  EXPECT_EQ(third.alert_id(), "al-1");
  EXPECT_EQ(third.certificate_subject(), "CN=ward");
  EXPECT_EQ(third.access_time().seconds(), 1767225602);
  EXPECT_EQ((*read)[0].action(), v1::AUDIT_ACTION_READ);
  auto page = store_->ReadAudit(1, 2);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].id(), 2);
  EXPECT_EQ((*page)[1].id(), 3);
}

// Records committed without their own flush (the audit writer's usual case)
// read back like synced ones, in order, with ids rising by one, across more
// rows than one statement carries; SyncAudit then brings them to disk.
TEST_P(StoreContractTest, CommittedAuditRecordsAreReadBackAndSynced) {
  std::vector<v1::AuditEvent> batch;
  for (int i = 0; i < 300; ++i) {
    v1::AuditEvent e;
    e.set_action(v1::AUDIT_ACTION_EXECUTE);
    e.set_method("vigil.v1.DecisionSupport/CheckMedicationsUnary");
    e.set_patient_id(absl::StrCat("p", i));
    e.set_outcome(google::rpc::OK);
    batch.push_back(e);
  }
  ASSERT_TRUE(store_->AppendAudit(batch, Store::AuditDurability::kCommitted).ok());
  ASSERT_TRUE(store_->AppendAudit({batch[7]}, Store::AuditDurability::kSynced).ok());
  ASSERT_TRUE(store_->AppendAudit({batch[8]}, Store::AuditDurability::kCommitted).ok());
  EXPECT_TRUE(store_->SyncAudit().ok());
  auto read = store_->ReadAudit(0, 1000);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 302u);
  for (size_t i = 0; i < read->size(); ++i) {
    EXPECT_EQ((*read)[i].id(), static_cast<int64_t>(i + 1));
    EXPECT_EQ((*read)[i].method(), "vigil.v1.DecisionSupport/CheckMedicationsUnary");
  }
  EXPECT_EQ((*read)[0].patient_id(), "p0");
  EXPECT_EQ((*read)[299].patient_id(), "p299");
  EXPECT_EQ((*read)[300].patient_id(), "p7");
  EXPECT_EQ((*read)[301].patient_id(), "p8");
  // A patient write after a deferred append is still a synced commit, and
  // the store still works as before.
  ASSERT_TRUE(store_->Commit(PutChange("a", 0, 1)).ok());
  store_.reset();
  auto reopened = Open();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->ReadAudit(0, 1000)->size(), 302u);
}

ShownCard Card(const std::string& uuid, const std::string& patient_id, const std::string& select_key,
               const std::string& fingerprint, absl::Time expires) {
  ShownCard card;
  card.uuid = uuid;
  card.patient_id = patient_id;
  card.user_id = "Practitioner/example";
  card.select_key = select_key;
  card.fingerprint = fingerprint;
  card.alert.set_id(absl::StrCat("al-", uuid));
  card.alert.set_summary("Warfarin with ibuprofen: bleeding risk.");
  card.alert.add_drug_ids("warfarin");
  card.expires = expires;
  return card;
}

// Cards shown by CDS Hooks are found by uuid and by select key until they
// expire, read back whole, replaced by uuid, forgotten once expired, and
// erased with their patient, as patient data.
TEST_P(StoreContractTest, CardsAreRememberedUntilTheyExpireAndErasedWithTheirPatient) {
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  const absl::Time expires = t0 + absl::Hours(2);
  ASSERT_TRUE(store_->RememberCards({Card("u1", "p", "user|p|enc|al-1", "fp-1", expires),
                                     Card("u2", "p", "", "fp-2", expires), Card("u3", "q", "", "fp-3", expires)},
                                    t0)
                  .ok());
  auto found = store_->FindCard("u1", t0 + absl::Minutes(1));
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->uuid, "u1");
  EXPECT_EQ((*found)->patient_id, "p");
  EXPECT_EQ((*found)->user_id, "Practitioner/example");
  EXPECT_EQ((*found)->select_key, "user|p|enc|al-1");
  EXPECT_EQ((*found)->fingerprint, "fp-1");
  EXPECT_EQ((*found)->alert.id(), "al-u1");
  EXPECT_EQ((*found)->alert.summary(), "Warfarin with ibuprofen: bleeding risk.");
  EXPECT_EQ((*found)->expires, expires);
  EXPECT_FALSE(store_->FindCard("unknown", t0)->has_value());
  // Expired: not found, though not yet deleted.
  EXPECT_FALSE(store_->FindCard("u1", expires)->has_value());

  // The select key names the fingerprint remembered last.
  EXPECT_EQ(store_->SelectFingerprint("user|p|enc|al-1", t0)->value_or(""), "fp-1");
  ASSERT_TRUE(
      store_->RememberCards({Card("u4", "p", "user|p|enc|al-1", "fp-4", expires + absl::Minutes(5))}, t0).ok());
  EXPECT_EQ(store_->SelectFingerprint("user|p|enc|al-1", t0)->value_or(""), "fp-4");
  EXPECT_FALSE(store_->SelectFingerprint("user|p|enc|al-1", expires + absl::Minutes(5))->has_value());

  // The same uuid again replaces the card.
  ASSERT_TRUE(store_->RememberCards({Card("u2", "p", "", "fp-2b", expires)}, t0).ok());
  EXPECT_EQ(store_->FindCard("u2", t0)->value().fingerprint, "fp-2b");

  // Writing cards later deletes those expired by then: a lookup as of an
  // earlier time no longer finds them.
  ASSERT_TRUE(store_->RememberCards({Card("u5", "q", "", "fp-5", expires + absl::Hours(2))}, expires).ok());
  EXPECT_FALSE(store_->FindCard("u1", t0)->has_value());
  EXPECT_FALSE(store_->FindCard("u3", t0)->has_value());
  EXPECT_TRUE(store_->FindCard("u4", t0)->has_value());

  // Deleting a stored patient erases its cards; ForgetCards erases those
  // of a patient the store holds nothing else of.
  ASSERT_TRUE(store_->Commit(PutChange("p", 0, 1)).ok());
  PatientChange del;
  del.op = PatientChange::Op::kDelete;
  del.patient_id = "p";
  del.expected_revision = 1;
  ASSERT_TRUE(store_->Commit(del).ok());
  EXPECT_FALSE(store_->FindCard("u4", t0)->has_value());
  EXPECT_TRUE(store_->FindCard("u5", t0)->has_value());
  auto forgot = store_->ForgetCards("q");
  ASSERT_TRUE(forgot.ok()) << forgot.status();
  EXPECT_EQ(*forgot, 1);
  EXPECT_FALSE(store_->FindCard("u5", t0)->has_value());
  EXPECT_EQ(*store_->ForgetCards("q"), 0);

  // Remembered cards survive a reopen (a restart of the server).
  ASSERT_TRUE(store_->RememberCards({Card("u6", "r", "", "fp-6", expires)}, t0).ok());
  store_.reset();
  store_ = Open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->FindCard("u6", t0)->value_or(ShownCard()).fingerprint, "fp-6");
}

TEST_P(StoreContractTest, ReopenedStoreSeesCommittedData) {
  ASSERT_TRUE(store_->Commit(PutChange("a", 0, 2)).ok());
  v1::AuditEvent e;
  e.set_agent("someone");
  ASSERT_TRUE(store_->AppendAudit({e}, Store::AuditDurability::kSynced).ok());
  store_.reset();
  auto reopened = Open();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(*reopened->LatestEventNumber(), 2);
  auto state = reopened->LoadPatient("a");
  ASSERT_TRUE(state.ok());
  EXPECT_TRUE(state->exists);
  EXPECT_EQ(state->revision, 1);
  EXPECT_EQ(reopened->ReadAudit(0, 10)->size(), 1u);
  auto next = reopened->Commit(PutChange("b", 0, 1));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->last_event_number, 3);
}

// PostgreSQL only: a database of the shared cluster per test.
class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto database = FreshDatabase();
    ASSERT_TRUE(database.ok()) << database.status();
    database_ = *database;
    uri_ = (*SharedCluster())->Uri(database_);
  }

  std::unique_ptr<PostgresStore> Open() {
    auto opened = PostgresStore::Open(uri_);
    EXPECT_TRUE(opened.ok()) << opened.status();
    return opened.ok() ? *std::move(opened) : nullptr;
  }

  std::string database_;
  std::string uri_;
};

TEST_F(PostgresStoreTest, UriWithoutPasswordKeepsEverythingButThePassword) {
  EXPECT_EQ(UriWithoutPassword("postgresql://vigil:s3cr%40t@db.example:5432/vigil?sslmode=require"),
            "postgresql://vigil@db.example:5432/vigil?sslmode=require");
  EXPECT_EQ(UriWithoutPassword("postgres://u@h/d?password=x&sslmode=disable"), "postgres://u@h/d?sslmode=disable");
  EXPECT_EQ(UriWithoutPassword("postgresql://h/d?password=x"), "postgresql://h/d");
  EXPECT_EQ(UriWithoutPassword("postgresql://u:p@h"), "postgresql://u@h");
  EXPECT_EQ(StoreNameForLog("/var/lib/vigil/vigil.db"), "/var/lib/vigil/vigil.db");
  EXPECT_EQ(StoreNameForLog("postgresql://u:p@h/d"), "postgresql://u@h/d");
}

TEST_F(PostgresStoreTest, OpenStoreChoosesTheBackendByItsName) {
  TempDir dir;
  auto sqlite = OpenStore(dir.path() + "/plain.db");
  ASSERT_TRUE(sqlite.ok()) << sqlite.status();
  EXPECT_NE(dynamic_cast<SqliteStore*>(sqlite->get()), nullptr);
  auto prefixed = OpenStore("sqlite:" + dir.path() + "/prefixed.db");
  ASSERT_TRUE(prefixed.ok()) << prefixed.status();
  EXPECT_NE(dynamic_cast<SqliteStore*>(prefixed->get()), nullptr);
  auto postgres = OpenStore(uri_);
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  EXPECT_NE(dynamic_cast<PostgresStore*>(postgres->get()), nullptr);
  auto bad = OpenStore("postgresql://u:secret@127.0.0.1/x?no_such_option=1");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  EXPECT_FALSE(absl::StrContains(bad.status().message(), "secret"));
}

TEST_F(PostgresStoreTest, UnreachableServerIsUnavailableWithoutThePassword) {
  const absl::Time start = absl::Now();
  auto opened = PostgresStore::Open("postgresql://u:secret@127.0.0.1:1/x?connect_timeout=2&sslmode=disable");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kUnavailable) << opened.status();
  EXPECT_TRUE(absl::StrContains(opened.status().message(), "cannot connect")) << opened.status();
  EXPECT_FALSE(absl::StrContains(opened.status().message(), "secret"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(PostgresStoreTest, NewerSchemaIsRefusedNamingBothVersions) {
  ASSERT_NE(Open(), nullptr);
  auto* cluster = *SharedCluster();
  ASSERT_TRUE(cluster->Exec(database_, "UPDATE schema_version SET version = 99").ok());
  auto opened = PostgresStore::Open(uri_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition) << opened.status();
  EXPECT_TRUE(absl::StrContains(opened.status().message(), "schema version 99")) << opened.status();
  EXPECT_TRUE(absl::StrContains(opened.status().message(),
                                absl::StrCat("this server's ", PostgresStore::kSchemaVersion)))
      << opened.status();
}

TEST_F(PostgresStoreTest, ReplicasOpeningTogetherMigrateOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> opened{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto store = PostgresStore::Open(uri_);
      EXPECT_TRUE(store.ok()) << store.status();
      if (store.ok() && (*store)->schema_version() == PostgresStore::kSchemaVersion) {
        opened.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(opened.load(), 4);
}

TEST_F(PostgresStoreTest, AuditTrailIsAppendOnly) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  v1::AuditEvent e;
  e.set_agent("someone");
  ASSERT_TRUE(store->AppendAudit({e, e}, Store::AuditDurability::kSynced).ok());
  auto* cluster = *SharedCluster();
  EXPECT_FALSE(cluster->Exec(database_, "DELETE FROM audit").ok());
  EXPECT_FALSE(cluster->Exec(database_, "UPDATE audit SET agent = 'x'").ok());
  EXPECT_FALSE(cluster->Exec(database_, "TRUNCATE audit").ok());
  EXPECT_EQ(store->ReadAudit(0, 10)->size(), 2u);
}

TEST_F(PostgresStoreTest, FailedCommitIsRolledBackAndLeavesNoGap) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit(PutChange("a", 0, 1)).ok());
  // The database refuses a NUL in text after the revision, the patient and
  // the event counter were written: all of it must be undone.
  PatientChange bad = PutChange("b", 0, 2);
  bad.events[1].mutable_alert()->set_id(std::string("al-\0-nul", 8));
  auto failed = store->Commit(bad);
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.status().code(), absl::StatusCode::kAborted) << failed.status();
  auto state = store->LoadPatient("b");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_FALSE(state->exists);
  EXPECT_EQ(state->revision, 0);
  EXPECT_EQ(*store->LatestEventNumber(), 1);
  auto next = store->Commit(PutChange("b", 0, 1));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->last_event_number, 2);
  EXPECT_EQ(store->ReadEvents(0, 10)->size(), 2u);
}

// What the writers of the concurrency test saw.
struct Outcomes {
  std::mutex mu;
  std::vector<std::vector<int64_t>> commits;  // each successful commit's event numbers
  std::vector<std::string> patients;          // the patient of each
  std::vector<std::string> failures;          // anything but OK or a conflict
  std::atomic<int> shared_committed{0};
  std::atomic<int> conflicts{0};
};

void RecordCommit(const std::string& patient, const absl::StatusOr<CommitResult>& result, Outcomes* out) {
  std::lock_guard<std::mutex> lock(out->mu);
  if (!result.ok()) {
    out->failures.push_back(absl::StrCat(patient, ": ", result.status().ToString()));
    return;
  }
  std::vector<int64_t> numbers;
  for (const auto& e : result->events) {
    numbers.push_back(e.number);
  }
  if (!numbers.empty() && numbers.back() != result->last_event_number) {
    out->failures.push_back(absl::StrCat(patient, ": last_event_number ", result->last_event_number));
  }
  out->commits.push_back(numbers);
  out->patients.push_back(patient);
}

// One writer: 50 new patients, and every fifth time a change of the patient
// all writers share, computed from the revision it loaded.
void Writer(Store* store, int thread, Outcomes* out) {
  for (int i = 0; i < 50; ++i) {
    const std::string id = absl::StrCat("p-", thread, "-", i);
    RecordCommit(id, store->Commit(PutChange(id, 0, 1 + i % 3)), out);
    if (i % 5 != 0) {
      continue;
    }
    auto state = store->LoadPatient("shared");
    if (!state.ok()) {
      RecordCommit("shared", state.status(), out);
      continue;
    }
    auto result = store->Commit(PutChange("shared", state->revision, 1, absl::StrCat("-", thread, "-", i)));
    if (result.status().code() == absl::StatusCode::kAborted) {
      out->conflicts.fetch_add(1);
    } else {
      if (result.ok()) {
        out->shared_committed.fetch_add(1);
      }
      RecordCommit("shared", result, out);
    }
  }
}

TEST_F(PostgresStoreTest, ConcurrentCommitsFromTwoStoresNumberEventsWithoutGapInCommitOrder) {
  auto first = Open();
  auto second = Open();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  Outcomes out;
  std::atomic<bool> writing{true};
  // A reader polling all along never sees a later number before an earlier.
  std::vector<std::string> reader_errors;
  std::thread reader([&] {
    auto store = Open();
    int64_t after = 0;
    for (bool last_pass = false; !last_pass;) {
      last_pass = !writing.load();
      auto page = store->ReadEvents(after, 1000);
      if (!page.ok()) {
        reader_errors.push_back(page.status().ToString());
        return;
      }
      for (const auto& e : *page) {
        if (e.number != after + 1) {
          reader_errors.push_back(absl::StrCat("read ", e.number, " after ", after));
        }
        after = e.number;
      }
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back(Writer, t % 2 == 0 ? first.get() : second.get(), t, &out);
  }
  for (auto& w : writers) {
    w.join();
  }
  writing.store(false);
  reader.join();
  EXPECT_TRUE(reader_errors.empty()) << reader_errors.front();
  EXPECT_TRUE(out.failures.empty()) << out.failures.size() << " failures, first: " << out.failures.front();

  // Every commit's events are contiguous, and together they are 1..N.
  std::vector<int64_t> all;
  for (const auto& numbers : out.commits) {
    for (size_t i = 1; i < numbers.size(); ++i) {
      EXPECT_EQ(numbers[i], numbers[i - 1] + 1);
    }
    all.insert(all.end(), numbers.begin(), numbers.end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_FALSE(all.empty());
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(all[i], static_cast<int64_t>(i + 1)) << "a gap or a repeat";
  }
  EXPECT_EQ(*first->LatestEventNumber(), static_cast<int64_t>(all.size()));
  auto events = second->ReadEvents(0, 100000);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), all.size());
  for (size_t c = 0; c < out.commits.size(); ++c) {
    for (const int64_t n : out.commits[c]) {
      EXPECT_EQ((*events)[static_cast<size_t>(n - 1)].event.patient_id(), out.patients[c]);
    }
  }
  auto shared = first->LoadPatient("shared");
  ASSERT_TRUE(shared.ok());
  EXPECT_EQ(shared->revision, out.shared_committed.load());
  EXPECT_EQ(out.shared_committed.load() + out.conflicts.load(), 4 * 10);
  RecordProperty("events", static_cast<int>(all.size()));
  RecordProperty("revision_conflicts", out.conflicts.load());
}

TEST(PostgresStoreConnectionTest, LostConnectionIsUnavailableAndTheNextCallsReconnect) {
  auto cluster = PgCluster::Create();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto database = (*cluster)->CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status();
  auto store = PostgresStore::Open((*cluster)->Uri(*database));
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Commit(PutChange("a", 0, 1)).ok());

  ASSERT_TRUE((*cluster)->Stop().ok());
  const absl::Time start = absl::Now();
  auto latest = (*store)->LatestEventNumber();
  EXPECT_EQ(latest.status().code(), absl::StatusCode::kUnavailable) << latest.status();
  EXPECT_TRUE(absl::StrContains(latest.status().message(), "database connection lost")) << latest.status();
  // While the server is down every call fails the same way, quickly.
  auto commit = (*store)->Commit(PutChange("b", 0, 1));
  EXPECT_EQ(commit.status().code(), absl::StatusCode::kUnavailable) << commit.status();
  EXPECT_TRUE(absl::StrContains(commit.status().message(), "database connection lost")) << commit.status();
  EXPECT_EQ((*store)->Health().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*store)->AppendAudit({v1::AuditEvent()}, Store::AuditDurability::kSynced).code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));

  ASSERT_TRUE((*cluster)->Start().ok());
  EXPECT_TRUE((*store)->Health().ok());
  auto next = (*store)->Commit(PutChange("b", 0, 1));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->last_event_number, 2);
  EXPECT_EQ((*store)->LoadPatient("a")->revision, 1);
  EXPECT_TRUE((*store)->AppendAudit({v1::AuditEvent()}, Store::AuditDurability::kSynced).ok());
}

}  // namespace
}  // namespace vigil
