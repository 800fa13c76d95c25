// Tests of knowledge-base diffs.
#include "server/kb/diff.h"

#include "gtest/gtest.h"
#include "tests/test_kb.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

TEST(DiffTest, IdenticalBasesHaveNoDifferences) {
  auto a = testing::LoadFromTexts({{"k.textproto", testing::kSyntheticKb}});
  auto b = testing::LoadFromTexts({{"k.textproto", testing::kSyntheticKb}});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(Diff(**a, **b).empty());
}

TEST(DiffTest, AddedRemovedAndChangedRules) {
  auto before = testing::LoadFromTexts({{"k.textproto", testing::kSyntheticKb}});
  std::string changed = testing::kSyntheticKb;
  // Change a rule's severity, remove a rule, add a drug.
  const std::string old_rule = "summary: \"A with C.\"";
  changed.replace(changed.find("SEVERITY_MAJOR\n               summary: \"A with C.\""),
                  std::string("SEVERITY_MAJOR").size(), "SEVERITY_CONTRAINDICATED");
  const size_t start = changed.find("interactions { id: \"ddi-x-d\"");
  const size_t end = changed.find("cross_sensitivities");
  changed.erase(start, end - start);
  changed += "drugs { id: \"drug-g\" name: \"Drug G\" sources: \"test-source\" }\n";
  auto after = testing::LoadFromTexts({{"k.textproto", changed}});
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_TRUE(after.ok()) << after.status();
  const auto diff = Diff(**before, **after);
  ASSERT_EQ(diff.added.size(), 1u);
  EXPECT_EQ(diff.added[0].kind, "drug");
  EXPECT_EQ(diff.added[0].id, "drug-g");
  ASSERT_EQ(diff.removed.size(), 1u);
  EXPECT_EQ(diff.removed[0].id, "ddi-x-d");
  ASSERT_EQ(diff.changed.size(), 1u);
  EXPECT_EQ(diff.changed[0].id, "ddi-a-c");
  ASSERT_EQ(diff.changed[0].fields.size(), 1u);
  EXPECT_EQ(diff.changed[0].fields[0], "severity");
  const std::string report = FormatDiff(diff);
  EXPECT_NE(report.find("+ drug drug-g"), std::string::npos) << report;
  EXPECT_NE(report.find("- interaction ddi-x-d"), std::string::npos) << report;
  EXPECT_NE(report.find("~ interaction ddi-a-c (severity)"), std::string::npos) << report;
}

}  // namespace
}  // namespace vigil
