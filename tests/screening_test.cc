// Tests of the screening engine's mechanics on a synthetic knowledge base:
// every rule kind, both directions, negatives, and what could not be screened.
#include "server/engine/screening.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "gtest/gtest.h"
#include "server/common/text.h"
#include "tests/test_kb.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::LoadFromTexts;
using ::vigil::testing::OfKind;
using ::vigil::testing::RequestBuilder;
using ::vigil::testing::WithRule;

class ScreeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto kb = LoadFromTexts({{"synthetic.textproto", testing::kSyntheticKb}});
    ASSERT_TRUE(kb.ok()) << kb.status();
    kb_ = *kb;
  }
  std::shared_ptr<const KnowledgeBase> kb_;
};

TEST_F(ScreeningTest, ConditionCodeMatchesByIcd10Prefix) {
  const auto result = RequestBuilder().Icd10("N18.4").Propose("drug-a").Screen(*kb_);
  const auto alerts = WithRule(result, "drug-a-renal");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].kind(), v1::ALERT_KIND_CONTRAINDICATION);
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_CONTRAINDICATED);
  ASSERT_GE(alerts[0].evidence_size(), 1);
  EXPECT_EQ(alerts[0].evidence(0).type(), v1::EVIDENCE_TYPE_CONDITION);
  EXPECT_EQ(alerts[0].evidence(0).code(), "N18.4");
  ASSERT_EQ(alerts[0].sources_size(), 1);
  EXPECT_EQ(alerts[0].sources(0).title(), "Synthetic test source");
}

TEST_F(ScreeningTest, SnomedConditionMatches) {
  const auto result = RequestBuilder().Snomed("431857002").Propose("drug-a").Screen(*kb_);
  EXPECT_EQ(WithRule(result, "drug-a-renal").size(), 1u) << testing::Describe(result);
}

TEST_F(ScreeningTest, OtherConditionsDoNotMatch) {
  const auto result = RequestBuilder().Icd10("N18.30").Icd10("K76.0").Propose("drug-a").Screen(*kb_);
  EXPECT_TRUE(WithRule(result, "drug-a-renal").empty()) << testing::Describe(result);
  EXPECT_TRUE(result.summary.complete());
}

TEST_F(ScreeningTest, LabThresholdIsStrict) {
  EXPECT_EQ(WithRule(RequestBuilder().Egfr(29.9).Propose("drug-a").Screen(*kb_), "drug-a-renal").size(), 1u);
  EXPECT_TRUE(WithRule(RequestBuilder().Egfr(30).Propose("drug-a").Screen(*kb_), "drug-a-renal").empty());
  EXPECT_TRUE(WithRule(RequestBuilder().Egfr(60).Propose("drug-a").Screen(*kb_), "drug-a-renal").empty());
}

TEST_F(ScreeningTest, LabUnitsAreConverted) {
  // 0.4 mL/s/1.73m2 is 24 mL/min/1.73m2.
  const auto result = RequestBuilder().Lab("62238-1", 0.4, "mL/s/1.73m2").Propose("drug-a").Screen(*kb_);
  EXPECT_EQ(WithRule(result, "drug-a-renal").size(), 1u) << testing::Describe(result);
}

TEST_F(ScreeningTest, LabInUnknownUnitIsReportedNotIgnored) {
  const auto result = RequestBuilder().Lab("62238-1", 24, "furlongs").Propose("drug-a").Screen(*kb_);
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_CONTRAINDICATION).empty()) << testing::Describe(result);
  const auto incomplete = OfKind(result, v1::ALERT_KIND_INCOMPLETE_DATA);
  ASSERT_EQ(incomplete.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(incomplete[0].rule_id(), "drug-a-renal");
  EXPECT_EQ(incomplete[0].severity(), v1::SEVERITY_MAJOR);
  EXPECT_FALSE(result.summary.complete());
}

TEST_F(ScreeningTest, LabInNonComparableUnitIsReported) {
  // A clearance unit for an eGFR code cannot be compared with a BSA-normalised threshold.
  const auto result = RequestBuilder().Lab("62238-1", 24, "mL/min").Propose("drug-a").Screen(*kb_);
  EXPECT_EQ(OfKind(result, v1::ALERT_KIND_INCOMPLETE_DATA).size(), 1u) << testing::Describe(result);
}

TEST_F(ScreeningTest, ConditionInUnsupportedSystemIsReported) {
  const auto result = RequestBuilder().Condition("http://hl7.org/fhir/sid/icd-10", "N18.4").Propose("drug-a").Screen(*kb_);
  const auto incomplete = OfKind(result, v1::ALERT_KIND_INCOMPLETE_DATA);
  ASSERT_EQ(incomplete.size(), 1u) << testing::Describe(result);
  EXPECT_FALSE(result.summary.complete());
}

