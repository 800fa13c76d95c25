#include "server/kb/lint.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace vigil {
namespace {

std::string Where(const Origin& origin) { return absl::StrCat(origin.file, ":", origin.line); }

// The drugs a label's partner name stands for in the catalogue: one drug, a
// product's ingredients, a class's members, or none.
std::vector<DrugIndex> PartnerDrugs(const KnowledgeBase& kb, absl::string_view name) {
  if (const auto d = kb.FindDrug(name); d.has_value()) {
    return {*d};
  }
  if (const auto p = kb.FindProduct(name); p.has_value()) {
    return kb.product(*p).ingredients;
  }
  if (const auto c = kb.FindClass(name); c.has_value()) {
    return kb.drug_class(*c).members;
  }
  return {};
}

// Phrases by which a note says something is absent from the catalogue.
constexpr absl::string_view kAbsentPhrases[] = {
    "not in the catalogue", "not in the catalog",  "not in this catalogue", "not catalogued",
    "outside the catalogue",  "not in the knowledge base", "not in this knowledge base",
};

bool HasLetter(absl::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) { return absl::ascii_isalpha(static_cast<unsigned char>(c)); });
}

// The parts of `sentence` that name what a note says is absent, given the
// position of the absence phrase and its length: the text before it (only
// the enclosing parenthesis's when the phrase is inside one and that holds
// words), and a parenthesis right after it ("outside the catalogue (a, b)").
std::vector<absl::string_view> AbsentRegions(absl::string_view sentence, size_t at, size_t length) {
  std::vector<absl::string_view> regions;
  absl::string_view before = sentence.substr(0, at);
  const size_t open = before.rfind('(');
  if (open != absl::string_view::npos && before.find(')', open) == absl::string_view::npos) {
    const absl::string_view inside = before.substr(open + 1);
    regions.push_back(HasLetter(inside) ? inside : before.substr(0, open));
  } else {
    regions.push_back(before);
  }
  absl::string_view after = absl::StripLeadingAsciiWhitespace(sentence.substr(at + length));
  if (!after.empty() && after.front() == '(') {
    const size_t close = after.find(')');
    regions.push_back(after.substr(1, close == absl::string_view::npos ? absl::string_view::npos : close - 1));
  }
  return regions;
}

// Words that are never a drug name on their own, however the catalogue's
// synonyms read: they would make every note a match.
bool IsFunctionWord(absl::string_view word) {
  static const std::set<std::string, std::less<>> kWords = {
      "a", "an", "and", "or", "the", "of", "with", "is", "are", "not", "in", "its", "it", "which",
      "also", "label", "labels", "smpc", "catalogue", "catalog", "encoded", "interactions", "interaction",
      "contraindicated", "contraindicates", "other", "no", "nor", "as", "by", "to", "for", "on", "at",
  };
  return kWords.count(word) > 0;
}

// Candidate drug names in `text` (the part of a clause before an absence
// phrase): each comma- or conjunction-separated item, and each word and pair
// of words in it.
std::vector<std::string> Candidates(absl::string_view text) {
  std::string cleaned;
  for (char c : text) {
    cleaned.push_back((c == '(' || c == ')' || c == ':' || c == '"') ? ',' : c);
  }
  std::vector<std::string> out;
  for (absl::string_view item : absl::StrSplit(cleaned, ',')) {
    item = absl::StripAsciiWhitespace(item);
    std::vector<std::string> words;
    for (absl::string_view w : absl::StrSplit(item, ' ', absl::SkipEmpty())) {
      w = absl::StripAsciiWhitespace(w);
      while (!w.empty() && (w.back() == '.' || w.back() == ';')) {
        w.remove_suffix(1);
      }
      words.push_back(absl::AsciiStrToLower(w));
    }
    // Items are also split on " and " / " or ".
    std::vector<std::string> part;
    auto flush = [&]() {
      if (!part.empty()) {
        out.push_back(absl::StrJoin(part, " "));
      }
      part.clear();
    };
    for (size_t i = 0; i < words.size(); ++i) {
      const std::string& w = words[i];
      if (w == "and" || w == "or") {
        flush();
        continue;
      }
      part.push_back(w);
      if (!IsFunctionWord(w)) {
        out.push_back(w);
        if (i + 1 < words.size() && !IsFunctionWord(words[i + 1])) {
          out.push_back(absl::StrCat(w, " ", words[i + 1]));
        }
        // "glecaprevir/pibrentasvir": each side.
        for (absl::string_view side : absl::StrSplit(w, '/', absl::SkipEmpty())) {
          if (side.size() != w.size()) {
            out.emplace_back(side);
          }
        }
      }
    }
    flush();
  }
  return out;
}

