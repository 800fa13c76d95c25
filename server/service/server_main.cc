// vigil-server: the Vigil clinical decision-support gRPC server.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/synchronization/mutex.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "httplib.h"
#include "absl/strings/numbers.h"
#include "server/common/log.h"
#include "server/common/metrics.h"
#include "server/service/metrics_interceptor.h"
#include "server/service/parse_error_interceptor.h"
#include "server/common/worker.h"
#include "server/feed/event_hub.h"
#include "server/feed/registry.h"
#include "server/kb/holder.h"
#include "server/security/auth.h"
#include "server/store/audit_log.h"
#include "server/store/sqlite_store.h"
#include "server/kb/loader.h"
#include "server/service/services.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "Address to listen on, HOST:PORT (port 0 picks a free port).");
ABSL_FLAG(std::string, kb, VIGIL_DEFAULT_KB,
          "Knowledge base: comma-separated .textproto files or folders of them.");
ABSL_FLAG(std::string, import, "",
          "Bulk interaction imports: comma-separated DDInter CSV files or folders of them. A file with any malformed "
          "row refuses the whole knowledge base.");
ABSL_FLAG(std::string, db, "vigil.db", "SQLite database file of stored patients, alerts and events (created if missing).");
ABSL_FLAG(int, subscriber_queue, 1000,
          "Most events queued for one subscriber; a subscriber further behind is closed with RESOURCE_EXHAUSTED and "
          "resumes from its last event.");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain of the server; with --tls_key, serves TLS.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of the server.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle; when set, client certificates are required and verified against it (mutual TLS).");
ABSL_FLAG(std::string, tokens_file, "",
          "Callers allowed in, one a line: SHA-256 hex of the token, comma-separated roles (ehr, subscriber, "
          "clinician, admin), name. Without it the server runs in development mode: loopback only, no tokens.");
ABSL_FLAG(bool, allow_plaintext, false,
          "Allow plaintext (no TLS) on a non-loopback address. Only on a network you trust.");
ABSL_FLAG(std::string, metrics_listen, "",
          "HOST:PORT to serve Prometheus metrics on (/metrics) over HTTP; empty: no metrics endpoint.");
ABSL_FLAG(double, rate_limit, 200,
          "Requests a second allowed per authenticated caller (token bucket); 0: no limit. Not applied in "
          "development mode.");
ABSL_FLAG(double, rate_burst, 400, "Burst of requests allowed per caller above the rate.");
ABSL_FLAG(double, failed_call_rate, 2,
          "Failed calls (no valid token, missing role) a second allowed per peer address; past it, and past "
          "--failed_call_burst, calls from that address are refused with RESOURCE_EXHAUSTED and no audit record. "
          "0: no limit.");
ABSL_FLAG(double, failed_call_burst, 20, "Burst of failed calls allowed per peer address above the rate.");
ABSL_FLAG(int, max_subscribers, 1000, "Most open alert-feed subscriptions.");
ABSL_FLAG(int, max_checks_per_caller, 64,
          "Most checks one caller (token) may have in flight at once, over all its connections, so that one "
          "caller cannot take every concurrent stream; 0: no limit. Not applied in development mode.");
ABSL_FLAG(int, max_subscriptions_per_caller, 100,
          "Most open alert-feed subscriptions of one caller (token), so that one caller cannot take every slot; "
          "0: no per-caller limit. Not applied in development mode.");
ABSL_FLAG(std::string, health_listen, "",
          "HOST:PORT of a plaintext listener that serves grpc.health.v1 and nothing else, for probes that cannot "
          "speak TLS (the Kubernetes gRPC probe); it reports the same status as the main listener. Empty: none.");
ABSL_FLAG(std::optional<bool>, reflection, std::nullopt,
          "Serve gRPC server reflection (it lists the API to anyone who can connect, without a token). Default: on "
          "in development mode, off when --tokens_file is given.");
ABSL_FLAG(int, max_concurrent_streams, 200, "Most concurrent calls on one client connection.");
ABSL_FLAG(int, max_message_bytes, 4 * 1024 * 1024, "Largest request message accepted.");
ABSL_FLAG(int, shutdown_grace_seconds, 10, "On SIGTERM/SIGINT, how long calls in flight may take to finish.");

namespace {

// Removes gRPC's server-reflection plugin from a builder. Linking the
// reflection library registers the plugin for every builder of the process;
// this option takes it off one (the health-only listener, and the main one
// unless --reflection).
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const auto& p) { return p->name() == "proto_server_reflection"; }),
                   plugins->end());
  }
};

