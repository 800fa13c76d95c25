#include "server/store/store.h"

namespace vigil {

v1::AlertEvent Tombstone(const v1::AlertEvent& event) {
  v1::AlertEvent out;
  out.set_type(event.type());
  out.set_patient_id(event.patient_id());
  *out.mutable_event_time() = event.event_time();
  out.mutable_alert()->set_id(event.alert().id());
  out.mutable_alert()->set_kind(event.alert().kind());
  out.mutable_alert()->set_severity(event.alert().severity());
  out.set_erased(true);
  return out;
}

}  // namespace vigil
