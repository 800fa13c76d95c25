// Coverage of the ONC high-priority drug-drug interaction list (Phansalkar et
// al., JAMIA 2012): at least 95% of its drug names resolve, and every pair
// whose two drugs resolve alerts at SEVERITY_MAJOR or higher, whichever drug
// is current and which proposed. The full list is read from shared/data at
// test time; without it, the test runs on the slice in tests/data/onc (every
// drug name and group of the list, see its README.md), so it never skips.
// VIGIL_SHARED_DATA_OVERRIDE, when set, replaces the build's shared/data
// folder (point it at a missing folder to run on the slice).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "vigil_test/onc_pairs.pb.h"

namespace vigil {
namespace {

using ::vigil::testing::BundledKb;
using ::vigil::testing::RequestBuilder;

bool AlertsMajor(const KnowledgeBase& kb, const std::string& current, const std::string& proposed) {
  const auto result = RequestBuilder("onc").Current(current).Propose(proposed).Screen(kb);
  for (const auto& a : result.alerts) {
    if (a.kind() == v1::ALERT_KIND_DRUG_INTERACTION && a.severity() >= v1::SEVERITY_MAJOR) {
      return true;
    }
  }
  return false;
}

// Pairs in the shared list, and in the slice of it kept in tests/data/onc.
constexpr int kSharedPairs = 1209;
constexpr int kSlicePairs = 91;

std::string SharedData() {
  const char* override_dir = std::getenv("VIGIL_SHARED_DATA_OVERRIDE");
  return override_dir != nullptr && *override_dir != '\0' ? std::string(override_dir) : std::string(VIGIL_SHARED_DATA);
}

std::string SharedList() { return SharedData() + "/onc-high-priority/pairs.json"; }

std::string SliceList() { return std::string(VIGIL_SOURCE_DIR) + "/tests/data/onc/pairs.json"; }

::testing::AssertionResult ReadList(const std::string& path, vigil_test::OncList* list) {
  std::ifstream in(path);
  if (!in) {
    return ::testing::AssertionFailure() << "cannot read " << path;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(buffer.str(), list, options);
  if (!status.ok()) {
    return ::testing::AssertionFailure() << path << ": " << status.ToString();
  }
  return ::testing::AssertionSuccess();
}

std::string Key(const vigil_test::OncPair& pair) { return absl::StrCat(pair.group(), "|", pair.a(), "|", pair.b()); }

TEST(OncCoverageTest, HighPriorityPairsAlert) {
  const std::string shared = SharedList();
  const bool full = std::filesystem::exists(shared);
  const std::string path = full ? shared : SliceList();
  std::cout << "ONC high-priority list: reading " << (full ? "the shared list" : "the test slice") << " at " << path
            << "\n";
  ::testing::Test::RecordProperty("onc_list", full ? "shared" : "slice");
  vigil_test::OncList list;
  ASSERT_TRUE(ReadList(path, &list));
  ASSERT_EQ(list.pairs_size(), full ? kSharedPairs : kSlicePairs) << path;
  if (full) {
    // The slice stays a slice: each of its pairs is in the shared list.
    vigil_test::OncList slice;
    ASSERT_TRUE(ReadList(SliceList(), &slice));
    ASSERT_EQ(slice.pairs_size(), kSlicePairs);
    std::set<std::string> keys;
    for (const auto& pair : list.pairs()) {
      keys.insert(Key(pair));
    }
    for (const auto& pair : slice.pairs()) {
      EXPECT_EQ(keys.count(Key(pair)), 1u) << "slice pair not in " << path << ": " << Key(pair);
    }
  }

  const auto kb = BundledKb();
  std::set<std::string> names;
  std::set<std::string> unresolved;
  for (const auto& pair : list.pairs()) {
    names.insert(pair.a());
    names.insert(pair.b());
  }
  for (const auto& name : names) {
    if (!kb->FindDrug(name).has_value()) {
      unresolved.insert(name);
    }
  }
  int resolvable = 0;
  int alerting = 0;
  std::vector<std::string> silent;
  for (const auto& pair : list.pairs()) {
    if (unresolved.count(pair.a()) > 0 || unresolved.count(pair.b()) > 0) {
      continue;
    }
    // A list can pair a drug with itself through two names (rifampin, rifampicin).
    if (*kb->FindDrug(pair.a()) == *kb->FindDrug(pair.b())) {
      continue;
    }
    ++resolvable;
    const bool both = AlertsMajor(*kb, pair.a(), pair.b()) && AlertsMajor(*kb, pair.b(), pair.a());
    if (both) {
      ++alerting;
    } else {
      silent.push_back(absl::StrCat("group ", pair.group(), ": ", pair.a(), " + ", pair.b()));
    }
  }
  const double resolved_share = 100.0 * static_cast<double>(names.size() - unresolved.size()) / static_cast<double>(names.size());
  const double alert_share = resolvable == 0 ? 0.0 : 100.0 * alerting / resolvable;
  std::cout << "ONC high-priority list: " << (names.size() - unresolved.size()) << " of " << names.size()
            << " drug names resolve (" << resolved_share << "%); " << alerting << " of " << resolvable
            << " resolvable pairs alert at major or higher in both directions (" << alert_share << "%)\n";
  for (const auto& name : unresolved) {
    std::cout << "  unresolved: " << name << "\n";
  }
  ::testing::Test::RecordProperty("onc_names_resolved_percent", std::to_string(resolved_share));
  ::testing::Test::RecordProperty("onc_pairs_alerting_percent", std::to_string(alert_share));
  EXPECT_GE(resolved_share, 95.0);
  EXPECT_EQ(alerting, resolvable) << "pairs without a major alert:\n" << absl::StrJoin(silent, "\n");
}

}  // namespace
}  // namespace vigil
