// The loaded, validated, immutable drug knowledge base.
#ifndef VIGIL_SERVER_KB_KNOWLEDGE_BASE_H_
#define VIGIL_SERVER_KB_KNOWLEDGE_BASE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "vigil/kb/v1/knowledge_base.pb.h"
#include "vigil/v1/alert.pb.h"

namespace vigil {

// Index of a drug or class inside one KnowledgeBase.
using DrugIndex = uint32_t;
using ClassIndex = uint32_t;

// The key of an unordered pair of drugs.
inline uint64_t PairKey(DrugIndex a, DrugIndex b) {
  return a < b ? (static_cast<uint64_t>(a) << 32) | b : (static_cast<uint64_t>(b) << 32) | a;
}

// Where a rule or fact was defined, for error messages and provenance.
struct Origin {
  std::string file;
  int line = 0;
};

// One drug, with its class closure precomputed.
struct DrugEntry {
  kb::v1::Drug proto;
  // Direct classes and all their ancestors, sorted, without duplicates.
  std::vector<ClassIndex> all_classes;
  // Effects that add up across drugs (own and inherited from classes).
  std::vector<std::string> additive_effects;
  // Scores on additive effects' scales, sorted by effect (an effect in
  // `additive_effects` that is not here scores 1).
  std::vector<std::pair<std::string, int>> effect_scores;
  Origin origin;

  // The drug's score for `effect`: 0 when it does not have the effect.
  int EffectScore(absl::string_view effect) const;
};

struct ClassEntry {
  kb::v1::DrugClass proto;
  std::vector<ClassIndex> parents;
  // Drugs that belong to the class directly or through a subclass.
  std::vector<DrugIndex> members;
};

// An interaction rule whose sides have been expanded to drug sets.
struct InteractionEntry {
  kb::v1::InteractionRule proto;
  // "curated", or the name of an imported source.
  std::string origin_name;
  Origin origin;
  // True when both sides name drugs directly (more specific than a class).
  bool drug_specific = false;
};

// A rule index entry: rule `rule` applies to a drug on side A, side B or both.
struct RuleRef {
  uint32_t rule = 0;
  bool side_a = false;
  bool side_b = false;
};

// An interaction imported from a bulk source (such as DDInter), stored
// compactly: hundreds of thousands of pairs.
struct ImportedInteraction {
  // Severity the source's level maps to.
  v1::Severity severity = v1::SEVERITY_UNSPECIFIED;
  // Index into KnowledgeBase::imports().
  uint16_t import_index = 0;
  // The source's own level text index into ImportInfo::levels.
  uint8_t level = 0;
};

// One imported source file set, as loaded.
struct ImportInfo {
  // Source name, such as "ddinter".
  std::string name;
  // The files, in load order, with their SHA-256.
  std::vector<std::pair<std::string, std::string>> files;
  // Rows read from each file, in the order of `files`.
  std::vector<size_t> file_rows;
  size_t rows = 0;
  size_t pairs = 0;
  // Drugs the import created because no curated drug had the name.
  size_t created_drugs = 0;
  // Drugs the import mapped onto curated drugs.
  size_t mapped_drugs = 0;
  // The source's level names (index = ImportedInteraction::level).
  std::vector<std::string> levels;
  // Source citation id (a Source of the base).
  std::string source_id;
};

// A curated file of the base.
struct CuratedFileInfo {
  std::string path;
  std::string sha256;
};

// A product (what is ordered) and its ingredient drugs.
struct ProductEntry {
  kb::v1::Product proto;
  // Ingredient drugs, in the order of the product's `ingredients`.
  std::vector<DrugIndex> ingredients;
  Origin origin;
};

using ProductIndex = uint32_t;

struct CrossSensitivityEntry {
  kb::v1::CrossSensitivity proto;
  // Member drugs, sorted.
  std::vector<DrugIndex> drugs;
};

// The knowledge base. Built only by LoadKnowledgeBase; immutable and safe to
// share between threads afterwards.
class KnowledgeBase {
 public:
  // What a reference resolves to.
  struct Resolved {
    enum class Kind { kNone, kDrug, kClass, kProduct };
    Kind kind = Kind::kNone;
    uint32_t index = 0;
  };

  // Resolves a drug reference: id, name, synonym or brand (case- and
  // punctuation-insensitive) or "system|code".
  std::optional<DrugIndex> FindDrug(absl::string_view reference) const;

  // Resolves a class reference: id, name or synonym.
  std::optional<ClassIndex> FindClass(absl::string_view reference) const;

  // Resolves a reference to a drug, failing that to a class, failing that to
  // a product (an allergy recorded as "Bactrim").
  Resolved Resolve(absl::string_view reference) const;

  // Resolves a product reference: id, name, synonym or brand, or
  // "system|code". Drug names are looked up first by callers (FindDrug); the
  // loader refuses a product name that is also a drug's.
  std::optional<ProductIndex> FindProduct(absl::string_view reference) const;
  const ProductEntry& product(ProductIndex i) const { return products_[i]; }
  const std::vector<ProductEntry>& products() const { return products_; }

  // What order text that no name or code matches resolves to: the
  // ingredients that ParseOrderText finds ("warfarin sodium 5 MG Oral
  // Tablet", "lisinopril 10 MG / hydrochlorothiazide 12.5 MG Oral Tablet
  // [Zestoretic]"), each by name with salt words dropped where needed, or
  // the bracketed brand. The slow path: callers try FindDrug and
  // FindProduct first.
  struct ResolvedOrder {
    // The ingredient drugs found, in order, without repeats.
    std::vector<DrugIndex> drugs;
    // Ingredient names that resolved to nothing.
    std::vector<std::string> unresolved;
    // The route the dose form implies, or empty.
    std::string route;
  };
  ResolvedOrder ResolveOrderText(absl::string_view text) const;

