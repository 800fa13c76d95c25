// End-to-end tests of malformed requests against a real vigil-server process:
// every RPC with an empty request, messages over --max_message_bytes, huge
// repeated fields, invalid UTF-8, unknown enum values, duplicates, absurd
// numbers, unknown units, malformed codes and raw garbage bytes.
//
// Each case asserts the exact status code and, where the server validates the
// content, that the message starts with the offending field's path (the
// contract in README.md: "patient.labs[0].unit: is required and is empty").
// After every test the same process must be alive and still screen a normal
// order correctly, and at the end it must stop cleanly on SIGTERM.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tests/server_process.h"
#include "tests/test_util.h"
#include "vigil/v1/admin.grpc.pb.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/drug_catalog.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {
namespace {

using ::vigil::testing::ServerProcess;

constexpr char kIcd10Cm[] = "http://hl7.org/fhir/sid/icd-10-cm";
constexpr char kSnomed[] = "http://snomed.info/sct";
constexpr char kLoinc[] = "http://loinc.org";
constexpr char kEgfrLoinc[] = "62238-1";
constexpr char kEgfrUnit[] = "mL/min/{1.73_m2}";
constexpr char kCheckMethod[] = "/vigil.v1.DecisionSupport/CheckMedications";
constexpr char kCheckUnaryMethod[] = "/vigil.v1.DecisionSupport/CheckMedicationsUnary";
constexpr char kPutMethod[] = "/vigil.v1.Patients/PutPatient";

// The server under test accepts requests up to 1 MiB, so that oversized
// messages stay cheap to build and send.
constexpr int kMaxMessageBytes = 1 << 20;

// Beyond every per-field limit of server/api/validation.h (500 entries).
constexpr int kThousands = 5000;

// Generous: the machine may be loaded; no assertion depends on timing.
constexpr auto kCallTimeout = std::chrono::seconds(30);

std::chrono::system_clock::time_point Deadline() { return std::chrono::system_clock::now() + kCallTimeout; }

struct CheckCall {
  grpc::Status status;
  std::vector<v1::CheckMedicationsResponse> responses;
};

// A call made with raw bytes as the request body, and the raw responses.
struct RawCall {
  grpc::Status status;
  std::vector<std::string> responses;
};

std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (buffer.Dump(&slices).ok()) {
    for (const auto& slice : slices) {
      out.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }
  return out;
}

// Sends `body` as the one request message of `method`, without any protobuf
// on the client side, and reads every response until the status. The generic
// stub frames bytes exactly as a typed stub would, so the server cannot tell
// the difference until it parses them. Works for unary and server-streaming
// methods alike (one message, then half-close).
RawCall CallRaw(const std::shared_ptr<grpc::Channel>& channel, const std::string& method, const std::string& body) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  RawCall result;
  auto wait = [&cq](intptr_t want) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  auto call = stub.PrepareCall(&context, method, &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  if (wait(1)) {
    grpc::Slice slice(body);
    grpc::ByteBuffer request(&slice, 1);
    call->WriteLast(request, grpc::WriteOptions(), reinterpret_cast<void*>(2));
    if (wait(2)) {
      grpc::ByteBuffer response;
      while (true) {
        call->Read(&response, reinterpret_cast<void*>(3));
        if (!wait(3)) {
          break;
        }
        result.responses.push_back(ToString(response));
      }
    }
  }
  call->Finish(&result.status, reinterpret_cast<void*>(4));
  wait(4);
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  return result;
}

// Serializes `message` and replaces its one occurrence of `placeholder` with
// `bytes` of the same length. This is how invalid UTF-8 gets into a string
// field: the C++ serializer only logs about such strings, and a field length
// that stays the same keeps the rest of the encoding valid.
std::string SerializeWithBytes(const google::protobuf::Message& message, const std::string& placeholder,
                               const std::string& bytes) {
  EXPECT_EQ(placeholder.size(), bytes.size());
  std::string wire = message.SerializeAsString();
  const size_t at = wire.find(placeholder);
  EXPECT_NE(at, std::string::npos) << placeholder;
  EXPECT_EQ(wire.find(placeholder, at + 1), std::string::npos) << "placeholder appears twice";
  if (at != std::string::npos) {
    wire.replace(at, placeholder.size(), bytes);
  }
  return wire;
}

// INVALID_ARGUMENT whose message starts with "`field`:".
::testing::AssertionResult RejectedNaming(const grpc::Status& status, const std::string& field) {
  if (status.error_code() != grpc::StatusCode::INVALID_ARGUMENT) {
    return ::testing::AssertionFailure() << "expected INVALID_ARGUMENT naming '" << field << "', got code "
                                         << status.error_code() << " '" << status.error_message() << "'";
  }
  if (!absl::StartsWith(status.error_message(), absl::StrCat(field, ":"))) {
    return ::testing::AssertionFailure() << "INVALID_ARGUMENT, but the message '" << status.error_message()
                                         << "' does not start with '" << field << ":'";
  }
  // The details carry google.rpc.BadRequest naming the same field.
  google::rpc::Status details;
  google::rpc::BadRequest bad_request;
  if (!details.ParseFromString(status.error_details()) || details.details_size() != 1 ||
      !details.details(0).UnpackTo(&bad_request) || bad_request.field_violations_size() != 1) {
    return ::testing::AssertionFailure() << "INVALID_ARGUMENT naming '" << field
                                         << "', but without a google.rpc.BadRequest in its details";
  }
  if (bad_request.field_violations(0).field() != field || bad_request.field_violations(0).description().empty()) {
    return ::testing::AssertionFailure() << "BadRequest names '" << bad_request.field_violations(0).field()
                                         << "', not '" << field << "'";
  }
  return ::testing::AssertionSuccess();
}

// A status for bytes that do not parse as the request message. gRPC's status
// table says "Error parsing request proto: INTERNAL"; this server's contract
// says invalid requests get INVALID_ARGUMENT. Either is a right answer.
// UNIMPLEMENTED (what the gRPC 1.51 callback API answers on its own) is not:
// it tells the client the method does not exist.
// INVALID_ARGUMENT naming the request and its type (the server's parse-error
// interceptor; gRPC alone answers UNIMPLEMENTED with no message).
::testing::AssertionResult RejectedAsUnparseable(const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
      absl::StartsWith(status.error_message(), "request: cannot be parsed as vigil.v1.")) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "expected INVALID_ARGUMENT 'request: cannot be parsed as vigil.v1...' for an "
                                       << "unparseable request, got code " << status.error_code() << " '"
                                       << status.error_message() << "'";
}

