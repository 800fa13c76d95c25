// End-to-end tests of the CDS Hooks 2.0 service on --http_listen, against a
// real server process: requests written from the specification (HL7 CDS
// Hooks 2.0, FHIR R4), RxNorm-coded draft orders, cards, order-select then
// order-sign, a missing prefetch (412, or fetched from a FHIR server that a
// test double plays), malformed requests (400 naming the path), feedback on
// the alert feed, and DetectedIssue.
#include <filesystem>
#include <regex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/cds_hooks_requests.h"
#include "tests/feed_client.h"
#include "tests/jwt_test_util.h"
#include "tests/server_process.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {
namespace {

using nlohmann::json;
using ::vigil::testing::CardsAbout;
using ::vigil::testing::CdsRequestFor;
using ::vigil::testing::ReadCdsJson;
using ::vigil::testing::ServerProcess;
using ::vigil::testing::Subscriber;

class CdsHooksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({absl::StrCat("--kb=", VIGIL_BUNDLED_KB), "--http_listen=127.0.0.1:0"});
    ASSERT_TRUE(server_->ok()) << server_->log();
    http_port_ = server_->LoggedPort("http_listening");
    ASSERT_GT(http_port_, 0) << server_->log();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static httplib::Client Client() {
    httplib::Client client("127.0.0.1", http_port_);
    client.set_read_timeout(30, 0);
    return client;
  }

  // POSTs `body` to /cds-services/<service>; the status and the parsed body.
  static std::pair<int, json> Post(const std::string& service, const std::string& body) {
    return ::vigil::testing::PostCds(http_port_, service, body);
  }

  static ServerProcess* server_;
  static int http_port_;
};

ServerProcess* CdsHooksTest::server_ = nullptr;
int CdsHooksTest::http_port_ = 0;

TEST_F(CdsHooksTest, DiscoveryListsBothServicesWithPrefetchTemplates) {
  auto client = Client();
  auto res = client.Get("/cds-services");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const json doc = json::parse(res->body);
  ASSERT_EQ(doc["services"].size(), 2u);
  std::map<std::string, std::string> hooks;
  for (const auto& s : doc["services"]) {
    hooks[s["id"]] = s["hook"];
    for (const char* key : {"patient", "conditions", "allergies", "medications", "labs"}) {
      EXPECT_TRUE(s["prefetch"].contains(key)) << key;
    }
    // The labs the rules read: eGFR, creatinine and potassium among them.
    const std::string labs = s["prefetch"]["labs"];
    EXPECT_TRUE(absl::StrContains(labs, "Observation?patient={{context.patientId}}")) << labs;
    EXPECT_TRUE(absl::StrContains(labs, "62238-1") || absl::StrContains(labs, "33914-3")) << labs;
  }
  EXPECT_EQ(hooks["vigil-order-select"], "order-select");
  EXPECT_EQ(hooks["vigil-order-sign"], "order-sign");
}

