#include "server/feed/event_hub.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace vigil {
namespace {

constexpr absl::Duration kTick = absl::Milliseconds(100);
// A pending finish that the transport has not taken within this time means
// its write is stuck on a client that stopped reading: cancel the call.
constexpr absl::Duration kStuckWrite = absl::Seconds(5);

}  // namespace

bool EventFilter::Matches(const v1::AlertEvent& event) const {
  if (!patient_ids.empty() && !patient_ids.contains(event.patient_id())) {
    return false;
  }
  if (!kinds.empty() && !kinds.contains(static_cast<int>(event.alert().kind()))) {
    return false;
  }
  return static_cast<int>(event.alert().severity()) >= min_severity;
}

Subscription::Action Subscription::Next() {
  Action action;
  bool need_page = false;
  {
    absl::MutexLock lock(&mu_);
    if (finish_.has_value() || overflowed_) {
      action.kind = Action::Kind::kFinish;
      action.status = overflowed_ ? absl::ResourceExhaustedError(absl::StrCat(
                                        "subscriber fell behind (more than ", hub_->options_.max_queue,
                                        " events queued); last delivered event number ", last_delivered_,
                                        "; resubscribe with after_event_number=", last_delivered_))
                                  : *finish_;
      if (!overflowed_ && finish_names_resume_point_) {
        action.status = absl::Status(finish_->code(), absl::StrCat(finish_->message(), "; resume with after_event_number=",
                                                                   last_delivered_));
      }
      return action;
    }
    if (!queue_.empty()) {
      action.kind = Action::Kind::kWrite;
      // A heartbeat always goes alone; events go alone, or as many as are
      // queued up to the subscriber's batch size and kMaxBatchBytes. Never
      // waiting for more: a batch is whatever piled up during the last write.
      action.messages.push_back(std::move(queue_.front()));
      queue_.pop_front();
      size_t batch_bytes = BatchElementSize(*action.messages.front());
      while (!action.messages.front()->heartbeat && action.messages.size() < max_events_per_message_ &&
             !queue_.empty()) {
        const FeedMessage& next = *queue_.front();
        batch_bytes += BatchElementSize(next);
        if (next.heartbeat || batch_bytes > kMaxBatchBytes) {
          break;
        }
        action.messages.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      last_activity_ = absl::Now();
    }
    if (catching_up_ && !page_requested_ && queue_.size() < static_cast<size_t>(hub_->options_.page_size) / 2) {
      page_requested_ = true;
      need_page = true;
    }
  }
  if (need_page) {
    hub_->RequestPage(shared_from_this());
  }
  return action;
}

int64_t Subscription::Action::last_event_number() const {
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (!(*it)->heartbeat) {
      return (*it)->event_number;
    }
  }
  return 0;
}

void Subscription::Delivered(int64_t last_event_number) {
  if (last_event_number <= 0) {
    return;
  }
  absl::MutexLock lock(&mu_);
  last_delivered_ = std::max(last_delivered_, last_event_number);
}

void Subscription::Attach(std::function<void()> notify, std::function<void()> cancel) {
  absl::MutexLock lock(&notify_mu_);
  notify_ = std::move(notify);
  cancel_ = std::move(cancel);
}

void Subscription::Detach() {
  absl::MutexLock lock(&notify_mu_);
  notify_ = nullptr;
  cancel_ = nullptr;
}

void Subscription::Notify() {
  absl::MutexLock lock(&notify_mu_);
  if (notify_) {
    notify_();
  }
}

void Subscription::Cancel() {
  absl::MutexLock lock(&notify_mu_);
  if (cancel_) {
    cancel_();
  }
}

int64_t Subscription::last_delivered() const {
  absl::MutexLock lock(&mu_);
  return last_delivered_;
}

size_t Subscription::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

EventHub::EventHub(Store* store, Options options) : store_(store), options_(options) {}

EventHub::~EventHub() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    subs_.clear();
  }
  if (ticker_.joinable()) {
    ticker_.join();
  }
}

