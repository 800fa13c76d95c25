// What the checks of one screening share (internal to the engine): the
// medications of the check as the knowledge base resolved them, the scratch
// memory they reuse, and the AlertBuilder every check writes its alerts with.
//
// One check kind is one function over these, in its own file (coverage.cc,
// contraindications.cc, allergies.cc, interactions.cc, duplicates.cc,
// burden.cc), listed in kChecks of screening.cc; see
// docs/adding-a-rule-kind.md.
#ifndef VIGIL_SERVER_ENGINE_CHECK_H_
#define VIGIL_SERVER_ENGINE_CHECK_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "server/common/text.h"
#include "server/engine/screening.h"
#include "server/kb/knowledge_base.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/decision_support.pb.h"
#include "vigil/v1/patient.pb.h"

namespace vigil::engine_internal {

// Texts given to a setter as literals are wrapped in std::string(...): the
// setter then moves them in. Protobuf 3.21 copies a `const char*` through a
// temporary string, two heap blocks instead of one for each long text.
inline constexpr size_t kMaxSummaryBytes = 139;
inline constexpr size_t kMaxReferenceInSummary = 48;

// Where `text` must be cut to fit `max_bytes` with a "..." after it, on a
// UTF-8 boundary; npos when it fits.
size_t CutPoint(absl::string_view text, size_t max_bytes);
// Cuts text to at most `max_bytes` on a UTF-8 boundary, ending with "...".
std::string Clamp(std::string text, size_t max_bytes);
// Appends `text` cut to at most `max_bytes` as Clamp does, without a
// temporary string.
void AppendClamped(absl::string_view text, size_t max_bytes, std::string* out);
// True when `needle` occurs in `text`, ignoring ASCII case.
bool ContainsIgnoreCase(absl::string_view text, absl::string_view needle);
// A number as a prescriber reads it ("%g").
std::string FormatNumber(double v);
// The LOINC system URI as a string the evidence can copy (a literal would
// go through a temporary string in protobuf 3.21's setter).
const std::string& LoincSystem();

// A medication of the check, proposed or current: one ingredient of one
// order (a combination product is one Med per ingredient).
struct Med {
  const v1::MedicationOrder* order = nullptr;
  bool proposed = false;
  std::optional<DrugIndex> drug;
  // The first medication of its drug in the check (proposed ones come
  // first): the one that speaks for the drug in pairs and summaries.
  bool canonical = false;
  // Index of the order in the check (ingredients of one product share it).
  uint32_t order_index = 0;
  // Given by a route of small systemic exposure (skin, eye, ear).
  bool local_route = false;
  // For an ingredient of order text that resolved to nothing: its index in
  // Scratch::ingredient_names; -1 when the whole reference is the name.
  int name_index = -1;
  // The reference as sent: `order->drug`, or for an order that names its drug
  // by `coding` alone, "system|code" at this index of Scratch::references
  // (see CheckInput::Reference).
  int ref_index = -1;
  // How the drug was identified when its reference did not resolve it: by
  // the coding's display text or by the order's free text.
  enum class Via : uint8_t { kReference, kCodingDisplay, kText };
  Via via = Via::kReference;
};

// Working memory of a check, kept per thread so that a check allocates
// nothing beyond the alerts it returns (vectors keep their capacity; the
// repeated fields keep their cleared elements, strings included, for reuse).
struct Scratch {
  std::vector<Med> meds;
  std::vector<const Med*> screened;
  std::vector<const Med*> unresolved;
  // The alerts in their final order while it is being put together.
  std::vector<v1::Alert*> ranked;
  // (drug, medication index) pairs, sorted: the medications of each drug.
  std::vector<std::pair<DrugIndex, uint32_t>> by_drug;
  // (class, medication index) pairs for duplicate-sensitive classes.
  std::vector<std::pair<ClassIndex, uint32_t>> by_class;
  std::vector<const Med*> group;
  std::vector<uint32_t> order;
  std::vector<uint32_t> by_id;
  std::vector<bool> dropped;
  google::protobuf::RepeatedPtrField<v1::Evidence> matched;
  google::protobuf::RepeatedPtrField<v1::Evidence> unreadable;
  // Lab results that are the latest of their kind but too old to decide.
  google::protobuf::RepeatedPtrField<v1::Evidence> stale;
  // Indexes of the lab results that decide a threshold.
  std::vector<int> deciding_labs;
  std::string id_list;
  // The patient's condition codes, normalized, in the order of the request.
  std::vector<std::string> condition_codes;
  // Normalized names of the unresolved medications seen so far, and one
  // being looked at (strings keep their capacity from check to check).
  std::vector<std::string> unresolved_names;
  std::string name;
  // Ingredient names of order text that resolved to nothing (the slow path).
  std::vector<std::string> ingredient_names;
  // "system|code" of orders that name their drug by coding alone.
  std::vector<std::string> references;
};

// The inputs of a check: the patient, and every medication of the check
// resolved against the knowledge base.
class CheckInput {
 public:
  CheckInput(const KnowledgeBase& kb, const v1::Patient& patient,
             const google::protobuf::RepeatedPtrField<v1::MedicationOrder>& proposed, const ScreenOptions& options);

