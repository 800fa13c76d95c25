#include "server/security/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "server/common/text.h"

namespace vigil {
namespace {

using Json = nlohmann::json;

// A token is a few hundred bytes; anything this long is refused before it
// is decoded or parsed.
constexpr size_t kMaxTokenBytes = 16 * 1024;
// The longest lifetime (exp - iat) accepted. CDS Hooks asks for short-lived
// tokens; the leeway is not added here, since both times come from the
// issuer's own clock.
constexpr absl::Duration kMaxLifetime = absl::Minutes(5);
// Bound of the replay cache. Entries leave it when their token expires
// (exp + leeway, at most ~7 minutes after issue), so a full cache means more
// than this many accepted tokens in that window: the verifier then fails
// closed (refuses new tokens) rather than forget a jti that could be
// replayed.
constexpr size_t kMaxReplayEntries = 100000;
constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 16384;
// P-384 coordinates and the halves (r, s) of an ES384 signature.
constexpr size_t kP384Bytes = 48;
// NumericDates past 9999-12-31 are refused (and so never overflow).
constexpr int64_t kMaxNumericDate = 253402300799;

// The only algorithms accepted: each is bound to one key type, so a key can
// only ever verify the algorithm it was made for.
enum class Alg { kEs384, kRs384 };

absl::string_view AlgName(Alg alg) { return alg == Alg::kEs384 ? "ES384" : "RS384"; }

template <typename T, void (*Free)(T*)>
struct OpenSslFree {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslFree<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpenSslFree<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpenSslFree<EVP_MD_CTX, EVP_MD_CTX_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslFree<BIGNUM, BN_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, OpenSslFree<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, OpenSslFree<OSSL_PARAM, OSSL_PARAM_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, OpenSslFree<ECDSA_SIG, ECDSA_SIG_free>>;

const unsigned char* Bytes(absl::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// A verification key of an issuer.
struct VerifyKey {
  std::string kid;  // empty when the JWK has none
  Alg alg;          // the one algorithm this key verifies
  PkeyPtr pkey;
};

using IssuerKeys = absl::flat_hash_map<std::string, std::vector<VerifyKey>>;

// The error of a token check: UNAUTHENTICATED, naming the check. Never
// given any part of the token but short, vetted values.
absl::Status Refuse(absl::string_view what) { return absl::UnauthenticatedError(absl::StrCat("token: ", what)); }

// The value of a base64url character, or -1.
int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Strict base64url (RFC 7515 section 2): the URL-safe alphabet only, no
// padding, no whitespace, and the unused low bits of the last character
// zero, so that a byte string has exactly one accepted encoding.
std::optional<std::string> DecodeBase64Url(absl::string_view in) {
  if (in.size() % 4 == 1) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(in.size() / 4 * 3 + 2);
  uint32_t bits = 0;
  int bit_count = 0;
  for (char c : in) {
    const int value = Base64UrlValue(c);
    if (value < 0) {
      return std::nullopt;
    }
    bits = (bits << 6) | static_cast<uint32_t>(value);
    bit_count += 6;
    if (bit_count >= 8) {
      bit_count -= 8;
      out.push_back(static_cast<char>((bits >> bit_count) & 0xFFu));
    }
  }
  if ((bits & ((1u << bit_count) - 1u)) != 0) {
    return std::nullopt;
  }
  return out;
}

// A JSON object, or nullopt (never throws).
std::optional<Json> ParseObject(absl::string_view text) {
  Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return std::nullopt;
  }
  return json;
}

// The string member `name` of `object`, or nullptr when absent or not a
// string.
const std::string* StringMember(const Json& object, const char* name) {
  const auto it = object.find(name);
  return it != object.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

// `value` quoted when it is short and plain (letters, digits, '-', '_'),
// so that an error may name it without echoing arbitrary token content.
std::string QuoteIfPlain(absl::string_view value) {
  const bool plain = !value.empty() && value.size() <= 16 &&
                     std::all_of(value.begin(), value.end(),
                                 [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
  return plain ? absl::StrCat("\"", value, "\"") : "(not shown)";
}

// ---------------------------------------------------------------------------
// Keys: public JWKs (RFC 7517, 7518) to EVP_PKEYs.

// The base64url member `name` of a JWK, decoded.
absl::StatusOr<std::string> JwkBytes(const Json& jwk, const char* name) {
  const std::string* text = StringMember(jwk, name);
  if (text == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is missing or not a string"));
  }
  auto bytes = DecodeBase64Url(*text);
  if (!bytes.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is not base64url (unpadded)"));
  }
  return *std::move(bytes);
}

// Builds a public key of `type` ("EC", "RSA") from `bld`'s parameters, then
// runs OpenSSL's public key check (an EC point on the curve; for RSA, an
// odd modulus that is not a prime power, and an odd e > 1).
absl::StatusOr<PkeyPtr> PublicKeyFromParams(const char* type, OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  const bool built = params != nullptr && ctx != nullptr && EVP_PKEY_fromdata_init(ctx.get()) == 1 &&
                     EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) == 1;
  PkeyPtr pkey(raw);
  bool valid = false;
  if (built && pkey != nullptr) {
    PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
    valid = check != nullptr && EVP_PKEY_public_check(check.get()) == 1;
  }
  ERR_clear_error();
  if (!built || pkey == nullptr) {
    return absl::InvalidArgumentError("OpenSSL cannot build this public key");
  }
  if (!valid) {
    return absl::InvalidArgumentError("the public key fails OpenSSL's public key check");
  }
  return pkey;
}

absl::StatusOr<PkeyPtr> P384KeyFromJwk(const Json& jwk) {
  const std::string* crv = StringMember(jwk, "crv");
  if (crv == nullptr || *crv != "P-384") {
    return absl::InvalidArgumentError("an EC key must have \"crv\": \"P-384\"");
  }
  auto x = JwkBytes(jwk, "x");
  if (!x.ok()) return x.status();
  auto y = JwkBytes(jwk, "y");
  if (!y.ok()) return y.status();
  if (x->size() != kP384Bytes || y->size() != kP384Bytes) {
    return absl::InvalidArgumentError("\"x\" and \"y\" of a P-384 key must be 48 bytes each");
  }
  // The uncompressed point: 0x04 || x || y.
  const std::string point = absl::StrCat(absl::string_view("\x04", 1), *x, *y);
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "secp384r1", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
    return absl::InternalError("OpenSSL: cannot build key parameters");
  }
  return PublicKeyFromParams("EC", bld.get());
}

absl::StatusOr<PkeyPtr> RsaKeyFromJwk(const Json& jwk) {
  auto n_bytes = JwkBytes(jwk, "n");
  if (!n_bytes.ok()) return n_bytes.status();
  auto e_bytes = JwkBytes(jwk, "e");
  if (!e_bytes.ok()) return e_bytes.status();
  BignumPtr n(BN_bin2bn(Bytes(*n_bytes), static_cast<int>(n_bytes->size()), nullptr));
  BignumPtr e(BN_bin2bn(Bytes(*e_bytes), static_cast<int>(e_bytes->size()), nullptr));
  if (n == nullptr || e == nullptr) {
    return absl::InternalError("OpenSSL: cannot read the RSA key's numbers");
  }
  const int bits = BN_num_bits(n.get());
  if (bits < kMinRsaBits || bits > kMaxRsaBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("the RSA key has ", bits, " bits; ", kMinRsaBits, " to ", kMaxRsaBits, " are accepted"));
  }
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return absl::InternalError("OpenSSL: cannot build key parameters");
  }
  return PublicKeyFromParams("RSA", bld.get());
}

// One public JWK. Refused: private keys, other key types and curves, keys
// for encryption, and an `alg` other than the one the key type allows.
absl::StatusOr<VerifyKey> ParseJwk(const Json& jwk) {
  if (!jwk.is_object()) {
    return absl::InvalidArgumentError("a key must be a JSON object");
  }
  if (jwk.contains("d") || jwk.contains("p") || jwk.contains("q")) {
    return absl::InvalidArgumentError("the key holds private key material; give only the public key");
  }
  const std::string* kty = StringMember(jwk, "kty");
  if (kty == nullptr || (*kty != "EC" && *kty != "RSA")) {
    return absl::InvalidArgumentError("\"kty\" must be \"EC\" (P-384) or \"RSA\"");
  }
  VerifyKey key;
  key.alg = *kty == "EC" ? Alg::kEs384 : Alg::kRs384;
  if (jwk.contains("kid")) {
    const std::string* kid = StringMember(jwk, "kid");
    if (kid == nullptr || kid->empty()) {
      return absl::InvalidArgumentError("\"kid\" must be a non-empty string");
    }
    key.kid = *kid;
  }
  const std::string* use = StringMember(jwk, "use");
  if (jwk.contains("use") && (use == nullptr || *use != "sig")) {
    return absl::InvalidArgumentError("\"use\" must be \"sig\"");
  }
  const std::string* alg = StringMember(jwk, "alg");
  if (jwk.contains("alg") && (alg == nullptr || *alg != AlgName(key.alg))) {
    return absl::InvalidArgumentError(absl::StrCat("\"alg\" of a ", *kty, " key must be \"", AlgName(key.alg), "\""));
  }
  auto pkey = key.alg == Alg::kEs384 ? P384KeyFromJwk(jwk) : RsaKeyFromJwk(jwk);
  if (!pkey.ok()) {
    return pkey.status();
  }
  key.pkey = *std::move(pkey);
  return key;
}

// A JWK set ({"keys": [...]}, at least one key, `kid`s unique). Errors are
// prefixed with `where`.
absl::StatusOr<std::vector<VerifyKey>> ParseJwks(const Json& jwks, const std::string& where) {
  const auto keys = jwks.is_object() ? jwks.find("keys") : jwks.end();
  if (keys == jwks.end() || !keys->is_array() || keys->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "a JWK set needs a non-empty \"keys\" array"));
  }
  std::vector<VerifyKey> parsed;
  absl::flat_hash_set<std::string> kids;
  for (size_t i = 0; i < keys->size(); ++i) {
    const std::string key_where = absl::StrCat(where, "keys[", i, "]: ");
    auto key = ParseJwk((*keys)[i]);
    if (!key.ok()) {
      return absl::Status(key.status().code(), absl::StrCat(key_where, key.status().message()));
    }
    if (!key->kid.empty() && !kids.insert(key->kid).second) {
      return absl::InvalidArgumentError(absl::StrCat(key_where, "\"kid\" \"", key->kid, "\" appears twice"));
    }
    parsed.push_back(*std::move(key));
  }
  return parsed;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The keys of one issuers entry: inline (`jwks`) or from `jwks_file`,
// relative to `base_dir`.
absl::StatusOr<std::vector<VerifyKey>> IssuerKeysOf(const Json& entry, const std::string& base_dir,
                                                    const std::string& where) {
  const bool inline_keys = entry.contains("jwks");
  if (inline_keys == entry.contains("jwks_file")) {
    return absl::InvalidArgumentError(absl::StrCat(where, "give either \"jwks\" or \"jwks_file\""));
  }
  if (inline_keys) {
    return ParseJwks(entry["jwks"], where);
  }
  const std::string* file = StringMember(entry, "jwks_file");
  if (file == nullptr || file->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "\"jwks_file\" must be a non-empty string"));
  }
  const std::string path = base_dir.empty() || absl::StartsWith(*file, "/") ? *file : absl::StrCat(base_dir, "/", *file);
  auto text = ReadFile(path);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat(where, text.status().message()));
  }
  const auto jwks = ParseObject(*text);
  if (!jwks.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(where, path, ": not a JSON object"));
  }
  return ParseJwks(*jwks, absl::StrCat(where, path, ": "));
}

