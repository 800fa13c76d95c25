#include "server/service/grpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace vigil {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) {
    return grpc::Status::OK;
  }
  constexpr size_t kMaxMessage = 4096;
  std::string message(status.message());
  if (message.size() > kMaxMessage) {
    message = absl::StrCat(message.substr(0, kMaxMessage), "...(truncated)");
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message);
}

}  // namespace vigil
