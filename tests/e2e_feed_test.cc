// End-to-end tests of the patient registry and the durable alert feed, with
// a real server process and a real SQLite database file.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/feed_client.h"
#include "tests/server_process.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {
namespace {

using ::vigil::testing::Contiguous;
using ::vigil::testing::From;
using ::vigil::testing::MakePatient;
using ::vigil::testing::ServerProcess;
using ::vigil::testing::Subscriber;

class Client {
 public:
  explicit Client(const std::string& address)
      : channel_(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        patients_(v1::Patients::NewStub(channel_)),
        feed_(v1::AlertFeed::NewStub(channel_)),
        check_(v1::DecisionSupport::NewStub(channel_)) {}

  grpc::Status Put(const v1::Patient& patient, v1::PutPatientResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::PutPatientRequest request;
    *request.mutable_patient() = patient;
    return patients_->PutPatient(&context, request, response);
  }
  v1::PutPatientResponse MustPut(const v1::Patient& patient) {
    v1::PutPatientResponse response;
    const auto status = Put(patient, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  grpc::Status Ack(const std::string& alert_id, v1::AcknowledgementOutcome outcome,
                   v1::AcknowledgeAlertResponse* response) {
    grpc::ClientContext context;
    v1::AcknowledgeAlertRequest request;
    request.set_alert_id(alert_id);
    request.set_outcome(outcome);
    request.mutable_reason()->set_code("benefit-outweighs-risk");
    request.set_comment("discussed with nephrology");
    request.set_user("dr-test");
    return feed_->AcknowledgeAlert(&context, request, response);
  }
  v1::ListAlertsResponse List(const std::string& patient_id, bool all) {
    grpc::ClientContext context;
    v1::ListAlertsRequest request;
    request.set_patient_id(patient_id);
    request.set_include_resolved(all);
    v1::ListAlertsResponse response;
    EXPECT_TRUE(feed_->ListAlerts(&context, request, &response).ok());
    return response;
  }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  v1::AlertFeed::Stub& feed() { return *feed_; }
  v1::Patients::Stub& patients() { return *patients_; }
  v1::DecisionSupport::Stub& check() { return *check_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Patients::Stub> patients_;
  std::unique_ptr<v1::AlertFeed::Stub> feed_;
  std::unique_ptr<v1::DecisionSupport::Stub> check_;
};

TEST(AlertFeedTest, RaiseResolveAcknowledgeAndSuppress) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  Client client(server.address());
  Subscriber all(server.address(), From(0));

  auto r1 = client.MustPut(MakePatient("p1", true));
  EXPECT_TRUE(r1.created());
  ASSERT_EQ(r1.raised_size(), 1);
  const std::string alert_id = r1.raised(0).id();
  EXPECT_EQ(r1.raised(0).rule_id(), "silperisone-ci-severe-renal-impairment");
  EXPECT_EQ(r1.last_event_number(), 1);

  // The same context again: nothing changes, no event.
  auto same = client.MustPut(MakePatient("p1", true));
  EXPECT_EQ(same.raised_size(), 0);
  EXPECT_EQ(same.resolved_size(), 0);
  EXPECT_EQ(same.active_size(), 1);
  EXPECT_EQ(same.last_event_number(), 1);

  auto r2 = client.MustPut(MakePatient("p1", false));
  ASSERT_EQ(r2.resolved_size(), 1);
  EXPECT_EQ(r2.resolved(0).id(), alert_id);
  auto r3 = client.MustPut(MakePatient("p1", true));
  ASSERT_EQ(r3.raised_size(), 1);
  EXPECT_EQ(r3.raised(0).id(), alert_id);  // Stable id.

  v1::AcknowledgeAlertResponse ack;
  ASSERT_TRUE(client.Ack(alert_id, v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN, &ack).ok());
  EXPECT_EQ(ack.event_number(), 4);
  EXPECT_EQ(ack.alert().status(), v1::ALERT_STATUS_OVERRIDDEN);

  // Facts go away and come back unchanged: the override holds, no RAISED.
  EXPECT_EQ(client.MustPut(MakePatient("p1", false)).resolved_size(), 1);
  auto back = client.MustPut(MakePatient("p1", true));
  EXPECT_EQ(back.raised_size(), 0);
  ASSERT_EQ(back.active_size(), 1);
  EXPECT_EQ(client.List("p1", false).alerts(0).status(), v1::ALERT_STATUS_OVERRIDDEN);

  // The facts change (stage 5 instead of stage 4): raised again.
  v1::Patient changed = MakePatient("p1", false);
  auto* c = changed.add_conditions()->mutable_code();
  c->set_system("http://hl7.org/fhir/sid/icd-10-cm");
  c->set_code("N18.5");
  auto again = client.MustPut(changed);
  ASSERT_EQ(again.raised_size(), 1);
  EXPECT_EQ(again.raised(0).id(), alert_id);

  // History: raised, resolved, raised, acknowledged, resolved, raised.
  const auto list = client.List("p1", true);
  ASSERT_EQ(list.alerts_size(), 1);
  const auto& history = list.alerts(0).history();
  std::vector<v1::AlertEventType> types;
  for (const auto& h : history) {
    types.push_back(h.type());
  }
  EXPECT_EQ(types, (std::vector<v1::AlertEventType>{
                       v1::ALERT_EVENT_TYPE_RAISED, v1::ALERT_EVENT_TYPE_RESOLVED, v1::ALERT_EVENT_TYPE_RAISED,
                       v1::ALERT_EVENT_TYPE_ACKNOWLEDGED, v1::ALERT_EVENT_TYPE_RESOLVED, v1::ALERT_EVENT_TYPE_RAISED}));
  EXPECT_EQ(history[3].acknowledgement().user(), "dr-test");
  EXPECT_EQ(history[3].acknowledgement().reason().code(), "benefit-outweighs-risk");

  // The subscriber saw all six events, in order.
  ASSERT_TRUE(all.WaitForEvents(6));
  const auto events = all.events();
  EXPECT_TRUE(Contiguous(events, 1));
  EXPECT_EQ(events[3].alert_event().type(), v1::ALERT_EVENT_TYPE_ACKNOWLEDGED);
  EXPECT_EQ(events[3].alert_event().acknowledgement().outcome(), v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN);

  // Deleting the patient resolves the active alert.
  grpc::ClientContext context;
  v1::DeletePatientRequest del;
  del.set_patient_id("p1");
  v1::DeletePatientResponse deleted;
  ASSERT_TRUE(client.patients().DeletePatient(&context, del, &deleted).ok());
  EXPECT_EQ(deleted.resolved_size(), 1);
  grpc::ClientContext get_context;
  v1::GetPatientRequest get;
  get.set_patient_id("p1");
  v1::Patient gone;
  EXPECT_EQ(client.patients().GetPatient(&get_context, get, &gone).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(AlertFeedTest, FiltersAndHeartbeats) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  Client client(server.address());
  v1::SubscribeRequest only_p2 = From(0);
  only_p2.add_patient_ids("p2");
  only_p2.set_min_severity(v1::SEVERITY_CONTRAINDICATED);
  Subscriber filtered(server.address(), only_p2);
  v1::SubscribeRequest live;
  live.set_heartbeat_interval_seconds(1);
  Subscriber idle(server.address(), live);

  client.MustPut(MakePatient("p1", true));                     // Event 1: p1.
  client.MustPut(MakePatient("p2", false, /*unknown=*/1));     // Event 2: p2, unscreened (moderate).
  client.MustPut(MakePatient("p2", true, /*unknown=*/1));      // Event 3: p2, contraindicated.
  ASSERT_TRUE(filtered.WaitForEvents(1));
  absl::SleepFor(absl::Milliseconds(300));
  const auto events = filtered.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event_number(), 3);
  EXPECT_EQ(events[0].alert_event().patient_id(), "p2");

  // Heartbeats carry the latest event number, even of events filtered out.
  ASSERT_TRUE(filtered.WaitForHeartbeat(absl::Seconds(5)));
  EXPECT_EQ(filtered.heartbeats().back(), 3);
  ASSERT_TRUE(idle.WaitForEvents(3));
}

TEST(AlertFeedTest, ResumeAfterDisconnectHasNoGapAndNoDuplicate) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  Client client(server.address());
  int64_t seen = 0;
  {
    Subscriber first(server.address(), From(0));
    for (int i = 0; i < 10; ++i) {
      client.MustPut(MakePatient("p", i % 2 == 0));
    }
    ASSERT_TRUE(first.WaitForEvents(10));
    seen = first.events()[6].event_number();  // Pretend it stopped after seven.
  }
  for (int i = 10; i < 20; ++i) {
    client.MustPut(MakePatient("p", i % 2 == 0));
  }
  Subscriber resumed(server.address(), From(seen));
  ASSERT_TRUE(resumed.WaitForEvents(13));
  client.MustPut(MakePatient("p", true));  // Live after the replay.
  ASSERT_TRUE(resumed.WaitForEvents(14));
  absl::SleepFor(absl::Milliseconds(300));
  const auto events = resumed.events();
  ASSERT_EQ(events.size(), 14u);
  EXPECT_TRUE(Contiguous(events, seen + 1));
}

TEST(AlertFeedTest, EventsSurviveKillAndResumeAfterRestart) {
  char dir[] = "/tmp/vigil-restart-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string db = absl::StrCat("--db=", dir, "/vigil.db");
  int64_t last = 0;
  {
    ServerProcess server({db});
    ASSERT_TRUE(server.ok()) << server.log();
    Client client(server.address());
    for (int i = 0; i < 12; ++i) {
      last = client.MustPut(MakePatient("k", i % 2 == 0, 2)).last_event_number();
    }
    // kill -9: no chance to flush anything that was not already durable.
    server.Stop(SIGKILL);
  }
  ServerProcess restarted({db});
  ASSERT_TRUE(restarted.ok()) << restarted.log();
  Subscriber resumed(restarted.address(), From(0));
  ASSERT_TRUE(resumed.WaitForEvents(static_cast<size_t>(last)));
  EXPECT_TRUE(Contiguous(resumed.events(), 1));
  Client client(restarted.address());
  const auto next = client.MustPut(MakePatient("k", false, 0));
  EXPECT_GT(next.last_event_number(), last);
  EXPECT_EQ(next.last_event_number() - next.resolved_size() - next.raised_size(), last);
  ASSERT_TRUE(resumed.WaitForEvents(static_cast<size_t>(next.last_event_number())));
  EXPECT_TRUE(Contiguous(resumed.events(), 1));
  std::filesystem::remove_all(dir);
}

// Resident memory of a process, in KiB (0 when unknown).
long ResidentKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::stol(line.substr(6));
    }
  }
  return 0;
}