// RESOURCE_EXHAUSTED from gRPC's own size check.
::testing::AssertionResult RefusedAsOversized(const grpc::Status& status) {
  if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) {
    return ::testing::AssertionFailure() << "expected RESOURCE_EXHAUSTED for an oversized message, got code "
                                         << status.error_code() << " '" << status.error_message() << "'";
  }
  if (!absl::StrContains(status.error_message(), "larger than max")) {
    return ::testing::AssertionFailure() << "unexpected message '" << status.error_message() << "'";
  }
  return ::testing::AssertionSuccess();
}

// True while the process exists and is not a zombie (read from /proc rather
// than with waitpid, which would reap it from under ServerProcess).
bool ProcessAlive(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat;
  std::getline(in, stat);
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) {
    return false;
  }
  const char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

v1::LabResult* AddLab(v1::Patient* patient, const std::string& loinc, double value, const std::string& unit) {
  auto* lab = patient->add_labs();
  lab->mutable_code()->set_system(kLoinc);
  lab->mutable_code()->set_code(loinc);
  lab->set_value(value);
  lab->set_unit(unit);
  return lab;
}

void AddCondition(v1::Patient* patient, const std::string& system, const std::string& code) {
  auto* coding = patient->add_conditions()->mutable_code();
  coding->set_system(system);
  coding->set_code(code);
}

// eGFR 22 with sertraline, proposing silperisone: a contraindication (renal)
// and an interaction. The reference answer every test compares against.
v1::CheckMedicationsRequest NormalCheck() {
  v1::CheckMedicationsRequest request;
  auto* patient = request.mutable_patient();
  patient->set_id("malformed-normal");
  AddLab(patient, kEgfrLoinc, 22, kEgfrUnit);
  patient->add_medications()->set_drug("sertraline");
  request.add_proposed_medications()->set_drug("silperisone");
  return request;
}

// A small valid patient for PutPatient.
v1::PutPatientRequest NormalPut(const std::string& id) {
  v1::PutPatientRequest request;
  request.mutable_patient()->set_id(id);
  request.mutable_patient()->add_medications()->set_drug("silperisone");
  return request;
}

std::vector<std::string> AlertIds(const std::vector<v1::CheckMedicationsResponse>& responses) {
  std::vector<std::string> ids;
  for (const auto& r : responses) {
    if (r.has_alert()) {
      ids.push_back(r.alert().id());
    }
  }
  return ids;
}

int CountKind(const std::vector<v1::CheckMedicationsResponse>& responses, v1::AlertKind kind) {
  int n = 0;
  for (const auto& r : responses) {
    n += r.has_alert() && r.alert().kind() == kind ? 1 : 0;
  }
  return n;
}

// Alerts of `kind` from the rule `rule_id` (a rule whose lab could not be
// read gives an INCOMPLETE_DATA alert with the same rule id).
int CountRule(const std::vector<v1::CheckMedicationsResponse>& responses, v1::AlertKind kind,
              const std::string& rule_id) {
  int n = 0;
  for (const auto& r : responses) {
    n += r.has_alert() && r.alert().kind() == kind && r.alert().rule_id() == rule_id ? 1 : 0;
  }
  return n;
}

// A stream that ended with its summary, whose count matches the alerts sent.
::testing::AssertionResult CompleteStream(const CheckCall& call) {
  if (!call.status.ok()) {
    return ::testing::AssertionFailure() << "status " << call.status.error_code() << " '"
                                         << call.status.error_message() << "'";
  }
  if (call.responses.empty() || !call.responses.back().has_summary()) {
    return ::testing::AssertionFailure() << "the stream has no summary";
  }
  if (call.responses.back().summary().alert_count() != static_cast<int>(call.responses.size()) - 1) {
    return ::testing::AssertionFailure() << "summary counts " << call.responses.back().summary().alert_count()
                                         << " alerts, the stream had " << call.responses.size() - 1;
  }
  return ::testing::AssertionSuccess();
}

class MalformedRequestTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({absl::StrCat("--kb=", VIGIL_BUNDLED_KB),
                                 absl::StrCat("--max_message_bytes=", kMaxMessageBytes)});
    ASSERT_TRUE(server_->ok()) << "server did not start: " << server_->log();
    // Unlimited on the client side: the server's limit is under test.
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(-1);
    args.SetMaxReceiveMessageSize(-1);
    channel_ = new std::shared_ptr<grpc::Channel>(
        grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args));
  }

  static void TearDownTestSuite() {
    delete channel_;
    channel_ = nullptr;
    if (server_ != nullptr) {
      // Whatever it was sent, the server shuts down cleanly on SIGTERM.
      const int status = server_->Stop(SIGTERM);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status << "\n" << server_->log();
      EXPECT_NE(server_->log().find("\"event\":\"stopped\""), std::string::npos) << server_->log();
      delete server_;
      server_ = nullptr;
    }
  }

  // After each battery: the process is alive and a normal check gets the
  // same answer as on a fresh server.
  void TearDown() override {
    if (server_ == nullptr || !server_->ok()) {
      return;
    }
    ASSERT_TRUE(ProcessAlive(server_->pid())) << "the server died:\n" << server_->log();
    const auto call = Check(NormalCheck());
    ASSERT_TRUE(CompleteStream(call));
    ASSERT_GE(call.responses.size(), 3u);
    EXPECT_EQ(call.responses.front().alert().rule_id(), "silperisone-ci-severe-renal-impairment");
    EXPECT_EQ(call.responses.front().alert().severity(), v1::SEVERITY_CONTRAINDICATED);
    EXPECT_EQ(CountRule(call.responses, v1::ALERT_KIND_DRUG_INTERACTION, "ddi-silperisone-antidepressants"), 1);
    EXPECT_TRUE(call.responses.back().summary().complete());
  }

  static std::shared_ptr<grpc::Channel> channel() { return *channel_; }

  static CheckCall Check(const v1::CheckMedicationsRequest& request) {
    auto stub = v1::DecisionSupport::NewStub(*channel_);
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    CheckCall call;
    auto reader = stub->CheckMedications(&context, request);
    v1::CheckMedicationsResponse response;
    while (reader->Read(&response)) {
      call.responses.push_back(response);
    }
    call.status = reader->Finish();
    return call;
  }

  static grpc::Status Put(const v1::PutPatientRequest& request, v1::PutPatientResponse* response = nullptr) {
    v1::PutPatientResponse ignored;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    return v1::Patients::NewStub(*channel_)->PutPatient(&context, request, response != nullptr ? response : &ignored);
  }

  // Opens a subscription and returns its status when it ends without a
  // message (a rejection), or OK when a first message arrives.
  static grpc::Status SubscribeStatus(const v1::SubscribeRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    auto reader = v1::AlertFeed::NewStub(*channel_)->Subscribe(&context, request);
    v1::SubscribeResponse response;
    if (reader->Read(&response)) {
      context.TryCancel();
      reader->Finish();
      return grpc::Status::OK;
    }
    return reader->Finish();
  }

  // Checks an inline patient and stores it: both paths validate the same
  // context and must name the same field.
  static void ExpectPatientRejected(const v1::Patient& patient, const std::string& field) {
    v1::CheckMedicationsRequest check;
    *check.mutable_patient() = patient;
    check.add_proposed_medications()->set_drug("silperisone");
    const auto call = Check(check);
    EXPECT_TRUE(RejectedNaming(call.status, field)) << "CheckMedications";
    EXPECT_TRUE(call.responses.empty()) << "no alert may precede a rejection";
    v1::PutPatientRequest put;
    *put.mutable_patient() = patient;
    if (put.patient().id().empty()) {
      put.mutable_patient()->set_id("malformed-put");
    }
    EXPECT_TRUE(RejectedNaming(Put(put), field)) << "PutPatient";
  }

  static ServerProcess* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};

