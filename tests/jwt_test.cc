// CdsJwtVerifier with real keys and signatures: the test makes an EC P-384
// and an RSA-2048 key, publishes their public halves as JWKs, and signs its
// own tokens (good ones, and the classic attacks).
#include "server/security/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tests/jwt_test_util.h"

namespace vigil {
namespace {

using Json = nlohmann::json;
using ::vigil::testing::B64Url;
using ::vigil::testing::BnParam;
using ::vigil::testing::Bytes;
using ::vigil::testing::EcJwk;
using ::vigil::testing::GenerateEc;
using ::vigil::testing::GenerateRsa;
using ::vigil::testing::HmacSha256;
using ::vigil::testing::MakeToken;
using ::vigil::testing::Pkey;
using ::vigil::testing::PublicKeyPem;
using ::vigil::testing::RsaJwk;
using ::vigil::testing::SignDer;
using ::vigil::testing::SignEs384;
using ::vigil::testing::Signer;

constexpr char kIss[] = "https://ehr.example.org";
constexpr char kOtherIss[] = "https://other.example";
constexpr char kAud[] = "https://cds.example.org/cds-services/vigil-medication-check";

// The status is UNAUTHENTICATED and its message names `check`.
void ExpectRefused(const absl::StatusOr<JwtClaims>& result, const std::string& check) {
  ASSERT_FALSE(result.ok()) << "accepted; expected a refusal naming: " << check;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated) << result.status();
  EXPECT_TRUE(absl::StrContains(result.status().message(), check))
      << "message: " << result.status().message() << "\nexpected it to name: " << check;
  EXPECT_TRUE(absl::StartsWith(result.status().message(), "token: ")) << result.status().message();
}

// A configuration error: `code`, and the message names each of `parts`.
void ExpectConfigError(const absl::Status& status, absl::StatusCode code, const std::vector<std::string>& parts) {
  ASSERT_FALSE(status.ok()) << "loaded; expected an error naming: " << parts.front();
  EXPECT_EQ(status.code(), code) << status;
  for (const auto& part : parts) {
    EXPECT_TRUE(absl::StrContains(status.message(), part)) << "message: " << status.message() << "\nmissing: " << part;
  }
}

// ---------------------------------------------------------------------------
// The fixture: issuer kIss has an EC key "ec-1" and an RSA key "rsa-1";
// kOtherIss has the EC key "other-1".

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ec_ = GenerateEc().release();
    rsa_ = GenerateRsa(2048).release();
    other_ec_ = GenerateEc().release();
    ASSERT_NE(ec_, nullptr);
    ASSERT_NE(rsa_, nullptr);
    ASSERT_NE(other_ec_, nullptr);
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(ec_);
    EVP_PKEY_free(rsa_);
    EVP_PKEY_free(other_ec_);
  }

  static Json IssuersJson() {
    return {{"issuers",
             {{{"iss", kIss}, {"jwks", {{"keys", {EcJwk(ec_, "ec-1"), RsaJwk(rsa_, "rsa-1")}}}}},
              {{"iss", kOtherIss}, {"jwks", {{"keys", {EcJwk(other_ec_, "other-1")}}}}}}}};
  }

  void SetUp() override {
    auto verifier = CdsJwtVerifier::FromJson(IssuersJson().dump());
    ASSERT_TRUE(verifier.ok()) << verifier.status();
    verifier_ = *std::move(verifier);
  }

  // Good claims at now_, with a fresh jti.
  Json Claims() {
    const int64_t now = absl::ToUnixSeconds(now_);
    return {{"iss", kIss}, {"sub", "ehr-client-7"},     {"aud", kAud},
            {"iat", now},  {"exp", now + 300},          {"jti", absl::StrCat("jti-", ++jti_counter_)}};
  }

  static Json Header(const std::string& alg, const std::string& kid) {
    Json header = {{"alg", alg}, {"typ", "JWT"}};
    if (!kid.empty()) header["kid"] = kid;
    return header;
  }

  static std::string Es384(const Json& claims, const std::string& kid = "ec-1", EVP_PKEY* key = ec_) {
    return MakeToken(Header("ES384", kid), claims, [key](const std::string& in) { return SignEs384(key, in); });
  }

  static std::string Rs384(const Json& claims, const std::string& kid = "rsa-1") {
    return MakeToken(Header("RS384", kid), claims,
                     [](const std::string& in) { return SignDer(rsa_, EVP_sha384(), in); });
  }

  absl::StatusOr<JwtClaims> Verify(const std::string& token) {
    return verifier_->Verify(absl::StrCat("Bearer ", token), kAud, now_);
  }
  absl::StatusOr<JwtClaims> VerifyAt(const std::string& token, absl::Time now) {
    return verifier_->Verify(absl::StrCat("Bearer ", token), kAud, now);
  }

  static inline EVP_PKEY* ec_ = nullptr;
  static inline EVP_PKEY* rsa_ = nullptr;
  static inline EVP_PKEY* other_ec_ = nullptr;
  const absl::Time now_ = absl::FromUnixSeconds(1750000000);
  int jti_counter_ = 0;
  std::unique_ptr<CdsJwtVerifier> verifier_;
};

