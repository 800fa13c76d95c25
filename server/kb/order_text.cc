#include "server/kb/order_text.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace vigil {
namespace {

// Units of strength in RxNorm names and in free text.
bool IsUnit(absl::string_view word) {
  static const std::set<std::string, std::less<>> kUnits = {
      "mg", "mcg", "ug", "µg", "g", "gm", "kg", "ml", "l", "meq", "mmol", "unt", "unit", "units", "iu", "%",
      "mg/ml", "mcg/ml", "mg/hr", "mcg/hr", "mcg/actuat", "mg/actuat", "unt/ml", "meq/ml", "mg/g", "ng"};
  return kUnits.count(word) > 0;
}

// A number, possibly with a unit attached ("500mg", "12.5", "0.05%").
bool IsStrength(absl::string_view word, bool* unit_attached) {
  size_t i = 0;
  bool digit = false;
  while (i < word.size() && (absl::ascii_isdigit(static_cast<unsigned char>(word[i])) || word[i] == '.' ||
                             word[i] == ',')) {
    digit = digit || absl::ascii_isdigit(static_cast<unsigned char>(word[i]));
    ++i;
  }
  if (!digit) {
    return false;
  }
  *unit_attached = i < word.size();
  return i == word.size() || IsUnit(word.substr(i));
}

// Words of dose forms and release types, dropped from the end of a name
// that came without a strength ("amoxicillin tablet").
bool IsDoseFormWord(absl::string_view word) {
  static const std::set<std::string, std::less<>> kWords = {
      "oral", "tablet", "tablets", "tab", "capsule", "capsules", "cap", "solution", "suspension", "syrup",
      "elixir", "injection", "injectable", "cream", "ointment", "gel", "lotion", "patch", "topical",
      "ophthalmic", "otic", "nasal", "spray", "inhaler", "inhalation", "powder", "transdermal", "film",
      "lozenge", "suppository", "rectal", "vaginal", "extended", "release", "delayed", "chewable",
      "disintegrating", "er", "xr", "sr", "dr", "xl", "la", "cr", "ec", "drops", "prefilled", "syringe", "pen",
      "auto-injector", "sublingual", "buccal", "metered", "dose", "aerosol", "foam", "shampoo", "emulsion",
      "product", "pack", "kit", "for", "reconstitution", "intravenous", "intramuscular", "subcutaneous"};
  return kWords.count(word) > 0;
}

// Salt and hydrate words that name the form of an ingredient, not the
// ingredient.
bool IsSaltWord(absl::string_view word) {
  static const std::set<std::string, std::less<>> kWords = {
      "sodium", "potassium", "calcium", "magnesium", "hydrochloride", "hcl", "hydrobromide", "hbr",
      "sulfate", "sulphate", "maleate", "mesylate", "besylate", "besilate", "tartrate", "bitartrate",
      "succinate", "citrate", "fumarate", "acetate", "phosphate", "bromide", "chloride", "dihydrate",
      "monohydrate", "trihydrate", "hemihydrate", "anhydrous", "propionate", "dipropionate", "furoate",
      "xinafoate", "hyclate", "monohydrochloride", "dihydrochloride", "trihydrate", "lactate", "gluconate",
      "carbonate", "nitrate", "oxalate", "pamoate", "valerate", "decanoate", "disodium", "medoxomil",
      "cilexetil", "axetil", "pivoxil", "mofetil", "erbumine", "tromethamine", "olamine", "napsylate",
      "salicylate", "stearate", "estolate", "ethylsuccinate", "palmitate", "bisulfate", "mononitrate",
      "dinitrate", "extended", "release"};
  return kWords.count(word) > 0;
}

std::vector<std::string> Words(absl::string_view text) {
  std::vector<std::string> words;
  for (absl::string_view w : absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
    words.push_back(absl::AsciiStrToLower(w));
  }
  return words;
}

}  // namespace

bool MayBeOrderText(absl::string_view text) {
  if (text.find('|') != absl::string_view::npos) {
    return false;
  }
  for (char c : text) {
    if (absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '/' || c == '[') {
      return true;
    }
  }
  text = absl::StripTrailingAsciiWhitespace(text);
  const size_t space = text.find_last_of(" \t");
  if (space == absl::string_view::npos) {
    return false;
  }
  const absl::string_view last = text.substr(space + 1);
  char lower[32];
  if (last.size() > sizeof(lower)) {
    return false;
  }
  for (size_t i = 0; i < last.size(); ++i) {
    lower[i] = absl::ascii_tolower(static_cast<unsigned char>(last[i]));
  }
  const absl::string_view word(lower, last.size());
  return IsDoseFormWord(word) || IsSaltWord(word);
}