TEST_F(ScreeningTest, InteractionFoundInBothDirections) {
  // Proposed A with current C, and proposed C with current A.
  for (const auto& [proposed, current] : {std::pair<std::string, std::string>{"drug-a", "drug-c"}, {"drug-c", "drug-a"}}) {
    const auto result = RequestBuilder().Current(current).Propose(proposed).Screen(*kb_);
    const auto alerts = OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION);
    ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
    // Both a drug rule (major) and a class rule (moderate) match: one alert,
    // the most severe rule first, the other mentioned.
    EXPECT_EQ(alerts[0].rule_id(), "ddi-a-c");
    EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_MAJOR);
    // The other rule is mentioned by what it says, not by its id.
    EXPECT_NE(alerts[0].detail().find("Also: A with class Y."), std::string::npos) << alerts[0].detail();
    EXPECT_EQ(alerts[0].detail().find("ddi-a-y"), std::string::npos) << alerts[0].detail();
    // The summary names the patient's drugs.
    EXPECT_EQ(alerts[0].summary().rfind(proposed == "drug-a" ? "Drug A with Drug C: " : "Drug C with Drug A: ", 0), 0u)
        << alerts[0].summary();
    EXPECT_EQ(std::set<std::string>(alerts[0].drug_ids().begin(), alerts[0].drug_ids().end()),
              (std::set<std::string>{"drug-a", "drug-c"}));
  }
}

TEST_F(ScreeningTest, ClassRulesReachSubclassMembers) {
  // drug-a is in class-x through class-x-sub.
  const auto result = RequestBuilder().Current("drug-d").Propose("drug-a").Screen(*kb_);
  const auto alerts = OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].rule_id(), "ddi-a-y");  // Moderate beats the minor class-x rule.
}

TEST_F(ScreeningTest, ProposedDrugsAreScreenedAgainstEachOther) {
  const auto result = RequestBuilder().Propose("drug-a").Propose("drug-c").Screen(*kb_);
  EXPECT_EQ(WithRule(result, "ddi-a-c").size(), 1u) << testing::Describe(result);
}

TEST_F(ScreeningTest, NoInteractionBetweenUnrelatedDrugs) {
  const auto result = RequestBuilder().Current("drug-f").Propose("drug-a").Screen(*kb_);
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION).empty()) << testing::Describe(result);
}

TEST_F(ScreeningTest, CurrentOnlyPairsAreNotAlertedWhenDrugsAreProposed) {
  // A and C are both current: the proposed F is screened, the old pair is not re-raised.
  const auto result = RequestBuilder().Current("drug-a").Current("drug-c").Propose("drug-f").Screen(*kb_);
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION).empty()) << testing::Describe(result);
}

TEST_F(ScreeningTest, WithNoProposedDrugsTheCurrentListIsReviewed) {
  const auto result = RequestBuilder().Current("drug-a").Current("drug-c").Screen(*kb_);
  const auto alerts = WithRule(result, "ddi-a-c");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_FALSE(alerts[0].involves_proposed());
}

TEST_F(ScreeningTest, AllergyToTheDrugItself) {
  const auto result = RequestBuilder().Allergy("Alpha").Propose("drug-a").Screen(*kb_);
  const auto alerts = OfKind(result, v1::ALERT_KIND_ALLERGY);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].rule_id(), "drug-a-hyper");
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_CONTRAINDICATED);
  EXPECT_EQ(alerts[0].evidence(0).type(), v1::EVIDENCE_TYPE_ALLERGY);
}

TEST_F(ScreeningTest, AllergyToAClassCoversItsSubclasses) {
  const auto result = RequestBuilder().Allergy("x agents").Propose("drug-a").Screen(*kb_);
  EXPECT_EQ(OfKind(result, v1::ALERT_KIND_ALLERGY).size(), 1u) << testing::Describe(result);
}

TEST_F(ScreeningTest, DeclaredCrossSensitivity) {
  const auto result = RequestBuilder().Allergy("drug-c").Propose("drug-a").Screen(*kb_);
  const auto alerts = OfKind(result, v1::ALERT_KIND_ALLERGY);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].rule_id(), "cross-a-c");
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_MAJOR);
}

TEST_F(ScreeningTest, AllergyToAnotherDrugDoesNotAlert) {
  const auto result = RequestBuilder().Allergy("drug-e").Propose("drug-a").Screen(*kb_);
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_ALLERGY).empty()) << testing::Describe(result);
}

TEST_F(ScreeningTest, UnknownAllergySubstanceIsReported) {
  const auto result = RequestBuilder().Allergy("unobtainium").Propose("drug-a").Screen(*kb_);
  const auto alerts = OfKind(result, v1::ALERT_KIND_INCOMPLETE_DATA);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].unresolved_references(0), "unobtainium");
  EXPECT_FALSE(result.summary.complete());
}