// ---------------------------------------------------------------------------
// Accepted tokens.

TEST_F(JwtTest, GoodEs384IsAccepted) {
  Json claims = Claims();
  claims["tenant"] = "hospital-3";
  const auto result = Verify(Es384(claims));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->iss, kIss);
  EXPECT_EQ(result->sub, "ehr-client-7");
  EXPECT_EQ(result->jti, claims["jti"].get<std::string>());
  EXPECT_EQ(result->tenant, "hospital-3");
  EXPECT_EQ(result->iat, now_);
  EXPECT_EQ(result->exp, now_ + absl::Minutes(5));
}

TEST_F(JwtTest, GoodRs384IsAccepted) {
  const auto result = Verify(Rs384(Claims()));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->iss, kIss);
  EXPECT_EQ(result->tenant, "");
}

TEST_F(JwtTest, WithoutKidEachKeyOfTheAlgIsTried) {
  ASSERT_TRUE(Verify(Es384(Claims(), "")).ok());
  ASSERT_TRUE(Verify(Rs384(Claims(), "")).ok());
}

TEST_F(JwtTest, AudienceArrayListingTheServiceIsAccepted) {
  Json claims = Claims();
  claims["aud"] = {"https://cds.example.org/cds-services", kAud};
  const auto result = Verify(Es384(claims));
  EXPECT_TRUE(result.ok()) << result.status();
}

TEST_F(JwtTest, SchemeIsCaseInsensitive) {
  const auto result = verifier_->Verify(absl::StrCat("bearer ", Es384(Claims())), kAud, now_);
  EXPECT_TRUE(result.ok()) << result.status();
}

// ---------------------------------------------------------------------------
// Algorithms.

TEST_F(JwtTest, AlgNoneIsRefused) {
  const std::string token = MakeToken(Header("none", ""), Claims(), [](const std::string&) { return ""; });
  ASSERT_TRUE(absl::EndsWith(token, "."));
  ExpectRefused(Verify(token), "alg \"none\" is not allowed (ES384 or RS384)");
}

TEST_F(JwtTest, Hs256SignedWithTheIssuersPublicKeyIsRefused) {
  // The confusion attack: the RSA public key (PEM, or the JWK's text) used
  // as an HMAC secret.
  for (const std::string& secret : {PublicKeyPem(rsa_), RsaJwk(rsa_, "rsa-1").dump()}) {
    for (const std::string kid : {"rsa-1", ""}) {
      const std::string token =
          MakeToken(Header("HS256", kid), Claims(), [&](const std::string& in) { return HmacSha256(secret, in); });
      ExpectRefused(Verify(token), "alg \"HS256\" is not allowed (ES384 or RS384)");
    }
  }
}

TEST_F(JwtTest, Rs256IsRefused) {
  const std::string token =
      MakeToken(Header("RS256", "rsa-1"), Claims(), [](const std::string& in) { return SignDer(rsa_, EVP_sha256(), in); });
  ExpectRefused(Verify(token), "alg \"RS256\" is not allowed (ES384 or RS384)");
}

