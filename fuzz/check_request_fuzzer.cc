// Fuzzes CheckMedications as the service runs it, with arbitrary request
// bytes: parse, ValidateCheckRequest, and for a valid request Screen against
// the bundled knowledge base (loaded once). Validation must turn every bad
// request away with a message naming the field; whatever it lets through the
// engine must screen without failing, with a well-formed result.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "server/api/validation.h"
#include "vigil/v1/decision_support.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const vigil::KnowledgeBase& kb = vigil::fuzz::BundledKb();
  vigil::v1::CheckMedicationsRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) {
    return -1;  // gRPC would refuse the bytes before Vigil sees them.
  }
  if (const absl::Status status = vigil::ValidateCheckRequest(request); !status.ok()) {
    VIGIL_FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument && !status.message().empty(),
                     status.ToString());
    return 0;
  }
  if (request.has_patient()) {
    vigil::fuzz::ScreenAndCheck(kb, request.patient(), request.proposed_medications());
  } else {
    // A check against a stored patient (patient_id): the stored context was
    // validated when it was put, which put_patient_fuzzer covers; here the
    // proposed medications are screened for a patient with only that id.
    vigil::v1::Patient stored;
    stored.set_id(request.patient_id());
    vigil::fuzz::ScreenAndCheck(kb, stored, request.proposed_medications());
  }
  return 0;
}
