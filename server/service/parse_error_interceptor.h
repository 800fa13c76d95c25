// A server interceptor that turns "the request could not be parsed" into a
// clear INVALID_ARGUMENT. gRPC's callback API answers a request whose bytes
// do not parse as the method's request type with UNIMPLEMENTED and no
// message, which tells the caller the method does not exist. Protobuf refuses
// a proto3 string field that is not valid UTF-8 while parsing, so such
// requests never reach validation either.
#ifndef VIGIL_SERVER_SERVICE_PARSE_ERROR_INTERCEPTOR_H_
#define VIGIL_SERVER_SERVICE_PARSE_ERROR_INTERCEPTOR_H_

#include "absl/strings/string_view.h"
#include "grpcpp/support/server_interceptor.h"
#include "grpcpp/support/status.h"

namespace vigil {

// The answer to a request whose bytes do not parse as `request_type`
// ("vigil.v1.SubscribeRequest"); `consequence` says what did not happen
// ("nothing was subscribed"). Also used by methods that parse their own
// request (raw methods).
grpc::Status UnparsedRequestError(absl::string_view request_type, absl::string_view consequence);

class ParseErrorInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_PARSE_ERROR_INTERCEPTOR_H_
