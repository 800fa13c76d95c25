// End-to-end tests of TLS, mutual TLS, bearer tokens and roles, with
// certificates generated at test time by openssl.
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/common/text.h"
#include "server/common/timestamp.h"
#include "tests/feed_client.h"
#include "tests/server_process.h"
#include "tests/test_util.h"
#include "vigil/v1/admin.grpc.pb.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/drug_catalog.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
using ::vigil::testing::FileBytes;
using ::vigil::testing::RunCommand;
using ::vigil::testing::ServerProcess;

// A CA, a server certificate for "localhost", a client certificate, and a
// client certificate from another CA; plus a tokens file.
class Pki {
 public:
  Pki() {
    std::string pattern = (fs::temp_directory_path() / "vigil-pki-XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
    const std::string script = absl::StrCat(
        "set -e; cd ", dir_, "\n",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=vigil-test-ca 2>/dev/null\n",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue-ca.key -out rogue-ca.pem -days 2 -subj /CN=rogue 2>/dev/null\n",
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext\n",
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null\n",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null\n",
        "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=pharmacy 2>/dev/null\n",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 2>/dev/null\n",
        "openssl req -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.csr -subj /CN=rogue 2>/dev/null\n",
        "openssl x509 -req -in rogue.csr -CA rogue-ca.pem -CAkey rogue-ca.key -CAcreateserial -out rogue.pem -days 2 2>/dev/null\n");
    ok_ = RunCommand({"/bin/bash", "-c", script}).exit_code == 0;
    std::ofstream tokens(path("tokens"));
    tokens << "# digest roles name\n"
           << Sha256Hex("ehr-token") << " ehr ehr-system\n"
           << Sha256Hex("sub-token") << " subscriber pharmacy-queue   # a comment\n"
           << Sha256Hex("clin-token") << " clinician,subscriber ward-clinician\n"
           << Sha256Hex("admin-token") << " admin operator\n";
  }
  ~Pki() { fs::remove_all(dir_); }
  bool ok() const { return ok_; }
  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

 private:
  std::string dir_;
  bool ok_ = false;
};

std::shared_ptr<grpc::Channel> TlsChannel(const ServerProcess& server, const Pki& pki, const std::string& cert = "",
                                          const std::string& key = "") {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = FileBytes(pki.path("ca.pem"));
  if (!cert.empty()) {
    ssl.pem_cert_chain = FileBytes(pki.path(cert));
    ssl.pem_private_key = FileBytes(pki.path(key));
  }
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  return grpc::CreateCustomChannel(server.address(), grpc::SslCredentials(ssl), args);
}

grpc::Status GetKb(const std::shared_ptr<grpc::Channel>& channel, const std::string& token) {
  auto stub = v1::DrugCatalog::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!token.empty()) {
    context.AddMetadata("authorization", "Bearer " + token);
  }
  v1::KnowledgeBase kb;
  return stub->GetKnowledgeBase(&context, v1::GetKnowledgeBaseRequest(), &kb);
}

TEST(SecurityTest, TlsServesAndPlaintextClientsAreRefused) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  ServerProcess server({absl::StrCat("--tls_cert=", pki.path("server.pem")),
                        absl::StrCat("--tls_key=", pki.path("server.key")),
                        absl::StrCat("--tokens_file=", pki.path("tokens"))});
  ASSERT_TRUE(server.ok()) << server.log();
  EXPECT_TRUE(GetKb(TlsChannel(server, pki), "ehr-token").ok());
  const auto plaintext = GetKb(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()), "ehr-token");
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE) << plaintext.error_message();
}

TEST(SecurityTest, MutualTlsRequiresAClientCertificateFromTheCa) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  ServerProcess server({absl::StrCat("--tls_cert=", pki.path("server.pem")),
                        absl::StrCat("--tls_key=", pki.path("server.key")),
                        absl::StrCat("--tls_client_ca=", pki.path("ca.pem")),
                        absl::StrCat("--tokens_file=", pki.path("tokens"))});
  ASSERT_TRUE(server.ok()) << server.log();
  EXPECT_TRUE(GetKb(TlsChannel(server, pki, "client.pem", "client.key"), "ehr-token").ok());
  EXPECT_FALSE(GetKb(TlsChannel(server, pki), "ehr-token").ok());
  EXPECT_FALSE(GetKb(TlsChannel(server, pki, "rogue.pem", "rogue.key"), "ehr-token").ok());
}

TEST(SecurityTest, ClientBinarySpeaksMutualTlsWithAToken) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  ServerProcess server({absl::StrCat("--tls_cert=", pki.path("server.pem")),
                        absl::StrCat("--tls_key=", pki.path("server.key")),
                        absl::StrCat("--tls_client_ca=", pki.path("ca.pem")),
                        absl::StrCat("--tokens_file=", pki.path("tokens"))});
  ASSERT_TRUE(server.ok()) << server.log();
  const std::string target = absl::StrCat("--server=localhost:", server.port());
  const auto ok = RunCommand({VIGIL_CLIENT_BIN, target, absl::StrCat("--ca_cert=", pki.path("ca.pem")),
                              absl::StrCat("--cert=", pki.path("client.pem")),
                              absl::StrCat("--key=", pki.path("client.key")), "--token=ehr-token", "check",
                              "--egfr=24", "silperisone"});
  EXPECT_EQ(ok.exit_code, 2) << ok.output;
  const auto no_token = RunCommand({VIGIL_CLIENT_BIN, target, absl::StrCat("--ca_cert=", pki.path("ca.pem")),
                                    absl::StrCat("--cert=", pki.path("client.pem")),
                                    absl::StrCat("--key=", pki.path("client.key")), "check", "silperisone"});
  EXPECT_EQ(no_token.exit_code, 70) << no_token.output;
}