// The issuers document; errors start with `label` (the file's name).
absl::StatusOr<IssuerKeys> ParseIssuers(absl::string_view json, const std::string& base_dir,
                                        const std::string& label) {
  const auto root = ParseObject(json);
  if (!root.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": not a JSON object"));
  }
  const auto issuers = root->find("issuers");
  if (issuers == root->end() || !issuers->is_array() || issuers->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(label, ": needs a non-empty \"issuers\" array"));
  }
  IssuerKeys result;
  for (size_t i = 0; i < issuers->size(); ++i) {
    const Json& entry = (*issuers)[i];
    std::string where = absl::StrCat(label, ": issuers[", i, "]: ");
    const std::string* iss = entry.is_object() ? StringMember(entry, "iss") : nullptr;
    if (iss == nullptr || iss->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "needs \"iss\", a non-empty string"));
    }
    where = absl::StrCat(label, ": issuers[", i, "] (", *iss, "): ");
    if (result.contains(*iss)) {
      return absl::InvalidArgumentError(absl::StrCat(where, "this issuer appears twice"));
    }
    auto keys = IssuerKeysOf(entry, base_dir, where);
    if (!keys.ok()) {
      return keys.status();
    }
    result.emplace(*iss, *std::move(keys));
  }
  return result;
}

