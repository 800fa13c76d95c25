// Several vigil-server processes on one PostgreSQL database (a throwaway
// cluster the test starts): writes through one replica reach subscribers of
// the others in order and once; a subscriber resumes on a third replica with
// no gap or repeat; acknowledgements work whichever replica receives them;
// a CDS Hooks card shown by one replica is known to the others;
// a replica killed with SIGKILL mid-write loses nothing it acknowledged;
// PostgreSQL restarted under load makes calls fail with UNAVAILABLE, then
// recover, losing nothing acknowledged.
#include <signal.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cds_hooks_requests.h"
#include "tests/feed_client.h"
#include "tests/pg_cluster.h"
#include "tests/server_process.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {
namespace {

using ::vigil::testing::CardsAbout;
using ::vigil::testing::CdsRequestFor;
using ::vigil::testing::From;
using ::vigil::testing::PostCds;
using ::vigil::testing::MakePatient;
using ::vigil::testing::PgCluster;
using ::vigil::testing::ServerProcess;
using ::vigil::testing::Subscriber;

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = PgCluster::Create();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    auto db = cluster_->CreateDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    uri_ = cluster_->Uri(*db);
  }

  std::unique_ptr<ServerProcess> Replica(std::vector<std::string> more_flags = {}) {
    std::vector<std::string> flags{absl::StrCat("--kb=", VIGIL_BUNDLED_KB), absl::StrCat("--db=", uri_)};
    flags.insert(flags.end(), more_flags.begin(), more_flags.end());
    auto server = std::make_unique<ServerProcess>(std::move(flags));
    EXPECT_TRUE(server->ok()) << server->log();
    return server;
  }

  static grpc::Status Put(const std::string& address, const v1::Patient& patient, v1::PutPatientResponse* response) {
    auto stub = v1::Patients::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::PutPatientRequest request;
    *request.mutable_patient() = patient;
    return stub->PutPatient(&context, request, response);
  }

  static std::vector<int64_t> Numbers(Subscriber& subscriber) {
    std::vector<int64_t> numbers;
    for (const auto& message : subscriber.events()) {
      numbers.push_back(message.event_number());
    }
    return numbers;
  }

  std::unique_ptr<PgCluster> cluster_;
  std::string uri_;
};

