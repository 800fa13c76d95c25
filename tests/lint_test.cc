// The content checks of `vigil-kb validate`: label closure and notes that
// call a catalogued drug absent. On a synthetic base, then over the whole
// bundled base (so that adding a drug cannot silently open a hole).
#include "server/kb/lint.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/test_kb.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::LoadFromTexts;

constexpr char kLabels[] = R"pb(
label_interactions {
  drug: "drug-a"
  partners { name: "Drug C" statement: LABEL_STATEMENT_CONTRAINDICATED label: "US" sources: "test-source" }
  partners { name: "drug-e" statement: LABEL_STATEMENT_MAJOR label: "EU" sources: "test-source" }
  partners { name: "Class Y" statement: LABEL_STATEMENT_BOXED label: "US" sources: "test-source" }
  partners { name: "Nothingol" statement: LABEL_STATEMENT_CONTRAINDICATED label: "US" sources: "test-source" }
}
drugs { id: "drug-n" name: "Drug N" sources: "test-source"
        interpretation: "The label also contraindicates drug c and nothingol (not in the catalogue)." }
)pb";

TEST(LabelClosureTest, EveryCataloguedPartnerNeedsARule) {
  auto kb = LoadFromTexts({{"synthetic.textproto", testing::kSyntheticKb}, {"labels.textproto", kLabels}});
  ASSERT_TRUE(kb.ok()) << kb.status();
  const auto gaps = LabelClosureGaps(**kb);
  // drug-c has ddi-a-c, class-y's members (drug-c, drug-d) have ddi-a-y;
  // drug-e has no rule; Nothingol is not in the catalogue.
  ASSERT_EQ(gaps.size(), 1u) << ::testing::PrintToString(gaps);
  EXPECT_NE(gaps[0].find("drug-a with drug-e"), std::string::npos) << gaps[0];
  EXPECT_NE(gaps[0].find("EU label"), std::string::npos) << gaps[0];
}

TEST(StaleCatalogueNotesTest, ANoteCallingACataloguedDrugAbsentFails) {
  auto kb = LoadFromTexts({{"synthetic.textproto", testing::kSyntheticKb}, {"labels.textproto", kLabels}});
  ASSERT_TRUE(kb.ok()) << kb.status();
  const auto problems = StaleCatalogueNotes(**kb);
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_NE(problems[0].find("'drug c'"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("drug-n"), std::string::npos) << problems[0];
}

TEST(StaleCatalogueNotesTest, PhrasingsAndPlacement) {
  // "outside the catalogue (a, b)" names what follows; a parenthesis names
  // only its own content.
  constexpr char kNotes[] = R"pb(
drugs { id: "drug-m" name: "Drug M" sources: "test-source"
        interpretation: "Contraindicated partners outside the catalogue (drug e, zapol) are not encoded. Drug F is encoded; the labels give drug f and wibble as examples (wibble is not in the knowledge base)." }
)pb";
  auto kb = LoadFromTexts({{"synthetic.textproto", testing::kSyntheticKb}, {"notes.textproto", kNotes}});
  ASSERT_TRUE(kb.ok()) << kb.status();
  const auto problems = StaleCatalogueNotes(**kb);
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_NE(problems[0].find("'drug e'"), std::string::npos) << problems[0];
}

TEST(BundledKbLintTest, LabelClosureHoldsOverTheWholeBase) {
  const auto kb = testing::BundledKb();
  EXPECT_FALSE(kb->label_interactions().empty());
  const auto gaps = LabelClosureGaps(*kb);
  EXPECT_TRUE(gaps.empty()) << gaps.size() << " gaps:\n" << ::testing::PrintToString(gaps);
}

TEST(BundledKbLintTest, NoNoteCallsACataloguedDrugAbsent) {
  const auto problems = StaleCatalogueNotes(*testing::BundledKb());
  EXPECT_TRUE(problems.empty()) << problems.size() << " stale notes:\n" << ::testing::PrintToString(problems);
}

}  // namespace
}  // namespace vigil
