#include "server/kb/validators.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/codes/clinical_codes.h"
#include "server/common/text.h"

namespace vigil {

using google::protobuf::TextFormat;
using kb_internal::ClassAncestors;
using kb_internal::ParsedFile;
using kb_internal::WhereMap;

namespace {

constexpr size_t kMaxSummaryChars = 140;

// Locates the line (1-based) of `field[index]` inside `tree`, or 0.
int LineOf(const TextFormat::ParseInfoTree* tree, const google::protobuf::Message& msg,
           absl::string_view field, int index = -1) {
  if (tree == nullptr) {
    return 0;
  }
  const auto* fd = msg.GetDescriptor()->FindFieldByName(std::string(field));
  if (fd == nullptr) {
    return 0;
  }
  const auto loc = tree->GetLocation(fd, fd->is_repeated() ? std::max(index, 0) : -1);
  return loc.line >= 0 ? loc.line + 1 : 0;
}

// The positions inside `field[index]` of `msg`, or null.
const TextFormat::ParseInfoTree* Nested(const TextFormat::ParseInfoTree* tree,
                                        const google::protobuf::Message& msg,
                                        absl::string_view field, int index) {
  if (tree == nullptr) {
    return nullptr;
  }
  const auto* fd = msg.GetDescriptor()->FindFieldByName(std::string(field));
  if (fd == nullptr) {
    return nullptr;
  }
  return tree->GetTreeForNested(fd, fd->is_repeated() ? index : -1);
}

// True for a lowercase slug: [a-z0-9][a-z0-9-]*, not ending in '-', at most
// 128 characters.
bool IsSlug(absl::string_view id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  if (!absl::ascii_islower(static_cast<unsigned char>(id[0])) &&
      !absl::ascii_isdigit(static_cast<unsigned char>(id[0]))) {
    return false;
  }
  for (char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (!(absl::ascii_islower(u) || absl::ascii_isdigit(u) || c == '-')) {
      return false;
    }
  }
  return id.back() != '-';
}

}  // namespace

// ---------------------------------------------------------------------------
// Shared checks.

void KnowledgeBaseBuilder::CheckSources(const ParsedFile& f,
                                        const google::protobuf::RepeatedPtrField<std::string>& ids,
                                        int line, absl::string_view what, bool required) {
  if (required && ids.empty()) {
    Error(f.path, line, absl::StrCat(what, " cites no source"));
  }
  for (const auto& id : ids) {
    if (!source_ids_.contains(id)) {
      Error(f.path, line, absl::StrCat(what, " cites unknown source '", id, "'"));
    }
  }
}

void KnowledgeBaseBuilder::CheckSummary(const ParsedFile& f, int line, absl::string_view what,
                                        absl::string_view summary) {
  if (summary.empty()) {
    Error(f.path, line, absl::StrCat(what, " has no summary"));
  } else if (summary.size() >= kMaxSummaryChars) {
    Error(f.path, line,
          absl::StrCat(what, " summary is ", summary.size(), " characters; it must be under ",
                       kMaxSummaryChars));
  }
}

void KnowledgeBaseBuilder::CheckSeverity(const ParsedFile& f, int line, absl::string_view what,
                                         int severity) {
  if (severity <= 0 || !v1::Severity_IsValid(severity)) {
    Error(f.path, line, absl::StrCat(what, " has no severity"));
  }
}

void KnowledgeBaseBuilder::RegisterRuleId(const ParsedFile& f, int line, const std::string& id) {
  if (!IsSlug(id)) {
    Error(f.path, line, absl::StrCat("rule id '", id, "' is not a lowercase slug"));
    return;
  }
  const std::string where = absl::StrCat(f.path, ":", line);
  const auto [it, inserted] = rule_ids_.emplace(id, where);
  if (!inserted) {
    Error(f.path, line, absl::StrCat("duplicate rule id '", id, "' (first defined at ", it->second, ")"));
  }
}

void KnowledgeBaseBuilder::IndexDrugNames(KnowledgeBase& kb, DrugIndex d, const ParsedFile& f,
                                          int line) {
  const auto& drug = kb.drugs_[d].proto;
  std::vector<std::string> names = {drug.id(), drug.name()};
  names.insert(names.end(), drug.synonyms().begin(), drug.synonyms().end());
  names.insert(names.end(), drug.brand_names().begin(), drug.brand_names().end());
  for (const auto& name : names) {
    const std::string key = NormalizeName(name);
    if (key.empty()) {
      continue;
    }
    const auto [it, inserted] = kb.drug_names_.emplace(key, d);
    if (!inserted && it->second != d) {
      Error(f.path, line,
            absl::StrCat("drug '", drug.id(), "': name '", name, "' is also a name of drug '",
                         kb.drugs_[it->second].proto.id(), "'"));
    }
  }
  for (const auto& code : drug.codes()) {
    if (!IsDrugSystem(code.system())) {
      Error(f.path, line,
            absl::StrCat("drug '", drug.id(), "': code system '", code.system(),
                         "' is not a drug code system (RxNorm or ATC)"));
      continue;
    }
    if (auto st = ValidateCode(code.system(), code.code()); !st.ok()) {
      Error(f.path, line, absl::StrCat("drug '", drug.id(), "': ", st.message()));
      continue;
    }
    const std::string key = absl::StrCat(code.system(), "|", NormalizeCode(code.system(), code.code()));
    const auto [it, inserted] = kb.drug_codes_.emplace(key, d);
    if (!inserted && it->second != d) {
      Error(f.path, line,
            absl::StrCat("drug '", drug.id(), "': code ", key, " is also a code of drug '",
                         kb.drugs_[it->second].proto.id(), "'"));
    }
  }
}

void KnowledgeBaseBuilder::IndexClassNames(KnowledgeBase& kb, ClassIndex c, const ParsedFile& f,
                                           int line) {
  const auto& cls = kb.classes_[c].proto;
  std::vector<std::string> names = {cls.id(), cls.name()};
  names.insert(names.end(), cls.synonyms().begin(), cls.synonyms().end());
  for (const auto& name : names) {
    const std::string key = NormalizeName(name);
    if (key.empty()) {
      continue;
    }
    const auto [it, inserted] = kb.class_names_.emplace(key, c);
    if (!inserted && it->second != c) {
      Error(f.path, line,
            absl::StrCat("class '", cls.id(), "': name '", name, "' is also a name of class '",
                         kb.classes_[it->second].proto.id(), "'"));
    }
  }
  for (const auto& code : cls.codes()) {
    if (auto st = ValidateCode(code.system(), code.code()); !st.ok()) {
      Error(f.path, line, absl::StrCat("class '", cls.id(), "': ", st.message()));
      continue;
    }
    kb.class_codes_.emplace(absl::StrCat(code.system(), "|", NormalizeCode(code.system(), code.code())), c);
  }
}

std::vector<DrugIndex> KnowledgeBaseBuilder::ExpandParticipants(
    const KnowledgeBase& kb, const google::protobuf::RepeatedPtrField<kb::v1::Participant>& side,
    const ParsedFile& f, int line, absl::string_view what) {
  std::vector<DrugIndex> out;
  if (side.empty()) {
    Error(f.path, line, absl::StrCat(what, " names no drug or class"));
  }
  for (const auto& p : side) {
    switch (p.participant_case()) {
      case kb::v1::Participant::kDrug: {
        const auto it = kb.drug_names_.find(NormalizeName(p.drug()));
        if (it == kb.drug_names_.end() || kb.drugs_[it->second].proto.id() != p.drug()) {
          Error(f.path, line, absl::StrCat(what, " names unknown drug id '", p.drug(), "'"));
        } else {
          out.push_back(it->second);
        }
        break;
      }
      case kb::v1::Participant::kDrugClass: {
        const auto it = kb.class_names_.find(NormalizeName(p.drug_class()));
        if (it == kb.class_names_.end() || kb.classes_[it->second].proto.id() != p.drug_class()) {
          Error(f.path, line, absl::StrCat(what, " names unknown class id '", p.drug_class(), "'"));
        } else {
          const auto& members = kb.classes_[it->second].members;
          out.insert(out.end(), members.begin(), members.end());
        }
        break;
      }
      default:
        Error(f.path, line, absl::StrCat(what, " has a participant with neither drug nor drug_class"));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ---------------------------------------------------------------------------
// Sources, classes and condition sets.

void KnowledgeBaseBuilder::IndexSources(KnowledgeBase& kb, const ParsedFile& f, WhereMap& source_where) {
  const auto& c = f.content;
  for (int i = 0; i < c.sources_size(); ++i) {
    const auto& s = c.sources(i);
    const int line = LineOf(f.tree.get(), c, "sources", i);
    if (!IsSlug(s.id())) {
      Error(f.path, line, absl::StrCat("source id '", s.id(), "' is not a lowercase slug"));
      continue;
    }
    if (s.title().empty()) {
      Error(f.path, line, absl::StrCat("source '", s.id(), "' has no title"));
    }
    const auto [it, inserted] = source_where.emplace(s.id(), absl::StrCat(f.path, ":", line));
    if (!inserted) {
      Error(f.path, line, absl::StrCat("duplicate source id '", s.id(), "' (first defined at ", it->second, ")"));
      continue;
    }
    source_ids_.insert(s.id());
    kb.sources_.emplace(s.id(), s);
  }
}

void KnowledgeBaseBuilder::IndexClasses(KnowledgeBase& kb, const ParsedFile& f, WhereMap& class_where) {
  const auto& c = f.content;
  for (int i = 0; i < c.classes_size(); ++i) {
    const auto& cls = c.classes(i);
    const int line = LineOf(f.tree.get(), c, "classes", i);
    if (!IsSlug(cls.id())) {
      Error(f.path, line, absl::StrCat("class id '", cls.id(), "' is not a lowercase slug"));
      continue;
    }
    if (cls.name().empty()) {
      Error(f.path, line, absl::StrCat("class '", cls.id(), "' has no name"));
    }
    const auto [it, inserted] = class_where.emplace(cls.id(), absl::StrCat(f.path, ":", line));
    if (!inserted) {
      Error(f.path, line, absl::StrCat("duplicate class id '", cls.id(), "' (first defined at ", it->second, ")"));
      continue;
    }
    CheckSources(f, cls.sources(), line, absl::StrCat("class '", cls.id(), "'"), false);
    const auto index = static_cast<ClassIndex>(kb.classes_.size());
    kb.classes_.push_back(ClassEntry{cls, {}, {}});
    IndexClassNames(kb, index, f, line);
  }
}

void KnowledgeBaseBuilder::IndexConditionSets(KnowledgeBase& kb, const ParsedFile& f,
                                              WhereMap& condition_set_where) {
  const auto& c = f.content;
  for (int i = 0; i < c.condition_sets_size(); ++i) {
    const auto& cs = c.condition_sets(i);
    const int line = LineOf(f.tree.get(), c, "condition_sets", i);
    const std::string what = absl::StrCat("condition set '", cs.id(), "'");
    if (!IsSlug(cs.id())) {
      Error(f.path, line, absl::StrCat("condition set id '", cs.id(), "' is not a lowercase slug"));
      continue;
    }
    const auto [it, inserted] = condition_set_where.emplace(cs.id(), absl::StrCat(f.path, ":", line));
    if (!inserted) {
      Error(f.path, line, absl::StrCat("duplicate condition set id '", cs.id(), "' (first defined at ", it->second, ")"));
      continue;
    }
    const bool has_age = cs.has_age() && (cs.age().min_years() != 0 || cs.age().below_years() != 0);
    if (cs.codes().empty() && cs.labs().empty() && !has_age) {
      Error(f.path, line, absl::StrCat(what, " has neither codes, lab thresholds nor an age range"));
    }
    if (cs.has_age() && (!has_age || cs.age().min_years() < 0 || cs.age().below_years() < 0 ||
                         (cs.age().below_years() != 0 && cs.age().below_years() <= cs.age().min_years()))) {
      Error(f.path, line, absl::StrCat(what, ": the age range is empty or negative"));
    }
    kb::v1::ConditionSet normalized = NormalizeConditionSet(f, i, line, what);
    CheckSources(f, cs.sources(), line, what, false);
    kb.condition_sets_.emplace(cs.id(), std::move(normalized));
  }
}

kb::v1::ConditionSet KnowledgeBaseBuilder::NormalizeConditionSet(const ParsedFile& f, int i, int line,
                                                                 const std::string& what) {
  const auto& c = f.content;
  const auto& cs = c.condition_sets(i);
  kb::v1::ConditionSet normalized = cs;
  const auto* tree = Nested(f.tree.get(), c, "condition_sets", i);
  for (int k = 0; k < cs.codes_size(); ++k) {
    const auto& code = cs.codes(k);
    const int code_line = tree != nullptr ? LineOf(tree, cs, "codes", k) : line;
    if (!IsConditionSystem(code.system())) {
      Error(f.path, code_line,
            absl::StrCat(what, ": code system '", code.system(),
                         "' is not a condition code system (ICD-10-CM or SNOMED CT)"));
    } else if (auto st = ValidateCode(code.system(), code.code()); !st.ok()) {
      Error(f.path, code_line, absl::StrCat(what, ": ", st.message()));
    }
    normalized.mutable_codes(k)->set_code(NormalizeCode(code.system(), code.code()));
  }
  for (int k = 0; k < cs.labs_size(); ++k) {
    const auto& lab = cs.labs(k);
    const int lab_line = tree != nullptr ? LineOf(tree, cs, "labs", k) : line;
    if (lab.loinc_codes().empty()) {
      Error(f.path, lab_line, absl::StrCat(what, ": lab threshold has no LOINC code"));
    }
    for (const auto& loinc : lab.loinc_codes()) {
      if (auto st = ValidateCode(kLoincSystem, loinc); !st.ok()) {
        Error(f.path, lab_line, absl::StrCat(what, ": ", st.message()));
      }
    }
    if (lab.comparator() == kb::v1::COMPARATOR_UNSPECIFIED) {
      Error(f.path, lab_line, absl::StrCat(what, ": lab threshold has no comparator"));
    }
    if (lab.estimate_from_creatinine() && CanonicalizeUnit(lab.unit()).has_value() &&
        CanonicalizeUnit(lab.unit())->unit != "mL/min/{1.73_m2}") {
      Error(f.path, lab_line, absl::StrCat(what, ": estimate_from_creatinine needs an eGFR threshold in mL/min/{1.73_m2}"));
    }
    if (lab.max_age_days() < 0) {
      Error(f.path, lab_line, absl::StrCat(what, ": lab threshold max_age_days must not be negative"));
    }
    if (!std::isfinite(lab.value()) || lab.value() < 0) {
      Error(f.path, lab_line, absl::StrCat(what, ": lab threshold value must be a finite, non-negative number"));
    }
    const auto unit = CanonicalizeUnit(lab.unit());
    if (!unit.has_value()) {
      Error(f.path, lab_line, absl::StrCat(what, ": lab threshold unit '", lab.unit(), "' is not a unit Vigil can convert"));
    } else {
      // Store thresholds in canonical units so results compare directly.
      normalized.mutable_labs(k)->set_unit(std::string(unit->unit));
      normalized.mutable_labs(k)->set_value(lab.value() * unit->factor);
    }
  }
  return normalized;
}

void KnowledgeBaseBuilder::ResolveClassParents(KnowledgeBase& kb, WhereMap& class_where) {
  for (auto& entry : kb.classes_) {
    for (const auto& parent : entry.proto.parents()) {
      const auto it = kb.class_names_.find(NormalizeName(parent));
      if (it == kb.class_names_.end() || kb.classes_[it->second].proto.id() != parent) {
        ErrorAt(class_where[entry.proto.id()],
                absl::StrCat("class '", entry.proto.id(), "' has unknown parent class '", parent, "'"));
      } else {
        entry.parents.push_back(it->second);
      }
    }
  }
}

ClassAncestors KnowledgeBaseBuilder::ComputeClassAncestors(const KnowledgeBase& kb, WhereMap& class_where) {
  ClassAncestors ancestors(kb.classes_.size());
  std::vector<int> state(kb.classes_.size(), 0);  // 0 new, 1 visiting, 2 done
  std::function<void(ClassIndex)> visit = [&](ClassIndex c) {
    if (state[c] == 2) {
      return;
    }
    if (state[c] == 1) {
      ErrorAt(class_where[kb.classes_[c].proto.id()],
              absl::StrCat("class '", kb.classes_[c].proto.id(), "' is its own ancestor"));
      return;
    }
    state[c] = 1;
    std::vector<ClassIndex> acc = {c};
    for (ClassIndex p : kb.classes_[c].parents) {
      visit(p);
      acc.insert(acc.end(), ancestors[p].begin(), ancestors[p].end());
    }
    std::sort(acc.begin(), acc.end());
    acc.erase(std::unique(acc.begin(), acc.end()), acc.end());
    ancestors[c] = std::move(acc);
    state[c] = 2;
  };
  for (ClassIndex c = 0; c < kb.classes_.size(); ++c) {
    visit(c);
  }
  return ancestors;
}

// ---------------------------------------------------------------------------
// Drugs.

void KnowledgeBaseBuilder::IndexDrugs(KnowledgeBase& kb, const ParsedFile& f, const ClassAncestors& ancestors,
                                      const WhereMap& condition_set_where, WhereMap& drug_where) {
  const auto& c = f.content;
  for (int i = 0; i < c.drugs_size(); ++i) {
    const auto& drug = c.drugs(i);
    const int line = LineOf(f.tree.get(), c, "drugs", i);
    const std::string what = absl::StrCat("drug '", drug.id(), "'");
    if (!IsSlug(drug.id())) {
      Error(f.path, line, absl::StrCat("drug id '", drug.id(), "' is not a lowercase slug"));
      continue;
    }
    if (drug.name().empty()) {
      Error(f.path, line, absl::StrCat(what, " has no name"));
    }
    const auto [it, inserted] = drug_where.emplace(drug.id(), absl::StrCat(f.path, ":", line));
    if (!inserted) {
      Error(f.path, line, absl::StrCat("duplicate drug id '", drug.id(), "' (first defined at ", it->second, ")"));
      continue;
    }
    CheckSources(f, drug.sources(), line, what, true);
    DrugEntry entry = MakeDrugEntry(kb, f, drug, line, what, ancestors);
    CheckDrugCitations(f, i, line, what);
    CheckContraindications(f, i, line, what, condition_set_where);
    const auto index = static_cast<DrugIndex>(kb.drugs_.size());
    kb.drugs_.push_back(std::move(entry));
    IndexDrugNames(kb, index, f, line);
  }
}

DrugEntry KnowledgeBaseBuilder::MakeDrugEntry(const KnowledgeBase& kb, const ParsedFile& f,
                                              const kb::v1::Drug& drug, int line, const std::string& what,
                                              const ClassAncestors& ancestors) {
  DrugEntry entry;
  entry.proto = drug;
  entry.origin = Origin{f.path, line};
  for (const auto& cls : drug.classes()) {
    const auto cit = kb.class_names_.find(NormalizeName(cls));
    if (cit == kb.class_names_.end() || kb.classes_[cit->second].proto.id() != cls) {
      Error(f.path, line, absl::StrCat(what, " names unknown class '", cls, "'"));
      continue;
    }
    const auto& anc = ancestors[cit->second];
    entry.all_classes.insert(entry.all_classes.end(), anc.begin(), anc.end());
  }
  std::sort(entry.all_classes.begin(), entry.all_classes.end());
  entry.all_classes.erase(std::unique(entry.all_classes.begin(), entry.all_classes.end()),
                          entry.all_classes.end());
  entry.additive_effects.assign(drug.additive_effects().begin(), drug.additive_effects().end());
  for (const auto& score : drug.effect_scores()) {
    if (score.effect().empty() || score.score() < 1) {
      Error(f.path, line, absl::StrCat(what, ": an effect score needs an effect and a score of at least 1"));
      continue;
    }
    CheckSources(f, score.sources(), line, absl::StrCat(what, " effect score '", score.effect(), "'"), true);
    entry.additive_effects.push_back(score.effect());
    entry.effect_scores.emplace_back(score.effect(), score.score());
  }
  std::sort(entry.effect_scores.begin(), entry.effect_scores.end());
  for (size_t k = 1; k < entry.effect_scores.size(); ++k) {
    if (entry.effect_scores[k].first == entry.effect_scores[k - 1].first) {
      Error(f.path, line, absl::StrCat(what, ": effect '", entry.effect_scores[k].first, "' is scored twice"));
    }
  }
  for (ClassIndex ci : entry.all_classes) {
    const auto& effects = kb.classes_[ci].proto.additive_effects();
    entry.additive_effects.insert(entry.additive_effects.end(), effects.begin(), effects.end());
  }
  std::sort(entry.additive_effects.begin(), entry.additive_effects.end());
  entry.additive_effects.erase(
      std::unique(entry.additive_effects.begin(), entry.additive_effects.end()),
      entry.additive_effects.end());
  return entry;
}

void KnowledgeBaseBuilder::CheckDrugCitations(const ParsedFile& f, int i, int line, const std::string& what) {
  const auto& drug = f.content.drugs(i);
  const auto* tree = Nested(f.tree.get(), f.content, "drugs", i);
  for (int k = 0; k < drug.side_effects_size(); ++k) {
    CheckSources(f, drug.side_effects(k).sources(),
                 tree != nullptr ? LineOf(tree, drug, "side_effects", k) : line,
                 absl::StrCat(what, " side effect '", drug.side_effects(k).name(), "'"), false);
  }
  for (int k = 0; k < drug.indications_size(); ++k) {
    CheckSources(f, drug.indications(k).sources(),
                 tree != nullptr ? LineOf(tree, drug, "indications", k) : line,
                 absl::StrCat(what, " indication"), false);
  }
}

void KnowledgeBaseBuilder::CheckContraindications(const ParsedFile& f, int i, int line, const std::string& what,
                                                  const WhereMap& condition_set_where) {
  const auto& drug = f.content.drugs(i);
  const auto* tree = Nested(f.tree.get(), f.content, "drugs", i);
  for (int k = 0; k < drug.contraindications_size(); ++k) {
    const auto& ci = drug.contraindications(k);
    const int ci_line = tree != nullptr ? LineOf(tree, drug, "contraindications", k) : line;
    const std::string ci_what = absl::StrCat(what, " contraindication '", ci.id(), "'");
    RegisterRuleId(f, ci_line, ci.id());
    const bool has_set = !ci.condition_set().empty();
    if (has_set == ci.hypersensitivity()) {
      Error(f.path, ci_line,
            absl::StrCat(ci_what, " must set exactly one of condition_set and hypersensitivity"));
    }
    if (has_set && !condition_set_where.contains(ci.condition_set())) {
      Error(f.path, ci_line,
            absl::StrCat(ci_what, " names unknown condition set '", ci.condition_set(), "'"));
    }
    CheckSeverity(f, ci_line, ci_what, ci.severity());
    CheckSummary(f, ci_line, ci_what, ci.summary());
    CheckSources(f, ci.sources(), ci_line, ci_what, true);
  }
}

// ---------------------------------------------------------------------------
// Products and label partners.

// Each product names its ingredients by drug id; its names and codes must not
// be a drug's (a drug name is looked up first and would hide it).
void KnowledgeBaseBuilder::IndexProducts(KnowledgeBase& kb, const ParsedFile& f) {
  const auto& c = f.content;
  for (int i = 0; i < c.products_size(); ++i) {
    const auto& product = c.products(i);
    const int line = LineOf(f.tree.get(), c, "products", i);
    const std::string what = absl::StrCat("product '", product.id(), "'");
    if (!IsSlug(product.id())) {
      Error(f.path, line, absl::StrCat("product id '", product.id(), "' is not a lowercase slug"));
      continue;
    }
    if (product.name().empty()) {
      Error(f.path, line, absl::StrCat(what, " has no name"));
    }
    if (product.ingredients().empty()) {
      Error(f.path, line, absl::StrCat(what, " has no ingredients"));
    }
    CheckSources(f, product.sources(), line, what, true);
    ProductEntry entry;
    entry.proto = product;
    entry.origin = Origin{f.path, line};
    for (const auto& id : product.ingredients()) {
      const auto it = kb.drug_names_.find(NormalizeName(id));
      if (it == kb.drug_names_.end() || kb.drugs_[it->second].proto.id() != id) {
        Error(f.path, line, absl::StrCat(what, " names unknown ingredient drug id '", id, "'"));
        continue;
      }
      if (std::find(entry.ingredients.begin(), entry.ingredients.end(), it->second) != entry.ingredients.end()) {
        Error(f.path, line, absl::StrCat(what, " names ingredient '", id, "' twice"));
        continue;
      }
      entry.ingredients.push_back(it->second);
    }
    IndexProductNames(kb, static_cast<ProductIndex>(kb.products_.size()), product, f, line, what);
    kb.products_.push_back(std::move(entry));
  }
}

void KnowledgeBaseBuilder::IndexProductNames(KnowledgeBase& kb, ProductIndex index, const kb::v1::Product& product,
                                             const ParsedFile& f, int line, const std::string& what) {
  std::vector<std::string> names = {product.id(), product.name()};
  names.insert(names.end(), product.synonyms().begin(), product.synonyms().end());
  names.insert(names.end(), product.brand_names().begin(), product.brand_names().end());
  for (const auto& name : names) {
    const std::string key = NormalizeName(name);
    if (key.empty()) {
      continue;
    }
    if (const auto d = kb.drug_names_.find(key); d != kb.drug_names_.end()) {
      Error(f.path, line, absl::StrCat(what, ": name '", name, "' is also a name of drug '",
                                       kb.drugs_[d->second].proto.id(), "'"));
      continue;
    }
    const auto [it, inserted] = kb.product_names_.emplace(key, index);
    if (!inserted && it->second != index) {
      Error(f.path, line, absl::StrCat(what, ": name '", name, "' is also a name of product '",
                                       kb.products_[it->second].proto.id(), "'"));
    }
  }
  for (const auto& code : product.codes()) {
    if (!IsDrugSystem(code.system())) {
      Error(f.path, line, absl::StrCat(what, ": code system '", code.system(),
                                       "' is not a drug code system (RxNorm or ATC)"));
      continue;
    }
    if (auto st = ValidateCode(code.system(), code.code()); !st.ok()) {
      Error(f.path, line, absl::StrCat(what, ": ", st.message()));
      continue;
    }
    const std::string key = absl::StrCat(code.system(), "|", NormalizeCode(code.system(), code.code()));
    if (kb.drug_codes_.contains(key)) {
      Error(f.path, line, absl::StrCat(what, ": code ", key, " is also a drug's code"));
      continue;
    }
    const auto [it, inserted] = kb.product_codes_.emplace(key, index);
    if (!inserted && it->second != index) {
      Error(f.path, line, absl::StrCat(what, ": code ", key, " is also a code of product '",
                                       kb.products_[it->second].proto.id(), "'"));
    }
  }
}

void KnowledgeBaseBuilder::IndexLabelInteractions(KnowledgeBase& kb, const ParsedFile& f) {
  const auto& c = f.content;
  for (int i = 0; i < c.label_interactions_size(); ++i) {
    const auto& li = c.label_interactions(i);
    const int line = LineOf(f.tree.get(), c, "label_interactions", i);
    const std::string what = absl::StrCat("label interactions of '", li.drug(), "'");
    const auto it = kb.drug_names_.find(NormalizeName(li.drug()));
    if (it == kb.drug_names_.end() || kb.drugs_[it->second].proto.id() != li.drug()) {
      Error(f.path, line, absl::StrCat(what, ": unknown drug id"));
      continue;
    }
    for (const auto& partner : li.partners()) {
      if (partner.name().empty()) {
        Error(f.path, line, absl::StrCat(what, ": a partner has no name"));
      }
      if (partner.statement() == kb::v1::LABEL_STATEMENT_UNSPECIFIED ||
          !kb::v1::LabelStatement_IsValid(partner.statement())) {
        Error(f.path, line, absl::StrCat(what, ": partner '", partner.name(), "' has no statement"));
      }
      if (partner.label() != "US" && partner.label() != "EU") {
        Error(f.path, line, absl::StrCat(what, ": partner '", partner.name(), "' label must be \"US\" or \"EU\""));
      }
      CheckSources(f, partner.sources(), line, absl::StrCat(what, " partner '", partner.name(), "'"), true);
    }
    kb.label_interactions_.push_back(li);
  }
}

void KnowledgeBaseBuilder::IndexClassMembers(KnowledgeBase& kb) {
  for (DrugIndex d = 0; d < kb.drugs_.size(); ++d) {
    for (ClassIndex ci : kb.drugs_[d].all_classes) {
      kb.classes_[ci].members.push_back(d);
    }
  }
}

// ---------------------------------------------------------------------------
// Rules: interactions, cross-sensitivities, additive effects.

void KnowledgeBaseBuilder::IndexInteractions(KnowledgeBase& kb, const ParsedFile& f) {
  const auto& c = f.content;
  for (int i = 0; i < c.interactions_size(); ++i) {
    const auto& rule = c.interactions(i);
    const int line = LineOf(f.tree.get(), c, "interactions", i);
    const std::string what = absl::StrCat("interaction '", rule.id(), "'");
    RegisterRuleId(f, line, rule.id());
    CheckSeverity(f, line, what, rule.severity());
    CheckSummary(f, line, what, rule.summary());
    CheckSources(f, rule.sources(), line, what, true);
    if (rule.management().empty()) {
      Error(f.path, line, absl::StrCat(what, " has no management text"));
    }
    auto side_a = ExpandParticipants(kb, rule.a(), f, line, absl::StrCat(what, " side a"));
    auto side_b = ExpandParticipants(kb, rule.b(), f, line, absl::StrCat(what, " side b"));
    const auto r = static_cast<uint32_t>(kb.interactions_.size());
    InteractionEntry entry;
    entry.proto = rule;
    entry.origin_name = "curated";
    entry.origin = Origin{f.path, line};
    entry.drug_specific = true;
    for (const auto& p : rule.a()) {
      entry.drug_specific = entry.drug_specific && p.has_drug();
    }
    for (const auto& p : rule.b()) {
      entry.drug_specific = entry.drug_specific && p.has_drug();
    }
    kb.interactions_.push_back(std::move(entry));
    // Per-drug index: which side(s) each drug is on.
    absl::flat_hash_map<DrugIndex, RuleRef> refs;
    for (DrugIndex d : side_a) {
      auto& ref = refs[d];
      ref.rule = r;
      ref.side_a = true;
    }
    for (DrugIndex d : side_b) {
      auto& ref = refs[d];
      ref.rule = r;
      ref.side_b = true;
    }
    for (const auto& [d, ref] : refs) {
      kb.rules_by_drug_[d].push_back(ref);
    }
    kb.side_a_drugs_.push_back(std::move(side_a));
    kb.side_b_drugs_.push_back(std::move(side_b));
  }
}

void KnowledgeBaseBuilder::IndexCrossSensitivities(KnowledgeBase& kb, const ParsedFile& f) {
  const auto& c = f.content;
  for (int i = 0; i < c.cross_sensitivities_size(); ++i) {
    const auto& cs = c.cross_sensitivities(i);
    const int line = LineOf(f.tree.get(), c, "cross_sensitivities", i);
    const std::string what = absl::StrCat("cross-sensitivity '", cs.id(), "'");
    RegisterRuleId(f, line, cs.id());
    CheckSeverity(f, line, what, cs.severity());
    CheckSummary(f, line, what, cs.summary());
    CheckSources(f, cs.sources(), line, what, true);
    if (cs.members_size() < 2) {
      Error(f.path, line, absl::StrCat(what, " needs at least two members"));
    }
    CrossSensitivityEntry entry;
    entry.proto = cs;
    entry.drugs = ExpandParticipants(kb, cs.members(), f, line, what);
    kb.cross_sensitivities_.push_back(std::move(entry));
  }
}

void KnowledgeBaseBuilder::IndexAdditiveRules(KnowledgeBase& kb, const ParsedFile& f) {
  const auto& c = f.content;
  for (int i = 0; i < c.additive_effects_size(); ++i) {
    const auto& rule = c.additive_effects(i);
    const int line = LineOf(f.tree.get(), c, "additive_effects", i);
    const std::string what = absl::StrCat("additive-effect rule '", rule.id(), "'");
    RegisterRuleId(f, line, rule.id());
    CheckSeverity(f, line, what, rule.severity());
    CheckSummary(f, line, what, rule.summary());
    CheckSources(f, rule.sources(), line, what, true);
    if (rule.min_drugs() < 2) {
      Error(f.path, line, absl::StrCat(what, " min_drugs must be at least 2"));
    }
    if (rule.min_score() < 0) {
      Error(f.path, line, absl::StrCat(what, " min_score must not be negative"));
    }
    if (rule.effect().empty()) {
      Error(f.path, line, absl::StrCat(what, " names no effect"));
    }
    kb.additive_rules_.push_back(rule);
  }
}

void KnowledgeBaseBuilder::SortRulesByDrug(KnowledgeBase& kb) {
  for (auto& refs : kb.rules_by_drug_) {
    std::sort(refs.begin(), refs.end(),
              [](const RuleRef& x, const RuleRef& y) { return x.rule < y.rule; });
  }
}

void KnowledgeBaseBuilder::IndexRulesByPair(KnowledgeBase& kb) {
  std::vector<std::pair<uint64_t, uint32_t>> entries;
  for (uint32_t r = 0; r < kb.interactions_.size(); ++r) {
    for (DrugIndex a : kb.side_a_drugs_[r]) {
      for (DrugIndex b : kb.side_b_drugs_[r]) {
        if (a != b) {
          entries.emplace_back(PairKey(a, b), r);
        }
      }
    }
  }
  const auto& rules = kb.interactions_;
  std::sort(entries.begin(), entries.end(), [&rules](const auto& x, const auto& y) {
    if (x.first != y.first) {
      return x.first < y.first;
    }
    const InteractionEntry& a = rules[x.second];
    const InteractionEntry& b = rules[y.second];
    if (a.proto.severity() != b.proto.severity()) {
      return a.proto.severity() > b.proto.severity();
    }
    if (a.drug_specific != b.drug_specific) {
      return a.drug_specific;
    }
    if (a.proto.id() != b.proto.id()) {
      return a.proto.id() < b.proto.id();
    }
    return x.second < y.second;
  });
  // A rule whose sides overlap lists a pair twice (a-b and b-a).
  entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
  kb.pair_rule_list_.clear();
  kb.pair_rule_list_.reserve(entries.size());
  kb.pair_rules_.clear();
  for (size_t i = 0; i < entries.size();) {
    const auto offset = static_cast<uint32_t>(kb.pair_rule_list_.size());
    size_t j = i;
    for (; j < entries.size() && entries[j].first == entries[i].first; ++j) {
      kb.pair_rule_list_.push_back(entries[j].second);
    }
    kb.pair_rules_.emplace(entries[i].first,
                           KnowledgeBase::PairRules{offset, static_cast<uint32_t>(j - i)});
    i = j;
  }
}

}  // namespace vigil
