// Code systems, code validation and matching, and lab units.
#ifndef VIGIL_SERVER_CODES_CLINICAL_CODES_H_
#define VIGIL_SERVER_CODES_CLINICAL_CODES_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace vigil {

inline constexpr char kIcd10CmSystem[] = "http://hl7.org/fhir/sid/icd-10-cm";
inline constexpr char kSnomedSystem[] = "http://snomed.info/sct";
inline constexpr char kLoincSystem[] = "http://loinc.org";
inline constexpr char kRxNormSystem[] = "http://www.nlm.nih.gov/research/umls/rxnorm";
inline constexpr char kAtcSystem[] = "http://www.whocc.no/atc";

// True for the code systems conditions may be coded in (ICD-10-CM, SNOMED CT).
bool IsConditionSystem(absl::string_view system);

// True for the code systems drugs may be coded in (RxNorm, ATC).
bool IsDrugSystem(absl::string_view system);

// Checks that `code` is well formed for `system`: ICD-10-CM shape, SNOMED CT
// digits with a valid Verhoeff check digit, LOINC digits with a valid mod-10
// check digit, RxNorm digits, ATC shape. Systems it does not know are not
// checked. Returns InvalidArgument with the reason.
absl::Status ValidateCode(absl::string_view system, absl::string_view code);

// The form in which a code is compared: ICD-10-CM and ATC uppercased with
// dots removed; other systems trimmed.
std::string NormalizeCode(absl::string_view system, absl::string_view code);

// True when a patient's (normalized) code falls under a rule's (normalized)
// code of the same system: prefix match for ICD-10-CM and ATC, exact match
// otherwise.
bool CodeMatches(absl::string_view system, absl::string_view rule_code,
                 absl::string_view patient_code);

// A lab unit reduced to a canonical UCUM unit and a factor: value_in_canonical
// = value * factor.
struct CanonicalUnit {
  // Points into a static table: valid for the life of the program.
  absl::string_view unit;
  double factor = 1.0;
};

// Interprets a unit as sent by a hospital system ("mL/min/1.73m2",
// "mL/min/{1.73_m2}", "ml/s/1.73 m2" ...). Returns nullopt for a unit Vigil
// does not know: such a result must be reported, never guessed.
std::optional<CanonicalUnit> CanonicalizeUnit(absl::string_view unit);

}  // namespace vigil

#endif  // VIGIL_SERVER_CODES_CLINICAL_CODES_H_