TEST_F(JwtTest, OtherAlgsAreRefusedBeforeVerifying) {
  for (const std::string alg : {"HS384", "HS512", "ES256", "ES512", "PS384", "RS512", "None", "es384", "EdDSA"}) {
    // Signed with a real ES384 signature: the alg alone refuses it.
    const std::string token =
        MakeToken(Header(alg, "ec-1"), Claims(), [](const std::string& in) { return SignEs384(ec_, in); });
    ExpectRefused(Verify(token), absl::StrCat("alg \"", alg, "\" is not allowed"));
  }
  Json header = Header("ES384", "ec-1");
  header.erase("alg");
  ExpectRefused(Verify(MakeToken(header, Claims(), [](const std::string& in) { return SignEs384(ec_, in); })),
                "alg is missing");
  header["alg"] = std::string(200, 'A');  // long values are not echoed
  const auto long_alg = Verify(MakeToken(header, Claims(), [](const std::string&) { return "x"; }));
  ExpectRefused(long_alg, "alg (not shown) is not allowed");
}

TEST_F(JwtTest, EmbeddedKeysAndJkuAreIgnored) {
  // An attacker's own key, offered in the header (jwk) and by URL (jku).
  Pkey attacker = GenerateEc();
  Json header = Header("ES384", "");
  header["jwk"] = EcJwk(attacker.get(), "");
  header["jku"] = "https://attacker.example/jwks.json";
  header["x5u"] = "https://attacker.example/cert.pem";
  EVP_PKEY* key = attacker.get();
  const std::string token = MakeToken(header, Claims(), [key](const std::string& in) { return SignEs384(key, in); });
  ExpectRefused(Verify(token), "signature does not verify");
}

TEST_F(JwtTest, CritAndWrongTypAreRefused) {
  Json header = Header("ES384", "ec-1");
  header["crit"] = {"exp"};
  header["exp"] = 1;
  ExpectRefused(Verify(MakeToken(header, Claims(), [](const std::string& in) { return SignEs384(ec_, in); })),
                "crit");
  header = Header("ES384", "ec-1");
  header["typ"] = "at+jwt";
  ExpectRefused(Verify(MakeToken(header, Claims(), [](const std::string& in) { return SignEs384(ec_, in); })),
                "typ must be \"JWT\"");
}

// ---------------------------------------------------------------------------
// Issuers, keys, signatures.

TEST_F(JwtTest, UnknownIssuerIsRefused) {
  Json claims = Claims();
  claims["iss"] = "https://evil.example";
  ExpectRefused(Verify(Es384(claims)), "issuer is not allowed");
  claims.erase("iss");
  ExpectRefused(Verify(Es384(claims)), "iss is missing");
}

TEST_F(JwtTest, KeyOfAnotherIssuerDoesNotVerify) {
  // kIss's name, signed with kOtherIss's key.
  ExpectRefused(Verify(Es384(Claims(), "", other_ec_)), "signature does not verify");
  ExpectRefused(Verify(Es384(Claims(), "other-1", other_ec_)), "kid names no key of the issuer");
  // The same key under kOtherIss's own name is fine.
  Json claims = Claims();
  claims["iss"] = kOtherIss;
  EXPECT_TRUE(Verify(Es384(claims, "other-1", other_ec_)).ok());
}

TEST_F(JwtTest, UnknownKidIsRefused) {
  ExpectRefused(Verify(Es384(Claims(), "ec-2")), "kid names no key of the issuer");
  // A kid of the wrong type for the alg.
  ExpectRefused(Verify(Es384(Claims(), "rsa-1")), "the key named by kid is not an ES384 key");
}

TEST_F(JwtTest, TamperedPayloadIsRefused) {
  const std::string token = Es384(Claims());
  const size_t first = token.find('.');
  const size_t second = token.find('.', first + 1);
  Json tampered = Claims();
  tampered["sub"] = "admin";
  const std::string forged =
      absl::StrCat(token.substr(0, first + 1), B64Url(tampered.dump()), token.substr(second));
  ExpectRefused(Verify(forged), "signature does not verify");
  // A flipped bit of the signature.
  std::string flipped = token;
  flipped[flipped.size() - 5] = flipped[flipped.size() - 5] == 'A' ? 'B' : 'A';
  ExpectRefused(Verify(flipped), "signature does not verify");
  const std::string rsa_token = Rs384(Claims());
  const std::string rsa_forged = absl::StrCat(rsa_token.substr(0, rsa_token.find('.') + 1), B64Url(tampered.dump()),
                                              rsa_token.substr(rsa_token.rfind('.')));
  ExpectRefused(Verify(rsa_forged), "signature does not verify");
}

