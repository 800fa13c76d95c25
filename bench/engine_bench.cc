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

#include "server/engine/screening.h"
#include "server/kb/loader.h"

// Counts heap allocations made by this program (all threads).
std::atomic<int64_t> g_allocations{0};

void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

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

// Commonly co-prescribed drugs, all in the curated base.
const std::vector<std::string>& Pool() {
  static const std::vector<std::string> pool = {
      "atorvastatin", "lisinopril",  "metformin",    "amlodipine",   "levothyroxine", "omeprazole",  "metoprolol",
      "warfarin",     "furosemide",  "sertraline",   "gabapentin",   "tramadol",      "ibuprofen",   "paracetamol",
      "prednisone",   "amoxicillin", "simvastatin",  "losartan",     "clopidogrel",   "trazodone",   "citalopram",
      "fluoxetine",   "alprazolam",  "zolpidem",     "oxycodone",    "hydrocodone",   "montelukast", "salbutamol",
      "cetirizine",   "pantoprazole", "escitalopram", "bupropion",   "duloxetine",    "venlafaxine", "quetiapine",
      "aripiprazole", "lamotrigine", "levetiracetam", "topiramate",  "carvedilol",    "diltiazem",   "verapamil",
      "digoxin",      "apixaban",    "rivaroxaban",  "insulin-glargine", "glipizide", "sitagliptin", "empagliflozin",
      "allopurinol",  "colchicine",  "methotrexate", "hydroxychloroquine", "tamsulosin", "finasteride", "sildenafil",
      "donepezil",    "memantine",   "ropinirole",   "pramipexole",  "cyclobenzaprine", "baclofen",  "tizanidine",
      "methocarbamol", "diazepam",   "lorazepam",    "clonazepam",   "temazepam",     "mirtazapine", "amitriptyline",
      "nortriptyline", "doxepin",    "hydroxyzine",  "promethazine", "diphenhydramine", "meloxicam", "naproxen",
      "diclofenac",   "celecoxib",   "spironolactone", "hydrochlorothiazide", "chlortalidone", "ramipril",
      "enalapril",    "valsartan",   "irbesartan",   "nifedipine",   "propranolol",   "atenolol",    "bisoprolol",
      "rosuvastatin", "pravastatin", "ezetimibe",    "fenofibrate",  "famotidine",    "ondansetron", "metoclopramide",
      "doxycycline",  "ciprofloxacin", "levofloxacin"};
  return pool;
}

vigil::v1::CheckMedicationsRequest Request(int current) {
  vigil::v1::CheckMedicationsRequest request;
  auto* p = request.mutable_patient();
  p->set_id("bench-patient");
  const auto& pool = Pool();
  for (int i = 0; i < current; ++i) {
    p->add_medications()->set_drug(pool[static_cast<size_t>(i) % pool.size()]);
  }
  for (const char* code : {"I10", "E11.9", "N18.30", "G35", "M54.5"}) {
    auto* c = p->add_conditions()->mutable_code();
    c->set_system("http://hl7.org/fhir/sid/icd-10-cm");
    c->set_code(code);
  }
  for (const auto& [loinc, value, unit] : std::vector<std::tuple<const char*, double, const char*>>{
           {"62238-1", 48, "mL/min/{1.73_m2}"}, {"1742-6", 30, "U/L"}, {"2164-2", 55, "mL/min"}}) {
    auto* lab = p->add_labs();
    lab->mutable_code()->set_system("http://loinc.org");
    lab->mutable_code()->set_code(loinc);
    lab->set_value(value);
    lab->set_unit(unit);
  }
  request.add_proposed_medications()->set_drug("silperisone");
  request.add_proposed_medications()->set_drug("clarithromycin");
  return request;
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
    const int64_t before = g_allocations.load(std::memory_order_relaxed);
    auto result = vigil::Screen(*kb, request.patient(), request.proposed_medications());
    allocations += g_allocations.load(std::memory_order_relaxed) - before;
    ++checks;
    alerts = result.alerts.size();
    benchmark::DoNotOptimize(result);
  }
  // What the returned result itself needs: a deep copy of it, counted once.
  const auto result = vigil::Screen(*kb, request.patient(), request.proposed_medications());
  const int64_t before = g_allocations.load(std::memory_order_relaxed);
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
  const int64_t result_allocations = g_allocations.load(std::memory_order_relaxed) - before;
  state.counters["alerts"] = static_cast<double>(alerts);
  state.counters["allocs_per_check"] = checks == 0 ? 0 : static_cast<double>(allocations) / static_cast<double>(checks);
  state.counters["allocs_in_result"] = static_cast<double>(result_allocations);
}

// Strings in `message` (recursively) too long for std::string's inline
// buffer: each needs one heap block of its own even on an arena (protobuf
// 3.21 keeps string contents on the heap).
int64_t HeapStrings(const google::protobuf::Message& message) {
  const auto* reflection = message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  int64_t count = 0;
  const std::string empty;
  for (const auto* field : fields) {
    const bool repeated = field->is_repeated();
    const int n = repeated ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < n; ++i) {
      if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
        std::string scratch;
        const std::string& value = repeated ? reflection->GetRepeatedStringReference(message, field, i, &scratch)
                                            : reflection->GetStringReference(message, field, &scratch);
        count += value.size() > std::string().capacity() ? 1 : 0;
      } else if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
        count += HeapStrings(repeated ? reflection->GetRepeatedMessage(message, field, i)
                                      : reflection->GetMessage(message, field));
      }
    }
  }
  return count;
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
    const int64_t before = g_allocations.load(std::memory_order_relaxed);
    auto* result = google::protobuf::Arena::CreateMessage<vigil::v1::CheckMedicationsResult>(&arena);
    vigil::ScreenInto(*kb, request.patient(), request.proposed_medications(), result);
    alerts = static_cast<size_t>(result->alerts_size());
    benchmark::DoNotOptimize(result);
    arena.Reset();
    allocations += g_allocations.load(std::memory_order_relaxed) - before;
    ++checks;
  }
  // What the returned result itself needs on the heap: a copy of it.
  vigil::v1::CheckMedicationsResult result;
  vigil::ScreenInto(*kb, request.patient(), request.proposed_medications(), &result);
  const int64_t before = g_allocations.load(std::memory_order_relaxed);
  {
    vigil::v1::CheckMedicationsResult copy = result;
    benchmark::DoNotOptimize(copy);
  }
  const int64_t result_allocations = g_allocations.load(std::memory_order_relaxed) - before;
  state.counters["alerts"] = static_cast<double>(alerts);
  state.counters["allocs_per_check"] = checks == 0 ? 0 : static_cast<double>(allocations) / static_cast<double>(checks);
  state.counters["allocs_in_result"] = static_cast<double>(result_allocations);
  // On the arena, the only heap blocks a check may need are its answer's
  // long strings: allocs_per_check equal to this means nothing else.
  state.counters["heap_strings_in_result"] = static_cast<double>(HeapStrings(result));
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
