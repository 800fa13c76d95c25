// vigil-bench-cds-hooks: the latency of a typical CDS Hooks order-sign call
// through the HTTP gateway (--http_listen), beside the gRPC
// CheckMedicationsUnary of the same patient and the CDS Hooks handler alone,
// all in one run on the same machine.
//
//   vigil-bench-cds-hooks [--calls=5000] [--warmup=500] [--rounds=5] [--request=FILE] [--kb=DIR]
//
// The server runs in this process (vigil::Server, as vigil-server builds it:
// the bundled knowledge base, a SQLite database in a temporary folder,
// development mode on loopback, the gRPC API and the HTTP listener on free
// ports), so client and server share the machine's cores as in the other
// end-to-end benchmarks. Three workloads, one call in flight each, measured
// in alternating rounds so that drift in a noisy machine falls on all alike:
//
//   handler  CdsHooks::Call on the request body, without socket or HTTP
//            (no audit record: the handler is built without an audit log;
//            the cards it shows are remembered in a SQLite store)
//   http     POST /cds-services/vigil-order-sign over one keep-alive
//            connection (cpp-httplib, TCP_NODELAY unless --client_nodelay=false;
//            the server closes a connection after 5 requests, and the
//            client reconnects), the answer read in full
//   grpc     DecisionSupport.CheckMedicationsUnary of the same patient and
//            draft orders: the request is what the CDS Hooks handler itself
//            derives from the hook request (fhir::ParseCdsRequest), so both
//            screen exactly the same facts
//
// Prints p50, p90, p99, max and calls/s for each. Never a timed assertion:
// the exit status says only whether every call succeeded.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/fhir/cds_request.h"
#include "server/http/cds_hooks.h"
#include "server/kb/holder.h"
#include "server/kb/loader.h"
#include "server/security/auth.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"
#include "vigil/v1/decision_support.grpc.pb.h"

ABSL_FLAG(int, calls, 5000, "Measured calls per workload.");
ABSL_FLAG(int, warmup, 500, "Unmeasured calls per workload first.");
ABSL_FLAG(int, rounds, 5, "Rounds the measured calls are split into, alternating the workloads.");
ABSL_FLAG(std::string, request, VIGIL_SOURCE_DIR "/tests/data/cds-hooks/order-sign-warfarin-ibuprofen.json",
          "The CDS Hooks order-sign request to POST.");
ABSL_FLAG(std::string, kb, VIGIL_DEFAULT_KB, "The knowledge base (curated folder).");
ABSL_FLAG(bool, client_nodelay, true,
          "TCP_NODELAY on the HTTP client's socket, as curl and most HTTP clients set it. Off, cpp-httplib's client "
          "sends a request's headers and body in two writes and Nagle's algorithm holds the second until the "
          "server's delayed ACK: tens of milliseconds a call, which measures the client, not Vigil.");

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  std::vector<double> latencies_us;
  double seconds = 0;
  int64_t errors = 0;
};

double Pct(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) {
    return 0;
  }
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())));
  return sorted[i];
}

