// Breadth: every entry of the ClinCalc DrugStats top 300 (the US outpatient
// list, tests/data/clincalc_top300.txt) resolves, single ingredients and
// combinations alike; and how many are screened for interactions from a
// cited source, with the curated base alone and with DDInter.
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "server/kb/loader.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::BundledKb;
using ::vigil::testing::RequestBuilder;

// Entries that name no one drug: ClinCalc's "Isosorbide" counts the
// mononitrate and the dinitrate together, "Sodium Salts" several salts with
// different effects. Vigil answers them with an unscreened-drug alert.
const std::set<std::string> kAmbiguous = {"Isosorbide", "Sodium Salts"};

std::vector<std::vector<std::string>> Top300() {
  std::ifstream in(std::string(VIGIL_SOURCE_DIR) + "/tests/data/clincalc_top300.txt");
  std::vector<std::vector<std::string>> entries;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    std::vector<std::string> ingredients;
    for (absl::string_view part : absl::StrSplit(line, ';')) {
      ingredients.emplace_back(absl::StripAsciiWhitespace(part));
    }
    entries.push_back(std::move(ingredients));
  }
  return entries;
}

struct Coverage {
  int resolved = 0;
  int with_interaction_data = 0;
  std::vector<std::string> unresolved;
  std::vector<std::string> without_data;
};

Coverage Measure(const KnowledgeBase& kb) {
  Coverage c;
  for (const auto& entry : Top300()) {
    const std::string name = absl::StrJoin(entry, "; ");
    // As an order system would send it: the ingredients joined by " / ".
    const auto result = RequestBuilder().Propose(absl::StrJoin(entry, " / ")).Screen(kb);
    if (!result.summary.unresolved_references().empty() || result.summary.screened_drug_ids().empty()) {
      c.unresolved.push_back(name);
      continue;
    }
    ++c.resolved;
    bool all = true;
    for (const auto& id : result.summary.screened_drug_ids()) {
      all = all && !kb.InteractionsUnreviewed(*kb.FindDrug(id));
    }
    if (all) {
      ++c.with_interaction_data;
    } else {
      c.without_data.push_back(name);
    }
  }
  return c;
}

TEST(Top300CoverageTest, EveryEntryResolves) {
  const auto entries = Top300();
  ASSERT_EQ(entries.size(), 300u);
  const Coverage c = Measure(*BundledKb());
  for (const auto& name : c.unresolved) {
    EXPECT_TRUE(kAmbiguous.count(name) > 0) << name << " does not resolve";
  }
  std::printf("ClinCalc top 300: %d resolve; %d screened for interactions by the curated base\n", c.resolved,
              c.with_interaction_data);
  std::printf("  without interaction data: %s\n", absl::StrJoin(c.without_data, ", ").c_str());
  // A ratchet: coverage only grows (measured 2026-12-04).
  EXPECT_GE(c.with_interaction_data, 288);
}

TEST(Top300CoverageTest, WithDdinter) {
  const std::string dir = std::string(VIGIL_SHARED_DATA) + "/ddinter";
  if (!std::filesystem::exists(dir)) {
    GTEST_SKIP() << dir << " is not present";
  }
  auto kb = LoadKnowledgeBase(KnowledgeBaseSpec{{VIGIL_BUNDLED_KB}, {dir}});
  ASSERT_TRUE(kb.ok()) << kb.status();
  const Coverage c = Measure(**kb);
  std::printf("ClinCalc top 300 with DDInter: %d resolve; %d screened for interactions\n", c.resolved,
              c.with_interaction_data);
  std::printf("  without interaction data: %s\n", absl::StrJoin(c.without_data, ", ").c_str());
  EXPECT_GE(c.resolved, 298);
}

}  // namespace
}  // namespace vigil