TEST(AlertFeedTest, SlowSubscriberIsBoundedAndOthersKeepReceiving) {
  // A bound of 100 events: three commits of slack for the reading
  // subscriber on a loaded machine, far under the 900 events the stalled one
  // is sent.
  ServerProcess server({"--subscriber_queue=100"});
  ASSERT_TRUE(server.ok()) << server.log();
  const long rss_before = ResidentKib(server.pid());
  Client client(server.address());
  Subscriber fast(server.address(), From(0));
  Subscriber slow(server.address(), From(0), /*read=*/false);
  int64_t last = 0;
  // Each change raises or resolves 30 alerts (unknown drugs): 900 events.
  for (int i = 0; i < 30; ++i) {
    last = client.MustPut(MakePatient("busy", false, i % 2 == 0 ? 30 : 0)).last_event_number();
  }
  ASSERT_TRUE(fast.WaitForEvents(static_cast<size_t>(last)))
      << fast.events().size() << " events, then " << fast.status().error_code() << " " << fast.status().error_message();
  EXPECT_TRUE(Contiguous(fast.events(), 1));
  // The server did not buffer the slow subscriber's backlog.
  const long rss_after = ResidentKib(server.pid());
  EXPECT_GT(rss_before, 0);
  EXPECT_LT(rss_after - rss_before, 32 * 1024) << rss_before << " KiB -> " << rss_after << " KiB";
  std::cout << "server resident memory: " << rss_before << " KiB before, " << rss_after << " KiB after\n";
  // The slow one is closed: RESOURCE_EXHAUSTED with its resume point, or
  // cancelled when its writes stayed stuck.
  slow.StartReading();
  ASSERT_TRUE(slow.WaitForEnd(absl::Seconds(30)));
  const auto status = slow.status();
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
              status.error_code() == grpc::StatusCode::CANCELLED)
      << status.error_code() << " " << status.error_message();
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    EXPECT_NE(status.error_message().find("after_event_number="), std::string::npos);
  }
  EXPECT_LT(slow.events().size(), static_cast<size_t>(last));
  EXPECT_TRUE(Contiguous(slow.events(), 1));
  std::cout << "slow subscriber: " << slow.events().size() << " of " << last << " events, then status "
            << status.error_code() << ": " << status.error_message() << "\n";
}