TEST_F(ScreeningTest, SameDrugTwiceIsDuplicateTherapy) {
  const auto result = RequestBuilder().Current("Abrand").Propose("drug-a").Screen(*kb_);
  const auto alerts = OfKind(result, v1::ALERT_KIND_DUPLICATE_THERAPY);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_NE(alerts[0].summary().find("already"), std::string::npos);
}

TEST_F(ScreeningTest, TwoDrugsOfADuplicateSensitiveClass) {
  const auto result = RequestBuilder().Current("drug-b").Propose("drug-a").Screen(*kb_);
  const auto alerts = WithRule(result, "class-x");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].kind(), v1::ALERT_KIND_DUPLICATE_THERAPY);
}

TEST_F(ScreeningTest, ClassWithoutDuplicateFlagIsNotDuplicateTherapy) {
  const auto result = RequestBuilder().Current("drug-c").Propose("drug-d").Screen(*kb_);
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_DUPLICATE_THERAPY).empty()) << testing::Describe(result);
}

TEST_F(ScreeningTest, AdditiveEffectNeedsThreeDrugs) {
  // drug-a and drug-b have "sleepy" from class-x, drug-d its own.
  EXPECT_TRUE(WithRule(RequestBuilder().Current("drug-b").Propose("drug-a").Screen(*kb_), "additive-sleepy").empty());
  const auto result = RequestBuilder().Current("drug-b").Current("drug-d").Propose("drug-a").Screen(*kb_);
  const auto alerts = WithRule(result, "additive-sleepy");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].drug_ids_size(), 3);
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_MAJOR);
}

TEST_F(ScreeningTest, UnresolvedProposedDrugIsNeverSilent) {
  const auto result = RequestBuilder().Propose("drug-zz").Screen(*kb_);
  const auto alerts = OfKind(result, v1::ALERT_KIND_UNSCREENED_DRUG);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_MAJOR);
  EXPECT_NE(alerts[0].summary().find("drug-zz"), std::string::npos);
  EXPECT_EQ(alerts[0].unresolved_references(0), "drug-zz");
  EXPECT_FALSE(result.summary.complete());
  ASSERT_EQ(result.summary.unresolved_references_size(), 1);
}

TEST_F(ScreeningTest, UnresolvedCurrentDrugIsReported) {
  const auto result = RequestBuilder().Current("mystery pill").Propose("drug-a").Screen(*kb_);
  const auto alerts = OfKind(result, v1::ALERT_KIND_UNSCREENED_DRUG);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].evidence(0).type(), v1::EVIDENCE_TYPE_CURRENT_MEDICATION);
}

TEST_F(ScreeningTest, DrugWithoutInteractionDataIsReportedAsNotScreenedForInteractions) {
  // drug-e is known but no rule names it and it is not marked reviewed.
  const auto result = RequestBuilder().Propose("drug-e").Screen(*kb_);
  const auto alerts = OfKind(result, v1::ALERT_KIND_UNSCREENED_DRUG);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].drug_ids(0), "drug-e");
  EXPECT_FALSE(result.summary.complete());
  // drug-f is reviewed with none known: a clean result is complete.
  const auto clean = RequestBuilder().Propose("drug-f").Screen(*kb_);
  EXPECT_TRUE(clean.alerts.empty()) << testing::Describe(clean);
  EXPECT_TRUE(clean.summary.complete());
}

TEST_F(ScreeningTest, CurrentDrugWithoutInteractionDataMakesTheCheckIncomplete) {
  // drug-e is current, drug-f proposed (reviewed, none known): the pair was
  // never screened, so the answer must not be a clean "complete".
  const auto result = RequestBuilder().Current("drug-e").Propose("drug-f").Screen(*kb_);
  const auto alerts = OfKind(result, v1::ALERT_KIND_UNSCREENED_DRUG);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].drug_ids(0), "drug-e");
  EXPECT_EQ(alerts[0].evidence(0).type(), v1::EVIDENCE_TYPE_CURRENT_MEDICATION);
  EXPECT_NE(alerts[0].summary().find("Current medication Drug E"), std::string::npos) << alerts[0].summary();
  EXPECT_FALSE(result.summary.complete());
  // A current drug with data on file leaves the check complete.
  const auto clean = RequestBuilder().Current("drug-f").Propose("drug-f").Screen(*kb_);
  EXPECT_TRUE(OfKind(clean, v1::ALERT_KIND_UNSCREENED_DRUG).empty()) << testing::Describe(clean);
}

// The ids of the drugs a check screened, sorted.
std::vector<std::string> ScreenedIds(const ScreeningResult& result) {
  std::vector<std::string> ids(result.summary.screened_drug_ids().begin(), result.summary.screened_drug_ids().end());
  std::sort(ids.begin(), ids.end());
  return ids;
}

