// Delivers alert-feed events to subscribers: a replay of stored events from a
// starting point, then live events, with no gap and no duplicate; heartbeats
// on idle streams; a bounded queue per subscriber.
#ifndef VIGIL_SERVER_FEED_EVENT_HUB_H_
#define VIGIL_SERVER_FEED_EVENT_HUB_H_

#include <cstdint>
#include <deque>
#include <utility>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/worker.h"
#include "server/feed/feed_message.h"
#include "server/store/store.h"
#include "vigil/v1/alert_feed.pb.h"

namespace vigil {

// Which events a subscriber wants.
struct EventFilter {
  absl::flat_hash_set<std::string> patient_ids;  // empty: all
  absl::flat_hash_set<int> kinds;                // empty: all
  int min_severity = 0;
  bool Matches(const v1::AlertEvent& event) const;
};

class EventHub;

// One subscriber's stream. Thread-safe. The transport pulls messages with
// Next() whenever it can write, and is told to try again through the notify
// callback it attached.
class Subscription : public std::enable_shared_from_this<Subscription> {
 public:
  // What the transport should do next.
  struct Action {
    enum class Kind { kNothing, kWrite, kFinish };
    Kind kind = Kind::kNothing;
    // For kWrite, what goes in the next message: one message (an event or a
    // heartbeat) sent as it is, or, for a subscriber that asked for batches,
    // several events (oldest first) to send as one batch (BuildBatch).
    // Shared, immutable: a published event is serialized once for every
    // subscriber, never copied per subscriber.
    std::vector<std::shared_ptr<const FeedMessage>> messages;
    absl::Status status;

    // The number of the last event among `messages`; 0 when there is none
    // (a heartbeat).
    int64_t last_event_number() const;
  };

  // The next message to write (up to max_events_per_message events that are
  // already queued, never waiting for more), the status to finish with, or
  // nothing yet.
  Action Next();

  // Records that the events of a write, up to `last_event_number`
  // (Action::last_event_number), were delivered; 0 records nothing.
  void Delivered(int64_t last_event_number);

  // Sets the callback that tells the transport to call Next() again. It is
  // called from the hub's threads; Detach() stops it (waiting for a call in
  // progress), after which it is never called again.
  // `cancel` is called when a finish is pending but the transport has not
  // come back for it (a write stuck on a client that stopped reading).
  void Attach(std::function<void()> notify, std::function<void()> cancel);
  void Detach();

  int64_t last_delivered() const;
  size_t queued() const;

 private:
  friend class EventHub;
  Subscription(EventHub* hub, EventFilter filter, int64_t start, bool catching_up, absl::Duration heartbeat,
               size_t max_events_per_message)
      : hub_(hub), filter_(std::move(filter)), max_events_per_message_(max_events_per_message), cursor_(start),
        last_delivered_(start), catching_up_(catching_up), heartbeat_(heartbeat) {}
  void Notify();

  EventHub* const hub_;
  const EventFilter filter_;
  // 1: one event per message; more: batches of up to this many events.
  const size_t max_events_per_message_;

  mutable absl::Mutex mu_;
  // Messages to send, one event (or heartbeat) each.
  std::deque<std::shared_ptr<const FeedMessage>> queue_ ABSL_GUARDED_BY(mu_);
  // Highest event number read or enqueued so far (replay cursor).
  int64_t cursor_ ABSL_GUARDED_BY(mu_);
  int64_t last_delivered_ ABSL_GUARDED_BY(mu_);
  bool catching_up_ ABSL_GUARDED_BY(mu_);
  bool page_requested_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> finish_ ABSL_GUARDED_BY(mu_);
  // Set when the queue overflowed; the status is built when the transport
  // asks, so that it names the last event really delivered.
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_names_resume_point_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time finish_pending_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time last_activity_ ABSL_GUARDED_BY(mu_) = absl::Now();
  const absl::Duration heartbeat_;

  absl::Mutex notify_mu_;
  std::function<void()> notify_ ABSL_GUARDED_BY(notify_mu_);
  std::function<void()> cancel_ ABSL_GUARDED_BY(notify_mu_);
  void Cancel();
};

class EventHub {
 public:
  struct Options {
    // Most messages queued for one subscriber before a commit's events are
    // added; past it the subscriber is closed with RESOURCE_EXHAUSTED (it can
    // resume from its last event).
    size_t max_queue = 1000;
    // Events read from the store per replay page.
    int page_size = 256;
  };

  // Reads replays from `store` on a thread of its own.
  EventHub(Store* store, Options options);
  ~EventHub();
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Starts the hub at the store's latest event number.
  absl::Status Start();

  // A new subscription: every matching event after `after` (replayed from the
  // store, then live), or only new events when `after` is absent. With
  // `max_events_per_message` above 1, events that are waiting when the
  // transport asks for the next message go out together, up to that many.
  absl::StatusOr<std::shared_ptr<Subscription>> Subscribe(EventFilter filter, std::optional<int64_t> after,
                                                          absl::Duration heartbeat,
                                                          size_t max_events_per_message = 1);

  // Removes a subscription (the transport is done with it).
  void Unsubscribe(const Subscription* subscription);

  // Publishes committed events, in event-number order. The events are
  // queued for their subscribers before it returns; the transports are told
  // on the hub's own thread. Events committed by another server sharing the
  // store (a replica) that come before `events` and were not published yet
  // are read from the store first, so subscribers never see a gap; events
  // already published are skipped. Safe to call from several threads.
  void Publish(const std::vector<StoredEvent>& events);

  // Publishes what the store holds beyond the latest published event (the
  // commits of other replicas): called when the store signals new events,
  // and periodically as a backstop. An error of the store is returned; the
  // next call retries.
  absl::Status CatchUpWithStore();

  // Closes every subscription with `status` (server shutdown).
  void CloseAll(const absl::Status& status);

  int64_t latest() const;
  size_t subscriber_count() const;
  // Messages queued for all subscribers.
  size_t total_queued() const;

 private:
  friend class Subscription;
  void RequestPage(std::shared_ptr<Subscription> sub);
  void ReadPage(const std::shared_ptr<Subscription>& sub);
  void Tick();

  Store* const store_;
  // Serializes publishing, so that events go out in number order whoever
  // publishes them (the registry or the store follower).
  absl::Mutex publish_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  void PublishContiguous(const std::vector<StoredEvent>& events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  const Options options_;
  Worker reader_;
  // Tells the transports of new events (Publish). A transport that is told
  // may write at once on the thread that tells it, and Publish runs on the
  // registry's database worker, which must not carry every subscriber's
  // write before it can take the next commit.
  Worker notifier_;

  mutable absl::Mutex mu_;
  int64_t latest_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<Subscription>> subs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread ticker_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_FEED_EVENT_HUB_H_
