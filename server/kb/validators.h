// Internal to server/kb (not part of the layer's interface): the builder that
// turns parsed knowledge-base files into a KnowledgeBase, and the per-section
// validators and indexers its Build runs.
#ifndef VIGIL_SERVER_KB_VALIDATORS_H_
#define VIGIL_SERVER_KB_VALIDATORS_H_

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "google/protobuf/text_format.h"
#include "server/kb/knowledge_base.h"

namespace vigil {
namespace kb_internal {

// At most this many problems are listed when a base or an import is refused.
constexpr size_t kMaxReportedErrors = 100;

// A parsed file with the positions of its fields.
struct ParsedFile {
  std::string path;
  kb::v1::KnowledgeBaseFile content;
  std::unique_ptr<google::protobuf::TextFormat::ParseInfoTree> tree;
};

// Id -> "file:line" where it was first defined, for duplicate-id messages.
using WhereMap = absl::flat_hash_map<std::string, std::string>;

// Per class: the class itself and all its ancestors, sorted.
using ClassAncestors = std::vector<std::vector<ClassIndex>>;

}  // namespace kb_internal

// Assembles a KnowledgeBase from parsed files, recording every problem.
// KnowledgeBase befriends it, so the section validators below are its members.
// Build, Finalize, Refusal and DigestCuratedFiles are in loader.cc, the
// validators and shared checks in validators.cc, AddDdinterImport in
// ddinter_import.cc.
class KnowledgeBaseBuilder {
 public:
  void Add(kb_internal::ParsedFile file) { files_.push_back(std::move(file)); }

  // Validates and indexes every file; on any problem, InvalidArgument listing
  // them all as "file:line: reason".
  absl::StatusOr<std::shared_ptr<KnowledgeBase>> Build();

  // Adds the DDInter files to a built base. Call after Build.
  absl::Status AddDdinterImport(KnowledgeBase& kb, const std::vector<std::string>& files);

  // Sets the version and the load time; the base is complete afterwards.
  void Finalize(KnowledgeBase& kb, double load_millis);

  // Bytes the version digest is computed over.
  std::string& digest_input() { return digest_input_; }

 private:
  using ParsedFile = kb_internal::ParsedFile;
  using WhereMap = kb_internal::WhereMap;
  using ClassAncestors = kb_internal::ClassAncestors;

  // Section validators and indexers, in the order Build runs them. Each
  // records its problems and indexes what is valid.

