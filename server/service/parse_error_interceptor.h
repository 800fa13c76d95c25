// A server interceptor that turns "the request could not be parsed" into a
// clear INVALID_ARGUMENT. gRPC's callback API answers a request whose bytes
// do not parse as the method's request type with UNIMPLEMENTED and no
// message, which tells the caller the method does not exist. Protobuf refuses
// a proto3 string field that is not valid UTF-8 while parsing, so such
// requests never reach validation either.
#ifndef VIGIL_SERVER_SERVICE_PARSE_ERROR_INTERCEPTOR_H_
#define VIGIL_SERVER_SERVICE_PARSE_ERROR_INTERCEPTOR_H_

#include "grpcpp/support/server_interceptor.h"

namespace vigil {

class ParseErrorInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_PARSE_ERROR_INTERCEPTOR_H_