TEST_F(ScreeningTest, ProductResolvesToEveryIngredient) {
  const auto result = RequestBuilder().Propose("ACombo").Screen(*kb_);
  EXPECT_EQ(ScreenedIds(result), (std::vector<std::string>{"drug-a", "drug-c"})) << testing::Describe(result);
  // Its ingredients are given together by design: no interaction between
  // them, no duplicate therapy.
  EXPECT_TRUE(WithRule(result, "ddi-a-c").empty()) << testing::Describe(result);
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_DUPLICATE_THERAPY).empty()) << testing::Describe(result);
  EXPECT_TRUE(result.summary.complete());
  // Each ingredient is screened: drug-a's contraindication fires.
  EXPECT_EQ(WithRule(RequestBuilder().Egfr(20).Propose("ACombo").Screen(*kb_), "drug-a-renal").size(), 1u);
}

TEST_F(ScreeningTest, ProductIngredientDuplicatesTheSameDrugOnTheList) {
  const auto result = RequestBuilder().Current("drug-c").Propose("ACombo").Screen(*kb_);
  const auto dup = OfKind(result, v1::ALERT_KIND_DUPLICATE_THERAPY);
  ASSERT_EQ(dup.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(dup[0].drug_ids(0), "drug-c");
  // drug-a meets drug-c only as the product intends: no interaction alert.
  EXPECT_TRUE(WithRule(result, "ddi-a-c").empty()) << testing::Describe(result);
}

TEST_F(ScreeningTest, OrderTextResolvesByIngredientWithoutStrengthFormOrSalt) {
  for (const char* text : {"Drug A sodium 5 MG Oral Tablet", "drug a 500 mg tablet", "Alpha 10mg capsule",
                           "drug a tablet"}) {
    const auto result = RequestBuilder().Propose(text).Screen(*kb_);
    EXPECT_EQ(ScreenedIds(result), (std::vector<std::string>{"drug-a"})) << text << ": " << testing::Describe(result);
    EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_UNSCREENED_DRUG).empty()) << text;
  }
  const auto combo = RequestBuilder().Propose("Drug A 10 MG / Drug C 12.5 MG Oral Tablet [ACombo]").Screen(*kb_);
  EXPECT_EQ(ScreenedIds(combo), (std::vector<std::string>{"drug-a", "drug-c"})) << testing::Describe(combo);
  EXPECT_TRUE(combo.summary.complete()) << testing::Describe(combo);
}

TEST_F(ScreeningTest, OrderTextWithAnUnknownIngredientScreensTheRestAndNamesIt) {
  const auto result = RequestBuilder().Propose("Drug A 10 MG / Mysterium 5 MG Oral Tablet").Screen(*kb_);
  EXPECT_EQ(ScreenedIds(result), (std::vector<std::string>{"drug-a"})) << testing::Describe(result);
  const auto unscreened = OfKind(result, v1::ALERT_KIND_UNSCREENED_DRUG);
  ASSERT_EQ(unscreened.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(unscreened[0].unresolved_references(0), "mysterium");
  EXPECT_FALSE(result.summary.complete());
  // Text of which nothing resolves stays one unscreened alert for the text.
  const auto none = RequestBuilder().Propose("Nothingol 5 MG Oral Tablet").Screen(*kb_);
  const auto alerts = OfKind(none, v1::ALERT_KIND_UNSCREENED_DRUG);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(none);
  EXPECT_EQ(alerts[0].unresolved_references(0), "Nothingol 5 MG Oral Tablet");
}

TEST_F(ScreeningTest, AllergyRecordedAsAProductCoversEachIngredient) {
  // An allergy to "ACombo" (drug-a + drug-c) is an allergy to drug-a.
  const auto result = RequestBuilder().Allergy("ACombo").Propose("drug-a").Screen(*kb_);
  const auto alerts = OfKind(result, v1::ALERT_KIND_ALLERGY);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].drug_ids(0), "drug-a");
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_INCOMPLETE_DATA).empty()) << testing::Describe(result);
}

