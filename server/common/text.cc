#include "server/common/text.h"

#include <openssl/evp.h>
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>

#include <array>
#include <cstdio>

#include "absl/strings/ascii.h"

namespace vigil {

std::string NormalizeName(absl::string_view name) {
  std::string out;
  NormalizeNameTo(name, &out);
  return out;
}

void NormalizeNameTo(absl::string_view name, std::string* out_ptr) {
  std::string& out = *out_ptr;
  out.clear();
  out.reserve(name.size());
  bool pending_space = false;
  for (char c : name) {
    if (c == '\'' || c == '`') {
      continue;
    }
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '-' || c == '_') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) {
      out.push_back(' ');
      pending_space = false;
    }
    out.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
  }
}

namespace {

// Decodes the UTF-8 code point at `text[*i]` (valid UTF-8) and advances `*i`.
uint32_t NextCodePoint(absl::string_view text, size_t* i) {
  const auto c = static_cast<unsigned char>(text[*i]);
  size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
  for (size_t k = 1; k < len && *i + k < text.size(); ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(text[*i + k]) & 0x3Fu);
  }
  *i += len;
  return cp;
}

bool IsUnicodeSpace(uint32_t cp) {
  return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

bool IsControl(uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

// Invisible format characters, bidirectional controls among them.
bool IsFormat(uint32_t cp) {
  return cp == 0xAD || cp == 0x061C || cp == 0x180E || (cp >= 0x200B && cp <= 0x200F) ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF ||
         (cp >= 0xFFF9 && cp <= 0xFFFB) || (cp >= 0xE0000 && cp <= 0xE007F);
}

}  // namespace

absl::string_view IdentifierProblem(absl::string_view id) {
  size_t i = 0;
  bool first = true;
  uint32_t last = 0;
  while (i < id.size()) {
    const uint32_t cp = NextCodePoint(id, &i);
    if (IsControl(cp)) {
      return "contains a control character";
    }
    if (IsFormat(cp)) {
      return "contains an invisible format or bidirectional character";
    }
    if (first && IsUnicodeSpace(cp)) {
      return "starts with whitespace";
    }
    first = false;
    last = cp;
  }
  if (!id.empty() && IsUnicodeSpace(last)) {
    return "ends with whitespace";
  }
  return {};
}

std::string ToNfc(absl::string_view text) {
  bool ascii = true;
  for (char c : text) {
    ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  }
  if (ascii) {
    return std::string(text);
  }
  UErrorCode error = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(error);
  const icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
  if (U_FAILURE(error) || nfc->isNormalizedUTF8(piece, error) || U_FAILURE(error)) {
    // Without ICU's data (never on a packaged install) the text stays as
    // sent: IdentifierProblem still refuses the invisible characters.
    return std::string(text);
  }
  std::string out;
  icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(text.size()));
  nfc->normalizeUTF8(0, piece, sink, nullptr, error);
  return U_SUCCESS(error) ? out : std::string(text);
}

bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + len > n) {
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    // Reject overlong encodings, surrogates and values past U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string Sha256Hex(absl::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xF]);
  }
  return out;
}

}  // namespace vigil