ServerProcess* MalformedRequestTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* MalformedRequestTest::channel_ = nullptr;

TEST_F(MalformedRequestTest, EmptyRequestToEveryRpcNamesTheRequiredFieldOrIsServed) {
  auto catalog = v1::DrugCatalog::NewStub(channel());
  auto patients = v1::Patients::NewStub(channel());
  auto feed = v1::AlertFeed::NewStub(channel());
  auto admin = v1::Admin::NewStub(channel());

  const auto check = Check(v1::CheckMedicationsRequest());
  EXPECT_TRUE(RejectedNaming(check.status, "patient"));
  EXPECT_TRUE(check.responses.empty());
  {
    grpc::ClientContext context;
    v1::CheckMedicationsUnaryResponse response;
    EXPECT_TRUE(RejectedNaming(v1::DecisionSupport::NewStub(channel())->CheckMedicationsUnary(
                                   &context, testing::Unary(v1::CheckMedicationsRequest()), &response),
                               "patient"));
  }
  EXPECT_TRUE(RejectedNaming(Put(v1::PutPatientRequest()), "patient"));
  {
    grpc::ClientContext context;
    v1::Patient response;
    EXPECT_TRUE(RejectedNaming(patients->GetPatient(&context, v1::GetPatientRequest(), &response), "patient_id"));
  }
  {
    grpc::ClientContext context;
    v1::DeletePatientResponse response;
    EXPECT_TRUE(
        RejectedNaming(patients->DeletePatient(&context, v1::DeletePatientRequest(), &response), "patient_id"));
  }
  {
    grpc::ClientContext context;
    v1::AcknowledgeAlertResponse response;
    EXPECT_TRUE(
        RejectedNaming(feed->AcknowledgeAlert(&context, v1::AcknowledgeAlertRequest(), &response), "alert_id"));
  }
  {
    grpc::ClientContext context;
    v1::ListAlertsResponse response;
    EXPECT_TRUE(RejectedNaming(feed->ListAlerts(&context, v1::ListAlertsRequest(), &response), "patient_id"));
  }
  {
    grpc::ClientContext context;
    v1::Drug response;
    EXPECT_TRUE(RejectedNaming(catalog->GetDrug(&context, v1::GetDrugRequest(), &response), "name"));
  }
  {
    grpc::ClientContext context;
    v1::SearchDrugsResponse response;
    EXPECT_TRUE(RejectedNaming(catalog->SearchDrugs(&context, v1::SearchDrugsRequest(), &response), "query"));
  }

  // Requests without required fields are served as documented.
  std::string version;
  {
    grpc::ClientContext context;
    v1::KnowledgeBase response;
    ASSERT_TRUE(catalog->GetKnowledgeBase(&context, v1::GetKnowledgeBaseRequest(), &response).ok());
    EXPECT_EQ(response.version().size(), 64u);
    EXPECT_GT(response.drug_count(), 100);
    version = response.version();
  }
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    v1::ReloadKnowledgeBaseResponse response;
    const auto status = admin->ReloadKnowledgeBase(&context, v1::ReloadKnowledgeBaseRequest(), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.previous_version(), version);
    EXPECT_FALSE(response.changed());
  }
  {
    // Page 0 onwards: the rejected PutPatient above was audited (a call is
    // answered only once its audit record is written) with its outcome.
    v1::ListAuditEventsRequest request;
    bool found = false;
    for (int page = 0; page < 1000; ++page) {
      grpc::ClientContext context;
      v1::ListAuditEventsResponse response;
      ASSERT_TRUE(admin->ListAuditEvents(&context, request, &response).ok());
      for (const auto& event : response.events()) {
        found = found || (event.method() == "vigil.v1.Patients/PutPatient" && event.outcome() == google::rpc::INVALID_ARGUMENT);
      }
      if (response.next_after_id() == request.after_id()) {
        break;
      }
      request.set_after_id(response.next_after_id());
    }
    EXPECT_TRUE(found) << "the rejected PutPatient is not in the audit trail";
  }
  {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(grpc::health::v1::Health::NewStub(channel())
                    ->Check(&context, grpc::health::v1::HealthCheckRequest(), &response)
                    .ok());
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }

  // An empty subscription means "every patient, live events only". The
  // subscription is registered asynchronously, so a patient's alert is
  // toggled until the stream delivers one of its events.
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  auto reader = feed->Subscribe(&context, v1::SubscribeRequest());
  std::atomic<bool> received{false};
  v1::SubscribeResponse first;
  std::thread read([&] {
    while (reader->Read(&first)) {
      if (first.has_alert_event()) {
        received = true;
        return;
      }
    }
  });
  v1::PutPatientRequest toggle = NormalPut("malformed-empty-subscribe");
  for (int i = 0; i < 300 && !received.load(); ++i) {
    toggle.mutable_patient()->clear_conditions();
    if (i % 2 == 0) {
      AddCondition(toggle.mutable_patient(), kIcd10Cm, "N18.4");
    }
    ASSERT_TRUE(Put(toggle).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  context.TryCancel();
  read.join();
  reader->Finish();
  ASSERT_TRUE(received.load()) << "the empty subscription delivered no event";
  EXPECT_EQ(first.alert_event().patient_id(), "malformed-empty-subscribe");
}

TEST_F(MalformedRequestTest, MessagesOverTheSizeLimitAreRefusedWithResourceExhausted) {
  // One string field of 1.5 MiB: over the message limit, so gRPC refuses it
  // before the service (whose own limit, 64 KiB a string, never runs).
  v1::PutPatientRequest put = NormalPut("malformed-oversized");
  put.mutable_patient()->mutable_medications(0)->set_frequency(std::string(kMaxMessageBytes * 3 / 2, 'x'));
  EXPECT_TRUE(RefusedAsOversized(Put(put)));

  v1::CheckMedicationsRequest check = NormalCheck();
  *check.mutable_patient() = put.patient();
  const auto call = Check(check);
  EXPECT_TRUE(RefusedAsOversized(call.status));
  EXPECT_TRUE(call.responses.empty());

  // 100,000 conditions (about 5 MB): refused by size before anyone counts them.
  v1::CheckMedicationsRequest many = NormalCheck();
  for (int i = 0; i < 100000; ++i) {
    AddCondition(many.mutable_patient(), kIcd10Cm, "N18.4");
  }
  ASSERT_GT(many.ByteSizeLong(), static_cast<size_t>(kMaxMessageBytes));
  EXPECT_TRUE(RefusedAsOversized(Check(many).status));

  // Oversized garbage is refused by size too, before any parsing.
  EXPECT_TRUE(RefusedAsOversized(CallRaw(channel(), kCheckMethod, std::string(2 * kMaxMessageBytes, '\xff')).status));
  EXPECT_TRUE(RefusedAsOversized(CallRaw(channel(), kPutMethod, std::string(2 * kMaxMessageBytes, '\x0a')).status));

  // Just under the limit, a valid request is served: the limit is where the
  // flag puts it. 14 strings of 60,000 bytes each (under 64 KiB) make 840 KB.
  v1::CheckMedicationsRequest big_but_valid = NormalCheck();
  for (int i = 0; i < 14; ++i) {
    auto* med = big_but_valid.mutable_patient()->add_medications();
    med->set_drug("sertraline");
    med->set_frequency(std::string(60000, 'f'));
  }
  ASSERT_LT(big_but_valid.ByteSizeLong(), static_cast<size_t>(kMaxMessageBytes));
  ASSERT_GT(big_but_valid.ByteSizeLong(), static_cast<size_t>(kMaxMessageBytes) * 3 / 4);
  EXPECT_TRUE(CompleteStream(Check(big_but_valid)));
}

TEST_F(MalformedRequestTest, ThousandsOfRepeatedEntriesAreRejectedNamingTheField) {
  {
    v1::Patient patient = NormalCheck().patient();
    for (int i = 0; i < kThousands; ++i) {
      patient.add_medications()->set_drug(absl::StrCat("drug-", i));
    }
    ExpectPatientRejected(patient, "patient.medications");
  }
  {
    v1::Patient patient = NormalCheck().patient();
    for (int i = 0; i < kThousands; ++i) {
      AddCondition(&patient, kIcd10Cm, "N18.4");
    }
    ExpectPatientRejected(patient, "patient.conditions");
  }
  {
    v1::Patient patient = NormalCheck().patient();
    for (int i = 0; i < kThousands; ++i) {
      patient.add_allergies()->set_substance("penicillins");
    }
    ExpectPatientRejected(patient, "patient.allergies");
  }
  {
    v1::Patient patient = NormalCheck().patient();
    for (int i = 0; i < kThousands; ++i) {
      AddLab(&patient, kEgfrLoinc, 50, kEgfrUnit);
    }
    ExpectPatientRejected(patient, "patient.labs");
  }
  {
    v1::CheckMedicationsRequest request = NormalCheck();
    for (int i = 0; i < kThousands; ++i) {
      request.add_proposed_medications()->set_drug("sertraline");
    }
    const auto call = Check(request);
    EXPECT_TRUE(RejectedNaming(call.status, "proposed_medications"));
    EXPECT_TRUE(call.responses.empty());
    // The same against a stored patient (a separate validation path).
    request.clear_patient();
    request.set_patient_id("malformed-stored");
    EXPECT_TRUE(RejectedNaming(Check(request).status, "proposed_medications"));
  }
  {
    v1::SubscribeRequest request;
    for (int i = 0; i < kThousands; ++i) {
      request.add_patient_ids(absl::StrCat("p", i));
    }
    EXPECT_TRUE(RejectedNaming(SubscribeStatus(request), "patient_ids"));
  }

  // At every limit at once (500 of each), the request is valid and is
  // screened to the end.
  v1::CheckMedicationsRequest at_limit;
  auto* patient = at_limit.mutable_patient();
  patient->set_id("malformed-at-limit");
  const std::vector<std::string> drugs = {"sertraline", "silperisone", "tolperisone", "diazepam", "warfarin"};
  for (size_t i = 0; i < 500; ++i) {
    patient->add_medications()->set_drug(i % 10 == 0 ? drugs[i / 10 % drugs.size()] : absl::StrCat("unlisted-", i));
    AddCondition(patient, kIcd10Cm, i % 2 == 0 ? "N18.4" : "E11.9");
    patient->add_allergies()->set_substance(i % 2 == 0 ? "penicillins" : absl::StrCat("unknown-substance-", i));
    AddLab(patient, kEgfrLoinc, static_cast<double>(20 + i % 60), kEgfrUnit);
    at_limit.add_proposed_medications()->set_drug(i % 10 == 0 ? drugs[i / 10 % drugs.size()]
                                                              : absl::StrCat("proposed-unlisted-", i));
  }
  const auto call = Check(at_limit);
  EXPECT_TRUE(CompleteStream(call));
  EXPECT_FALSE(call.responses.empty() || call.responses.back().summary().complete());
  const auto ids = AlertIds(call.responses);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size()) << "alert ids repeat in one stream";
}