  // Sources of `f`: slug id, title, unique id. First: every section cites them.
  void IndexSources(KnowledgeBase& kb, const ParsedFile& f, WhereMap& source_where);
  // Classes of `f`: slug id, name, unique id, sources; indexes names and codes.
  void IndexClasses(KnowledgeBase& kb, const ParsedFile& f, WhereMap& class_where);
  // Condition sets of `f`: id, codes, lab thresholds and age range; stores
  // them with codes normalized and thresholds in canonical units.
  void IndexConditionSets(KnowledgeBase& kb, const ParsedFile& f, WhereMap& condition_set_where);
  // Checks one condition set's codes and lab thresholds; returns it normalized.
  kb::v1::ConditionSet NormalizeConditionSet(const ParsedFile& f, int i, int line, const std::string& what);
  // Resolves every class's parents; an unknown parent is an error.
  void ResolveClassParents(KnowledgeBase& kb, WhereMap& class_where);
  // Ancestor closure of every class by depth-first search; a cycle is an error.
  ClassAncestors ComputeClassAncestors(const KnowledgeBase& kb, WhereMap& class_where);
  // Drugs of `f`: id, name, sources, classes, effects and contraindications;
  // indexes names and codes.
  void IndexDrugs(KnowledgeBase& kb, const ParsedFile& f, const ClassAncestors& ancestors,
                  const WhereMap& condition_set_where, WhereMap& drug_where);
  // A drug's entry: class closure, effect scores and additive effects (own
  // and inherited), with their problems recorded.
  DrugEntry MakeDrugEntry(const KnowledgeBase& kb, const ParsedFile& f, const kb::v1::Drug& drug, int line,
                          const std::string& what, const ClassAncestors& ancestors);
  // Sources cited by a drug's side effects and indications; drug `i` of `f`.
  void CheckDrugCitations(const ParsedFile& f, int i, int line, const std::string& what);
  // A drug's contraindications: rule id, condition set xor hypersensitivity,
  // severity, summary, sources; drug `i` of `f`.
  void CheckContraindications(const ParsedFile& f, int i, int line, const std::string& what,
                              const WhereMap& condition_set_where);
  // Products of `f`: id, name, sources, ingredient drugs; indexes names and codes.
  void IndexProducts(KnowledgeBase& kb, const ParsedFile& f);
  // A product's names and codes, which must be no drug's nor another product's.
  void IndexProductNames(KnowledgeBase& kb, ProductIndex index, const kb::v1::Product& product,
                         const ParsedFile& f, int line, const std::string& what);
  // Label partners of `f`: the drug must exist; the partners are free text.
  void IndexLabelInteractions(KnowledgeBase& kb, const ParsedFile& f);
  // Fills each class's members from the drugs' class closures.
  static void IndexClassMembers(KnowledgeBase& kb);
  // Interaction rules of `f`: expands the sides to drugs and indexes the rule
  // by drug. Needs rules_by_drug_ sized to the drugs.
  void IndexInteractions(KnowledgeBase& kb, const ParsedFile& f);
  // Cross-sensitivities of `f`: at least two members, expanded to drugs.
  void IndexCrossSensitivities(KnowledgeBase& kb, const ParsedFile& f);
  // Additive-effect (burden) rules of `f`: effect, min_drugs, min_score.
  void IndexAdditiveRules(KnowledgeBase& kb, const ParsedFile& f);
  // Orders each drug's rule references by rule.
  static void SortRulesByDrug(KnowledgeBase& kb);
  // Builds KnowledgeBase::pair_rules_: for every pair of distinct drugs that
  // some rule covers (one on side a, the other on side b), the rules in the
  // order screening reports them.
  static void IndexRulesByPair(KnowledgeBase& kb);

  // The refusal listing the recorded problems (at most kMaxReportedErrors).
  absl::Status Refusal() const;
  // Appends each file's name and deterministic serialization to the digest
  // input and records the curated files.
  void DigestCuratedFiles(KnowledgeBase& kb);

  // Shared checks.
  void Error(const std::string& file, int line, absl::string_view message) {
    errors_.push_back(absl::StrCat(file, ":", line, ": ", message));
  }
  // `where` is "file:line".
  void ErrorAt(const std::string& where, absl::string_view message) {
    errors_.push_back(absl::StrCat(where, ": ", message));
  }
  // Every cited source exists; with `required`, at least one is cited.
  void CheckSources(const ParsedFile& f, const google::protobuf::RepeatedPtrField<std::string>& ids,
                    int line, absl::string_view what, bool required);
  // A summary is present and shorter than the limit.
  void CheckSummary(const ParsedFile& f, int line, absl::string_view what,
                    absl::string_view summary);
  // A severity is set and valid.
  void CheckSeverity(const ParsedFile& f, int line, absl::string_view what, int severity);
  // Registers a rule id (interaction, contraindication, cross-sensitivity,
  // additive rule), which share one namespace.
  void RegisterRuleId(const ParsedFile& f, int line, const std::string& id);
  // Indexes drug `d`'s id, name, synonyms, brands and codes; clashes are errors.
  void IndexDrugNames(KnowledgeBase& kb, DrugIndex d, const ParsedFile& f, int line);
  // Indexes class `c`'s id, name, synonyms and codes; clashes are errors.
  void IndexClassNames(KnowledgeBase& kb, ClassIndex c, const ParsedFile& f, int line);
  // The drugs a rule side names directly or through classes, sorted, unique.
  std::vector<DrugIndex> ExpandParticipants(
      const KnowledgeBase& kb, const google::protobuf::RepeatedPtrField<kb::v1::Participant>& side,
      const ParsedFile& f, int line, absl::string_view what);

  std::vector<ParsedFile> files_;
  std::vector<std::string> errors_;
  absl::flat_hash_map<std::string, std::string> rule_ids_;  // id -> where
  absl::flat_hash_set<std::string> source_ids_;
  std::string digest_input_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_KB_VALIDATORS_H_