TEST_F(ScreeningTest, LocalRouteIsNotSystemicTherapyOfItsClass) {
  // drug-a (class-x-sub) and drug-b (class-x): duplicate class-x therapy by
  // mouth, not when drug-b is a gel on the skin.
  EXPECT_EQ(OfKind(RequestBuilder().Current("drug-b").Propose("drug-a").Screen(*kb_),
                   v1::ALERT_KIND_DUPLICATE_THERAPY).size(), 1u);
  for (const char* topical : {"Drug B 1% Topical Gel", "Drug B gel"}) {
    const auto result = RequestBuilder().Current(topical).Propose("drug-a").Screen(*kb_);
    EXPECT_EQ(ScreenedIds(result), (std::vector<std::string>{"drug-a", "drug-b"})) << topical;
    EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_DUPLICATE_THERAPY).empty()) << topical << ": " << testing::Describe(result);
  }
  // A contraindication still fires for a local route, and says the route
  // may not carry it.
  const auto gel = RequestBuilder().BirthDate("2020-01-01").AsOf("2026-06-01").Propose("Drug B 1% Topical Gel").Screen(*kb_);
  const auto child = WithRule(gel, "drug-b-child");
  ASSERT_EQ(child.size(), 1u) << testing::Describe(gel);
  EXPECT_NE(child[0].detail().find("skin, eye or ear"), std::string::npos) << child[0].detail();
}

TEST_F(ScreeningTest, AgeRuleUsesTheBirthDateOnTheAsOfDate) {
  // 11 years old on the day before the 12th birthday, 12 on it.
  const auto child = RequestBuilder().BirthDate("2014-06-15").AsOf("2026-06-14").Propose("drug-b").Screen(*kb_);
  const auto alerts = WithRule(child, "drug-b-child");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(child);
  EXPECT_EQ(alerts[0].kind(), v1::ALERT_KIND_CONTRAINDICATION);
  bool age_evidence = false;
  for (const auto& e : alerts[0].evidence()) {
    age_evidence = age_evidence || (e.type() == v1::EVIDENCE_TYPE_PATIENT && e.description().find("Age 11") == 0);
  }
  EXPECT_TRUE(age_evidence) << alerts[0].DebugString();
  const auto twelve = RequestBuilder().BirthDate("2014-06-15").AsOf("2026-06-15").Propose("drug-b").Screen(*kb_);
  EXPECT_TRUE(WithRule(twelve, "drug-b-child").empty()) << testing::Describe(twelve);
  const auto older = RequestBuilder().BirthDate("1950-01-01").AsOf("2026-06-15").Propose("drug-b").Screen(*kb_);
  EXPECT_EQ(WithRule(older, "drug-b-older").size(), 1u) << testing::Describe(older);
  EXPECT_TRUE(WithRule(older, "drug-b-child").empty());
}

TEST_F(ScreeningTest, AgeRuleWithAConditionNeedsBoth) {
  const auto flu_child = RequestBuilder().BirthDate("2012-01-01").AsOf("2026-06-15").Icd10("J10.1").Propose("drug-b")
                             .Screen(*kb_);
  EXPECT_EQ(WithRule(flu_child, "drug-b-viral").size(), 1u) << testing::Describe(flu_child);
  const auto flu_adult = RequestBuilder().BirthDate("1980-01-01").AsOf("2026-06-15").Icd10("J10.1").Propose("drug-b")
                             .Screen(*kb_);
  EXPECT_TRUE(WithRule(flu_adult, "drug-b-viral").empty()) << testing::Describe(flu_adult);
  const auto no_flu = RequestBuilder().BirthDate("2012-01-01").AsOf("2026-06-15").Propose("drug-b").Screen(*kb_);
  EXPECT_TRUE(WithRule(no_flu, "drug-b-viral").empty()) << testing::Describe(no_flu);
}

TEST_F(ScreeningTest, AgeRuleWithoutABirthDateIsIncompleteNotSilent) {
  const auto result = RequestBuilder().Propose("drug-b").Screen(*kb_);
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_CONTRAINDICATION).empty()) << testing::Describe(result);
  std::set<std::string> rules;
  for (const auto& alert : OfKind(result, v1::ALERT_KIND_INCOMPLETE_DATA)) {
    rules.insert(alert.rule_id());
  }
  // The age-only rules need the age; the viral rule only with its condition.
  EXPECT_EQ(rules, (std::set<std::string>{"drug-b-child", "drug-b-older"})) << testing::Describe(result);
  EXPECT_FALSE(result.summary.complete());
  const auto flu = RequestBuilder().Icd10("J10.1").Propose("drug-b").Screen(*kb_);
  EXPECT_EQ(WithRule(flu, "drug-b-viral").size(), 1u) << testing::Describe(flu);
  EXPECT_EQ(WithRule(flu, "drug-b-viral")[0].kind(), v1::ALERT_KIND_INCOMPLETE_DATA);
}

