// Tests of the audit trail's writer against a real SQLite store, with real
// write failures injected by a trigger that aborts every insert into the
// audit table (and is dropped to clear the fault).
#include "server/store/audit_log.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_store.h"
#include "tests/forwarding_store.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::Exec;
using ::vigil::testing::ForwardingStore;
using ::vigil::testing::TempDir;

void BreakAuditWrites(const std::string& path) {
  Exec(path, "CREATE TRIGGER injected_fault BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'injected fault'); END;");
}

void RepairAuditWrites(const std::string& path) { Exec(path, "DROP TRIGGER injected_fault;"); }

v1::AuditEvent Event(int i) {
  v1::AuditEvent event;
  event.set_method("vigil.v1.DecisionSupport/CheckMedications");
  event.set_action(v1::AUDIT_ACTION_EXECUTE);
  event.set_agent("test");
  event.set_patient_id(absl::StrCat("p", i));
  event.set_outcome(google::rpc::OK);
  return event;
}

std::vector<std::string> StoredPatients(Store& store) {
  std::vector<std::string> ids;
  auto events = store.ReadAudit(0, 1000);
  EXPECT_TRUE(events.ok()) << events.status();
  if (events.ok()) {
    for (const auto& e : *events) {
      ids.push_back(e.patient_id());
    }
  }
  return ids;
}