// ---------------------------------------------------------------------------
// Tokens.

// The protected header fields this verifier uses.
struct JoseHeader {
  Alg alg;
  std::optional<std::string> kid;
};

// The JWT of an Authorization header value ("Bearer <jwt>", the scheme's
// case ignored as RFC 7235 allows), at most kMaxTokenBytes.
absl::StatusOr<absl::string_view> BearerToken(absl::string_view authorization) {
  constexpr absl::string_view kBearer = "Bearer ";
  if (!absl::StartsWithIgnoreCase(authorization, kBearer)) {
    return Refuse("the authorization header is not \"Bearer <JWT>\"");
  }
  const absl::string_view token = absl::StripAsciiWhitespace(authorization.substr(kBearer.size()));
  if (token.empty()) {
    return Refuse("the authorization header is not \"Bearer <JWT>\"");
  }
  if (token.size() > kMaxTokenBytes) {
    return Refuse(absl::StrCat("longer than ", kMaxTokenBytes, " bytes"));
  }
  return token;
}

// The header segment: a JSON object whose `alg` is ES384 or RS384, checked
// before anything else is. `typ`, when present, must be JWT; `crit` is
// refused (no extension is understood, RFC 7515 section 4.1.11); `jku`,
// `x5u`, `jwk` and `x5c` are ignored: keys come from configuration only.
absl::StatusOr<JoseHeader> ParseHeader(absl::string_view segment) {
  const auto bytes = DecodeBase64Url(segment);
  if (!bytes.has_value()) {
    return Refuse("the header is not base64url");
  }
  const auto header = ParseObject(*bytes);
  if (!header.has_value()) {
    return Refuse("the header is not a JSON object");
  }
  const std::string* alg = StringMember(*header, "alg");
  if (alg == nullptr) {
    return Refuse("alg is missing from the header");
  }
  JoseHeader result;
  if (*alg == "ES384") {
    result.alg = Alg::kEs384;
  } else if (*alg == "RS384") {
    result.alg = Alg::kRs384;
  } else {
    return Refuse(absl::StrCat("alg ", QuoteIfPlain(*alg), " is not allowed (ES384 or RS384)"));
  }
  if (header->contains("typ")) {
    const std::string* typ = StringMember(*header, "typ");
    if (typ == nullptr || !absl::EqualsIgnoreCase(*typ, "JWT")) {
      return Refuse("typ must be \"JWT\"");
    }
  }
  if (header->contains("crit")) {
    return Refuse("crit header parameters are not supported");
  }
  if (header->contains("kid")) {
    const std::string* kid = StringMember(*header, "kid");
    if (kid == nullptr) {
      return Refuse("kid is not a string");
    }
    result.kid = *kid;
  }
  return result;
}

