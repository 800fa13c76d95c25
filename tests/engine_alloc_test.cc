// A check allocates nothing beyond what it returns (issue 6): screened into
// a result on a protobuf arena, the only heap blocks it may take are the
// contents of its answer's long strings (protobuf 3.21 keeps those on the
// heap even on an arena). Counted exactly, so any stray temporary string in
// the engine fails this test. Its own binary: it links the allocation
// counter, which replaces operator new.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/alloc_counter.h"
#include "bench/workload.h"
#include "google/protobuf/arena.h"
#include "gtest/gtest.h"
#include "server/engine/screening.h"
#include "server/kb/loader.h"

namespace vigil {
namespace {

// The realistic check of the benchmarks, with a severe renal impairment
// (a contraindication alert) and a drug the knowledge base does not know
// (an unscreened-drug alert) added.
v1::CheckMedicationsRequest Realistic() {
  auto request = bench::RealisticCheck("alloc-test");
  request.mutable_patient()->mutable_labs(0)->set_value(24);  // eGFR
  request.add_proposed_medications()->set_drug("no-such-drug");
  return request;
}

void ExpectOnlyTheAnswersStrings(const KnowledgeBase& kb) {
  const auto request = Realistic();
  std::vector<char> block(256 * 1024);
  google::protobuf::ArenaOptions options;
  options.initial_block = block.data();
  options.initial_block_size = block.size();
  google::protobuf::Arena arena(options);
  for (int round = 0; round < 3; ++round) {  // the first one sizes the per-thread scratch
    auto* result = google::protobuf::Arena::CreateMessage<v1::CheckMedicationsResult>(&arena);
    const int64_t before = bench::Allocations();
    ScreenInto(kb, request.patient(), request.proposed_medications(), result);
    const int64_t allocations = bench::Allocations() - before;
    ASSERT_GE(result->alerts_size(), 3);
    if (round > 0) {
      EXPECT_EQ(allocations, bench::HeapStrings(*result)) << "round " << round << ", " << result->alerts_size() << " alerts";
    }
    arena.Reset();
  }
}

TEST(EngineAllocationTest, CuratedCheckAllocatesOnlyItsAnswersStrings) {
  KnowledgeBaseSpec spec;
  spec.curated.push_back(VIGIL_BUNDLED_KB);
  auto kb = LoadKnowledgeBase(spec);
  ASSERT_TRUE(kb.ok()) << kb.status();
  ExpectOnlyTheAnswersStrings(**kb);
}

TEST(EngineAllocationTest, CheckWithDdinterAllocatesOnlyItsAnswersStrings) {
  const std::string ddinter = std::string(VIGIL_SHARED_DATA) + "/ddinter";
  if (!std::filesystem::exists(ddinter)) {
    GTEST_SKIP() << "no DDInter tables at " << ddinter;
  }
  KnowledgeBaseSpec spec;
  spec.curated.push_back(VIGIL_BUNDLED_KB);
  spec.imports.push_back(ddinter);
  auto kb = LoadKnowledgeBase(spec);
  ASSERT_TRUE(kb.ok()) << kb.status();
  ExpectOnlyTheAnswersStrings(**kb);
}

}  // namespace
}  // namespace vigil
