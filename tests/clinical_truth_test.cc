// Issue 12, against the bundled knowledge base: a clean answer is always
// true. Every medication on the list, proposed or current, is either
// screened for interactions or named as not screened.
#include <algorithm>
#include <fstream>
#include <sstream>
#include <cctype>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::BundledKb;
using ::vigil::testing::OfKind;
using ::vigil::testing::RequestBuilder;

// Every alert that names `drug_id`.
std::vector<v1::Alert> Naming(const ScreeningResult& result, const std::string& drug_id) {
  std::vector<v1::Alert> out;
  for (const auto& alert : result.alerts) {
    for (const auto& id : alert.drug_ids()) {
      if (id == drug_id) {
        out.push_back(alert);
        break;
      }
    }
  }
  return out;
}

// The silent pass of issue 12: a current medication that no source has
// interaction data for, beside a proposed one. Either a rule covers the pair
// or the answer says the current drug was not screened; never a clean
// "complete" with nothing about it.
TEST(NeverASilentPassTest, CurrentTheophyllineWithProposedCiprofloxacin) {
  const auto result = RequestBuilder().Current("theophylline").Propose("ciprofloxacin").Screen(*BundledKb());
  const auto about = Naming(result, "theophylline");
  ASSERT_FALSE(about.empty()) << testing::Describe(result);
  bool interaction = false;
  for (const auto& alert : about) {
    interaction = interaction || alert.kind() == v1::ALERT_KIND_DRUG_INTERACTION;
  }
  if (!interaction) {
    EXPECT_FALSE(result.summary.complete()) << testing::Describe(result);
  }
}

// Over the whole bundled base: for each drug that has no interaction data,
// a check with it as a current medication beside a proposed drug that has
// data is never complete, and the drug is named in an unscreened alert.
TEST(NeverASilentPassTest, EveryDrugWithoutInteractionDataIsNamedWhenCurrent) {
  const auto kb = BundledKb();
  int checked = 0;
  for (DrugIndex d = 0; d < kb->drug_count(); ++d) {
    if (!kb->InteractionsUnreviewed(d)) {
      continue;
    }
    const std::string& id = kb->drug(d).proto.id();
    const auto result = RequestBuilder().Current(id).Propose("silperisone").Screen(*kb);
    EXPECT_FALSE(result.summary.complete()) << id;
    bool named = false;
    for (const auto& alert : OfKind(result, v1::ALERT_KIND_UNSCREENED_DRUG)) {
      named = named || (alert.drug_ids_size() == 1 && alert.drug_ids(0) == id);
    }
    EXPECT_TRUE(named) << id << ": " << testing::Describe(result);
    ++checked;
  }
  // Not a vacuous loop: the count is printed for the record.
  std::printf("drugs without interaction data: %d\n", checked);
}

// What the prescriber reads carries no authoring notes: no
// "Interpretation:", rule ids, enum names or file names. Checked for every
// curated interaction rule (one pair of its drugs) and every contraindication
// triggered by its condition set's first code.
void ExpectPrescriberText(const v1::Alert& alert, const std::string& context) {
  for (const std::string* text : {&alert.summary(), &alert.detail(), &alert.recommendation()}) {
    EXPECT_EQ(text->find("Interpretation:"), std::string::npos) << context << ": " << *text;
    EXPECT_EQ(text->find("SEVERITY_"), std::string::npos) << context << ": " << *text;
    EXPECT_EQ(text->find(".textproto"), std::string::npos) << context << ": " << *text;
    if (!alert.rule_id().empty()) {
      EXPECT_EQ(text->find(alert.rule_id()), std::string::npos) << context << ": " << *text;
    }
  }
}

TEST(PrescriberTextTest, InteractionAlertsNameThePatientsDrugsAndNoAuthoringNotes) {
  const auto kb = BundledKb();
  int checked = 0;
  for (const auto& rule : kb->interactions()) {
    if (rule.origin_name != "curated") {
      continue;
    }
    // The first pair of distinct drugs the rule covers.
    std::optional<std::pair<DrugIndex, DrugIndex>> pair;
    for (DrugIndex a = 0; a < kb->drug_count() && !pair.has_value(); ++a) {
      if (!kb->SideContains(rule, true, a)) {
        continue;
      }
      for (DrugIndex b = 0; b < kb->drug_count(); ++b) {
        if (b != a && kb->SideContains(rule, false, b)) {
          pair.emplace(a, b);
          break;
        }
      }
    }
    if (!pair.has_value()) {
      continue;
    }
    const auto& a = kb->drug(pair->first).proto;
    const auto& b = kb->drug(pair->second).proto;
    const auto result = RequestBuilder().Current(b.id()).Propose(a.id()).Screen(*kb);
    bool found = false;
    for (const auto& alert : OfKind(result, v1::ALERT_KIND_DRUG_INTERACTION)) {
      if (alert.drug_ids_size() != 2 || alert.drug_ids(0) != a.id() || alert.drug_ids(1) != b.id()) {
        continue;
      }
      found = true;
      const std::string context = a.id() + " + " + b.id();
      ExpectPrescriberText(alert, context);
      EXPECT_LE(alert.sources_size(), 5) << context;
      std::string lower = alert.summary();
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      std::string an = a.name(), bn = b.name();
      std::transform(an.begin(), an.end(), an.begin(), [](unsigned char c) { return std::tolower(c); });
      std::transform(bn.begin(), bn.end(), bn.begin(), [](unsigned char c) { return std::tolower(c); });
      EXPECT_NE(lower.find(an), std::string::npos) << context << ": " << alert.summary();
      EXPECT_NE(lower.find(bn), std::string::npos) << context << ": " << alert.summary();
    }
    EXPECT_TRUE(found) << rule.proto.id() << ": " << testing::Describe(result);
    ++checked;
  }
  EXPECT_GT(checked, 200);
}

