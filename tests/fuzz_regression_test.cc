// Replays the inputs the fuzzers (fuzz/) found problems with, stored in
// tests/data/fuzz_regressions/<target>/, and pins the fixed behaviour.
#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"
#include "server/engine/screening.h"
#include "server/kb/loader.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::OfKind;
using ::vigil::testing::TempDir;

// The curated side of the DDInter fuzz target (fuzz/ddinter_import_fuzzer.cc),
// reduced to what the stored inputs name.
constexpr char kCuratedBase[] = R"pb(
sources { id: "fuzz-source" title: "Fuzzing fixture" }
drugs { id: "abacavir" name: "Abacavir" sources: "fuzz-source" }
drugs { id: "iron" name: "Ferrous sulfate" synonyms: "Iron" sources: "fuzz-source" }
)pb";

std::string RegressionPath(const std::string& target, const std::string& name) {
  return (std::filesystem::path(VIGIL_SOURCE_DIR) / "tests/data/fuzz_regressions" / target / name).string();
}

std::vector<std::string> RegressionInputs(const std::string& target) {
  std::vector<std::string> files;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(VIGIL_SOURCE_DIR) / "tests/data/fuzz_regressions" / target)) {
    files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class DdinterFuzzRegressionTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::shared_ptr<const KnowledgeBase>> Import(const std::string& csv) {
    return LoadKnowledgeBase(KnowledgeBaseSpec{{dir_.Write("curated.textproto", kCuratedBase)}, {csv}});
  }

  // What the catalog and the alerts rely on: each drug has its own non-empty
  // id, which resolves to it.
  static void ExpectOwnIds(const KnowledgeBase& kb) {
    absl::flat_hash_set<std::string> ids;
    for (DrugIndex d = 0; d < kb.drug_count(); ++d) {
      const std::string& id = kb.drug(d).proto.id();
      EXPECT_FALSE(id.empty()) << "drug " << d << " '" << kb.drug(d).proto.name() << "'";
      EXPECT_TRUE(ids.insert(id).second) << "two drugs have the id '" << id << "'";
      EXPECT_EQ(kb.FindDrug(id), std::optional<DrugIndex>(d)) << "id '" << id << "'";
    }
  }

  TempDir dir_;
};

// A row whose drug name had no letter or digit (here a NUL byte) was
// accepted and made an import-only drug with an empty id.
TEST_F(DdinterFuzzRegressionTest, NameWithoutALetterOrDigitIsRefused) {
  auto kb = Import(RegressionPath("ddinter_import", "name_without_letter_or_digit.csv"));
  ASSERT_FALSE(kb.ok());
  EXPECT_EQ(kb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(kb.status().message().find("name_without_letter_or_digit.csv:3: column 2 has no letter or digit"),
            std::string::npos)
      << kb.status().message();
}

// "Iron!" and "Iron?" both slug to the curated drug's id "iron": both were
// given the id "iron-ddinter", which resolved to the first only, and their
// alerts shared a finding key, so one was dropped.
TEST_F(DdinterFuzzRegressionTest, NamesSharingASlugGetTheirOwnIds) {
  auto kb = Import(RegressionPath("ddinter_import", "names_sharing_a_slug.csv"));
  ASSERT_TRUE(kb.ok()) << kb.status();
  ExpectOwnIds(**kb);
  const auto bang = (*kb)->FindDrug("Iron!");
  const auto question = (*kb)->FindDrug("Iron?");
  ASSERT_TRUE(bang.has_value() && question.has_value());
  EXPECT_EQ((*kb)->drug(*bang).proto.id(), "iron-ddinter");
  EXPECT_EQ((*kb)->drug(*question).proto.id(), "iron-ddinter-2");

  v1::Patient patient;
  patient.set_id("p");
  patient.add_medications()->set_drug("Iron!");
  patient.add_medications()->set_drug("Iron?");
  google::protobuf::RepeatedPtrField<v1::MedicationOrder> proposed;
  proposed.Add()->set_drug("abacavir");
  const auto interactions = OfKind(Screen(**kb, patient, proposed), v1::ALERT_KIND_DRUG_INTERACTION);
  ASSERT_EQ(interactions.size(), 2u);
  EXPECT_EQ(interactions[0].severity(), v1::SEVERITY_MAJOR);
  EXPECT_EQ(interactions[1].severity(), v1::SEVERITY_MINOR);
}

// Every stored input, including any added later: refused with a reason, or
// imported into a base whose drugs keep their own ids and can be screened.
TEST_F(DdinterFuzzRegressionTest, EveryStoredInputIsRefusedOrScreenable) {
  for (const std::string& csv : RegressionInputs("ddinter_import")) {
    SCOPED_TRACE(csv);
    auto kb = Import(csv);
    if (!kb.ok()) {
      EXPECT_EQ(kb.status().code(), absl::StatusCode::kInvalidArgument);
      continue;
    }
    ExpectOwnIds(**kb);
    v1::Patient patient;
    patient.set_id("p");
    for (DrugIndex d = 0; d < (*kb)->drug_count(); ++d) {
      patient.add_medications()->set_drug((*kb)->drug(d).proto.id());
    }
    const ScreeningResult result = Screen(**kb, patient, {});
    EXPECT_EQ(result.summary.alert_count(), static_cast<int>(result.alerts.size()));
  }
}

}  // namespace
}  // namespace vigil
