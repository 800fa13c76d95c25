// Tests of knowledge-base loading: the bundled base loads, and every kind of
// broken content is refused whole with file, line and reason.
#include "server/kb/loader.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/test_kb.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::LoadFromTexts;
using ::vigil::testing::TempDir;

constexpr char kSource[] = "sources { id: \"s\" title: \"A source\" }\n";

// Loads `text` as one file and expects a refusal mentioning each of `parts`.
void ExpectRefused(const std::string& text, const std::vector<std::string>& parts) {
  auto kb = LoadFromTexts({{"broken.textproto", text}});
  ASSERT_FALSE(kb.ok()) << "expected the base to be refused";
  EXPECT_EQ(kb.status().code(), absl::StatusCode::kInvalidArgument);
  for (const auto& part : parts) {
    EXPECT_NE(kb.status().message().find(part), std::string::npos)
        << "'" << part << "' not in: " << kb.status().message();
  }
}

TEST(LoaderTest, BundledKnowledgeBaseLoads) {
  auto kb = LoadKnowledgeBase({VIGIL_BUNDLED_KB});
  ASSERT_TRUE(kb.ok()) << kb.status();
  EXPECT_GT((*kb)->drug_count(), 0u);
  EXPECT_EQ((*kb)->version().size(), 64u);
}

TEST(LoaderTest, SyntheticBaseLoads) {
  auto kb = LoadFromTexts({{"synthetic.textproto", testing::kSyntheticKb}});
  ASSERT_TRUE(kb.ok()) << kb.status();
  EXPECT_EQ((*kb)->drug_count(), 6u);
}

TEST(LoaderTest, VersionIsTheContentDigest) {
  auto a = LoadFromTexts({{"synthetic.textproto", testing::kSyntheticKb}});
  auto b = LoadFromTexts({{"synthetic.textproto", testing::kSyntheticKb}});
  auto c = LoadFromTexts({{"synthetic.textproto", std::string(testing::kSyntheticKb) +
                                                      "sources { id: \"another\" title: \"Another\" }"}});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((*a)->version(), (*b)->version());
  EXPECT_NE((*a)->version(), (*c)->version());
}

TEST(LoaderTest, SyntaxErrorNamesFileLineAndColumn) {
  ExpectRefused(std::string(kSource) + "drugs {\n  id: \"x\"\n  nmae: \"X\"\n}\n", {"broken.textproto:4:", "nmae"});
}

TEST(LoaderTest, DuplicateDrugId) {
  ExpectRefused(std::string(kSource) +
                    "drugs { id: \"d\" name: \"D\" sources: \"s\" }\n"
                    "drugs { id: \"d\" name: \"D2\" sources: \"s\" }\n",
                {"broken.textproto:3:", "duplicate drug id 'd'", "first defined at"});
}

TEST(LoaderTest, UnknownClassReference) {
  ExpectRefused(std::string(kSource) + "drugs { id: \"d\" name: \"D\" classes: \"nope\" sources: \"s\" }\n",
                {"broken.textproto:2:", "unknown class 'nope'"});
}

TEST(LoaderTest, UnknownDrugInInteraction) {
  ExpectRefused(std::string(kSource) +
                    "drugs { id: \"d\" name: \"D\" sources: \"s\" }\n"
                    "interactions { id: \"r\" a { drug: \"d\" } b { drug: \"ghost\" } severity: SEVERITY_MAJOR\n"
                    "  summary: \"x\" management: \"y\" sources: \"s\" }\n",
                {"broken.textproto:3:", "unknown drug id 'ghost'"});
}

TEST(LoaderTest, UnknownConditionSet) {
  ExpectRefused(std::string(kSource) +
                    "drugs { id: \"d\" name: \"D\" sources: \"s\"\n"
                    "  contraindications { id: \"d-ci\" condition_set: \"nowhere\" severity: SEVERITY_MAJOR\n"
                    "    summary: \"x\" sources: \"s\" } }\n",
                {"broken.textproto:3:", "unknown condition set 'nowhere'"});
}

TEST(LoaderTest, BadThresholds) {
  ExpectRefused(std::string(kSource) +
                    "condition_sets { id: \"c\" name: \"C\"\n"
                    "  labs { name: \"eGFR\" loinc_codes: \"62238-1\" comparator: COMPARATOR_LESS_THAN value: -1\n"
                    "         unit: \"mL/min/{1.73_m2}\" }\n"
                    "  labs { name: \"eGFR\" loinc_codes: \"62238-1\" comparator: COMPARATOR_LESS_THAN value: 30\n"
                    "         unit: \"parsecs\" }\n"
                    "  labs { name: \"eGFR\" loinc_codes: \"62238-7\" value: 30 unit: \"mL/min\" } }\n",
                {"broken.textproto:3:", "finite, non-negative", "broken.textproto:5:", "'parsecs'",
                 "broken.textproto:7:", "no comparator", "check digit"});
}

TEST(LoaderTest, MalformedConditionCode) {
  ExpectRefused(std::string(kSource) +
                    "condition_sets { id: \"c\" name: \"C\"\n"
                    "  codes { system: \"http://hl7.org/fhir/sid/icd-10-cm\" code: \"renal\" } }\n",
                {"broken.textproto:3:", "not an ICD-10-CM code"});
}