  // Each drug's label partners, as the files give them.
  const std::vector<kb::v1::LabelInteractions>& label_interactions() const { return label_interactions_; }

  const DrugEntry& drug(DrugIndex i) const { return drugs_[i]; }
  const ClassEntry& drug_class(ClassIndex i) const { return classes_[i]; }
  size_t drug_count() const { return drugs_.size(); }
  size_t class_count() const { return classes_.size(); }
  const std::vector<DrugEntry>& drugs() const { return drugs_; }
  const std::vector<ClassEntry>& classes() const { return classes_; }

  // True when drug `d` is a member of class `c` (directly or by inheritance).
  bool IsMember(DrugIndex d, ClassIndex c) const;

  const std::vector<InteractionEntry>& interactions() const { return interactions_; }

  // Rules that involve drug `d` on either side.
  const std::vector<RuleRef>& RulesFor(DrugIndex d) const { return rules_by_drug_[d]; }

  // True when the rule's side A (or B) contains drug `d`.
  bool SideContains(const InteractionEntry& rule, bool side_a, DrugIndex d) const;

  // The curated rules that cover the pair of distinct drugs `a` and `b` (in
  // either order, on either side), most severe first, then drug-specific
  // rules before class rules, then by id: one hash lookup, precomputed at
  // load, so that screening a pair costs the same whatever the rule count.
  absl::Span<const uint32_t> RulesForPair(DrugIndex a, DrugIndex b) const;

  const kb::v1::ConditionSet* FindConditionSet(absl::string_view id) const;
  const absl::flat_hash_map<std::string, kb::v1::ConditionSet>& condition_sets() const { return condition_sets_; }
  const absl::flat_hash_map<std::string, kb::v1::Source>& sources() const { return sources_; }
  const kb::v1::Source* FindSource(absl::string_view id) const;

  const std::vector<CrossSensitivityEntry>& cross_sensitivities() const {
    return cross_sensitivities_;
  }
  const std::vector<kb::v1::AdditiveEffectRule>& additive_rules() const {
    return additive_rules_;
  }

  // Content digest (SHA-256 of the canonical content), the version reported
  // with every check.
  const std::string& version() const { return version_; }

  // The curated files the base was built from.
  const std::vector<CuratedFileInfo>& curated_files() const { return curated_files_; }

  // Imported interaction sources.
  const std::vector<ImportInfo>& imports() const { return imports_; }

  // The imported interaction between two drugs, if any source has one.
  const ImportedInteraction* FindImported(DrugIndex a, DrugIndex b) const;

  // Number of imported interactions that involve drug `d`.
  size_t ImportedCountFor(DrugIndex d) const { return imported_count_by_drug_.empty() ? 0 : imported_count_by_drug_[d]; }

  // Total imported pairs.
  size_t imported_pair_count() const { return imported_pairs_.size(); }

  // True when the drug was created by an import (it has no curated monograph).
  bool IsImportOnly(DrugIndex d) const { return d >= curated_drug_count_; }

  // How long loading took, in milliseconds.
  double load_millis() const { return load_millis_; }

  // True when no loaded source has interaction data for the drug: it is not
  // named by any rule (directly or through its classes) and the curated base
  // does not mark it as reviewed.
  bool InteractionsUnreviewed(DrugIndex d) const;

 private:
  friend class KnowledgeBaseBuilder;

  std::vector<DrugEntry> drugs_;
  std::vector<ClassEntry> classes_;
  std::vector<InteractionEntry> interactions_;
  std::vector<std::vector<RuleRef>> rules_by_drug_;
  // Per rule, per side: sorted member drugs.
  std::vector<std::vector<DrugIndex>> side_a_drugs_;
  std::vector<std::vector<DrugIndex>> side_b_drugs_;
  // Unordered drug pair (PairKey) -> [offset, offset + count) in
  // pair_rule_list_, ordered as RulesForPair documents.
  struct PairRules {
    uint32_t offset = 0;
    uint32_t count = 0;
  };
  absl::flat_hash_map<uint64_t, PairRules> pair_rules_;
  std::vector<uint32_t> pair_rule_list_;
  std::vector<CrossSensitivityEntry> cross_sensitivities_;
  std::vector<kb::v1::AdditiveEffectRule> additive_rules_;
  std::vector<ProductEntry> products_;
  absl::flat_hash_map<std::string, ProductIndex> product_names_;
  absl::flat_hash_map<std::string, ProductIndex> product_codes_;
  std::vector<kb::v1::LabelInteractions> label_interactions_;
  absl::flat_hash_map<std::string, kb::v1::ConditionSet> condition_sets_;
  absl::flat_hash_map<std::string, kb::v1::Source> sources_;
  // Normalized name -> drug; "system|normalized-code" -> drug.
  absl::flat_hash_map<std::string, DrugIndex> drug_names_;
  absl::flat_hash_map<std::string, DrugIndex> drug_codes_;
  absl::flat_hash_map<std::string, ClassIndex> class_names_;
  absl::flat_hash_map<std::string, ClassIndex> class_codes_;
  std::string version_;
  std::vector<CuratedFileInfo> curated_files_;
  std::vector<ImportInfo> imports_;
  absl::flat_hash_map<uint64_t, ImportedInteraction> imported_pairs_;
  std::vector<uint32_t> imported_count_by_drug_;
  size_t curated_drug_count_ = 0;
  double load_millis_ = 0;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_KB_KNOWLEDGE_BASE_H_