TEST_F(MalformedRequestTest, OversizedStringsAreRejectedNamingTheField) {
  {
    v1::Patient patient = NormalCheck().patient();
    patient.set_id(std::string(257, 'i'));
    ExpectPatientRejected(patient, "patient.id");
  }
  {
    v1::Patient patient = NormalCheck().patient();
    patient.mutable_medications(0)->set_drug(std::string(70000, 'd'));
    ExpectPatientRejected(patient, "patient.medications[0].drug");
  }
  {
    v1::Patient patient = NormalCheck().patient();
    patient.mutable_labs(0)->set_effective_time(std::string(1000, '9'));
    ExpectPatientRejected(patient, "patient.labs[0].effective_time");
  }
  {
    v1::Patient patient = NormalCheck().patient();
    patient.mutable_labs(0)->set_unit(std::string(300, 'u'));
    ExpectPatientRejected(patient, "patient.labs[0].unit");
  }
  {
    grpc::ClientContext context;
    v1::AcknowledgeAlertRequest ack;
    ack.set_alert_id("al-none");
    ack.set_outcome(v1::ACKNOWLEDGEMENT_OUTCOME_ACCEPTED);
    ack.set_user("dr-test");
    ack.set_comment(std::string(5000, 'c'));
    v1::AcknowledgeAlertResponse response;
    const auto status = v1::AlertFeed::NewStub(channel())->AcknowledgeAlert(&context, ack, &response);
    EXPECT_TRUE(RejectedNaming(status, "comment"));
  }
}

