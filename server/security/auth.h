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

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
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

// What a tokens file's permissions allow.
struct TokensFilePermissions {
  // Anyone but its owner could replace the tokens (group- or
  // world-writable): the file is refused.
  bool writable_by_others = false;
  // Anyone on the machine could read the digests: a warning.
  bool world_readable = false;
};

// The permissions of `path`; NotFound when it cannot be read.
absl::StatusOr<TokensFilePermissions> CheckTokensFilePermissions(const std::string& path);

class Authenticator {
 public:
  // Development mode: no tokens; every call is allowed as "development".
  Authenticator() = default;
  Authenticator(Authenticator&& other) noexcept;
  Authenticator& operator=(Authenticator&& other) noexcept;

  // Parses a tokens file's text; InvalidArgument names the bad line. A line
  // holding the digest of the empty token is refused.
  static absl::StatusOr<Authenticator> FromText(absl::string_view text, absl::string_view file_name);
  // Reads a tokens file: refused (PermissionDenied) when group- or
  // world-writable.
  static absl::StatusOr<Authenticator> FromFile(const std::string& path);

  bool development_mode() const;
  size_t caller_count() const;

  // Replaces the callers with those of `other` (a reloaded tokens file),
  // atomically for calls in flight: a removed line revokes its token for
  // every call from now on. Development mode cannot be entered or left this
  // way: FailedPrecondition.
  absl::Status ReplaceCallers(Authenticator other);

  // Authenticates the value of an "authorization" header: UNAUTHENTICATED
  // without a valid bearer token (an empty or blank token never is).
  absl::StatusOr<Caller> Authenticate(absl::string_view authorization_header) const;

  // PERMISSION_DENIED, naming the caller, when `caller` lacks `role`.
  static absl::Status CheckRole(const Caller& caller, Role role);

 private:
  struct Entry {
    std::string digest;  // 32 raw bytes
    Caller caller;
  };
  using Callers = std::vector<Entry>;

  std::shared_ptr<const Callers> Snapshot() const;

  mutable absl::Mutex mu_;
  // Null or empty: development mode.
  std::shared_ptr<const Callers> callers_ ABSL_GUARDED_BY(mu_);
};

// Constant-time comparison of two byte strings of equal length.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace vigil

#endif  // VIGIL_SERVER_SECURITY_AUTH_H_