// An ES384 signature as JWS sends it (r || s, 48 bytes each) in the DER
// form EVP_DigestVerify expects; nullopt when it is not 96 bytes.
std::optional<std::string> Es384SignatureToDer(absl::string_view raw) {
  if (raw.size() != 2 * kP384Bytes) {
    return std::nullopt;
  }
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(Bytes(raw), static_cast<int>(kP384Bytes), nullptr);
  BIGNUM* s = BN_bin2bn(Bytes(raw.substr(kP384Bytes)), static_cast<int>(kP384Bytes), nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);  // not taken by the signature
    BN_free(s);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int length = i2d_ECDSA_SIG(sig.get(), &der);
  if (length <= 0 || der == nullptr) {
    return std::nullopt;
  }
  std::string result(reinterpret_cast<const char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return result;
}

// Whether `signature` (DER for ES384) of `signing_input` verifies with
// `key`: SHA-384, and PKCS #1 v1.5 padding for RSA.
bool VerifiesWith(const VerifyKey& key, absl::string_view signing_input, absl::string_view signature) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pkey_ctx = nullptr;  // owned by ctx
  const bool ok =
      ctx != nullptr && EVP_DigestVerifyInit(ctx.get(), &pkey_ctx, EVP_sha384(), nullptr, key.pkey.get()) == 1 &&
      (key.alg != Alg::kRs384 || EVP_PKEY_CTX_set_rsa_padding(pkey_ctx, RSA_PKCS1_PADDING) == 1) &&
      EVP_DigestVerify(ctx.get(), Bytes(signature), signature.size(), Bytes(signing_input), signing_input.size()) == 1;
  ERR_clear_error();
  return ok;
}

