#include "server/security/auth.h"

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
  if (a.size() != b.size()) {
    return false;
  }
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = static_cast<unsigned char>(diff | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i])));
  }
  return diff == 0;
}

absl::StatusOr<Authenticator> Authenticator::FromText(absl::string_view text, absl::string_view file_name) {
  Authenticator auth;
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
    for (const auto& other : auth.callers_) {
      if (other.digest == entry.digest) {
        return absl::InvalidArgumentError(absl::StrCat(where, "the same token digest appears twice"));
      }
    }
    auth.callers_.push_back(std::move(entry));
  }
  if (auth.callers_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(file_name, ": no callers; remove --tokens_file for development mode"));
  }
  return auth;
}

absl::StatusOr<Authenticator> Authenticator::FromFile(const std::string& path) {
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
  if (development_mode()) {
    return Caller{"development", {Role::kEhr, Role::kSubscriber, Role::kClinician, Role::kAdmin}};
  }
  constexpr absl::string_view kBearer = "Bearer ";
  if (!absl::StartsWithIgnoreCase(header, kBearer) || header.size() == kBearer.size()) {
    return absl::UnauthenticatedError("a bearer token is required (metadata 'authorization: Bearer TOKEN')");
  }
  const std::string digest = absl::HexStringToBytes(Sha256Hex(absl::StripAsciiWhitespace(header.substr(kBearer.size()))));
  const Entry* match = nullptr;
  // Compare with every entry, in constant time each, so timing does not tell
  // which entry (if any) matched.
  for (const auto& entry : callers_) {
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
