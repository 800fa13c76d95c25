#include "server/http/gateway.h"

#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "server/common/log.h"

namespace vigil {
namespace {

// CDS Hooks clients in a browser (SMART apps, sandboxes) call across origins:
// the specification asks services to allow it. No cookies are used, so any
// origin may call with a token.
void AddCors(httplib::Response& res) {
  res.set_header("Access-Control-Allow-Origin", "*");
  res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
  res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
  res.set_header("Access-Control-Expose-Headers", "Content-Type");
}

void Send(const HttpReply& reply, httplib::Response& res) {
  res.status = reply.status;
  res.set_content(reply.body, reply.content_type.c_str());
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Content-Type-Options", "nosniff");
  AddCors(res);
}

std::string Peer(const httplib::Request& req) { return absl::StrCat(req.remote_addr, ":", req.remote_port); }

}  // namespace

struct HttpGateway::Impl {
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  int port = 0;
  bool stopped = false;
};

HttpGateway::HttpGateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpGateway::~HttpGateway() { Stop(); }

int HttpGateway::port() const { return impl_->port; }

void HttpGateway::Stop() {
  if (impl_->stopped) {
    return;
  }
  impl_->stopped = true;
  impl_->server->stop();
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
}

absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(const HttpGatewayOptions& options, CdsHooks* hooks) {
  auto impl = std::make_unique<Impl>();
  if (!options.tls_cert.empty()) {
    impl->server = std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str());
  } else {
    impl->server = std::make_unique<httplib::Server>();
  }
  httplib::Server& http = *impl->server;
  if (!http.is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("http_listen: cannot use the TLS certificate ", options.tls_cert, " and key ", options.tls_key));
  }
  http.set_payload_max_length(options.max_body_bytes);
  // A reply goes out in two writes (head, body): without TCP_NODELAY the body
  // waits for the client's delayed acknowledgement, 40 ms on Linux.
  http.set_tcp_nodelay(true);
  // EHRs keep connections open: a TLS handshake every few calls would cost
  // more than the screening.
  http.set_keep_alive_max_count(1000);
  http.set_keep_alive_timeout(60);
  http.set_read_timeout(10, 0);
  http.set_write_timeout(10, 0);
  http.Get("/cds-services", [hooks](const httplib::Request&, httplib::Response& res) { Send(hooks->Discovery(), res); });
  http.Post(R"(/cds-services/([A-Za-z0-9._-]+))", [hooks](const httplib::Request& req, httplib::Response& res) {
    Send(hooks->Call(req.matches[1].str(), req.body, req.get_header_value("Authorization"), Peer(req)), res);
  });
  http.Post(R"(/cds-services/([A-Za-z0-9._-]+)/feedback)",
            [hooks](const httplib::Request& req, httplib::Response& res) {
              Send(hooks->Feedback(req.matches[1].str(), req.body, req.get_header_value("Authorization"), Peer(req)),
                   res);
            });
  http.Get("/fhir/DetectedIssue", [hooks](const httplib::Request& req, httplib::Response& res) {
    Send(hooks->DetectedIssues(req.get_param_value("patient"), req.get_header_value("Authorization"), Peer(req)),
         res);
  });
  for (const auto& add_routes : options.routes) {
    add_routes(http);
  }
  http.Options(R"(/cds-services.*)", [](const httplib::Request&, httplib::Response& res) {
    res.status = 204;
    AddCors(res);
  });
  const size_t colon = options.listen.rfind(':');
  int wanted = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.listen.substr(colon + 1), &wanted) || wanted < 0 ||
      wanted > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("http_listen: '", options.listen, "' is not HOST:PORT"));
  }
  std::string host = options.listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  impl->port = wanted == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, wanted) ? wanted : -1);
  if (impl->port <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  impl->thread = std::thread([server = impl->server.get()] { server->listen_after_bind(); });
  LogInfo("http_listening", {{"address", absl::StrCat(host, ":", impl->port)},
                             {"port", absl::StrCat(impl->port)},
                             {"tls", options.tls_cert.empty() ? "false" : "true"}});
  return std::unique_ptr<HttpGateway>(new HttpGateway(std::move(impl)));
}

FhirFetch HttpGateway::MakeFetch(absl::Duration timeout) {
  return [timeout](const std::string& url, const std::string& authorization) -> absl::StatusOr<std::string> {
    // scheme://host[:port] and the rest.
    const size_t scheme_end = url.find("://");
    if (scheme_end == std::string::npos || (url.compare(0, scheme_end, "http") != 0 &&
                                            url.compare(0, scheme_end, "https") != 0)) {
      return absl::InvalidArgumentError("fhirServer: is not an http or https URL");
    }
    const size_t path_start = url.find('/', scheme_end + 3);
    const std::string origin = url.substr(0, path_start);
    const std::string path = path_start == std::string::npos ? "/" : url.substr(path_start);
    httplib::Client client(origin);
    client.set_tcp_nodelay(true);
    if (!client.is_valid()) {
      return absl::InvalidArgumentError("fhirServer: is not a URL Vigil can call");
    }
    const auto seconds = absl::ToInt64Seconds(timeout);
    client.set_connection_timeout(static_cast<time_t>(seconds), 0);
    client.set_read_timeout(static_cast<time_t>(seconds), 0);
    httplib::Headers headers = {{"Accept", "application/fhir+json"}};
    if (!authorization.empty()) {
      headers.emplace("Authorization", authorization);
    }
    auto result = client.Get(path.c_str(), headers);
    if (!result) {
      return absl::UnavailableError(absl::StrCat("the request failed (", httplib::to_string(result.error()), ")"));
    }
    if (result->status != 200) {
      return absl::UnavailableError(absl::StrCat("the FHIR server answered HTTP ", result->status));
    }
    return std::move(result->body);
  };
}

}  // namespace vigil
