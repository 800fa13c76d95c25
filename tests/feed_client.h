// Client-side helpers shared by the end-to-end tests of the alert feed: a
// subscription read on a thread of its own, the channels it uses, and the
// patients the tests store.
#ifndef VIGIL_TESTS_FEED_CLIENT_H_
#define VIGIL_TESTS_FEED_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/patient.pb.h"

namespace vigil::testing {

// A channel with a TCP connection of its own (gRPC otherwise shares
// connections between channels to the same address), so that destroying it
// really closes the socket the server holds.
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address);

// A channel on which a subscriber that does not read gets its server writes
// stopped by HTTP/2 flow control after a small window, as with a client that
// truly stalls (no bandwidth probing to grow the window).
std::shared_ptr<grpc::Channel> StalledChannel(const std::string& address);

// Every event after `after`, with a heartbeat after 1 s of silence.
v1::SubscribeRequest From(int64_t after);

// A stored patient on silperisone; `severe_renal` adds CKD stage 4 (a
// contraindication), each unknown drug one UNSCREENED alert.
v1::Patient MakePatient(const std::string& id, bool severe_renal, int unknown_drugs = 0);

// Whether the event numbers are first, first + 1, ... with no gap and no
// duplicate (the failure names the first one out of place).
::testing::AssertionResult Contiguous(const std::vector<v1::SubscribeResponse>& events, int64_t first);

// How one message of a subscription came: a single event, a batch, or a
// heartbeat.
struct ReceivedMessage {
  enum class Kind { kEvent, kBatch, kHeartbeat };
  Kind kind = Kind::kEvent;
  // SubscribeResponse.event_number of the message itself.
  int64_t event_number = 0;
  // The events it carried (0 for a heartbeat); for a batch, the number of
  // its last one.
  int events = 0;
  int64_t last_event_number = 0;
};

// A subscription read on a thread of its own, or not read at all until
// StartReading (a stalled client). The events of a batch are listed one by
// one in events(), as if each had come alone.
class Subscriber {
 public:
  Subscriber(std::shared_ptr<grpc::Channel> channel, v1::SubscribeRequest request, bool read = true);
  // On a channel to `address` (sharing gRPC's connection to it); a
  // subscriber that does not read at first gets a StalledChannel.
  Subscriber(const std::string& address, v1::SubscribeRequest request, bool read = true);
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  void StartReading();
  // Each waits until its condition holds, the stream ended, or the timeout.
  bool WaitForEvents(size_t n, absl::Duration timeout = absl::Seconds(60));
  bool WaitForHeartbeat(absl::Duration timeout = absl::Seconds(60));
  // Anything (an event or a heartbeat) arrived: the server took the stream.
  bool WaitForAnything(absl::Duration timeout = absl::Seconds(60));
  bool WaitForEnd(absl::Duration timeout = absl::Seconds(60));

  std::vector<v1::SubscribeResponse> events();
  // The event number each heartbeat carried.
  std::vector<int64_t> heartbeats();
  // Every message, in the order received.
  std::vector<ReceivedMessage> messages();
  grpc::Status status();

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AlertFeed::Stub> stub_;
  v1::SubscribeRequest request_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<v1::SubscribeResponse> events_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> heartbeats_ ABSL_GUARDED_BY(mu_);
  std::vector<ReceivedMessage> messages_ ABSL_GUARDED_BY(mu_);
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace vigil::testing

#endif  // VIGIL_TESTS_FEED_CLIENT_H_
