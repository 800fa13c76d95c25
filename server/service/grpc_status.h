// Converts domain errors to gRPC status (the only place that does).
#ifndef VIGIL_SERVER_SERVICE_GRPC_STATUS_H_
#define VIGIL_SERVER_SERVICE_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace vigil {

// Maps an absl::Status to a grpc::Status with the same canonical code and
// the message, truncated to a size that fits in trailers.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_GRPC_STATUS_H_
