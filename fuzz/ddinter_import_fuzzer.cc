// Fuzzes the DDInter CSV importer: one CSV file imported beside a small
// curated base whose drugs carry DDInter names, synonyms and brands, so rows
// both map onto curated drugs and create import-only ones. A malformed file
// must be refused whole with a reason; an accepted import must leave a base
// whose drug ids are unique and resolvable, and that the engine can screen.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "fuzz/fuzz_support.h"
#include "server/kb/loader.h"

namespace {

constexpr size_t kMaxReviewedDrugs = 40;

// Curated drugs named as DDInter names them (and one only by a synonym), a
// class and a curated rule, so that curated rules win over imported ones for
// some pairs.
constexpr char kCuratedBase[] = R"pb(
sources { id: "fuzz-source" title: "Fuzzing fixture" }
classes { id: "integrase-inhibitors" name: "Integrase inhibitors" sources: "fuzz-source" }
drugs { id: "dolutegravir" name: "Dolutegravir" brand_names: "Tivicay" classes: "integrase-inhibitors"
        sources: "fuzz-source" interaction_review: INTERACTION_REVIEW_REVIEWED }
drugs { id: "abacavir" name: "Abacavir" sources: "fuzz-source" }
drugs { id: "iron" name: "Ferrous sulfate" synonyms: "Iron" sources: "fuzz-source" }
drugs { id: "naltrexone" name: "Naltrexone" synonyms: "Naltrexone hydrochloride" sources: "fuzz-source" }
interactions { id: "dolutegravir-iron" a { drug: "dolutegravir" } b { drug: "iron" } severity: SEVERITY_MAJOR
               summary: "Iron lowers dolutegravir absorption." management: "Separate the doses."
               sources: "fuzz-source" }
)pb";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string* const curated =
      new std::string(vigil::fuzz::WriteScratchFile("curated.textproto", kCuratedBase));
  const std::string csv = vigil::fuzz::WriteScratchFile(
      "ddinter_fuzzed.csv", absl::string_view(reinterpret_cast<const char*>(data), size));
  auto kb = vigil::LoadKnowledgeBase(vigil::KnowledgeBaseSpec{{*curated}, {csv}});
  if (!kb.ok()) {
    VIGIL_FUZZ_CHECK(!kb.status().message().empty(), "a refusal without a reason");
    return 0;
  }
  vigil::fuzz::CheckAcceptedBase(**kb, kMaxReviewedDrugs);
  return 0;
}