TEST_F(ScreeningTest, LatestLabResultDecides) {
  // An old low eGFR and a recent normal one: the recent one decides.
  const auto recovered = RequestBuilder()
                             .AsOf("2026-12-04")
                             .DatedLab("62238-1", 25, "mL/min/{1.73_m2}", "2024-05-01")
                             .DatedLab("62238-1", 72, "mL/min/{1.73_m2}", "2026-11-27T09:30:00Z")
                             .Propose("drug-a")
                             .Screen(*kb_);
  EXPECT_TRUE(WithRule(recovered, "drug-a-renal").empty()) << testing::Describe(recovered);
  EXPECT_TRUE(recovered.summary.complete()) << testing::Describe(recovered);
  // The other way round: the recent low one decides.
  const auto worse = RequestBuilder()
                         .AsOf("2026-12-04")
                         .DatedLab("62238-1", 72, "mL/min/{1.73_m2}", "2024-05-01")
                         .DatedLab("62238-1", 25, "mL/min/{1.73_m2}", "2026-11-27")
                         .Propose("drug-a")
                         .Screen(*kb_);
  const auto alerts = WithRule(worse, "drug-a-renal");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(worse);
  EXPECT_EQ(alerts[0].kind(), v1::ALERT_KIND_CONTRAINDICATION);
}

TEST_F(ScreeningTest, StaleLabResultIsReportedInsteadOfDeciding) {
  const auto result = RequestBuilder()
                          .AsOf("2026-12-04")
                          .DatedLab("62238-1", 25, "mL/min/{1.73_m2}", "2024-05-01")
                          .Propose("drug-a")
                          .Screen(*kb_);
  const auto alerts = WithRule(result, "drug-a-renal");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].kind(), v1::ALERT_KIND_INCOMPLETE_DATA);
  EXPECT_NE(alerts[0].summary().find("too old"), std::string::npos) << alerts[0].summary();
  EXPECT_FALSE(result.summary.complete());
  // Within the limit it decides.
  const auto recent = RequestBuilder()
                          .AsOf("2026-12-04")
                          .DatedLab("62238-1", 25, "mL/min/{1.73_m2}", "2026-01-01")
                          .Propose("drug-a")
                          .Screen(*kb_);
  ASSERT_EQ(WithRule(recent, "drug-a-renal").size(), 1u);
  EXPECT_EQ(WithRule(recent, "drug-a-renal")[0].kind(), v1::ALERT_KIND_CONTRAINDICATION);
}

TEST_F(ScreeningTest, CrossSensitivitySeverityFollowsTheRecordedReaction) {
  auto severity = [this](const std::string& reaction, v1::AllergyCriticality criticality) {
    const auto result = RequestBuilder().Allergy("drug-c", reaction, criticality).Propose("drug-a").Screen(*kb_);
    const auto alerts = WithRule(result, "cross-a-c");
    return alerts.size() == 1 ? alerts[0].severity() : v1::SEVERITY_UNSPECIFIED;
  };
  // The group is major; a low-criticality rash is not; anaphylaxis is.
  EXPECT_EQ(severity("", v1::ALLERGY_CRITICALITY_UNSPECIFIED), v1::SEVERITY_MAJOR);
  EXPECT_EQ(severity("rash in childhood", v1::ALLERGY_CRITICALITY_LOW), v1::SEVERITY_MODERATE);
  EXPECT_EQ(severity("Anaphylaxis", v1::ALLERGY_CRITICALITY_UNSPECIFIED), v1::SEVERITY_MAJOR);
  EXPECT_EQ(severity("hives", v1::ALLERGY_CRITICALITY_HIGH), v1::SEVERITY_MAJOR);
  // A moderate group is raised to major by a severe reaction.
  const auto result = RequestBuilder().Allergy("drug-d", "anaphylaxis", v1::ALLERGY_CRITICALITY_HIGH)
                          .Propose("drug-e").Screen(*kb_);
  ASSERT_EQ(WithRule(result, "cross-d-e").size(), 1u) << testing::Describe(result);
  EXPECT_EQ(WithRule(result, "cross-d-e")[0].severity(), v1::SEVERITY_MAJOR);
}

TEST_F(ScreeningTest, CrossSensitivityNeedingATrueAllergyFollowsTheReaction) {
  auto alerts = [this](const std::string& reaction) {
    return WithRule(RequestBuilder().Allergy("drug-d", reaction, v1::ALLERGY_CRITICALITY_UNSPECIFIED)
                        .Propose("drug-e").Screen(*kb_), "cross-d-e");
  };
  // Nausea is an intolerance: no cross-sensitivity.
  EXPECT_TRUE(alerts("nausea and vomiting").empty());
  // Urticaria is named by the group: its severity.
  ASSERT_EQ(alerts("Urticaria").size(), 1u);
  EXPECT_EQ(alerts("Urticaria")[0].severity(), v1::SEVERITY_MODERATE);
  // Not recorded: a minor alert that says it is uncertain.
  const auto unknown = alerts("");
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(unknown[0].severity(), v1::SEVERITY_MINOR);
  EXPECT_NE(unknown[0].detail().find("uncertain"), std::string::npos) << unknown[0].detail();
}

