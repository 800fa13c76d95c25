#include "server/service/server.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "httplib.h"
#include "server/http/cds_hooks.h"
#include "server/http/gateway.h"
#include "server/http/ui.h"
#include "server/security/jwt.h"
#include "server/common/log.h"
#include "server/common/metrics.h"
#include "server/common/worker.h"
#include "server/feed/event_hub.h"
#include "server/feed/registry.h"
#include "server/kb/holder.h"
#include "server/security/auth.h"
#include "server/security/rate_limiter.h"
#include "server/service/metrics_interceptor.h"
#include "server/service/parse_error_interceptor.h"
#include "server/service/services.h"
#include "server/store/audit_log.h"
#include "server/store/open_store.h"

namespace vigil {
namespace {

// Removes gRPC's server-reflection plugin from a builder. Linking the
// reflection library registers the plugin for every builder of the process;
// this option takes it off one (the health-only listener, and the main one
// unless reflection is on).
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

// Logs `event` with `reason` and returns `status` (what Start answers).
absl::Status Refused(absl::string_view event, absl::Status status,
                     std::vector<std::pair<std::string, std::string>> fields = {}) {
  fields.emplace_back("reason", std::string(status.message()));
  LogError(event, fields);
  return status;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return static_cast<bool>(in) && !out->empty();
}

std::vector<std::pair<std::string, double>> One(double value) { return {{"", value}}; }

}  // namespace

struct Server::Parts {
  ServerOptions options;
  std::unique_ptr<KnowledgeBaseHolder> kb;
  Worker admin_worker;
  std::unique_ptr<Store> store;
  std::unique_ptr<EventHub> hub;
  Worker db_worker;
  std::unique_ptr<PatientRegistry> registry;
  Authenticator auth;
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::unique_ptr<AuditLog> audit;
  Metrics metrics;
  std::unique_ptr<RateLimiter> rate_limiter;
  std::unique_ptr<RateLimiter> failure_limiter;
  std::unique_ptr<CallerSlots> subscription_slots;
  std::unique_ptr<CallerSlots> check_slots;
  std::unique_ptr<DecisionSupportService> decision_support;
  std::unique_ptr<PatientsService> patients;
  std::unique_ptr<AlertFeedService> alert_feed;
  std::unique_ptr<DrugCatalogService> drug_catalog;
  std::unique_ptr<AdminService> admin;
  grpc::CallbackGenericService health_only_rest;
  std::unique_ptr<grpc::Server> health_server;
  int health_port = 0;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::atomic<bool> stopping{false};
  bool stopped = false;
  std::thread db_monitor;
  // Publishes the events other replicas commit to the shared store.
  std::thread store_follower;
  httplib::Server metrics_http;
  std::thread metrics_thread;
  int metrics_port = 0;
  std::unique_ptr<CdsJwtVerifier> cds_jwt;
  std::unique_ptr<CdsHooks> cds_hooks;
  // The pharmacist's worklist under /ui/ (outlives the gateway).
  std::unique_ptr<Ui> ui;
  std::unique_ptr<HttpGateway> http_gateway;