TEST_F(CdsHooksTest, RxNormCodedWarfarinWithIbuprofenGetsAnInteractionCard) {
  const auto [status, reply] = Post("vigil-order-sign", ReadCdsJson("order-sign-warfarin-ibuprofen.json").dump());
  ASSERT_EQ(status, 200) << reply.dump(2);
  const auto cards = CardsAbout(reply, "warfarin");
  ASSERT_FALSE(cards.empty()) << reply.dump(2);
  const json& card = cards.front();
  EXPECT_LT(card["summary"].get<std::string>().size(), 140u);
  EXPECT_TRUE(card["indicator"] == "warning" || card["indicator"] == "critical") << card.dump(2);
  EXPECT_TRUE(std::regex_match(card["uuid"].get<std::string>(),
                               std::regex("[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
      << card["uuid"];
  EXPECT_FALSE(card["source"]["label"].get<std::string>().empty());
  EXPECT_FALSE(card["overrideReasons"].empty());
  // The SCD code is not in the knowledge base: the card says warfarin was
  // identified from its coded name.
  EXPECT_TRUE(absl::StrContains(card["detail"].get<std::string>(), "identified from its coded name"))
      << card["detail"];
  EXPECT_TRUE(absl::StrContains(card["detail"].get<std::string>(), "**What to do:**")) << card["detail"];
}

json MedicationRequest(const std::string& id, const std::string& status, const std::string& rxcui,
                       const std::string& display, const std::string& patient_id) {
  json coding = {{"system", "http://www.nlm.nih.gov/research/umls/rxnorm"}, {"code", rxcui}};
  if (!display.empty()) {
    coding["display"] = display;
  }
  return {{"resource",
           {{"resourceType", "MedicationRequest"},
            {"id", id},
            {"status", status},
            {"intent", "order"},
            {"medicationCodeableConcept", {{"coding", json::array({coding})}}},
            {"subject", {{"reference", absl::StrCat("Patient/", patient_id)}}}}}};
}

TEST_F(CdsHooksTest, DigoxinWithCiclosporinByIngredientCodes) {
  json request = CdsRequestFor("cds-pt-digoxin");
  request["prefetch"]["medications"]["entry"] =
      json::array({MedicationRequest("digoxin-1", "active", "3407", "digoxin", "cds-pt-digoxin")});
  request["context"]["draftOrders"]["entry"] =
      json::array({MedicationRequest("draft-csa", "draft", "3008", "cyclosporine", "cds-pt-digoxin")});
  const auto [status, reply] = Post("vigil-order-sign", request.dump());
  ASSERT_EQ(status, 200) << reply.dump(2);
  const auto cards = CardsAbout(reply, "digoxin");
  ASSERT_FALSE(cards.empty()) << reply.dump(2);
  // Resolved by their ingredient codes: no "identified from" note.
  EXPECT_FALSE(absl::StrContains(cards.front()["detail"].get<std::string>(), "identified from"))
      << cards.front()["detail"];
}

TEST_F(CdsHooksTest, AnUnknownCodeWithoutTextIsACardNeverSilence) {
  json request = CdsRequestFor("cds-pt-unknown");
  request["context"]["draftOrders"]["entry"] =
      json::array({MedicationRequest("draft-x", "draft", "99999999", "", "cds-pt-unknown")});
  const auto [status, reply] = Post("vigil-order-sign", request.dump());
  ASSERT_EQ(status, 200) << reply.dump(2);
  const auto cards = CardsAbout(reply, "99999999");
  ASSERT_FALSE(cards.empty()) << reply.dump(2);
  EXPECT_TRUE(absl::StrContains(cards.front()["summary"].get<std::string>(), "NOT screened")) << cards.front();
  EXPECT_EQ(cards.front()["indicator"], "warning");
}

TEST_F(CdsHooksTest, OrderSelectThenOrderSignDoesNotRepeatACardUnlessAsked) {
  const json select = CdsRequestFor("cds-pt-select", "order-select");
  json with_selection = select;
  with_selection["context"]["selections"] = json::array({"MedicationRequest/draft-ibuprofen"});
  const auto [select_status, at_select] = Post("vigil-order-select", with_selection.dump());
  ASSERT_EQ(select_status, 200) << at_select.dump(2);
  ASSERT_FALSE(CardsAbout(at_select, "warfarin").empty()) << at_select.dump(2);

  const auto [sign_status, at_sign] = Post("vigil-order-sign", CdsRequestFor("cds-pt-select").dump());
  ASSERT_EQ(sign_status, 200) << at_sign.dump(2);
  EXPECT_TRUE(CardsAbout(at_sign, "warfarin").empty()) << "shown again at sign: " << at_sign.dump(2);

  // Opt-out per request: the extension asks for every card.
  json repeat = CdsRequestFor("cds-pt-select");
  repeat["extension"] = {{"org.vigil.repeat-select-cards", true}};
  const auto [repeat_status, repeated] = Post("vigil-order-sign", repeat.dump());
  ASSERT_EQ(repeat_status, 200);
  EXPECT_FALSE(CardsAbout(repeated, "warfarin").empty()) << repeated.dump(2);

  // Another encounter is another ordering session: the card shows.
  json other = CdsRequestFor("cds-pt-select");
  other["context"]["encounterId"] = "Encounter/enc-2";
  const auto [other_status, other_reply] = Post("vigil-order-sign", other.dump());
  ASSERT_EQ(other_status, 200);
  EXPECT_FALSE(CardsAbout(other_reply, "warfarin").empty()) << other_reply.dump(2);
}

TEST_F(CdsHooksTest, MissingPrefetchWithoutFhirServerIs412) {
  json request = CdsRequestFor("cds-pt-412");
  request["prefetch"].erase("medications");
  request["prefetch"]["labs"] = nullptr;
  const auto [status, reply] = Post("vigil-order-sign", request.dump());
  EXPECT_EQ(status, 412) << reply.dump(2);
  ASSERT_EQ(reply["resourceType"], "OperationOutcome") << reply.dump(2);
  const std::string diagnostics = reply["issue"][0]["diagnostics"];
  EXPECT_TRUE(absl::StrContains(diagnostics, "medications")) << diagnostics;
  EXPECT_TRUE(absl::StrContains(diagnostics, "labs")) << diagnostics;
  EXPECT_EQ(reply["issue"][0]["code"], "required");
}

// The EHR's FHIR server: a test double (no EHR runs here) that answers the
// MedicationRequest search with the warfarin order and records the
// Authorization header it was sent.
class FakeFhirServer {
 public:
  FakeFhirServer() {
    server_.Get(R"(/MedicationRequest)", [this](const httplib::Request& req, httplib::Response& res) {
      {
        absl::MutexLock lock(&mu_);
        authorization_ = req.get_header_value("Authorization");
        query_patient_ = req.get_param_value("patient");
      }
      json bundle = {{"resourceType", "Bundle"},
                     {"type", "searchset"},
                     {"entry", json::array({MedicationRequest("active-warfarin", "active", "855332",
                                                              "Warfarin Sodium 5 MG Oral Tablet", "cds-pt-fetch")})}};
      res.set_content(bundle.dump(), "application/fhir+json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeFhirServer() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::string authorization() {
    absl::MutexLock lock(&mu_);
    return authorization_;
  }
  std::string query_patient() {
    absl::MutexLock lock(&mu_);
    return query_patient_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  absl::Mutex mu_;
  std::string authorization_ ABSL_GUARDED_BY(mu_);
  std::string query_patient_ ABSL_GUARDED_BY(mu_);
};

TEST_F(CdsHooksTest, MissingPrefetchIsFetchedFromTheFhirServerWithItsToken) {
  FakeFhirServer fhir;
  ASSERT_GT(fhir.port(), 0);
  json request = CdsRequestFor("cds-pt-fetch");
  request["prefetch"].erase("medications");
  request["fhirServer"] = absl::StrCat("http://127.0.0.1:", fhir.port());
  request["fhirAuthorization"] = {{"access_token", "fhir-token-123"},
                                  {"token_type", "Bearer"},
                                  {"expires_in", 300},
                                  {"scope", "patient/MedicationRequest.read"},
                                  {"subject", "vigil"}};
  const auto [status, reply] = Post("vigil-order-sign", request.dump());
  ASSERT_EQ(status, 200) << reply.dump(2);
  EXPECT_FALSE(CardsAbout(reply, "warfarin").empty()) << reply.dump(2);
  EXPECT_EQ(fhir.authorization(), "Bearer fhir-token-123");
  EXPECT_EQ(fhir.query_patient(), "cds-pt-fetch");
}

TEST_F(CdsHooksTest, MalformedRequestsAre400WithAnOperationOutcomeNamingThePath) {
  {
    const auto [status, reply] = Post("vigil-order-sign", "{\"hook\": \"order-sign\", ");
    EXPECT_EQ(status, 400);
    ASSERT_EQ(reply["resourceType"], "OperationOutcome") << reply.dump(2);
    EXPECT_TRUE(absl::StrContains(reply["issue"][0]["diagnostics"].get<std::string>(), "not JSON"));
  }
  {
    json request = CdsRequestFor("cds-pt-400");
    request["context"]["draftOrders"]["entry"][0]["resource"]["resourceType"] = "Observation";
    const auto [status, reply] = Post("vigil-order-sign", request.dump());
    EXPECT_EQ(status, 400) << reply.dump(2);
    ASSERT_TRUE(reply["issue"][0].contains("expression")) << reply.dump(2);
    EXPECT_TRUE(absl::StartsWith(reply["issue"][0]["expression"][0].get<std::string>(),
                                 "context.draftOrders.entry[0]"))
        << reply.dump(2);
  }
  {
    // The hook must be the service's.
    const auto [status, reply] = Post("vigil-order-select", CdsRequestFor("cds-pt-400").dump());
    EXPECT_EQ(status, 400) << reply.dump(2);
  }
  {
    const auto [status, reply] = Post("no-such-service", CdsRequestFor("cds-pt-400").dump());
    EXPECT_EQ(status, 404) << reply.dump(2);
  }
}

TEST_F(CdsHooksTest, OverrideFeedbackIsAnAcknowledgementOnTheFeedAndADetectedIssue) {
  Subscriber subscriber(server_->address(), ::vigil::testing::From(0));
  const auto [status, reply] = Post("vigil-order-sign", CdsRequestFor("cds-pt-feedback").dump());
  ASSERT_EQ(status, 200) << reply.dump(2);
  const auto cards = CardsAbout(reply, "warfarin");
  ASSERT_FALSE(cards.empty());
  const std::string uuid = cards.front()["uuid"];
  const json feedback = {
      {"feedback",
       json::array({{{"card", uuid},
                     {"outcome", "overridden"},
                     {"overrideReason",
                      {{"reason", {{"system", "urn:vigil:v1:override-reason"}, {"code", "will-monitor"}}},
                       {"userComment", "INR checked twice weekly"}}},
                     {"outcomeTimestamp", "2026-12-04T10:00:00Z"}}})}};
  const auto [fb_status, fb_reply] = Post("vigil-order-sign/feedback", feedback.dump());
  ASSERT_EQ(fb_status, 200) << fb_reply.dump(2);

  ASSERT_TRUE(subscriber.WaitForEvents(1)) << server_->log();
  bool seen = false;
  for (const auto& message : subscriber.events()) {
    const auto& event = message.alert_event();
    if (event.type() == v1::ALERT_EVENT_TYPE_ACKNOWLEDGED && event.patient_id() == "cds-pt-feedback") {
      seen = true;
      EXPECT_EQ(event.acknowledgement().outcome(), v1::ACKNOWLEDGEMENT_OUTCOME_OVERRIDDEN);
      EXPECT_EQ(event.acknowledgement().reason().code(), "will-monitor");
      EXPECT_EQ(event.acknowledgement().comment(), "INR checked twice weekly");
      EXPECT_EQ(event.acknowledgement().user(), "Practitioner/example");
    }
  }
  EXPECT_TRUE(seen) << "no ACKNOWLEDGED event for the card";

  // An unknown card is refused by name, and nothing is recorded.
  json unknown = feedback;
  unknown["feedback"][0]["card"] = "00000000-0000-5000-8000-000000000000";
  EXPECT_EQ(Post("vigil-order-sign/feedback", unknown.dump()).first, 404);

  // The overridden alert reads back as a FHIR DetectedIssue.
  auto client = Client();
  auto res = client.Get("/fhir/DetectedIssue?patient=cds-pt-feedback");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json bundle = json::parse(res->body);
  ASSERT_EQ(bundle["resourceType"], "Bundle");
  ASSERT_EQ(bundle["entry"].size(), 1u) << bundle.dump(2);
  const json& issue = bundle["entry"][0]["resource"];
  EXPECT_EQ(issue["resourceType"], "DetectedIssue");
  EXPECT_EQ(issue["code"]["coding"][0]["code"], "DRG");
  EXPECT_TRUE(issue["severity"] == "high" || issue["severity"] == "moderate") << issue.dump(2);
  EXPECT_EQ(issue["patient"]["reference"], "Patient/cds-pt-feedback");
  EXPECT_FALSE(issue["implicated"].empty());

  // The patient was never stored, but the acknowledged card's alert was:
  // deleting the patient erases it.
  auto patients = v1::Patients::NewStub(grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::DeletePatientRequest del;
  del.set_patient_id("cds-pt-feedback");
  v1::DeletePatientResponse deleted;
  const grpc::Status status_of_delete = patients->DeletePatient(&context, del, &deleted);
  ASSERT_TRUE(status_of_delete.ok()) << status_of_delete.error_message();
  auto after = client.Get("/fhir/DetectedIssue?patient=cds-pt-feedback");
  ASSERT_TRUE(after);
  EXPECT_EQ(json::parse(after->body)["entry"].size(), 0u) << after->body;
}

// The cards shown are patient data kept in the store: deleting the patient,
// though it was never stored, erases them, and feedback on them is refused.
TEST_F(CdsHooksTest, DeletingAPatientErasesTheCardsShownForIt) {
  const auto [status, reply] = Post("vigil-order-sign", CdsRequestFor("cds-pt-erase").dump());
  ASSERT_EQ(status, 200) << reply.dump(2);
  const auto cards = CardsAbout(reply, "warfarin");
  ASSERT_FALSE(cards.empty()) << reply.dump(2);
  auto patients = v1::Patients::NewStub(grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  v1::DeletePatientRequest del;
  del.set_patient_id("cds-pt-erase");
  v1::DeletePatientResponse deleted;
  {
    grpc::ClientContext context;
    const grpc::Status erased = patients->DeletePatient(&context, del, &deleted);
    ASSERT_TRUE(erased.ok()) << erased.error_message();
    EXPECT_EQ(deleted.resolved_size(), 0);
  }
  const json feedback = {
      {"feedback", json::array({{{"card", cards.front()["uuid"]}, {"outcome", "accepted"}}})}};
  const auto [fb_status, fb_reply] = Post("vigil-order-sign/feedback", feedback.dump());
  EXPECT_EQ(fb_status, 404) << fb_reply.dump(2);
  // Nothing is left to delete.
  grpc::ClientContext again;
  EXPECT_EQ(patients->DeletePatient(&again, del, &deleted).error_code(), grpc::StatusCode::NOT_FOUND);
}

// With --cds_issuers_file, only an EHR with a signed token is served.
class CdsHooksJwtTest : public ::testing::Test {
 protected:
  static constexpr char kIss[] = "https://ehr.example.org";

  static void SetUpTestSuite() {
    key_ = ::vigil::testing::GenerateEc().release();
    ASSERT_NE(key_, nullptr);
    dir_ = std::filesystem::temp_directory_path() / absl::StrCat("vigil-cds-jwt-", getpid());
    std::filesystem::create_directories(dir_);
    const json issuers = {
        {"issuers", json::array({{{"iss", kIss}, {"jwks", {{"keys", {::vigil::testing::EcJwk(key_, "ec-1")}}}}}})}};
    std::ofstream(dir_ / "issuers.json") << issuers.dump();
    server_ = new ServerProcess({absl::StrCat("--kb=", VIGIL_BUNDLED_KB), "--http_listen=127.0.0.1:0",
                                 absl::StrCat("--cds_issuers_file=", (dir_ / "issuers.json").string())});
    ASSERT_TRUE(server_->ok()) << server_->log();
    http_port_ = server_->LoggedPort("http_listening");
    ASSERT_GT(http_port_, 0) << server_->log();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    EVP_PKEY_free(key_);
    std::filesystem::remove_all(dir_);
  }

  static std::string Audience() {
    return absl::StrCat("http://127.0.0.1:", http_port_, "/cds-services/vigil-order-sign");
  }
  static json Claims() {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    static int counter = 0;
    return {{"iss", kIss},     {"sub", "ehr-client"}, {"aud", Audience()},
            {"iat", now},      {"exp", now + 240},    {"jti", absl::StrCat("e2e-jti-", ++counter, "-", now)}};
  }
  static std::string Sign(const json& claims, const std::string& alg = "ES384") {
    const json header = {{"alg", alg}, {"typ", "JWT"}, {"kid", "ec-1"}};
    return ::vigil::testing::MakeToken(header, claims, [&](const std::string& input) {
      return alg == "none" ? std::string() : ::vigil::testing::SignEs384(key_, input);
    });
  }
  static int PostWith(const std::string& authorization) {
    httplib::Client client("127.0.0.1", http_port_);
    httplib::Headers headers;
    if (!authorization.empty()) {
      headers.emplace("Authorization", authorization);
    }
    auto res = client.Post("/cds-services/vigil-order-sign", headers,
                           CdsRequestFor("cds-pt-jwt").dump(), "application/json");
    return res ? res->status : 0;
  }

  static EVP_PKEY* key_;
  static std::filesystem::path dir_;
  static ServerProcess* server_;
  static int http_port_;
};

EVP_PKEY* CdsHooksJwtTest::key_ = nullptr;
std::filesystem::path CdsHooksJwtTest::dir_;
ServerProcess* CdsHooksJwtTest::server_ = nullptr;
int CdsHooksJwtTest::http_port_ = 0;

TEST_F(CdsHooksJwtTest, ASignedTokenIsServedOnceAndBadTokensAreRefused) {
  const std::string good = Sign(Claims());
  EXPECT_EQ(PostWith(absl::StrCat("Bearer ", good)), 200) << server_->log();
  // The same token again is a replay.
  EXPECT_EQ(PostWith(absl::StrCat("Bearer ", good)), 401);
  // No token, an unsigned token, another audience, an expired token.
  EXPECT_EQ(PostWith(""), 401);
  EXPECT_EQ(PostWith(absl::StrCat("Bearer ", Sign(Claims(), "none"))), 401);
  json other_audience = Claims();
  other_audience["aud"] = "https://elsewhere.example/cds-services/vigil-order-sign";
  EXPECT_EQ(PostWith(absl::StrCat("Bearer ", Sign(other_audience))), 401);
  json expired = Claims();
  expired["iat"] = expired["iat"].get<int64_t>() - 3600;
  expired["exp"] = expired["iat"].get<int64_t>() + 240;
  EXPECT_EQ(PostWith(absl::StrCat("Bearer ", Sign(expired))), 401);
  // Another issuer's key: a fresh key the server does not know.
  ::vigil::testing::Pkey stranger = ::vigil::testing::GenerateEc();
  const std::string forged = ::vigil::testing::MakeToken(
      {{"alg", "ES384"}, {"typ", "JWT"}, {"kid", "ec-1"}}, Claims(),
      [&](const std::string& input) { return ::vigil::testing::SignEs384(stranger.get(), input); });
  EXPECT_EQ(PostWith(absl::StrCat("Bearer ", forged)), 401);
  // Discovery needs no token (the CDS Hooks specification).
  httplib::Client client("127.0.0.1", http_port_);
  auto res = client.Get("/cds-services");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

}  // namespace
}  // namespace vigil