// Waits until `predicate` holds, at most 10 s.
template <typename Predicate>
bool Eventually(Predicate predicate) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!predicate()) {
    if (absl::Now() > deadline) {
      return false;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

TEST(AuditLogTest, RecordsNobodyWaitsForAreWrittenInOrder) {
  TempDir dir;
  auto store = SqliteStore::Open(dir.path() + "/v.db");
  ASSERT_TRUE(store.ok()) << store.status();
  AuditLog log(store->get());
  for (int i = 0; i < 50; ++i) {
    log.Record(Event(i), nullptr);
  }
  ASSERT_TRUE(log.WaitUntilWritten(absl::Seconds(10)));
  const auto ids = StoredPatients(**store);
  ASSERT_EQ(ids.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(ids[static_cast<size_t>(i)], absl::StrCat("p", i));
  }
  EXPECT_EQ(log.written(), 50);
  EXPECT_EQ(log.pending(), 0);
}

TEST(AuditLogTest, FailedWritesAreKeptAndRetriedUntilTheFaultClears) {
  TempDir dir;
  const std::string path = dir.path() + "/v.db";
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  BreakAuditWrites(path);
  AuditLog log(store->get());
  for (int i = 0; i < 10; ++i) {
    log.Record(Event(i), nullptr);
  }
  // A caller that waits hears of the failure, and is not held up by it.
  absl::Notification told;
  absl::Status told_status;
  log.Record(Event(10), [&](const absl::Status& status) {
    told_status = status;
    told.Notify();
  });
  ASSERT_TRUE(told.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(told_status.ok());
  EXPECT_NE(told_status.message().find("injected fault"), std::string::npos) << told_status;
  EXPECT_GT(log.failed(), 0);
  EXPECT_FALSE(log.WaitUntilWritten(absl::Milliseconds(200)));
  EXPECT_TRUE(StoredPatients(**store).empty());

  RepairAuditWrites(path);
  ASSERT_TRUE(log.WaitUntilWritten(absl::Seconds(10)));
  const auto ids = StoredPatients(**store);
  ASSERT_EQ(ids.size(), 11u);
  for (int i = 0; i <= 10; ++i) {
    EXPECT_EQ(ids[static_cast<size_t>(i)], absl::StrCat("p", i));
  }
  EXPECT_EQ(log.dropped(), 0);
}

TEST(AuditLogTest, BeyondThePendingLimitTheOldestGiveWayAndAreCounted) {
  TempDir dir;
  const std::string path = dir.path() + "/v.db";
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  BreakAuditWrites(path);
  AuditLog log(store->get(), /*max_pending=*/5);
  for (int i = 0; i < 20; ++i) {
    log.Record(Event(i), nullptr);
  }
  ASSERT_TRUE(Eventually([&] { return log.failed() > 0 && log.pending() == 5; }))
      << "failed " << log.failed() << ", pending " << log.pending();
  EXPECT_EQ(log.dropped(), 15);
  RepairAuditWrites(path);
  ASSERT_TRUE(log.WaitUntilWritten(absl::Seconds(10)));
  EXPECT_EQ(StoredPatients(**store), (std::vector<std::string>{"p15", "p16", "p17", "p18", "p19"}));
}

// The SQLite store, with every audit append's durability and every sync
// recorded.
class RecordingStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  absl::Status AppendAudit(const std::vector<v1::AuditEvent>& events, AuditDurability durability) override {
    {
      absl::MutexLock lock(&mu_);
      appends_.push_back(durability);
    }
    return ForwardingStore::AppendAudit(events, durability);
  }
  absl::Status SyncAudit() override {
    {
      absl::MutexLock lock(&mu_);
      appends_.push_back(std::nullopt);
    }
    return ForwardingStore::SyncAudit();
  }

  // Appends (their durability) and syncs (nullopt), in order.
  std::vector<std::optional<AuditDurability>> appends() const {
    absl::MutexLock lock(&mu_);
    return appends_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::optional<AuditDurability>> appends_ ABSL_GUARDED_BY(mu_);
};

constexpr std::optional<Store::AuditDurability> kSync = std::nullopt;
constexpr std::optional<Store::AuditDurability> kSynced = Store::AuditDurability::kSynced;
constexpr std::optional<Store::AuditDurability> kCommitted = Store::AuditDurability::kCommitted;

TEST(AuditLogTest, RecordsNobodyWaitsForAreCommittedThenSyncedWhenTheWriterIsIdle) {
  TempDir dir;
  auto real = SqliteStore::Open(dir.path() + "/v.db");
  ASSERT_TRUE(real.ok()) << real.status();
  RecordingStore store(*std::move(real));
  AuditLog log(&store);
  for (int i = 0; i < 5; ++i) {
    log.Record(Event(i), nullptr);
  }
  ASSERT_TRUE(log.WaitUntilWritten(absl::Seconds(10)));
  EXPECT_EQ(store.appends().front(), kCommitted);
  // Nothing else comes: the writer syncs what it committed, once.
  ASSERT_TRUE(Eventually([&] { return store.appends().back() == kSync; }));
  absl::SleepFor(AuditLog::kSyncInterval * 2);
  const auto appends = store.appends();
  EXPECT_EQ(std::count(appends.begin(), appends.end(), kSync), 1);
  EXPECT_EQ(std::count(appends.begin(), appends.end(), kSynced), 0);
  EXPECT_EQ(StoredPatients(store).size(), 5u);
}

TEST(AuditLogTest, ARecordItsCallerWaitsForIsSynced) {
  TempDir dir;
  auto real = SqliteStore::Open(dir.path() + "/v.db");
  ASSERT_TRUE(real.ok()) << real.status();
  RecordingStore store(*std::move(real));
  AuditLog log(&store);
  absl::Notification written;
  absl::Status written_status;
  log.Record(Event(0), [&](const absl::Status& status) {
    written_status = status;
    written.Notify();
  });
  ASSERT_TRUE(written.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(written_status.ok()) << written_status;
  EXPECT_EQ(store.appends(), (std::vector<std::optional<Store::AuditDurability>>{kSynced}));
}

TEST(AuditLogTest, UnderSteadyLoadACommitIsSyncedAtLeastOnceAnInterval) {
  TempDir dir;
  auto real = SqliteStore::Open(dir.path() + "/v.db");
  ASSERT_TRUE(real.ok()) << real.status();
  RecordingStore store(*std::move(real));
  {
    AuditLog log(&store);
    // A record every millisecond for five intervals: the writer is never idle.
    const absl::Time end = absl::Now() + AuditLog::kSyncInterval * 5;
    for (int i = 0; absl::Now() < end; ++i) {
      log.Record(Event(i), nullptr);
      absl::SleepFor(absl::Milliseconds(1));
    }
    ASSERT_TRUE(log.WaitUntilWritten(absl::Seconds(10)));
  }
  const auto appends = store.appends();
  // Synced commits (or syncs) come between the committed ones, and the last
  // word on the way out is a sync: nothing stays unsynced after shutdown.
  EXPECT_GE(std::count(appends.begin(), appends.end(), kSynced) + std::count(appends.begin(), appends.end(), kSync), 3)
      << appends.size() << " appends";
  EXPECT_GT(std::count(appends.begin(), appends.end(), kCommitted), 0);
  EXPECT_NE(appends.back(), kCommitted);
}

}  // namespace
}  // namespace vigil