  absl::Status LoadKnowledgeBaseAndStore();
  absl::Status Authenticate();
  absl::Status Credentials();
  void Assemble();
  void AddGauges();
  absl::Status StartHealthListener();
  absl::Status StartGrpc();
  void SetServing(const std::string& service, bool serving);
  void MonitorDatabase();
  void FollowStore();
  absl::Status StartMetricsListener();
  absl::Status StartHttpListener();
};

absl::Status Server::Parts::LoadKnowledgeBaseAndStore() {
  auto loaded = LoadKnowledgeBase(options.kb);
  if (!loaded.ok()) {
    return Refused("knowledge_base_refused", loaded.status());
  }
  const auto& base = **loaded;
  LogInfo("knowledge_base_loaded", {{"version", base.version()},
                                    {"drugs", absl::StrCat(base.drug_count())},
                                    {"classes", absl::StrCat(base.class_count())},
                                    {"interaction_rules", absl::StrCat(base.interactions().size())},
                                    {"imported_pairs", absl::StrCat(base.imported_pair_count())},
                                    {"load_ms", absl::StrCat(static_cast<int64_t>(base.load_millis()))}});
  kb = std::make_unique<KnowledgeBaseHolder>(*std::move(loaded), options.kb);
  std::string schema = "external";
  if (options.open_store) {
    auto opened = options.open_store();
    if (!opened.ok()) {
      return Refused("database_unavailable", opened.status());
    }
    store = *std::move(opened);
  } else {
    // An SQLite file, or a PostgreSQL URI shared by several replicas.
    auto opened = OpenStore(options.db);
    if (!opened.ok()) {
      return Refused("database_unavailable", opened.status(), {{"path", StoreNameForLog(options.db)}});
    }
    if (const auto version = StoreSchemaVersion(**opened); version.has_value()) {
      schema = absl::StrCat(*version);
    }
    store = *std::move(opened);
  }
  EventHub::Options hub_options;
  hub_options.max_queue = static_cast<size_t>(std::max(1, options.subscriber_queue));
  hub = std::make_unique<EventHub>(store.get(), hub_options);
  if (auto st = hub->Start(); !st.ok()) {
    return Refused("database_unavailable", st);
  }
  LogInfo("database_open",
          {{"path", StoreNameForLog(options.db)}, {"schema_version", schema}, {"latest_event_number", absl::StrCat(hub->latest())}});
  registry = std::make_unique<PatientRegistry>(store.get(), kb.get(), hub.get());
  return absl::OkStatus();
}

absl::Status Server::Parts::Authenticate() {
  if (options.tokens_file.empty()) {
    if (!IsLoopback(options.listen)) {
      LogError("development_mode_non_loopback",
               {{"address", options.listen}, {"message", "no --tokens_file: development mode listens on loopback only"}});
      return absl::FailedPreconditionError("no --tokens_file: development mode listens on loopback only");
    }
    LogWarning("DEVELOPMENT_MODE",
               {{"message", "NO AUTHENTICATION: no --tokens_file was given, every caller on this machine is "
                            "allowed. Never use development mode with real patients."}});
    return absl::OkStatus();
  }
  auto loaded = Authenticator::FromFile(options.tokens_file);
  if (!loaded.ok()) {
    return Refused("tokens_file_refused", loaded.status());
  }
  auth = *std::move(loaded);
  LogInfo("authentication", {{"callers", absl::StrCat(auth.caller_count())}});
  if (const auto permissions = CheckTokensFilePermissions(options.tokens_file);
      permissions.ok() && permissions->world_readable) {
    LogWarning("tokens_file_world_readable",
               {{"path", options.tokens_file},
                {"message", "every user of this machine can read the token digests; chmod 600 it"}});
  }
  return absl::OkStatus();
}

absl::Status Server::Parts::Credentials() {
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  if (!options.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!ReadFile(options.tls_cert, &pair.cert_chain) || !ReadFile(options.tls_key, &pair.private_key)) {
      return absl::InvalidArgumentError("cannot read --tls_cert or --tls_key");
    }
    ssl.pem_key_cert_pairs.push_back(pair);
    if (!options.tls_client_ca.empty()) {
      if (!ReadFile(options.tls_client_ca, &ssl.pem_root_certs)) {
        return absl::InvalidArgumentError("cannot read --tls_client_ca");
      }
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(ssl);
    LogInfo("tls", {{"mutual", options.tls_client_ca.empty() ? "false" : "true"}});
    return absl::OkStatus();
  }
  if (!options.tls_client_ca.empty()) {
    return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
  }
  const bool loopback = IsLoopback(options.listen);
  if (!loopback && !options.allow_plaintext) {
    LogError("plaintext_non_loopback", {{"address", options.listen},
                                        {"message", "refusing plaintext on a non-loopback address without TLS; "
                                                    "give --tls_cert/--tls_key or --allow_plaintext"}});
    return absl::FailedPreconditionError("refusing plaintext on a non-loopback address without TLS");
  }
  credentials = grpc::InsecureServerCredentials();
  if (!loopback && !auth.development_mode()) {
    LogWarning("TOKENS_OVER_PLAINTEXT",
               {{"address", options.listen},
                {"message", "bearer tokens will cross the network unencrypted: anyone on the path can read "
                            "and replay them; serve TLS (--tls_cert/--tls_key)"}});
  }
  return absl::OkStatus();
}

void Server::Parts::Assemble() {
  audit = std::make_unique<AuditLog>(store.get());
  const bool development = auth.development_mode();
  rate_limiter = std::make_unique<RateLimiter>(options.rate_limit, options.rate_burst);
  failure_limiter = std::make_unique<RateLimiter>(options.failed_call_rate, options.failed_call_burst);
  subscription_slots =
      std::make_unique<CallerSlots>(static_cast<size_t>(std::max(0, options.max_subscriptions_per_caller)), "subscriptions");
  check_slots =
      std::make_unique<CallerSlots>(static_cast<size_t>(std::max(0, options.max_checks_per_caller)), "checks in flight");
  ServiceDeps deps;
  deps.kb = kb.get();
  deps.registry = registry.get();
  deps.hub = hub.get();
  deps.db_worker = &db_worker;
  deps.admin_worker = &admin_worker;
  deps.auth = &auth;
  deps.audit = audit.get();
  deps.store = store.get();
  deps.metrics = &metrics;
  // Rates and slots are per authenticated caller; development mode has one.
  deps.rate_limiter = development ? nullptr : rate_limiter.get();
  deps.failure_limiter = failure_limiter.get();
  deps.max_subscribers = static_cast<size_t>(std::max(0, options.max_subscribers));
  deps.subscription_slots = development ? nullptr : subscription_slots.get();
  deps.check_slots = development ? nullptr : check_slots.get();
  decision_support = std::make_unique<DecisionSupportService>(deps);
  patients = std::make_unique<PatientsService>(deps);
  alert_feed = std::make_unique<AlertFeedService>(deps);
  drug_catalog = std::make_unique<DrugCatalogService>(deps);
  admin = std::make_unique<AdminService>(deps);
  AddGauges();
}

void Server::Parts::AddGauges() {
  EventHub* h = hub.get();
  metrics.AddGauge("vigil_subscribers", "Open alert-feed subscriptions.",
                   [h] { return One(static_cast<double>(h->subscriber_count())); });
  metrics.AddGauge("vigil_subscriber_queued_events", "Events queued for subscribers, summed.",
                   [h] { return One(static_cast<double>(h->total_queued())); });
  metrics.AddGauge("vigil_latest_event_number", "The latest alert-feed event number.",
                   [h] { return One(static_cast<double>(h->latest())); });
  Worker* w = &db_worker;
  metrics.AddGauge("vigil_db_worker_queue", "Database tasks waiting.",
                   [w] { return One(static_cast<double>(w->queued())); });
  AuditLog* a = audit.get();
  metrics.AddGauge("vigil_audit_records", "Audit records: written, failed (per attempt), dropped, pending.", [a] {
    return std::vector<std::pair<std::string, double>>{{"result=\"written\"", static_cast<double>(a->written())},
                                                       {"result=\"failed\"", static_cast<double>(a->failed())},
                                                       {"result=\"dropped\"", static_cast<double>(a->dropped())},
                                                       {"result=\"pending\"", static_cast<double>(a->pending())}};
  });
  KnowledgeBaseHolder* holder = kb.get();
  metrics.AddGauge("vigil_knowledge_base_info", "The serving knowledge base (value 1), with its version.", [holder] {
    const auto serving = holder->Get();
    return std::vector<std::pair<std::string, double>>{
        {absl::StrCat("version=\"", serving->version(), "\",drugs=\"", serving->drug_count(), "\""), 1.0}};
  });
  // The methods served, for the metrics' method label: anything else is
  // counted as "unknown".
  std::vector<std::string> methods = {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
                                      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"};
  for (const char* name :
       {"vigil.v1.DecisionSupport", "vigil.v1.DrugCatalog", "vigil.v1.Admin", "vigil.v1.Patients", "vigil.v1.AlertFeed"}) {
    const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    for (int i = 0; service != nullptr && i < service->method_count(); ++i) {
      methods.push_back(absl::StrCat("/", name, "/", service->method(i)->name()));
    }
  }
  metrics.SetKnownMethods(methods);
}

absl::Status Server::Parts::StartHealthListener() {
  if (options.health_listen.empty()) {
    return absl::OkStatus();
  }
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<WithoutReflection>());
  // Every other method gets UNIMPLEMENTED from gRPC's generic service (which
  // also gives the server the callback queue it polls).
  builder.RegisterCallbackGenericService(&health_only_rest);
  builder.AddListeningPort(options.health_listen, grpc::InsecureServerCredentials(), &health_port);
  builder.SetMaxReceiveMessageSize(4096);
  health_server = builder.BuildAndStart();
  if (health_server == nullptr || health_port == 0) {
    LogError("listen_failed", {{"address", options.health_listen}});
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.health_listen));
  }
  const std::string host = options.health_listen.substr(0, options.health_listen.rfind(':'));
  LogInfo("health_listening", {{"address", absl::StrCat(host, ":", health_port)}, {"port", absl::StrCat(health_port)}});
  return absl::OkStatus();
}

