// CDS Hooks requests and answers for the end-to-end tests: the sample
// order-sign request of tests/data/cds-hooks, made for any patient, a POST to
// a server's HTTP listener, and the cards of an answer about a drug.
#ifndef VIGIL_TESTS_CDS_HOOKS_REQUESTS_H_
#define VIGIL_TESTS_CDS_HOOKS_REQUESTS_H_

#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace vigil::testing {

// A JSON file of tests/data/cds-hooks.
nlohmann::json ReadCdsJson(const std::string& name);

// The sample request (order-sign-warfarin-ibuprofen.json) for another
// patient and hook, so that tests do not share remembered cards.
nlohmann::json CdsRequestFor(const std::string& patient_id, const std::string& hook = "order-sign");

// POSTs `body` to http://127.0.0.1:<port>/cds-services/<service>: the
// status and the parsed body (status 0 and a failure when nothing answered).
std::pair<int, nlohmann::json> PostCds(int port, const std::string& service, const std::string& body);

// The cards of `reply` whose summary or detail mentions `word` (lower case).
std::vector<nlohmann::json> CardsAbout(const nlohmann::json& reply, const std::string& word);

}  // namespace vigil::testing

#endif  // VIGIL_TESTS_CDS_HOOKS_REQUESTS_H_
