// End-to-end tests of batched alert-feed delivery
// (SubscribeRequest.max_events_per_message) against a real server process:
// a batching subscriber gets every event once, in order, at most N a
// message, and resumes after a batch's last event with no gap and no repeat;
// subscribers that did not ask keep getting one event per message from the
// same server; the command-line client prints batched events as single ones.
// No assertion depends on timing: batches form from what is queued (a replay
// page, or every event of one commit), never by waiting.
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/feed_client.h"
#include "tests/server_process.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {
namespace {

using ::vigil::testing::Contiguous;
using ::vigil::testing::From;
using ::vigil::testing::MakePatient;
using ::vigil::testing::ReceivedMessage;
using ::vigil::testing::RunCommand;
using ::vigil::testing::ServerProcess;
using ::vigil::testing::Subscriber;

// Every event after `after`, up to `n` in one message.
v1::SubscribeRequest Batched(int64_t after, int n) {
  v1::SubscribeRequest request = From(after);
  request.set_max_events_per_message(n);
  return request;
}

// Stores patients and returns the last event number of each write.
class Writer {
 public:
  explicit Writer(const std::string& address)
      : stub_(v1::Patients::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

  int64_t Put(const v1::Patient& patient) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::PutPatientRequest request;
    *request.mutable_patient() = patient;
    v1::PutPatientResponse response;
    const auto status = stub_->PutPatient(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.last_event_number();
  }

  // Raises then resolves seven alerts of one patient (the contraindication
  // and six unscreened drugs), `rounds` times: 14 events a round, each
  // commit seven at once.
  int64_t RaiseAndResolve(const std::string& id, int rounds) {
    int64_t last = 0;
    for (int i = 0; i < rounds; ++i) {
      last = Put(MakePatient(id, /*severe_renal=*/true, /*unknown_drugs=*/6));
      last = Put(MakePatient(id, /*severe_renal=*/false));
    }
    return last;
  }

 private:
  std::unique_ptr<v1::Patients::Stub> stub_;
};

// Every message carried at most `n` events; a batch's event_number is its
// last event's; with `batches` false, no message was a batch.
::testing::AssertionResult MessagesWithin(const std::vector<ReceivedMessage>& messages, int n, bool batches) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (m.kind == ReceivedMessage::Kind::kHeartbeat) {
      continue;
    }
    if (m.kind == ReceivedMessage::Kind::kBatch && !batches) {
      return ::testing::AssertionFailure() << "message " << i << " is a batch of " << m.events;
    }
    if (m.events < 1 || m.events > n) {
      return ::testing::AssertionFailure() << "message " << i << " carries " << m.events << " events, limit " << n;
    }
    if (m.event_number != m.last_event_number) {
      return ::testing::AssertionFailure() << "message " << i << " has event_number " << m.event_number
                                           << " but its last event is " << m.last_event_number;
    }
  }
  return ::testing::AssertionSuccess();
}

size_t CountBatches(const std::vector<ReceivedMessage>& messages) {
  size_t batches = 0;
  for (const auto& m : messages) {
    batches += m.kind == ReceivedMessage::Kind::kBatch ? 1 : 0;
  }
  return batches;
}

