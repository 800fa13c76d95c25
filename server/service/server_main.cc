// vigil-server: the Vigil clinical decision-support gRPC server.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/common/log.h"
#include "server/kb/holder.h"
#include "server/kb/loader.h"
#include "server/service/services.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "Address to listen on, HOST:PORT (port 0 picks a free port).");
ABSL_FLAG(std::string, kb, VIGIL_DEFAULT_KB,
          "Knowledge base: comma-separated .textproto files or folders of them.");
ABSL_FLAG(int, shutdown_grace_seconds, 10, "On SIGTERM/SIGINT, how long calls in flight may take to finish.");

namespace {

bool IsLoopback(const std::string& address) {
  return absl::StartsWith(address, "127.") || absl::StartsWith(address, "localhost:") ||
         absl::StartsWith(address, "[::1]:");
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("vigil-server --listen=HOST:PORT --kb=PATH[,PATH...]");
  absl::ParseCommandLine(argc, argv);

  // Block the shutdown signals before any thread starts, so that only the
  // main thread receives them (through sigwait below).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::vector<std::string> kb_paths = absl::StrSplit(absl::GetFlag(FLAGS_kb), ',', absl::SkipEmpty());
  const absl::Time load_start = absl::Now();
  auto kb = vigil::LoadKnowledgeBase(kb_paths);
  if (!kb.ok()) {
    vigil::LogError("knowledge_base_refused", {{"reason", std::string(kb.status().message())}});
    std::cerr << kb.status().message() << std::endl;
    return 1;
  }
  vigil::LogInfo("knowledge_base_loaded",
                 {{"version", (*kb)->version()},
                  {"drugs", absl::StrCat((*kb)->drug_count())},
                  {"classes", absl::StrCat((*kb)->class_count())},
                  {"interaction_rules", absl::StrCat((*kb)->interactions().size())},
                  {"load_ms", absl::StrCat(absl::ToInt64Milliseconds(absl::Now() - load_start))}});
  vigil::KnowledgeBaseHolder holder(*std::move(kb));

  const std::string listen = absl::GetFlag(FLAGS_listen);
  if (!IsLoopback(listen)) {
    vigil::LogWarning("plaintext_non_loopback",
                      {{"address", listen},
                       {"message", "serving without TLS on a non-loopback address; use only on a trusted network"}});
  }

  vigil::DecisionSupportService decision_support(&holder);
  vigil::DrugCatalogService drug_catalog(&holder);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&decision_support);
  builder.RegisterService(&drug_catalog);
  builder.SetMaxReceiveMessageSize(8 * 1024 * 1024);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    vigil::LogError("listen_failed", {{"address", listen}});
    return 1;
  }
  auto* health = server->GetHealthCheckService();
  health->SetServingStatus(true);

  const std::string host = listen.substr(0, listen.rfind(':'));
  vigil::LogInfo("listening", {{"address", absl::StrCat(host, ":", port)}, {"port", absl::StrCat(port)}});

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  vigil::LogInfo("shutting_down", {{"signal", absl::StrCat(signal_number)}});
  health->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds)));
  server->Wait();
  vigil::LogInfo("stopped", {});
  return 0;
}
