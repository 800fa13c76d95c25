// Medication order text as ordering systems send it, such as
// "warfarin sodium 5 MG Oral Tablet" or
// "lisinopril 10 MG / hydrochlorothiazide 12.5 MG Oral Tablet [Zestoretic]"
// (the RxNorm clinical and branded drug name forms): the ingredients, the
// brand and the dose form, and the route the dose form implies.
#ifndef VIGIL_SERVER_KB_ORDER_TEXT_H_
#define VIGIL_SERVER_KB_ORDER_TEXT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace vigil {

struct ParsedOrderText {
  // The ingredient names, lower case, without strengths, dose form or salt
  // words that the catalogue would not know ("warfarin sodium" stays as it
  // is: ResolveIngredientName drops salt words only when needed).
  std::vector<std::string> ingredients;
  // The bracketed brand, if any ("Zestoretic").
  std::string brand;
  // The dose form, lower case ("oral tablet"), if any.
  std::string dose_form;
  // The route the dose form implies (see RouteOf), or empty.
  std::string route;
};

// True when `text` could resolve differently once parsed: it has a digit, a
// '/' or a '[', or its last word is a dose-form or salt word. False for a
// "system|code" reference. Allocates nothing (screening calls it for every
// reference that no name matches).
bool MayBeOrderText(absl::string_view text);

// Splits order text into its parts. Never fails: text that is only a name
// gives that name as the one ingredient.
ParsedOrderText ParseOrderText(absl::string_view text);

// The route a route or dose-form text implies, as one of "oral",
// "sublingual", "topical", "ophthalmic", "otic", "nasal", "inhaled",
// "transdermal", "vaginal", "rectal", "parenteral"; empty when it implies
// none. Accepts FHIR/SNOMED route displays ("Oral route", "Topical route").
std::string RouteOf(absl::string_view text);

// True for routes whose systemic exposure is small (skin, eye, ear): such a
// medication is not counted as systemic therapy of its class.
bool IsLocalRoute(absl::string_view route);

// `name` and the same name with trailing salt words dropped one at a time
// ("warfarin sodium" -> "warfarin"), longest first.
std::vector<std::string> NameVariants(absl::string_view name);

}  // namespace vigil

#endif  // VIGIL_SERVER_KB_ORDER_TEXT_H_