bool IsLoopback(const std::string& address) {
  return absl::StartsWith(address, "127.") || absl::StartsWith(address, "localhost:") ||
         absl::StartsWith(address, "[::1]:");
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("vigil-server --listen=HOST:PORT --kb=PATH[,PATH...]");
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil is built with Mutex deadlock detection on, which records
  // every lock in a global graph: a debugging aid that costs each lock a
  // lookup under a global lock. The server's lock order is checked by the
  // ThreadSanitizer build (scripts/sanitize.sh) instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Everything the server creates (database, WAL, journal, audit trail) is
  // readable by its own user only.
  umask(077);

  // Block the shutdown signals before any thread starts, so that only the
  // main thread receives them (through sigwait below).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  vigil::KnowledgeBaseSpec spec;
  spec.curated = absl::StrSplit(absl::GetFlag(FLAGS_kb), ',', absl::SkipEmpty());
  spec.imports = absl::StrSplit(absl::GetFlag(FLAGS_import), ',', absl::SkipEmpty());
  auto kb = vigil::LoadKnowledgeBase(spec);
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
                  {"imported_pairs", absl::StrCat((*kb)->imported_pair_count())},
                  {"load_ms", absl::StrCat(static_cast<int64_t>((*kb)->load_millis()))}});
  vigil::KnowledgeBaseHolder holder(*std::move(kb), spec);
  vigil::Worker worker;

  auto store = vigil::SqliteStore::Open(absl::GetFlag(FLAGS_db));
  if (!store.ok()) {
    vigil::LogError("database_unavailable", {{"path", absl::GetFlag(FLAGS_db)}, {"reason", std::string(store.status().message())}});
    std::cerr << store.status().message() << std::endl;
    return 1;
  }
  vigil::EventHub::Options hub_options;
  hub_options.max_queue = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_subscriber_queue)));
  vigil::EventHub hub(store->get(), hub_options);
  if (auto st = hub.Start(); !st.ok()) {
    vigil::LogError("database_unavailable", {{"reason", std::string(st.message())}});
    return 1;
  }
  vigil::LogInfo("database_open", {{"path", absl::GetFlag(FLAGS_db)},
                                   {"schema_version", absl::StrCat((*store)->schema_version())},
                                   {"latest_event_number", absl::StrCat(hub.latest())}});
  vigil::Worker db_worker;
  vigil::PatientRegistry registry(store->get(), &holder, &hub);

  const std::string listen = absl::GetFlag(FLAGS_listen);
  vigil::Authenticator auth;
  if (!absl::GetFlag(FLAGS_tokens_file).empty()) {
    auto loaded = vigil::Authenticator::FromFile(absl::GetFlag(FLAGS_tokens_file));
    if (!loaded.ok()) {
      vigil::LogError("tokens_file_refused", {{"reason", std::string(loaded.status().message())}});
      std::cerr << loaded.status().message() << std::endl;
      return 1;
    }
    auth = *std::move(loaded);
    vigil::LogInfo("authentication", {{"callers", absl::StrCat(auth.caller_count())}});
    if (const auto permissions = vigil::CheckTokensFilePermissions(absl::GetFlag(FLAGS_tokens_file));
        permissions.ok() && permissions->world_readable) {
      vigil::LogWarning("tokens_file_world_readable",
                        {{"path", absl::GetFlag(FLAGS_tokens_file)},
                         {"message", "every user of this machine can read the token digests; chmod 600 it"}});
    }
  } else {
    if (!IsLoopback(listen)) {
      vigil::LogError("development_mode_non_loopback",
                      {{"address", listen},
                       {"message", "no --tokens_file: development mode listens on loopback only"}});
      return 1;
    }
    vigil::LogWarning("DEVELOPMENT_MODE",
                      {{"message", "NO AUTHENTICATION: no --tokens_file was given, every caller on this machine is "
                                   "allowed. Never use development mode with real patients."}});
  }
  const std::string cert_file = absl::GetFlag(FLAGS_tls_cert);
  const std::string key_file = absl::GetFlag(FLAGS_tls_key);
  const std::string client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (cert_file.empty() != key_file.empty()) {
    std::cerr << "--tls_cert and --tls_key go together" << std::endl;
    return 1;
  }
  if (!cert_file.empty()) {
    auto read = [](const std::string& path, std::string* out) {
      std::ifstream in(path);
      std::stringstream buffer;
      buffer << in.rdbuf();
      *out = buffer.str();
      return static_cast<bool>(in) && !out->empty();
    };
    grpc::SslServerCredentialsOptions options;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!read(cert_file, &pair.cert_chain) || !read(key_file, &pair.private_key)) {
      std::cerr << "cannot read --tls_cert or --tls_key" << std::endl;
      return 1;
    }
    options.pem_key_cert_pairs.push_back(pair);
    if (!client_ca_file.empty()) {
      if (!read(client_ca_file, &options.pem_root_certs)) {
        std::cerr << "cannot read --tls_client_ca" << std::endl;
        return 1;
      }
      options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(options);
    vigil::LogInfo("tls", {{"mutual", client_ca_file.empty() ? "false" : "true"}});
  } else {
    if (!client_ca_file.empty()) {
      std::cerr << "--tls_client_ca needs --tls_cert and --tls_key" << std::endl;
      return 1;
    }
    if (!IsLoopback(listen) && !absl::GetFlag(FLAGS_allow_plaintext)) {
      vigil::LogError("plaintext_non_loopback",
                      {{"address", listen}, {"message", "refusing plaintext on a non-loopback address without TLS; "
                                                        "give --tls_cert/--tls_key or --allow_plaintext"}});
      return 1;
    }
    credentials = grpc::InsecureServerCredentials();
    if (!IsLoopback(listen) && !auth.development_mode()) {
      vigil::LogWarning("TOKENS_OVER_PLAINTEXT",
                        {{"address", listen},
                         {"message", "bearer tokens will cross the network unencrypted: anyone on the path can read "
                                     "and replay them; serve TLS (--tls_cert/--tls_key)"}});
    }
  }

  vigil::AuditLog audit(store->get());
  vigil::ServiceDeps deps;
  deps.kb = &holder;
  deps.registry = &registry;
  deps.hub = &hub;
  deps.db_worker = &db_worker;
  deps.admin_worker = &worker;
  deps.auth = &auth;
  deps.audit = &audit;
  deps.store = store->get();
  vigil::Metrics metrics;
  deps.metrics = &metrics;
  vigil::RateLimiter rate_limiter(absl::GetFlag(FLAGS_rate_limit), absl::GetFlag(FLAGS_rate_burst));
  // Rates are per authenticated caller; development mode has one caller.
  deps.rate_limiter = auth.development_mode() ? nullptr : &rate_limiter;
  vigil::RateLimiter failure_limiter(absl::GetFlag(FLAGS_failed_call_rate), absl::GetFlag(FLAGS_failed_call_burst));
  deps.failure_limiter = &failure_limiter;
  deps.max_subscribers = static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_max_subscribers)));
  vigil::CallerSlots subscription_slots(
      static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_max_subscriptions_per_caller))), "subscriptions");
  deps.subscription_slots = auth.development_mode() ? nullptr : &subscription_slots;
  vigil::CallerSlots check_slots(static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_max_checks_per_caller))),
                                 "checks in flight");
  deps.check_slots = auth.development_mode() ? nullptr : &check_slots;
  metrics.AddGauge("vigil_subscribers", "Open alert-feed subscriptions.",
                   [&hub] { return std::vector<std::pair<std::string, double>>{{"", static_cast<double>(hub.subscriber_count())}}; });
  metrics.AddGauge("vigil_subscriber_queued_events", "Events queued for subscribers, summed.",
                   [&hub] { return std::vector<std::pair<std::string, double>>{{"", static_cast<double>(hub.total_queued())}}; });
  metrics.AddGauge("vigil_latest_event_number", "The latest alert-feed event number.",
                   [&hub] { return std::vector<std::pair<std::string, double>>{{"", static_cast<double>(hub.latest())}}; });
  metrics.AddGauge("vigil_db_worker_queue", "Database tasks waiting.",
                   [&db_worker] { return std::vector<std::pair<std::string, double>>{{"", static_cast<double>(db_worker.queued())}}; });
  metrics.AddGauge("vigil_audit_records", "Audit records: written, failed (per attempt), dropped, pending.", [&audit] {
    return std::vector<std::pair<std::string, double>>{{"result=\"written\"", static_cast<double>(audit.written())},
                                                       {"result=\"failed\"", static_cast<double>(audit.failed())},
                                                       {"result=\"dropped\"", static_cast<double>(audit.dropped())},
                                                       {"result=\"pending\"", static_cast<double>(audit.pending())}};
  });
  metrics.AddGauge("vigil_knowledge_base_info", "The serving knowledge base (value 1), with its version.", [&holder] {
    const auto serving = holder.Get();
    return std::vector<std::pair<std::string, double>>{
        {absl::StrCat("version=\"", serving->version(), "\",drugs=\"", serving->drug_count(), "\""), 1.0}};
  });
  {
    // The methods served, for the metrics' method label: anything else is
    // counted as "unknown".
    std::vector<std::string> methods = {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
                                        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"};
    for (const char* name : {"vigil.v1.DecisionSupport", "vigil.v1.DrugCatalog", "vigil.v1.Admin", "vigil.v1.Patients",
                             "vigil.v1.AlertFeed"}) {
      const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
      for (int i = 0; service != nullptr && i < service->method_count(); ++i) {
        methods.push_back(absl::StrCat("/", name, "/", service->method(i)->name()));
      }
    }
    metrics.SetKnownMethods(methods);
  }
  vigil::DecisionSupportService decision_support(deps);
  vigil::PatientsService patients(deps);
  vigil::AlertFeedService alert_feed(deps);
  vigil::DrugCatalogService drug_catalog(deps);
  vigil::AdminService admin(deps);

  grpc::EnableDefaultHealthCheckService(true);
  // The health-only listener serves grpc.health.v1 alone.
  std::unique_ptr<grpc::Server> health_server;
  grpc::CallbackGenericService health_only_rest;
  const std::string health_listen = absl::GetFlag(FLAGS_health_listen);
  if (!health_listen.empty()) {
    grpc::ServerBuilder health_builder;
    health_builder.SetOption(std::make_unique<WithoutReflection>());
    // Every other method gets UNIMPLEMENTED from gRPC's generic service
    // (which also gives the server the callback queue it polls).
    health_builder.RegisterCallbackGenericService(&health_only_rest);
    int health_port = 0;
    health_builder.AddListeningPort(health_listen, grpc::InsecureServerCredentials(), &health_port);
    health_builder.SetMaxReceiveMessageSize(4096);
    health_server = health_builder.BuildAndStart();
    if (health_server == nullptr || health_port == 0) {
      vigil::LogError("listen_failed", {{"address", health_listen}});
      return 1;
    }
    const std::string health_host = health_listen.substr(0, health_listen.rfind(':'));
    vigil::LogInfo("health_listening",
                   {{"address", absl::StrCat(health_host, ":", health_port)}, {"port", absl::StrCat(health_port)}});
  }
  const bool reflection = absl::GetFlag(FLAGS_reflection).value_or(auth.development_mode());
  if (reflection) {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  }
  grpc::ServerBuilder builder;
  if (!reflection) {
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
  int port = 0;
  builder.AddListeningPort(listen, credentials, &port);
  builder.RegisterService(&decision_support);
  builder.RegisterService(&drug_catalog);
  builder.RegisterService(&admin);
  builder.RegisterService(&patients);
  builder.RegisterService(&alert_feed);
  builder.SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, absl::GetFlag(FLAGS_max_concurrent_streams));
  {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
    // First, so that the metrics count the status it corrects.
    interceptors.push_back(std::make_unique<vigil::ParseErrorInterceptorFactory>());
    interceptors.push_back(std::make_unique<vigil::MetricsInterceptorFactory>(&metrics));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    vigil::LogError("listen_failed", {{"address", listen}});
    return 1;
  }
  auto* health = server->GetHealthCheckService();
  // Every status goes to the health-only listener too.
  auto set_serving = [health, &health_server](const std::string& service, bool serving) {
    for (auto* h : {health, health_server == nullptr ? nullptr : health_server->GetHealthCheckService()}) {
      if (h == nullptr) {
        continue;
      }
      if (service.empty()) {
        h->SetServingStatus(serving);
      } else {
        h->SetServingStatus(service, serving);
      }
    }
  };
  set_serving("", true);
  // The database-backed services follow the database's health; checks and
  // the drug catalog keep serving without it.
  std::atomic<bool> stopping{false};
  std::thread db_monitor([&] {
    bool last = true;
    while (!stopping.load()) {
      const bool ok = (*store)->Health().ok();
      if (ok != last) {
        for (const char* service : {"vigil.v1.Patients", "vigil.v1.AlertFeed"}) {
          set_serving(service, ok);
        }
        if (ok) {
          vigil::LogInfo("database_healthy", {});
        } else {
          vigil::LogError("database_unhealthy", {{"path", absl::GetFlag(FLAGS_db)}});
        }
        last = ok;
      }
      for (int i = 0; i < 20 && !stopping.load(); ++i) {
        absl::SleepFor(absl::Milliseconds(100));
      }
    }
  });

  // Metrics over HTTP, on a port of their own.
  httplib::Server metrics_http;
  std::thread metrics_thread;
  if (const std::string metrics_listen = absl::GetFlag(FLAGS_metrics_listen); !metrics_listen.empty()) {
    const size_t colon = metrics_listen.rfind(':');
    int metrics_port = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(metrics_listen.substr(colon + 1), &metrics_port)) {
      std::cerr << "--metrics_listen must be HOST:PORT" << std::endl;
      return 1;
    }
    const std::string metrics_host = metrics_listen.substr(0, colon);
    metrics_http.Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.Render(), "text/plain; version=0.0.4");
    });
    const int bound = metrics_port == 0 ? metrics_http.bind_to_any_port(metrics_host)
                                        : (metrics_http.bind_to_port(metrics_host, metrics_port) ? metrics_port : -1);
    if (bound <= 0) {
      vigil::LogError("metrics_listen_failed", {{"address", metrics_listen}});
      return 1;
    }
    metrics_thread = std::thread([&metrics_http] { metrics_http.listen_after_bind(); });
    vigil::LogInfo("metrics_listening", {{"address", absl::StrCat(metrics_host, ":", bound)}, {"port", absl::StrCat(bound)}});
  }

  const std::string host = listen.substr(0, listen.rfind(':'));
  vigil::LogInfo("listening", {{"address", absl::StrCat(host, ":", port)}, {"port", absl::StrCat(port)}});

  int signal_number = 0;
  while (true) {
    sigwait(&signals, &signal_number);
    if (signal_number != SIGHUP) {
      break;
    }
    // SIGHUP: reload the tokens file (a removed line revokes its token at
    // once) and the knowledge base beside the serving one.
    if (!absl::GetFlag(FLAGS_tokens_file).empty()) {
      auto tokens = vigil::Authenticator::FromFile(absl::GetFlag(FLAGS_tokens_file));
      absl::Status replaced = tokens.ok() ? auth.ReplaceCallers(*std::move(tokens)) : tokens.status();
      if (replaced.ok()) {
        vigil::LogInfo("tokens_reloaded", {{"callers", absl::StrCat(auth.caller_count())}});
      } else {
        vigil::LogError("tokens_reload_refused", {{"reason", std::string(replaced.message())},
                                                  {"message", "the previous tokens stay in force"}});
      }
    }
    auto reloaded = holder.Reload();
    if (reloaded.ok()) {
      vigil::LogInfo("knowledge_base_reloaded", {{"previous_version", reloaded->previous_version},
                                                 {"version", reloaded->kb->version()},
                                                 {"trigger", "SIGHUP"}});
    } else {
      vigil::LogError("knowledge_base_reload_refused", {{"reason", std::string(reloaded.status().message())}});
    }
  }
  vigil::LogInfo("shutting_down", {{"signal", absl::StrCat(signal_number)}});
  set_serving("", false);
  stopping = true;
  db_monitor.join();
  // Subscribers are told to resume elsewhere before the listener closes.
  hub.CloseAll(absl::UnavailableError("the server is shutting down"));
  // Calls in flight get the grace period to finish. gRPC's own Shutdown
  // also waits that long for clients that merely keep a connection open,
  // so the server waits for the calls itself and then shuts down at once:
  // an idle client does not hold up a rolling restart.
  const absl::Time grace_end = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds));
  while (metrics.in_flight() > 0 && absl::Now() < grace_end) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (metrics.in_flight() > 0) {
    vigil::LogError("shutdown_grace_expired", {{"calls_in_flight", absl::StrCat(metrics.in_flight())}});
  }
  // A call that arrived meanwhile still gets a moment.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  server->Wait();
  if (health_server != nullptr) {
    health_server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    health_server->Wait();
  }
  if (metrics_thread.joinable()) {
    metrics_http.stop();
    metrics_thread.join();
  }
  vigil::LogInfo("stopped", {});
  return 0;
}
