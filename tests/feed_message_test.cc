// The alert feed's wire-format messages: an event serialized once, and a
// batch built by concatenating those bytes, must be exactly what the
// generated classes would build and serialize; and a subscription hands its
// transport batches of at most the size it asked for, heartbeats alone.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/api/validation.h"
#include "server/common/timestamp.h"
#include "server/feed/event_hub.h"
#include "server/feed/feed_message.h"
#include "server/feed/registry.h"
#include "server/store/sqlite_store.h"
#include "tests/test_util.h"
#include "vigil/v1/alert_feed.pb.h"

namespace vigil {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::vigil::testing::TempDir;

// An event whose alert carries `detail_bytes` of text, so that sizes cross
// the one-, two- and three-byte varint lengths.
v1::AlertEvent MakeAlertEvent(const std::string& patient, size_t detail_bytes) {
  v1::AlertEvent event;
  event.set_type(v1::ALERT_EVENT_TYPE_RAISED);
  event.set_patient_id(patient);
  *event.mutable_event_time() = TimestampOfRfc3339("2026-11-27T04:27:10.123456Z");
  auto* alert = event.mutable_alert();
  alert->set_id(absl::StrCat("al-", patient));
  alert->set_kind(v1::ALERT_KIND_DRUG_INTERACTION);
  alert->set_severity(v1::SEVERITY_MAJOR);
  alert->add_drug_ids("silperisone");
  alert->add_drug_ids("diazepam");
  alert->set_summary("Silperisone with diazepam: additive CNS depression.");
  alert->set_detail(std::string(detail_bytes, 'd'));
  return event;
}

v1::SubscribeResponse Typed(int64_t number, const v1::AlertEvent& event) {
  v1::SubscribeResponse response;
  response.set_event_number(number);
  *response.mutable_alert_event() = event;
  return response;
}

TEST(FeedMessageTest, AnEventMessageIsWhatTheGeneratedClassesSerialize) {
  for (const int64_t number : {int64_t{1}, int64_t{127}, int64_t{128}, int64_t{5'000'000'000}}) {
    for (const size_t detail : {size_t{0}, size_t{100}, size_t{200}, size_t{20'000}}) {
      SCOPED_TRACE(absl::StrCat("event ", number, ", detail ", detail));
      const v1::AlertEvent event = MakeAlertEvent("p1", detail);
      const std::string bytes = SerializeEventMessage(number, event);
      EXPECT_EQ(bytes, Typed(number, event).SerializeAsString());
      v1::SubscribeResponse parsed;
      ASSERT_TRUE(parsed.ParseFromString(bytes));
      EXPECT_EQ(parsed.event_number(), number);
      EXPECT_TRUE(MessageDifferencer::Equals(parsed.alert_event(), event));
    }
  }
  // An empty event is still an event (the oneof case is set).
  v1::SubscribeResponse empty;
  ASSERT_TRUE(empty.ParseFromString(SerializeEventMessage(9, v1::AlertEvent())));
  EXPECT_TRUE(empty.has_alert_event());
}

TEST(FeedMessageTest, ABatchIsWhatTheGeneratedClassesSerialize) {
  // Sizes on both sides of the varint boundaries of the element lengths and
  // of the batch's own length (128 bytes, 16 KiB).
  const std::vector<size_t> details = {0, 60, 100, 130, 1000, 16'400, 3};
  std::vector<std::shared_ptr<const FeedMessage>> messages;
  v1::SubscribeResponse typed;
  int64_t number = 126;
  for (size_t i = 0; i < details.size(); ++i) {
    ++number;
    const v1::AlertEvent event = MakeAlertEvent(absl::StrCat("p", i), details[i]);
    messages.push_back(MakeEventMessage(number, event));
    *typed.mutable_batch()->add_events() = Typed(number, event);
    typed.set_event_number(number);

    // Every prefix of the list, from one event to all of them.
    SCOPED_TRACE(absl::StrCat(messages.size(), " events"));
    const std::string batch = BuildBatch(messages);
    EXPECT_EQ(batch, typed.SerializeAsString());
    // Written in place, the batch fills exactly the size it announced.
    std::string in_place(BatchSize(messages), '\x7f');
    uint8_t* begin = reinterpret_cast<uint8_t*>(in_place.data());
    EXPECT_EQ(WriteBatch(messages, begin), begin + in_place.size());
    EXPECT_EQ(in_place, batch);
    v1::SubscribeResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(batch));
    EXPECT_TRUE(MessageDifferencer::Equals(parsed, typed));
    ASSERT_TRUE(parsed.has_batch());
    ASSERT_EQ(parsed.batch().events_size(), static_cast<int>(messages.size()));
    EXPECT_EQ(parsed.event_number(), number);
    for (int k = 0; k < parsed.batch().events_size(); ++k) {
      // Each element is the message that event would have been alone.
      EXPECT_EQ(parsed.batch().events(k).SerializeAsString(), messages[static_cast<size_t>(k)]->bytes);
    }
  }
}

TEST(FeedMessageTest, AHeartbeatCarriesTheLatestEventNumber) {
  const auto heartbeat = MakeHeartbeatMessage(42, absl::FromUnixSeconds(1'800'000'000));
  EXPECT_TRUE(heartbeat->heartbeat);
  EXPECT_EQ(heartbeat->event_number, 42);
  v1::SubscribeResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(heartbeat->bytes));
  EXPECT_TRUE(parsed.has_heartbeat());
  EXPECT_EQ(parsed.event_number(), 42);
  EXPECT_EQ(Rfc3339(FromTimestamp(parsed.heartbeat().send_time())), "2027-01-15T08:00:00+00:00");
}

TEST(FeedMessageTest, MaxEventsPerMessageIsValidated) {
  v1::SubscribeRequest request;
  for (const int ok : {0, 1, 2, 1000}) {
    request.set_max_events_per_message(ok);
    EXPECT_TRUE(ValidateSubscribeRequest(request).ok()) << ok;
  }
  for (const int bad : {-1, 1001, 1 << 30}) {
    request.set_max_events_per_message(bad);
    const auto status = ValidateSubscribeRequest(request);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(status.message().rfind("max_events_per_message:", 0), 0u) << status;
  }
}

// A live subscription on a hub over an empty store, fed by Publish.
class BatchingSubscriptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStore::Open(dir_.path() + "/v.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    hub_ = std::make_unique<EventHub>(store_.get(), EventHub::Options{/*max_queue=*/100000, /*page_size=*/64});
    ASSERT_TRUE(hub_->Start().ok());
  }
  void TearDown() override {
    for (const auto& sub : subs_) {
      hub_->Unsubscribe(sub.get());
    }
  }

  std::shared_ptr<Subscription> Subscribe(size_t max_events_per_message,
                                          absl::Duration heartbeat = absl::Seconds(300)) {
    auto sub = hub_->Subscribe(EventFilter{}, std::nullopt, heartbeat, max_events_per_message);
    EXPECT_TRUE(sub.ok()) << sub.status();
    subs_.push_back(*sub);
    return *sub;
  }

  // Publishes `count` events of `detail_bytes` each, numbered on from the
  // last published.
  void Publish(int count, size_t detail_bytes) {
    std::vector<StoredEvent> events(static_cast<size_t>(count));
    for (auto& e : events) {
      e.number = ++published_;
      e.event = MakeAlertEvent(absl::StrCat("p", e.number), detail_bytes);
    }
    hub_->Publish(events);
  }

  // The events of each write until the queue is empty.
  static std::vector<std::vector<int64_t>> Drain(Subscription& sub) {
    std::vector<std::vector<int64_t>> writes;
    while (true) {
      auto action = sub.Next();
      if (action.kind != Subscription::Action::Kind::kWrite) {
        EXPECT_EQ(action.kind, Subscription::Action::Kind::kNothing);
        return writes;
      }
      writes.emplace_back();
      for (const auto& m : action.messages) {
        writes.back().push_back(m->heartbeat ? -m->event_number : m->event_number);
      }
      sub.Delivered(action.last_event_number());
    }
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<EventHub> hub_;
  std::vector<std::shared_ptr<Subscription>> subs_;
  int64_t published_ = 0;
};

TEST_F(BatchingSubscriptionTest, WritesTakeWhatIsQueuedUpToTheAskedSize) {
  auto single = Subscribe(1);
  auto batching = Subscribe(4);
  Publish(10, 50);
  const auto singles = Drain(*single);
  ASSERT_EQ(singles.size(), 10u);
  for (size_t i = 0; i < singles.size(); ++i) {
    EXPECT_EQ(singles[i], std::vector<int64_t>{static_cast<int64_t>(i) + 1});
  }
  EXPECT_EQ(Drain(*batching),
            (std::vector<std::vector<int64_t>>{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10}}));
  EXPECT_EQ(batching->last_delivered(), 10);
  // One waiting event goes alone: nothing waits for a batch to fill.
  Publish(1, 50);
  EXPECT_EQ(Drain(*batching), (std::vector<std::vector<int64_t>>{{11}}));
  EXPECT_EQ(batching->last_delivered(), 11);
}

TEST_F(BatchingSubscriptionTest, ABatchStopsBeforeItWouldPassTheByteLimit) {
  auto batching = Subscribe(1000);
  // 100 KiB events: ten fit under 1 MiB with their headers, not eleven.
  Publish(25, 100 * 1024);
  const auto writes = Drain(*batching);
  ASSERT_EQ(writes.size(), 3u);
  EXPECT_EQ(writes[0].size(), 10u);
  EXPECT_EQ(writes[1].size(), 10u);
  EXPECT_EQ(writes[2].size(), 5u);
  EXPECT_EQ(writes[2].back(), 25);
  // A single event larger than the limit still goes (alone).
  Publish(1, 2 * kMaxBatchBytes);
  EXPECT_EQ(Drain(*batching), (std::vector<std::vector<int64_t>>{{26}}));
}

TEST_F(BatchingSubscriptionTest, HeartbeatsGoAlone) {
  auto batching = Subscribe(100, absl::Milliseconds(200));
  // The hub's ticker queues a heartbeat on the idle stream.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (batching->queued() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(batching->queued(), 1u);
  Publish(3, 50);
  const auto writes = Drain(*batching);
  ASSERT_GE(writes.size(), 2u);
  EXPECT_EQ(writes[0], std::vector<int64_t>{0});  // The heartbeat (latest event 0), alone.
  std::vector<int64_t> events;
  for (const auto& write : writes) {
    for (const int64_t n : write) {
      if (n <= 0) {
        EXPECT_EQ(write.size(), 1u) << "a heartbeat in a batch";
      } else {
        events.push_back(n);
      }
    }
  }
  EXPECT_EQ(events, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(batching->last_delivered(), 3);
}

}  // namespace
}  // namespace vigil