TEST(AlertFeedTest, ConcurrentWritersAndSubscribersSeeOneOrder) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (int i = 0; i < 3; ++i) {
    subs.push_back(std::make_unique<Subscriber>(server.address(), From(0)));
  }
  std::atomic<int> failures{0};
  std::atomic<int64_t> max_event{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      Client client(server.address());
      for (int i = 0; i < 15; ++i) {
        v1::PutPatientResponse response;
        if (!client.Put(MakePatient(absl::StrCat("w", w), i % 2 == 0, 1), &response).ok()) {
          ++failures;
        }
        int64_t seen = max_event.load();
        while (response.last_event_number() > seen && !max_event.compare_exchange_weak(seen, response.last_event_number())) {
        }
      }
    });
  }
  for (auto& t : writers) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  for (auto& sub : subs) {
    ASSERT_TRUE(sub->WaitForEvents(static_cast<size_t>(max_event.load())));
    EXPECT_TRUE(Contiguous(sub->events(), 1));
  }
  // All subscribers saw the same events.
  const auto a = subs[0]->events();
  for (size_t s = 1; s < subs.size(); ++s) {
    const auto b = subs[s]->events();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].alert_event().alert().id(), b[i].alert_event().alert().id());
    }
  }
}

TEST(AlertFeedTest, ShutdownTellsSubscribersToResume) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  Client client(server.address());
  Subscriber sub(server.address(), From(0));
  client.MustPut(MakePatient("s", true));
  ASSERT_TRUE(sub.WaitForEvents(1));
  server.Signal(SIGTERM);
  ASSERT_TRUE(sub.WaitForEnd(absl::Seconds(15)));
  EXPECT_EQ(sub.status().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(sub.status().error_message().find("after_event_number=1"), std::string::npos) << sub.status().error_message();
}