  const KnowledgeBase& kb;
  const v1::Patient& patient;
  const absl::CivilDay as_of;
  // The patient's age in completed years on `as_of`; nullopt without a
  // birth date.
  const std::optional<int> age_years;
  // No proposed medications: the current list is screened as a whole.
  const bool review_mode;
  // The caller asked for the full view: the alerts carry their detail,
  // evidence, sources and interpretation. The basic view's alerts are
  // built without them (see v1::AlertView).
  const bool full_view;
  Scratch& scratch;
  // Proposed medications first, then current ones.
  std::vector<Med>& meds;
  // The drugs that are screened: proposed (or, in review mode, all
  // current), each resolved drug once.
  std::vector<const Med*>& screened;

  // The name of an unresolved medication: the ingredient that did not
  // resolve, or the reference as sent.
  absl::string_view UnresolvedName(const Med& m) const;
  // The medication's reference as sent: `drug`, else "system|code" of its
  // coding, else its coding's display, else its text.
  absl::string_view Reference(const Med& m) const;
  // The text that identified the drug when the reference did not (empty
  // when the reference did).
  static absl::string_view ResolvedFrom(const Med& m);
  const std::string& DrugName(DrugIndex d) const { return kb.drug(d).proto.name(); }
  // The knowledge-base ids of the drugs of `list`, sorted and joined with
  // "+" into scratch memory (valid until the next call).
  absl::string_view SortedIdList(const std::vector<const Med*>& list);

 private:
  void AddOrder(const v1::MedicationOrder& order, bool proposed, uint32_t order_index);
  // Adds the medications `reference` resolves to (a drug, a product's
  // ingredients, or order text's ingredients); false when nothing resolves.
  bool AddResolved(const Med& base, absl::string_view reference, bool as_text);
};

// The hash behind alert ids: two FNV-1a chains (StableHash64) with two
// seeds, fed piece by piece, so that the state after a check's common prefix
// (the patient, the kind) is computed once per check. The result is exactly
// StableHash64 of the concatenated input with each seed
// (tests/screening_test.cc checks that and pins an id).
class IdHash {
 public:
  IdHash() = default;
  IdHash& Update(absl::string_view piece) {
    h1_.Update(piece);
    h2_.Update(piece);
    return *this;
  }
  // The id: "al-" and the two hashes in hex.
  std::string Id() const;

 private:
  Fnv1a64 h1_{Fnv1a64::kOffsetBasis};
  Fnv1a64 h2_{0x84222325cbf29ce4ULL};
};

// The hash state after the prefix of every id of `patient_id`:
// "<size of the patient id>:<patient id>|".
IdHash PatientIdHash(absl::string_view patient_id);

// Where the checks write their alerts, with what every alert shares: a
// stable id, citations, evidence of the medications, and whether the
// answer is complete.
class AlertBuilder {
 public:
  AlertBuilder(const CheckInput& in, v1::CheckMedicationsUnaryResponse* out);

  // A new alert for the finding whose key is the concatenation of `key`.
  v1::Alert& NewAlert(v1::AlertKind kind, v1::Severity severity, std::initializer_list<absl::string_view> key);
  // Cites source `id` on the alert, once (in the full view).
  void AddSource(v1::Alert& alert, const std::string& id);
  void AddSources(v1::Alert& alert, const google::protobuf::RepeatedPtrField<std::string>& ids);
  // Evidence naming a medication of the check (in the full view).
  void AddMedEvidence(v1::Alert& alert, const Med& med);
  // Whether the alerts carry detail, evidence, sources and interpretation:
  // a check builds them only when this is true.
  bool full() const { return in_.full_view; }
  // Something could not be screened: the summary will not say "complete".
  void MarkIncomplete() { incomplete_ = true; }

  // Ranks the alerts (most severe first, then kind, then id), drops a
  // finding reached twice, and writes the summary.
  void Finish();

 private:
  // The id hash state after "<patient prefix><KIND>|", cached per kind.
  IdHash KindIdHash(v1::AlertKind kind);

  const CheckInput& in_;
  const IdHash patient_hash_;
  std::array<std::optional<IdHash>, 16> kind_hashes_;
  v1::CheckMedicationsUnaryResponse& out_;
  google::protobuf::RepeatedPtrField<v1::Alert>& alerts_;
  bool incomplete_ = false;
};

// The check kinds, each in its own file.
// coverage.cc: medications and drugs that could not be screened (fully or
// for interactions).
void CheckCoverage(CheckInput& in, AlertBuilder& out);
// contraindications.cc: drug-condition rules (codes, labs, age).
void CheckContraindications(CheckInput& in, AlertBuilder& out);
// allergies.cc: recorded allergies (drug, class, product, cross-sensitivity).
void CheckAllergies(CheckInput& in, AlertBuilder& out);
// interactions.cc: drug-drug pairs, curated rules over imported tables.
void CheckInteractions(CheckInput& in, AlertBuilder& out);
// duplicates.cc: the same drug twice, two drugs of a duplicate-sensitive
// class.
void CheckDuplicates(CheckInput& in, AlertBuilder& out);
// burden.cc: cumulative risk (additive effects and scores) over the list.
void CheckBurden(CheckInput& in, AlertBuilder& out);

}  // namespace vigil::engine_internal

#endif  // VIGIL_SERVER_ENGINE_CHECK_H_