TEST(AlertFeedBatchTest, BatchesCarryEveryEventOnceInOrderAndResumeAfterABatch) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  Writer writer(server.address());
  // A history to replay: 42 events, read from the store in one page.
  const int64_t history = writer.RaiseAndResolve("batch-p1", 3);
  ASSERT_EQ(history, 42);

  constexpr int kBatch = 5;
  Subscriber batching(server.address(), Batched(0, kBatch));
  Subscriber unaware(server.address(), From(0));   // Does not know the field.
  Subscriber one(server.address(), Batched(0, 1));  // 1: one event per message.
  // Live events, seven a commit.
  const int64_t last = writer.RaiseAndResolve("batch-p2", 3);
  ASSERT_EQ(last, 84);
  for (auto* sub : {&batching, &unaware, &one}) {
    ASSERT_TRUE(sub->WaitForEvents(static_cast<size_t>(last))) << sub->status().error_message();
    const auto events = sub->events();
    EXPECT_EQ(events.size(), static_cast<size_t>(last));
    EXPECT_TRUE(Contiguous(events, 1));
    for (const auto& e : events) {
      EXPECT_TRUE(e.has_alert_event());
    }
  }
  const auto batched = batching.messages();
  EXPECT_TRUE(MessagesWithin(batched, kBatch, /*batches=*/true));
  // The replayed page was queued whole, so it went out in batches.
  EXPECT_GE(CountBatches(batched), 42u / kBatch);
  EXPECT_TRUE(MessagesWithin(unaware.messages(), 1, /*batches=*/false));
  EXPECT_TRUE(MessagesWithin(one.messages(), 1, /*batches=*/false));

  // Resume after the last event of a batch in the middle of the stream.
  int64_t resume_after = 0;
  for (const auto& m : batched) {
    if (m.kind == ReceivedMessage::Kind::kBatch && m.event_number > 20) {
      resume_after = m.event_number;
      break;
    }
  }
  ASSERT_GT(resume_after, 0);
  Subscriber resumed(server.address(), Batched(resume_after, kBatch));
  ASSERT_TRUE(resumed.WaitForEvents(static_cast<size_t>(last - resume_after)));
  const int64_t after_resume = writer.RaiseAndResolve("batch-p3", 1);  // Live after the replay.
  ASSERT_TRUE(resumed.WaitForEvents(static_cast<size_t>(after_resume - resume_after)));
  const auto resumed_events = resumed.events();
  EXPECT_EQ(resumed_events.front().event_number(), resume_after + 1);
  EXPECT_TRUE(Contiguous(resumed_events, resume_after + 1));
  EXPECT_TRUE(MessagesWithin(resumed.messages(), kBatch, /*batches=*/true));
  // The others went on too, each in its own form.
  ASSERT_TRUE(batching.WaitForEvents(static_cast<size_t>(after_resume)));
  ASSERT_TRUE(unaware.WaitForEvents(static_cast<size_t>(after_resume)));
  EXPECT_TRUE(Contiguous(batching.events(), 1));
  EXPECT_TRUE(Contiguous(unaware.events(), 1));
  EXPECT_TRUE(MessagesWithin(batching.messages(), kBatch, /*batches=*/true));
  EXPECT_TRUE(MessagesWithin(unaware.messages(), 1, /*batches=*/false));
}

TEST(AlertFeedBatchTest, EachLiveCommitGoesOutTogether) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  Writer writer(server.address());
  // Live only: each commit's seven events are queued at once, so a
  // subscriber allowed 1000 gets at least one of them as a batch.
  Subscriber batching(server.address(), Batched(0, 1000));
  ASSERT_TRUE(batching.WaitForHeartbeat());  // The stream is open.
  const int64_t last = writer.RaiseAndResolve("live", 2);
  ASSERT_TRUE(batching.WaitForEvents(static_cast<size_t>(last)));
  EXPECT_TRUE(Contiguous(batching.events(), 1));
  const auto messages = batching.messages();
  EXPECT_TRUE(MessagesWithin(messages, 1000, /*batches=*/true));
  EXPECT_GE(CountBatches(messages), 1u);
}

TEST(AlertFeedBatchTest, ClientPrintsBatchedEventsAsSingleOnes) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  Writer writer(server.address());
  const int64_t last = writer.RaiseAndResolve("cli", 2);
  ASSERT_EQ(last, 28);
  const std::string server_flag = absl::StrCat("--server=", server.address());
  const std::string count = absl::StrCat("--count=", last);
  for (const char* format : {"--json", "--plain"}) {
    SCOPED_TRACE(format);
    std::vector<std::string> single = {VIGIL_CLIENT_BIN, server_flag};
    if (std::string(format) == "--json") {
      single.push_back(format);
    }
    single.insert(single.end(), {"subscribe", "--after=0", count});
    std::vector<std::string> batched = single;
    batched.push_back("--max-events-per-message=10");
    const auto one_by_one = RunCommand(single);
    const auto together = RunCommand(batched);
    ASSERT_EQ(one_by_one.exit_code, 0) << one_by_one.output;
    ASSERT_EQ(together.exit_code, 0) << together.output;
    EXPECT_EQ(together.output, one_by_one.output);
    EXPECT_EQ(std::count(together.output.begin(), together.output.end(), '\n'), last) << together.output;
  }
  // Out of range: refused by the server, naming the field (exit 65).
  const auto refused =
      RunCommand({VIGIL_CLIENT_BIN, server_flag, "subscribe", "--after=0", "--max-events-per-message=1001"});
  EXPECT_EQ(refused.exit_code, 65) << refused.output;
}

}  // namespace
}  // namespace vigil
