// The alert feed's domain under real threads, without gRPC: writers put
// patients through the registry (real SQLite store) while subscribers, some
// replaying from the first event and some live, pull messages on threads of
// their own, woken by the hub's notify callback. Every subscriber must see
// one gapless, repeat-free sequence, whether it takes one event per message
// or batches. Run under ThreadSanitizer by
// scripts/sanitize.sh tsan, where every lock and thread here is visible.
#include <algorithm>
#include <atomic>
#include <optional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/feed/event_hub.h"
#include "server/feed/registry.h"
#include "server/kb/holder.h"
#include "server/kb/loader.h"
#include "server/store/sqlite_store.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::TempDir;

// Pulls one subscription's messages on its own thread until it finishes.
class Puller {
 public:
  // `start`: the event number the subscription starts after; `max_batch`:
  // the most events it asked for in one message.
  Puller(EventHub* hub, std::shared_ptr<Subscription> sub, int64_t start, size_t max_batch)
      : hub_(hub), sub_(std::move(sub)), start_(start), max_batch_(max_batch) {
    sub_->Attach(
        [this] {
          absl::MutexLock lock(&mu_);
          kicked_ = true;
        },
        [] {});
    thread_ = std::thread([this] { Run(); });
  }
  // Call after the subscription was finished (CloseAll).
  ~Puller() {
    thread_.join();
    sub_->Detach();
    hub_->Unsubscribe(sub_.get());
  }
  int64_t start() const { return start_; }
  std::vector<int64_t> numbers() {
    absl::MutexLock lock(&mu_);
    return numbers_;
  }
  absl::Status finish_status() {
    absl::MutexLock lock(&mu_);
    return finish_;
  }
  size_t max_batch() const { return max_batch_; }
  // The most events one write carried.
  size_t largest_write() {
    absl::MutexLock lock(&mu_);
    return largest_write_;
  }

 private:
  void Run() {
    while (true) {
      Subscription::Action action = sub_->Next();
      if (action.kind == Subscription::Action::Kind::kFinish) {
        absl::MutexLock lock(&mu_);
        finish_ = action.status;
        return;
      }
      if (action.kind == Subscription::Action::Kind::kWrite) {
        sub_->Delivered(action.last_event_number());
        absl::MutexLock lock(&mu_);
        largest_write_ = std::max(largest_write_, action.messages.size());
        for (const auto& message : action.messages) {
          if (!message->heartbeat) {
            numbers_.push_back(message->event_number);
          }
        }
        continue;
      }
      // Nothing queued: wait for the hub's notification (or a moment).
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&kicked_), absl::Milliseconds(50));
      kicked_ = false;
    }
  }

  EventHub* const hub_;
  std::shared_ptr<Subscription> sub_;
  const int64_t start_;
  const size_t max_batch_;
  absl::Mutex mu_;
  size_t largest_write_ ABSL_GUARDED_BY(mu_) = 0;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int64_t> numbers_ ABSL_GUARDED_BY(mu_);
  absl::Status finish_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

TEST(FeedConcurrencyTest, WritersAndSubscribersOnManyThreadsSeeOneGaplessOrder) {
  TempDir dir;
  auto store = SqliteStore::Open(dir.path() + "/v.db");
  ASSERT_TRUE(store.ok()) << store.status();
  KnowledgeBaseSpec spec;
  spec.curated.push_back(VIGIL_BUNDLED_KB);
  auto kb = LoadKnowledgeBase(spec);
  ASSERT_TRUE(kb.ok()) << kb.status();
  KnowledgeBaseHolder holder(*kb);
  EventHub hub(store->get(), EventHub::Options{/*max_queue=*/100000, /*page_size=*/64});
  ASSERT_TRUE(hub.Start().ok());
  PatientRegistry registry(store->get(), &holder, &hub);

  constexpr int kWriters = 3;
  constexpr int kWritesEach = 30;
  std::atomic<int64_t> last_number{0};
  std::vector<std::unique_ptr<Puller>> pullers;
  auto subscribe = [&](std::optional<int64_t> after, size_t max_batch = 1) {
    // A live subscription starts after the latest event at that moment.
    const int64_t start = after.has_value() ? *after : hub.latest();
    auto sub = hub.Subscribe(EventFilter{}, after, absl::Seconds(300), max_batch);
    ASSERT_TRUE(sub.ok()) << sub.status();
    pullers.push_back(std::make_unique<Puller>(&hub, *std::move(sub), std::max(start, after.value_or(0)), max_batch));
  };
  subscribe(0);
  subscribe(0, 7);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int k = 0; k < kWritesEach; ++k) {
        v1::Patient p;
        p.set_id(absl::StrCat("concurrent-", w));
        p.add_medications()->set_drug("silperisone");
        if (k % 2 == 0) {
          p.add_medications()->set_drug("diazepam");
          p.add_medications()->set_drug("tramadol");
        }
        auto put = registry.PutPatient(p);
        ASSERT_TRUE(put.ok()) << put.status();
        int64_t seen = last_number.load();
        while (put->last_event_number() > seen && !last_number.compare_exchange_weak(seen, put->last_event_number())) {
        }
      }
    });
  }
  // Subscribers join while the writers run: replaying from the start, from
  // the middle, and live.
  absl::SleepFor(absl::Milliseconds(20));
  subscribe(0);
  subscribe(last_number.load() / 2);
  subscribe(std::nullopt);
  subscribe(0, 1000);
  subscribe(last_number.load() / 2, 3);
  subscribe(std::nullopt, 50);
  for (auto& t : writers) {
    t.join();
  }
  const int64_t last = last_number.load();
  ASSERT_GT(last, kWriters * kWritesEach);
  // Every subscriber reaches the last event.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (auto& p : pullers) {
    while (p->start() < last && (p->numbers().empty() || p->numbers().back() < last) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  hub.CloseAll(absl::UnavailableError("test over"));
  // Each saw exactly the events after its start, in order: start+1 .. last.
  for (size_t i = 0; i < pullers.size(); ++i) {
    const auto numbers = pullers[i]->numbers();
    ASSERT_EQ(numbers.size(), static_cast<size_t>(last - pullers[i]->start())) << "subscriber " << i;
    for (size_t k = 0; k < numbers.size(); ++k) {
      ASSERT_EQ(numbers[k], pullers[i]->start() + static_cast<int64_t>(k) + 1) << "subscriber " << i << " at " << k;
    }
    EXPECT_LE(pullers[i]->largest_write(), pullers[i]->max_batch()) << "subscriber " << i;
  }
  pullers.clear();  // joins each puller; CloseAll finished them
}

