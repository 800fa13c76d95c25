// Fuzzes PutPatient as the service and the registry run it, with arbitrary
// request bytes: parse, the patient id and patient validation, and for a
// valid patient the review of its whole current context against the bundled
// knowledge base (loaded once) and the fingerprint of every alert raised.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "server/api/validation.h"
#include "server/feed/registry.h"
#include "vigil/v1/patients.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const vigil::KnowledgeBase& kb = vigil::fuzz::BundledKb();
  vigil::v1::PutPatientRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) {
    return -1;  // gRPC would refuse the bytes before Vigil sees them.
  }
  // The same order of checks as PatientsService::PutPatient.
  absl::Status status = request.has_patient() ? vigil::ValidatePatientId(request.patient().id(), "patient.id")
                                              : absl::InvalidArgumentError("patient: is required");
  if (status.ok()) {
    status = vigil::ValidatePatient(request.patient(), "patient");
  }
  if (!status.ok()) {
    VIGIL_FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument && !status.message().empty(),
                     status.ToString());
    return 0;
  }
  // PatientRegistry::PutPatient: the current list reviewed as a whole.
  const google::protobuf::RepeatedPtrField<vigil::v1::MedicationOrder> none;
  const vigil::ScreeningResult result = vigil::fuzz::ScreenAndCheck(kb, request.patient(), none);
  for (const auto& alert : result.alerts) {
    VIGIL_FUZZ_CHECK(!vigil::PatientRegistry::Fingerprint(alert).empty(), alert.id());
  }
  return 0;
}
