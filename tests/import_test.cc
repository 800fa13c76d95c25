// Tests of bulk interaction imports (DDInter CSV): mapping, precedence,
// severities, and whole-file refusal of malformed input.
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "server/kb/loader.h"
#include "tests/test_kb.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::OfKind;
using ::vigil::testing::RequestBuilder;
using ::vigil::testing::TempDir;
using ::vigil::testing::WithRule;

constexpr char kHeader[] = "DDInterID_A,Drug_A,DDInterID_B,Drug_B,Level\n";

class ImportTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::shared_ptr<const KnowledgeBase>> Load(const std::string& csv) {
    dir_ = std::make_unique<TempDir>();
    const std::string kb = dir_->Write("synthetic.textproto", testing::kSyntheticKb);
    const std::string import = dir_->Write("ddinter_test.csv", csv);
    return LoadKnowledgeBase(KnowledgeBaseSpec{{kb}, {import}});
  }
  std::unique_ptr<TempDir> dir_;
};

TEST_F(ImportTest, NamesMapOntoCuratedDrugsAndTheRestAreCreated) {
  auto kb = Load(std::string(kHeader) + "DDI1,Drug A,DDI2,Newdrug,Major\n");
  ASSERT_TRUE(kb.ok()) << kb.status();
  ASSERT_EQ((*kb)->imports().size(), 1u);
  EXPECT_EQ((*kb)->imports()[0].mapped_drugs, 1u);
  EXPECT_EQ((*kb)->imports()[0].created_drugs, 1u);
  const auto created = (*kb)->FindDrug("newdrug");
  ASSERT_TRUE(created.has_value());
  EXPECT_TRUE((*kb)->IsImportOnly(*created));

  const auto result = RequestBuilder().Current("Newdrug").Propose("drug-a").Screen(**kb);
  const auto alerts = OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_MAJOR);
  EXPECT_EQ(alerts[0].rule_origin(), v1::RULE_ORIGIN_IMPORTED);
  EXPECT_EQ(alerts[0].sources(0).id(), "ddinter");
  EXPECT_LT(alerts[0].summary().size(), 140u);
}

TEST_F(ImportTest, ImportOnlyDrugIsScreenedForInteractionsOnlyAndSaysSo) {
  auto kb = Load(std::string(kHeader) + "DDI1,Drug A,DDI2,Newdrug,Minor\n");
  ASSERT_TRUE(kb.ok()) << kb.status();
  const auto result = RequestBuilder().Propose("Newdrug").Screen(**kb);
  const auto unscreened = OfKind(result, v1::ALERT_KIND_UNSCREENED_DRUG);
  ASSERT_EQ(unscreened.size(), 1u) << testing::Describe(result);
  EXPECT_NE(unscreened[0].summary().find("interactions only"), std::string::npos);
  EXPECT_FALSE(result.summary.complete());
}

TEST_F(ImportTest, CuratedRulesWinOverImportedOnes) {
  // The synthetic base has a curated major rule for A + C.
  auto kb = Load(std::string(kHeader) + "DDI1,Drug A,DDI3,Drug C,Minor\n");
  ASSERT_TRUE(kb.ok()) << kb.status();
  const auto result = RequestBuilder().Current("drug-c").Propose("drug-a").Screen(**kb);
  const auto alerts = OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].rule_id(), "ddi-a-c");
  EXPECT_EQ(alerts[0].rule_origin(), v1::RULE_ORIGIN_CURATED);
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_MAJOR);
}

TEST_F(ImportTest, UnknownLevelIsNotACleanBillOfHealth) {
  auto kb = Load(std::string(kHeader) + "DDI1,Drug E,DDI2,Drug F,Unknown\n");
  ASSERT_TRUE(kb.ok()) << kb.status();
  const auto result = RequestBuilder().Current("drug-f").Propose("drug-e").Screen(**kb);
  const auto alerts = OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_MODERATE);
  EXPECT_NE(alerts[0].summary().find("ungraded"), std::string::npos);
  // drug-e now has interaction data, so it is no longer "not screened for interactions".
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_UNSCREENED_DRUG).empty()) << testing::Describe(result);
}

TEST_F(ImportTest, LevelsMapToSeverities) {
  auto kb = Load(std::string(kHeader) +
                 "DDI1,Drug E,DDI2,P1,Major\nDDI1,Drug E,DDI3,P2,Moderate\nDDI1,Drug E,DDI4,P3,Minor\n");
  ASSERT_TRUE(kb.ok()) << kb.status();
  for (const auto& [other, severity] : {std::pair<std::string, v1::Severity>{"p1", v1::SEVERITY_MAJOR},
                                        {"p2", v1::SEVERITY_MODERATE},
                                        {"p3", v1::SEVERITY_MINOR}}) {
    const auto result = RequestBuilder().Current(other).Propose("drug-e").Screen(**kb);
    const auto alerts = OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION);
    ASSERT_EQ(alerts.size(), 1u) << other;
    EXPECT_EQ(alerts[0].severity(), severity) << other;
  }
}