// The texts of allergy groups, burden rules and classes (a duplicate-therapy
// alert carries the class's description) are read by prescribers too.
TEST(PrescriberTextTest, GroupRuleAndClassTextsCarryNoAuthoringNotes) {
  const auto kb = BundledKb();
  auto check = [](const std::string& text, const std::string& context) {
    for (const char* note : {"Interpretation:", "SEVERITY_", ".textproto", "not in the catalogue"}) {
      EXPECT_EQ(text.find(note), std::string::npos) << context << ": " << text;
    }
  };
  int checked = 0;
  for (const auto& group : kb->cross_sensitivities()) {
    for (const std::string* text : {&group.proto.summary(), &group.proto.detail(), &group.proto.recommendation()}) {
      check(*text, group.proto.id());
      ++checked;
    }
  }
  for (const auto& rule : kb->additive_rules()) {
    for (const std::string* text : {&rule.summary(), &rule.detail(), &rule.recommendation()}) {
      check(*text, rule.id());
      ++checked;
    }
  }
  for (const auto& cls : kb->classes()) {
    check(cls.proto.description(), cls.proto.id());
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

TEST(PrescriberTextTest, ContraindicationAlertsCarryNoAuthoringNotes) {
  const auto kb = BundledKb();
  int checked = 0;
  for (const auto& entry : kb->drugs()) {
    for (const auto& ci : entry.proto.contraindications()) {
      const auto* set = kb->FindConditionSet(ci.condition_set());
      if (set == nullptr || set->codes().empty() || set->has_age()) {
        continue;
      }
      const auto& code = set->codes(0);
      const auto result = RequestBuilder().Condition(code.system(), code.code()).Propose(entry.proto.id()).Screen(*kb);
      for (const auto& alert : OfKind(result, v1::ALERT_KIND_CONTRAINDICATION)) {
        ExpectPrescriberText(alert, ci.id());
        if (alert.rule_id() == ci.id()) {
          EXPECT_EQ(alert.interpretation(), ci.interpretation()) << ci.id();
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 300);
}

// Every condition set matches both ICD-10-CM and SNOMED CT, except the age
// sets (decided from the birth date) and these, for which no SNOMED CT
// concept was found in a public value set yet. The list only shrinks.
TEST(ConditionSetsTest, EveryConditionSetMatchesIcd10CmAndSnomedCt) {
  const std::set<std::string> kWithoutSnomedYet = {
      "prosthetic-heart-valve", "men2-or-family-history", "systemic-fungal-infection",
      "mitochondrial-disorder", "folate-deficiency-anemia", "complex-sleep-behavior-history",
      "ischemic-bowel-disease", "pregnancy-30-weeks-or-later", "carcinoid-syndrome",
      "hemiplegic-migraine", "pituitary-prolactinoma",
      "pregnancy-at-term", "status-asthmaticus", "tardive-dyskinesia",
      "thyroid-carcinoma", "urea-cycle-disorder"};
  const auto kb = BundledKb();
  int checked = 0;
  for (const auto& [id, set] : kb->condition_sets()) {
    if (set.has_age()) {
      continue;
    }
    bool icd = false;
    bool snomed = false;
    for (const auto& code : set.codes()) {
      icd = icd || code.system() == "http://hl7.org/fhir/sid/icd-10-cm";
      snomed = snomed || code.system() == "http://snomed.info/sct";
    }
    if (set.codes().empty()) {
      continue;  // decided by labs alone
    }
    ++checked;
    EXPECT_TRUE(icd) << id << " has no ICD-10-CM code";
    if (kWithoutSnomedYet.count(id) > 0) {
      EXPECT_FALSE(snomed) << id << " has SNOMED CT codes now: take it off the list";
    } else {
      EXPECT_TRUE(snomed) << id << " has no SNOMED CT code";
    }
  }
  EXPECT_GT(checked, 100);
}

// Cumulative risk over the whole list, against the bundled base: each rule
// names every drug that adds up, and stays quiet below its threshold.
std::set<std::string> DrugsOf(const v1::Alert& alert) {
  return {alert.drug_ids().begin(), alert.drug_ids().end()};
}

TEST(CumulativeRiskTest, QtKnownRiskIncludesTheDrugsAddedAfter2014) {
  // Levofloxacin, fluconazole and donepezil are not on the 2014 list; the
  // current CredibleMeds known-risk list and their labels name them.
  const auto kb = BundledKb();
  const auto result =
      RequestBuilder().Current("levofloxacin").Current("donepezil").Propose("fluconazole").Screen(*kb);
  const auto alerts = testing::WithRule(result, "additive-qt-prolongation-known");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(DrugsOf(alerts[0]), (std::set<std::string>{"levofloxacin", "donepezil", "fluconazole"}));
  EXPECT_EQ(alerts[0].severity(), v1::SEVERITY_MAJOR);

  const auto two = RequestBuilder().Current("hydroxychloroquine").Propose("fluconazole").Screen(*kb);
  EXPECT_TRUE(testing::WithRule(two, "additive-qt-prolongation-known").empty()) << testing::Describe(two);
}

TEST(CumulativeRiskTest, EveryCataloguedDrugOfTheCredibleMedsListCarriesTheEffect) {
  const std::string path = std::string(VIGIL_SHARED_DATA) + "/onc-high-priority/crediblemeds-known-tdp-risk.json";
  std::ifstream in(path);
  if (!in) {
    GTEST_SKIP() << path << " is not present";
  }
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::Struct list;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(text.str(), &list).ok());
  const auto kb = BundledKb();
  int catalogued = 0;
  for (const auto& drug : list.fields().at("drugs").list_value().values()) {
    std::string name = drug.struct_value().fields().at("generic_name").string_value();
    const auto d = kb->FindDrug(name);
    if (!d) {
      continue;
    }
    ++catalogued;
    const auto& effects = kb->drug(*d).additive_effects;
    EXPECT_NE(std::find(effects.begin(), effects.end(), "qt-prolongation-known"), effects.end()) << name;
  }
  // 40 drugs on the list, of which some are off every market.
  EXPECT_GE(catalogued, 30);
}

TEST(CumulativeRiskTest, BleedingRiskNamesTheAnticoagulantAntiplateletAndNsaid) {
  const auto kb = BundledKb();
  const auto result = RequestBuilder().Current("warfarin").Current("aspirin").Propose("ibuprofen").Screen(*kb);
  const auto alerts = testing::WithRule(result, "additive-bleeding-risk");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(DrugsOf(alerts[0]), (std::set<std::string>{"warfarin", "acetylsalicylic-acid", "ibuprofen"}));
  const auto four =
      RequestBuilder().Current("warfarin").Current("aspirin").Current("sertraline").Propose("ibuprofen").Screen(*kb);
  const auto more = testing::WithRule(four, "additive-bleeding-risk");
  ASSERT_EQ(more.size(), 1u) << testing::Describe(four);
  EXPECT_EQ(DrugsOf(more[0]).count("sertraline"), 1u);
}

TEST(CumulativeRiskTest, HyperkalaemiaNamesTheRaasInhibitorPotassiumSparingAgentAndTrimethoprim) {
  const auto kb = BundledKb();
  const auto result =
      RequestBuilder().Current("lisinopril").Current("spironolactone").Propose("trimethoprim").Screen(*kb);
  const auto alerts = testing::WithRule(result, "additive-hyperkalaemia");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(DrugsOf(alerts[0]), (std::set<std::string>{"lisinopril", "spironolactone", "trimethoprim"}));
}

TEST(CumulativeRiskTest, SerotonergicLoadNamesEachSerotonergicDrug) {
  const auto kb = BundledKb();
  const auto result = RequestBuilder().Current("sertraline").Current("tramadol").Propose("trazodone").Screen(*kb);
  const auto alerts = testing::WithRule(result, "additive-serotonin-syndrome");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(result);
  EXPECT_EQ(DrugsOf(alerts[0]), (std::set<std::string>{"sertraline", "tramadol", "trazodone"}));
}

TEST(CumulativeRiskTest, AnticholinergicBurdenFollowsTheAcbScores) {
  const auto kb = BundledKb();
  // ACB 3 + 3.
  const auto high = RequestBuilder().Current("amitriptyline").Propose("oxybutynin").Screen(*kb);
  const auto alerts = testing::WithRule(high, "additive-anticholinergic-burden");
  ASSERT_EQ(alerts.size(), 1u) << testing::Describe(high);
  EXPECT_EQ(DrugsOf(alerts[0]), (std::set<std::string>{"amitriptyline", "oxybutynin"}));
  // ACB 1 + 1: under the threshold of 3.
  const auto low = RequestBuilder().Current("furosemide").Propose("metoprolol").Screen(*kb);
  EXPECT_TRUE(testing::WithRule(low, "additive-anticholinergic-burden").empty()) << testing::Describe(low);
  // ACB 1 + 1 + 1 reaches it.
  const auto three = RequestBuilder().Current("furosemide").Current("warfarin").Propose("metoprolol").Screen(*kb);
  EXPECT_EQ(testing::WithRule(three, "additive-anticholinergic-burden").size(), 1u) << testing::Describe(three);
}

}  // namespace
}  // namespace vigil
