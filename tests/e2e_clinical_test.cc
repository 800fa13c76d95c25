// End-to-end tests of issue 12's rule kinds against a real vigil-server with
// the bundled knowledge base: never a silent pass, products and order text,
// age rules on the request's as-of date, dated labs, burden rules.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/kb/loader.h"
#include "tests/server_process.h"
#include "tests/test_util.h"
#include "vigil/v1/decision_support.grpc.pb.h"

namespace vigil {
namespace {

using ::vigil::testing::ServerProcess;

class ClinicalEndToEndTest : public ::testing::Test {
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
      server_->Stop(SIGTERM);
      delete server_;
      server_ = nullptr;
    }
  }

  static grpc::Status Check(const v1::CheckMedicationsRequest& request, v1::CheckMedicationsUnaryResponse* result) {
    auto stub = v1::DecisionSupport::NewStub(*channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub->CheckMedicationsUnary(&context, testing::Unary(request), result);
  }

  static v1::CheckMedicationsUnaryResponse MustCheck(const v1::CheckMedicationsRequest& request) {
    v1::CheckMedicationsUnaryResponse result;
    const auto status = Check(request, &result);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return result;
  }

  static ServerProcess* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};

ServerProcess* ClinicalEndToEndTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* ClinicalEndToEndTest::channel_ = nullptr;

v1::CheckMedicationsRequest Request(const std::vector<std::string>& current, const std::vector<std::string>& proposed) {
  v1::CheckMedicationsRequest request;
  request.mutable_patient()->set_id("e2e-clinical");
  for (const auto& drug : current) {
    request.mutable_patient()->add_medications()->set_drug(drug);
  }
  for (const auto& drug : proposed) {
    request.add_proposed_medications()->set_drug(drug);
  }
  return request;
}

void AddEgfr(v1::CheckMedicationsRequest* request, double value, const std::string& when) {
  auto* lab = request->mutable_patient()->add_labs();
  lab->mutable_code()->set_system("http://loinc.org");
  lab->mutable_code()->set_code("62238-1");
  lab->set_value(value);
  lab->set_unit("mL/min/{1.73_m2}");
  lab->set_effective_time(when);
}

// Alerts of `kind` that name `drug_id`.
std::vector<v1::Alert> About(const v1::CheckMedicationsUnaryResponse& result, v1::AlertKind kind, const std::string& drug_id) {
  std::vector<v1::Alert> out;
  for (const auto& alert : result.alerts()) {
    if (alert.kind() != kind) {
      continue;
    }
    for (const auto& id : alert.drug_ids()) {
      if (id == drug_id) {
        out.push_back(alert);
        break;
      }
    }
  }
  return out;
}

TEST_F(ClinicalEndToEndTest, CurrentDrugWithoutInteractionDataIsNeverASilentPass) {
  auto kb = LoadKnowledgeBase(KnowledgeBaseSpec{{VIGIL_BUNDLED_KB}, {}});
  ASSERT_TRUE(kb.ok()) << kb.status();
  std::string without;
  for (DrugIndex d = 0; d < (*kb)->drug_count() && without.empty(); ++d) {
    if ((*kb)->InteractionsUnreviewed(d)) {
      without = (*kb)->drug(d).proto.id();
    }
  }
  ASSERT_FALSE(without.empty()) << "every drug has interaction data: pick another way to test this";
  const auto result = MustCheck(Request({without}, {"ciprofloxacin"}));
  EXPECT_FALSE(result.summary().complete()) << result.DebugString();
  EXPECT_EQ(About(result, v1::ALERT_KIND_UNSCREENED_DRUG, without).size(), 1u) << result.DebugString();
}

TEST_F(ClinicalEndToEndTest, ProductIngredientIsADuplicateOfTheSameDrugOnTheList) {
  const auto result = MustCheck(Request({"acetaminophen"}, {"Norco"}));
  const auto dup = About(result, v1::ALERT_KIND_DUPLICATE_THERAPY, "paracetamol");
  ASSERT_EQ(dup.size(), 1u) << result.DebugString();
  std::vector<std::string> screened(result.summary().screened_drug_ids().begin(),
                                    result.summary().screened_drug_ids().end());
  EXPECT_NE(std::find(screened.begin(), screened.end(), "hydrocodone"), screened.end());
  EXPECT_NE(std::find(screened.begin(), screened.end(), "paracetamol"), screened.end());
}

TEST_F(ClinicalEndToEndTest, OrderTextResolvesToItsIngredients) {
  const auto result =
      MustCheck(Request({}, {"lisinopril 10 MG / hydrochlorothiazide 12.5 MG Oral Tablet [Zestoretic]",
                             "warfarin sodium 5 MG Oral Tablet"}));
  std::vector<std::string> screened(result.summary().screened_drug_ids().begin(),
                                    result.summary().screened_drug_ids().end());
  for (const char* id : {"lisinopril", "hydrochlorothiazide", "warfarin"}) {
    EXPECT_NE(std::find(screened.begin(), screened.end(), id), screened.end()) << id << ": " << result.DebugString();
  }
  EXPECT_EQ(result.summary().unresolved_references_size(), 0) << result.DebugString();
  // What still does not resolve stays an unscreened-drug alert.
  const auto unknown = MustCheck(Request({}, {"zorblatin 5 MG Oral Tablet"}));
  EXPECT_EQ(unknown.summary().unresolved_references_size(), 1);
  EXPECT_FALSE(unknown.summary().complete());
}

TEST_F(ClinicalEndToEndTest, CodeineForAChildIsContraindicatedOnTheAsOfDate) {
  auto request = Request({}, {"codeine"});
  request.set_as_of("2026-12-04");
  request.mutable_patient()->set_birth_date("2016-03-01");  // 10 years old
  const auto child = MustCheck(request);
  const auto alerts = About(child, v1::ALERT_KIND_CONTRAINDICATION, "codeine");
  bool age = false;
  for (const auto& alert : alerts) {
    for (const auto& e : alert.evidence()) {
      age = age || (e.type() == v1::EVIDENCE_TYPE_PATIENT && alert.severity() == v1::SEVERITY_CONTRAINDICATED);
    }
  }
  EXPECT_TRUE(age) << child.DebugString();
  // An adult: no age contraindication.
  request.mutable_patient()->set_birth_date("1980-03-01");
  for (const auto& alert : About(MustCheck(request), v1::ALERT_KIND_CONTRAINDICATION, "codeine")) {
    for (const auto& e : alert.evidence()) {
      EXPECT_NE(e.type(), v1::EVIDENCE_TYPE_PATIENT) << alert.DebugString();
    }
  }
  // No birth date: said, not passed.
  request.mutable_patient()->clear_birth_date();
  const auto unknown = MustCheck(request);
  EXPECT_FALSE(About(unknown, v1::ALERT_KIND_INCOMPLETE_DATA, "codeine").empty()) << unknown.DebugString();
  EXPECT_FALSE(unknown.summary().complete());
}

TEST_F(ClinicalEndToEndTest, LatestEgfrDecidesAndAnOldOneIsStale) {
  // eGFR 25 in 2024, 72 last week: metformin is not contraindicated.
  auto request = Request({}, {"metformin"});
  request.set_as_of("2026-12-04");
  request.mutable_patient()->set_birth_date("1960-01-01");
  AddEgfr(&request, 25, "2024-05-01");
  AddEgfr(&request, 72, "2026-11-27T08:00:00Z");
  const auto recovered = MustCheck(request);
  EXPECT_TRUE(About(recovered, v1::ALERT_KIND_CONTRAINDICATION, "metformin").empty()) << recovered.DebugString();
  // Only the 2024 result: stale, reported, not deciding.
  request.mutable_patient()->mutable_labs()->RemoveLast();
  const auto stale = MustCheck(request);
  EXPECT_TRUE(About(stale, v1::ALERT_KIND_CONTRAINDICATION, "metformin").empty()) << stale.DebugString();
  bool reported = false;
  for (const auto& alert : About(stale, v1::ALERT_KIND_INCOMPLETE_DATA, "metformin")) {
    reported = reported || alert.summary().find("too old") != std::string::npos;
  }
  EXPECT_TRUE(reported) << stale.DebugString();
  // Last week's 25: contraindicated.
  request.mutable_patient()->mutable_labs(0)->set_effective_time("2026-11-27");
  EXPECT_FALSE(About(MustCheck(request), v1::ALERT_KIND_CONTRAINDICATION, "metformin").empty());
}

TEST_F(ClinicalEndToEndTest, UnreadableDatesAreRejectedNamingTheField) {
  auto request = Request({}, {"metformin"});
  request.set_as_of("yesterday");
  v1::CheckMedicationsUnaryResponse result;
  auto status = Check(request, &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("as_of"), std::string::npos) << status.error_message();
  request.clear_as_of();
  AddEgfr(&request, 50, "last week");
  status = Check(request, &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("effective_time"), std::string::npos) << status.error_message();
}

}  // namespace
}  // namespace vigil