TEST(AlertFeedTest, CheckAgainstAStoredPatient) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  Client client(server.address());
  client.MustPut(MakePatient("stored", true));
  auto run = [&](const v1::CheckMedicationsRequest& request, std::vector<v1::CheckMedicationsResponse>* out) {
    grpc::ClientContext context;
    auto reader = client.check().CheckMedications(&context, request);
    v1::CheckMedicationsResponse r;
    while (reader->Read(&r)) {
      out->push_back(r);
    }
    return reader->Finish();
  };
  v1::CheckMedicationsRequest request;
  request.set_patient_id("stored");
  request.add_proposed_medications()->set_drug("silperisone");
  std::vector<v1::CheckMedicationsResponse> responses;
  ASSERT_TRUE(run(request, &responses).ok());
  bool renal = false;
  for (const auto& r : responses) {
    renal = renal || (r.has_alert() && r.alert().rule_id() == "silperisone-ci-severe-renal-impairment");
  }
  EXPECT_TRUE(renal);

  request.set_patient_id("nobody");
  responses.clear();
  EXPECT_EQ(run(request, &responses).error_code(), grpc::StatusCode::NOT_FOUND);

  request.set_patient_id("stored");
  request.mutable_patient()->set_id("inline");
  responses.clear();
  const auto both = run(request, &responses);
  EXPECT_EQ(both.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(both.error_message().rfind("patient_id:", 0), 0u);
}

