// Text helpers shared by the knowledge base, the engine and the services.
#ifndef VIGIL_SERVER_COMMON_TEXT_H_
#define VIGIL_SERVER_COMMON_TEXT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace vigil {

// Normalises a drug or class reference for lookup: ASCII lowercase, inner
// runs of whitespace, '_' and '-' collapsed to one space, apostrophes dropped,
// surrounding whitespace trimmed. "St John's-Wort" -> "st johns wort".
std::string NormalizeName(absl::string_view name);

// NormalizeName into `out` (replacing its content), reusing its capacity.
void NormalizeNameTo(absl::string_view name, std::string* out);

// True when `text` is valid UTF-8.
bool IsValidUtf8(absl::string_view text);

// What is wrong with `id` as an identifier that people compare by eye (a
// patient id), or an empty view when nothing is: surrounding whitespace,
// control characters, and invisible format and bidirectional characters.
// Canonically equivalent spellings ("é" precomposed, or "e" and a combining
// accent) are not a problem here: ToNfc makes them one id. `id` must be
// valid UTF-8.
absl::string_view IdentifierProblem(absl::string_view id);

// `text` (valid UTF-8) in Unicode Normalization Form C, so that canonically
// equivalent spellings compare equal: "e" + U+0301 COMBINING ACUTE ACCENT
// becomes U+00E9, U+212B ANGSTROM SIGN becomes U+00C5. Text already in NFC
// (every ASCII string) comes back unchanged, after a quick check.
std::string ToNfc(absl::string_view text);

// 64-bit FNV-1a, fed piece by piece: stable across processes and platforms
// (unlike absl::Hash), used for alert ids. A copy keeps the state, so a
// common prefix is hashed once.
class Fnv1a64 {
 public:
  static constexpr uint64_t kOffsetBasis = 0xcbf29ce484222325ULL;
  explicit Fnv1a64(uint64_t seed = kOffsetBasis) : h_(seed) {}
  Fnv1a64& Update(absl::string_view piece) {
    for (char c : piece) {
      h_ = (h_ ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    }
    return *this;
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_;
};

// Fnv1a64 of `data` in one call.
inline uint64_t StableHash64(absl::string_view data, uint64_t seed = Fnv1a64::kOffsetBasis) {
  return Fnv1a64(seed).Update(data).value();
}

// SHA-256 of `data` as 64 lowercase hex characters.
std::string Sha256Hex(absl::string_view data);

}  // namespace vigil

#endif  // VIGIL_SERVER_COMMON_TEXT_H_
