#include "tests/feed_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace vigil::testing {

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::shared_ptr<grpc::Channel> StalledChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 * 1024);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

v1::SubscribeRequest From(int64_t after) {
  v1::SubscribeRequest request;
  request.set_after_event_number(after);
  request.set_heartbeat_interval_seconds(1);
  return request;
}

v1::Patient MakePatient(const std::string& id, bool severe_renal, int unknown_drugs) {
  v1::Patient p;
  p.set_id(id);
  p.add_medications()->set_drug("silperisone");
  if (severe_renal) {
    auto* c = p.add_conditions()->mutable_code();
    c->set_system("http://hl7.org/fhir/sid/icd-10-cm");
    c->set_code("N18.4");
  }
  for (int i = 0; i < unknown_drugs; ++i) {
    p.add_medications()->set_drug(absl::StrCat("not-a-drug-", i));
  }
  return p;
}

::testing::AssertionResult Contiguous(const std::vector<v1::SubscribeResponse>& events, int64_t first) {
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].event_number() != first + static_cast<int64_t>(i)) {
      return ::testing::AssertionFailure() << "event " << events[i].event_number() << " at position " << i
                                           << ", expected " << first + static_cast<int64_t>(i);
    }
  }
  return ::testing::AssertionSuccess();
}

Subscriber::Subscriber(std::shared_ptr<grpc::Channel> channel, v1::SubscribeRequest request, bool read)
    : channel_(std::move(channel)), stub_(v1::AlertFeed::NewStub(channel_)), request_(std::move(request)) {
  reader_ = stub_->Subscribe(&context_, request_);
  if (read) {
    StartReading();
  }
}

Subscriber::Subscriber(const std::string& address, v1::SubscribeRequest request, bool read)
    : Subscriber(read ? grpc::CreateChannel(address, grpc::InsecureChannelCredentials()) : StalledChannel(address),
                 std::move(request), read) {}

Subscriber::~Subscriber() {
  context_.TryCancel();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Subscriber::StartReading() {
  thread_ = std::thread([this] {
    v1::SubscribeResponse response;
    while (reader_->Read(&response)) {
      absl::MutexLock lock(&mu_);
      ReceivedMessage received;
      received.event_number = response.event_number();
      if (response.has_heartbeat()) {
        received.kind = ReceivedMessage::Kind::kHeartbeat;
        heartbeats_.push_back(response.event_number());
      } else if (response.has_batch()) {
        received.kind = ReceivedMessage::Kind::kBatch;
        for (const auto& event : response.batch().events()) {
          ++received.events;
          received.last_event_number = event.event_number();
          events_.push_back(event);
        }
      } else {
        received.events = 1;
        received.last_event_number = response.event_number();
        events_.push_back(response);
      }
      messages_.push_back(received);
    }
    const auto status = reader_->Finish();
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  });
}

bool Subscriber::WaitForEvents(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto cond = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return events_.size() >= n || done_; };
  mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
  return events_.size() >= n;
}

bool Subscriber::WaitForHeartbeat(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto cond = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !heartbeats_.empty() || done_; };
  mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
  return !heartbeats_.empty();
}

bool Subscriber::WaitForAnything(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto cond = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !events_.empty() || !heartbeats_.empty() || done_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
  return !events_.empty() || !heartbeats_.empty();
}

bool Subscriber::WaitForEnd(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto cond = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; };
  mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
  return done_;
}

std::vector<v1::SubscribeResponse> Subscriber::events() {
  absl::MutexLock lock(&mu_);
  return events_;
}

std::vector<int64_t> Subscriber::heartbeats() {
  absl::MutexLock lock(&mu_);
  return heartbeats_;
}

std::vector<ReceivedMessage> Subscriber::messages() {
  absl::MutexLock lock(&mu_);
  return messages_;
}

grpc::Status Subscriber::status() {
  absl::MutexLock lock(&mu_);
  return status_;
}

}  // namespace vigil::testing