// Two servers sharing one store (replicas): each has its own registry and
// hub; each hub learns the other's commits from the store, when its own
// commit comes after them or when it follows the store. A subscriber of
// either hub sees every event of both, once, in number order.
TEST(FeedConcurrencyTest, ReplicasSharingAStoreEachDeliverEveryEventInOrder) {
  TempDir dir;
  auto store = SqliteStore::Open(dir.path() + "/v.db");
  ASSERT_TRUE(store.ok()) << store.status();
  KnowledgeBaseSpec spec;
  spec.curated.push_back(VIGIL_BUNDLED_KB);
  auto kb = LoadKnowledgeBase(spec);
  ASSERT_TRUE(kb.ok()) << kb.status();
  KnowledgeBaseHolder holder(*kb);
  EventHub hub_a(store->get(), EventHub::Options{100000, 16});
  EventHub hub_b(store->get(), EventHub::Options{100000, 16});
  ASSERT_TRUE(hub_a.Start().ok());
  ASSERT_TRUE(hub_b.Start().ok());
  PatientRegistry registry_a(store->get(), &holder, &hub_a);
  PatientRegistry registry_b(store->get(), &holder, &hub_b);

  std::vector<std::unique_ptr<Puller>> pullers;
  for (EventHub* hub : {&hub_a, &hub_b}) {
    for (size_t batch : {size_t{1}, size_t{5}}) {
      auto sub = hub->Subscribe(EventFilter{}, 0, absl::Seconds(300), batch);
      ASSERT_TRUE(sub.ok()) << sub.status();
      pullers.push_back(std::make_unique<Puller>(hub, *std::move(sub), 0, batch));
    }
  }
  std::atomic<bool> writing{true};
  // The store follower of each replica (LISTEN/NOTIFY or polling in the server).
  std::thread follower([&] {
    while (writing.load()) {
      EXPECT_TRUE(hub_a.CatchUpWithStore().ok());
      EXPECT_TRUE(hub_b.CatchUpWithStore().ok());
      absl::SleepFor(absl::Milliseconds(3));
    }
  });
  std::vector<std::thread> writers;
  std::atomic<int64_t> last_number{0};
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      PatientRegistry& registry = w % 2 == 0 ? registry_a : registry_b;
      for (int k = 0; k < 20; ++k) {
        v1::Patient p;
        p.set_id(absl::StrCat("replica-", w));
        p.add_medications()->set_drug("silperisone");
        if (k % 2 == 0) {
          p.add_medications()->set_drug("diazepam");
        }
        auto put = registry.PutPatient(p);
        ASSERT_TRUE(put.ok()) << put.status();
        int64_t seen = last_number.load();
        while (put->last_event_number() > seen && !last_number.compare_exchange_weak(seen, put->last_event_number())) {
        }
      }
    });
  }
  for (auto& t : writers) {
    t.join();
  }
  const int64_t last = last_number.load();
  ASSERT_GT(last, 40);
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (auto& p : pullers) {
    while ((p->numbers().empty() || p->numbers().back() < last) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  writing = false;
  follower.join();
  hub_a.CloseAll(absl::UnavailableError("test over"));
  hub_b.CloseAll(absl::UnavailableError("test over"));
  for (size_t i = 0; i < pullers.size(); ++i) {
    const auto numbers = pullers[i]->numbers();
    ASSERT_EQ(numbers.size(), static_cast<size_t>(last)) << "subscriber " << i;
    for (size_t k = 0; k < numbers.size(); ++k) {
      ASSERT_EQ(numbers[k], static_cast<int64_t>(k) + 1) << "subscriber " << i << " at " << k;
    }
  }
  pullers.clear();
}

}  // namespace
}  // namespace vigil
