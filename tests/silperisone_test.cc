// One test (at least) per fact of the silperisone monograph
// (shared/seeds/silperisone-wikimd.txt), against the bundled knowledge base.
#include <algorithm>
#include <string>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "server/kb/catalog.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::BundledKb;
using ::vigil::testing::OfKind;
using ::vigil::testing::RequestBuilder;
using ::vigil::testing::WithRule;

constexpr char kRenal[] = "silperisone-ci-severe-renal-impairment";
constexpr char kHepatic[] = "silperisone-ci-severe-hepatic-impairment";
constexpr char kCirrhosis[] = "silperisone-ci-cirrhosis";
constexpr char kHypersensitivity[] = "silperisone-hypersensitivity";

v1::Drug Monograph() {
  v1::GetDrugRequest request;
  request.set_name("silperisone");
  auto drug = GetDrug(*BundledKb(), request);
  EXPECT_TRUE(drug.ok()) << drug.status();
  return drug.ok() ? *drug : v1::Drug();
}

// --- Pharmacology: a centrally acting muscle relaxant acting on calcium channels.
TEST(SilperisoneMonographTest, IsACentrallyActingMuscleRelaxant) {
  const auto drug = Monograph();
  std::vector<std::string> classes;
  for (const auto& c : drug.classes()) {
    classes.push_back(c.id());
  }
  EXPECT_NE(std::find(classes.begin(), classes.end(), "centrally-acting-muscle-relaxants"), classes.end());
  EXPECT_NE(std::find(classes.begin(), classes.end(), "muscle-relaxants"), classes.end());
  EXPECT_NE(drug.mechanism().find("calcium channels"), std::string::npos);
  EXPECT_NE(drug.mechanism().find("skeletal muscle"), std::string::npos);
  EXPECT_NE(drug.mechanism().find("analgesic"), std::string::npos);
}

// --- Clinical use.
TEST(SilperisoneMonographTest, Indications) {
  const auto drug = Monograph();
  const std::string all = absl::StrJoin(drug.indications(), "|");
  for (const char* want : {"spinal cord injury", "multiple sclerosis", "cerebral palsy", "Neuropathic pain"}) {
    EXPECT_NE(all.find(want), std::string::npos) << want;
  }
}

// --- Side effects and their frequency.
TEST(SilperisoneMonographTest, SideEffectsWithFrequency) {
  const auto drug = Monograph();
  auto frequency_of = [&](const std::string& name) {
    for (const auto& se : drug.side_effects()) {
      if (se.name() == name) {
        return se.frequency();
      }
    }
    return v1::SIDE_EFFECT_FREQUENCY_UNSPECIFIED;
  };
  for (const char* common : {"drowsiness", "dizziness", "nausea"}) {
    EXPECT_EQ(frequency_of(common), v1::SIDE_EFFECT_FREQUENCY_COMMON) << common;
  }
  for (const char* less_common : {"headache", "tachycardia", "hypotension"}) {
    EXPECT_EQ(frequency_of(less_common), v1::SIDE_EFFECT_FREQUENCY_LESS_COMMON) << less_common;
  }
  EXPECT_EQ(drug.side_effects_size(), 6);
}

TEST(SilperisoneMonographTest, EveryFactCitesTheMonograph) {
  const auto drug = Monograph();
  ASSERT_FALSE(drug.sources().empty());
  EXPECT_EQ(drug.sources(0).id(), "silperisone-wikimd");
  for (const auto& ci : drug.contraindications()) {
    ASSERT_FALSE(ci.sources().empty()) << ci.id();
    EXPECT_EQ(ci.sources(0).id(), "silperisone-wikimd") << ci.id();
  }
}

// --- Contraindication: known hypersensitivity.
TEST(SilperisoneContraindicationTest, HypersensitivityToSilperisone) {
  const auto result = RequestBuilder().Allergy("silperisone").Propose("silperisone").Screen(*BundledKb());
  const auto alerts = WithRule(result, kHypersensitivity);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].kind(), v1::ALERT_KIND_ALLERGY);
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_CONTRAINDICATED);
}

TEST(SilperisoneContraindicationTest, NoAllergyNoAllergyAlert) {
  const auto result = RequestBuilder().Allergy("penicillin-that-is-not-here").Propose("silperisone").Screen(*BundledKb());
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_ALLERGY).empty()) << testing::Describe(result);
}

