// End-to-end tests of issue 13's erasure and identity requirements against a
// real server and a real SQLite file: a deleted patient's clinical data is
// gone from the answers, the feed and the files; a re-created patient starts
// clean.
#include <signal.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/feed_client.h"
#include "tests/server_process.h"
#include "tests/test_util.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {
namespace {

using ::vigil::testing::FileBytes;
using ::vigil::testing::From;
using ::vigil::testing::MakePatient;
using ::vigil::testing::ServerProcess;
using ::vigil::testing::Subscriber;
using ::vigil::testing::TempDir;

std::chrono::system_clock::time_point Soon() { return std::chrono::system_clock::now() + std::chrono::seconds(30); }

// A patient with severe renal impairment on silperisone (one contraindication
// alert) and an allergy whose reaction text is easy to find in a file.
v1::Patient ProbePatient(const std::string& id) {
  v1::Patient p = MakePatient(id, true);
  auto* allergy = p.add_allergies();
  allergy->set_substance("penicillins");
  allergy->set_reaction("Erasure-probe-reaction");
  return p;
}

class Stubs {
 public:
  explicit Stubs(const std::string& address)
      : channel_(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        patients_(v1::Patients::NewStub(channel_)),
        feed_(v1::AlertFeed::NewStub(channel_)) {}
  v1::PutPatientResponse Put(const v1::Patient& patient) {
    grpc::ClientContext context;
    context.set_deadline(Soon());
    v1::PutPatientRequest request;
    *request.mutable_patient() = patient;
    v1::PutPatientResponse response;
    const auto status = patients_->PutPatient(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  grpc::Status Override(const std::string& alert_id, const std::string& comment) {
    grpc::ClientContext context;
    context.set_deadline(Soon());
    v1::AcknowledgeAlertRequest request;
    request.set_alert_id(alert_id);
    request.set_outcome(v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN);
    request.mutable_reason()->set_code("benefit-outweighs-risk");
    request.set_comment(comment);
    request.set_user("dr-probe");
    v1::AcknowledgeAlertResponse response;
    return feed_->AcknowledgeAlert(&context, request, &response);
  }
  grpc::Status Delete(const std::string& id) {
    grpc::ClientContext context;
    context.set_deadline(Soon());
    v1::DeletePatientRequest request;
    request.set_patient_id(id);
    v1::DeletePatientResponse response;
    return patients_->DeletePatient(&context, request, &response);
  }
  grpc::Status List(const std::string& id, v1::ListAlertsResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(Soon());
    v1::ListAlertsRequest request;
    request.set_patient_id(id);
    request.set_include_resolved(true);
    return feed_->ListAlerts(&context, request, response);
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Patients::Stub> patients_;
  std::unique_ptr<v1::AlertFeed::Stub> feed_;
};

TEST(ErasureTest, DeletedPatientIsGoneFromAnswersFeedAndFilesAndStartsCleanWhenRecreated) {
  TempDir dir;
  const std::string db = dir.path() + "/vigil.db";
  std::string alert_id;
  {
    ServerProcess server({absl::StrCat("--db=", db)});
    ASSERT_TRUE(server.ok()) << server.log();
    Stubs stubs(server.address());
    const auto put = stubs.Put(ProbePatient("erase-me"));
    ASSERT_EQ(put.raised_size(), 1);
    alert_id = put.raised(0).id();
    ASSERT_TRUE(stubs.Override(alert_id, "Erasure-probe-comment").ok());
    stubs.Put(MakePatient("keep-me", true));
    ASSERT_TRUE(stubs.Delete("erase-me").ok());

    v1::ListAlertsResponse listed;
    EXPECT_EQ(stubs.List("erase-me", &listed).error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(listed.alerts_size(), 0);
    ASSERT_TRUE(stubs.List("keep-me", &listed).ok());
    EXPECT_EQ(listed.alerts_size(), 1);

    // The feed keeps every number; the deleted patient's events are
    // tombstones: raised, acknowledged, (keep-me raised), resolved.
    Subscriber replay(server.address(), From(0));
    ASSERT_TRUE(replay.WaitForEvents(4));
    const auto events = replay.events();
    ASSERT_TRUE(::vigil::testing::Contiguous(events, 1));
    for (const auto& e : events) {
      const auto& event = e.alert_event();
      if (event.patient_id() == "keep-me") {
        EXPECT_FALSE(event.erased());
        EXPECT_FALSE(event.alert().summary().empty());
        continue;
      }
      EXPECT_TRUE(event.erased()) << e.event_number();
      EXPECT_EQ(event.alert().id(), alert_id);
      EXPECT_TRUE(event.alert().summary().empty()) << e.event_number();
      EXPECT_EQ(event.alert().drug_ids_size(), 0);
      EXPECT_EQ(event.alert().evidence_size(), 0);
      EXPECT_FALSE(event.has_acknowledgement());
    }
    EXPECT_EQ(events[3].alert_event().type(), v1::ALERT_EVENT_TYPE_RESOLVED);
    ASSERT_EQ(server.Stop(SIGTERM), 0) << server.log();
    EXPECT_EQ(server.log().find("Erasure-probe"), std::string::npos);
  }
  // After a clean stop, neither the database nor its log holds the deleted
  // patient's strings (the other patient's alert names silperisone too, so
  // the probe strings are the deleted patient's own).
  const std::string bytes = FileBytes(db) + FileBytes(db + "-wal");
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find("Erasure-probe-reaction"), std::string::npos);
  EXPECT_EQ(bytes.find("Erasure-probe-comment"), std::string::npos);
  EXPECT_EQ(bytes.find("dr-probe"), std::string::npos);

  // Re-created under the same id: the earlier override does not carry over.
  ServerProcess server({absl::StrCat("--db=", db)});
  ASSERT_TRUE(server.ok()) << server.log();
  Stubs stubs(server.address());
  const auto again = stubs.Put(ProbePatient("erase-me"));
  EXPECT_TRUE(again.created());
  ASSERT_EQ(again.raised_size(), 1);
  EXPECT_EQ(again.raised(0).id(), alert_id);
  v1::ListAlertsResponse listed;
  ASSERT_TRUE(stubs.List("erase-me", &listed).ok());
  ASSERT_EQ(listed.alerts_size(), 1);
  EXPECT_EQ(listed.alerts(0).status(), v1::ALERT_STATUS_ACTIVE);
  EXPECT_EQ(listed.alerts(0).history_size(), 1);
}

}  // namespace
}  // namespace vigil