TEST_F(MalformedRequestTest, InvalidUtf8InStringFieldsIsRejectedAsUnparseable) {
  // Each case: a request whose placeholder becomes bytes that are not UTF-8
  // (0xFF, an overlong '/', a UTF-16 surrogate, a truncated sequence, a lone
  // continuation byte, a code point past U+10FFFF, an obsolete five-byte
  // form), the method, and the field that holds them. Protobuf refuses such
  // a proto3 string while parsing, before validation could name the field:
  // the answer names the request and says a string was not UTF-8.
  struct Case {
    std::string method;
    std::string field;
    std::string bad_bytes;
    std::function<std::unique_ptr<google::protobuf::Message>(const std::string&)> build;
  };
  const std::string placeholder = "@@PLACE@";  // 8 bytes.
  auto check_with = [](std::function<void(v1::CheckMedicationsRequest*, const std::string&)> set) {
    return [set](const std::string& value) {
      auto request = std::make_unique<v1::CheckMedicationsRequest>(NormalCheck());
      set(request.get(), value);
      return std::unique_ptr<google::protobuf::Message>(std::move(request));
    };
  };
  auto put_with = [](std::function<void(v1::PutPatientRequest*, const std::string&)> set) {
    return [set](const std::string& value) {
      auto request = std::make_unique<v1::PutPatientRequest>(NormalPut("malformed-utf8"));
      set(request.get(), value);
      return std::unique_ptr<google::protobuf::Message>(std::move(request));
    };
  };
  const std::vector<Case> cases = {
      {kCheckMethod, "patient.id", std::string("ab\xff\xfe" "cdef"),
       check_with([](auto* r, const std::string& v) { r->mutable_patient()->set_id(v); })},
      {kCheckMethod, "patient.medications[0].drug", std::string("\xc0\xaf" "abcdef"),
       check_with([](auto* r, const std::string& v) { r->mutable_patient()->mutable_medications(0)->set_drug(v); })},
      {kCheckMethod, "proposed_medications[0].drug", std::string("abc\xed\xa0\x80" "de"),
       check_with([](auto* r, const std::string& v) { r->mutable_proposed_medications(0)->set_drug(v); })},
      {kCheckMethod, "patient.labs[0].unit", std::string("abcdef\xe2\x82"),
       check_with([](auto* r, const std::string& v) { r->mutable_patient()->mutable_labs(0)->set_unit(v); })},
      {kCheckMethod, "patient.allergies[0].substance", std::string("\x80" "abcdefg"),
       check_with([](auto* r, const std::string& v) { r->mutable_patient()->add_allergies()->set_substance(v); })},
      {kCheckMethod, "patient.conditions[0].code.display", std::string("a\xf4\x90\x80\x80" "bcd"),
       check_with([](auto* r, const std::string& v) {
         AddCondition(r->mutable_patient(), kIcd10Cm, "E11.9");
         r->mutable_patient()->mutable_conditions(0)->mutable_code()->set_display(v);
       })},
      {kCheckUnaryMethod, "patient.medications[0].frequency", std::string("tid\xf8\x88\x80\x80\x80"),
       check_with([](auto* r, const std::string& v) {
         r->mutable_patient()->mutable_medications(0)->set_frequency(v);
       })},
      {kPutMethod, "patient.id", std::string("p-\xff" "12345"),
       put_with([](auto* r, const std::string& v) { r->mutable_patient()->set_id(v); })},
      {kPutMethod, "patient.medications[0].route", std::string("oral\xc3" "xyz"),
       put_with([](auto* r, const std::string& v) { r->mutable_patient()->mutable_medications(0)->set_route(v); })},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.method, " ", c.field));
    // The same request with valid text in place is served: only the bytes
    // make the difference.
    const auto valid = CallRaw(channel(), c.method, c.build(placeholder)->SerializeAsString());
    ASSERT_TRUE(valid.status.ok()) << valid.status.error_code() << " " << valid.status.error_message();
    ASSERT_FALSE(valid.responses.empty());
    const auto bad = CallRaw(channel(), c.method, SerializeWithBytes(*c.build(placeholder), placeholder, c.bad_bytes));
    EXPECT_TRUE(RejectedAsUnparseable(bad.status));
    EXPECT_TRUE(absl::StrContains(bad.status.error_message(), "not valid UTF-8")) << bad.status.error_message();
    EXPECT_TRUE(bad.responses.empty());
  }
}