// Calls one RPC with a token and returns its status code.
using Call = std::function<grpc::StatusCode(const std::shared_ptr<grpc::Channel>&, const std::string&)>;

grpc::ClientContext* WithToken(grpc::ClientContext* context, const std::string& token) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) {
    context->AddMetadata("authorization", "Bearer " + token);
  }
  return context;
}

TEST(SecurityTest, EveryRpcNeedsAValidTokenAndItsRole) {
  Pki pki;
  // Every failure must be answered as itself here, not as the flood limit
  // that FloodTest covers.
  ServerProcess server({absl::StrCat("--tokens_file=", pki.path("tokens")), "--failed_call_rate=0"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  struct Case {
    std::string name;
    std::string right_token;
    std::string wrong_token;
    Call call;
  };
  std::vector<Case> cases = {
      {"CheckMedications", "ehr-token", "sub-token",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::CheckMedicationsRequest request;
         request.mutable_patient()->set_id("x");
         request.add_proposed_medications()->set_drug("silperisone");
         auto reader = v1::DecisionSupport::NewStub(ch)->CheckMedications(WithToken(&context, token), request);
         v1::CheckMedicationsResponse r;
         while (reader->Read(&r)) {
         }
         return reader->Finish().error_code();
       }},
      {"CheckMedicationsUnary", "ehr-token", "sub-token",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::CheckMedicationsRequest request;
         request.mutable_patient()->set_id("x");
         request.add_proposed_medications()->set_drug("silperisone");
         v1::CheckMedicationsUnaryResponse result;
         return v1::DecisionSupport::NewStub(ch)
             ->CheckMedicationsUnary(WithToken(&context, token), testing::Unary(request), &result)
             .error_code();
       }},
      {"PutPatient", "ehr-token", "clin-token",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::PutPatientRequest request;
         request.mutable_patient()->set_id("sec");
         request.mutable_patient()->add_medications()->set_drug("silperisone");
         v1::PutPatientResponse response;
         return v1::Patients::NewStub(ch)->PutPatient(WithToken(&context, token), request, &response).error_code();
       }},
      {"GetPatient", "ehr-token", "sub-token",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::GetPatientRequest request;
         request.set_patient_id("sec");
         v1::Patient response;
         return v1::Patients::NewStub(ch)->GetPatient(WithToken(&context, token), request, &response).error_code();
       }},
      {"ListAlerts", "sub-token", "ehr-token",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::ListAlertsRequest request;
         request.set_patient_id("sec");
         v1::ListAlertsResponse response;
         return v1::AlertFeed::NewStub(ch)->ListAlerts(WithToken(&context, token), request, &response).error_code();
       }},
      {"AcknowledgeAlert", "clin-token", "ehr-token",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::AcknowledgeAlertRequest request;
         request.set_alert_id("al-none");
         request.set_outcome(v1::ACKNOWLEDGEMENT_OUTCOME_ACCEPTED);
         request.set_user("u");
         v1::AcknowledgeAlertResponse response;
         return v1::AlertFeed::NewStub(ch)->AcknowledgeAlert(WithToken(&context, token), request, &response).error_code();
       }},
      {"Subscribe", "sub-token", "admin-token",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::SubscribeRequest request;
         request.set_after_event_number(0);
         request.set_heartbeat_interval_seconds(1);
         auto reader = v1::AlertFeed::NewStub(ch)->Subscribe(WithToken(&context, token), request);
         v1::SubscribeResponse r;
         if (reader->Read(&r)) {
           // Admitted: one message arrived (an event or a heartbeat).
           context.TryCancel();
           reader->Finish();
           return grpc::StatusCode::OK;
         }
         return reader->Finish().error_code();
       }},
      {"ReloadKnowledgeBase", "admin-token", "ehr-token",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::ReloadKnowledgeBaseResponse response;
         return v1::Admin::NewStub(ch)
             ->ReloadKnowledgeBase(WithToken(&context, token), v1::ReloadKnowledgeBaseRequest(), &response)
             .error_code();
       }},
      {"DeletePatient", "ehr-token", "sub-token",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::DeletePatientRequest request;
         request.set_patient_id("nobody");
         v1::DeletePatientResponse response;
         return v1::Patients::NewStub(ch)->DeletePatient(WithToken(&context, token), request, &response).error_code();
       }},
      {"ListAuditEvents", "admin-token", "clin-token",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::ListAuditEventsResponse response;
         return v1::Admin::NewStub(ch)
             ->ListAuditEvents(WithToken(&context, token), v1::ListAuditEventsRequest(), &response)
             .error_code();
       }},
      {"GetDrug (any caller)", "clin-token", "",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::GetDrugRequest request;
         request.set_name("silperisone");
         v1::Drug response;
         return v1::DrugCatalog::NewStub(ch)->GetDrug(WithToken(&context, token), request, &response).error_code();
       }},
      {"SearchDrugs (any caller)", "sub-token", "",
       [](const auto& ch, const std::string& token) {
         grpc::ClientContext context;
         v1::SearchDrugsRequest request;
         request.set_query("sil");
         v1::SearchDrugsResponse response;
         return v1::DrugCatalog::NewStub(ch)->SearchDrugs(WithToken(&context, token), request, &response).error_code();
       }},
      {"GetKnowledgeBase (any caller)", "sub-token", "",
       [](const auto& ch, const std::string& token) { return GetKb(ch, token).error_code(); }},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.call(channel, ""), grpc::StatusCode::UNAUTHENTICATED) << c.name;
    EXPECT_EQ(c.call(channel, "not-a-token"), grpc::StatusCode::UNAUTHENTICATED) << c.name;
    if (!c.wrong_token.empty()) {
      EXPECT_EQ(c.call(channel, c.wrong_token), grpc::StatusCode::PERMISSION_DENIED) << c.name;
    }
    const auto right = c.call(channel, c.right_token);
    EXPECT_NE(right, grpc::StatusCode::UNAUTHENTICATED) << c.name;
    EXPECT_NE(right, grpc::StatusCode::PERMISSION_DENIED) << c.name;
  }
  // Health checking stays open to probes.
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckResponse health;
  EXPECT_TRUE(grpc::health::v1::Health::NewStub(channel)
                  ->Check(&context, grpc::health::v1::HealthCheckRequest(), &health)
                  .ok());
}

