// Google Benchmark of the screening engine (issue 6):
//  - a realistic check (10 current medications, 2 proposed, 5 conditions,
//    3 labs) on the curated base, and on the curated base plus DDInter;
//  - the cost as the current medication list grows from 1 to 100;
//  - heap allocations per check, against the allocations that a copy of the
//    returned alerts and summary needs (the target: none beyond those).
//
//   vigil-bench-engine [--benchmark_filter=...] [benchmark flags]
// DDInter is read from $VIGIL_SHARED_DATA/ddinter (default ../shared/data).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <memory>
#include <string>
#include <vector>

#include "bench/alloc_counter.h"
#include "bench/workload.h"
#include "server/engine/screening.h"
#include "server/kb/loader.h"

namespace {

std::shared_ptr<const vigil::KnowledgeBase> Load(bool with_ddinter) {
  vigil::KnowledgeBaseSpec spec;
  spec.curated.push_back(VIGIL_DEFAULT_KB);
  if (with_ddinter) {
    const char* shared = std::getenv("VIGIL_SHARED_DATA");
    const std::string dir = std::string(shared != nullptr ? shared : VIGIL_SHARED_DATA_DEFAULT) + "/ddinter";
    if (!std::filesystem::exists(dir)) {
      return nullptr;
    }
    spec.imports.push_back(dir);
  }
  auto kb = vigil::LoadKnowledgeBase(spec);
  return kb.ok() ? *kb : nullptr;
}

const vigil::KnowledgeBase* Curated() {
  static const auto kb = Load(false);
  return kb.get();
}

const vigil::KnowledgeBase* WithDdinter() {
  static const auto kb = Load(true);
  return kb.get();
}

vigil::v1::CheckMedicationsRequest Request(int current) {
  return vigil::bench::RealisticCheck("bench-patient", current);
}

void Check(benchmark::State& state, const vigil::KnowledgeBase* kb, int current) {
  if (kb == nullptr) {
    state.SkipWithError("knowledge base not available");
    return;
  }
  const auto request = Request(current);
  size_t alerts = 0;
  int64_t allocations = 0;
  int64_t checks = 0;
  for (auto _ : state) {
    const int64_t before = vigil::bench::Allocations();
    auto result = vigil::Screen(*kb, request.patient(), request.proposed_medications());
    allocations += vigil::bench::Allocations() - before;
    ++checks;
    alerts = result.alerts.size();
    benchmark::DoNotOptimize(result);
  }
  // What the returned result itself needs: a deep copy of it, counted once.
  const auto result = vigil::Screen(*kb, request.patient(), request.proposed_medications());
  const int64_t before = vigil::bench::Allocations();
  {
    std::vector<vigil::v1::Alert> alerts_copy;
    alerts_copy.reserve(result.alerts.size());
    for (const auto& alert : result.alerts) {
      alerts_copy.push_back(alert);
    }
    vigil::v1::CheckSummary summary_copy = result.summary;
    benchmark::DoNotOptimize(alerts_copy);
    benchmark::DoNotOptimize(summary_copy);
  }
  const int64_t result_allocations = vigil::bench::Allocations() - before;
  state.counters["alerts"] = static_cast<double>(alerts);
  state.counters["allocs_per_check"] = checks == 0 ? 0 : static_cast<double>(allocations) / static_cast<double>(checks);
  state.counters["allocs_in_result"] = static_cast<double>(result_allocations);
}

// The check as the server runs it: the result built on a protobuf arena
// whose first block is reused from call to call (the server keeps a pool of
// such arenas, see server/service/arena_pool.h).
void CheckOnArena(benchmark::State& state, const vigil::KnowledgeBase* kb, int current) {
  if (kb == nullptr) {
    state.SkipWithError("knowledge base not available");
    return;
  }
  const auto request = Request(current);
  std::vector<char> block(32 * 1024);
  google::protobuf::ArenaOptions options;
  options.initial_block = block.data();
  options.initial_block_size = block.size();
  google::protobuf::Arena arena(options);
  size_t alerts = 0;
  int64_t allocations = 0;
  int64_t checks = 0;
  for (auto _ : state) {
    const int64_t before = vigil::bench::Allocations();
    auto* result = google::protobuf::Arena::CreateMessage<vigil::v1::CheckMedicationsUnaryResponse>(&arena);
    vigil::ScreenInto(*kb, request.patient(), request.proposed_medications(), result);
    alerts = static_cast<size_t>(result->alerts_size());
    benchmark::DoNotOptimize(result);
    arena.Reset();
    allocations += vigil::bench::Allocations() - before;
    ++checks;
  }
  // What the returned result itself needs on the heap: a copy of it.
  vigil::v1::CheckMedicationsUnaryResponse result;
  vigil::ScreenInto(*kb, request.patient(), request.proposed_medications(), &result);
  const int64_t before = vigil::bench::Allocations();
  {
    vigil::v1::CheckMedicationsUnaryResponse copy = result;
    benchmark::DoNotOptimize(copy);
  }
  const int64_t result_allocations = vigil::bench::Allocations() - before;
  state.counters["alerts"] = static_cast<double>(alerts);
  state.counters["allocs_per_check"] = checks == 0 ? 0 : static_cast<double>(allocations) / static_cast<double>(checks);
  state.counters["allocs_in_result"] = static_cast<double>(result_allocations);
  // On the arena, the only heap blocks a check may need are its answer's
  // long strings: allocs_per_check equal to this means nothing else.
  state.counters["heap_strings_in_result"] = static_cast<double>(vigil::bench::HeapStrings(result));
}

void BM_RealisticCheckCurated(benchmark::State& state) { Check(state, Curated(), 10); }
void BM_RealisticCheckCuratedOnArena(benchmark::State& state) { CheckOnArena(state, Curated(), 10); }
void BM_RealisticCheckCuratedPlusDdinterOnArena(benchmark::State& state) {
  CheckOnArena(state, WithDdinter(), 10);
}
void BM_RealisticCheckCuratedPlusDdinter(benchmark::State& state) { Check(state, WithDdinter(), 10); }
void BM_CheckByCurrentMedications(benchmark::State& state) {
  CheckOnArena(state, WithDdinter(), static_cast<int>(state.range(0)));  // as the server runs it
  state.SetComplexityN(state.range(0));
}

BENCHMARK(BM_RealisticCheckCurated);
BENCHMARK(BM_RealisticCheckCuratedPlusDdinter);
BENCHMARK(BM_RealisticCheckCuratedOnArena);
BENCHMARK(BM_RealisticCheckCuratedPlusDdinterOnArena);
BENCHMARK(BM_CheckByCurrentMedications)->Arg(1)->Arg(5)->Arg(10)->Arg(25)->Arg(50)->Arg(100)->Complexity();

}  // namespace

BENCHMARK_MAIN();
