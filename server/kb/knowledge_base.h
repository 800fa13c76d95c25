// The loaded, validated, immutable drug knowledge base.
#ifndef VIGIL_SERVER_KB_KNOWLEDGE_BASE_H_
#define VIGIL_SERVER_KB_KNOWLEDGE_BASE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "vigil/kb/v1/knowledge_base.pb.h"

namespace vigil {

// Index of a drug or class inside one KnowledgeBase.
using DrugIndex = uint32_t;
using ClassIndex = uint32_t;

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
  Origin origin;
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
    enum class Kind { kNone, kDrug, kClass };
    Kind kind = Kind::kNone;
    uint32_t index = 0;
  };

  // Resolves a drug reference: id, name, synonym or brand (case- and
  // punctuation-insensitive) or "system|code".
  std::optional<DrugIndex> FindDrug(absl::string_view reference) const;

  // Resolves a class reference: id, name or synonym.
  std::optional<ClassIndex> FindClass(absl::string_view reference) const;

  // Resolves a reference to a drug, or failing that to a class.
  Resolved Resolve(absl::string_view reference) const;

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

  const kb::v1::ConditionSet* FindConditionSet(absl::string_view id) const;
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

  // The files the base was built from.
  const std::vector<std::string>& files() const { return files_; }

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
  std::vector<CrossSensitivityEntry> cross_sensitivities_;
  std::vector<kb::v1::AdditiveEffectRule> additive_rules_;
  absl::flat_hash_map<std::string, kb::v1::ConditionSet> condition_sets_;
  absl::flat_hash_map<std::string, kb::v1::Source> sources_;
  // Normalized name -> drug; "system|normalized-code" -> drug.
  absl::flat_hash_map<std::string, DrugIndex> drug_names_;
  absl::flat_hash_map<std::string, DrugIndex> drug_codes_;
  absl::flat_hash_map<std::string, ClassIndex> class_names_;
  absl::flat_hash_map<std::string, ClassIndex> class_codes_;
  std::string version_;
  std::vector<std::string> files_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_KB_KNOWLEDGE_BASE_H_