TEST_F(MalformedRequestTest, UnknownEnumValuesAreRejectedNamingTheField) {
  {
    v1::Patient patient = NormalCheck().patient();
    patient.set_sex(static_cast<v1::Sex>(99));
    ExpectPatientRejected(patient, "patient.sex");
    patient.set_sex(static_cast<v1::Sex>(-1));
    ExpectPatientRejected(patient, "patient.sex");
  }
  {
    v1::Patient patient = NormalCheck().patient();
    auto* allergy = patient.add_allergies();
    allergy->set_substance("penicillins");
    allergy->set_criticality(static_cast<v1::AllergyCriticality>(42));
    ExpectPatientRejected(patient, "patient.allergies[0].criticality");
  }
  {
    v1::SubscribeRequest request;
    request.add_kinds(static_cast<v1::AlertKind>(77));
    EXPECT_TRUE(RejectedNaming(SubscribeStatus(request), "kinds[0]"));
    request.clear_kinds();
    request.add_kinds(v1::ALERT_KIND_ALLERGY);
    request.add_kinds(v1::ALERT_KIND_UNSPECIFIED);
    EXPECT_TRUE(RejectedNaming(SubscribeStatus(request), "kinds[1]"));
    request.clear_kinds();
    request.set_min_severity(static_cast<v1::Severity>(9));
    EXPECT_TRUE(RejectedNaming(SubscribeStatus(request), "min_severity"));
    // Rejected subscriptions, many times over: each one's reactor is
    // finished and destroyed by gRPC while the server may still be inside
    // the rejecting call, so a rare race shows only with repetition.
    int wrong = 0;
    for (int i = 0; i < 3000; ++i) {
      wrong += RejectedNaming(SubscribeStatus(request), "min_severity") ? 0 : 1;
    }
    EXPECT_EQ(wrong, 0) << "of 3000 rejected subscriptions";
    ASSERT_TRUE(ProcessAlive(server_->pid())) << "the server died rejecting subscriptions";
  }
  {
    grpc::ClientContext context;
    v1::AcknowledgeAlertRequest ack;
    ack.set_alert_id("al-none");
    ack.set_outcome(static_cast<v1::AcknowledgementOutcome>(7));
    ack.set_user("dr-test");
    v1::AcknowledgeAlertResponse response;
    const auto status = v1::AlertFeed::NewStub(channel())->AcknowledgeAlert(&context, ack, &response);
    EXPECT_TRUE(RejectedNaming(status, "outcome"));
  }
}

TEST_F(MalformedRequestTest, DuplicateEntriesAreScreenedOnceWithDistinctAlertIds) {
  // The same condition twice, the same proposed drug twice, an unknown drug
  // twice, the same allergy twice and two orders sharing one order id: all
  // legal, and each finding is reported once, with an id of its own.
  v1::CheckMedicationsRequest request = NormalCheck();
  auto* patient = request.mutable_patient();
  AddCondition(patient, kIcd10Cm, "N18.4");
  AddCondition(patient, kIcd10Cm, "N18.4");
  patient->add_allergies()->set_substance("unknown-substance");
  patient->add_allergies()->set_substance("unknown-substance");
  patient->add_medications()->set_drug("not-a-drug");
  patient->add_medications()->set_drug("not-a-drug");
  patient->mutable_medications(0)->set_order_id("order-1");
  patient->mutable_medications(1)->set_order_id("order-1");
  request.add_proposed_medications()->set_drug("silperisone");
  const auto call = Check(request);
  ASSERT_TRUE(CompleteStream(call));
  const auto ids = AlertIds(call.responses);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size()) << "alert ids repeat in one stream";
  EXPECT_EQ(CountRule(call.responses, v1::ALERT_KIND_CONTRAINDICATION, "silperisone-ci-severe-renal-impairment"), 1);
  EXPECT_GE(CountKind(call.responses, v1::ALERT_KIND_DUPLICATE_THERAPY), 1);
  EXPECT_GE(CountKind(call.responses, v1::ALERT_KIND_UNSCREENED_DRUG), 1);

  // Stored, the same duplicates keep one alert per id, and the context reads
  // back as sent (duplicates included).
  v1::PutPatientRequest put;
  *put.mutable_patient() = request.patient();
  put.mutable_patient()->set_id("malformed-duplicates");
  put.mutable_patient()->add_medications()->set_drug("silperisone");
  put.mutable_patient()->add_medications()->set_drug("silperisone");
  v1::PutPatientResponse stored;
  const auto status = Put(put, &stored);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  std::set<std::string> active;
  for (const auto& alert : stored.active()) {
    EXPECT_TRUE(active.insert(alert.id()).second) << "alert id " << alert.id() << " is active twice";
  }
  EXPECT_EQ(stored.raised_size(), stored.active_size());
  {
    grpc::ClientContext context;
    v1::GetPatientRequest get;
    get.set_patient_id("malformed-duplicates");
    v1::Patient read_back;
    ASSERT_TRUE(v1::Patients::NewStub(channel())->GetPatient(&context, get, &read_back).ok());
    EXPECT_EQ(read_back.SerializeAsString(), put.patient().SerializeAsString());
  }

  // A subscription naming one patient twice gets each of its events once.
  v1::PutPatientRequest quiet = NormalPut("malformed-dup-sub");
  v1::PutPatientResponse before;
  ASSERT_TRUE(Put(quiet, &before).ok());
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::SubscribeRequest subscribe;
  subscribe.add_patient_ids("malformed-dup-sub");
  subscribe.add_patient_ids("malformed-dup-sub");
  subscribe.set_after_event_number(before.last_event_number());
  subscribe.set_heartbeat_interval_seconds(1);
  auto reader = v1::AlertFeed::NewStub(channel())->Subscribe(&context, subscribe);
  v1::PutPatientRequest loud = quiet;
  AddCondition(loud.mutable_patient(), kIcd10Cm, "N18.4");
  ASSERT_TRUE(Put(loud).ok());  // Raises the renal contraindication.
  ASSERT_TRUE(Put(quiet).ok());  // Resolves it.
  std::vector<int64_t> numbers;
  v1::SubscribeResponse response;
  while (numbers.size() < 2 && reader->Read(&response)) {
    if (response.has_alert_event()) {
      numbers.push_back(response.event_number());
    }
  }
  context.TryCancel();
  reader->Finish();
  EXPECT_EQ(numbers, (std::vector<int64_t>{before.last_event_number() + 1, before.last_event_number() + 2}));
}

