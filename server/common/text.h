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
// control characters, invisible format and bidirectional characters, and
// combining marks (an id must be in Unicode NFC form, where an accented
// letter is one precomposed character: "é" written as "e" and a combining
// accent is refused, so two ids that look the same are never two patients).
// `id` must be valid UTF-8.
absl::string_view IdentifierProblem(absl::string_view id);

// 64-bit FNV-1a hash: stable across processes and platforms (unlike
// absl::Hash), used for alert ids.
uint64_t StableHash64(absl::string_view data, uint64_t seed = 0xcbf29ce484222325ULL);

// SHA-256 of `data` as 64 lowercase hex characters.
std::string Sha256Hex(absl::string_view data);

}  // namespace vigil

#endif  // VIGIL_SERVER_COMMON_TEXT_H_