TEST_F(ReplicasTest, WritesThroughOneReachSubscribersOfTheOthersInOrderAndResumeElsewhere) {
  auto a = Replica();
  auto b = Replica();
  auto c = Replica();
  ASSERT_TRUE(a->ok() && b->ok() && c->ok());
  Subscriber on_b(b->address(), From(0));
  int64_t last = 0;
  for (int i = 0; i < 6; ++i) {
    v1::PutPatientResponse response;
    // Alternate writers: events interleave across replicas.
    const grpc::Status status = Put(i % 2 == 0 ? a->address() : c->address(),
                                    MakePatient(absl::StrCat("replica-pt-", i), /*severe_renal=*/true), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    last = std::max(last, response.last_event_number());
  }
  ASSERT_GT(last, 5);
  ASSERT_TRUE(on_b.WaitForEvents(static_cast<size_t>(last), absl::Seconds(30))) << b->log();
  std::vector<int64_t> numbers = Numbers(on_b);
  ASSERT_EQ(numbers.size(), static_cast<size_t>(last));
  for (size_t k = 0; k < numbers.size(); ++k) {
    EXPECT_EQ(numbers[k], static_cast<int64_t>(k) + 1);
  }
  // Resume on replica C from the middle: exactly the rest.
  const int64_t middle = last / 2;
  Subscriber on_c(c->address(), From(middle));
  ASSERT_TRUE(on_c.WaitForEvents(static_cast<size_t>(last - middle), absl::Seconds(30))) << c->log();
  numbers = Numbers(on_c);
  ASSERT_EQ(numbers.size(), static_cast<size_t>(last - middle));
  EXPECT_EQ(numbers.front(), middle + 1);
  EXPECT_EQ(numbers.back(), last);

  // An alert raised through A is acknowledged through B; A's subscribers see it.
  const std::string alert_id = on_b.events().front().alert_event().alert().id();
  auto feed = v1::AlertFeed::NewStub(grpc::CreateChannel(b->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::AcknowledgeAlertRequest ack;
  ack.set_alert_id(alert_id);
  ack.set_outcome(v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN);
  ack.mutable_reason()->set_code("benefit-outweighs-risk");
  ack.set_user("dr-replica");
  v1::AcknowledgeAlertResponse acked;
  const grpc::Status status = feed->AcknowledgeAlert(&context, ack, &acked);
  ASSERT_TRUE(status.ok()) << status.error_message();
  Subscriber on_a(a->address(), From(last));
  ASSERT_TRUE(on_a.WaitForEvents(1, absl::Seconds(30))) << a->log();
  EXPECT_EQ(on_a.events().front().alert_event().type(), v1::ALERT_EVENT_TYPE_ACKNOWLEDGED);
  EXPECT_EQ(on_a.events().front().event_number(), acked.event_number());
}

// CDS Hooks behind a load balancer: the card order-select showed on one
// replica is not shown again at order-sign on another, and feedback on it is
// accepted by a third, which acknowledges the alert for every subscriber.
TEST_F(ReplicasTest, ACdsHooksCardShownByOneReplicaIsKnownToTheOthers) {
  std::vector<std::unique_ptr<ServerProcess>> replicas;
  std::vector<int> ports;
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(Replica({"--http_listen=127.0.0.1:0"}));
    ASSERT_TRUE(replicas.back()->ok());
    ports.push_back(replicas.back()->LoggedPort("http_listening"));
    ASSERT_GT(ports.back(), 0) << replicas.back()->log();
  }
  nlohmann::json select = CdsRequestFor("replica-cds-pt", "order-select");
  select["context"]["selections"] = nlohmann::json::array({"MedicationRequest/draft-ibuprofen"});
  const auto [select_status, at_select] = PostCds(ports[0], "vigil-order-select", select.dump());
  ASSERT_EQ(select_status, 200) << at_select.dump(2);
  const auto shown = CardsAbout(at_select, "warfarin");
  ASSERT_FALSE(shown.empty()) << at_select.dump(2);

  const auto [sign_status, at_sign] =
      PostCds(ports[1], "vigil-order-sign", CdsRequestFor("replica-cds-pt").dump());
  ASSERT_EQ(sign_status, 200) << at_sign.dump(2);
  EXPECT_TRUE(CardsAbout(at_sign, "warfarin").empty()) << "shown again on another replica: " << at_sign.dump(2);

  Subscriber on_a(replicas[0]->address(), From(0));
  const nlohmann::json feedback = {
      {"feedback",
       nlohmann::json::array({{{"card", shown.front()["uuid"]},
                               {"outcome", "overridden"},
                               {"overrideReason",
                                {{"reason", {{"system", "urn:vigil:v1:override-reason"}, {"code", "will-monitor"}}}}}}})}};
  const auto [fb_status, fb_reply] = PostCds(ports[2], "vigil-order-select/feedback", feedback.dump());
  ASSERT_EQ(fb_status, 200) << fb_reply.dump(2);
  ASSERT_TRUE(on_a.WaitForEvents(1, absl::Seconds(30))) << replicas[0]->log();
  const v1::AlertEvent event = on_a.events().front().alert_event();  // events() is a copy
  EXPECT_EQ(event.type(), v1::ALERT_EVENT_TYPE_ACKNOWLEDGED);
  EXPECT_EQ(event.patient_id(), "replica-cds-pt");
  EXPECT_EQ(event.acknowledgement().reason().code(), "will-monitor");
}

TEST_F(ReplicasTest, AReplicaKilledMidWriteLosesNothingItAcknowledged) {
  auto a = Replica();
  auto b = Replica();
  ASSERT_TRUE(a->ok() && b->ok());
  std::atomic<bool> stop{false};
  std::set<std::string> acknowledged;  // patients whose put A acknowledged (the writer's until joined)
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      v1::PutPatientResponse response;
      const std::string id = absl::StrCat("kill-pt-", i);
      if (Put(a->address(), MakePatient(id, true), &response).ok()) {
        acknowledged.insert(id);
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(800));
  a->Signal(SIGKILL);
  absl::SleepFor(absl::Milliseconds(200));
  stop = true;
  writer.join();
  ASSERT_FALSE(acknowledged.empty());
  // Every acknowledged patient's RAISED event is on the feed of B.
  Subscriber on_b(b->address(), From(0));
  ASSERT_TRUE(on_b.WaitForEvents(acknowledged.size(), absl::Seconds(30)));
  absl::SleepFor(absl::Milliseconds(300));
  std::set<std::string> on_feed;
  int64_t expected = 1;
  for (const auto& message : on_b.events()) {
    EXPECT_EQ(message.event_number(), expected++);
    on_feed.insert(message.alert_event().patient_id());
  }
  for (const auto& id : acknowledged) {
    EXPECT_TRUE(on_feed.count(id) == 1) << id << " was acknowledged and is not on the feed";
  }
}

TEST_F(ReplicasTest, PostgresRestartUnderLoadFailsCallsClearlyThenRecoversLosingNothing) {
  auto a = Replica();
  ASSERT_TRUE(a->ok());
  std::atomic<bool> stop{false};
  std::atomic<int> unavailable{0};
  std::atomic<int> other_errors{0};
  std::set<std::string> acknowledged;  // the writer's until joined
  std::atomic<size_t> acknowledged_count{0};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      v1::PutPatientResponse response;
      const std::string id = absl::StrCat("restart-pt-", i);
      const grpc::Status status = Put(a->address(), MakePatient(id, true), &response);
      if (status.ok()) {
        acknowledged.insert(id);
        ++acknowledged_count;
      } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
        ++unavailable;
      } else {
        ++other_errors;
        ADD_FAILURE() << "unexpected: " << status.error_code() << " " << status.error_message();
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_TRUE(cluster_->Stop().ok());
  absl::SleepFor(absl::Seconds(2));
  ASSERT_TRUE(cluster_->Start().ok());
  // Calls succeed again once the database is back.
  const size_t before = acknowledged_count.load();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (acknowledged_count.load() < before + 5 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  stop = true;
  writer.join();
  EXPECT_GT(unavailable.load(), 0) << "no call failed while PostgreSQL was down";
  EXPECT_EQ(other_errors.load(), 0);
  EXPECT_GE(acknowledged.size(), before + 5) << "calls did not recover: " << a->log();
  Subscriber all(a->address(), From(0));
  ASSERT_TRUE(all.WaitForEvents(acknowledged.size(), absl::Seconds(30)));
  std::set<std::string> on_feed;
  for (const auto& message : all.events()) {
    on_feed.insert(message.alert_event().patient_id());
  }
  for (const auto& id : acknowledged) {
    EXPECT_EQ(on_feed.count(id), 1u) << id << " was acknowledged and is not on the feed";
  }
}

}  // namespace
}  // namespace vigil