absl::Status Server::Parts::StartGrpc() {
  const bool reflection = options.reflection.value_or(auth.development_mode());
  if (reflection) {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  }
  grpc::ServerBuilder builder;
  if (!reflection) {
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
  builder.AddListeningPort(options.listen, credentials, &port);
  builder.RegisterService(decision_support.get());
  builder.RegisterService(drug_catalog.get());
  builder.RegisterService(admin.get());
  builder.RegisterService(patients.get());
  builder.RegisterService(alert_feed.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  // First, so that the metrics count the status it corrects.
  interceptors.push_back(std::make_unique<ParseErrorInterceptorFactory>());
  interceptors.push_back(std::make_unique<MetricsInterceptorFactory>(&metrics));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    LogError("listen_failed", {{"address", options.listen}});
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  return absl::OkStatus();
}

void Server::Parts::SetServing(const std::string& service, bool serving) {
  // Every status goes to the health-only listener too.
  for (grpc::Server* s : {server.get(), health_server.get()}) {
    auto* health = s == nullptr ? nullptr : s->GetHealthCheckService();
    if (health == nullptr) {
      continue;
    }
    if (service.empty()) {
      health->SetServingStatus(serving);
    } else {
      health->SetServingStatus(service, serving);
    }
  }
}

void Server::Parts::MonitorDatabase() {
  // The database-backed services follow the database's health; checks and
  // the drug catalog keep serving without it.
  // Named from the start, so that a probe of a store-backed service gets
  // SERVING rather than NOT_FOUND before the first outage.
  for (const char* service : {"vigil.v1.Patients", "vigil.v1.AlertFeed"}) {
    SetServing(service, true);
  }
  db_monitor = std::thread([this] {
    bool last = true;
    while (!stopping.load()) {
      const bool ok = store->Health().ok();
      if (ok != last) {
        for (const char* service : {"vigil.v1.Patients", "vigil.v1.AlertFeed"}) {
          SetServing(service, ok);
        }
        if (ok) {
          LogInfo("database_healthy", {});
        } else {
          LogError("database_unhealthy", {{"path", StoreNameForLog(options.db)}});
        }
        last = ok;
      }
      for (int i = 0; i < 20 && !stopping.load(); ++i) {
        absl::SleepFor(absl::Milliseconds(100));
      }
    }
  });
}

// With replicas sharing the store, each server publishes to its own
// subscribers the events the others commit: woken by the store's
// notification (PostgreSQL LISTEN/NOTIFY), and at least every second.
void Server::Parts::FollowStore() {
  if (!store->shared()) {
    return;
  }
  store_follower = std::thread([this] {
    bool failing = false;
    while (!stopping.load()) {
      const absl::Status waited = store->WaitForOtherWriters(absl::Seconds(1));
      const absl::Status caught_up = waited.ok() ? hub->CatchUpWithStore() : waited;
      if (!caught_up.ok() && !failing) {
        LogError("store_follow_failed", {{"reason", std::string(caught_up.message())}});
      } else if (caught_up.ok() && failing) {
        LogInfo("store_follow_recovered", {});
      }
      failing = !caught_up.ok();
      if (failing) {
        absl::SleepFor(absl::Milliseconds(200));
      }
    }
  });
}

absl::Status Server::Parts::StartMetricsListener() {
  if (options.metrics_listen.empty()) {
    return absl::OkStatus();
  }
  const size_t colon = options.metrics_listen.rfind(':');
  int wanted = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.metrics_listen.substr(colon + 1), &wanted)) {
    return absl::InvalidArgumentError("--metrics_listen must be HOST:PORT");
  }
  const std::string host = options.metrics_listen.substr(0, colon);
  metrics_http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.Render(), "text/plain; version=0.0.4");
  });
  metrics_port =
      wanted == 0 ? metrics_http.bind_to_any_port(host) : (metrics_http.bind_to_port(host, wanted) ? wanted : -1);
  if (metrics_port <= 0) {
    metrics_port = 0;
    LogError("metrics_listen_failed", {{"address", options.metrics_listen}});
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.metrics_listen));
  }
  metrics_thread = std::thread([this] { metrics_http.listen_after_bind(); });
  LogInfo("metrics_listening", {{"address", absl::StrCat(host, ":", metrics_port)}, {"port", absl::StrCat(metrics_port)}});
  return absl::OkStatus();
}