// --- Contraindication: severe liver disease.
TEST(SilperisoneContraindicationTest, HepaticFailureIcd10) {
  for (const char* code : {"K72.10", "K72.90", "K70.40", "K76.7", "I85.00"}) {
    const auto result = RequestBuilder().Icd10(code).Propose("silperisone").Screen(*BundledKb());
    const auto alerts = WithRule(result, kHepatic);
    ASSERT_EQ(alerts.size(), 1u) << code << "\n" << testing::Describe(result);
    EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_CONTRAINDICATED);
    EXPECT_EQ(alerts[0].drug_ids(0), "silperisone");
  }
}

TEST(SilperisoneContraindicationTest, HepaticFailureSnomed) {
  const auto result = RequestBuilder().Snomed("59927004").Propose("silperisone").Screen(*BundledKb());
  EXPECT_EQ(WithRule(result, kHepatic).size(), 1u) << testing::Describe(result);
}

TEST(SilperisoneContraindicationTest, MildLiverDiseaseIsNotAContraindication) {
  // Fatty liver, alcoholic fatty liver, chronic viral hepatitis B.
  for (const char* code : {"K76.0", "K70.0", "B18.1"}) {
    const auto result = RequestBuilder().Icd10(code).Propose("silperisone").Screen(*BundledKb());
    EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_CONTRAINDICATION).empty()) << code << "\n" << testing::Describe(result);
  }
}

TEST(SilperisoneContraindicationTest, CirrhosisOfUnstatedSeverityIsAWarningNotAContraindication) {
  const auto result = RequestBuilder().Icd10("K74.60").Propose("silperisone").Screen(*BundledKb());
  const auto alerts = WithRule(result, kCirrhosis);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_MAJOR);
  EXPECT_TRUE(WithRule(result, kHepatic).empty());
}

// --- Contraindication: kidney disease, read as severe renal impairment.
TEST(SilperisoneContraindicationTest, SevereRenalImpairmentByDiagnosis) {
  for (const char* code : {"N18.4", "N18.5", "N18.6", "Z99.2"}) {
    const auto result = RequestBuilder().Icd10(code).Propose("silperisone").Screen(*BundledKb());
    const auto alerts = WithRule(result, kRenal);
    ASSERT_EQ(alerts.size(), 1u) << code << "\n" << testing::Describe(result);
    EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_CONTRAINDICATED);
  }
  for (const char* code : {"431857002", "433146000", "46177005"}) {
    const auto result = RequestBuilder().Snomed(code).Propose("silperisone").Screen(*BundledKb());
    EXPECT_EQ(WithRule(result, kRenal).size(), 1u) << code;
  }
}

TEST(SilperisoneContraindicationTest, SevereRenalImpairmentByEgfr) {
  const auto result = RequestBuilder().Egfr(24).Propose("silperisone").Screen(*BundledKb());
  const auto alerts = WithRule(result, kRenal);
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  ASSERT_GE(alerts[0].evidence_size(), 1);
  EXPECT_EQ(alerts[0].evidence(0).type(), v1::EVIDENCE_TYPE_LAB);
  EXPECT_NE(alerts[0].evidence(0).description().find("24"), std::string::npos);
}

TEST(SilperisoneContraindicationTest, SevereRenalImpairmentByEgfrCodesAndClearance) {
  for (const char* loinc : {"98979-8", "33914-3", "48642-3", "48643-1", "50044-7"}) {
    const auto result = RequestBuilder().Lab(loinc, 20, "mL/min/1.73m2").Propose("silperisone").Screen(*BundledKb());
    EXPECT_EQ(WithRule(result, kRenal).size(), 1u) << loinc;
  }
  const auto clearance = RequestBuilder().Lab("2164-2", 25, "mL/min").Propose("silperisone").Screen(*BundledKb());
  EXPECT_EQ(WithRule(clearance, kRenal).size(), 1u) << testing::Describe(clearance);
}

