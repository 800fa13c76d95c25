// GET /ui/api/events: the alert feed as server-sent events, from the same
// hub as AlertFeed.Subscribe. Resumes after the Last-Event-ID the browser
// sends when it reconnects (or ?after=N), so that nothing is missed or
// repeated across a reconnect.
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "httplib.h"
#include "server/http/ui.h"
#include "server/http/ui_json.h"

namespace vigil {

// One open stream: the subscription and the signal that it has something.
struct EventStream {
  std::shared_ptr<Subscription> sub;
  absl::Time deadline;
  bool started = false;
  absl::Mutex mu;
  bool ready ABSL_GUARDED_BY(mu) = true;
  bool cancelled ABSL_GUARDED_BY(mu) = false;
};

namespace {

// The event number to resume after: Last-Event-ID, else ?after=N, else none
// (only new events).
std::optional<int64_t> ResumePoint(const httplib::Request& req) {
  int64_t after = 0;
  if (absl::SimpleAtoi(req.get_header_value("Last-Event-ID"), &after) && after >= 0) {
    return after;
  }
  if (absl::SimpleAtoi(req.get_param_value("after"), &after) && after >= 0) {
    return after;
  }
  return std::nullopt;
}

// The text of one message of the hub (an event or a heartbeat).
std::string SseText(const FeedMessage& message) {
  v1::SubscribeResponse response;
  if (!response.ParseFromString(message.bytes)) {
    return "";
  }
  if (response.has_alert_event()) {
    return absl::StrCat("id: ", response.event_number(), "\nevent: alert\ndata: ",
                        Dump(FeedEventJson(response.event_number(), response.alert_event())), "\n\n");
  }
  return absl::StrCat("event: heartbeat\ndata: {\"latest\":", response.event_number(), "}\n\n");
}

void SendStreamError(httplib::Response& res, int status, absl::string_view message) {
  res.status = status;
  res.set_content(absl::StrCat("{\"error\":", nlohmann::json(std::string(message)).dump(), "}"), "application/json");
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Content-Type-Options", "nosniff");
}

}  // namespace

void Ui::Events(const httplib::Request& req, httplib::Response& res) {
  auto visitor = SignedIn(req, false);
  if (visitor.ok() && !visitor->caller.Has(Role::kSubscriber) && !visitor->caller.Has(Role::kClinician)) {
    visitor = absl::PermissionDeniedError("the feed needs the subscriber or clinician role");
  }
  if (!visitor.ok()) {
    SendStreamError(res, visitor.status().code() == absl::StatusCode::kUnauthenticated ? 401 : 403,
                    visitor.status().message());
    return;
  }
  if (stopping_ || streams_.fetch_add(1) >= options_.max_streams) {
    if (!stopping_) {
      streams_.fetch_sub(1);
    }
    SendStreamError(res, 503, "too many open worklists; retry later");
    return;
  }
  auto sub = hub_->Subscribe(EventFilter{}, ResumePoint(req), options_.heartbeat);
  Audit("ui/events", v1::AUDIT_ACTION_EXECUTE, visitor->caller.name, req, "*", "", sub.status());
  if (!sub.ok()) {
    streams_.fetch_sub(1);
    SendStreamError(res, 503, sub.status().message());
    return;
  }
  auto stream = std::make_shared<EventStream>();
  stream->sub = *std::move(sub);
  stream->deadline = absl::Now() + options_.stream_duration;
  EventStream* raw = stream.get();
  stream->sub->Attach(
      [raw] {
        absl::MutexLock lock(&raw->mu);
        raw->ready = true;
      },
      [raw] {
        absl::MutexLock lock(&raw->mu);
        raw->cancelled = true;
      });
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, stream](size_t, httplib::DataSink& sink) { return Pump(*stream, sink); },
      [this, stream](bool) {
        stream->sub->Detach();
        hub_->Unsubscribe(stream->sub.get());
        streams_.fetch_sub(1);
      });
}

// Waits up to a second for the subscription to have something, then writes
// all it has. False when the browser is gone.
bool Ui::Pump(EventStream& stream, httplib::DataSink& sink) {
  if (!stream.started) {
    stream.started = true;
    // The browser reconnects after 2 s, with Last-Event-ID.
    static constexpr char kRetry[] = "retry: 2000\n\n";
    return sink.write(kRetry, sizeof(kRetry) - 1);
  }
  bool cancelled = false;
  {
    absl::MutexLock lock(&stream.mu);
    stream.mu.AwaitWithTimeout(absl::Condition(&stream.ready), absl::Seconds(1));
    stream.ready = false;
    cancelled = stream.cancelled;
  }
  if (cancelled || stopping_ || absl::Now() > stream.deadline) {
    sink.done();
    return true;
  }
  while (true) {
    Subscription::Action action = stream.sub->Next();
    if (action.kind == Subscription::Action::Kind::kNothing) {
      return true;
    }
    if (action.kind == Subscription::Action::Kind::kFinish) {
      sink.done();
      return true;
    }
    for (const auto& message : action.messages) {
      const std::string text = SseText(*message);
      if (!text.empty() && !sink.write(text.data(), text.size())) {
        return false;
      }
    }
    stream.sub->Delivered(action.last_event_number());
  }
}

}  // namespace vigil
