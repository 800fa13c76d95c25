#include "server/feed/feed_message.h"

#include "server/common/timestamp.h"

#include <utility>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace vigil {
namespace {

using ::google::protobuf::io::CodedOutputStream;
using ::google::protobuf::internal::WireFormatLite;

// Field numbers of SubscribeResponse and EventBatch (alert_feed.proto).
constexpr int kEventNumberField = v1::SubscribeResponse::kEventNumberFieldNumber;
constexpr int kAlertEventField = v1::SubscribeResponse::kAlertEventFieldNumber;
constexpr int kBatchField = v1::SubscribeResponse::kBatchFieldNumber;
constexpr int kBatchEventsField = v1::EventBatch::kEventsFieldNumber;

uint32_t Tag(int field, WireFormatLite::WireType type) {
  return WireFormatLite::MakeTag(field, type);
}

// The event_number field as the generated serializer writes it: absent when
// 0 (proto3), else tag and varint.
size_t EventNumberSize(int64_t number) {
  if (number == 0) {
    return 0;
  }
  return CodedOutputStream::VarintSize32(Tag(kEventNumberField, WireFormatLite::WIRETYPE_VARINT)) +
         CodedOutputStream::VarintSize64(static_cast<uint64_t>(number));
}

uint8_t* WriteEventNumber(int64_t number, uint8_t* target) {
  if (number == 0) {
    return target;
  }
  target = CodedOutputStream::WriteTagToArray(Tag(kEventNumberField, WireFormatLite::WIRETYPE_VARINT), target);
  return CodedOutputStream::WriteVarint64ToArray(static_cast<uint64_t>(number), target);
}

// Tag and length of a length-delimited field of `size` bytes.
size_t DelimitedHeaderSize(int field, size_t size) {
  return CodedOutputStream::VarintSize32(Tag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED)) +
         CodedOutputStream::VarintSize64(size);
}

uint8_t* WriteDelimitedHeader(int field, size_t size, uint8_t* target) {
  target = CodedOutputStream::WriteTagToArray(Tag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED), target);
  return CodedOutputStream::WriteVarint64ToArray(size, target);
}

uint8_t* Begin(std::string& out) { return reinterpret_cast<uint8_t*>(out.data()); }

}  // namespace

std::string SerializeEventMessage(int64_t number, const v1::AlertEvent& event) {
  const size_t event_size = event.ByteSizeLong();
  std::string out;
  out.resize(EventNumberSize(number) + DelimitedHeaderSize(kAlertEventField, event_size) + event_size);
  uint8_t* p = WriteEventNumber(number, Begin(out));
  p = WriteDelimitedHeader(kAlertEventField, event_size, p);
  // The sizes ByteSizeLong just cached.
  event.SerializeWithCachedSizesToArray(p);
  return out;
}

std::shared_ptr<const FeedMessage> MakeEventMessage(int64_t number, const v1::AlertEvent& event) {
  auto message = std::make_shared<FeedMessage>();
  message->event_number = number;
  message->bytes = SerializeEventMessage(number, event);
  return message;
}

std::shared_ptr<const FeedMessage> MakeHeartbeatMessage(int64_t latest, absl::Time now) {
  v1::SubscribeResponse response;
  response.set_event_number(latest);
  *response.mutable_heartbeat()->mutable_send_time() = ToTimestamp(now);
  auto message = std::make_shared<FeedMessage>();
  message->event_number = latest;
  message->heartbeat = true;
  response.SerializeToString(&message->bytes);
  return message;
}

size_t BatchElementSize(const FeedMessage& event) {
  return DelimitedHeaderSize(kBatchEventsField, event.bytes.size()) + event.bytes.size();
}

namespace {

// The EventBatch's length (its elements with their tags and lengths).
size_t BatchBodySize(absl::Span<const std::shared_ptr<const FeedMessage>> events) {
  size_t size = 0;
  for (const auto& event : events) {
    size += BatchElementSize(*event);
  }
  return size;
}

int64_t LastEventNumber(absl::Span<const std::shared_ptr<const FeedMessage>> events) {
  return events.empty() ? 0 : events.back()->event_number;
}

}  // namespace

size_t BatchSize(absl::Span<const std::shared_ptr<const FeedMessage>> events) {
  const size_t body = BatchBodySize(events);
  return EventNumberSize(LastEventNumber(events)) + DelimitedHeaderSize(kBatchField, body) + body;
}

uint8_t* WriteBatch(absl::Span<const std::shared_ptr<const FeedMessage>> events, uint8_t* target) {
  uint8_t* p = WriteEventNumber(LastEventNumber(events), target);
  p = WriteDelimitedHeader(kBatchField, BatchBodySize(events), p);
  for (const auto& event : events) {
    p = WriteDelimitedHeader(kBatchEventsField, event->bytes.size(), p);
    p = CodedOutputStream::WriteRawToArray(event->bytes.data(), static_cast<int>(event->bytes.size()), p);
  }
  return p;
}

std::string BuildBatch(absl::Span<const std::shared_ptr<const FeedMessage>> events) {
  std::string out;
  out.resize(BatchSize(events));
  WriteBatch(events, Begin(out));
  return out;
}

}  // namespace vigil
