#include "server/http/ui_sessions.h"

#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "openssl/crypto.h"
#include "openssl/rand.h"

namespace vigil {

std::string RandomHex(size_t bytes) {
  std::vector<unsigned char> buffer(bytes);
  if (RAND_bytes(buffer.data(), static_cast<int>(buffer.size())) != 1) {
    return "";
  }
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(buffer.data()), buffer.size()));
}

bool UiSessions::Live(const UiSession& session, absl::Time now) const {
  return now < session.created + lifetime_ && now < session.last_used + idle_;
}

void UiSessions::Purge(absl::Time now) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (!Live(it->second, now)) {
      sessions_.erase(it++);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<UiSession> UiSessions::Create(std::string token) {
  UiSession session;
  session.id = RandomHex(32);
  session.csrf = RandomHex(32);
  if (session.id.empty() || session.csrf.empty()) {
    return absl::InternalError("no random bytes for a session");
  }
  session.token = std::move(token);
  session.created = session.last_used = absl::Now();
  absl::MutexLock lock(&mu_);
  if (sessions_.size() >= max_sessions_) {
    Purge(session.created);
  }
  if (sessions_.size() >= max_sessions_) {
    return absl::ResourceExhaustedError("too many open sessions; retry later");
  }
  sessions_[session.id] = session;
  return session;
}

std::optional<UiSession> UiSessions::Find(absl::string_view id) {
  if (id.empty()) {
    return std::nullopt;
  }
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return std::nullopt;
  }
  if (!Live(it->second, now)) {
    sessions_.erase(it);
    return std::nullopt;
  }
  it->second.last_used = now;
  return it->second;
}

void UiSessions::Remove(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  sessions_.erase(std::string(id));
}

bool UiSessions::CsrfMatches(const UiSession& session, absl::string_view presented) {
  return !session.csrf.empty() && presented.size() == session.csrf.size() &&
         CRYPTO_memcmp(presented.data(), session.csrf.data(), presented.size()) == 0;
}

size_t UiSessions::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace vigil