TEST_F(ImportTest, SamePairTwiceKeepsTheMostSevere) {
  auto kb = Load(std::string(kHeader) + "DDI1,Drug E,DDI2,Drug F,Minor\nDDI2,Drug F,DDI1,Drug E,Major\n");
  ASSERT_TRUE(kb.ok()) << kb.status();
  EXPECT_EQ((*kb)->imported_pair_count(), 1u);
  const auto result = RequestBuilder().Current("drug-f").Propose("drug-e").Screen(**kb);
  EXPECT_EQ(OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION)[0].severity(), v1::SEVERITY_MAJOR);
}

TEST_F(ImportTest, QuotedNamesWithCommas) {
  auto kb = Load(std::string(kHeader) + "DDI1,Drug E,DDI9,\"Thyroid, porcine\",Moderate\r\n");
  ASSERT_TRUE(kb.ok()) << kb.status();
  EXPECT_TRUE((*kb)->FindDrug("thyroid, porcine").has_value());
}

TEST_F(ImportTest, MalformedRowsRefuseTheWholeFileWithFileAndLine) {
  auto kb = Load(std::string(kHeader) +
                 "DDI1,Drug E,DDI2,Drug F,Major\n"
                 "DDI1,Drug E,DDI2\n"
                 "DDI1,Drug E,DDI3,X,Severe\n"
                 "DDI1,,DDI3,X,Minor\n"
                 "DDI1,\"Drug E,DDI3,X,Minor\n");
  ASSERT_FALSE(kb.ok());
  const std::string message(kb.status().message());
  EXPECT_NE(message.find("ddinter_test.csv:3: expected 5 columns"), std::string::npos) << message;
  EXPECT_NE(message.find("ddinter_test.csv:4: unknown level 'Severe'"), std::string::npos) << message;
  EXPECT_NE(message.find("ddinter_test.csv:5: column 2 is empty"), std::string::npos) << message;
  EXPECT_NE(message.find("ddinter_test.csv:6: unterminated quoted field"), std::string::npos) << message;
}

TEST_F(ImportTest, WrongHeaderIsRefused) {
  auto kb = Load("A,B,C,D,E\nDDI1,Drug E,DDI2,Drug F,Major\n");
  ASSERT_FALSE(kb.ok());
  EXPECT_NE(kb.status().message().find("ddinter_test.csv:1: header"), std::string::npos) << kb.status();
}

TEST_F(ImportTest, ImportChangesTheVersion) {
  auto a = Load(std::string(kHeader) + "DDI1,Drug E,DDI2,Drug F,Major\n");
  auto b = Load(std::string(kHeader) + "DDI1,Drug E,DDI2,Drug F,Minor\n");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->version(), (*b)->version());
}

// The real DDInter tables from shared/data: every row loads.
TEST(DdinterTest, AllOfDdinterLoads) {
  const std::string dir = std::string(VIGIL_SHARED_DATA) + "/ddinter";
  if (!std::filesystem::exists(dir)) {
    GTEST_SKIP() << dir << " is not present";
  }
  auto kb = LoadKnowledgeBase(KnowledgeBaseSpec{{VIGIL_BUNDLED_KB}, {dir}});
  ASSERT_TRUE(kb.ok()) << kb.status();
  ASSERT_EQ((*kb)->imports().size(), 1u);
  const auto& info = (*kb)->imports()[0];
  EXPECT_EQ(info.rows, 222383u);
  EXPECT_EQ(info.files.size(), 8u);
  // 160,235 unique pairs, less those that merge when two DDInter drugs map
  // onto one curated drug (the calcium and magnesium salts onto calcium and
  // magnesium, the two human insulins onto one: about 700 pairs).
  EXPECT_GE(info.pairs, 159000u);
  EXPECT_LE(info.pairs, 160235u);
  // 1,939 DDInter drugs; two DDInter names can map onto one curated drug.
  EXPECT_LE(info.mapped_drugs + info.created_drugs, 1939u);
  EXPECT_GE(info.mapped_drugs + info.created_drugs, 1900u);
  std::cout << "DDInter: " << info.rows << " rows, " << info.pairs << " pairs, " << info.mapped_drugs
            << " drugs mapped onto curated ones, " << info.created_drugs << " created; load "
            << (*kb)->load_millis() << " ms\n";
}

}  // namespace
}  // namespace vigil
