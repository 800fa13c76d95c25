// Vigil's HTTP listener (--http_listen): the CDS Hooks service and the FHIR
// DetectedIssue read, over TLS with the gRPC API's certificate, or plaintext
// on loopback. Only translates: every answer comes from CdsHooks.
#ifndef VIGIL_SERVER_HTTP_GATEWAY_H_
#define VIGIL_SERVER_HTTP_GATEWAY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/http/cds_hooks.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace vigil {

struct HttpGatewayOptions {
  // HOST:PORT (port 0 picks a free port).
  std::string listen;
  // TLS certificate chain and key (PEM); empty: plaintext (loopback only,
  // the caller checks).
  std::string tls_cert;
  std::string tls_key;
  // Largest request body accepted.
  size_t max_body_bytes = 4 * 1024 * 1024;
  // Timeout of a fetch from an EHR's FHIR server.
  absl::Duration fetch_timeout = absl::Seconds(5);
  // More routes on the same listener (the pharmacist's worklist under
  // /ui/), registered after the CDS Hooks ones.
  std::vector<std::function<void(httplib::Server&)>> routes;
};

class HttpGateway {
 public:
  // Binds and starts serving `hooks` (which must outlive the gateway).
  static absl::StatusOr<std::unique_ptr<HttpGateway>> Start(const HttpGatewayOptions& options, CdsHooks* hooks);
  ~HttpGateway();
  int port() const;
  void Stop();

  // The FHIR fetch the gateway gives CdsHooks: GET url with the
  // Authorization header, over http or https (the system's CA bundle).
  static FhirFetch MakeFetch(absl::Duration timeout);

  struct Impl;

 private:
  explicit HttpGateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_HTTP_GATEWAY_H_