std::string RouteOf(absl::string_view text) {
  const std::string t = absl::AsciiStrToLower(text);
  struct Rule {
    const char* needle;
    const char* route;
  };
  // Order matters: "oral inhalation" is inhaled, "topical gel" topical,
  // "sublingual tablet" sublingual.
  static constexpr Rule kRules[] = {
      {"ophthalmic", "ophthalmic"}, {"eye", "ophthalmic"},       {"otic", "otic"},
      {"ear", "otic"},              {"inhal", "inhaled"},        {"nebul", "inhaled"},
      {"nasal", "nasal"},           {"transdermal", "transdermal"}, {"patch", "transdermal"},
      {"vaginal", "vaginal"},       {"rectal", "rectal"},        {"suppositor", "rectal"},
      {"sublingual", "sublingual"}, {"buccal", "sublingual"},    {"topical", "topical"},
      {"cutaneous", "topical"},     {"cream", "topical"},        {"ointment", "topical"},
      {"lotion", "topical"},        {"shampoo", "topical"},      {"inject", "parenteral"},
      {"intraven", "parenteral"},   {"intramusc", "parenteral"}, {"subcut", "parenteral"},
      {"prefilled syringe", "parenteral"}, {"oral", "oral"},     {"tablet", "oral"},
      {"capsule", "oral"},          {"syrup", "oral"},           {"elixir", "oral"},
      {"by mouth", "oral"},         {"po", "oral"},
  };
  const std::vector<std::string> words = Words(t);
  for (const auto& rule : kRules) {
    const absl::string_view needle = rule.needle;
    // Short needles must be whole words ("po", "ear", "eye").
    if (needle.size() <= 3) {
      for (const auto& w : words) {
        if (w == needle) {
          return rule.route;
        }
      }
    } else if (absl::StrContains(t, needle)) {
      return rule.route;
    }
  }
  return "";
}

bool IsLocalRoute(absl::string_view route) {
  return route == "topical" || route == "ophthalmic" || route == "otic";
}

ParsedOrderText ParseOrderText(absl::string_view text) {
  ParsedOrderText out;
  std::string rest(absl::StripAsciiWhitespace(text));
  // "[Brand]" at the end (RxNorm branded drug names).
  if (const size_t open = rest.rfind('['); open != std::string::npos) {
    const size_t close = rest.find(']', open);
    out.brand = std::string(absl::StripAsciiWhitespace(
        absl::string_view(rest).substr(open + 1, close == std::string::npos ? std::string::npos : close - open - 1)));
    rest.erase(open);
  }
  // Ingredients are separated by " / " in RxNorm names; "/" between two
  // letters ("amoxicillin/clavulanate") too, but not inside a unit
  // ("mg/ml").
  std::vector<std::string> parts;
  {
    std::string current;
    for (size_t i = 0; i < rest.size(); ++i) {
      const char c = rest[i];
      if (c == '/') {
        const bool spaced = (i > 0 && rest[i - 1] == ' ') || (i + 1 < rest.size() && rest[i + 1] == ' ');
        const std::vector<std::string> before = Words(current);
        const bool after_unit = !before.empty() && (IsUnit(before.back()) || absl::ascii_isdigit(
                                                        static_cast<unsigned char>(before.back().back())));
        if (spaced || !after_unit) {
          parts.push_back(current);
          current.clear();
          continue;
        }
      }
      current.push_back(c);
    }
    parts.push_back(current);
  }
  for (size_t p = 0; p < parts.size(); ++p) {
    std::vector<std::string> words = Words(parts[p]);
    std::vector<std::string> name;
    size_t i = 0;
    bool attached = false;
    for (; i < words.size() && !IsStrength(words[i], &attached); ++i) {
      name.push_back(words[i]);
    }
    if (i < words.size()) {
      // The strength, then its unit (unless attached), then the dose form.
      ++i;
      if (!attached && i < words.size() && IsUnit(words[i])) {
        ++i;
      }
      std::vector<std::string> form(words.begin() + static_cast<std::ptrdiff_t>(i), words.end());
      if (!form.empty()) {
        out.dose_form = absl::StrJoin(form, " ");
      }
    } else {
      // No strength: dose-form words at the end belong to the form.
      size_t end = name.size();
      while (end > 1 && IsDoseFormWord(name[end - 1])) {
        --end;
      }
      if (end < name.size()) {
        out.dose_form = absl::StrJoin(name.begin() + static_cast<std::ptrdiff_t>(end), name.end(), " ");
        name.resize(end);
      }
    }
    if (!name.empty()) {
      out.ingredients.push_back(absl::StrJoin(name, " "));
    }
  }
  out.route = RouteOf(out.dose_form);
  return out;
}

std::vector<std::string> NameVariants(absl::string_view name) {
  std::vector<std::string> words = Words(name);
  std::vector<std::string> out;
  out.push_back(absl::StrJoin(words, " "));
  while (words.size() > 1 && IsSaltWord(words.back())) {
    words.pop_back();
    out.push_back(absl::StrJoin(words, " "));
  }
  return out;
}

}  // namespace vigil
