#include "server/common/text.h"

#include <string>

#include "gtest/gtest.h"

namespace vigil {
namespace {

TEST(ToNfcTest, CanonicallyEquivalentSpellingsBecomeOne) {
  const std::string precomposed = "jos\xC3\xA9";  // U+00E9
  EXPECT_EQ(ToNfc("jose\xCC\x81"), precomposed);    // e + U+0301 COMBINING ACUTE ACCENT
  EXPECT_EQ(ToNfc(precomposed), precomposed);
  EXPECT_EQ(ToNfc("\xE2\x84\xAB"), "\xC3\x85");  // U+212B ANGSTROM SIGN -> U+00C5
  // Two marks in either order are one spelling (canonical ordering).
  EXPECT_EQ(ToNfc("a\xCC\xA3\xCC\x81"), ToNfc("a\xCC\x81\xCC\xA3"));
  // Hangul written as conjoining jamo becomes the syllable.
  EXPECT_EQ(ToNfc("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), "\xED\x95\x9C");  // U+D55C
  EXPECT_EQ(ToNfc("MRN-0042"), "MRN-0042");
  EXPECT_EQ(ToNfc(""), "");
}

TEST(IdentifierProblemTest, NamesWhatMakesAnIdLookLikeAnother) {
  EXPECT_TRUE(IdentifierProblem("MRN-0042").empty());
  EXPECT_TRUE(IdentifierProblem("jose\xCC\x81").empty());  // ToNfc makes it one id with "josé"
  EXPECT_EQ(IdentifierProblem(" MRN"), "starts with whitespace");
  EXPECT_EQ(IdentifierProblem("MRN\xC2\xA0"), "ends with whitespace");
  EXPECT_EQ(IdentifierProblem("MR\tN"), "contains a control character");
  EXPECT_EQ(IdentifierProblem("MRN\xE2\x80\x8B"), "contains an invisible format or bidirectional character");
  EXPECT_EQ(IdentifierProblem("\xE2\x80\xAEMRN"), "contains an invisible format or bidirectional character");
}

}  // namespace
}  // namespace vigil
