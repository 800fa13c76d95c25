// CDS Hooks authentication: the JSON Web Token an EHR sends with every hook
// call (CDS Hooks 2.0, "Trusting CDS Clients"). Signed with ES384 or RS384
// only: the algorithm is checked before any verification, never "none" or an
// HMAC (a public key must never serve as a shared secret). Each issuer is
// allowed by name and verified with its own JWK set from configuration; a
// token's `jku` header is never fetched.
#ifndef VIGIL_SERVER_SECURITY_JWT_H_
#define VIGIL_SERVER_SECURITY_JWT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace vigil {

// The claims of a verified token.
struct JwtClaims {
  std::string iss;
  std::string sub;
  std::string jti;
  // The EHR's tenant claim, when sent.
  std::string tenant;
  absl::Time iat;
  absl::Time exp;
};

class CdsJwtVerifier {
 public:
  // The issuers file, JSON:
  //   {"issuers": [{"iss": "https://ehr.example.org", "jwks": {"keys": [...]}},
  //                {"iss": "https://other.example", "jwks_file": "other.jwks.json"}]}
  // `jwks_file` is relative to the issuers file's folder. Keys are EC P-384
  // ("kty": "EC", "crv": "P-384") or RSA of 2048 to 16384 bits, and must
  // pass OpenSSL's public key check (a point on the curve; for RSA, an odd
  // modulus that is not a prime power, an odd e > 1). Each may carry a
  // `kid` (unique within the issuer) and an `alg` (ES384 for EC, RS384 for
  // RSA); `use`, when present, must be "sig". Private keys, symmetric
  // ("oct") keys and other curves are refused. An error (InvalidArgument;
  // NotFound for a file that cannot be read) names the file, the issuer's
  // index and the key's. FromJson names its input "issuers JSON" and
  // resolves `jwks_file` against `base_dir` (the working folder when empty).
  static absl::StatusOr<std::unique_ptr<CdsJwtVerifier>> FromFile(const std::string& path);
  static absl::StatusOr<std::unique_ptr<CdsJwtVerifier>> FromJson(absl::string_view json,
                                                                  const std::string& base_dir = "");
  ~CdsJwtVerifier();

  // Verifies the value of an Authorization header ("Bearer <jwt>") sent to
  // `audience` (the service's URL, which `aud` must equal or list). Checks,
  // in order: the header's shape (at most 16 KiB; three strict base64url
  // segments, unpadded; JSON objects), `alg` (ES384 or RS384; a `typ` other
  // than JWT and any `crit` are refused), the issuer (`iss` in the
  // allowlist), the key (`kid`, or each key of the issuer that fits the
  // algorithm), the signature, then `sub` (required), `aud`, `exp`
  // (required; not past), `iat` (required; not in the future; exp - iat at
  // most 5 minutes, no leeway), `nbf` (when sent), `jti` (required; the
  // same jti from the same issuer, seen before and not yet expired, is a
  // replay), `tenant` (optional string). kLeeway of clock skew applies to
  // the comparisons with `now`. Only a token that passes every check uses
  // up its jti. Fails with UNAUTHENTICATED and a message ("token: ...")
  // that names the check that failed and never echoes the token.
  //
  // Replays: accepted jtis are remembered until exp + kLeeway, up to
  // 100,000 at once; when that many unexpired tokens were accepted in the
  // last few minutes, new tokens are refused (fail closed) until some
  // expire, rather than forgetting a jti that could then be replayed.
  // Thread-safe.
  absl::StatusOr<JwtClaims> Verify(absl::string_view authorization, absl::string_view audience, absl::Time now);

  static constexpr absl::Duration kLeeway = absl::Seconds(60);

  struct Impl;

 private:
  explicit CdsJwtVerifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_SECURITY_JWT_H_