// Picks the issuer's keys for the header (by `kid` when given, otherwise
// every key of the alg's type) and verifies the signature segment.
absl::Status VerifySignature(const std::vector<VerifyKey>& keys, const JoseHeader& header,
                             absl::string_view signing_input, absl::string_view signature_segment) {
  std::vector<const VerifyKey*> candidates;
  for (const VerifyKey& key : keys) {
    if (header.kid.has_value() && key.kid != *header.kid) {
      continue;
    }
    if (key.alg != header.alg) {
      if (header.kid.has_value()) {
        return Refuse(absl::StrCat("the key named by kid is not an ", AlgName(header.alg), " key"));
      }
      continue;
    }
    candidates.push_back(&key);
  }
  if (candidates.empty()) {
    return header.kid.has_value() ? Refuse("kid names no key of the issuer")
                                  : Refuse(absl::StrCat("the issuer has no ", AlgName(header.alg), " key"));
  }
  const auto raw = DecodeBase64Url(signature_segment);
  if (!raw.has_value()) {
    return Refuse("the signature is not base64url");
  }
  std::string signature = *raw;
  if (header.alg == Alg::kEs384) {
    auto der = Es384SignatureToDer(*raw);
    if (!der.has_value()) {
      return Refuse("an ES384 signature must be 96 bytes (r || s)");
    }
    signature = *std::move(der);
  }
  for (const VerifyKey* key : candidates) {
    if (VerifiesWith(*key, signing_input, signature)) {
      return absl::OkStatus();
    }
  }
  return Refuse("signature does not verify");
}

// The NumericDate claim `name` (seconds since the epoch, fractions
// allowed): nullopt when absent.
absl::StatusOr<std::optional<absl::Time>> NumericDate(const Json& payload, const char* name) {
  const auto it = payload.find(name);
  if (it == payload.end()) {
    return std::nullopt;
  }
  const auto bad = [name] { return Refuse(absl::StrCat(name, " is not a NumericDate")); };
  if (it->is_number_unsigned()) {
    const uint64_t seconds = it->get<uint64_t>();
    if (seconds > static_cast<uint64_t>(kMaxNumericDate)) return bad();
    return absl::FromUnixSeconds(static_cast<int64_t>(seconds));
  }
  if (it->is_number_integer()) {
    const int64_t seconds = it->get<int64_t>();
    if (seconds < 0 || seconds > kMaxNumericDate) return bad();
    return absl::FromUnixSeconds(seconds);
  }
  if (it->is_number_float()) {
    const double seconds = it->get<double>();
    if (!std::isfinite(seconds) || seconds < 0 || seconds > static_cast<double>(kMaxNumericDate)) return bad();
    return absl::FromUnixMicros(static_cast<int64_t>(seconds * 1e6));
  }
  return bad();
}

