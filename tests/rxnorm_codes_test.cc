// RxNorm codes of the bundled knowledge base: every drug with an RxNorm
// ingredient concept carries its RxCUI, taken from a cited public source (CPIC
// drug table, VSAC and US Core value sets, the HL7 PDDI CDS value sets, the CDC
// opioid OMTK data, PEDSnet RxNorm codesets). These tests check the data
// itself: one drug per code, well-formed codes, a floor on how many drugs are
// coded, and well-known ingredient codes that must resolve to the right drug.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "server/kb/knowledge_base.h"
#include "tests/test_util.h"

namespace vigil {
namespace {

using ::vigil::testing::BundledKb;

constexpr char kRxNorm[] = "http://www.nlm.nih.gov/research/umls/rxnorm";

// The number of drugs that carry an RxNorm code. Raise it when codes are
// added; it must never go down.
constexpr size_t kMinDrugsWithRxNorm = 362;

// The RxNorm codes of each drug, by drug id.
std::map<std::string, std::vector<kb::v1::Code>> RxNormCodesByDrug(const KnowledgeBase& kb) {
  std::map<std::string, std::vector<kb::v1::Code>> codes;
  for (const DrugEntry& drug : kb.drugs()) {
    for (const kb::v1::Code& code : drug.proto.codes()) {
      if (code.system() == kRxNorm) {
        codes[drug.proto.id()].push_back(code);
      }
    }
  }
  return codes;
}

TEST(RxNormCodesTest, NoCodeBelongsToTwoDrugs) {
  auto kb = BundledKb();
  ASSERT_NE(kb, nullptr);
  // code -> the ids of the drugs that carry it.
  std::map<std::string, std::set<std::string>> owners;
  for (const auto& [drug_id, codes] : RxNormCodesByDrug(*kb)) {
    for (const kb::v1::Code& code : codes) {
      owners[code.code()].insert(drug_id);
    }
  }
  ASSERT_FALSE(owners.empty());
  for (const auto& [code, drug_ids] : owners) {
    EXPECT_EQ(drug_ids.size(), 1u) << "RxNorm " << code << " belongs to " << absl::StrJoin(drug_ids, ", ");
  }
  // Nor may a drug's RxNorm code be a product's (a reference by code would be
  // ambiguous).
  for (const ProductEntry& product : kb->products()) {
    for (const kb::v1::Code& code : product.proto.codes()) {
      if (code.system() != kRxNorm) {
        continue;
      }
      auto it = owners.find(code.code());
      EXPECT_TRUE(it == owners.end()) << "RxNorm " << code.code() << " belongs to product " << product.proto.id()
                                      << " and to drug " << absl::StrJoin(it->second, ", ");
    }
  }
}

TEST(RxNormCodesTest, CodesAreDigitsWithADisplay) {
  auto kb = BundledKb();
  ASSERT_NE(kb, nullptr);
  for (const auto& [drug_id, codes] : RxNormCodesByDrug(*kb)) {
    for (const kb::v1::Code& code : codes) {
      SCOPED_TRACE(drug_id + " RxNorm " + code.code());
      ASSERT_FALSE(code.code().empty());
      EXPECT_NE(code.code()[0], '0') << "an RxCUI has no leading zero";
      for (char c : code.code()) {
        EXPECT_TRUE(absl::ascii_isdigit(static_cast<unsigned char>(c))) << "not a digit: '" << c << "'";
      }
      EXPECT_FALSE(absl::StripAsciiWhitespace(code.display()).empty()) << "no display";
    }
  }
}

TEST(RxNormCodesTest, FloorOfCodedDrugs) {
  auto kb = BundledKb();
  ASSERT_NE(kb, nullptr);
  const size_t coded = RxNormCodesByDrug(*kb).size();
  EXPECT_GE(coded, kMinDrugsWithRxNorm) << coded << " of " << kb->drug_count() << " drugs carry an RxNorm code";
}

// Well-known ingredient codes, each as its source lists it.
TEST(RxNormCodesTest, WellKnownIngredientCodesResolve) {
  auto kb = BundledKb();
  ASSERT_NE(kb, nullptr);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"11289", "warfarin"},        // CPIC drug table
      {"3407", "digoxin"},          // CPIC drug table
      {"3008", "ciclosporin"},      // CPIC drug table (cyclosporine)
      {"54552", "perindopril"},     // VSAC ACE inhibitor or ARB or ARNI ingredient
      {"5640", "ibuprofen"},        // US Core allergy substances; PDDI ibuprofen value set
      {"161", "paracetamol"},       // US Core allergy substances (acetaminophen)
      {"1364430", "apixaban"},      // US Core allergy substances
      {"723", "amoxicillin"},       // US Core allergy substances
      {"6754", "pethidine"},        // US Core allergy substances (meperidine)
      {"5489", "hydrocodone"},      // US Core allergy substances; CDC MME conversion factors
      {"1808", "bumetanide"},       // PDDI CDS bumetanide value set
      {"298869", "eplerenone"},     // PDDI CDS eplerenone value set
      {"1819", "buprenorphine"},    // CDC OMTK data
      {"1545653", "empagliflozin"}, // PEDSnet RxNorm ingredient codeset
      {"8123", "phenelzine"},       // Hadlock Lab CEDA medication concepts; ATC-grouped registry (N06AF)
      {"325646", "aliskiren"},      // Hadlock Lab ATC-grouped registry (C09X)
      {"1991302", "semaglutide"},   // Hadlock Lab CEDA medication concepts
      {"195088", "lopinavir"},      // N3C TermHub RxNorm extract, tty IN
      {"1656339", "sacubitril-valsartan"}, // N3C TermHub RxNorm extract, tty MIN (sacubitril / valsartan)
  };
  for (const auto& [code, drug_id] : expected) {
    SCOPED_TRACE("RxNorm " + code);
    auto index = kb->FindDrug(std::string(kRxNorm) + "|" + code);
    ASSERT_TRUE(index.has_value()) << "no drug has RxNorm " << code;
    EXPECT_EQ(kb->drug(*index).proto.id(), drug_id);
  }
}

}  // namespace
}  // namespace vigil
