#include "server/codes/clinical_codes.h"

#include <array>
#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace vigil {
namespace {

bool AllDigits(absl::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

// Verhoeff check used by SNOMED CT identifiers.
bool VerhoeffValid(absl::string_view digits) {
  static constexpr std::array<std::array<int, 10>, 10> kD = {{
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
      {2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
      {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
      {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
      {8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}}};
  static constexpr std::array<std::array<int, 10>, 8> kP = {{
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
      {5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
      {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
      {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8}}};
  int c = 0;
  size_t i = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it, ++i) {
    const int digit = *it - '0';
    c = kD[static_cast<size_t>(c)][static_cast<size_t>(kP[i % 8][static_cast<size_t>(digit)])];
  }
  return c == 0;
}

// Mod-10 (Luhn) check digit used by LOINC.
int LoincCheckDigit(absl::string_view digits) {
  int sum = 0;
  bool twice = true;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int d = *it - '0';
    if (twice) {
      d *= 2;
      if (d > 9) {
        d -= 9;
      }
    }
    sum += d;
    twice = !twice;
  }
  return (10 - sum % 10) % 10;
}

std::string StripDotsUpper(absl::string_view code) {
  std::string out;
  for (char c : absl::StripAsciiWhitespace(code)) {
    if (c != '.') {
      out.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

}  // namespace

bool IsConditionSystem(absl::string_view system) {
  return system == kIcd10CmSystem || system == kSnomedSystem;
}

bool IsDrugSystem(absl::string_view system) {
  return system == kRxNormSystem || system == kAtcSystem;
}

absl::Status ValidateCode(absl::string_view system, absl::string_view raw_code) {
  const absl::string_view code = absl::StripAsciiWhitespace(raw_code);
  if (code.empty()) {
    return absl::InvalidArgumentError("code is empty");
  }
  if (system == kIcd10CmSystem) {
    // Letter, digit, alphanumeric, then up to four alphanumerics after an
    // optional dot (dot only in position four).
    const std::string s = StripDotsUpper(code);
    const size_t dot = code.find('.');
    bool ok = s.size() >= 3 && s.size() <= 7 && absl::ascii_isalpha(static_cast<unsigned char>(s[0])) &&
              absl::ascii_isdigit(static_cast<unsigned char>(s[1])) &&
              (dot == absl::string_view::npos || (dot == 3 && code.size() > 4 &&
                                                  code.find('.', dot + 1) == absl::string_view::npos));
    for (size_t i = 2; ok && i < s.size(); ++i) {
      ok = absl::ascii_isalnum(static_cast<unsigned char>(s[i]));
    }
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", code, "' is not an ICD-10-CM code (expected a form like N18.4)"));
    }
    return absl::OkStatus();
  }
  if (system == kSnomedSystem) {
    if (!AllDigits(code) || code.size() < 6 || code.size() > 18 || code[0] == '0') {
      return absl::InvalidArgumentError(
          absl::StrCat("'", code, "' is not a SNOMED CT identifier (6 to 18 digits)"));
    }
    if (!VerhoeffValid(code)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", code, "' is not a SNOMED CT identifier (check digit is wrong)"));
    }
    return absl::OkStatus();
  }
  if (system == kLoincSystem) {
    const size_t dash = code.find('-');
    if (dash == absl::string_view::npos || dash == 0 || dash + 2 != code.size() ||
        !AllDigits(code.substr(0, dash)) || !AllDigits(code.substr(dash + 1)) || dash > 7) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", code, "' is not a LOINC code (expected a form like 62238-1)"));
    }
    if (LoincCheckDigit(code.substr(0, dash)) != code[dash + 1] - '0') {
      return absl::InvalidArgumentError(
          absl::StrCat("'", code, "' is not a LOINC code (check digit is wrong)"));
    }
    return absl::OkStatus();
  }
  if (system == kRxNormSystem) {
    if (!AllDigits(code) || code.size() > 10) {
      return absl::InvalidArgumentError(absl::StrCat("'", code, "' is not an RxNorm concept id (digits)"));
    }
    return absl::OkStatus();
  }
  if (system == kAtcSystem) {
    const std::string s = StripDotsUpper(code);
    // A, A01, A01A, A01AA, A01AA01.
    static constexpr std::array<size_t, 5> kLengths = {1, 3, 4, 5, 7};
    bool ok = false;
    for (size_t len : kLengths) {
      ok = ok || s.size() == len;
    }
    for (size_t i = 0; ok && i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      const bool want_digit = i == 1 || i == 2 || i == 5 || i == 6;
      ok = want_digit ? absl::ascii_isdigit(c) : absl::ascii_isalpha(c);
    }
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", code, "' is not an ATC code (expected a form like N06AB06)"));
    }
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

std::string NormalizeCode(absl::string_view system, absl::string_view code) {
  if (system == kIcd10CmSystem || system == kAtcSystem) {
    return StripDotsUpper(code);
  }
  return std::string(absl::StripAsciiWhitespace(code));
}

bool CodeMatches(absl::string_view system, absl::string_view rule_code,
                 absl::string_view patient_code) {
  if (system == kIcd10CmSystem || system == kAtcSystem) {
    return absl::StartsWith(patient_code, rule_code);
  }
  return patient_code == rule_code;
}

std::optional<CanonicalUnit> CanonicalizeUnit(absl::string_view unit) {
  // Reduce spelling variants: case, spaces, UCUM braces and underscores,
  // '^' and superscript two.
  std::string key;
  for (size_t i = 0; i < unit.size(); ++i) {
    const char c = unit[i];
    if (c == ' ' || c == '{' || c == '}' || c == '_' || c == '^') {
      continue;
    }
    if (static_cast<unsigned char>(c) == 0xC2 && i + 1 < unit.size() &&
        static_cast<unsigned char>(unit[i + 1]) == 0xB2) {
      key.push_back('2');  // "²"
      ++i;
      continue;
    }
    key.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
  }
  static const auto* const kUnits = new absl::flat_hash_map<std::string, CanonicalUnit>({
      // Renal function normalised to body surface area (eGFR).
      {"ml/min/1.73m2", {"mL/min/{1.73_m2}", 1.0}},
      {"ml/min/1.73", {"mL/min/{1.73_m2}", 1.0}},
      {"ml/s/1.73m2", {"mL/min/{1.73_m2}", 60.0}},
      // Clearance, not normalised (creatinine clearance).
      {"ml/min", {"mL/min", 1.0}},
      {"ml/s", {"mL/min", 60.0}},
      {"l/h", {"mL/min", 1000.0 / 60.0}},
      // Concentrations and enzymes used by liver rules.
      {"u/l", {"U/L", 1.0}},
      {"iu/l", {"U/L", 1.0}},
      {"ukat/l", {"U/L", 60.0}},
      {"mg/dl", {"mg/dL", 1.0}},
      {"g/dl", {"g/dL", 1.0}},
      {"g/l", {"g/dL", 0.1}},
      {"1", {"1", 1.0}},
      {"{inr}", {"1", 1.0}},
      {"inr", {"1", 1.0}},
      {"ms", {"ms", 1.0}},
      {"kg", {"kg", 1.0}},
  });
  const auto it = kUnits->find(key);
  if (it == kUnits->end()) {
    return std::nullopt;
  }
  return it->second;
}

}  // namespace vigil