// `aud` must be `audience` or an array that lists it.
absl::Status CheckAudience(const Json& payload, absl::string_view audience) {
  const auto aud = payload.find("aud");
  if (aud == payload.end()) {
    return Refuse("aud is missing");
  }
  bool listed = false;
  if (aud->is_string()) {
    listed = aud->get_ref<const std::string&>() == audience;
  } else if (aud->is_array()) {
    for (const Json& value : *aud) {
      listed = listed || (value.is_string() && value.get_ref<const std::string&>() == audience);
    }
  }
  if (audience.empty() || !listed) {
    return Refuse("aud does not name this service");
  }
  return absl::OkStatus();
}

// exp, iat (both required) and nbf (optional) against `now`, with the
// leeway for clock skew; the lifetime exp - iat is at most kMaxLifetime.
absl::Status CheckTimes(const Json& payload, absl::Time now, JwtClaims& claims) {
  const absl::Duration leeway = CdsJwtVerifier::kLeeway;
  auto exp = NumericDate(payload, "exp");
  if (!exp.ok()) return exp.status();
  if (!exp->has_value()) return Refuse("exp is missing");
  if (**exp + leeway <= now) return Refuse("expired");
  auto iat = NumericDate(payload, "iat");
  if (!iat.ok()) return iat.status();
  if (!iat->has_value()) return Refuse("iat is missing");
  if (**iat > now + leeway) return Refuse("iat is in the future");
  if (**exp < **iat) return Refuse("exp is before iat");
  if (**exp - **iat > kMaxLifetime) return Refuse("lifetime (exp - iat) is over 5 minutes");
  auto nbf = NumericDate(payload, "nbf");
  if (!nbf.ok()) return nbf.status();
  if (nbf->has_value() && **nbf > now + leeway) return Refuse("not yet valid (nbf)");
  claims.exp = **exp;
  claims.iat = **iat;
  return absl::OkStatus();
}

// The claims of a payload whose signature verified: sub (required), aud,
// times, jti (required), tenant (optional).
absl::StatusOr<JwtClaims> CheckClaims(const Json& payload, absl::string_view audience, absl::Time now) {
  JwtClaims claims;
  claims.iss = payload["iss"].get<std::string>();  // checked by the caller
  const std::string* sub = StringMember(payload, "sub");
  if (sub == nullptr || sub->empty()) {
    return Refuse("sub is missing");
  }
  claims.sub = *sub;
  if (absl::Status status = CheckAudience(payload, audience); !status.ok()) {
    return status;
  }
  if (absl::Status status = CheckTimes(payload, now, claims); !status.ok()) {
    return status;
  }
  const std::string* jti = StringMember(payload, "jti");
  if (jti == nullptr || jti->empty()) {
    return Refuse("jti is missing");
  }
  claims.jti = *jti;
  if (payload.contains("tenant")) {
    const std::string* tenant = StringMember(payload, "tenant");
    if (tenant == nullptr) {
      return Refuse("tenant is not a string");
    }
    claims.tenant = *tenant;
  }
  return claims;
}

