#include "tests/cds_hooks_requests.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace vigil::testing {

using nlohmann::json;

json ReadCdsJson(const std::string& name) {
  std::ifstream in(absl::StrCat(VIGIL_SOURCE_DIR, "/tests/data/cds-hooks/", name));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return json::parse(buffer.str());
}

json CdsRequestFor(const std::string& patient_id, const std::string& hook) {
  json request = ReadCdsJson("order-sign-warfarin-ibuprofen.json");
  request["hook"] = hook;
  request["context"]["patientId"] = patient_id;
  request["prefetch"]["patient"]["id"] = patient_id;
  for (const char* key : {"medications", "labs"}) {
    for (auto& entry : request["prefetch"][key]["entry"]) {
      entry["resource"]["subject"]["reference"] = absl::StrCat("Patient/", patient_id);
    }
  }
  for (auto& entry : request["context"]["draftOrders"]["entry"]) {
    entry["resource"]["subject"]["reference"] = absl::StrCat("Patient/", patient_id);
  }
  return request;
}

std::pair<int, json> PostCds(int port, const std::string& service, const std::string& body) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(30, 0);
  auto res = client.Post(absl::StrCat("/cds-services/", service).c_str(), body, "application/json");
  if (!res) {
    ADD_FAILURE() << "no answer: " << httplib::to_string(res.error());
    return {0, json()};
  }
  return {res->status, json::parse(res->body, nullptr, false)};
}

std::vector<json> CardsAbout(const json& reply, const std::string& word) {
  std::vector<json> found;
  for (const auto& card : reply.value("cards", json::array())) {
    const std::string text = absl::StrCat(card.value("summary", ""), " ", card.value("detail", ""));
    if (absl::StrContains(absl::AsciiStrToLower(text), word)) {
      found.push_back(card);
    }
  }
  return found;
}

}  // namespace vigil::testing