absl::Status EventHub::Start() {
  auto latest = store_->LatestEventNumber();
  if (!latest.ok()) {
    return latest.status();
  }
  {
    absl::MutexLock lock(&mu_);
    latest_ = *latest;
  }
  ticker_ = std::thread([this] { Tick(); });
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Subscription>> EventHub::Subscribe(EventFilter filter, std::optional<int64_t> after,
                                                                  absl::Duration heartbeat,
                                                                  size_t max_events_per_message) {
  std::shared_ptr<Subscription> sub;
  bool catching_up = false;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("the server is shutting down; subscribe again elsewhere");
    }
    const int64_t start = after.value_or(latest_);
    if (start > latest_) {
      return absl::OutOfRangeError(absl::StrCat("after_event_number: ", start, " is beyond the latest event number ",
                                                latest_, " of this service"));
    }
    catching_up = start < latest_;
    sub.reset(new Subscription(this, std::move(filter), start, catching_up, heartbeat,
                               std::max<size_t>(1, max_events_per_message)));
    if (catching_up) {
      absl::MutexLock sub_lock(&sub->mu_);
      sub->page_requested_ = true;
    }
    subs_.push_back(sub);
  }
  if (catching_up) {
    RequestPage(sub);
  }
  return sub;
}

void EventHub::Unsubscribe(const Subscription* subscription) {
  absl::MutexLock lock(&mu_);
  subs_.erase(std::remove_if(subs_.begin(), subs_.end(),
                             [&](const std::shared_ptr<Subscription>& s) { return s.get() == subscription; }),
              subs_.end());
}

void EventHub::RequestPage(std::shared_ptr<Subscription> sub) {
  reader_.Post([this, sub = std::move(sub)] { ReadPage(sub); });
}

void EventHub::ReadPage(const std::shared_ptr<Subscription>& sub) {
  int64_t cursor = 0;
  {
    absl::MutexLock lock(&sub->mu_);
    if (sub->finish_.has_value() || sub->overflowed_) {
      sub->page_requested_ = false;
      return;
    }
    cursor = sub->cursor_;
  }
  auto events = store_->ReadEvents(cursor, options_.page_size);
  // Serialized before the locks are taken (the filter is immutable); a
  // message is null for an event that does not match.
  std::vector<std::pair<int64_t, std::shared_ptr<const FeedMessage>>> page;
  if (events.ok()) {
    page.reserve(events->size());
    for (const auto& e : *events) {
      page.emplace_back(e.number, sub->filter_.Matches(e.event) ? MakeEventMessage(e.number, e.event) : nullptr);
    }
  }
  bool more = false;
  {
    absl::MutexLock hub_lock(&mu_);
    absl::MutexLock lock(&sub->mu_);
    sub->page_requested_ = false;
    if (!events.ok()) {
      sub->finish_ = absl::UnavailableError(absl::StrCat("cannot replay events: ", events.status().message()));
      sub->finish_names_resume_point_ = true;
      sub->queue_.clear();
    } else {
      for (auto& [number, message] : page) {
        if (number <= sub->cursor_) {
          continue;
        }
        sub->cursor_ = number;
        if (message != nullptr) {
          sub->queue_.push_back(std::move(message));
        }
      }
      if (sub->cursor_ >= latest_) {
        // Caught up: from now on Publish delivers (events after the cursor).
        sub->catching_up_ = false;
      } else if (sub->queue_.size() < static_cast<size_t>(options_.page_size) / 2) {
        sub->page_requested_ = true;
        more = true;
      }
    }
  }
  if (more) {
    RequestPage(sub);
  }
  sub->Notify();
}

void EventHub::Publish(const std::vector<StoredEvent>& events) {
  if (events.empty()) {
    return;
  }
  absl::MutexLock publishing(&publish_mu_);
  for (int64_t next = latest() + 1; next < events.front().number;) {
    // Another replica committed before these: its events go out first.
    auto missing = store_->ReadEvents(next - 1, std::min<int>(options_.page_size,
                                                                static_cast<int>(events.front().number - next)));
    if (!missing.ok() || missing->empty()) {
      // The store cannot say: subscribers past the gap resume from the
      // store when they replay; publish what is known in order.
      break;
    }
    PublishContiguous(*missing);
    next = missing->back().number + 1;
  }
  if (events.back().number <= latest()) {
    return;  // the store follower published them already
  }
  PublishContiguous(events);
}