// The jtis of accepted tokens, per issuer, until their tokens expire.
// Keyed by a SHA-256 digest of issuer and jti, so that an entry has a fixed
// size whatever the jti's length.
class ReplayCache {
 public:
  // Records the token (`iss`, `jti`) kept until `keep_until`; fails when it
  // is recorded already, or when the cache is full (fail closed).
  absl::Status Record(absl::string_view iss, absl::string_view jti, absl::Time keep_until, absl::Time now) {
    std::string key = absl::HexStringToBytes(Sha256Hex(absl::StrCat(iss.size(), ":", iss, jti)));
    absl::MutexLock lock(&mu_);
    PurgeLocked(now);
    if (seen_.contains(key)) {
      return Refuse("jti was already used");
    }
    if (seen_.size() >= kMaxReplayEntries) {
      return Refuse("too many recent tokens to check jti for replay; try again shortly");
    }
    seen_.emplace(key, keep_until);
    by_expiry_.emplace(keep_until, std::move(key));
    return absl::OkStatus();
  }

 private:
  // Drops the entries whose tokens have expired by `now`.
  void PurgeLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) {
      seen_.erase(by_expiry_.begin()->second);
      by_expiry_.erase(by_expiry_.begin());
    }
  }

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Time> seen_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<absl::Time, std::string>> by_expiry_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

struct CdsJwtVerifier::Impl {
  IssuerKeys issuers;  // immutable once built
  ReplayCache replays;
};

CdsJwtVerifier::CdsJwtVerifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CdsJwtVerifier::~CdsJwtVerifier() = default;

absl::StatusOr<std::unique_ptr<CdsJwtVerifier>> CdsJwtVerifier::FromFile(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) {
    return text.status();
  }
  const size_t slash = path.rfind('/');
  const std::string base_dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  auto issuers = ParseIssuers(*text, base_dir, path);
  if (!issuers.ok()) {
    return issuers.status();
  }
  auto impl = std::make_unique<Impl>();
  impl->issuers = *std::move(issuers);
  return std::unique_ptr<CdsJwtVerifier>(new CdsJwtVerifier(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<CdsJwtVerifier>> CdsJwtVerifier::FromJson(absl::string_view json,
                                                                         const std::string& base_dir) {
  auto issuers = ParseIssuers(json, base_dir, "issuers JSON");
  if (!issuers.ok()) {
    return issuers.status();
  }
  auto impl = std::make_unique<Impl>();
  impl->issuers = *std::move(issuers);
  return std::unique_ptr<CdsJwtVerifier>(new CdsJwtVerifier(std::move(impl)));
}

absl::StatusOr<JwtClaims> CdsJwtVerifier::Verify(absl::string_view authorization, absl::string_view audience,
                                                 absl::Time now) {
  const auto token = BearerToken(authorization);
  if (!token.ok()) {
    return token.status();
  }
  const std::vector<absl::string_view> segments = absl::StrSplit(*token, '.');
  if (segments.size() != 3) {
    return Refuse("not a signed JWT (header.payload.signature)");
  }
  const auto header = ParseHeader(segments[0]);
  if (!header.ok()) {
    return header.status();
  }
  const auto payload_bytes = DecodeBase64Url(segments[1]);
  if (!payload_bytes.has_value()) {
    return Refuse("the payload is not base64url");
  }
  const auto payload = ParseObject(*payload_bytes);
  if (!payload.has_value()) {
    return Refuse("the payload is not a JSON object");
  }
  // The issuer picks the keys, so it is read before the signature is
  // checked; nothing else of the payload is trusted until then.
  const std::string* iss = StringMember(*payload, "iss");
  if (iss == nullptr) {
    return Refuse("iss is missing");
  }
  const auto issuer = impl_->issuers.find(*iss);
  if (issuer == impl_->issuers.end()) {
    return Refuse("issuer is not allowed");
  }
  const absl::string_view signing_input = token->substr(0, segments[0].size() + 1 + segments[1].size());
  if (absl::Status status = VerifySignature(issuer->second, *header, signing_input, segments[2]); !status.ok()) {
    return status;
  }
  auto claims = CheckClaims(*payload, audience, now);
  if (!claims.ok()) {
    return claims.status();
  }
  // Last, so that only a token accepted otherwise uses up its jti.
  if (absl::Status status = impl_->replays.Record(claims->iss, claims->jti, claims->exp + kLeeway, now); !status.ok()) {
    return status;
  }
  return claims;
}

}  // namespace vigil
