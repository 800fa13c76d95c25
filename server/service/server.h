// The Vigil server as one object: it builds every part from ServerOptions
// (knowledge base, store, feed, authentication, the gRPC services, the
// health-only and metrics listeners), starts them, reloads and stops them.
// vigil-server's main only parses flags into ServerOptions and waits for
// signals; tests build a Server in-process (with a store of their own, for
// fault injection).
#ifndef VIGIL_SERVER_SERVICE_SERVER_H_
#define VIGIL_SERVER_SERVICE_SERVER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/kb/loader.h"
#include "server/store/store.h"

namespace vigil {

struct ServerOptions {
  // Address of the gRPC API, HOST:PORT (port 0 picks a free port).
  std::string listen = "127.0.0.1:50051";
  // The knowledge base: curated files or folders, and bulk imports.
  KnowledgeBaseSpec kb;
  // The SQLite database of stored patients, alerts, events and the audit
  // trail (created if missing).
  std::string db = "vigil.db";
  // Opens the store instead of `db` when set (tests inject faults this way).
  std::function<absl::StatusOr<std::unique_ptr<Store>>()> open_store;
  // Most events queued for one subscriber before it is closed (it resumes).
  int subscriber_queue = 1000;

  // TLS: the server's certificate chain and key (PEM files); with a client
  // CA bundle, client certificates are required (mutual TLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Callers allowed in (see Authenticator::FromFile). Empty: development
  // mode, loopback only.
  std::string tokens_file;
  // Plaintext on a non-loopback address.
  bool allow_plaintext = false;

  // HOST:PORT of the HTTP listener for CDS Hooks (/cds-services) and FHIR
  // (/fhir/DetectedIssue), with TLS when tls_cert is given; empty: none.
  std::string http_listen;
  // The CDS Hooks issuers file (see CdsJwtVerifier::FromFile): the EHRs
  // trusted to call /cds-services. Empty: only in development mode, where
  // any caller on loopback is trusted.
  std::string cds_issuers_file;
  // The public base URL of the HTTP listener, which a CDS client's token
  // names as its audience; empty: http(s)://<http_listen>.
  std::string http_base_url;

  // HOST:PORT of the Prometheus endpoint (/metrics over HTTP); empty: none.
  std::string metrics_listen;
  // HOST:PORT of a plaintext listener serving grpc.health.v1 alone; empty:
  // none.
  std::string health_listen;
  // gRPC server reflection; nullopt: on in development mode only.
  std::optional<bool> reflection;

  // Requests a second per authenticated caller, and the burst above it
  // (0: no limit; never in development mode).
  double rate_limit = 200;
  double rate_burst = 400;
  // Failed calls a second per peer address, and the burst above it.
  double failed_call_rate = 2;
  double failed_call_burst = 20;
  // Open subscriptions in all, and per caller; checks in flight per caller
  // (0: no per-caller limit).
  int max_subscribers = 1000;
  int max_subscriptions_per_caller = 100;
  int max_checks_per_caller = 64;
  // Concurrent calls on one connection; largest request accepted.
  int max_concurrent_streams = 200;
  int max_message_bytes = 4 * 1024 * 1024;
  // How long calls in flight may take to finish on Stop.
  absl::Duration shutdown_grace = absl::Seconds(10);
};

class Server {
 public:
  // Builds and starts the server; an error names what refused it (the
  // knowledge base, the database, the tokens file, TLS, a listener), and is
  // logged as the server's structured log has it.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // Stops, if Stop was not called.
  ~Server();

  // The bound ports (useful with port 0); 0 for a listener not asked for.
  int port() const;
  int health_port() const;
  int metrics_port() const;
  int http_port() const;

  // Reloads the tokens file (a removed line revokes its token at once) and
  // the knowledge base beside the serving one; a refused reload keeps what
  // serves, and is logged.
  void Reload();

  // Graceful stop: health goes NOT_SERVING, subscribers are told to resume
  // elsewhere, calls in flight get the grace period, then the listeners
  // close. Idempotent.
  void Stop();

  struct Parts;  // Everything the server is made of (server.cc).

 private:
  explicit Server(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_SERVER_H_