TEST_F(ScreeningTest, BurdenScoreAddsUpTheDrugsScores) {
  // drug-g scores 3, drug-h and drug-i 1 each (no score of their own).
  auto loaded = LoadFromTexts({{"synthetic.textproto", testing::kSyntheticKb},
                               {"burden.textproto", testing::kSyntheticBurdenKb}});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const KnowledgeBase& kb = **loaded;
  const auto heavy = RequestBuilder().Current("drug-h").Propose("drug-g").Screen(kb);
  const auto alerts = WithRule(heavy, "burden-drying");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(heavy);
  EXPECT_NE(alerts[0].detail().find("score of 4"), std::string::npos) << alerts[0].detail();
  EXPECT_NE(alerts[0].detail().find("Drug G (3)"), std::string::npos) << alerts[0].detail();
  EXPECT_NE(alerts[0].summary().find("Drug G (3), Drug H (1)"), std::string::npos) << alerts[0].summary();
  // Two drugs of score 1: under the threshold.
  EXPECT_TRUE(WithRule(RequestBuilder().Current("drug-h").Propose("drug-i").Screen(kb), "burden-drying").empty());
  // One drug alone never adds up, whatever its score.
  EXPECT_TRUE(WithRule(RequestBuilder().Propose("drug-g").Screen(kb), "burden-drying").empty());
}

TEST_F(ScreeningTest, EgfrEstimatedFromCreatinineWhereTheRuleAllows) {
  auto patient = [](v1::Sex sex, const std::string& born, double scr, const std::string& unit) {
    RequestBuilder builder;
    builder.AsOf("2026-12-04").BirthDate(born).Lab("2160-0", scr, unit).Propose("drug-a");
    auto request = builder.request();
    request.mutable_patient()->set_sex(sex);
    if (unit != "mg/dL") {
      request.mutable_patient()->mutable_labs(0)->mutable_code()->set_code("14682-9");
    }
    ScreenOptions options;
    options.as_of = *ParseIsoDate("2026-12-04");
    return Screen(*testing::LoadFromTexts({{"s.textproto", testing::kSyntheticKb}}).value(), request.patient(),
                  request.proposed_medications(), options);
  };
  // A woman of 70 with creatinine 2.0 mg/dL: CKD-EPI 2021 gives 26, under 30.
  const auto low = patient(v1::SEX_FEMALE, "1956-01-01", 2.0, "mg/dL");
  const auto alerts = WithRule(low, "drug-a-renal");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(low);
  EXPECT_EQ(alerts[0].kind(), v1::ALERT_KIND_CONTRAINDICATION);
  EXPECT_NE(alerts[0].evidence(0).description().find("estimated eGFR of 26"), std::string::npos)
      << alerts[0].evidence(0).description();
  EXPECT_NE(alerts[0].evidence(0).description().find("CKD-EPI 2021"), std::string::npos);
  // The same creatinine in umol/L (177).
  EXPECT_EQ(WithRule(patient(v1::SEX_FEMALE, "1956-01-01", 177, "umol/L"), "drug-a-renal")[0].kind(),
            v1::ALERT_KIND_CONTRAINDICATION);
  // A man of 40 with 1.0 mg/dL: about 98, no alert.
  EXPECT_TRUE(WithRule(patient(v1::SEX_MALE, "1986-01-01", 1.0, "mg/dL"), "drug-a-renal").empty());
  // Without sex the estimate cannot be made: reported, not passed.
  const auto unknown = patient(v1::SEX_UNKNOWN, "1956-01-01", 2.0, "mg/dL");
  ASSERT_EQ(WithRule(unknown, "drug-a-renal").size(), 1u) << testing::Describe(unknown);
  EXPECT_EQ(WithRule(unknown, "drug-a-renal")[0].kind(), v1::ALERT_KIND_INCOMPLETE_DATA);
}

TEST_F(ScreeningTest, ResolvesByIdNameSynonymBrandAndCode) {
  for (const char* ref : {"drug-a", "DRUG A", "alpha", "ABrand", "http://www.whocc.no/atc|Z99ZZ01"}) {
    const auto result = RequestBuilder().Propose(ref).Screen(*kb_);
    ASSERT_EQ(result.summary.screened_drug_ids_size(), 1) << ref;
    EXPECT_EQ(result.summary.screened_drug_ids(0), "drug-a") << ref;
  }
}

TEST_F(ScreeningTest, AlertsAreOrderedMostSevereFirst) {
  const auto result =
      RequestBuilder().Icd10("N18.4").Current("drug-b").Current("drug-d").Current("drug-c").Propose("drug-a").Screen(*kb_);
  ASSERT_GE(result.alerts.size(), 3u);
  for (size_t i = 1; i < result.alerts.size(); ++i) {
    EXPECT_GE(result.alerts[i - 1].severity(), result.alerts[i].severity()) << testing::Describe(result);
  }
  EXPECT_EQ(result.summary.alert_count(), static_cast<int>(result.alerts.size()));
}

