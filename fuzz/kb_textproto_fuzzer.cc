// Fuzzes the knowledge-base text parser and validator with the content of
// one curated file, loaded beside the bundled base's shared foundation
// (sources, classes, condition sets) as a new monograph file would be: it can
// cite those ids, collide with them, or stand alone. Loading the whole bundled
// base for every input would cost a second; the foundation costs milliseconds.
//
// The loader must refuse a broken file with a message and never crash; a
// file it accepts must make a base the engine can screen (CheckAcceptedBase).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "fuzz/fuzz_support.h"
#include "server/kb/loader.h"

namespace {

// Bounds the engine review of an accepted base, so one input stays fast.
constexpr size_t kMaxReviewedDrugs = 40;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string>* const foundation = new std::vector<std::string>{
      VIGIL_BUNDLED_KB "/sources.textproto",
      VIGIL_BUNDLED_KB "/classes.textproto",
      VIGIL_BUNDLED_KB "/condition_sets.textproto",
  };
  std::vector<std::string> files = *foundation;
  files.push_back(vigil::fuzz::WriteScratchFile(
      "fuzzed.textproto", absl::string_view(reinterpret_cast<const char*>(data), size)));
  auto kb = vigil::LoadKnowledgeBase(files);
  if (!kb.ok()) {
    VIGIL_FUZZ_CHECK(!kb.status().message().empty(), "a refusal without a reason");
    return 0;
  }
  vigil::fuzz::CheckAcceptedBase(**kb, kMaxReviewedDrugs);
  return 0;
}
