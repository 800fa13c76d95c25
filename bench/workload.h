// What the benchmarks and the allocation test screen: the realistic
// patient, and what they measure of an answer. Shared by bench/ and tests/.
#ifndef VIGIL_BENCH_WORKLOAD_H_
#define VIGIL_BENCH_WORKLOAD_H_

#include <cstdint>
#include <string>

#include "google/protobuf/message.h"
#include "vigil/v1/decision_support.pb.h"

namespace vigil::bench {

// A realistic check (issue 6): `current` current medications (commonly
// co-prescribed drugs of the curated base, in a fixed order, repeating past
// a hundred), 5 conditions, 3 labs (eGFR, ALT, creatinine clearance), and
// silperisone and clarithromycin proposed.
v1::CheckMedicationsRequest RealisticCheck(const std::string& patient_id, int current = 10);

// The strings of `message`, recursively, too long for std::string's inline
// buffer: each needs a heap block of its own, even on an arena (protobuf 3.21
// keeps string contents on the heap).
int64_t HeapStrings(const google::protobuf::Message& message);

}  // namespace vigil::bench

#endif  // VIGIL_BENCH_WORKLOAD_H_
