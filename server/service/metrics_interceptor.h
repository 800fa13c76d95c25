// A server interceptor that counts every RPC by method and status code and
// times it, into Metrics.
#ifndef VIGIL_SERVER_SERVICE_METRICS_INTERCEPTOR_H_
#define VIGIL_SERVER_SERVICE_METRICS_INTERCEPTOR_H_

#include "grpcpp/support/server_interceptor.h"
#include "server/common/metrics.h"

namespace vigil {

class MetricsInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(Metrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;

 private:
  Metrics* metrics_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_METRICS_INTERCEPTOR_H_
