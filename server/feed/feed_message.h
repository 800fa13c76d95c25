// The alert feed's messages in wire format. Each event is serialized once,
// when it is published or replayed, and the same bytes go to every
// subscriber; a batch (SubscribeResponse.batch) is built by concatenating
// those bytes behind the few tag and length bytes of the enclosing messages,
// without parsing or re-serializing any event.
#ifndef VIGIL_SERVER_FEED_FEED_MESSAGE_H_
#define VIGIL_SERVER_FEED_FEED_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vigil/v1/alert_feed.pb.h"

namespace vigil {

// One message of a subscription: a SubscribeResponse in protobuf wire
// format, immutable once built and shared by every subscriber it goes to.
struct FeedMessage {
  // For an event, its number; for a heartbeat, the latest event number.
  int64_t event_number = 0;
  bool heartbeat = false;
  // The serialized SubscribeResponse.
  std::string bytes;
};

// Most bytes of events in one batch: a batch stops before the event that
// would pass it (it always holds at least one). Well under gRPC's default
// 4 MiB receive limit, whatever the events' size.
inline constexpr size_t kMaxBatchBytes = 1 << 20;

// SubscribeResponse{event_number: number, alert_event: event}, serialized:
// exactly the bytes SerializeAsString gives for that message.
std::string SerializeEventMessage(int64_t number, const v1::AlertEvent& event);

// An event message, serialized once.
std::shared_ptr<const FeedMessage> MakeEventMessage(int64_t number, const v1::AlertEvent& event);

// A heartbeat carrying `latest` and the time `now`.
std::shared_ptr<const FeedMessage> MakeHeartbeatMessage(int64_t latest, absl::Time now);

// The bytes of an event message's element in a batch: what BuildBatch adds
// for it (EventBatch.events tag, length, the message).
size_t BatchElementSize(const FeedMessage& event);

// The SubscribeResponse carrying `events` (event messages, oldest first, at
// least one) as one EventBatch, its event_number the last event's: exactly
// the bytes of the same message built with the generated classes and
// serialized.
std::string BuildBatch(absl::Span<const std::shared_ptr<const FeedMessage>> events);

// The same in two steps, for a caller that owns the buffer (the transport
// writes straight into the buffer it sends, without zero-filling it first):
// the batch's size, then the bytes written at `target`, which must have
// BatchSize(events) bytes; returns the end of what was written.
size_t BatchSize(absl::Span<const std::shared_ptr<const FeedMessage>> events);
uint8_t* WriteBatch(absl::Span<const std::shared_ptr<const FeedMessage>> events, uint8_t* target);

}  // namespace vigil

#endif  // VIGIL_SERVER_FEED_FEED_MESSAGE_H_
