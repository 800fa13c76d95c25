#include "server/service/grpc_status.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace vigil {
namespace {

// The field path an INVALID_ARGUMENT message of the domain starts with
// ("proposed_medications[2].drug: is empty"), or an empty view.
absl::string_view FieldPathOf(absl::string_view message) {
  const size_t colon = message.find(": ");
  if (colon == absl::string_view::npos || colon == 0) {
    return {};
  }
  const absl::string_view path = message.substr(0, colon);
  for (char c : path) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '[' && c != ']') {
      return {};
    }
  }
  return path;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) {
    return grpc::Status::OK;
  }
  constexpr size_t kMaxMessage = 4096;
  std::string message(status.message());
  if (message.size() > kMaxMessage) {
    message = absl::StrCat(message.substr(0, kMaxMessage), "...(truncated)");
  }
  const auto code = static_cast<grpc::StatusCode>(status.code());
  const absl::string_view path = FieldPathOf(message);
  if (code != grpc::StatusCode::INVALID_ARGUMENT || path.empty()) {
    return grpc::Status(code, message);
  }
  // INVALID_ARGUMENT also carries google.rpc.BadRequest, naming the field,
  // in the status details gRPC sends (grpc-status-details-bin).
  google::rpc::BadRequest bad_request;
  auto* violation = bad_request.add_field_violations();
  violation->set_field(std::string(path));
  violation->set_description(message.substr(path.size() + 2));
  google::rpc::Status details;
  details.set_code(static_cast<int32_t>(code));
  details.set_message(message);
  details.add_details()->PackFrom(bad_request);
  return grpc::Status(code, message, details.SerializeAsString());
}

}  // namespace vigil