TEST_F(JwtTest, Es384SignatureMustBeRaw96Bytes) {
  // OpenSSL's DER form is not JWS's.
  const std::string der =
      MakeToken(Header("ES384", "ec-1"), Claims(), [](const std::string& in) { return SignDer(ec_, EVP_sha384(), in); });
  ExpectRefused(Verify(der), "an ES384 signature must be 96 bytes");
  const std::string empty = MakeToken(Header("ES384", "ec-1"), Claims(), [](const std::string&) { return ""; });
  ExpectRefused(Verify(empty), "an ES384 signature must be 96 bytes");
}

// ---------------------------------------------------------------------------
// Claims.

TEST_F(JwtTest, ExpiredIsRefused) {
  Json claims = Claims();
  const int64_t now = absl::ToUnixSeconds(now_);
  claims["exp"] = now - 61;
  claims["iat"] = now - 200;
  ExpectRefused(Verify(Es384(claims)), "expired");
  // Within the leeway of clock skew.
  claims = Claims();
  claims["exp"] = now - 30;
  claims["iat"] = now - 200;
  EXPECT_TRUE(Verify(Es384(claims)).ok());
  claims = Claims();
  claims.erase("exp");
  ExpectRefused(Verify(Es384(claims)), "exp is missing");
  claims["exp"] = "tomorrow";
  ExpectRefused(Verify(Es384(claims)), "exp is not a NumericDate");
}

TEST_F(JwtTest, IatInTheFutureIsRefused) {
  Json claims = Claims();
  const int64_t now = absl::ToUnixSeconds(now_);
  claims["iat"] = now + 120;
  claims["exp"] = now + 180;
  ExpectRefused(Verify(Es384(claims)), "iat is in the future");
  claims = Claims();
  claims["iat"] = now + 30;  // within the leeway
  claims["exp"] = now + 90;
  EXPECT_TRUE(Verify(Es384(claims)).ok());
  claims = Claims();
  claims.erase("iat");
  ExpectRefused(Verify(Es384(claims)), "iat is missing");
}

TEST_F(JwtTest, LifetimeOverFiveMinutesIsRefused) {
  Json claims = Claims();
  claims["exp"] = absl::ToUnixSeconds(now_) + 301;
  ExpectRefused(Verify(Es384(claims)), "lifetime (exp - iat) is over 5 minutes");
  claims = Claims();
  claims["exp"] = absl::ToUnixSeconds(now_) - 10;
  ExpectRefused(Verify(Es384(claims)), "exp is before iat");
}

TEST_F(JwtTest, MissingJtiIsRefused) {
  Json claims = Claims();
  claims.erase("jti");
  ExpectRefused(Verify(Es384(claims)), "jti is missing");
  claims["jti"] = "";
  ExpectRefused(Verify(Es384(claims)), "jti is missing");
  claims["jti"] = 42;
  ExpectRefused(Verify(Es384(claims)), "jti is missing");
}

TEST_F(JwtTest, MissingSubIsRefused) {
  Json claims = Claims();
  claims.erase("sub");
  ExpectRefused(Verify(Es384(claims)), "sub is missing");
}

TEST_F(JwtTest, ReplayedJtiIsRefusedUntilItExpires) {
  const Json claims = Claims();
  const std::string token = Es384(claims);
  ASSERT_TRUE(Verify(token).ok());
  ExpectRefused(Verify(token), "jti was already used");
  // Another token with the same jti, signed anew: still a replay.
  ExpectRefused(Verify(Rs384(claims)), "jti was already used");
  // The same jti from another issuer is another token.
  Json other = claims;
  other["iss"] = kOtherIss;
  EXPECT_TRUE(Verify(Es384(other, "other-1", other_ec_)).ok());
  // Once the first token has expired (exp + leeway), its jti may come again.
  const absl::Time later = now_ + absl::Minutes(10);
  Json again = claims;
  again["iat"] = absl::ToUnixSeconds(later);
  again["exp"] = absl::ToUnixSeconds(later) + 300;
  const auto result = VerifyAt(Es384(again), later);
  EXPECT_TRUE(result.ok()) << result.status();
  ExpectRefused(VerifyAt(Es384(again), later + absl::Seconds(1)), "jti was already used");
}