// Runs `call` (true: it succeeded) `n` times, one at a time.
Result Run(int n, const std::function<bool()>& call) {
  Result r;
  r.latencies_us.reserve(static_cast<size_t>(n));
  const auto begin = Clock::now();
  for (int i = 0; i < n; ++i) {
    const auto start = Clock::now();
    const bool ok = call();
    r.latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    if (!ok) {
      ++r.errors;
    }
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  return r;
}

void Merge(Result* into, const Result& r) {
  into->latencies_us.insert(into->latencies_us.end(), r.latencies_us.begin(), r.latencies_us.end());
  into->seconds += r.seconds;
  into->errors += r.errors;
}

void Row(const char* name, const char* what, const Result& r) {
  std::printf("%-8s %-34s %6zu %9.0f %9.1f %9.1f %9.1f %9.1f %6lld\n", name, what, r.latencies_us.size(),
              static_cast<double>(r.latencies_us.size()) / r.seconds, Pct(r.latencies_us, 0.5),
              Pct(r.latencies_us, 0.9), Pct(r.latencies_us, 0.99), r.latencies_us.empty() ? 0 : r.latencies_us.back(),
              static_cast<long long>(r.errors));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

size_t Cards(const std::string& body) {
  const auto doc = nlohmann::json::parse(body, nullptr, false);
  return doc.is_object() && doc.contains("cards") && doc["cards"].is_array() ? doc["cards"].size() : 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int calls = std::max(1, absl::GetFlag(FLAGS_calls));
  const int warmup = std::max(0, absl::GetFlag(FLAGS_warmup));
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  const std::string body = ReadFile(absl::GetFlag(FLAGS_request));
  if (body.empty()) {
    std::fprintf(stderr, "cannot read %s\n", absl::GetFlag(FLAGS_request).c_str());
    return 1;
  }

  // The equivalent gRPC request: the patient and draft orders the hook
  // request carries, as the handler reads them.
  auto parsed = vigil::fhir::ParseCdsRequest(body);
  if (!parsed.ok()) {
    std::fprintf(stderr, "the request is refused: %s\n", std::string(parsed.status().message()).c_str());
    return 1;
  }
  if (!parsed->missing_prefetch.empty()) {
    std::fprintf(stderr, "the request lacks prefetch keys: the benchmark needs a complete prefetch\n");
    return 1;
  }
  vigil::v1::CheckMedicationsUnaryRequest unary;
  *unary.mutable_patient() = parsed->patient;
  for (const auto& order : parsed->draft_orders) {
    *unary.add_proposed_medications() = order;
  }

  // The server, in this process.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrCat("vigil-bench-cds-hooks-", getpid());
  std::filesystem::create_directories(dir);
  vigil::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.kb.curated.push_back(absl::GetFlag(FLAGS_kb));
  options.db = (dir / "bench.db").string();
  options.http_listen = "127.0.0.1:0";
  auto server = vigil::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "the server did not start: %s\n", std::string(server.status().message()).c_str());
    std::filesystem::remove_all(dir);
    return 1;
  }

  // The handler alone: a CdsHooks of its own on the same base (development
  // mode, no audit log, no registry: order-sign needs neither) and a SQLite
  // store of its own, where it remembers the cards it shows.
  auto kb = vigil::LoadKnowledgeBase(options.kb);
  if (!kb.ok()) {
    std::fprintf(stderr, "the knowledge base did not load: %s\n", std::string(kb.status().message()).c_str());
    return 1;
  }
  auto handler_store = vigil::SqliteStore::Open((dir / "handler.db").string());
  if (!handler_store.ok()) {
    std::fprintf(stderr, "the handler's store did not open: %s\n",
                 std::string(handler_store.status().message()).c_str());
    return 1;
  }
  vigil::KnowledgeBaseHolder holder(*kb, options.kb);
  const vigil::Authenticator development;
  vigil::CdsHooks handler(vigil::CdsHooksOptions{}, &holder, nullptr, handler_store->get(), nullptr, &development,
                          nullptr, vigil::FhirFetch());

  httplib::Client http("127.0.0.1", (*server)->http_port());
  http.set_keep_alive(true);
  http.set_tcp_nodelay(absl::GetFlag(FLAGS_client_nodelay));
  http.set_read_timeout(30, 0);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials());
  auto stub = vigil::v1::DecisionSupport::NewStub(channel);

  size_t http_bytes = 0;
  size_t http_cards = 0;
  auto run_handler = [&](int n) {
    return Run(n, [&] { return handler.Call("vigil-order-sign", body, "", "bench").status == 200; });
  };
  auto run_http = [&](int n) {
    return Run(n, [&] {
      auto res = http.Post("/cds-services/vigil-order-sign", body, "application/json");
      if (!res || res->status != 200) {
        return false;
      }
      http_bytes = res->body.size();
      return true;
    });
  };
  size_t grpc_bytes = 0;
  int grpc_alerts = 0;
  auto run_grpc = [&](int n) {
    return Run(n, [&] {
      grpc::ClientContext context;
      vigil::v1::CheckMedicationsUnaryResponse response;
      const grpc::Status status = stub->CheckMedicationsUnary(&context, unary, &response);
      grpc_bytes = response.ByteSizeLong();
      grpc_alerts = response.alerts_size();
      return status.ok();
    });
  };

  // What each answers, once.
  const vigil::HttpReply first = handler.Call("vigil-order-sign", body, "", "bench");
  if (first.status != 200) {
    std::fprintf(stderr, "the handler answered %d: %s\n", first.status, first.body.c_str());
    return 1;
  }
  if (auto res = http.Post("/cds-services/vigil-order-sign", body, "application/json"); res && res->status == 200) {
    http_cards = Cards(res->body);
  }

  const Result warm_handler = run_handler(warmup);
  const Result warm_http = run_http(warmup);
  const Result warm_grpc = run_grpc(warmup);
  Result handler_r;
  Result http_r;
  Result grpc_r;
  for (int round = 0; round < rounds; ++round) {
    const int n = calls / rounds + (round < calls % rounds ? 1 : 0);
    if (round % 2 == 0) {
      Merge(&handler_r, run_handler(n));
      Merge(&http_r, run_http(n));
      Merge(&grpc_r, run_grpc(n));
    } else {
      Merge(&grpc_r, run_grpc(n));
      Merge(&http_r, run_http(n));
      Merge(&handler_r, run_handler(n));
    }
  }
  for (Result* r : {&handler_r, &http_r, &grpc_r}) {
    std::sort(r->latencies_us.begin(), r->latencies_us.end());
  }

  std::printf("%d calls per workload after %d warm-up calls, one in flight, %d alternating rounds; server in process; "
              "HTTP client TCP_NODELAY %s\n",
              calls, warmup, rounds, absl::GetFlag(FLAGS_client_nodelay) ? "on" : "off");
  std::printf("request %s: %zu bytes of JSON; order-sign answers %zu bytes, %zu cards; "
              "CheckMedicationsUnary: request %zu bytes, answer %zu bytes, %d alerts\n",
              std::filesystem::path(absl::GetFlag(FLAGS_request)).filename().c_str(), body.size(), http_bytes,
              http_cards, unary.ByteSizeLong(), grpc_bytes, grpc_alerts);
  std::printf("%-8s %-34s %6s %9s %9s %9s %9s %9s %6s\n", "workload", "what", "calls", "calls/s", "p50 us", "p90 us",
              "p99 us", "max us", "errors");
  Row("handler", "CdsHooks::Call (no socket)", handler_r);
  Row("http", "POST /cds-services/vigil-order-sign", http_r);
  Row("grpc", "CheckMedicationsUnary", grpc_r);
  std::printf("ratio http/grpc: p50 %.2f  p99 %.2f\n", Pct(http_r.latencies_us, 0.5) / Pct(grpc_r.latencies_us, 0.5),
              Pct(http_r.latencies_us, 0.99) / Pct(grpc_r.latencies_us, 0.99));

  const int64_t errors = warm_handler.errors + warm_http.errors + warm_grpc.errors + handler_r.errors +
                         http_r.errors + grpc_r.errors;
  (*server)->Stop();
  server->reset();
  std::filesystem::remove_all(dir);
  return errors == 0 ? 0 : 1;
}
