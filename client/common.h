// What every command of the `vigil` client shares: exit codes, the global
// options, the channel and its credentials, auth and deadlines, and printing.
#ifndef VIGIL_CLIENT_COMMON_H_
#define VIGIL_CLIENT_COMMON_H_

#include <chrono>
#include <memory>
#include <string>

#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/drug_catalog.pb.h"

namespace vigil_client {

// Exit codes, meant for scripts.
constexpr int kExitClean = 0;       // screened completely, no alerts (or: done)
constexpr int kExitAlerts = 1;      // alerts, none major or worse
constexpr int kExitMajor = 2;       // at least one major or contraindicated alert
constexpr int kExitIncomplete = 3;  // screening incomplete, nothing major
constexpr int kExitUsage = 64;      // usage error
constexpr int kExitRejected = 65;   // request rejected (INVALID_ARGUMENT)
constexpr int kExitNotFound = 66;   // not found
constexpr int kExitUnavailable = 69;  // server unavailable or deadline exceeded
constexpr int kExitError = 70;      // any other error

// The options every command takes (before or after the command's name).
struct GlobalOptions {
  std::string server = "127.0.0.1:50051";
  bool json = false;
  int timeout_seconds = 10;
  std::string ca_cert;
  std::string cert;
  std::string key;
  std::string token;
  bool insecure = false;
};

// Opens the channel to `options.server` with the credentials the options ask
// for. Returns kExitClean, or kExitUsage (with a message on stderr) when the
// TLS files cannot be read or a token would go in clear to another machine.
int OpenChannel(const GlobalOptions& options, std::shared_ptr<grpc::Channel>* channel);

// Whether `target` (HOST:PORT, or a gRPC target URI) is this machine: a
// token sent there in clear does not cross a network.
bool IsLocalTarget(std::string target);

// Adds the bearer token, if any, to a call.
void AddAuth(grpc::ClientContext* context, const GlobalOptions& options);

// The deadline of a call started now: --timeout seconds, at least
// `min_seconds`.
std::chrono::system_clock::time_point Deadline(const GlobalOptions& options, int min_seconds = 0);

// A call context with the token and the deadline set.
void PrepareCall(grpc::ClientContext* context, const GlobalOptions& options);

bool ReadFile(const std::string& path, std::string* out);

// Prints the status on stderr and returns its exit code.
int ExitForStatus(const grpc::Status& status);

// `every_field`: print fields that hold their default too (an audit export
// shows "outcome":"OK" rather than leaving it out).
std::string ToJson(const google::protobuf::Message& message, bool every_field = false);

std::string Upper(std::string s);
std::string SeverityLabel(vigil::v1::Severity s);
std::string KindLabel(vigil::v1::AlertKind k);
void PrintAlert(const vigil::v1::Alert& alert);
void PrintKnowledgeBase(const vigil::v1::KnowledgeBase& kb);

}  // namespace vigil_client

#endif  // VIGIL_CLIENT_COMMON_H_