TEST_F(JwtTest, RefusedTokenDoesNotUseUpItsJti) {
  const std::string token = Es384(Claims());
  ExpectRefused(verifier_->Verify(absl::StrCat("Bearer ", token), "https://cds.example.org/other", now_),
                "aud does not name this service");
  EXPECT_TRUE(Verify(token).ok());
}

TEST_F(JwtTest, ConcurrentReplaysAcceptOnlyOne) {
  const std::string token = Es384(Claims());
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (Verify(token).ok()) ++accepted;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(accepted.load(), 1);
}

TEST_F(JwtTest, WrongAudienceIsRefused) {
  Json claims = Claims();
  claims["aud"] = "https://cds.example.org/cds-services/other-service";
  ExpectRefused(Verify(Es384(claims)), "aud does not name this service");
  claims["aud"] = {"https://cds.example.org/cds-services", "https://elsewhere.example"};
  ExpectRefused(Verify(Es384(claims)), "aud does not name this service");
  claims["aud"] = {{"url", kAud}};
  ExpectRefused(Verify(Es384(claims)), "aud does not name this service");
  claims.erase("aud");
  ExpectRefused(Verify(Es384(claims)), "aud is missing");
}

// ---------------------------------------------------------------------------
// The header's and the token's shape.

TEST_F(JwtTest, NotBearerIsRefused) {
  const std::string token = Es384(Claims());
  for (const std::string& header : {token, absl::StrCat("Basic ", token), absl::StrCat("Bearer", token),
                                    std::string("Bearer "), std::string("Bearer    "), std::string()}) {
    ExpectRefused(verifier_->Verify(header, kAud, now_), "the authorization header is not \"Bearer <JWT>\"");
  }
}

TEST_F(JwtTest, MalformedTokensAreRefused) {
  const std::string token = Es384(Claims());
  const size_t first = token.find('.');
  ExpectRefused(Verify("garbage"), "not a signed JWT");
  ExpectRefused(Verify(token.substr(0, token.rfind('.'))), "not a signed JWT");
  ExpectRefused(Verify(absl::StrCat(token, ".e30")), "not a signed JWT");
  ExpectRefused(Verify(std::string(17000, 'a')), "longer than 16384 bytes");
  // Padding, the standard alphabet, whitespace inside a segment.
  ExpectRefused(Verify(absl::StrCat(token.substr(0, first), "==", token.substr(first))), "header is not base64url");
  std::string standard = token;
  standard[1] = '+';
  ExpectRefused(Verify(standard), "header is not base64url");
  std::string spaced = token;
  spaced.insert(4, " ");
  ExpectRefused(Verify(spaced), "header is not base64url");
  ExpectRefused(Verify(absl::StrCat(B64Url("not json"), token.substr(first))), "header is not a JSON object");
  ExpectRefused(Verify(absl::StrCat(B64Url("[\"ES384\"]"), token.substr(first))), "header is not a JSON object");
  ExpectRefused(Verify(absl::StrCat(token.substr(0, first), ".", B64Url("{\"iss\""), token.substr(token.rfind('.')))),
                "payload is not a JSON object");
  ExpectRefused(Verify(absl::StrCat(token.substr(0, first), ".*", token.substr(token.rfind('.')))),
                "payload is not base64url");
  ExpectRefused(Verify(absl::StrCat(token.substr(0, token.rfind('.')), ".sig=")), "signature is not base64url");
}