TEST(SilperisoneContraindicationTest, ModerateOrNormalRenalFunctionIsNotAContraindication) {
  for (double egfr : {30.0, 45.0, 60.0, 95.0}) {
    const auto result = RequestBuilder().Egfr(egfr).Propose("silperisone").Screen(*BundledKb());
    EXPECT_TRUE(WithRule(result, kRenal).empty()) << egfr;
  }
  for (const char* code : {"N18.30", "N18.2", "N18.1"}) {
    const auto result = RequestBuilder().Icd10(code).Propose("silperisone").Screen(*BundledKb());
    EXPECT_TRUE(WithRule(result, kRenal).empty()) << code;
  }
}

TEST(SilperisoneContraindicationTest, EgfrInAnUnknownUnitIsReported) {
  const auto result = RequestBuilder().Lab("62238-1", 24, "mmol/L").Propose("silperisone").Screen(*BundledKb());
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_CONTRAINDICATION).empty()) << testing::Describe(result);
  const auto incomplete = OfKind(result, v1::ALERT_KIND_INCOMPLETE_DATA);
  ASSERT_EQ(incomplete.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(incomplete[0].rule_id(), kRenal);
  EXPECT_FALSE(result.summary.complete());
}

TEST(SilperisoneContraindicationTest, CleanPatientGetsNoAlertsAndACompleteScreen) {
  const auto result = RequestBuilder().Icd10("G35").Egfr(85).Propose("silperisone").Screen(*BundledKb());
  EXPECT_TRUE(result.alerts.empty()) << testing::Describe(result);
  EXPECT_TRUE(result.summary.complete());
}

// --- Interactions: other muscle relaxants, sedatives, antidepressants; both directions.
struct InteractionCase {
  const char* other;
  const char* rule;
};

void PrintTo(const InteractionCase& c, std::ostream* os) { *os << c.other << " -> " << c.rule; }

class SilperisoneInteractionTest : public ::testing::TestWithParam<InteractionCase> {};

TEST_P(SilperisoneInteractionTest, SilperisoneProposedOtherCurrent) {
  const auto result = RequestBuilder().Current(GetParam().other).Propose("silperisone").Screen(*BundledKb());
  const auto interactions = OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION);
  bool found = false;
  for (const auto& a : interactions) {
    if (a.rule_id() == GetParam().rule) {
      found = true;
      EXPECT_GE(a.severity(), v1::SEVERITY_MODERATE);
      EXPECT_EQ(a.drug_ids(0), "silperisone");
      EXPECT_FALSE(a.recommendation().empty());
      EXPECT_EQ(a.sources(0).id(), "silperisone-wikimd");
    }
  }
  EXPECT_TRUE(found) << GetParam().other << "\n" << testing::Describe(result);
}

TEST_P(SilperisoneInteractionTest, OtherProposedSilperisoneCurrent) {
  const auto result = RequestBuilder().Current("silperisone").Propose(GetParam().other).Screen(*BundledKb());
  EXPECT_EQ(WithRule(result, GetParam().rule).size(), 1u) << GetParam().other << "\n" << testing::Describe(result);
}

INSTANTIATE_TEST_SUITE_P(
    SeedClasses, SilperisoneInteractionTest,
    ::testing::Values(InteractionCase{"baclofen", "ddi-silperisone-muscle-relaxants"},
                      InteractionCase{"tizanidine", "ddi-silperisone-muscle-relaxants"},
                      InteractionCase{"tolperisone", "ddi-silperisone-muscle-relaxants"},
                      InteractionCase{"cyclobenzaprine", "ddi-silperisone-muscle-relaxants"},
                      InteractionCase{"diazepam", "ddi-silperisone-sedatives"},
                      InteractionCase{"zolpidem", "ddi-silperisone-sedatives"},
                      InteractionCase{"phenobarbital", "ddi-silperisone-sedatives"},
                      InteractionCase{"diphenhydramine", "ddi-silperisone-sedatives"},
                      InteractionCase{"sertraline", "ddi-silperisone-antidepressants"},
                      InteractionCase{"venlafaxine", "ddi-silperisone-antidepressants"},
                      InteractionCase{"amitriptyline", "ddi-silperisone-antidepressants"},
                      InteractionCase{"phenelzine", "ddi-silperisone-antidepressants"},
                      InteractionCase{"mirtazapine", "ddi-silperisone-antidepressants"}),
    [](const ::testing::TestParamInfo<InteractionCase>& param_info) { return std::string(param_info.param.other); });

