// The worklist's sign-in sessions: a random id kept in an HttpOnly cookie,
// a per-session CSRF token, expiry. Server-side only: the cookie carries
// nothing but the id.
#ifndef VIGIL_SERVER_HTTP_UI_SESSIONS_H_
#define VIGIL_SERVER_HTTP_UI_SESSIONS_H_

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace vigil {

struct UiSession {
  std::string id;
  // Compared in constant time with the X-CSRF-Token header of every POST.
  std::string csrf;
  // The bearer token signed in with (re-authenticated on every request, so
  // that a token removed from the tokens file stops its sessions at once);
  // empty in development mode. Never logged, never sent back.
  std::string token;
  absl::Time created;
  absl::Time last_used;
};

class UiSessions {
 public:
  UiSessions(absl::Duration lifetime, absl::Duration idle, size_t max_sessions)
      : lifetime_(lifetime), idle_(idle), max_sessions_(max_sessions) {}

  // A new session for `token`; ResourceExhausted when the table is full of
  // live sessions, Internal when no random bytes could be had.
  absl::StatusOr<UiSession> Create(std::string token);

  // The live session with this id (and marks it used), or nullopt.
  std::optional<UiSession> Find(absl::string_view id);

  void Remove(absl::string_view id);

  // Whether `presented` is the session's CSRF token (constant time).
  static bool CsrfMatches(const UiSession& session, absl::string_view presented);

  size_t size() const;

 private:
  bool Live(const UiSession& session, absl::Time now) const;
  void Purge(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration lifetime_;
  const absl::Duration idle_;
  const size_t max_sessions_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, UiSession> sessions_ ABSL_GUARDED_BY(mu_);
};

// `bytes` random bytes from OpenSSL as lowercase hex; empty on failure.
std::string RandomHex(size_t bytes);

}  // namespace vigil

#endif  // VIGIL_SERVER_HTTP_UI_SESSIONS_H_
