// Small helpers for early returns on absl::Status (Abseil 20220623 has no
// status_macros.h).
#ifndef VIGIL_SERVER_COMMON_STATUS_MACROS_H_
#define VIGIL_SERVER_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"

#define VIGIL_RETURN_IF_ERROR(expr)            \
  do {                                         \
    const ::absl::Status vigil_status_ = (expr); \
    if (!vigil_status_.ok()) {                 \
      return vigil_status_;                    \
    }                                          \
  } while (false)

#endif  // VIGIL_SERVER_COMMON_STATUS_MACROS_H_
