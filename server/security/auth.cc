#include "server/security/auth.h"

#include <openssl/crypto.h>

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/text.h"

namespace vigil {

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kEhr:
      return "ehr";
    case Role::kSubscriber:
      return "subscriber";
    case Role::kClinician:
      return "clinician";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

bool Caller::Has(Role role) const {
  for (Role r : roles) {
    if (r == role) {
      return true;
    }
  }
  return false;
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // The sizes are public (digests are all 64 hex characters).
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Authenticator::Authenticator(Authenticator&& other) noexcept {
  absl::MutexLock lock(&other.mu_);
  callers_ = std::move(other.callers_);
}

Authenticator& Authenticator::operator=(Authenticator&& other) noexcept {
  if (this != &other) {
    std::shared_ptr<const Callers> taken;
    {
      absl::MutexLock lock(&other.mu_);
      taken = std::move(other.callers_);
    }
    absl::MutexLock lock(&mu_);
    callers_ = std::move(taken);
  }
  return *this;
}

std::shared_ptr<const Authenticator::Callers> Authenticator::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return callers_;
}

bool Authenticator::development_mode() const {
  const auto callers = Snapshot();
  return callers == nullptr || callers->empty();
}

size_t Authenticator::caller_count() const {
  const auto callers = Snapshot();
  return callers == nullptr ? 0 : callers->size();
}

absl::Status Authenticator::ReplaceCallers(Authenticator other) {
  auto replacement = other.Snapshot();
  if (development_mode() || replacement == nullptr || replacement->empty()) {
    return absl::FailedPreconditionError("development mode cannot be entered or left by a reload");
  }
  absl::MutexLock lock(&mu_);
  callers_ = std::move(replacement);
  return absl::OkStatus();
}

absl::StatusOr<TokensFilePermissions> CheckTokensFilePermissions(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  }
  TokensFilePermissions permissions;
  permissions.writable_by_others = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
  permissions.world_readable = (st.st_mode & S_IROTH) != 0;
  return permissions;
}

absl::StatusOr<Authenticator> Authenticator::FromText(absl::string_view text, absl::string_view file_name) {
  Callers callers;
  // The digest of the empty token: a file holding it would let a blank
  // token in.
  const std::string empty_digest = absl::HexStringToBytes(Sha256Hex(""));
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const size_t hash = line.find('#');
    if (hash != absl::string_view::npos) {
      line = line.substr(0, hash);
    }
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) {
      continue;
    }
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat(file_name, ":", line_number, ": ");
    if (parts.size() != 3) {
      return absl::InvalidArgumentError(absl::StrCat(where, "expected 'SHA256-HEX ROLES NAME'"));
    }
    const std::string digest_hex = absl::AsciiStrToLower(parts[0]);
    if (digest_hex.size() != 64 || digest_hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where, "the first field must be a SHA-256 digest in hex (64 characters)"));
    }
    Entry entry;
    entry.digest = absl::HexStringToBytes(digest_hex);
    if (entry.digest == empty_digest) {
      return absl::InvalidArgumentError(absl::StrCat(where, "this is the digest of an empty token, which is never "
                                                            "accepted"));
    }
    entry.caller.name = std::string(parts[2]);
    for (absl::string_view role : absl::StrSplit(parts[1], ',', absl::SkipEmpty())) {
      if (role == "ehr") {
        entry.caller.roles.push_back(Role::kEhr);
      } else if (role == "subscriber") {
        entry.caller.roles.push_back(Role::kSubscriber);
      } else if (role == "clinician") {
        entry.caller.roles.push_back(Role::kClinician);
      } else if (role == "admin") {
        entry.caller.roles.push_back(Role::kAdmin);
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "unknown role '", role, "' (roles: ehr, subscriber, clinician, admin)"));
      }
    }
    if (entry.caller.roles.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "no role"));
    }
    for (const auto& other : callers) {
      if (other.digest == entry.digest) {
        return absl::InvalidArgumentError(absl::StrCat(where, "the same token digest appears twice"));
      }
    }
    callers.push_back(std::move(entry));
  }
  if (callers.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(file_name, ": no callers; remove --tokens_file for development mode"));
  }
  Authenticator auth;
  {
    absl::MutexLock lock(&auth.mu_);
    auth.callers_ = std::make_shared<const Callers>(std::move(callers));
  }
  return auth;
}

absl::StatusOr<Authenticator> Authenticator::FromFile(const std::string& path) {
  const auto permissions = CheckTokensFilePermissions(path);
  if (!permissions.ok()) {
    return permissions.status();
  }
  if (permissions->writable_by_others) {
    return absl::PermissionDeniedError(absl::StrCat(
        path, ": refused: the tokens file is writable by its group or by everyone; chmod 600 (or 640) it"));
  }
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return FromText(buffer.str(), path);
}

absl::Status Authenticator::CheckRole(const Caller& caller, Role role) {
  if (caller.Has(role)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("caller '", caller.name, "' lacks the '", RoleName(role), "' role this call needs"));
}

absl::StatusOr<Caller> Authenticator::Authenticate(absl::string_view header) const {
  const auto callers = Snapshot();
  if (callers == nullptr || callers->empty()) {
    return Caller{"development", {Role::kEhr, Role::kSubscriber, Role::kClinician, Role::kAdmin}};
  }
  constexpr absl::string_view kBearer = "Bearer ";
  const absl::string_view token =
      absl::StartsWithIgnoreCase(header, kBearer) ? absl::StripAsciiWhitespace(header.substr(kBearer.size()))
                                                  : absl::string_view();
  if (token.empty()) {
    return absl::UnauthenticatedError("a bearer token is required (metadata 'authorization: Bearer TOKEN')");
  }
  const std::string digest = absl::HexStringToBytes(Sha256Hex(token));
  const Entry* match = nullptr;
  // Compare with every entry, in constant time each, so timing does not tell
  // which entry (if any) matched.
  for (const auto& entry : *callers) {
    if (ConstantTimeEquals(entry.digest, digest)) {
      match = &entry;
    }
  }
  if (match == nullptr) {
    return absl::UnauthenticatedError("the bearer token is not valid");
  }
  return match->caller;
}

}  // namespace vigil
