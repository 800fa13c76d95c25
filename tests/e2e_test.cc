// End-to-end tests: a real vigil-server process on 127.0.0.1:0, called
// through gRPC stubs and through the real `vigil` client binary.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"
#include "tests/test_util.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/drug_catalog.grpc.pb.h"

namespace vigil {
namespace {

using ::vigil::testing::RunCommand;
using ::vigil::testing::ServerProcess;

constexpr char kLoinc[] = "http://loinc.org";

struct CheckCall {
  grpc::Status status;
  std::vector<v1::CheckMedicationsResponse> responses;
};

class EndToEndTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({absl::StrCat("--kb=", VIGIL_BUNDLED_KB)});
    ASSERT_TRUE(server_->ok()) << "server did not start: " << server_->log();
    channel_ = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  static void TearDownTestSuite() {
    delete channel_;
    channel_ = nullptr;
    if (server_ != nullptr) {
      // SIGTERM shuts the server down cleanly.
      const int status = server_->Stop(SIGTERM);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "exit status " << status << "\n" << server_->log();
      EXPECT_NE(server_->log().find("\"event\":\"stopped\""), std::string::npos) << server_->log();
      delete server_;
      server_ = nullptr;
    }
  }

  static CheckCall Check(const v1::CheckMedicationsRequest& request) {
    auto stub = v1::DecisionSupport::NewStub(*channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    CheckCall call;
    auto reader = stub->CheckMedications(&context, request);
    v1::CheckMedicationsResponse response;
    while (reader->Read(&response)) {
      call.responses.push_back(response);
    }
    call.status = reader->Finish();
    return call;
  }

  static std::vector<std::string> Client(std::vector<std::string> args, int* exit_code, std::string* output) {
    std::vector<std::string> argv = {VIGIL_CLIENT_BIN, absl::StrCat("--server=", server_->address())};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto result = RunCommand(argv);
    *exit_code = result.exit_code;
    *output = result.output;
    return absl::StrSplit(result.output, '\n', absl::SkipEmpty());
  }

  static ServerProcess* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};

ServerProcess* EndToEndTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* EndToEndTest::channel_ = nullptr;

v1::CheckMedicationsRequest RenalSertralineRequest() {
  v1::CheckMedicationsRequest request;
  auto* patient = request.mutable_patient();
  patient->set_id("e2e-1");
  auto* lab = patient->add_labs();
  lab->mutable_code()->set_system(kLoinc);
  lab->mutable_code()->set_code("62238-1");
  lab->set_value(22);
  lab->set_unit("mL/min/{1.73_m2}");
  patient->add_medications()->set_drug("sertraline");
  request.add_proposed_medications()->set_drug("silperisone");
  return request;
}

TEST_F(EndToEndTest, CheckStreamsAlertsMostSevereFirstThenASummary) {
  const auto call = Check(RenalSertralineRequest());
  ASSERT_TRUE(call.status.ok()) << call.status.error_message();
  ASSERT_GE(call.responses.size(), 3u);
  // Every message but the last is an alert, severities never rise.
  for (size_t i = 0; i + 1 < call.responses.size(); ++i) {
    ASSERT_TRUE(call.responses[i].has_alert());
    if (i > 0) {
      EXPECT_GE(call.responses[i - 1].alert().severity(), call.responses[i].alert().severity());
    }
  }
  const auto& first = call.responses.front().alert();
  EXPECT_EQ(first.rule_id(), "silperisone-ci-severe-renal-impairment");
  EXPECT_EQ(first.severity(), v1::SEVERITY_CONTRAINDICATED);
  bool interaction = false;
  for (const auto& r : call.responses) {
    interaction = interaction || (r.has_alert() && r.alert().rule_id() == "ddi-silperisone-antidepressants");
  }
  EXPECT_TRUE(interaction);
  ASSERT_TRUE(call.responses.back().has_summary());
  const auto& summary = call.responses.back().summary();
  EXPECT_EQ(summary.alert_count(), static_cast<int>(call.responses.size() - 1));
  EXPECT_EQ(summary.knowledge_base_version().size(), 64u);
  EXPECT_TRUE(summary.complete());
}

TEST_F(EndToEndTest, UnaryCheckAnswersTheSameAlertsInOneMessage) {
  const auto streamed = Check(RenalSertralineRequest());
  ASSERT_TRUE(streamed.status.ok()) << streamed.status.error_message();
  auto stub = v1::DecisionSupport::NewStub(*channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::CheckMedicationsUnaryResponse result;
  const grpc::Status status = stub->CheckMedicationsUnary(&context, testing::Unary(RenalSertralineRequest()), &result);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // The same alerts in the same order, and the same summary.
  ASSERT_EQ(static_cast<size_t>(result.alerts_size()) + 1, streamed.responses.size());
  for (int i = 0; i < result.alerts_size(); ++i) {
    EXPECT_EQ(result.alerts(i).SerializeAsString(),
              streamed.responses[static_cast<size_t>(i)].alert().SerializeAsString());
  }
  EXPECT_EQ(result.summary().SerializeAsString(), streamed.responses.back().summary().SerializeAsString());
  EXPECT_EQ(result.summary().alert_count(), result.alerts_size());

  // An invalid request fails the same way.
  grpc::ClientContext bad_context;
  v1::CheckMedicationsUnaryResponse bad;
  const grpc::Status invalid = stub->CheckMedicationsUnary(&bad_context, testing::Unary(v1::CheckMedicationsRequest()), &bad);
  EXPECT_EQ(invalid.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(invalid.error_message().rfind("patient:", 0), 0u) << invalid.error_message();
  EXPECT_EQ(bad.alerts_size(), 0);

  // The client's --unary prints the same alerts and exits the same way.
  int streamed_code = 0;
  int unary_code = 0;
  std::string streamed_out;
  std::string unary_out;
  Client({"check", "--patient-id=e2e-1", "--egfr=22", "--current=sertraline", "silperisone"}, &streamed_code,
         &streamed_out);
  Client({"check", "--unary", "--patient-id=e2e-1", "--egfr=22", "--current=sertraline", "silperisone"}, &unary_code,
         &unary_out);
  EXPECT_EQ(unary_code, streamed_code);
  EXPECT_EQ(unary_out, streamed_out);
}

// Several alerts, two of them citing the silperisone monograph.
v1::CheckMedicationsRequest ManyAlertsRequest() {
  v1::CheckMedicationsRequest request = RenalSertralineRequest();
  request.mutable_patient()->add_medications()->set_drug("amlodipine");
  request.mutable_patient()->add_medications()->set_drug("warfarin");
  request.add_proposed_medications()->set_drug("clarithromycin");
  return request;
}

TEST_F(EndToEndTest, BatchedStreamCarriesTheSameAlertsInFewerMessages) {
  const auto one_by_one = Check(ManyAlertsRequest());
  ASSERT_TRUE(one_by_one.status.ok()) << one_by_one.status.error_message();
  const size_t alerts = one_by_one.responses.size() - 1;
  ASSERT_GE(alerts, 4u);

  auto request = ManyAlertsRequest();
  request.set_max_alerts_per_message(3);
  request.set_sources_by_reference(true);
  const auto batched = Check(request);
  ASSERT_TRUE(batched.status.ok()) << batched.status.error_message();
  // Batches of 3, the last with the summary.
  ASSERT_EQ(batched.responses.size(), (alerts + 2) / 3);
  // Resolved from the sources sent once, the alerts are the same, in order.
  std::map<std::string, v1::SourceRef> sources;
  std::vector<v1::Alert> received;
  for (size_t i = 0; i < batched.responses.size(); ++i) {
    const auto& message = batched.responses[i];
    ASSERT_TRUE(message.has_alert_batch()) << i;
    for (const auto& source : message.sources()) {
      EXPECT_TRUE(sources.emplace(source.id(), source).second) << source.id() << " sent twice";
    }
    for (v1::Alert alert : message.alert_batch().alerts()) {
      for (auto& ref : *alert.mutable_sources()) {
        if (ref.title().empty()) {  // cited by several alerts: sent once
          ASSERT_EQ(sources.count(ref.id()), 1u) << ref.id() << " cited before it was sent";
          ref = sources[ref.id()];
        }
      }
      received.push_back(alert);
    }
  }
  ASSERT_EQ(received.size(), alerts);
  EXPECT_FALSE(sources.empty());
  for (size_t i = 0; i < alerts; ++i) {
    EXPECT_EQ(received[i].SerializeAsString(), one_by_one.responses[i].alert().SerializeAsString()) << i;
  }
  for (size_t i = 0; i + 1 < batched.responses.size(); ++i) {
    EXPECT_FALSE(batched.responses[i].alert_batch().has_summary()) << i;
  }
  ASSERT_TRUE(batched.responses.back().alert_batch().has_summary());
  EXPECT_EQ(batched.responses.back().alert_batch().summary().SerializeAsString(),
            one_by_one.responses.back().summary().SerializeAsString());

  // The basic view, unary: the same alerts without detail, evidence or sources.
  auto stub = v1::DecisionSupport::NewStub(*channel_);
  grpc::ClientContext context;
  auto unary = testing::Unary(ManyAlertsRequest());
  unary.set_view(v1::ALERT_VIEW_BASIC);
  v1::CheckMedicationsUnaryResponse basic;
  const grpc::Status status = stub->CheckMedicationsUnary(&context, unary, &basic);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(static_cast<size_t>(basic.alerts_size()), alerts);
  for (size_t i = 0; i < alerts; ++i) {
    const auto& full = one_by_one.responses[i].alert();
    EXPECT_EQ(basic.alerts(static_cast<int>(i)).id(), full.id());
    EXPECT_EQ(basic.alerts(static_cast<int>(i)).summary(), full.summary());
    EXPECT_TRUE(basic.alerts(static_cast<int>(i)).detail().empty());
    EXPECT_TRUE(basic.alerts(static_cast<int>(i)).sources().empty());
  }

  // Out of range: INVALID_ARGUMENT naming the field, before any alert.
  request.set_max_alerts_per_message(5000);
  const auto rejected = Check(request);
  EXPECT_EQ(rejected.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(rejected.status.error_message().rfind("max_alerts_per_message:", 0), 0u) << rejected.status.error_message();
  EXPECT_TRUE(rejected.responses.empty());

  // The client prints a batched answer with sources by reference exactly as
  // the default one, and exits the same way.
  const std::vector<std::string> check = {"check", "--patient-id=e2e-1", "--egfr=22", "--current=sertraline",
                                          "--current=amlodipine", "--current=warfarin", "silperisone",
                                          "clarithromycin"};
  int default_code = 0;
  int batched_code = 0;
  std::string default_out;
  std::string batched_out;
  Client(check, &default_code, &default_out);
  auto args = check;
  args.insert(args.begin() + 1, {"--max_alerts_per_message=4", "--sources_by_reference"});
  Client(args, &batched_code, &batched_out);
  EXPECT_EQ(batched_code, default_code);
  EXPECT_EQ(batched_out, default_out);
  EXPECT_NE(default_out.find("Source: "), std::string::npos) << default_out;
}

TEST_F(EndToEndTest, AlertIdsAreStableAcrossCalls) {
  const auto a = Check(RenalSertralineRequest());
  const auto b = Check(RenalSertralineRequest());
  ASSERT_EQ(a.responses.size(), b.responses.size());
  for (size_t i = 0; i + 1 < a.responses.size(); ++i) {
    EXPECT_EQ(a.responses[i].alert().id(), b.responses[i].alert().id());
  }
}

TEST_F(EndToEndTest, InvalidRequestsGetInvalidArgumentNamingTheField) {
  const auto empty = Check(v1::CheckMedicationsRequest());
  EXPECT_EQ(empty.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(empty.status.error_message().rfind("patient:", 0), 0u) << empty.status.error_message();
  EXPECT_TRUE(empty.responses.empty());

  auto bad_code = RenalSertralineRequest();
  auto* c = bad_code.mutable_patient()->add_conditions()->mutable_code();
  c->set_system("http://hl7.org/fhir/sid/icd-10-cm");
  c->set_code("kidneys!");
  const auto bad = Check(bad_code);
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad.status.error_message().rfind("patient.conditions[0].code.code:", 0), 0u) << bad.status.error_message();

  v1::CheckMedicationsRequest too_many;
  too_many.mutable_patient()->set_id("x");
  for (int i = 0; i < 501; ++i) {
    too_many.add_proposed_medications()->set_drug("silperisone");
  }
  const auto big = Check(too_many);
  EXPECT_EQ(big.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(big.status.error_message().find("proposed_medications"), std::string::npos);
}

TEST_F(EndToEndTest, UnknownDrugIsReportedOverTheWire) {
  v1::CheckMedicationsRequest request;
  request.mutable_patient()->set_id("e2e-2");
  request.add_proposed_medications()->set_drug("notarealdrugname");
  const auto call = Check(request);
  ASSERT_TRUE(call.status.ok());
  ASSERT_EQ(call.responses.size(), 2u);
  EXPECT_EQ(call.responses[0].alert().kind(), v1::ALERT_KIND_UNSCREENED_DRUG);
  EXPECT_FALSE(call.responses[1].summary().complete());
}

TEST_F(EndToEndTest, ServerKeepsServingAfterAClientCancelsMidStream) {
  auto stub = v1::DecisionSupport::NewStub(*channel_);
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext context;
    auto reader = stub->CheckMedications(&context, RenalSertralineRequest());
    v1::CheckMedicationsResponse response;
    ASSERT_TRUE(reader->Read(&response));
    context.TryCancel();
    reader->Finish();
  }
  EXPECT_TRUE(Check(RenalSertralineRequest()).status.ok());
}

TEST_F(EndToEndTest, ConcurrentChecksAllSucceed) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        const auto call = Check(RenalSertralineRequest());
        if (!call.status.ok() || call.responses.empty() || !call.responses.back().has_summary()) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(EndToEndTest, DrugCatalog) {
  auto stub = v1::DrugCatalog::NewStub(*channel_);
  {
    grpc::ClientContext context;
    v1::GetDrugRequest request;
    request.set_name("Silperisone");
    v1::Drug drug;
    ASSERT_TRUE(stub->GetDrug(&context, request, &drug).ok());
    EXPECT_EQ(drug.id(), "silperisone");
    EXPECT_EQ(drug.side_effects_size(), 6);
  }
  {
    grpc::ClientContext context;
    v1::GetDrugRequest request;
    request.set_name("no-such-drug");
    v1::Drug drug;
    EXPECT_EQ(stub->GetDrug(&context, request, &drug).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    v1::SearchDrugsRequest request;
    request.set_class_id("muscle-relaxants");
    v1::SearchDrugsResponse response;
    ASSERT_TRUE(stub->SearchDrugs(&context, request, &response).ok());
    EXPECT_GE(response.drugs_size(), 2);
  }
}

TEST_F(EndToEndTest, HealthServiceReportsServing) {
  auto stub = grpc::health::v1::Health::NewStub(*channel_);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(stub->Check(&context, request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(EndToEndTest, ReflectionListsTheServices) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(*channel_);
  grpc::ClientContext context;
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> names;
  for (const auto& s : response.list_services_response().service()) {
    names.push_back(s.name());
  }
  EXPECT_TRUE(stream->Finish().ok());
  for (const char* want : {"vigil.v1.DecisionSupport", "vigil.v1.DrugCatalog", "grpc.health.v1.Health"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
}

TEST_F(EndToEndTest, ClientDemoShowsTheMonographsSituations) {
  int code = 0;
  std::string out;
  Client({"demo"}, &code, &out);
  EXPECT_EQ(code, 0) << out;
  for (const char* want : {"silperisone-ci-severe-renal-impairment", "silperisone-ci-severe-hepatic-impairment",
                           "silperisone-hypersensitivity", "ddi-silperisone-antidepressants",
                           "ddi-silperisone-muscle-relaxants", "ddi-silperisone-sedatives", "additive-cns-depression",
                           "codeine-ci-under-12"}) {
    EXPECT_NE(out.find(want), std::string::npos) << want;
  }
  EXPECT_EQ(out.find("FAILED"), std::string::npos) << out;
}

TEST_F(EndToEndTest, ClientCheckExitCodes) {
  int code = 0;
  std::string out;
  Client({"check", "--egfr=24", "silperisone"}, &code, &out);
  EXPECT_EQ(code, 2) << out;  // A contraindication.
  EXPECT_NE(out.find("CONTRAINDICATED"), std::string::npos);

  Client({"check", "--egfr=80", "--condition=G35", "silperisone"}, &code, &out);
  EXPECT_EQ(code, 0) << out;  // Screened, nothing found.

  Client({"check", "--current=sertraline", "silperisone"}, &code, &out);
  EXPECT_EQ(code, 1) << out;  // A moderate interaction only.

  Client({"check", "--lab=62238-1=24 furlongs", "silperisone"}, &code, &out);
  EXPECT_EQ(code, 2) << out;  // The unreadable lab stands in for a contraindication: major.

  Client({"check", "--condition=kidneys!", "silperisone"}, &code, &out);
  EXPECT_EQ(code, 65) << out;  // Rejected by the server.

  Client({"drug", "no-such-drug"}, &code, &out);
  EXPECT_EQ(code, 66) << out;

  Client({"check"}, &code, &out);
  EXPECT_EQ(code, 65) << out;  // Nothing to screen.

  Client({"frobnicate"}, &code, &out);
  EXPECT_EQ(code, 64);
}

TEST_F(EndToEndTest, ClientJsonOutputIsOneObjectPerLine) {
  int code = 0;
  std::string out;
  const auto lines = Client({"--json", "check", "--egfr=24", "--current=sertraline", "silperisone"}, &code, &out);
  ASSERT_GE(lines.size(), 2u);
  for (const auto& line : lines) {
    EXPECT_EQ(line.front(), '{') << line;
    EXPECT_EQ(line.back(), '}') << line;
  }
  EXPECT_NE(lines.front().find("\"alert\""), std::string::npos);
  EXPECT_NE(lines.back().find("\"summary\""), std::string::npos);
}

TEST_F(EndToEndTest, ClientDrugShowsTheMonograph) {
  int code = 0;
  std::string out;
  Client({"drug", "silperisone"}, &code, &out);
  EXPECT_EQ(code, 0);
  for (const char* want : {"drowsiness (common)", "tachycardia (less common)", "Severe renal impairment",
                           "Antidepressants", "WikiMD"}) {
    EXPECT_NE(out.find(want), std::string::npos) << want << "\n" << out;
  }
}

// SIGTERM: calls in flight get the grace period, but a client that only
// keeps its connection open must not hold the server up for it (gRPC's own
// Shutdown would wait the whole grace for such a connection).
TEST(EndToEndShutdownTest, AnIdleConnectionDoesNotHoldUpShutdown) {
  ServerProcess server({absl::StrCat("--kb=", VIGIL_BUNDLED_KB), "--shutdown_grace_seconds=60"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetKnowledgeBaseRequest request;
    v1::KnowledgeBase info;
    ASSERT_TRUE(v1::DrugCatalog::NewStub(channel)->GetKnowledgeBase(&context, request, &info).ok());
  }
  ASSERT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // Well under the 60 s grace; Stop returns -1 when the timeout passes.
  const int status = server.Stop(SIGTERM, /*timeout_seconds=*/15);
  ASSERT_NE(status, -1) << "the server waited for an idle connection\n" << server.log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << server.log();
}

TEST(EndToEndStartupTest, UnreachableServerGivesExitCode69) {
  const auto result = RunCommand({VIGIL_CLIENT_BIN, "--server=127.0.0.1:1", "--timeout=2", "check", "silperisone"});
  EXPECT_EQ(result.exit_code, 69);
}

TEST(EndToEndStartupTest, ServerRefusesABrokenKnowledgeBase) {
  char dir[] = "/tmp/vigil-e2e-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string file = absl::StrCat(dir, "/bad.textproto");
  FILE* f = fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("sources { id: \"s\" title: \"S\" }\ndrugs { id: \"d\" name: \"D\" classes: \"ghost\" sources: \"s\" }\n", f);
  fclose(f);
  ServerProcess server({absl::StrCat("--kb=", file)});
  EXPECT_FALSE(server.ok());
  const int status = server.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << status;
  EXPECT_NE(server.log().find("bad.textproto:2:"), std::string::npos) << server.log();
  EXPECT_NE(server.log().find("unknown class 'ghost'"), std::string::npos) << server.log();
  unlink(file.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace vigil