TEST_F(ScreeningTest, AlertIdsAreStablePerPatient) {
  const auto first = RequestBuilder("p1").Icd10("N18.4").Propose("drug-a").Screen(*kb_);
  const auto again = RequestBuilder("p1").Icd10("N18.4").Egfr(10).Propose("drug-a").Screen(*kb_);
  const auto other = RequestBuilder("p2").Icd10("N18.4").Propose("drug-a").Screen(*kb_);
  const auto a1 = WithRule(first, "drug-a-renal");
  const auto a2 = WithRule(again, "drug-a-renal");
  const auto a3 = WithRule(other, "drug-a-renal");
  ASSERT_EQ(a1.size(), 1u);
  ASSERT_EQ(a2.size(), 1u);
  ASSERT_EQ(a3.size(), 1u);
  EXPECT_EQ(a1[0].id(), a2[0].id());
  EXPECT_NE(a1[0].id(), a3[0].id());
  EXPECT_EQ(MakeAlertId("p1", "x"), MakeAlertId("p1", "x"));
}

// Alert ids are stored with patients and acknowledgements: the function that
// makes them must never change. The expected value was computed independently
// (FNV-1a of "2:p1|x" with the two seeds, in hex).
TEST(AlertIdTest, IdsNeverChange) {
  EXPECT_EQ(MakeAlertId("p1", "x"), "al-68a9d7f0c4d969764d3f8e5d3e6b29c7");
  // The engine hashes an id piece by piece; whatever the patient and key,
  // the id is the one the definition gives: "al-", then StableHash64 of
  // "<size of the patient id>:<patient id>|<key>" with each seed, in hex.
  for (const auto& [patient, key] : std::vector<std::pair<std::string, std::string>>{
           {"", ""}, {"p1", "x"}, {"patient-0123456789", "ALERT_KIND_DRUG_INTERACTION|a+b"},
           {std::string(300, '\xff'), std::string(40, '|')}}) {
    const std::string input = absl::StrCat(patient.size(), ":", patient, "|", key);
    const std::string expected = absl::StrCat("al-", absl::Hex(StableHash64(input), absl::kZeroPad16),
                                              absl::Hex(StableHash64(input, 0x84222325cbf29ce4ULL), absl::kZeroPad16));
    EXPECT_EQ(MakeAlertId(patient, key), expected) << patient.size() << " " << key;
  }
}

// A check written into a result on a protobuf arena gives exactly what the
// heap form gives, repeatedly into the same arena.
TEST_F(ScreeningTest, ScreenIntoAnArenaMatchesTheHeapResult) {
  v1::CheckMedicationsRequest request;
  auto* patient = request.mutable_patient();
  patient->set_id("p1");
  patient->add_medications()->set_drug("drug-b");
  patient->add_medications()->set_drug("drug-a");
  patient->add_medications()->set_drug("no-such-drug");
  request.add_proposed_medications()->set_drug("drug-a");
  request.add_proposed_medications()->set_drug("drug-a");
  const auto heap = Screen(*kb_, request.patient(), request.proposed_medications());
  ASSERT_GE(heap.alerts.size(), 2u);
  google::protobuf::Arena arena;
  for (int round = 0; round < 3; ++round) {
    auto* result = google::protobuf::Arena::CreateMessage<v1::CheckMedicationsUnaryResponse>(&arena);
    ScreenInto(*kb_, request.patient(), request.proposed_medications(), result);
    ASSERT_EQ(result->alerts_size(), static_cast<int>(heap.alerts.size()));
    for (size_t i = 0; i < heap.alerts.size(); ++i) {
      EXPECT_EQ(result->alerts(static_cast<int>(i)).SerializeAsString(), heap.alerts[i].SerializeAsString()) << i;
    }
    EXPECT_EQ(result->summary().SerializeAsString(), heap.summary.SerializeAsString());
  }
}

TEST_F(ScreeningTest, SummariesAreUnder140Characters) {
  const std::string long_name(2000, 'q');
  const auto result = RequestBuilder().Propose(long_name).Allergy(long_name).Current(long_name + "2").Screen(*kb_);
  ASSERT_FALSE(result.alerts.empty());
  for (const auto& a : result.alerts) {
    EXPECT_LT(a.summary().size(), 140u) << a.summary();
  }
}

TEST_F(ScreeningTest, SummaryReportsVersionAndScreenedDrugs) {
  const auto result = RequestBuilder().Current("drug-c").Propose("drug-a").Propose("drug-a").Screen(*kb_);
  EXPECT_EQ(result.summary.knowledge_base_version(), kb_->version());
  EXPECT_EQ(result.summary.screened_drug_ids_size(), 2);
}

}  // namespace
}  // namespace vigil