TEST_F(MalformedRequestTest, AbsurdNumbersAreRejectedNamingTheField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (double value : {nan, inf, -inf, 1e308, -1e308, 1e10}) {
    SCOPED_TRACE(absl::StrCat("lab value ", value));
    v1::Patient patient = NormalCheck().patient();
    patient.mutable_labs(0)->set_value(value);
    ExpectPatientRejected(patient, "patient.labs[0].value");
  }
  // A negative eGFR (or any negative measurement in a unit Vigil converts:
  // clearances, concentrations, activities, INR, QT, weight) cannot be
  // measured; it is a data error, not a reason to raise a contraindication.
  for (double value : {-5.0, -0.5, -1e9}) {
    SCOPED_TRACE(absl::StrCat("eGFR ", value));
    v1::Patient patient = NormalCheck().patient();
    patient.mutable_labs(0)->set_value(value);
    ExpectPatientRejected(patient, "patient.labs[0].value");
  }
  for (double value : {nan, inf, -1.0}) {
    SCOPED_TRACE(absl::StrCat("dose ", value));
    v1::Patient patient = NormalCheck().patient();
    patient.mutable_medications(0)->set_dose_value(value);
    patient.mutable_medications(0)->set_dose_unit("mg");
    ExpectPatientRejected(patient, "patient.medications[0].dose_value");
    v1::CheckMedicationsRequest request = NormalCheck();
    request.mutable_proposed_medications(0)->set_dose_value(value);
    request.mutable_proposed_medications(0)->set_dose_unit("mg");
    EXPECT_TRUE(RejectedNaming(Check(request).status, "proposed_medications[0].dose_value"));
  }
  for (double value : {nan, inf, -1.0, 1e308}) {
    SCOPED_TRACE(absl::StrCat("weight ", value));
    v1::Patient patient = NormalCheck().patient();
    patient.set_weight_kg(value);
    ExpectPatientRejected(patient, "patient.weight_kg");
  }
  // Extreme but possible values are screened, not rejected.
  for (double value : {0.0, 5e-324, 1e9}) {
    SCOPED_TRACE(absl::StrCat("eGFR ", value));
    v1::CheckMedicationsRequest request = NormalCheck();
    request.mutable_patient()->mutable_labs(0)->set_value(value);
    const auto call = Check(request);
    ASSERT_TRUE(CompleteStream(call));
    EXPECT_EQ(CountRule(call.responses, v1::ALERT_KIND_CONTRAINDICATION, "silperisone-ci-severe-renal-impairment"),
              value < 30 ? 1 : 0);
  }
}

TEST_F(MalformedRequestTest, UnknownLabUnitsAreReportedNeverGuessed) {
  // A unit Vigil cannot convert is a fact it cannot interpret: an
  // INCOMPLETE_DATA alert and an incomplete summary, not a rejection.
  for (const char* unit : {"furlongs", "mg/dL", "mL/min/{1.73_m2}/fortnight", "\xc2\xb5mol/L"}) {
    SCOPED_TRACE(unit);
    v1::CheckMedicationsRequest request = NormalCheck();
    request.mutable_patient()->mutable_labs(0)->set_unit(unit);
    const auto call = Check(request);
    ASSERT_TRUE(CompleteStream(call));
    EXPECT_EQ(CountRule(call.responses, v1::ALERT_KIND_CONTRAINDICATION, "silperisone-ci-severe-renal-impairment"), 0);
    EXPECT_EQ(CountRule(call.responses, v1::ALERT_KIND_INCOMPLETE_DATA, "silperisone-ci-severe-renal-impairment"), 1);
    EXPECT_FALSE(call.responses.back().summary().complete());
  }
  // No unit at all is an invalid request.
  for (const char* unit : {"", "   "}) {
    v1::Patient patient = NormalCheck().patient();
    patient.mutable_labs(0)->set_unit(unit);
    ExpectPatientRejected(patient, "patient.labs[0].unit");
  }
}

TEST_F(MalformedRequestTest, MalformedCodesAreRejectedNamingTheField) {
  for (const char* code : {"kidneys!", "N18..4", "18.4", "N", "N18.4.1"}) {
    SCOPED_TRACE(code);
    v1::Patient patient = NormalCheck().patient();
    AddCondition(&patient, kIcd10Cm, code);
    ExpectPatientRejected(patient, "patient.conditions[0].code.code");
  }
  for (const char* code : {"12345", "73211008", "0073211009", "7321100x"}) {
    SCOPED_TRACE(code);
    v1::Patient patient = NormalCheck().patient();
    AddCondition(&patient, kSnomed, code);
    ExpectPatientRejected(patient, "patient.conditions[0].code.code");
  }
  for (const char* code : {"62238-2", "62238", "abc-1", "62238-11"}) {
    SCOPED_TRACE(code);
    v1::Patient patient = NormalCheck().patient();
    patient.mutable_labs(0)->mutable_code()->set_code(code);
    ExpectPatientRejected(patient, "patient.labs[0].code.code");
  }
  {
    v1::Patient patient = NormalCheck().patient();
    patient.mutable_labs(0)->mutable_code()->set_system(kSnomed);
    ExpectPatientRejected(patient, "patient.labs[0].code.system");
  }
  {
    v1::Patient patient = NormalCheck().patient();
    patient.add_conditions();
    ExpectPatientRejected(patient, "patient.conditions[0].code");
  }
  {
    v1::Patient patient = NormalCheck().patient();
    AddCondition(&patient, "", "N18.4");
    ExpectPatientRejected(patient, "patient.conditions[0].code.system");
    patient.mutable_conditions(0)->mutable_code()->set_system(kIcd10Cm);
    patient.mutable_conditions(0)->mutable_code()->set_code(" \t ");
    ExpectPatientRejected(patient, "patient.conditions[0].code.code");
  }
  for (const char* date : {"1990-13-01", "1990-02-30", "1990-04-31", "1990-1-1", "yesterday"}) {
    SCOPED_TRACE(date);
    v1::Patient patient = NormalCheck().patient();
    patient.set_birth_date(date);
    ExpectPatientRejected(patient, "patient.birth_date");
  }
  for (const std::string& id : {std::string("p\n1"), std::string("p\x01"), std::string("tab\tid")}) {
    v1::Patient patient = NormalCheck().patient();
    patient.set_id(id);
    ExpectPatientRejected(patient, "patient.id");
  }
  {
    v1::CheckMedicationsRequest request = NormalCheck();
    request.clear_patient();
    request.set_patient_id("  ");
    EXPECT_TRUE(RejectedNaming(Check(request).status, "patient_id"));
  }

  // Leap day: a real date is accepted.
  {
    v1::CheckMedicationsRequest request = NormalCheck();
    request.mutable_patient()->set_birth_date("2000-02-29");
    EXPECT_TRUE(CompleteStream(Check(request)));
  }
  // A condition in a code system Vigil does not match, and drug codes that
  // name nothing, are reported as unscreened, not rejected.
  {
    v1::CheckMedicationsRequest request = NormalCheck();
    AddCondition(request.mutable_patient(), "http://example.org/codes", "whatever");
    request.add_proposed_medications()->set_drug("http://www.whocc.no/atc|");
    request.add_proposed_medications()->set_drug("|");
    request.add_proposed_medications()->set_drug("http://www.nlm.nih.gov/research/umls/rxnorm|not-digits");
    const auto call = Check(request);
    ASSERT_TRUE(CompleteStream(call));
    EXPECT_GE(CountKind(call.responses, v1::ALERT_KIND_INCOMPLETE_DATA), 1);
    EXPECT_EQ(call.responses.back().summary().unresolved_references_size(), 3);
    EXPECT_FALSE(call.responses.back().summary().complete());
  }
}