TEST_F(JwtTest, NonCanonicalBase64IsRefused) {
  // A header whose encoding ends in a partial group; setting an unused low
  // bit of its last character gives a second spelling of the same bytes.
  Json header = Header("ES384", "ec-1");
  std::string encoded = B64Url(header.dump());
  while (encoded.size() % 4 == 0) {
    header["x"] = header.value("x", "") + "x";
    encoded = B64Url(header.dump());
  }
  const std::string token = MakeToken(header, Claims(), [](const std::string& in) { return SignEs384(ec_, in); });
  ASSERT_TRUE(Verify(token).ok());
  std::string alternate = token;
  const size_t last = encoded.size() - 1;
  constexpr absl::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const size_t value = kAlphabet.find(alternate[last]);
  ASSERT_EQ(value % 2, 0u);
  alternate[last] = kAlphabet[value + 1];
  ExpectRefused(Verify(alternate), "header is not base64url");
}

// ---------------------------------------------------------------------------
// Configuration.

Json OneIssuer(const Json& jwk) { return {{"issuers", {{{"iss", kIss}, {"jwks", {{"keys", {jwk}}}}}}}}; }

TEST_F(JwtTest, RsaKeyUnder2048BitsIsRefusedAtLoad) {
  Pkey small = GenerateRsa(1024);
  ASSERT_NE(small, nullptr);
  const auto verifier = CdsJwtVerifier::FromJson(OneIssuer(RsaJwk(small.get(), "small")).dump());
  ExpectConfigError(verifier.status(), absl::StatusCode::kInvalidArgument,
                    {"issuers JSON", "issuers[0]", kIss, "keys[0]", "1024 bits"});
}

TEST_F(JwtTest, FromJsonErrors) {
  const auto load = [](const std::string& json) { return CdsJwtVerifier::FromJson(json).status(); };
  const auto invalid = absl::StatusCode::kInvalidArgument;
  ExpectConfigError(load("not json"), invalid, {"issuers JSON", "not a JSON object"});
  ExpectConfigError(load("{}"), invalid, {"\"issuers\""});
  ExpectConfigError(load("{\"issuers\": []}"), invalid, {"\"issuers\""});
  ExpectConfigError(load("{\"issuers\": [{\"jwks\": {\"keys\": []}}]}"), invalid, {"issuers[0]", "\"iss\""});
  ExpectConfigError(load(Json{{"issuers", {{{"iss", kIss}}}}}.dump()), invalid, {"issuers[0]", "\"jwks_file\""});
  ExpectConfigError(load(Json{{"issuers", {{{"iss", kIss}, {"jwks", {{"keys", Json::array()}}}}}}}.dump()), invalid,
                    {"issuers[0]", "\"keys\""});

  Json jwk = EcJwk(ec_, "ec-1");
  jwk["x"] = B64Url(std::string(47, '\1'));
  ExpectConfigError(load(OneIssuer(jwk).dump()), invalid, {"issuers[0]", "keys[0]", "48 bytes"});
  jwk = EcJwk(ec_, "ec-1");
  std::string y = BnParam(ec_, OSSL_PKEY_PARAM_EC_PUB_Y, 48);
  y[47] = static_cast<char>(y[47] ^ 1);  // off the curve
  jwk["y"] = B64Url(y);
  ExpectConfigError(load(OneIssuer(jwk).dump()), invalid, {"keys[0]", "public key"});
  jwk = EcJwk(ec_, "ec-1");
  jwk["x"] = jwk["x"].get<std::string>() + "=";
  ExpectConfigError(load(OneIssuer(jwk).dump()), invalid, {"keys[0]", "\"x\" is not base64url"});
  jwk = EcJwk(ec_, "ec-1");
  jwk["crv"] = "P-256";
  ExpectConfigError(load(OneIssuer(jwk).dump()), invalid, {"keys[0]", "P-384"});
  jwk = EcJwk(ec_, "ec-1");
  jwk["d"] = B64Url(BnParam(ec_, OSSL_PKEY_PARAM_PRIV_KEY, 48));
  ExpectConfigError(load(OneIssuer(jwk).dump()), invalid, {"keys[0]", "private key material"});
  // A symmetric key would make an HMAC secret of configuration: refused.
  ExpectConfigError(load(OneIssuer({{"kty", "oct"}, {"k", B64Url("secret")}}).dump()), invalid, {"\"kty\""});
  jwk = RsaJwk(rsa_, "rsa-1");
  jwk["e"] = B64Url(std::string("\x01\x00\x00", 3));  // an even exponent fails OpenSSL's check
  ExpectConfigError(load(OneIssuer(jwk).dump()), invalid, {"keys[0]", "public key check"});
  jwk = RsaJwk(rsa_, "rsa-1");
  jwk["alg"] = "RS256";
  ExpectConfigError(load(OneIssuer(jwk).dump()), invalid, {"keys[0]", "\"alg\" of a RSA key must be \"RS384\""});
  jwk = EcJwk(ec_, "ec-1");
  jwk["use"] = "enc";
  ExpectConfigError(load(OneIssuer(jwk).dump()), invalid, {"keys[0]", "\"use\""});

  Json twice = IssuersJson();
  twice["issuers"][0]["jwks"]["keys"][1]["kid"] = "ec-1";
  ExpectConfigError(load(twice.dump()), invalid, {"issuers[0]", "keys[1]", "appears twice"});
  twice = IssuersJson();
  twice["issuers"][1]["iss"] = kIss;
  ExpectConfigError(load(twice.dump()), invalid, {"issuers[1]", "appears twice"});
}

