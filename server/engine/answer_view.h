// The shape of a check's answer on the wire: how much of each alert it
// carries (AlertView), whether sources travel once per answer, and how a
// stream splits it into messages. Pure functions over vigil.v1 messages; the
// transports call them.
#ifndef VIGIL_SERVER_ENGINE_ANSWER_VIEW_H_
#define VIGIL_SERVER_ENGINE_ANSWER_VIEW_H_

#include <cstddef>
#include <vector>

#include "google/protobuf/arena.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/decision_support.pb.h"

namespace vigil {

// How a caller asked for its answer (CheckMedicationsRequest fields 5-7).
struct AnswerShape {
  // ALERT_VIEW_UNSPECIFIED means ALERT_VIEW_FULL.
  v1::AlertView view = v1::ALERT_VIEW_FULL;
  bool sources_by_reference = false;
  // 0 or 1: one alert per stream message (`alert`); more: `alert_batch`es.
  int max_alerts_per_message = 0;
};

// The most bytes of alerts one `alert_batch` carries, whatever the caller
// asked for (a quarter of gRPC's default 4 MiB message limit).
inline constexpr size_t kMaxAlertBatchBytes = 1 << 20;

// Applies `shape` to a screened answer, in place: the basic view clears what
// it leaves out; sources by reference list each source cited by two or more
// alerts once, in full, in `answer->sources()` (in order of first citation),
// and keep only its `id` in those alerts (a source cited once stays in full
// in its alert). The summary is left as it is.
void ApplyAnswerShape(const AnswerShape& shape, v1::CheckMedicationsUnaryResponse* answer);

// Splits a shaped answer into the messages of a CheckMedications stream, on
// `arena` (which must be `answer`'s, since the alerts change hands without a
// copy): the alerts, one per message or in batches of at most
// `shape.max_alerts_per_message` (and kMaxAlertBatchBytes), most severe
// first; then the summary, in its own message or, with batches, in the last
// batch. With sources by reference each source goes with the first message
// that cites it. `answer` is left empty.
std::vector<v1::CheckMedicationsResponse*> StreamMessagesOf(const AnswerShape& shape,
                                                             v1::CheckMedicationsUnaryResponse* answer,
                                                             google::protobuf::Arena* arena);

}  // namespace vigil

#endif  // VIGIL_SERVER_ENGINE_ANSWER_VIEW_H_
