// Per-call authentication with bearer tokens and roles.
//
// The operator's tokens file has one caller a line: the SHA-256 hex digest of
// its token, its comma-separated roles, its name; '#' starts a comment:
//
//   # digest                                                          roles            name
//   9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  ehr,subscriber   pharmacy-queue
//
// Tokens are kept only as digests, and compared in constant time.
#ifndef VIGIL_SERVER_SECURITY_AUTH_H_
#define VIGIL_SERVER_SECURITY_AUTH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vigil {

enum class Role { kEhr, kSubscriber, kClinician, kAdmin };

// The name of a role as written in the tokens file ("ehr", ...).
absl::string_view RoleName(Role role);

// Who is calling.
struct Caller {
  std::string name;
  std::vector<Role> roles;
  bool Has(Role role) const;
};

class Authenticator {
 public:
  // Development mode: no tokens; every call is allowed as "development".
  Authenticator() = default;

  // Parses a tokens file's text; InvalidArgument names the bad line.
  static absl::StatusOr<Authenticator> FromText(absl::string_view text, absl::string_view file_name);
  static absl::StatusOr<Authenticator> FromFile(const std::string& path);

  bool development_mode() const { return callers_.empty(); }
  size_t caller_count() const { return callers_.size(); }

  // Authenticates the value of an "authorization" header: UNAUTHENTICATED
  // without a valid bearer token.
  absl::StatusOr<Caller> Authenticate(absl::string_view authorization_header) const;

  // PERMISSION_DENIED, naming the caller, when `caller` lacks `role`.
  static absl::Status CheckRole(const Caller& caller, Role role);

 private:
  struct Entry {
    std::string digest;  // 32 raw bytes
    Caller caller;
  };
  std::vector<Entry> callers_;
};

// Constant-time comparison of two byte strings of equal length.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace vigil

#endif  // VIGIL_SERVER_SECURITY_AUTH_H_