class JwtFileTest : public JwtTest {
 protected:
  void SetUp() override {
    JwtTest::SetUp();
    dir_ = std::filesystem::path(::testing::TempDir()) / absl::StrCat("jwt_test_", getpid());
    std::filesystem::create_directories(dir_ / "keys");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Write(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
  }

  std::filesystem::path dir_;
};

TEST_F(JwtFileTest, FromFileReadsJwksFileRelativeToItsFolder) {
  Write(dir_ / "keys" / "other.jwks.json", Json{{"keys", {EcJwk(other_ec_, "other-1")}}}.dump());
  Json issuers = IssuersJson();
  issuers["issuers"][1].erase("jwks");
  issuers["issuers"][1]["jwks_file"] = "keys/other.jwks.json";
  Write(dir_ / "issuers.json", issuers.dump(2));
  auto verifier = CdsJwtVerifier::FromFile((dir_ / "issuers.json").string());
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  Json claims = Claims();
  claims["iss"] = kOtherIss;
  const auto result = (*verifier)->Verify(absl::StrCat("Bearer ", Es384(claims, "other-1", other_ec_)), kAud, now_);
  EXPECT_TRUE(result.ok()) << result.status();
  // FromJson resolves it against the base folder given.
  EXPECT_TRUE(CdsJwtVerifier::FromJson(issuers.dump(), dir_.string()).ok());
}

TEST_F(JwtFileTest, FromFileErrorsNameTheFile) {
  const std::string missing = (dir_ / "absent.json").string();
  ExpectConfigError(CdsJwtVerifier::FromFile(missing).status(), absl::StatusCode::kNotFound, {missing});

  Json issuers = IssuersJson();
  issuers["issuers"][1].erase("jwks");
  issuers["issuers"][1]["jwks_file"] = "keys/absent.jwks.json";
  const std::string path = (dir_ / "issuers.json").string();
  Write(path, issuers.dump());
  ExpectConfigError(CdsJwtVerifier::FromFile(path).status(), absl::StatusCode::kNotFound,
                    {path, "issuers[1]", kOtherIss, "keys/absent.jwks.json"});

  Write(dir_ / "keys" / "bad.jwks.json", Json{{"keys", {{{"kty", "EC"}, {"crv", "P-384"}}}}}.dump());
  issuers["issuers"][1]["jwks_file"] = "keys/bad.jwks.json";
  Write(path, issuers.dump());
  ExpectConfigError(CdsJwtVerifier::FromFile(path).status(), absl::StatusCode::kInvalidArgument,
                    {path, "issuers[1]", "bad.jwks.json", "keys[0]", "\"x\""});

  Write(path, "{\"issuers\": ");
  ExpectConfigError(CdsJwtVerifier::FromFile(path).status(), absl::StatusCode::kInvalidArgument,
                    {path, "not a JSON object"});
}

}  // namespace
}  // namespace vigil