TEST(LoaderTest, SummaryTooLong) {
  ExpectRefused(std::string(kSource) +
                    "drugs { id: \"d\" name: \"D\" sources: \"s\" }\n"
                    "interactions { id: \"r\" a { drug: \"d\" } b { drug: \"d\" } severity: SEVERITY_MAJOR\n"
                    "  summary: \"" + std::string(150, 'x') + "\" management: \"y\" sources: \"s\" }\n",
                {"broken.textproto:3:", "must be under 140"});
}

TEST(LoaderTest, MissingAndUnknownSources) {
  ExpectRefused("drugs { id: \"d\" name: \"D\" }\ndrugs { id: \"e\" name: \"E\" sources: \"nobody\" }\n",
                {"broken.textproto:1:", "cites no source", "broken.textproto:2:", "unknown source 'nobody'"});
}

TEST(LoaderTest, ClassCycle) {
  ExpectRefused("classes { id: \"a\" name: \"A\" parents: \"b\" }\nclasses { id: \"b\" name: \"B\" parents: \"a\" }\n",
                {"its own ancestor"});
}

TEST(LoaderTest, AmbiguousName) {
  ExpectRefused(std::string(kSource) +
                    "drugs { id: \"d\" name: \"D\" synonyms: \"shared\" sources: \"s\" }\n"
                    "drugs { id: \"e\" name: \"E\" brand_names: \"Shared\" sources: \"s\" }\n",
                {"broken.textproto:3:", "'Shared' is also a name of drug 'd'"});
}

TEST(LoaderTest, ContraindicationNeedsExactlyOneTrigger) {
  ExpectRefused(std::string(kSource) +
                    "drugs { id: \"d\" name: \"D\" sources: \"s\"\n"
                    "  contraindications { id: \"d-ci\" severity: SEVERITY_MAJOR summary: \"x\" sources: \"s\" } }\n",
                {"exactly one of condition_set and hypersensitivity"});
}

TEST(LoaderTest, MissingSeverity) {
  ExpectRefused(std::string(kSource) +
                    "drugs { id: \"d\" name: \"D\" sources: \"s\" }\n"
                    "interactions { id: \"r\" a { drug: \"d\" } b { drug: \"d\" } summary: \"x\" management: \"y\" sources: \"s\" }\n",
                {"has no severity"});
}

TEST(LoaderTest, DuplicateRuleIdsAcrossFiles) {
  auto kb = LoadFromTexts({{"a.textproto", std::string(kSource) + "drugs { id: \"d\" name: \"D\" sources: \"s\" }\n"
                                                                  "additive_effects { id: \"r\" effect: \"e\" min_drugs: 3 severity: SEVERITY_MAJOR summary: \"x\" sources: \"s\" }\n"},
                           {"b.textproto", "additive_effects { id: \"r\" effect: \"e\" min_drugs: 2 severity: SEVERITY_MAJOR summary: \"x\" sources: \"s\" }\n"}});
  ASSERT_FALSE(kb.ok());
  EXPECT_NE(kb.status().message().find("b.textproto:1: duplicate rule id 'r'"), std::string::npos) << kb.status();
}

TEST(LoaderTest, MissingPathIsNotFound) {
  auto kb = LoadKnowledgeBase({"/nonexistent/kb"});
  EXPECT_EQ(kb.status().code(), absl::StatusCode::kNotFound);
}

TEST(LoaderTest, EmptyFolderIsRefused) {
  TempDir dir;
  auto kb = LoadKnowledgeBase({dir.path()});
  EXPECT_EQ(kb.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LoaderTest, OneBrokenFileRefusesTheWholeBase) {
  auto kb = LoadFromTexts({{"good.textproto", testing::kSyntheticKb}, {"bad.textproto", "drugs { id: "}});
  ASSERT_FALSE(kb.ok());
  EXPECT_NE(kb.status().message().find("bad.textproto"), std::string::npos);
}

TEST(LoaderTest, EveryBundledSummaryIsShortAndEveryDrugHasASource) {
  const auto kb = testing::BundledKb();
  for (const auto& drug : kb->drugs()) {
    EXPECT_FALSE(drug.proto.sources().empty()) << drug.proto.id();
    for (const auto& ci : drug.proto.contraindications()) {
      EXPECT_LT(ci.summary().size(), 140u) << ci.id();
    }
  }
  for (const auto& rule : kb->interactions()) {
    EXPECT_LT(rule.proto.summary().size(), 140u) << rule.proto.id();
  }
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// Age rules (docs/adding-a-rule-kind.md's worked example): the validator
// refuses an empty or negative range, and accepts an age range alone.
TEST(LoaderTest, AgeRangeMustBeARealRange) {
  for (const char* age : {"age { min_years: 12 below_years: 12 }", "age { min_years: -1 }",
                          "age { min_years: 18 below_years: 2 }", "age { }"}) {
    ExpectRefused(std::string(kSource) + "condition_sets { id: \"c\" name: \"C\" sources: \"s\"\n  " + age + "\n}\n",
                  {"broken.textproto:2", "condition set 'c'"});
  }
  auto kb = LoadFromTexts({{"ok.textproto", std::string(kSource) +
                                                "condition_sets { id: \"under-12\" name: \"Children under 12\" "
                                                "sources: \"s\" age { below_years: 12 } }\n"}});
  EXPECT_TRUE(kb.ok()) << kb.status();
}

}  // namespace
}  // namespace vigil