TEST_F(MalformedRequestTest, GarbageBytesAreRefusedWithoutHarm) {
  std::mt19937 random(20240601);  // Fixed seed: the same bytes every run.
  std::string noise(4096, '\0');
  for (char& c : noise) {
    c = static_cast<char>(random() & 0xff);
  }
  const std::string valid_check = NormalCheck().SerializeAsString();
  const std::string valid_put = NormalPut("malformed-garbage").SerializeAsString();
  // Unknown field 15 as a start group, nested far past protobuf's recursion
  // limit (100): the parser must refuse it, not overflow its stack.
  std::string deep_groups;
  for (int i = 0; i < 100000; ++i) {
    deep_groups.push_back('\x7b');
  }
  for (int i = 0; i < 100000; ++i) {
    deep_groups.push_back('\x7c');
  }
  struct Garbage {
    std::string name;
    std::string bytes;
  };
  auto garbage_for = [&](const std::string& valid) {
    return std::vector<Garbage>{
        {"random bytes", noise},
        {"truncated message", valid.substr(0, valid.size() / 2)},
        {"endless varint", std::string("\x08") + std::string(11, '\xff')},
        {"length past the end", std::string("\x0a\xff\xff\xff\x7f" "abc")},
        {"end group without start", std::string("\x0c")},
        {"field number zero", std::string("\x00\x01", 2)},
        {"groups nested 100000 deep", valid + deep_groups},
    };
  };
  for (const auto& [method, valid] : {std::pair<std::string, std::string>{kCheckMethod, valid_check},
                                      std::pair<std::string, std::string>{kCheckUnaryMethod, valid_check},
                                      std::pair<std::string, std::string>{kPutMethod, valid_put}}) {
    // The raw path works: valid bytes are served.
    const auto ok = CallRaw(channel(), method, valid);
    ASSERT_TRUE(ok.status.ok()) << method << ": " << ok.status.error_message();
    ASSERT_FALSE(ok.responses.empty());
    for (const auto& garbage : garbage_for(valid)) {
      SCOPED_TRACE(absl::StrCat(method, ": ", garbage.name));
      const auto call = CallRaw(channel(), method, garbage.bytes);
      EXPECT_TRUE(RejectedAsUnparseable(call.status));
      EXPECT_TRUE(call.responses.empty());
    }
    // Protobuf semantics, not garbage: a known field sent with the wrong wire
    // type, and groups nested within the limit, are unknown fields, skipped.
    // What is left is an empty request, or the valid one.
    EXPECT_TRUE(RejectedNaming(CallRaw(channel(), method, std::string("\x08\x01")).status, "patient"));
    std::string shallow = valid;
    shallow.append(std::string(50, '\x7b')).append(std::string(50, '\x7c'));
    EXPECT_TRUE(CallRaw(channel(), method, shallow).status.ok()) << method;
    // No body at all is the empty request.
    EXPECT_TRUE(RejectedNaming(CallRaw(channel(), method, "").status, "patient"));
  }
}

// Subscribe is a raw method (the server writes bytes serialized once per
// event), so the server parses its request itself: the same answers as for
// the typed methods, and the batch size is validated like every field.
TEST_F(MalformedRequestTest, SubscribeParsesItsOwnRequestAndNamesMaxEventsPerMessage) {
  constexpr char kSubscribeMethod[] = "/vigil.v1.AlertFeed/Subscribe";
  v1::SubscribeRequest valid;
  valid.add_patient_ids("@@PLACE@");
  valid.set_max_events_per_message(10);
  const std::string valid_bytes = valid.SerializeAsString();
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"truncated message", valid_bytes.substr(0, valid_bytes.size() - 3)},
           {"endless varint", std::string("\x30") + std::string(11, '\xff')},
           {"length past the end", std::string("\x0a\xff\xff\xff\x7f" "abc")},
           {"end group without start", std::string("\x0c")},
           {"invalid UTF-8 in patient_ids[0]", SerializeWithBytes(valid, "@@PLACE@", std::string("p-\xff" "12345"))},
       }) {
    SCOPED_TRACE(name);
    const auto call = CallRaw(channel(), kSubscribeMethod, bytes);
    EXPECT_TRUE(RejectedAsUnparseable(call.status));
    EXPECT_TRUE(absl::StrContains(call.status.error_message(), "vigil.v1.SubscribeRequest"))
        << call.status.error_message();
    EXPECT_TRUE(call.responses.empty());
  }
  for (const int bad : {-1, 1001, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()}) {
    v1::SubscribeRequest request;
    request.set_max_events_per_message(bad);
    EXPECT_TRUE(RejectedNaming(SubscribeStatus(request), "max_events_per_message")) << bad;
  }
  // In range, from 0 (one event per message) to 1000, the stream opens.
  for (const int ok : {0, 1, 2, 1000}) {
    v1::SubscribeRequest request;
    request.set_after_event_number(0);
    request.set_heartbeat_interval_seconds(1);
    request.set_max_events_per_message(ok);
    EXPECT_TRUE(SubscribeStatus(request).ok()) << ok;
  }
}

}  // namespace
}  // namespace vigil