absl::Status Server::Parts::StartHttpListener() {
  if (options.http_listen.empty()) {
    return absl::OkStatus();
  }
  // Without a tokens file the FHIR read and the worklist trust every caller
  // (development mode), whatever --cds_issuers_file says of CDS clients.
  if (auth.development_mode() && !IsLoopback(options.http_listen)) {
    return Refused("development_mode_non_loopback",
                   absl::FailedPreconditionError("no --tokens_file: development mode serves --http_listen on "
                                                 "loopback only"));
  }
  if (options.tls_cert.empty() && !IsLoopback(options.http_listen) && !options.allow_plaintext) {
    return Refused("plaintext_non_loopback",
                   absl::FailedPreconditionError("refusing plaintext HTTP on a non-loopback address without TLS"));
  }
  if (!options.cds_issuers_file.empty()) {
    auto verifier = CdsJwtVerifier::FromFile(options.cds_issuers_file);
    if (!verifier.ok()) {
      return Refused("cds_issuers_file_refused", verifier.status());
    }
    cds_jwt = *std::move(verifier);
  }
  CdsHooksOptions hooks_options;
  hooks_options.base_url = options.http_base_url;
  HttpGatewayOptions gateway_options;
  gateway_options.listen = options.http_listen;
  gateway_options.tls_cert = options.tls_cert;
  gateway_options.tls_key = options.tls_key;
  cds_hooks = std::make_unique<CdsHooks>(hooks_options, kb.get(), registry.get(), store.get(), audit.get(), &auth,
                                         cds_jwt.get(), HttpGateway::MakeFetch(gateway_options.fetch_timeout));
  ui = std::make_unique<Ui>(UiOptions(), kb.get(), registry.get(), hub.get(), store.get(), audit.get(), &auth);
  gateway_options.routes.push_back([u = ui.get()](httplib::Server& http) { u->Register(http); });
  auto gateway = HttpGateway::Start(gateway_options, cds_hooks.get());
  if (!gateway.ok()) {
    return Refused("http_listen_failed", gateway.status());
  }
  http_gateway = *std::move(gateway);
  if (hooks_options.base_url.empty()) {
    // The audience a token must name: this listener as a client reaches it.
    const std::string host = options.http_listen.substr(0, options.http_listen.rfind(':'));
    cds_hooks->set_base_url(absl::StrCat(options.tls_cert.empty() ? "http://" : "https://", host, ":",
                                         http_gateway->port()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  auto parts = std::make_unique<Parts>();
  parts->options = std::move(options);
  Parts& p = *parts;
  for (auto step : {&Parts::LoadKnowledgeBaseAndStore, &Parts::Authenticate, &Parts::Credentials}) {
    if (auto st = (p.*step)(); !st.ok()) {
      return st;
    }
  }
  p.Assemble();
  grpc::EnableDefaultHealthCheckService(true);
  // A Server from here on: a failure below stops what started.
  std::unique_ptr<Server> server(new Server(std::move(parts)));
  for (auto step :
       {&Parts::StartHealthListener, &Parts::StartGrpc, &Parts::StartMetricsListener, &Parts::StartHttpListener}) {
    if (auto st = (p.*step)(); !st.ok()) {
      return st;
    }
  }
  p.SetServing("", true);
  p.MonitorDatabase();
  p.FollowStore();
  const std::string host = p.options.listen.substr(0, p.options.listen.rfind(':'));
  LogInfo("listening", {{"address", absl::StrCat(host, ":", p.port)}, {"port", absl::StrCat(p.port)}});
  return server;
}

Server::Server(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Server::~Server() { Stop(); }

int Server::port() const { return parts_->port; }
int Server::health_port() const { return parts_->health_port; }
int Server::metrics_port() const { return parts_->metrics_port; }
int Server::http_port() const { return parts_->http_gateway == nullptr ? 0 : parts_->http_gateway->port(); }

void Server::Reload() {
  Parts& p = *parts_;
  if (!p.options.tokens_file.empty()) {
    auto tokens = Authenticator::FromFile(p.options.tokens_file);
    absl::Status replaced = tokens.ok() ? p.auth.ReplaceCallers(*std::move(tokens)) : tokens.status();
    if (replaced.ok()) {
      LogInfo("tokens_reloaded", {{"callers", absl::StrCat(p.auth.caller_count())}});
    } else {
      LogError("tokens_reload_refused",
               {{"reason", std::string(replaced.message())}, {"message", "the previous tokens stay in force"}});
    }
  }
  auto reloaded = p.kb->Reload();
  if (reloaded.ok()) {
    LogInfo("knowledge_base_reloaded", {{"previous_version", reloaded->previous_version},
                                        {"version", reloaded->kb->version()},
                                        {"trigger", "SIGHUP"}});
  } else {
    LogError("knowledge_base_reload_refused", {{"reason", std::string(reloaded.status().message())}});
  }
}

void Server::Stop() {
  Parts& p = *parts_;
  if (p.stopped) {
    return;
  }
  p.stopped = true;
  p.SetServing("", false);
  p.stopping = true;
  if (p.db_monitor.joinable()) {
    p.db_monitor.join();
  }
  if (p.store_follower.joinable()) {
    p.store_follower.join();
  }
  // Subscribers are told to resume elsewhere before the listener closes.
  p.hub->CloseAll(absl::UnavailableError("the server is shutting down"));
  // Calls in flight get the grace period to finish. gRPC's own Shutdown also
  // waits that long for clients that merely keep a connection open, so the
  // server waits for the calls itself and then shuts down at once: an idle
  // client does not hold up a rolling restart.
  const absl::Time grace_end = absl::Now() + p.options.shutdown_grace;
  while (p.metrics.in_flight() > 0 && absl::Now() < grace_end) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (p.metrics.in_flight() > 0) {
    LogError("shutdown_grace_expired", {{"calls_in_flight", absl::StrCat(p.metrics.in_flight())}});
  }
  // A call that arrived meanwhile still gets a moment.
  for (grpc::Server* s : {p.server.get(), p.health_server.get()}) {
    if (s != nullptr) {
      s->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      s->Wait();
    }
  }
  if (p.ui != nullptr) {
    p.ui->Stop();  // open worklist streams end within a second
  }
  if (p.http_gateway != nullptr) {
    p.http_gateway->Stop();
  }
  if (p.metrics_thread.joinable()) {
    p.metrics_http.stop();
    p.metrics_thread.join();
  }
  LogInfo("stopped", {});
}

}  // namespace vigil