// The monograph names three interacting classes (muscle relaxants, sedatives,
// antidepressants) and nothing else. Ciprofloxacin is in none of them, yet its
// interactions are reviewed and on file (data/kb/opioids.textproto: drug
// "ciprofloxacin", interaction_review: INTERACTION_REVIEW_REVIEWED; rules such
// as ddi-tizanidine-strong-cyp1a2-inhibitors in muscle_relaxants.textproto and
// ddi-ciprofloxacin-theophylline in label_closure.textproto). So the engine
// screens the pair against real interaction data and must find nothing: no
// interaction alert, both drugs screened, and, being reviewed, no
// unscreened-drug alert, so the screen is complete. The patient is an adult
// with a birth date: ciprofloxacin, when proposed, has an under-18 warning
// (ciprofloxacin-ci-under-18) that without one would be reported as
// ALERT_KIND_INCOMPLETE_DATA ("no birth date") and leave the screen incomplete.
TEST(SilperisoneInteractionNegativeTest, UnrelatedDrugDoesNotInteract) {
  const auto kb = BundledKb();
  ASSERT_TRUE(kb->FindDrug("ciprofloxacin").has_value());
  ASSERT_FALSE(kb->InteractionsUnreviewed(*kb->FindDrug("ciprofloxacin")));
  for (const bool silperisone_proposed : {true, false}) {
    RequestBuilder builder;
    builder.BirthDate("1970-03-15").AsOf("2026-06-01");
    if (silperisone_proposed) {
      builder.Current("ciprofloxacin").Propose("silperisone");
    } else {
      builder.Current("silperisone").Propose("ciprofloxacin");
    }
    const auto result = builder.Screen(*kb);
    SCOPED_TRACE(silperisone_proposed ? "silperisone proposed" : "ciprofloxacin proposed");
    EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION).empty()) << testing::Describe(result);
    EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_UNSCREENED_DRUG).empty()) << testing::Describe(result);
    EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_INCOMPLETE_DATA).empty()) << testing::Describe(result);
    const auto& ids = result.summary.screened_drug_ids();
    EXPECT_NE(std::find(ids.begin(), ids.end(), "silperisone"), ids.end()) << result.summary.DebugString();
    EXPECT_NE(std::find(ids.begin(), ids.end(), "ciprofloxacin"), ids.end()) << result.summary.DebugString();
    EXPECT_EQ(ids.size(), 2);
    EXPECT_TRUE(result.summary.unresolved_references().empty());
    EXPECT_TRUE(result.summary.complete()) << testing::Describe(result);
  }
}

// --- Derived: drowsiness adds up; three CNS depressants get their own alert.
TEST(SilperisoneDerivedTest, ThreeCnsDepressants) {
  const auto result =
      RequestBuilder().Current("zolpidem").Current("oxycodone").Propose("silperisone").Screen(*BundledKb());
  const auto alerts = WithRule(result, "additive-cns-depression");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_MAJOR);
  EXPECT_EQ(alerts[0].drug_ids_size(), 3);
}

TEST(SilperisoneDerivedTest, TwoCnsDepressantsAreNotThree) {
  const auto result = RequestBuilder().Current("zolpidem").Propose("silperisone").Screen(*BundledKb());
  EXPECT_TRUE(WithRule(result, "additive-cns-depression").empty()) << testing::Describe(result);
}

TEST(SilperisoneDuplicateTest, OrderedTwice) {
  const auto result = RequestBuilder().Current("silperisone").Propose("Silperisone").Screen(*BundledKb());
  EXPECT_EQ(OfKind(result, v1::ALERT_KIND_DUPLICATE_THERAPY).size(), 1u) << testing::Describe(result);
  // A drug is not reported as interacting with itself.
  EXPECT_TRUE(OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION).empty()) << testing::Describe(result);
}

TEST(SilperisoneUnknownTest, MisspeltNameIsUnscreenedNotClean) {
  const auto result = RequestBuilder().Propose("silperizone").Screen(*BundledKb());
  ASSERT_EQ(OfKind(result, v1::ALERT_KIND_UNSCREENED_DRUG).size(), 1u);
  EXPECT_FALSE(result.summary.complete());
}

}  // namespace
}  // namespace vigil