TEST(SecurityTest, UnsafeConfigurationsAreRefused) {
  Pki pki;
  {
    // Development mode (no tokens) listens on loopback only.
    ServerProcess server({"--listen=0.0.0.0:0"});
    EXPECT_FALSE(server.ok());
    server.Stop(SIGTERM);
    EXPECT_NE(server.log().find("development_mode_non_loopback"), std::string::npos) << server.log();
  }
  {
    // Plaintext on a non-loopback address needs an explicit opt-in.
    ServerProcess server({"--listen=0.0.0.0:0", absl::StrCat("--tokens_file=", pki.path("tokens"))});
    EXPECT_FALSE(server.ok());
    server.Stop(SIGTERM);
    EXPECT_NE(server.log().find("plaintext_non_loopback"), std::string::npos) << server.log();
  }
  {
    ServerProcess server({});
    ASSERT_TRUE(server.ok());
    server.Stop(SIGTERM);
    EXPECT_NE(server.log().find("DEVELOPMENT_MODE"), std::string::npos);
  }
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(AuditTest, EveryAccessToPatientDataIsRecorded) {
  Pki pki;
  char dir[] = "/tmp/vigil-audit-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string db = absl::StrCat(dir, "/vigil.db");
  ServerProcess server({absl::StrCat("--tokens_file=", pki.path("tokens")), absl::StrCat("--db=", db)});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  {
    grpc::ClientContext context;
    v1::PutPatientRequest request;
    request.mutable_patient()->set_id("pa");
    request.mutable_patient()->add_medications()->set_drug("silperisone");
    auto* c = request.mutable_patient()->add_conditions()->mutable_code();
    c->set_system("http://hl7.org/fhir/sid/icd-10-cm");
    c->set_code("N18.4");
    v1::PutPatientResponse response;
    ASSERT_TRUE(v1::Patients::NewStub(channel)->PutPatient(WithToken(&context, "ehr-token"), request, &response).ok());
    ASSERT_EQ(response.raised_size(), 1);
    grpc::ClientContext ack_context;
    v1::AcknowledgeAlertRequest ack;
    ack.set_alert_id(response.raised(0).id());
    ack.set_outcome(v1::ACKNOWLEDGEMENT_OUTCOME_ACCEPTED);
    ack.set_user("dr-a");
    v1::AcknowledgeAlertResponse ack_response;
    ASSERT_TRUE(
        v1::AlertFeed::NewStub(channel)->AcknowledgeAlert(WithToken(&ack_context, "clin-token"), ack, &ack_response).ok());
  }
  {
    grpc::ClientContext context;
    v1::CheckMedicationsRequest request;
    request.set_patient_id("pa");
    request.add_proposed_medications()->set_drug("silperisone");
    auto reader = v1::DecisionSupport::NewStub(channel)->CheckMedications(WithToken(&context, "ehr-token"), request);
    v1::CheckMedicationsResponse r;
    while (reader->Read(&r)) {
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  {
    grpc::ClientContext context;
    v1::GetPatientRequest request;
    request.set_patient_id("pa");
    v1::Patient patient;
    ASSERT_TRUE(v1::Patients::NewStub(channel)->GetPatient(WithToken(&context, "ehr-token"), request, &patient).ok());
    grpc::ClientContext denied;
    EXPECT_EQ(v1::Patients::NewStub(channel)->GetPatient(WithToken(&denied, "sub-token"), request, &patient).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext context;
    v1::ListAlertsRequest request;
    request.set_patient_id("pa");
    v1::ListAlertsResponse response;
    ASSERT_TRUE(v1::AlertFeed::NewStub(channel)->ListAlerts(WithToken(&context, "sub-token"), request, &response).ok());
  }
  {
    grpc::ClientContext context;
    v1::SubscribeRequest request;
    request.add_patient_ids("pa");
    request.set_after_event_number(0);
    auto reader = v1::AlertFeed::NewStub(channel)->Subscribe(WithToken(&context, "sub-token"), request);
    v1::SubscribeResponse r;
    ASSERT_TRUE(reader->Read(&r));
    context.TryCancel();
    reader->Finish();
  }
  {
    grpc::ClientContext context;
    v1::DeletePatientRequest request;
    request.set_patient_id("pa");
    v1::DeletePatientResponse response;
    ASSERT_TRUE(v1::Patients::NewStub(channel)->DeletePatient(WithToken(&context, "ehr-token"), request, &response).ok());
  }
  // Export with the client, as an operator would.
  const auto exported = RunCommand({VIGIL_CLIENT_BIN, absl::StrCat("--server=", server.address()),
                                    "--token=admin-token", "audit"});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  struct Want {
    const char* method;
    const char* action;
    const char* agent;
    const char* outcome;
  };
  for (const Want& want : std::vector<Want>{{"Patients/PutPatient", "AUDIT_ACTION_UPDATE", "ehr-system", "OK"},
                                            {"AlertFeed/AcknowledgeAlert", "AUDIT_ACTION_UPDATE", "ward-clinician", "OK"},
                                            {"DecisionSupport/CheckMedications", "AUDIT_ACTION_EXECUTE", "ehr-system", "OK"},
                                            {"Patients/GetPatient", "AUDIT_ACTION_READ", "ehr-system", "OK"},
                                            {"Patients/GetPatient", "AUDIT_ACTION_READ", "pharmacy-queue", "PERMISSION_DENIED"},
                                            {"AlertFeed/ListAlerts", "AUDIT_ACTION_READ", "pharmacy-queue", "OK"},
                                            {"AlertFeed/Subscribe", "AUDIT_ACTION_EXECUTE", "pharmacy-queue", "OK"},
                                            {"Patients/DeletePatient", "AUDIT_ACTION_DELETE", "ehr-system", "OK"}}) {
    bool found = false;
    for (absl::string_view line : absl::StrSplit(exported.output, '\n', absl::SkipEmpty())) {
      found = found || (absl::StrContains(line, want.method) &&
                        absl::StrContains(line, absl::StrCat("\"action\":\"", want.action, "\"")) &&
                        absl::StrContains(line, absl::StrCat("\"agent\":\"", want.agent, "\"")) &&
                        absl::StrContains(line, absl::StrCat("\"outcome\":\"", want.outcome, "\"")) &&
                        absl::StrContains(line, "\"patient_id\":\"pa\""));
    }
    EXPECT_TRUE(found) << want.method << " " << want.agent << " " << want.outcome << "\n" << exported.output;
  }
  // Only the admin role may export.
  EXPECT_EQ(RunCommand({VIGIL_CLIENT_BIN, absl::StrCat("--server=", server.address()), "--token=ehr-token", "audit"})
                .exit_code,
            70);
  // The trail is append-only, even for someone with the database file.
  server.Stop(SIGTERM);
  const auto tamper = RunCommand({"/bin/sh", "-c", absl::StrCat("sqlite3 ", db, " 'DELETE FROM audit' 2>&1")});
  EXPECT_NE(tamper.output.find("append-only"), std::string::npos) << tamper.output;
  std::filesystem::remove_all(dir);
}

TEST(LogTest, LogsCarryNoHealthData) {
  ServerProcess server({});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  v1::Patient patient;
  patient.set_id("log-patient");
  patient.add_medications()->set_drug("silperisone");
  patient.add_medications()->set_drug("zzsecretmedication");
  auto* c = patient.add_conditions()->mutable_code();
  c->set_system("http://hl7.org/fhir/sid/icd-10-cm");
  c->set_code("K72.10");
  c->set_display("zzsecretdiagnosis");
  patient.add_allergies()->set_substance("zzsecretallergen");
  auto* lab = patient.add_labs();
  lab->mutable_code()->set_system("http://loinc.org");
  lab->mutable_code()->set_code("62238-1");
  lab->set_value(23.456);
  lab->set_unit("zzsecretunit");
  {
    grpc::ClientContext context;
    v1::PutPatientRequest request;
    *request.mutable_patient() = patient;
    v1::PutPatientResponse response;
    ASSERT_TRUE(v1::Patients::NewStub(channel)->PutPatient(&context, request, &response).ok());
  }
  {
    grpc::ClientContext context;
    v1::CheckMedicationsRequest request;
    *request.mutable_patient() = patient;
    request.add_proposed_medications()->set_drug("zzsecretproposed");
    auto reader = v1::DecisionSupport::NewStub(channel)->CheckMedications(&context, request);
    v1::CheckMedicationsResponse r;
    while (reader->Read(&r)) {
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  server.Stop(SIGTERM);
  const std::string& log = server.log();
  ASSERT_FALSE(log.empty());
  for (const char* secret : {"zzsecret", "K72", "23.456", "silperisone\""}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " leaked into the log:\n" << log;
  }
  // Every line is one JSON object.
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(line, "{") && absl::EndsWith(line, "}")) << line;
  }
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(MetricsTest, PrometheusEndpointCountsRpcsAndAlerts) {
  ServerProcess server({"--metrics_listen=127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.log();
  const int port = server.LoggedPort("metrics_listening");
  ASSERT_GT(port, 0) << server.log();
  const auto check = RunCommand({VIGIL_CLIENT_BIN, absl::StrCat("--server=", server.address()), "check", "--egfr=20",
                                 "silperisone"});
  ASSERT_EQ(check.exit_code, 2) << check.output;
  const auto scrape = RunCommand({"/usr/bin/curl", "-sf", absl::StrCat("http://127.0.0.1:", port, "/metrics")});
  ASSERT_EQ(scrape.exit_code, 0);
  for (const char* want : {"vigil_rpcs_total{method=\"/vigil.v1.DecisionSupport/CheckMedications\",code=\"OK\"} 1",
                           "vigil_rpc_duration_seconds_count{method=\"/vigil.v1.DecisionSupport/CheckMedications\"} 1",
                           "vigil_alerts_total{kind=\"ALERT_KIND_CONTRAINDICATION\",severity=\"SEVERITY_CONTRAINDICATED\"} 1",
                           "vigil_subscribers 0", "vigil_knowledge_base_info{version=\"", "vigil_audit_records"}) {
    EXPECT_NE(scrape.output.find(want), std::string::npos) << want << "\n" << scrape.output;
  }
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(LimitsTest, FloodingCallerIsLimitedAndOthersAreServed) {
  Pki pki;
  ServerProcess server({absl::StrCat("--tokens_file=", pki.path("tokens")), "--rate_limit=5", "--rate_burst=5",
                        "--max_subscribers=2", "--max_message_bytes=65536"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  int exhausted = 0;
  int ok = 0;
  for (int i = 0; i < 40; ++i) {
    const auto code = GetKb(channel, "ehr-token").error_code();
    exhausted += code == grpc::StatusCode::RESOURCE_EXHAUSTED ? 1 : 0;
    ok += code == grpc::StatusCode::OK ? 1 : 0;
  }
  EXPECT_GE(exhausted, 20);
  EXPECT_GE(ok, 5);
  // Another caller is still served.
  EXPECT_TRUE(GetKb(channel, "admin-token").ok());

  // Subscriptions past the maximum are refused.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>>> readers;
  auto stub = v1::AlertFeed::NewStub(channel);
  std::vector<grpc::StatusCode> codes;
  for (int i = 0; i < 3; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    contexts.back()->AddMetadata("authorization", "Bearer sub-token");
    v1::SubscribeRequest request;
    request.set_heartbeat_interval_seconds(1);
    readers.push_back(stub->Subscribe(contexts.back().get(), request));
    v1::SubscribeResponse r;
    if (readers.back()->Read(&r)) {
      codes.push_back(grpc::StatusCode::OK);
    } else {
      codes.push_back(readers.back()->Finish().error_code());
    }
  }
  EXPECT_EQ(codes, (std::vector<grpc::StatusCode>{grpc::StatusCode::OK, grpc::StatusCode::OK,
                                                  grpc::StatusCode::RESOURCE_EXHAUSTED}));
  for (size_t i = 0; i < 2; ++i) {
    contexts[i]->TryCancel();
    readers[i]->Finish();
  }

  // An oversized message is refused before it reaches the service.
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer admin-token");
  v1::GetDrugRequest big;
  big.set_name(std::string(100000, 'x'));
  v1::Drug drug;
  EXPECT_EQ(v1::DrugCatalog::NewStub(channel)->GetDrug(&context, big, &drug).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(GetKb(channel, "admin-token").ok() || GetKb(channel, "ehr-token").ok());
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(ConfigTest, FlagsCanComeFromAFlagFile) {
  Pki pki;
  const std::string flagfile = pki.path("vigil.flags");
  {
    std::ofstream out(flagfile);
    out << "--tokens_file=" << pki.path("tokens") << "\n--max_subscribers=5\n";
  }
  ServerProcess server({absl::StrCat("--flagfile=", flagfile)});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  // The tokens file named in the flag file is in force.
  EXPECT_EQ(GetKb(channel, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(GetKb(channel, "ehr-token").ok());
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// Issue 13: who did it is the authenticated identity; the audit trail
// records administrative calls, the time of access and the certificate;
// failed calls cannot flood the trail; /metrics stays bounded.

std::vector<v1::AuditEvent> ReadAuditTrail(const std::shared_ptr<grpc::Channel>& channel, const std::string& token) {
  std::vector<v1::AuditEvent> all;
  int64_t after = 0;
  for (int page = 0; page < 1000; ++page) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListAuditEventsRequest request;
    request.set_after_id(after);
    v1::ListAuditEventsResponse response;
    const auto status = v1::Admin::NewStub(channel)->ListAuditEvents(WithToken(&context, token), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok() || response.next_after_id() == after) {
      break;
    }
    for (const auto& e : response.events()) {
      all.push_back(e);
    }
    after = response.next_after_id();
  }
  return all;
}

TEST(IdentityTest, AcknowledgementRecordsTheAuthenticatedCallerAndCertificateBesideTheNamedUser) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  ServerProcess server({absl::StrCat("--tls_cert=", pki.path("server.pem")),
                        absl::StrCat("--tls_key=", pki.path("server.key")),
                        absl::StrCat("--tls_client_ca=", pki.path("ca.pem")),
                        absl::StrCat("--tokens_file=", pki.path("tokens"))});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = TlsChannel(server, pki, "client.pem", "client.key");
  v1::PutPatientRequest put;
  *put.mutable_patient() = ::vigil::testing::MakePatient("ack-identity", true);
  v1::PutPatientResponse created;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(v1::Patients::NewStub(channel)->PutPatient(WithToken(&context, "ehr-token"), put, &created).ok());
  }
  ASSERT_EQ(created.raised_size(), 1);
  v1::AcknowledgeAlertRequest ack;
  ack.set_alert_id(created.raised(0).id());
  ack.set_outcome(v1::ACKNOWLEDGEMENT_OUTCOME_ACCEPTED);
  ack.set_user("operator");  // the name of another caller: it must not become the identity
  v1::AcknowledgeAlertResponse acked;
  {
    grpc::ClientContext context;
    const auto status = v1::AlertFeed::NewStub(channel)->AcknowledgeAlert(WithToken(&context, "clin-token"), ack, &acked);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_GE(acked.alert().history_size(), 2);
  const auto& recorded = acked.alert().history(acked.alert().history_size() - 1).acknowledgement();
  EXPECT_EQ(recorded.agent(), "ward-clinician");
  EXPECT_NE(recorded.agent_certificate_subject().find("CN=pharmacy"), std::string::npos)
      << recorded.agent_certificate_subject();
  EXPECT_EQ(recorded.user(), "operator");

  // The audit trail names the same identity and certificate, and the time
  // of the access.
  const auto trail = ReadAuditTrail(channel, "admin-token");
  bool found = false;
  for (const auto& e : trail) {
    if (e.method() == "vigil.v1.AlertFeed/AcknowledgeAlert") {
      found = true;
      EXPECT_EQ(e.agent(), "ward-clinician");
      EXPECT_NE(e.certificate_subject().find("CN=pharmacy"), std::string::npos);
      EXPECT_GT(e.access_time().seconds(), 0);
      EXPECT_LE(FromTimestamp(e.access_time()), FromTimestamp(e.record_time()));
    }
  }
  EXPECT_TRUE(found);
}

TEST(IdentityTest, AdministrativeCallsAreAudited) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  ServerProcess server({absl::StrCat("--tokens_file=", pki.path("tokens"))});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  {
    grpc::ClientContext context;
    v1::ReloadKnowledgeBaseResponse response;
    ASSERT_TRUE(v1::Admin::NewStub(channel)
                    ->ReloadKnowledgeBase(WithToken(&context, "admin-token"), v1::ReloadKnowledgeBaseRequest(), &response)
                    .ok());
  }
  {
    grpc::ClientContext context;
    v1::ReloadKnowledgeBaseResponse response;
    EXPECT_EQ(v1::Admin::NewStub(channel)
                  ->ReloadKnowledgeBase(WithToken(&context, "ehr-token"), v1::ReloadKnowledgeBaseRequest(), &response)
                  .error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  ReadAuditTrail(channel, "admin-token");
  const auto trail = ReadAuditTrail(channel, "admin-token");
  int reloads = 0;
  int denied = 0;
  int reads = 0;
  for (const auto& e : trail) {
    if (e.method() == "vigil.v1.Admin/ReloadKnowledgeBase") {
      ++reloads;
      denied += e.outcome() == google::rpc::PERMISSION_DENIED && e.agent() == "ehr-system";
    }
    reads += e.method() == "vigil.v1.Admin/ListAuditEvents" && e.agent() == "operator" && e.action() == v1::AUDIT_ACTION_READ;
    EXPECT_GT(e.access_time().seconds(), 0);
  }
  EXPECT_EQ(reloads, 2);
  EXPECT_EQ(denied, 1);
  EXPECT_GE(reads, 1);
}

TEST(FloodTest, UnauthenticatedCallsWithHugeIdsNeitherGrowTheDatabaseNorTheTrail) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  const std::string db = pki.path("flood.db");
  ServerProcess server({absl::StrCat("--tokens_file=", pki.path("tokens")), absl::StrCat("--db=", db)});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  ReadAuditTrail(channel, "admin-token");  // the files exist and hold the schema
  auto size = [&db] {
    std::error_code ec;
    const auto wal = fs::file_size(db + "-wal", ec);
    return fs::file_size(db) + (ec ? 0 : wal);
  };
  const auto before = size();
  const std::string huge(1 << 20, 'x');
  int unauthenticated = 0;
  int exhausted = 0;
  for (int i = 0; i < 200; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetPatientRequest request;
    request.set_patient_id(huge);
    v1::Patient patient;
    const auto status = v1::Patients::NewStub(channel)->GetPatient(WithToken(&context, "wrong-token"), request, &patient);
    unauthenticated += status.error_code() == grpc::StatusCode::UNAUTHENTICATED;
    exhausted += status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
  }
  EXPECT_EQ(unauthenticated + exhausted, 200);
  EXPECT_GT(exhausted, 100);  // past the allowance, refused without a record
  // The limit counts failures: a caller with a valid token, even from the
  // same address, is still served.
  {
    grpc::ClientContext context;
    v1::GetPatientRequest request;
    request.set_patient_id("nobody");
    v1::Patient patient;
    EXPECT_EQ(v1::Patients::NewStub(channel)->GetPatient(WithToken(&context, "ehr-token"), request, &patient).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  EXPECT_LT(size() - before, 3u << 20) << "database grew by " << size() - before << " bytes";
  const auto trail = ReadAuditTrail(channel, "admin-token");
  int recorded = 0;
  for (const auto& e : trail) {
    if (e.method() == "vigil.v1.Patients/GetPatient" && e.agent() == "unauthenticated") {
      ++recorded;
      EXPECT_LE(e.patient_id().size(), 256u);
    }
  }
  EXPECT_EQ(recorded, unauthenticated);
  EXPECT_LT(recorded, 100);
}

TEST(FloodTest, AnAuditExportPagesBySizeAsWellAsCount) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  // No failure limit here: every one of these calls is recorded.
  ServerProcess server({absl::StrCat("--tokens_file=", pki.path("tokens")), "--failed_call_rate=0"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  // Each record carries a 256-byte id (cut from 4 KiB) and a long peer:
  // 1000 of them would be most of a default message limit.
  const std::string id(4096, 'y');
  for (int i = 0; i < 1500; ++i) {
    grpc::ClientContext context;
    v1::GetPatientRequest request;
    request.set_patient_id(id);
    v1::Patient patient;
    v1::Patients::NewStub(channel)->GetPatient(WithToken(&context, "sub-token"), request, &patient);
  }
  grpc::ClientContext context;
  v1::ListAuditEventsRequest request;
  request.set_page_size(1000);
  v1::ListAuditEventsResponse page;
  ASSERT_TRUE(v1::Admin::NewStub(channel)->ListAuditEvents(WithToken(&context, "admin-token"), request, &page).ok());
  EXPECT_GT(page.events_size(), 0);
  EXPECT_LE(page.ByteSizeLong(), (1u << 20) + 4096);
  EXPECT_EQ(page.next_after_id(), page.events(page.events_size() - 1).id());
  // Every record is still reachable page by page.
  EXPECT_GE(ReadAuditTrail(channel, "admin-token").size(), 1500u);
}

TEST(MetricsBoundsTest, UnknownMethodsShareOneLabel) {
  ServerProcess server({"--metrics_listen=127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.log();
  const int port = server.LoggedPort("metrics_listening");
  ASSERT_GT(port, 0) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  for (int i = 0; i < 50; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1);
    grpc::ByteBuffer response;
    grpc::Status status;
    absl::Mutex mu;
    bool done = false;
    generic.UnaryCall(&context, absl::StrCat("/vigil.v1.Bogus/Method\"", i, "{x=\"y\"}"), grpc::StubOptions(),
                      &request, &response, [&](grpc::Status s) {
                        absl::MutexLock lock(&mu);
                        status = s;
                        done = true;
                      });
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  const auto scrape = RunCommand({"/usr/bin/curl", "-sf", absl::StrCat("http://127.0.0.1:", port, "/metrics")});
  ASSERT_EQ(scrape.exit_code, 0);
  EXPECT_NE(scrape.output.find("vigil_rpcs_total{method=\"unknown\",code=\"UNIMPLEMENTED\"} 50"), std::string::npos)
      << scrape.output;
  EXPECT_EQ(scrape.output.find("Bogus"), std::string::npos);
  EXPECT_LT(scrape.output.size(), 64u * 1024);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// The status code of a reflection request on `channel`.
grpc::StatusCode ReflectionCode(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  stream->Write(request);
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  while (stream->Read(&response)) {
  }
  return stream->Finish().error_code();
}

grpc::StatusCode HealthCode(const std::shared_ptr<grpc::Channel>& channel,
                            grpc::health::v1::HealthCheckResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return grpc::health::v1::Health::NewStub(channel)
      ->Check(&context, grpc::health::v1::HealthCheckRequest(), response)
      .error_code();
}

// The manifests' probe path (deploy/k8s/deployment.yaml probes
// --health_listen; scripts/check-deploy.sh checks that they agree) against
// a real TLS server: the kubelet's plaintext gRPC probe gets an answer, and
// that listener serves nothing but health. Reflection is off once tokens
// are configured.
TEST(DeployProbeTest, APlaintextHealthOnlyListenerAnswersProbesBesideTls) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  ServerProcess server({absl::StrCat("--tls_cert=", pki.path("server.pem")),
                        absl::StrCat("--tls_key=", pki.path("server.key")),
                        absl::StrCat("--tokens_file=", pki.path("tokens")), "--health_listen=127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.log();
  const int port = server.LoggedPort("health_listening");
  ASSERT_GT(port, 0) << server.log();
  auto probe = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  grpc::health::v1::HealthCheckResponse health;
  ASSERT_EQ(HealthCode(probe, &health), grpc::StatusCode::OK);
  EXPECT_EQ(health.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  // Nothing else on that port, even with a valid token.
  EXPECT_EQ(GetKb(probe, "ehr-token").error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(ReflectionCode(probe), grpc::StatusCode::UNIMPLEMENTED);
  // A plaintext probe of the TLS listener (what the manifests did before)
  // gets no answer.
  auto plaintext_main = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  EXPECT_NE(HealthCode(plaintext_main, &health), grpc::StatusCode::OK);
  // The TLS listener serves the API; reflection is off with tokens.
  auto tls = TlsChannel(server, pki);
  EXPECT_TRUE(GetKb(tls, "ehr-token").ok());
  EXPECT_EQ(ReflectionCode(tls), grpc::StatusCode::UNIMPLEMENTED);
}

TEST(DeployProbeTest, ReflectionCanBeTurnedOnWithTokens) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  ServerProcess server({absl::StrCat("--tokens_file=", pki.path("tokens")), "--reflection=true"});
  ASSERT_TRUE(server.ok()) << server.log();
  EXPECT_EQ(ReflectionCode(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials())),
            grpc::StatusCode::OK);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// Opens a subscription with `token` and reads its first message; returns
// the status when refused, OK when admitted (the stream stays open in
// `*reader` until its context is cancelled).
grpc::StatusCode OpenSubscription(const std::shared_ptr<grpc::Channel>& channel, const std::string& token,
                                  grpc::ClientContext* context,
                                  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>>* reader) {
  context->AddMetadata("authorization", "Bearer " + token);
  v1::SubscribeRequest request;
  request.set_heartbeat_interval_seconds(1);
  *reader = v1::AlertFeed::NewStub(channel)->Subscribe(context, request);
  v1::SubscribeResponse response;
  if ((*reader)->Read(&response)) {
    return grpc::StatusCode::OK;
  }
  return (*reader)->Finish().error_code();
}

TEST(LimitsTest, OneCallerCannotTakeEverySubscriptionSlot) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  ServerProcess server({absl::StrCat("--tokens_file=", pki.path("tokens")), "--max_subscribers=10",
                        "--max_subscriptions_per_caller=3"});
  ASSERT_TRUE(server.ok()) << server.log();
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>>> readers;
  auto open = [&](const std::string& token) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.emplace_back();
    const auto code = OpenSubscription(channel, token, contexts.back().get(), &readers.back());
    if (code != grpc::StatusCode::OK) {
      readers.back().reset();  // finished already
    }
    return code;
  };
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(open("sub-token"), grpc::StatusCode::OK) << i;
  }
  EXPECT_EQ(open("sub-token"), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Another caller still gets a slot.
  EXPECT_EQ(open("clin-token"), grpc::StatusCode::OK);
  // Closing one of the first caller's subscriptions gives its slot back.
  contexts[0]->TryCancel();
  readers[0]->Finish();
  bool reopened = false;
  for (int i = 0; i < 50 && !reopened; ++i) {
    reopened = open("sub-token") == grpc::StatusCode::OK;
    if (!reopened) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_TRUE(reopened);
  for (size_t i = 1; i < contexts.size(); ++i) {
    contexts[i]->TryCancel();
  }
  for (size_t i = 1; i < readers.size(); ++i) {
    if (readers[i] != nullptr) {
      readers[i]->Finish();
    }
  }
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// A check whose answer (one unscreened-drug alert per unknown name, tens of
// kilobytes) does not fit a small flow-control window.
v1::CheckMedicationsRequest LargeAnswerCheck() {
  v1::CheckMedicationsRequest request;
  request.mutable_patient()->add_medications()->set_drug("warfarin");
  for (int i = 0; i < 60; ++i) {
    request.add_proposed_medications()->set_drug(absl::StrCat("notadrugname", i));
  }
  return request;
}

TEST(LimitsTest, OneCallerCannotTakeEveryCheckStream) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  {
    std::ofstream tokens(pki.path("ehr-tokens"));
    tokens << Sha256Hex("ehr-token") << " ehr ehr-system\n" << Sha256Hex("other-ehr-token") << " ehr pharmacy-system\n";
  }
  fs::permissions(pki.path("ehr-tokens"), fs::perms::owner_read | fs::perms::owner_write);
  ServerProcess server({absl::StrCat("--tokens_file=", pki.path("ehr-tokens")), "--max_checks_per_caller=2"});
  ASSERT_TRUE(server.ok()) << server.log();
  // A client that reads slowly: a small window, no window growth.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  auto channel = grpc::CreateCustomChannel(server.address(), grpc::InsecureChannelCredentials(), args);
  auto stub = v1::DecisionSupport::NewStub(channel);
  const v1::CheckMedicationsRequest request = LargeAnswerCheck();
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::CheckMedicationsResponse>>> readers;
  // Opens a check and reads its first message; the server cannot deliver
  // the rest until this client reads, so the stream stays in flight.
  auto open = [&](const std::string& token) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    contexts.back()->AddMetadata("authorization", "Bearer " + token);
    readers.push_back(stub->CheckMedications(contexts.back().get(), request));
    v1::CheckMedicationsResponse first;
    if (readers.back()->Read(&first)) {
      return grpc::StatusCode::OK;
    }
    const auto code = readers.back()->Finish().error_code();
    readers.back().reset();
    return code;
  };
  ASSERT_EQ(open("ehr-token"), grpc::StatusCode::OK);
  ASSERT_EQ(open("ehr-token"), grpc::StatusCode::OK);
  EXPECT_EQ(open("ehr-token"), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Another caller still screens.
  EXPECT_EQ(open("other-ehr-token"), grpc::StatusCode::OK);
  // Reading one answer to its end gives that slot back.
  v1::CheckMedicationsResponse response;
  int alerts = 1;
  while (readers[0]->Read(&response)) {
    alerts += response.has_alert() ? 1 : 0;
  }
  EXPECT_TRUE(readers[0]->Finish().ok());
  EXPECT_GE(alerts, 60);
  bool reopened = false;
  for (int i = 0; i < 50 && !reopened; ++i) {
    reopened = open("ehr-token") == grpc::StatusCode::OK;
    if (!reopened) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_TRUE(reopened);
  for (size_t i = 1; i < readers.size(); ++i) {
    if (readers[i] != nullptr) {
      contexts[i]->TryCancel();
      readers[i]->Finish();
    }
  }
}

}  // namespace
}  // namespace vigil
