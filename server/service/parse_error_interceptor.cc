#include "server/service/parse_error_interceptor.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/descriptor.h"

namespace vigil {
namespace {

using grpc::experimental::InterceptionHookPoints;

// The full name of the method's request type ("vigil.v1.PutPatientRequest"),
// or "request" when the method is unknown.
std::string RequestTypeOf(const char* method) {
  if (method == nullptr) {
    return "request";
  }
  // "/vigil.v1.Patients/PutPatient" -> "vigil.v1.Patients.PutPatient".
  std::string name = absl::StrReplaceAll(method[0] == '/' ? method + 1 : method, {{"/", "."}});
  const auto* descriptor = google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name);
  return descriptor == nullptr ? "request" : descriptor->input_type()->full_name();
}

class ParseErrorInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit ParseErrorInterceptor(grpc::experimental::ServerRpcInfo* info) : method_(info->method()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      unparsed_ = true;
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) && unparsed_ &&
        methods->GetSendStatus().error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      methods->ModifySendStatus(UnparsedRequestError(RequestTypeOf(method_), "nothing was screened or stored"));
    }
    methods->Proceed();
  }

 private:
  const char* const method_;
  bool unparsed_ = false;
};

}  // namespace

grpc::Status UnparsedRequestError(absl::string_view request_type, absl::string_view consequence) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      absl::StrCat("request: cannot be parsed as ", request_type,
                                   ": the bytes are not that message in protobuf wire format, or one of its string "
                                   "fields is not valid UTF-8 (protobuf refuses those); ",
                                   consequence));
}

grpc::experimental::Interceptor* ParseErrorInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new ParseErrorInterceptor(info);
}

}  // namespace vigil