// Appends a problem for each drug that `note` says is absent but is present.
void CheckNote(const KnowledgeBase& kb, absl::string_view where, absl::string_view note,
               std::vector<std::string>* problems) {
  if (note.empty()) {
    return;
  }
  const std::string lower = absl::AsciiStrToLower(note);
  // Clauses end at a sentence's end or a semicolon.
  for (absl::string_view sentence : absl::StrSplit(lower, absl::ByAnyChar(".;"))) {
    size_t at = absl::string_view::npos;
    size_t length = 0;
    for (absl::string_view phrase : kAbsentPhrases) {
      if (const size_t found = sentence.find(phrase); found < at) {
        at = found;
        length = phrase.size();
      }
    }
    if (at == absl::string_view::npos) {
      continue;
    }
    std::vector<std::string> candidates;
    for (absl::string_view region : AbsentRegions(sentence, at, length)) {
      auto more = Candidates(region);
      candidates.insert(candidates.end(), more.begin(), more.end());
    }
    std::set<std::string> reported;
    for (const std::string& candidate : candidates) {
      const auto drugs = PartnerDrugs(kb, candidate);
      // A class is "not in the catalogue" only in the sense of its members;
      // the note is stale when a drug or product of that name exists.
      const bool is_drug = kb.FindDrug(candidate).has_value() || kb.FindProduct(candidate).has_value();
      if (!is_drug || drugs.empty() || !reported.insert(candidate).second) {
        continue;
      }
      problems->push_back(absl::StrCat(where, ": a note says '", candidate,
                                       "' is not in the catalogue, but the catalogue has drug '",
                                       kb.drug(drugs.front()).proto.id(),
                                       "': encode the label fact behind the note and rewrite it"));
    }
  }
}

}  // namespace

std::vector<std::string> LabelClosureGaps(const KnowledgeBase& kb) {
  std::vector<std::string> gaps;
  for (const auto& li : kb.label_interactions()) {
    const auto drug = kb.FindDrug(li.drug());
    if (!drug.has_value()) {
      continue;  // The loader refuses this.
    }
    for (const auto& partner : li.partners()) {
      for (DrugIndex other : PartnerDrugs(kb, partner.name())) {
        if (other == *drug || !kb.RulesForPair(*drug, other).empty()) {
          continue;
        }
        gaps.push_back(absl::StrCat(Where(kb.drug(*drug).origin), ": the ", partner.label(), " label of ",
                                    li.drug(), " lists '", partner.name(), "' (",
                                    kb::v1::LabelStatement_Name(partner.statement()), ") but no rule covers ",
                                    li.drug(), " with ", kb.drug(other).proto.id()));
      }
    }
  }
  return gaps;
}

std::vector<std::string> StaleCatalogueNotes(const KnowledgeBase& kb) {
  std::vector<std::string> problems;
  for (const auto& entry : kb.drugs()) {
    const std::string where = Where(entry.origin);
    CheckNote(kb, absl::StrCat(where, " (drug ", entry.proto.id(), ")"), entry.proto.interpretation(), &problems);
    for (const auto& ci : entry.proto.contraindications()) {
      CheckNote(kb, absl::StrCat(where, " (contraindication ", ci.id(), ")"), ci.interpretation(), &problems);
    }
  }
  for (const auto& rule : kb.interactions()) {
    if (rule.origin_name != "curated") {
      continue;
    }
    const std::string where = absl::StrCat(Where(rule.origin), " (interaction ", rule.proto.id(), ")");
    CheckNote(kb, where, rule.proto.interpretation(), &problems);
    CheckNote(kb, where, rule.proto.management(), &problems);
  }
  for (const auto& [id, set] : kb.condition_sets()) {
    CheckNote(kb, absl::StrCat("condition set ", id), set.description(), &problems);
  }
  return problems;
}

std::vector<std::string> LintKnowledgeBase(const KnowledgeBase& kb) {
  std::vector<std::string> problems = StaleCatalogueNotes(kb);
  auto gaps = LabelClosureGaps(kb);
  problems.insert(problems.end(), std::make_move_iterator(gaps.begin()), std::make_move_iterator(gaps.end()));
  return problems;
}

}  // namespace vigil
