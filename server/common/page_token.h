// Opaque page tokens (AIP-158): the key of the last item of a page and a
// digest of the request it answered, base64url-encoded. A page continues
// after that key in the same order, so a token survives writes and
// knowledge-base reloads; a token is refused when it is not one, or belongs
// to another request.
#ifndef VIGIL_SERVER_COMMON_PAGE_TOKEN_H_
#define VIGIL_SERVER_COMMON_PAGE_TOKEN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/common/text.h"

namespace vigil {

// A token for the page after `key` (its parts) of the request `request`
// (any text naming the request's query: only its digest travels).
inline std::string EncodePageToken(absl::string_view request, const std::vector<std::string>& key) {
  const std::string plain = absl::StrCat("v1\x1f", Sha256Hex(request).substr(0, 16), "\x1f", absl::StrJoin(key, "\x1f"));
  return absl::WebSafeBase64Escape(plain);
}

// The key parts of `token` (`parts` of them), or INVALID_ARGUMENT naming
// `field` when it is not a token of this request.
inline absl::StatusOr<std::vector<std::string>> DecodePageToken(absl::string_view token, absl::string_view request,
                                                               size_t parts, absl::string_view field) {
  std::string plain;
  if (token.size() > 4096 || !absl::WebSafeBase64Unescape(token, &plain)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": is not a token from a previous response"));
  }
  std::vector<std::string> fields = absl::StrSplit(plain, '\x1f');
  if (fields.size() != parts + 2 || fields[0] != "v1") {
    return absl::InvalidArgumentError(absl::StrCat(field, ": is not a token from a previous response"));
  }
  if (fields[1] != Sha256Hex(request).substr(0, 16)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": belongs to a request with other parameters; send the same parameters as the first page"));
  }
  return std::vector<std::string>(fields.begin() + 2, fields.end());
}

}  // namespace vigil

#endif  // VIGIL_SERVER_COMMON_PAGE_TOKEN_H_