absl::Status EventHub::CatchUpWithStore() {
  absl::MutexLock publishing(&publish_mu_);
  while (true) {
    auto events = store_->ReadEvents(latest(), options_.page_size);
    if (!events.ok()) {
      return events.status();
    }
    if (events->empty()) {
      return absl::OkStatus();
    }
    PublishContiguous(*events);
  }
}

void EventHub::PublishContiguous(const std::vector<StoredEvent>& events) {
  if (events.empty()) {
    return;
  }
  // Each event becomes one message, serialized once here (outside the
  // hub's lock) and shared by every subscriber it matches.
  std::vector<std::shared_ptr<const FeedMessage>> messages;
  messages.reserve(events.size());
  for (const auto& e : events) {
    messages.push_back(MakeEventMessage(e.number, e.event));
  }
  std::vector<std::shared_ptr<Subscription>> to_notify;
  {
    absl::MutexLock lock(&mu_);
    latest_ = std::max(latest_, events.back().number);
    for (const auto& sub : subs_) {
      absl::MutexLock sub_lock(&sub->mu_);
      if (sub->finish_.has_value() || sub->overflowed_ || sub->catching_up_) {
        continue;
      }
      // Bounded: a subscriber whose backlog is already full when a commit's
      // events arrive is closed (it resumes from its last event). A commit's
      // events are queued together, so the bound is max_queue plus one commit.
      if (sub->queue_.size() >= options_.max_queue) {
        sub->overflowed_ = true;
        sub->queue_.clear();
        sub->finish_pending_since_ = absl::Now();
        to_notify.push_back(sub);
        continue;
      }
      bool added = false;
      for (size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        if (e.number <= sub->cursor_) {
          continue;
        }
        sub->cursor_ = e.number;
        if (!sub->filter_.Matches(e.event)) {
          continue;
        }
        sub->queue_.push_back(messages[i]);
        added = true;
      }
      if (added) {
        to_notify.push_back(sub);
      }
    }
  }
  if (!to_notify.empty()) {
    notifier_.Post([to_notify = std::move(to_notify)] {
      for (const auto& sub : to_notify) {
        sub->Notify();
      }
    });
  }
}

void EventHub::CloseAll(const absl::Status& status) {
  std::vector<std::shared_ptr<Subscription>> subs;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    subs = subs_;
    for (const auto& sub : subs) {
      absl::MutexLock sub_lock(&sub->mu_);
      // The resume point is added when the transport takes the status, so
      // that it names the last event really delivered.
      sub->finish_ = status;
      sub->finish_names_resume_point_ = true;
      sub->queue_.clear();
      sub->finish_pending_since_ = absl::Now();
    }
  }
  for (const auto& sub : subs) {
    sub->Notify();
  }
}

int64_t EventHub::latest() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

size_t EventHub::total_queued() const {
  absl::MutexLock lock(&mu_);
  size_t total = 0;
  for (const auto& sub : subs_) {
    absl::MutexLock sub_lock(&sub->mu_);
    total += sub->queue_.size();
  }
  return total;
}

size_t EventHub::subscriber_count() const {
  absl::MutexLock lock(&mu_);
  return subs_.size();
}

void EventHub::Tick() {
  while (true) {
    absl::SleepFor(kTick);
    std::vector<std::shared_ptr<Subscription>> to_notify;
    std::vector<std::shared_ptr<Subscription>> to_cancel;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ && subs_.empty()) {
        return;
      }
      const absl::Time now = absl::Now();
      for (const auto& sub : subs_) {
        absl::MutexLock sub_lock(&sub->mu_);
        if (sub->finish_.has_value() || sub->overflowed_) {
          if (now - sub->finish_pending_since_ > kStuckWrite) {
            sub->finish_pending_since_ = absl::InfiniteFuture();
            to_cancel.push_back(sub);
          }
          continue;
        }
        if (sub->queue_.empty() && !sub->catching_up_ && now - sub->last_activity_ >= sub->heartbeat_) {
          sub->queue_.push_back(MakeHeartbeatMessage(latest_, now));
          sub->last_activity_ = now;
          to_notify.push_back(sub);
        }
      }
    }
    for (const auto& sub : to_notify) {
      sub->Notify();
    }
    for (const auto& sub : to_cancel) {
      sub->Cancel();
    }
  }
}

}  // namespace vigil
