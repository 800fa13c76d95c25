// Test helpers for CDS Hooks JWTs: real EC P-384 and RSA keys, their public
// halves as JWKs, and tokens signed with them (good ones and attacks).
#ifndef VIGIL_TESTS_JWT_TEST_UTIL_H_
#define VIGIL_TESTS_JWT_TEST_UTIL_H_

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace vigil::testing {

using Json = nlohmann::json;

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// ---------------------------------------------------------------------------
// Helpers: keys, JWKs, signatures.

inline std::string B64Url(const std::string& bytes) {
  std::string out;
  absl::WebSafeBase64Escape(bytes, &out);  // unpadded
  return out;
}

inline const unsigned char* Bytes(const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); }

inline Pkey GenerateEc() { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384")); }

inline Pkey GenerateRsa(size_t bits) { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits)); }

// A big-number parameter of `key`, big-endian, left-padded to `width` bytes
// (0: its natural length).
inline std::string BnParam(const EVP_PKEY* key, const char* name, int width = 0) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) {
    ADD_FAILURE() << "no parameter " << name;
    return "";
  }
  const int size = width > 0 ? width : BN_num_bytes(bn);
  std::string out(static_cast<size_t>(size), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), size);
  BN_free(bn);
  return out;
}

inline Json EcJwk(const EVP_PKEY* key, const std::string& kid) {
  Json jwk = {{"kty", "EC"},
              {"crv", "P-384"},
              {"x", B64Url(BnParam(key, OSSL_PKEY_PARAM_EC_PUB_X, 48))},
              {"y", B64Url(BnParam(key, OSSL_PKEY_PARAM_EC_PUB_Y, 48))}};
  if (!kid.empty()) jwk["kid"] = kid;
  return jwk;
}

inline Json RsaJwk(const EVP_PKEY* key, const std::string& kid) {
  Json jwk = {{"kty", "RSA"},
              {"n", B64Url(BnParam(key, OSSL_PKEY_PARAM_RSA_N))},
              {"e", B64Url(BnParam(key, OSSL_PKEY_PARAM_RSA_E))}};
  if (!kid.empty()) jwk["kid"] = kid;
  return jwk;
}

// The signature of `input` with `key` and `md`, as OpenSSL gives it (DER
// for EC).
inline std::string SignDer(EVP_PKEY* key, const EVP_MD* md, const std::string& input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t size = 0;
  std::string signature;
  if (EVP_DigestSignInit(ctx, nullptr, md, nullptr, key) == 1 &&
      EVP_DigestSign(ctx, nullptr, &size, Bytes(input), input.size()) == 1) {
    signature.resize(size);
    if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &size, Bytes(input),
                       input.size()) == 1) {
      signature.resize(size);
    } else {
      signature.clear();
    }
  }
  EVP_MD_CTX_free(ctx);
  EXPECT_FALSE(signature.empty()) << "signing failed";
  return signature;
}

// ES384 as JWS wants it: r || s, 48 bytes each.
inline std::string SignEs384(EVP_PKEY* key, const std::string& input) {
  const std::string der = SignDer(key, EVP_sha384(), input);
  const unsigned char* p = Bytes(der);
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (sig == nullptr) {
    ADD_FAILURE() << "bad DER signature";
    return "";
  }
  std::string raw(96, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), 48);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + 48, 48);
  ECDSA_SIG_free(sig);
  return raw;
}

inline std::string HmacSha256(const std::string& secret, const std::string& input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), Bytes(input), input.size(), mac, &size);
  return std::string(reinterpret_cast<const char*>(mac), size);
}

inline std::string PublicKeyPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(size));
  BIO_free(bio);
  return pem;
}

using Signer = std::function<std::string(const std::string&)>;

// header.payload.signature, with `sign` given the signing input.
inline std::string MakeToken(const Json& header, const Json& payload, const Signer& sign) {
  const std::string input = absl::StrCat(B64Url(header.dump()), ".", B64Url(payload.dump()));
  return absl::StrCat(input, ".", B64Url(sign(input)));
}

}  // namespace vigil::testing

#endif  // VIGIL_TESTS_JWT_TEST_UTIL_H_
