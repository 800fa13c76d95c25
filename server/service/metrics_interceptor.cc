#include "server/service/metrics_interceptor.h"

#include <chrono>
#include <string>

#include "absl/status/status.h"

namespace vigil {
namespace {

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(Metrics* metrics, grpc::experimental::ServerRpcInfo* info)
      : metrics_(metrics), method_(info->method() == nullptr ? "unknown" : info->method()),
        start_(std::chrono::steady_clock::now()) {
    metrics_->CallStarted();
  }
  // gRPC destroys a call's interceptors when the call is over.
  ~MetricsInterceptor() override { metrics_->CallEnded(); }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const auto code = static_cast<absl::StatusCode>(methods->GetSendStatus().error_code());
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics_->ObserveRpc(method_, absl::StatusCodeToString(code), seconds);
    }
    methods->Proceed();
  }

 private:
  Metrics* metrics_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

grpc::experimental::Interceptor* MetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new MetricsInterceptor(metrics_, info);
}

}  // namespace vigil
