// vigil-server: the Vigil clinical decision-support gRPC server. main parses
// flags into ServerOptions (server/service/server.h), starts the Server and
// waits for signals: SIGHUP reloads, SIGTERM and SIGINT stop gracefully.
#include <sys/stat.h>

#include <csignal>
#include <iostream>
#include <optional>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "server/common/log.h"
#include "server/service/server.h"

namespace {
// Flag defaults are ServerOptions' own.
const vigil::ServerOptions kDefaults;
}  // namespace

ABSL_FLAG(std::string, listen, kDefaults.listen, "Address to listen on, HOST:PORT (port 0 picks a free port).");
ABSL_FLAG(std::string, kb, VIGIL_DEFAULT_KB,
          "Knowledge base: comma-separated .textproto files or folders of them.");
ABSL_FLAG(std::string, import, "",
          "Bulk interaction imports: comma-separated DDInter CSV files or folders of them. A file with any malformed "
          "row refuses the whole knowledge base.");
ABSL_FLAG(std::string, db, kDefaults.db,
          "Store of patients, alerts, events and the audit trail: an SQLite file (PATH or sqlite:PATH, created if "
          "missing), or a PostgreSQL URI that several replicas share (postgresql://USER@HOST:5432/DB?sslmode=require; "
          "better the password in ~/.pgpass or PGPASSWORD than in the URI).");
ABSL_FLAG(int, subscriber_queue, kDefaults.subscriber_queue,
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
ABSL_FLAG(std::string, http_listen, "",
          "HOST:PORT of the HTTP listener: CDS Hooks 2.0 (/cds-services) and FHIR DetectedIssue, TLS with "
          "--tls_cert/--tls_key; empty: none.");
ABSL_FLAG(std::string, cds_issuers_file, "",
          "JSON file of the EHRs trusted to call CDS Hooks (issuer and JWK set of each); without it, CDS Hooks "
          "calls are trusted only in development mode.");
ABSL_FLAG(std::string, http_base_url, "",
          "Public base URL of --http_listen (a CDS client's token names <base>/cds-services/<id> as audience); "
          "empty: http(s)://<http_listen>.");
ABSL_FLAG(double, rate_limit, kDefaults.rate_limit,
          "Requests a second allowed per authenticated caller (token bucket); 0: no limit. Not applied in "
          "development mode.");
ABSL_FLAG(double, rate_burst, kDefaults.rate_burst, "Burst of requests allowed per caller above the rate.");
ABSL_FLAG(double, failed_call_rate, kDefaults.failed_call_rate,
          "Failed calls (no valid token, missing role) a second allowed per peer address; past it, and past "
          "--failed_call_burst, calls from that address are refused with RESOURCE_EXHAUSTED and no audit record. "
          "0: no limit.");
ABSL_FLAG(double, failed_call_burst, kDefaults.failed_call_burst, "Burst of failed calls allowed per peer address above the rate.");
ABSL_FLAG(int, max_subscribers, kDefaults.max_subscribers, "Most open alert-feed subscriptions.");
ABSL_FLAG(int, max_checks_per_caller, kDefaults.max_checks_per_caller,
          "Most checks one caller (token) may have in flight at once, over all its connections, so that one "
          "caller cannot take every concurrent stream; 0: no limit. Not applied in development mode.");
ABSL_FLAG(int, max_subscriptions_per_caller, kDefaults.max_subscriptions_per_caller,
          "Most open alert-feed subscriptions of one caller (token), so that one caller cannot take every slot; "
          "0: no per-caller limit. Not applied in development mode.");
ABSL_FLAG(std::string, health_listen, "",
          "HOST:PORT of a plaintext listener that serves grpc.health.v1 and nothing else, for probes that cannot "
          "speak TLS (the Kubernetes gRPC probe); it reports the same status as the main listener. Empty: none.");
ABSL_FLAG(std::optional<bool>, reflection, std::nullopt,
          "Serve gRPC server reflection (it lists the API to anyone who can connect, without a token). Default: on "
          "in development mode, off when --tokens_file is given.");
ABSL_FLAG(int, max_concurrent_streams, kDefaults.max_concurrent_streams, "Most concurrent calls on one client connection.");
ABSL_FLAG(int, max_message_bytes, kDefaults.max_message_bytes, "Largest request message accepted.");
ABSL_FLAG(int, shutdown_grace_seconds, static_cast<int>(absl::ToInt64Seconds(kDefaults.shutdown_grace)), "On SIGTERM/SIGINT, how long calls in flight may take to finish.");

namespace {

vigil::ServerOptions OptionsFromFlags() {
  vigil::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.kb.curated = absl::StrSplit(absl::GetFlag(FLAGS_kb), ',', absl::SkipEmpty());
  options.kb.imports = absl::StrSplit(absl::GetFlag(FLAGS_import), ',', absl::SkipEmpty());
  options.db = absl::GetFlag(FLAGS_db);
  options.subscriber_queue = absl::GetFlag(FLAGS_subscriber_queue);
  options.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  options.tokens_file = absl::GetFlag(FLAGS_tokens_file);
  options.allow_plaintext = absl::GetFlag(FLAGS_allow_plaintext);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.cds_issuers_file = absl::GetFlag(FLAGS_cds_issuers_file);
  options.http_base_url = absl::GetFlag(FLAGS_http_base_url);
  options.health_listen = absl::GetFlag(FLAGS_health_listen);
  options.reflection = absl::GetFlag(FLAGS_reflection);
  options.rate_limit = absl::GetFlag(FLAGS_rate_limit);
  options.rate_burst = absl::GetFlag(FLAGS_rate_burst);
  options.failed_call_rate = absl::GetFlag(FLAGS_failed_call_rate);
  options.failed_call_burst = absl::GetFlag(FLAGS_failed_call_burst);
  options.max_subscribers = absl::GetFlag(FLAGS_max_subscribers);
  options.max_subscriptions_per_caller = absl::GetFlag(FLAGS_max_subscriptions_per_caller);
  options.max_checks_per_caller = absl::GetFlag(FLAGS_max_checks_per_caller);
  options.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.shutdown_grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds));
  return options;
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
  // Block the signals before any thread starts, so that only this thread
  // receives them (through sigwait below).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = vigil::Server::Start(OptionsFromFlags());
  if (!server.ok()) {
    std::cerr << server.status().message() << std::endl;
    return 1;
  }
  int signal_number = 0;
  while (true) {
    sigwait(&signals, &signal_number);
    if (signal_number != SIGHUP) {
      break;
    }
    (*server)->Reload();
  }
  vigil::LogInfo("shutting_down", {{"signal", absl::StrCat(signal_number)}});
  (*server)->Stop();
  return 0;
}
