// Order text as ordering systems send it, parsed into ingredients, brand,
// dose form and route.
#include "server/kb/order_text.h"

#include "gtest/gtest.h"

namespace vigil {
namespace {

TEST(ParseOrderTextTest, RxNormClinicalDrugName) {
  const auto parsed = ParseOrderText("warfarin sodium 5 MG Oral Tablet");
  EXPECT_EQ(parsed.ingredients, (std::vector<std::string>{"warfarin sodium"}));
  EXPECT_EQ(parsed.dose_form, "oral tablet");
  EXPECT_EQ(parsed.route, "oral");
  EXPECT_TRUE(parsed.brand.empty());
}

TEST(ParseOrderTextTest, MultiIngredientBrandedName) {
  const auto parsed = ParseOrderText("lisinopril 10 MG / hydrochlorothiazide 12.5 MG Oral Tablet [Zestoretic]");
  EXPECT_EQ(parsed.ingredients, (std::vector<std::string>{"lisinopril", "hydrochlorothiazide"}));
  EXPECT_EQ(parsed.brand, "Zestoretic");
  EXPECT_EQ(parsed.dose_form, "oral tablet");
  EXPECT_EQ(parsed.route, "oral");
}

TEST(ParseOrderTextTest, FreeTextStrengthAndForm) {
  EXPECT_EQ(ParseOrderText("Amoxicillin 500 mg tablet").ingredients, (std::vector<std::string>{"amoxicillin"}));
  EXPECT_EQ(ParseOrderText("Amoxicillin 500mg tablet").ingredients, (std::vector<std::string>{"amoxicillin"}));
  EXPECT_EQ(ParseOrderText("amoxicillin/clavulanate 875 mg").ingredients,
            (std::vector<std::string>{"amoxicillin", "clavulanate"}));
  EXPECT_EQ(ParseOrderText("Amoxicillin capsule").ingredients, (std::vector<std::string>{"amoxicillin"}));
}

TEST(ParseOrderTextTest, ConcentrationsAreNotIngredientSeparators) {
  const auto parsed = ParseOrderText("morphine sulfate 2 MG/ML Injectable Solution");
  EXPECT_EQ(parsed.ingredients, (std::vector<std::string>{"morphine sulfate"}));
  EXPECT_EQ(parsed.route, "parenteral");
}

TEST(ParseOrderTextTest, RouteFollowsTheDoseForm) {
  EXPECT_EQ(ParseOrderText("diclofenac sodium 10 MG/ML Topical Gel").route, "topical");
  EXPECT_EQ(ParseOrderText("diclofenac sodium 75 MG Delayed Release Oral Tablet").route, "oral");
  EXPECT_EQ(ParseOrderText("timolol 0.5 % Ophthalmic Solution").route, "ophthalmic");
  EXPECT_EQ(ParseOrderText("fluticasone propionate 0.05 MG/ACTUAT Metered Dose Inhaler").route, "inhaled");
  EXPECT_EQ(ParseOrderText("fentanyl 0.025 MG/HR Transdermal System").route, "transdermal");
  EXPECT_EQ(ParseOrderText("buprenorphine 8 MG / naloxone 2 MG Sublingual Tablet").route, "sublingual");
  EXPECT_TRUE(ParseOrderText("warfarin").route.empty());
  EXPECT_TRUE(IsLocalRoute("topical"));
  EXPECT_FALSE(IsLocalRoute("transdermal"));
  EXPECT_FALSE(IsLocalRoute("oral"));
}

TEST(RouteOfTest, FhirRouteDisplays) {
  EXPECT_EQ(RouteOf("Oral route"), "oral");
  EXPECT_EQ(RouteOf("Topical route"), "topical");
  EXPECT_EQ(RouteOf("PO"), "oral");
  EXPECT_EQ(RouteOf("Intravenous route"), "parenteral");
  EXPECT_TRUE(RouteOf("").empty());
}

TEST(NameVariantsTest, DropsTrailingSaltWordsOnly) {
  EXPECT_EQ(NameVariants("warfarin sodium"), (std::vector<std::string>{"warfarin sodium", "warfarin"}));
  EXPECT_EQ(NameVariants("metoprolol succinate"), (std::vector<std::string>{"metoprolol succinate", "metoprolol"}));
  EXPECT_EQ(NameVariants("insulin glargine"), (std::vector<std::string>{"insulin glargine"}));
  // The full name is looked up first: "potassium chloride" is found as it is.
  EXPECT_EQ(NameVariants("potassium chloride").front(), "potassium chloride");
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(MayBeOrderTextTest, OnlyTextThatParsingCouldChange) {
  EXPECT_TRUE(MayBeOrderText("warfarin sodium 5 MG Oral Tablet"));
  EXPECT_TRUE(MayBeOrderText("amoxicillin/clavulanate"));
  EXPECT_TRUE(MayBeOrderText("Zestoretic [Zestoretic]"));
  EXPECT_TRUE(MayBeOrderText("warfarin sodium"));
  EXPECT_TRUE(MayBeOrderText("amoxicillin Tablet"));
  EXPECT_FALSE(MayBeOrderText("no such drug"));
  EXPECT_FALSE(MayBeOrderText("warfarin"));
  // Codes are never order text, whatever their characters.
  EXPECT_FALSE(MayBeOrderText("http://www.whocc.no/atc|B01AA03"));
  EXPECT_FALSE(MayBeOrderText("http://www.nlm.nih.gov/research/umls/rxnorm|11289"));
}

}  // namespace
}  // namespace vigil
