#include "client/common.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"

namespace vigil_client {

bool IsLocalTarget(std::string target) {
  for (const char* scheme : {"dns:///", "dns:", "ipv4:", "ipv6:"}) {
    if (absl::StartsWith(target, scheme)) {
      target = target.substr(std::string(scheme).size());
      break;
    }
  }
  if (absl::StartsWith(target, "unix:") || absl::StartsWith(target, "unix-abstract:")) {
    return true;
  }
  std::string host = target;
  if (absl::StartsWith(target, "[")) {
    host = target.substr(1, target.find(']') == std::string::npos ? std::string::npos : target.find(']') - 1);
  } else if (const size_t colon = target.rfind(':'); colon != std::string::npos) {
    host = target.substr(0, colon);
  }
  return host == "localhost" || absl::StartsWith(host, "127.") || host == "::1";
}

int OpenChannel(const GlobalOptions& options, std::shared_ptr<grpc::Channel>* channel) {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.ca_cert.empty() || !options.cert.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_cert.empty() && !ReadFile(options.ca_cert, &ssl.pem_root_certs)) {
      std::cerr << "error: cannot read --ca_cert " << options.ca_cert << "\n";
      return kExitUsage;
    }
    if (options.cert.empty() != options.key.empty()) {
      std::cerr << "error: --cert and --key go together\n";
      return kExitUsage;
    }
    if (!options.cert.empty() &&
        (!ReadFile(options.cert, &ssl.pem_cert_chain) || !ReadFile(options.key, &ssl.pem_private_key))) {
      std::cerr << "error: cannot read --cert or --key\n";
      return kExitUsage;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  if (!options.token.empty() && options.ca_cert.empty() && options.cert.empty() && !options.insecure &&
      !IsLocalTarget(options.server)) {
    std::cerr << "error: refusing to send a token without TLS to " << options.server
              << ": anyone on the network could read and replay it. Use --ca_cert (TLS), or --insecure on a "
                 "network you trust.\n";
    return kExitUsage;
  }
  *channel = grpc::CreateChannel(options.server, credentials);
  return kExitClean;
}

void AddAuth(grpc::ClientContext* context, const GlobalOptions& options) {
  if (!options.token.empty()) {
    context->AddMetadata("authorization", "Bearer " + options.token);
  }
}

std::chrono::system_clock::time_point Deadline(const GlobalOptions& options, int min_seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(std::max(options.timeout_seconds, min_seconds));
}

void PrepareCall(grpc::ClientContext* context, const GlobalOptions& options) {
  AddAuth(context, options);
  context->set_deadline(Deadline(options));
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) {
    return false;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return true;
}

int ExitForStatus(const grpc::Status& status) {
  std::cerr << "error: " << status.error_code() << " " << status.error_message() << "\n";
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return kExitRejected;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnavailable;
    default:
      return kExitError;
  }
}

std::string ToJson(const google::protobuf::Message& message, bool every_field) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = every_field;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

std::string Upper(std::string s) {
  for (auto& c : s) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return s;
}

std::string SeverityLabel(vigil::v1::Severity s) {
  switch (s) {
    case vigil::v1::SEVERITY_CONTRAINDICATED:
      return "CONTRAINDICATED";
    case vigil::v1::SEVERITY_MAJOR:
      return "MAJOR";
    case vigil::v1::SEVERITY_MODERATE:
      return "MODERATE";
    case vigil::v1::SEVERITY_MINOR:
      return "MINOR";
    case vigil::v1::SEVERITY_INFO:
      return "INFO";
    default:
      return "UNSPECIFIED";
  }
}

std::string KindLabel(vigil::v1::AlertKind k) {
  const std::string full = vigil::v1::AlertKind_Name(k);
  const absl::string_view name = absl::StripPrefix(full, "ALERT_KIND_");
  std::string out;
  for (char c : name) {
    out.push_back(c == '_' ? ' ' : static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

void PrintAlert(const vigil::v1::Alert& alert) {
  std::cout << SeverityLabel(alert.severity()) << "  " << KindLabel(alert.kind());
  if (!alert.drug_ids().empty()) {
    std::cout << "  [" << absl::StrJoin(alert.drug_ids(), ", ") << "]";
  }
  std::cout << "\n  " << alert.summary() << "\n";
  for (const auto& e : alert.evidence()) {
    std::cout << "  - " << e.description() << "\n";
  }
  if (!alert.detail().empty()) {
    std::cout << "  Why: " << alert.detail() << "\n";
  }
  if (!alert.recommendation().empty()) {
    std::cout << "  Do: " << alert.recommendation() << "\n";
  }
  for (const auto& s : alert.sources()) {
    std::cout << "  Source: " << s.title() << (s.url().empty() ? "" : absl::StrCat(" <", s.url(), ">")) << "\n";
  }
  std::cout << "  (alert " << alert.id() << (alert.rule_id().empty() ? "" : absl::StrCat(", rule ", alert.rule_id()))
            << ")\n";
}

void PrintKnowledgeBase(const vigil::v1::KnowledgeBase& kb) {
  std::cout << "version: " << kb.version() << "\n"
            << "serving since: " << kb.serving_since() << " (loaded in " << kb.load_millis() << " ms)\n"
            << "drugs: " << kb.drug_count() << ", classes: " << kb.class_count()
            << ", contraindications: " << kb.contraindication_count()
            << ", curated interaction rules: " << kb.curated_interaction_rule_count()
            << ", imported interactions: " << kb.imported_interaction_count() << "\n";
  for (const auto& source : kb.sources()) {
    std::cout << "  " << source.kind() << "  " << source.path() << "  " << source.sha256().substr(0, 12);
    if (source.rows() > 0) {
      std::cout << "  " << source.rows() << " rows";
    }
    std::cout << "\n";
  }
}

}  // namespace vigil_client
