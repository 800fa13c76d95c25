// Shared pieces of the libFuzzer targets: a scratch folder for the loaders
// (they read files only), the bundled knowledge base loaded once, and the
// properties every screening result must have whatever the input.
#ifndef VIGIL_FUZZ_FUZZ_SUPPORT_H_
#define VIGIL_FUZZ_FUZZ_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "server/engine/screening.h"
#include "server/kb/knowledge_base.h"
#include "vigil/v1/patient.pb.h"

// Aborts with a message, which libFuzzer reports as a crash and saves the
// input for: a broken invariant is as much a finding as a memory error.
#define VIGIL_FUZZ_CHECK(condition, message)                                  \
  do {                                                                        \
    if (!(condition)) {                                                       \
      ::vigil::fuzz::Fail(__FILE__, __LINE__, #condition, (message));         \
    }                                                                         \
  } while (false)

namespace vigil::fuzz {

[[noreturn]] void Fail(const char* file, int line, const char* condition, absl::string_view message);

// Writes `content` to `name` in a folder private to this process (removed at
// exit) and returns its path.
std::string WriteScratchFile(const std::string& name, absl::string_view content);

// The bundled knowledge base (data/kb), loaded on first use; aborts if it
// does not load, since every target's findings would be meaningless then.
const KnowledgeBase& BundledKb();

// Screens `proposed` for `patient` twice and checks the result: identical
// both times (screening keeps per-thread scratch memory, so state must not
// leak from one check into the next), alerts most severe first with unique
// ids, every text valid UTF-8 (gRPC refuses to send anything else), summaries
// present and under 140 bytes, and a summary that counts the alerts and names
// the base's version. Returns the result.
ScreeningResult ScreenAndCheck(const KnowledgeBase& kb, const v1::Patient& patient,
                    const google::protobuf::RepeatedPtrField<v1::MedicationOrder>& proposed);

// Checks what the catalog and the alerts rely on in a base the loader
// accepted: every drug has a unique, non-empty id that resolves to itself.
// Then reviews a current list of (up to `max_drugs` of) its drugs, named by
// id, so that whatever the loader lets through is also screenable.
void CheckAcceptedBase(const KnowledgeBase& kb, size_t max_drugs);

}  // namespace vigil::fuzz

#endif  // VIGIL_FUZZ_FUZZ_SUPPORT_H_
