// A check allocates nothing beyond what it returns (issue 6): screened into
// a result on a protobuf arena, the only heap blocks it may take are the
// contents of its answer's long strings (protobuf 3.21 keeps those on the
// heap even on an arena). Counted exactly, so any stray temporary string in
// the engine fails this test. Its own binary: it replaces operator new.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <string>
#include <vector>

#include "google/protobuf/arena.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "gtest/gtest.h"
#include "server/engine/screening.h"
#include "server/kb/loader.h"

namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace

// The replacements below pair malloc with free, as they must; GCC cannot
// see that operator new here is ours and warns where it inlines them.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace vigil {
namespace {

// Strings of `message`, recursively, longer than std::string's inline buffer.
int64_t HeapStrings(const google::protobuf::Message& message) {
  const auto* reflection = message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  int64_t count = 0;
  for (const auto* field : fields) {
    const int n = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < n; ++i) {
      if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
        std::string scratch;
        const std::string& value = field->is_repeated()
                                       ? reflection->GetRepeatedStringReference(message, field, i, &scratch)
                                       : reflection->GetStringReference(message, field, &scratch);
        count += value.size() > std::string().capacity() ? 1 : 0;
      } else if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
        count += HeapStrings(field->is_repeated() ? reflection->GetRepeatedMessage(message, field, i)
                                                  : reflection->GetMessage(message, field));
      }
    }
  }
  return count;
}

// A patient on ten common drugs with five conditions and three labs, for
// whom silperisone and clarithromycin are proposed: interaction,
// contraindication and (with DDInter) imported-interaction alerts.
v1::CheckMedicationsRequest Realistic() {
  v1::CheckMedicationsRequest request;
  auto* p = request.mutable_patient();
  p->set_id("alloc-test");
  for (const char* drug : {"atorvastatin", "lisinopril", "metformin", "amlodipine", "levothyroxine", "omeprazole",
                           "metoprolol", "warfarin", "furosemide", "sertraline"}) {
    p->add_medications()->set_drug(drug);
  }
  for (const char* code : {"I10", "E11.9", "N18.30", "G35", "M54.5"}) {
    auto* c = p->add_conditions()->mutable_code();
    c->set_system("http://hl7.org/fhir/sid/icd-10-cm");
    c->set_code(code);
  }
  struct Lab {
    const char* loinc;
    double value;
    const char* unit;
  };
  for (const Lab& l : {Lab{"62238-1", 24, "mL/min/{1.73_m2}"}, Lab{"1742-6", 30, "U/L"}, Lab{"2164-2", 55, "mL/min"}}) {
    auto* lab = p->add_labs();
    lab->mutable_code()->set_system("http://loinc.org");
    lab->mutable_code()->set_code(l.loinc);
    lab->set_value(l.value);
    lab->set_unit(l.unit);
  }
  request.add_proposed_medications()->set_drug("silperisone");
  request.add_proposed_medications()->set_drug("clarithromycin");
  request.add_proposed_medications()->set_drug("no-such-drug");  // an unscreened-drug alert too
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
    const int64_t before = g_allocations.load();
    ScreenInto(kb, request.patient(), request.proposed_medications(), result);
    const int64_t allocations = g_allocations.load() - before;
    ASSERT_GE(result->alerts_size(), 3);
    if (round > 0) {
      EXPECT_EQ(allocations, HeapStrings(*result)) << "round " << round << ", " << result->alerts_size() << " alerts";
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