// Issue 13's race: a subscription cancelled while the server begins it
// (between accepting the call and attaching it to the hub). Run under ASan
// and TSan by scripts/sanitize.sh, where a reactor deleted under Begin is a
// reported use after free; here, the server must keep serving, release every
// subscription and stop cleanly.
TEST(AlertFeedTest, CancellingDuringSubscribeIsSafe) {
  ServerProcess server({"--metrics_listen=127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.log();
  const int port = server.LoggedPort("metrics_listening");
  ASSERT_GT(port, 0) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&channel, t] {
      auto stub = v1::AlertFeed::NewStub(channel);
      for (int i = 0; i < 75; ++i) {
        grpc::ClientContext context;
        auto reader = stub->Subscribe(&context, From(0));
        // Cancel at a spread of moments around the server's Begin.
        if ((i + t) % 3 != 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(((i * 7 + t) % 10) * 300));
        }
        context.TryCancel();
        reader->Finish();
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  // Still serving: a new subscriber gets a new event.
  Client client(server.address());
  Subscriber after(server.address(), From(0));
  client.MustPut(MakePatient("after-cancels", true));
  EXPECT_TRUE(after.WaitForEvents(1));
  // Every cancelled subscription was released (only `after` is left).
  bool released = false;
  for (int i = 0; i < 100 && !released; ++i) {
    const auto scrape =
        ::vigil::testing::RunCommand({"/usr/bin/curl", "-sf", absl::StrCat("http://127.0.0.1:", port, "/metrics")});
    released = scrape.output.find("\nvigil_subscribers 1\n") != std::string::npos;
    if (!released) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_TRUE(released);
}

TEST(AlertFeedTest, InvalidRequestsNameTheField) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  Client client(server.address());
  v1::PutPatientResponse put;
  v1::Patient no_id = MakePatient("", true);
  const auto status = client.Put(no_id, &put);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message().rfind("patient.id:", 0), 0u) << status.error_message();

  grpc::ClientContext context;
  v1::AcknowledgeAlertRequest ack;
  ack.set_alert_id("al-x");
  ack.set_outcome(v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN);
  ack.set_user("u");
  v1::AcknowledgeAlertResponse ack_response;
  const auto ack_status = client.feed().AcknowledgeAlert(&context, ack, &ack_response);
  EXPECT_EQ(ack_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ack_status.error_message().rfind("reason.code:", 0), 0u);

  grpc::ClientContext missing_context;
  ack.mutable_reason()->set_code("r");
  EXPECT_EQ(client.feed().AcknowledgeAlert(&missing_context, ack, &ack_response).error_code(),
            grpc::StatusCode::NOT_FOUND);

  Subscriber future(server.address(), From(1000));
  ASSERT_TRUE(future.WaitForEnd(absl::Seconds(5)));
  EXPECT_EQ(future.status().error_code(), grpc::StatusCode::OUT_OF_RANGE);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(AlertFeedTest, ListAlertsPagesThroughEveryAlertOnceInOrder) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  Client client(server.address());
  client.MustPut(MakePatient("paged", true, 6));
  const v1::ListAlertsResponse whole = client.List("paged", false);
  ASSERT_GE(whole.alerts_size(), 7);
  EXPECT_TRUE(whole.next_page_token().empty());
  auto page = [&](const std::string& token, int size, bool all, v1::ListAlertsResponse* response) {
    grpc::ClientContext context;
    v1::ListAlertsRequest request;
    request.set_patient_id("paged");
    request.set_page_size(size);
    request.set_page_token(token);
    request.set_include_resolved(all);
    return client.feed().ListAlerts(&context, request, response);
  };
  std::vector<std::string> paged;
  std::string token;
  std::string first_token;
  int pages = 0;
  do {
    v1::ListAlertsResponse response;
    ASSERT_TRUE(page(token, 3, false, &response).ok());
    EXPECT_LE(response.alerts_size(), 3);
    for (const auto& record : response.alerts()) {
      paged.push_back(record.alert().id());
    }
    token = response.next_page_token();
    if (pages == 0) {
      first_token = token;
    }
    ++pages;
  } while (!token.empty() && pages < 100);
  std::vector<std::string> expected;
  for (const auto& record : whole.alerts()) {
    expected.push_back(record.alert().id());
  }
  EXPECT_EQ(paged, expected);
  EXPECT_EQ(pages, (whole.alerts_size() + 2) / 3);
  // A token is for the request it came from, and is not something else.
  v1::ListAlertsResponse refused;
  const grpc::Status other = page(first_token, 3, true, &refused);
  EXPECT_EQ(other.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(other.error_message().rfind("page_token:", 0), 0u) << other.error_message();
  EXPECT_EQ(page("not-a-token", 3, false, &refused).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(page("", 1001, false, &refused).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // The token survives a write that re-screens the patient: the next page
  // continues after the last alert of the first.
  client.MustPut(MakePatient("paged", true, 6));
  v1::ListAlertsResponse second;
  ASSERT_TRUE(page(first_token, 3, false, &second).ok());
  ASSERT_GT(second.alerts_size(), 0);
  EXPECT_EQ(second.alerts(0).alert().id(), expected[3]);
}

}  // namespace
}  // namespace vigil
