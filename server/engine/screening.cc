#include "server/engine/screening.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/text.h"
#include "server/engine/clinical_codes.h"
#include "server/kb/order_text.h"

namespace vigil {
namespace {

// Texts given to a setter as literals are wrapped in std::string(...): the
// setter then moves them in. Protobuf 3.21 copies a `const char*` through a
// temporary string, two heap blocks instead of one for each long text.
constexpr size_t kMaxSummaryBytes = 139;
constexpr size_t kMaxReferenceInSummary = 48;
// Sources cited on one interaction alert at most.
constexpr int kMaxSources = 5;

// Where `text` must be cut to fit `max_bytes` with a "..." after it, on a
// UTF-8 boundary; npos when it fits.
size_t CutPoint(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) {
    return absl::string_view::npos;
  }
  size_t cut = max_bytes - 3;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return cut;
}

// Cuts text to at most `max_bytes` on a UTF-8 boundary, ending with "...".
std::string Clamp(std::string text, size_t max_bytes) {
  if (const size_t cut = CutPoint(text, max_bytes); cut != absl::string_view::npos) {
    text.resize(cut);
    text.append("...");
  }
  return text;
}

// Appends `text` cut to at most `max_bytes` as Clamp does, without a
// temporary string.
void AppendClamped(absl::string_view text, size_t max_bytes, std::string* out) {
  if (const size_t cut = CutPoint(text, max_bytes); cut != absl::string_view::npos) {
    absl::StrAppend(out, text.substr(0, cut), "...");
  } else {
    out->append(text.data(), text.size());
  }
}

// True when `needle` occurs in `text`, ignoring ASCII case.
bool ContainsIgnoreCase(absl::string_view text, absl::string_view needle) {
  return std::search(text.begin(), text.end(), needle.begin(), needle.end(), [](char a, char b) {
           return absl::ascii_tolower(static_cast<unsigned char>(a)) ==
                  absl::ascii_tolower(static_cast<unsigned char>(b));
         }) != text.end();
}

// True when a recorded reaction names a severe, immune-mediated reaction.
bool IsSevereReaction(absl::string_view reaction) {
  static constexpr absl::string_view kSevere[] = {
      "anaphyla", "angioedema", "angio-oedema", "angiooedema", "stevens", "toxic epidermal", "dress",
      "eosinophilia", "bronchospasm", "serum sickness", "airway", "laryngeal", "hypotension", "shock",
      "exfoliative", "blister", "mucosal"};
  for (absl::string_view term : kSevere) {
    if (ContainsIgnoreCase(reaction, term)) {
      return true;
    }
  }
  return false;
}

// The LOINC system URI as a string the evidence can copy (a literal would
// go through a temporary string in protobuf 3.21's setter).
const std::string& LoincSystem() {
  static const std::string* const system = new std::string(kLoincSystem);
  return *system;
}

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
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

// Lower-case hex of `value`, 16 digits, appended to `out`.
void AppendHex64(uint64_t value, std::string* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char buf[16];
  for (int i = 15; i >= 0; --i) {
    buf[i] = kDigits[value & 0xF];
    value >>= 4;
  }
  out->append(buf, sizeof(buf));
}

// The hash behind alert ids: StableHash64 (FNV-1a) with two seeds, the two
// chains run side by side and fed piece by piece, so that the state after a
// check's common prefix (the patient, the kind) is computed once per check.
// The result is exactly StableHash64 of the concatenated input with each
// seed (tests/screening_test.cc checks that and pins an id).
class IdHash {
 public:
  IdHash() = default;
  IdHash& Update(absl::string_view piece) {
    for (char c : piece) {
      const auto byte = static_cast<unsigned char>(c);
      h1_ = (h1_ ^ byte) * 0x100000001b3ULL;
      h2_ = (h2_ ^ byte) * 0x100000001b3ULL;
    }
    return *this;
  }
  // The id: "al-" and the two hashes in hex.
  std::string Id() const {
    std::string id;
    id.reserve(35);
    id.append("al-");
    AppendHex64(h1_, &id);
    AppendHex64(h2_, &id);
    return id;
  }

 private:
  uint64_t h1_ = 0xcbf29ce484222325ULL;
  uint64_t h2_ = 0x84222325cbf29ce4ULL;
};

// The hash state after the prefix of every id of `patient_id`:
// "<size of the patient id>:<patient id>|".
IdHash PatientIdHash(absl::string_view patient_id) {
  char size[24];
  const int n = std::snprintf(size, sizeof(size), "%zu", patient_id.size());
  IdHash hash;
  hash.Update(absl::string_view(size, static_cast<size_t>(n))).Update(":").Update(patient_id).Update("|");
  return hash;
}

std::string ComparatorText(kb::v1::Comparator c) {
  switch (c) {
    case kb::v1::COMPARATOR_LESS_THAN:
      return "under";
    case kb::v1::COMPARATOR_LESS_OR_EQUAL:
      return "at or under";
    case kb::v1::COMPARATOR_GREATER_THAN:
      return "over";
    case kb::v1::COMPARATOR_GREATER_OR_EQUAL:
      return "at or over";
    default:
      return "compared with";
  }
}

bool Compare(kb::v1::Comparator c, double value, double threshold) {
  switch (c) {
    case kb::v1::COMPARATOR_LESS_THAN:
      return value < threshold;
    case kb::v1::COMPARATOR_LESS_OR_EQUAL:
      return value <= threshold;
    case kb::v1::COMPARATOR_GREATER_THAN:
      return value > threshold;
    case kb::v1::COMPARATOR_GREATER_OR_EQUAL:
      return value >= threshold;
    default:
      return false;
  }
}

std::string FormatNumber(double v) { return absl::StrFormat("%g", v); }

class Screener {
 public:
  Screener(const KnowledgeBase& kb, const v1::Patient& patient,
           const google::protobuf::RepeatedPtrField<v1::MedicationOrder>& proposed, v1::CheckMedicationsResult* out,
           const ScreenOptions& options)
      : kb_(kb),
        patient_(patient),
        as_of_(options.as_of),
        age_years_(AgeOn(patient.birth_date(), options.as_of)),
        review_mode_(proposed.empty()),
        scratch_(ThreadScratch()),
        meds_(scratch_.meds),
        screened_(scratch_.screened),
        out_(*out),
        alerts_(*out->mutable_alerts()) {
    meds_.clear();
    screened_.clear();
    alerts_.Clear();
    auto& codes = scratch_.condition_codes;
    codes.resize(static_cast<size_t>(patient.conditions_size()));
    for (int i = 0; i < patient.conditions_size(); ++i) {
      const auto& coding = patient.conditions(i).code();
      codes[static_cast<size_t>(i)] = NormalizeCode(coding.system(), coding.code());
    }
    out_.clear_summary();
    scratch_.unresolved.clear();
    scratch_.ingredient_names.clear();
    uint32_t order_index = 0;
    for (const auto& order : proposed) {
      AddOrder(order, true, order_index++);
    }
    for (const auto& order : patient.medications()) {
      // In review mode, the current list is screened as if proposed.
      AddOrder(order, review_mode_, order_index++);
    }
    // The medications of each drug, in order; the first one is canonical.
    // meds_ no longer changes.
    auto& by_drug = scratch_.by_drug;
    by_drug.clear();
    for (uint32_t i = 0; i < meds_.size(); ++i) {
      if (meds_[i].drug.has_value()) {
        by_drug.emplace_back(*meds_[i].drug, i);
      }
    }
    std::sort(by_drug.begin(), by_drug.end());
    for (size_t k = 0; k < by_drug.size(); ++k) {
      meds_[by_drug[k].second].canonical = k == 0 || by_drug[k - 1].first != by_drug[k].first;
    }
    // The drugs that are screened: proposed (or, in review mode, all
    // current), each resolved drug once.
    for (const auto& m : meds_) {
      if (m.proposed && m.canonical) {
        screened_.push_back(&m);
      }
    }
  }

  // The medications of one order: its drug, a product's ingredients, or
  // what its text resolves to (strength, dose form and brand parsed out).
  void AddOrder(const v1::MedicationOrder& order, bool proposed, uint32_t order_index) {
    const bool local = !order.route().empty() && IsLocalRoute(RouteOf(order.route()));
    if (auto d = kb_.FindDrug(order.drug()); d.has_value()) {
      meds_.push_back(Med{&order, proposed, d, false, order_index, local});
      return;
    }
    if (auto p = kb_.FindProduct(order.drug()); p.has_value()) {
      const auto& product = kb_.product(*p);
      const bool product_local = local || (order.route().empty() && IsLocalRoute(product.proto.route()));
      for (DrugIndex d : product.ingredients) {
        meds_.push_back(Med{&order, proposed, d, false, order_index, product_local});
      }
      return;
    }
    if (!MayBeOrderText(order.drug())) {
      meds_.push_back(Med{&order, proposed, std::nullopt, false, order_index, local});
      return;
    }
    const KnowledgeBase::ResolvedOrder resolved = kb_.ResolveOrderText(order.drug());
    const bool text_local = local || (order.route().empty() && IsLocalRoute(resolved.route));
    for (DrugIndex d : resolved.drugs) {
      meds_.push_back(Med{&order, proposed, d, false, order_index, text_local});
    }
    if (resolved.drugs.empty() && resolved.unresolved.size() <= 1) {
      // Nothing of it resolved: the reference as sent is what is unknown.
      meds_.push_back(Med{&order, proposed, std::nullopt, false, order_index, text_local});
      return;
    }
    for (const auto& name : resolved.unresolved) {
      scratch_.ingredient_names.push_back(name);
      meds_.push_back(Med{&order, proposed, std::nullopt, false, order_index, text_local,
                          static_cast<int>(scratch_.ingredient_names.size() - 1)});
    }
  }

  // The name of an unresolved medication: the ingredient that did not
  // resolve, or the reference as sent.
  absl::string_view UnresolvedName(const Med& m) const {
    return m.name_index < 0 ? absl::string_view(m.order->drug())
                            : absl::string_view(scratch_.ingredient_names[static_cast<size_t>(m.name_index)]);
  }

  void Run() {
    CheckUnresolved();
    CheckConditions();
    CheckAllergies();
    CheckInteractions();
    CheckDuplicates();
    CheckAdditiveEffects();
    Finish();
  }

 private:
  // A new alert for the finding whose key is the concatenation of `key`.
  v1::Alert& NewAlert(v1::AlertKind kind, v1::Severity severity, std::initializer_list<absl::string_view> key) {
    // The finding key is "<KIND>|" and the pieces of `key`.
    IdHash hash = KindIdHash(kind);
    for (absl::string_view piece : key) {
      hash.Update(piece);
    }
    v1::Alert& alert = *alerts_.Add();
    alert.set_id(hash.Id());
    alert.set_kind(kind);
    alert.set_severity(severity);
    alert.set_involves_proposed(!review_mode_);
    return alert;
  }

  // The id hash state after "<patient prefix><KIND>|", cached per kind.
  IdHash KindIdHash(v1::AlertKind kind) {
    const auto index = static_cast<size_t>(kind);
    if (index >= kind_hashes_.size()) {
      return IdHash(patient_hash_).Update(v1::AlertKind_Name(kind)).Update("|");
    }
    if (!kind_hashes_[index].has_value()) {
      kind_hashes_[index] = IdHash(patient_hash_).Update(v1::AlertKind_Name(kind)).Update("|");
    }
    return *kind_hashes_[index];
  }

  void AddSources(v1::Alert& alert, const google::protobuf::RepeatedPtrField<std::string>& ids) {
    for (const auto& id : ids) {
      AddSource(alert, id);
    }
  }

  // Cites source `id` on the alert, once.
  void AddSource(v1::Alert& alert, const std::string& id) {
    for (const auto& s : alert.sources()) {
      if (s.id() == id) {
        return;
      }
    }
    auto* ref = alert.add_sources();
    ref->set_id(id);
    if (const auto* source = kb_.FindSource(id); source != nullptr) {
      ref->set_title(source->title());
      ref->set_url(source->url());
    }
  }

  void AddMedEvidence(v1::Alert& alert, const Med& med) {
    auto* e = alert.add_evidence();
    e->set_type(med.proposed && !review_mode_ ? v1::EVIDENCE_TYPE_PROPOSED_MEDICATION
                                              : v1::EVIDENCE_TYPE_CURRENT_MEDICATION);
    e->set_reference(med.order->drug());
    const absl::string_view reference = med.order->drug();
    const size_t cut = CutPoint(reference, 256);
    const bool known = med.drug.has_value();
    e->set_description(absl::StrCat(med.proposed && !review_mode_ ? "Proposed: " : "Current: ",
                                    reference.substr(0, cut), cut == absl::string_view::npos ? "" : "...",
                                    known ? " (" : "", known ? kb_.drug(*med.drug).proto.id() : "", known ? ")" : ""));
  }

  const std::string& DrugName(DrugIndex d) const { return kb_.drug(d).proto.name(); }

  void CheckUnresolved() {
    // Each unresolved name once (there are few: a linear search).
    auto& seen = scratch_.unresolved_names;
    size_t seen_count = 0;
    std::string& key = scratch_.name;
    for (const auto& m : meds_) {
      if (m.drug.has_value()) {
        continue;
      }
      NormalizeNameTo(UnresolvedName(m), &key);
      if (std::find(seen.begin(), seen.begin() + static_cast<std::ptrdiff_t>(seen_count), key) !=
          seen.begin() + static_cast<std::ptrdiff_t>(seen_count)) {
        continue;
      }
      if (seen_count == seen.size()) {
        seen.emplace_back();
      }
      seen[seen_count++].assign(key);
      const bool proposed = m.proposed && !review_mode_;
      auto& alert = NewAlert(v1::ALERT_KIND_UNSCREENED_DRUG,
                             proposed ? v1::SEVERITY_MAJOR : v1::SEVERITY_MODERATE, {key});
      const std::string ref = Clamp(std::string(UnresolvedName(m)), kMaxReferenceInSummary);
      if (proposed) {
        alert.set_summary(Clamp(absl::StrCat("'", ref, "' is not in the knowledge base: it was NOT screened."), kMaxSummaryBytes));
        alert.set_detail(std::string(
            "Vigil could not resolve this medication reference to a drug of its knowledge base, so it was not "
            "checked for contraindications, interactions, allergies or duplicate therapy."));
        alert.set_recommendation(std::string(
            "Check the spelling or send a knowledge-base id, name or code (system|code); otherwise review this drug "
            "manually before ordering."));
      } else {
        alert.set_summary(Clamp(absl::StrCat("Current medication '", ref, "' is not in the knowledge base: not screened."), kMaxSummaryBytes));
        alert.set_detail(std::string(
            "Vigil could not resolve this current medication, so the other medications were not checked against it "
            "for interactions or duplicate therapy."));
        alert.set_recommendation(std::string("Review interactions with this medication manually."));
      }
      alert.add_unresolved_references(std::string(UnresolvedName(m)));
      AddMedEvidence(alert, m);
      scratch_.unresolved.push_back(&m);
      incomplete_ = true;
    }
    // Drugs known only from an imported interaction table.
    for (const Med* m : screened_) {
      if (!kb_.IsImportOnly(*m->drug)) {
        continue;
      }
      const auto& drug = kb_.drug(*m->drug).proto;
      auto& alert = NewAlert(v1::ALERT_KIND_UNSCREENED_DRUG, v1::SEVERITY_MODERATE,
                             {"import-only|", drug.id()});
      alert.add_drug_ids(drug.id());
      alert.set_summary(Clamp(absl::StrCat(drug.name(), " was screened for interactions only: no monograph on file."),
                              kMaxSummaryBytes));
      alert.set_detail(std::string(
          "This drug is known only from an imported interaction table. Its contraindications, allergy classes and "
          "duplicate therapy were not screened."));
      alert.set_recommendation(std::string("Check contraindications and allergies for this drug in another reference."));
      AddMedEvidence(alert, *m);
      incomplete_ = true;
    }
    // Drugs that are known but have no interaction data on file, proposed
    // or current: every pair with such a drug went unscreened, so a silence
    // about it would be a false "no interaction".
    for (const Med& m : meds_) {
      if (!m.canonical || !kb_.InteractionsUnreviewed(*m.drug)) {
        continue;
      }
      const auto& drug = kb_.drug(*m.drug).proto;
      auto& alert = NewAlert(v1::ALERT_KIND_UNSCREENED_DRUG, v1::SEVERITY_MODERATE,
                             {"no-interaction-data|", drug.id()});
      alert.add_drug_ids(drug.id());
      if (m.proposed) {
        alert.set_summary(Clamp(absl::StrCat(drug.name(), " was not screened for interactions: no interaction data on file."), kMaxSummaryBytes));
        alert.set_detail(std::string(
            "No loaded source has interaction data for this drug, so it was not checked for interactions with the "
            "other medications. Its contraindications and allergies were screened."));
        alert.set_recommendation(std::string("Check this drug's interactions in another reference before ordering."));
      } else {
        alert.set_summary(Clamp(absl::StrCat("Current medication ", drug.name(),
                                             " was not screened for interactions: no interaction data on file."),
                                kMaxSummaryBytes));
        alert.set_detail(std::string(
            "No loaded source has interaction data for this current medication, so the proposed medications were not "
            "checked for interactions with it."));
        alert.set_recommendation(std::string(
            "Check the proposed medications against this current medication in another reference before ordering."));
      }
      AddMedEvidence(alert, m);
      incomplete_ = true;
    }
  }

  // For an eGFR threshold without an eGFR result: the eGFR of the latest
  // serum creatinine by the CKD-EPI 2021 creatinine equation (Inker et al.,
  // N Engl J Med 2021), from age and sex. Adds to `matched` when the estimate
  // meets the threshold, to `unreadable` when it cannot be computed, to
  // `stale` when the creatinine is too old.
  void EstimateFromCreatinine(const kb::v1::LabThreshold& threshold,
                              google::protobuf::RepeatedPtrField<v1::Evidence>* matched,
                              google::protobuf::RepeatedPtrField<v1::Evidence>* unreadable,
                              google::protobuf::RepeatedPtrField<v1::Evidence>* stale) const {
    const v1::LabResult* latest = nullptr;
    for (const auto& lab : patient_.labs()) {
      const auto& code = lab.code().code();
      if (code != "2160-0" && code != "14682-9") {
        continue;
      }
      if (latest == nullptr || (!latest->effective_time().empty() && lab.effective_time() > latest->effective_time()) ||
          lab.effective_time().empty()) {
        latest = &lab;
      }
    }
    if (latest == nullptr) {
      return;
    }
    auto describe = [&](v1::Evidence& e) -> std::string* {
      e.set_type(v1::EVIDENCE_TYPE_LAB);
      e.set_system(LoincSystem());
      e.set_code(latest->code().code());
      std::string* description = e.mutable_description();
      description->clear();
      absl::StrAppend(description, "Creatinine ", FormatNumber(latest->value()), " ");
      AppendClamped(latest->unit(), 40, description);
      if (!latest->effective_time().empty()) {
        absl::StrAppend(description, " of ", latest->effective_time().substr(0, 10));
      }
      return description;
    };
    if (!latest->effective_time().empty() && threshold.max_age_days() > 0) {
      const auto when = ParseIsoDate(latest->effective_time());
      if (when.has_value() && as_of_ - *when > threshold.max_age_days()) {
        absl::StrAppend(describe(*stale->Add()), " is older than ", threshold.max_age_days(), " days");
        return;
      }
    }
    // Serum creatinine in mg/dL.
    std::string unit;
    NormalizeNameTo(latest->unit(), &unit);
    double scr = latest->value();
    if (unit == "umol/l" || unit == "µmol/l" || unit == "umol/liter") {
      scr /= 88.42;
    } else if (unit != "mg/dl") {
      absl::StrAppend(describe(*unreadable->Add()), ": the unit cannot be converted to mg/dL to estimate ",
                      threshold.name());
      return;
    }
    const bool female = patient_.sex() == v1::SEX_FEMALE;
    const bool male = patient_.sex() == v1::SEX_MALE;
    if (!age_years_.has_value() || (!female && !male) || !(scr > 0)) {
      absl::StrAppend(describe(*unreadable->Add()), ": ", threshold.name(),
                      " cannot be estimated without the patient's age and sex (CKD-EPI 2021)");
      return;
    }
    const double kappa = female ? 0.7 : 0.9;
    const double alpha = female ? -0.241 : -0.302;
    const double ratio = scr / kappa;
    double egfr = 142.0 * std::pow(std::min(ratio, 1.0), alpha) * std::pow(std::max(ratio, 1.0), -1.200) *
                  std::pow(0.9938, *age_years_);
    if (female) {
      egfr *= 1.012;
    }
    egfr = std::round(egfr);
    if (Compare(threshold.comparator(), egfr, threshold.value())) {
      absl::StrAppend(describe(*matched->Add()), " gives an estimated ", threshold.name(), " of ", FormatNumber(egfr),
                      " ", threshold.unit(), " (CKD-EPI 2021, age ", *age_years_, ", ", female ? "female" : "male",
                      "), ", ComparatorText(threshold.comparator()), " ", FormatNumber(threshold.value()));
    }
  }

  // How the patient's age fits a condition set's age range.
  enum class AgeFit { kNoRange, kInRange, kOutOfRange, kUnknown };

  // Evaluates a condition set against the patient: fills `matched` with the
  // matching facts, `unreadable` with lab results that could not be compared
  // and `stale` with latest lab results too old to decide (all are cleared
  // first). Of each lab threshold's results only the latest decides
  // (undated results are taken as current). Returns how the patient's age
  // fits the set's range; out of range, nothing matches.
  AgeFit MatchConditionSet(const kb::v1::ConditionSet& set,
                           google::protobuf::RepeatedPtrField<v1::Evidence>* matched_out,
                           google::protobuf::RepeatedPtrField<v1::Evidence>* unreadable,
                           google::protobuf::RepeatedPtrField<v1::Evidence>* stale) const {
    auto& matched = *matched_out;
    matched.Clear();
    unreadable->Clear();
    stale->Clear();
    AgeFit fit = AgeFit::kNoRange;
    if (set.has_age() && (set.age().min_years() != 0 || set.age().below_years() != 0)) {
      if (!age_years_.has_value()) {
        fit = AgeFit::kUnknown;
      } else {
        const bool in = *age_years_ >= set.age().min_years() &&
                        (set.age().below_years() == 0 || *age_years_ < set.age().below_years());
        fit = in ? AgeFit::kInRange : AgeFit::kOutOfRange;
      }
    }
    if (fit == AgeFit::kOutOfRange) {
      return fit;
    }
    for (int i = 0; i < patient_.conditions_size(); ++i) {
      const auto& coding = patient_.conditions(i).code();
      const std::string& code = scratch_.condition_codes[static_cast<size_t>(i)];
      for (const auto& rule_code : set.codes()) {
        if (rule_code.system() == coding.system() &&
            CodeMatches(coding.system(), rule_code.code(), code)) {
          v1::Evidence& e = *matched.Add();
          e.set_type(v1::EVIDENCE_TYPE_CONDITION);
          e.set_system(coding.system());
          e.set_code(coding.code());
          // Written into the scratch evidence's own string (it keeps its
          // capacity): the alert gets a copy.
          std::string* description = e.mutable_description();
          description->clear();
          absl::StrAppend(description, "Condition ", coding.code());
          if (!coding.display().empty()) {
            description->push_back(' ');
            AppendClamped(coding.display(), 120, description);
          }
          absl::StrAppend(description, " (", rule_code.display(), ")");
          break;
        }
      }
    }
    for (const auto& threshold : set.labs()) {
      const auto& codes = threshold.loinc_codes();
      // The results of this measurement that decide: undated ones and the
      // latest dated one(s).
      auto& deciding = scratch_.deciding_labs;
      deciding.clear();
      const std::string* latest = nullptr;
      bool undated = false;
      for (int i = 0; i < patient_.labs_size(); ++i) {
        const auto& lab = patient_.labs(i);
        if (std::find(codes.begin(), codes.end(), lab.code().code()) == codes.end()) {
          continue;
        }
        if (lab.effective_time().empty()) {
          undated = true;
        } else if (latest == nullptr || lab.effective_time() > *latest) {
          latest = &lab.effective_time();
        }
      }
      for (int i = 0; i < patient_.labs_size(); ++i) {
        const auto& lab = patient_.labs(i);
        if (std::find(codes.begin(), codes.end(), lab.code().code()) == codes.end()) {
          continue;
        }
        if (lab.effective_time().empty() || lab.effective_time() == *latest) {
          deciding.push_back(i);
        }
      }
      if (deciding.empty() && threshold.estimate_from_creatinine()) {
        EstimateFromCreatinine(threshold, &matched, unreadable, stale);
        continue;
      }
      if (!undated && latest != nullptr && threshold.max_age_days() > 0) {
        const auto when = ParseIsoDate(*latest);
        if (when.has_value() && as_of_ - *when > threshold.max_age_days()) {
          for (int i : deciding) {
            const auto& lab = patient_.labs(i);
            v1::Evidence& e = *stale->Add();
            e.set_type(v1::EVIDENCE_TYPE_LAB);
            e.set_system(LoincSystem());
            e.set_code(lab.code().code());
            std::string* description = e.mutable_description();
            description->clear();
            absl::StrAppend(description, threshold.name(), " ", FormatNumber(lab.value()), " ");
            AppendClamped(lab.unit(), 40, description);
            absl::StrAppend(description, " of ", lab.effective_time().substr(0, 10), " is older than ",
                            threshold.max_age_days(), " days");
          }
          continue;
        }
      }
      for (int i : deciding) {
        const auto& lab = patient_.labs(i);
        const auto unit = CanonicalizeUnit(lab.unit());
        if (!unit.has_value() || unit->unit != threshold.unit()) {
          v1::Evidence& e = *unreadable->Add();
          e.set_type(v1::EVIDENCE_TYPE_LAB);
          e.set_system(LoincSystem());
          e.set_code(lab.code().code());
          std::string* description = e.mutable_description();
          description->clear();
          absl::StrAppend(description, threshold.name(), " ", FormatNumber(lab.value()), " in unit '");
          AppendClamped(lab.unit(), 40, description);
          absl::StrAppend(description, "' cannot be compared with the threshold in ", threshold.unit());
          continue;
        }
        const double value = lab.value() * unit->factor;
        if (Compare(threshold.comparator(), value, threshold.value())) {
          v1::Evidence& e = *matched.Add();
          e.set_type(v1::EVIDENCE_TYPE_LAB);
          e.set_system(LoincSystem());
          e.set_code(lab.code().code());
          std::string* description = e.mutable_description();
          description->clear();
          absl::StrAppend(description, threshold.name(), " ", FormatNumber(value), " ", threshold.unit(), " (LOINC ",
                          lab.code().code(), ") is ", ComparatorText(threshold.comparator()), " ",
                          FormatNumber(threshold.value()));
          if (!lab.effective_time().empty()) {
            absl::StrAppend(description, ", of ", lab.effective_time().substr(0, 10));
          }
        }
      }
    }
    const bool age_only = set.codes().empty() && set.labs().empty();
    if (fit == AgeFit::kInRange && (age_only || !matched.empty())) {
      v1::Evidence& e = *matched.Add();
      e.set_type(v1::EVIDENCE_TYPE_PATIENT);
      std::string* description = e.mutable_description();
      description->clear();
      absl::StrAppend(description, "Age ", *age_years_, " on ", absl::FormatCivilTime(as_of_), " (born ",
                      patient_.birth_date(), ")");
    }
    return fit;
  }

  void CheckConditions() {
    const auto& screened = screened_;
    // Conditions in a code system Vigil cannot match.
    bool any_condition_rules = false;
    for (const Med* m : screened) {
      for (const auto& ci : kb_.drug(*m->drug).proto.contraindications()) {
        any_condition_rules = any_condition_rules || !ci.condition_set().empty();
      }
    }
    if (any_condition_rules) {
      absl::flat_hash_set<std::string> seen;
      for (const auto& condition : patient_.conditions()) {
        const auto& coding = condition.code();
        if (IsConditionSystem(coding.system()) || !seen.insert(coding.system() + "|" + coding.code()).second) {
          continue;
        }
        auto& alert = NewAlert(v1::ALERT_KIND_INCOMPLETE_DATA, v1::SEVERITY_MODERATE,
                               {"condition-system|", coding.system(), "|", coding.code()});
        for (const Med* m : screened) {
          alert.add_drug_ids(kb_.drug(*m->drug).proto.id());
        }
        alert.set_summary(Clamp(absl::StrCat("Condition ", Clamp(coding.code(), 24),
                                             " is in an unsupported code system: not screened."), kMaxSummaryBytes));
        alert.set_detail(absl::StrCat("Conditions are matched in ICD-10-CM and SNOMED CT. The condition '",
                                      Clamp(coding.code(), 64), "' in system '", Clamp(coding.system(), 120),
                                      "' could not be checked against the contraindications of the medications."));
        alert.set_recommendation(std::string("Check this condition against the medications manually, or send it coded in ICD-10-CM or SNOMED CT."));
        auto* e = alert.add_evidence();
        e->set_type(v1::EVIDENCE_TYPE_CONDITION);
        e->set_system(coding.system());
        e->set_code(coding.code());
        e->set_description(absl::StrCat("Condition ", Clamp(coding.code(), 64), " (", Clamp(coding.system(), 120), ")"));
        incomplete_ = true;
      }
    }
    for (const Med* m : screened) {
      const auto& drug = kb_.drug(*m->drug).proto;
      for (const auto& ci : drug.contraindications()) {
        if (ci.condition_set().empty()) {
          continue;
        }
        const auto* set = kb_.FindConditionSet(ci.condition_set());
        if (set == nullptr) {
          continue;  // The loader guarantees this does not happen.
        }
        auto& matched = scratch_.matched;
        auto& unreadable = scratch_.unreadable;
        auto& stale = scratch_.stale;
        const AgeFit fit = MatchConditionSet(*set, &matched, &unreadable, &stale);
        if (fit == AgeFit::kUnknown && (!matched.empty() || (set->codes().empty() && set->labs().empty()))) {
          // The rule applies at some ages only and the patient's is unknown:
          // never a silent pass.
          auto& alert = NewAlert(v1::ALERT_KIND_INCOMPLETE_DATA, std::min(ci.severity(), v1::SEVERITY_MAJOR),
                                 {"age-unknown|", ci.id()});
          alert.add_drug_ids(drug.id());
          alert.set_rule_id(ci.id());
          alert.set_rule_origin("curated");
          alert.set_summary(Clamp(absl::StrCat("Could not check ", drug.name(), " against ", set->name(),
                                               ": no birth date."), kMaxSummaryBytes));
          alert.set_detail(absl::StrCat("This rule depends on the patient's age and the record has no birth date: ",
                                        ci.summary()));
          alert.set_recommendation(std::string("Check the patient's age against this rule, or send the birth date."));
          alert.mutable_evidence()->MergeFrom(matched);
          auto* e = alert.add_evidence();
          e->set_type(v1::EVIDENCE_TYPE_PATIENT);
          e->set_description(std::string("No birth date on record"));
          AddMedEvidence(alert, *m);
          AddSources(alert, ci.sources());
          incomplete_ = true;
        } else if (!matched.empty()) {
          auto& alert = NewAlert(v1::ALERT_KIND_CONTRAINDICATION, ci.severity(), {ci.id()});
          alert.mutable_evidence()->Reserve(static_cast<int>(matched.size()) + 1);
          alert.mutable_sources()->Reserve(ci.sources_size());
          alert.add_drug_ids(drug.id());
          alert.set_rule_id(ci.id());
          alert.set_rule_origin("curated");
          alert.set_summary(Clamp(ci.summary(), kMaxSummaryBytes));
          // (Not a ternary: one of a const std::string and a temporary is a
          // const temporary, which the setter copies instead of moving.)
          if (m->local_route) {
            // Most labels' contraindications are for systemic use; some (a
            // beta-blocker eye drop in asthma) hold for drops too.
            alert.set_detail(absl::StrCat(ci.detail(), ci.detail().empty() ? "" : " ", drug.name(),
                                          " is ordered for the skin, eye or ear: systemic exposure is lower; check "
                                          "whether the product's own label carries this warning for that route."));
          } else {
            alert.set_detail(ci.detail());
          }
          // How the source was read is for reviewers and on demand, not part
          // of the text the prescriber reads.
          alert.set_interpretation(ci.interpretation());
          alert.set_recommendation(ci.recommendation());
          alert.mutable_evidence()->MergeFrom(matched);
          AddMedEvidence(alert, *m);
          AddSources(alert, ci.sources());
        } else if (!unreadable.empty()) {
          const v1::Severity severity = std::min(ci.severity(), v1::SEVERITY_MAJOR);
          auto& alert = NewAlert(v1::ALERT_KIND_INCOMPLETE_DATA, severity, {"lab-unit|", ci.id()});
          alert.add_drug_ids(drug.id());
          alert.set_rule_id(ci.id());
          alert.set_rule_origin("curated");
          alert.set_summary(Clamp(absl::StrCat("Could not check ", drug.name(), " against ", set->name(),
                                               ": a lab result could not be read."), kMaxSummaryBytes));
          alert.set_detail(absl::StrCat("A lab result this rule depends on could not be interpreted (its unit, or what an "
                                        "estimate needs, is missing), so the rule '", ci.summary(), "' was not evaluated."));
          alert.set_recommendation(std::string(
              "Check the lab result against the rule manually, or resend it in a UCUM unit with the patient's age and sex."));
          alert.mutable_evidence()->MergeFrom(unreadable);
          AddMedEvidence(alert, *m);
          AddSources(alert, ci.sources());
          incomplete_ = true;
        } else if (!stale.empty()) {
          const v1::Severity severity = std::min(ci.severity(), v1::SEVERITY_MAJOR);
          auto& alert = NewAlert(v1::ALERT_KIND_INCOMPLETE_DATA, severity, {"lab-stale|", ci.id()});
          alert.add_drug_ids(drug.id());
          alert.set_rule_id(ci.id());
          alert.set_rule_origin("curated");
          alert.set_summary(Clamp(absl::StrCat("Could not check ", drug.name(), " against ", set->name(),
                                               ": the latest result is too old."), kMaxSummaryBytes));
          alert.set_detail(absl::StrCat("The latest lab result this rule depends on is older than the rule allows, so "
                                        "it did not decide: ", ci.summary()));
          alert.set_recommendation(std::string("Check a current result before ordering."));
          alert.mutable_evidence()->MergeFrom(stale);
          AddMedEvidence(alert, *m);
          AddSources(alert, ci.sources());
          incomplete_ = true;
        }
      }
    }
  }

  void CheckAllergies() {
    const auto& screened = screened_;
    if (screened.empty() && meds_.empty()) {
      return;
    }
    for (const auto& allergy : patient_.allergies()) {
      const auto target = kb_.Resolve(allergy.substance());
      auto evidence = [&](v1::Alert& alert) {
        auto* e = alert.add_evidence();
        e->set_type(v1::EVIDENCE_TYPE_ALLERGY);
        e->set_reference(allergy.substance());
        std::string text = absl::StrCat("Allergy: ", Clamp(allergy.substance(), 120));
        if (!allergy.reaction().empty()) {
          absl::StrAppend(&text, " (reaction: ", Clamp(allergy.reaction(), 120), ")");
        }
        if (allergy.criticality() == v1::ALLERGY_CRITICALITY_HIGH) {
          absl::StrAppend(&text, ", high criticality");
        }
        e->set_description(text);
      };
      if (target.kind == KnowledgeBase::Resolved::Kind::kNone) {
        if (screened.empty()) {
          continue;
        }
        auto& alert = NewAlert(v1::ALERT_KIND_INCOMPLETE_DATA, v1::SEVERITY_MODERATE,
                               {"allergy-unknown|", NormalizeName(allergy.substance())});
        for (const Med* m : screened) {
          alert.add_drug_ids(kb_.drug(*m->drug).proto.id());
        }
        alert.set_summary(Clamp(absl::StrCat("Allergy to '", Clamp(allergy.substance(), kMaxReferenceInSummary),
                                             "' is not in the knowledge base: not screened."), kMaxSummaryBytes));
        alert.set_detail(std::string("Vigil could not resolve the allergy's substance to a drug or class, so the medications were not "
                         "checked against it."));
        alert.set_recommendation(std::string("Check the medications against this allergy manually, or record it by drug or class name."));
        alert.add_unresolved_references(allergy.substance());
        evidence(alert);
        incomplete_ = true;
        continue;
      }
      for (const Med* m : screened) {
        const DrugIndex d = *m->drug;
        const auto& drug = kb_.drug(d).proto;
        using Kind = KnowledgeBase::Resolved::Kind;
        // The drugs the allergy's substance stands for: itself, or a
        // product's ingredients (an allergy to "Bactrim" is to each).
        const std::vector<DrugIndex>* ingredients =
            target.kind == Kind::kProduct ? &kb_.product(target.index).ingredients : nullptr;
        const bool direct =
            target.kind == Kind::kDrug    ? target.index == d
            : target.kind == Kind::kClass ? kb_.IsMember(d, target.index)
                                          : std::find(ingredients->begin(), ingredients->end(), d) != ingredients->end();
        const std::string& target_name = target.kind == Kind::kDrug    ? kb_.drug(target.index).proto.name()
                                         : target.kind == Kind::kClass ? kb_.drug_class(target.index).proto.name()
                                                                       : kb_.product(target.index).proto.name();
        if (direct) {
          const kb::v1::Contraindication* hyper = nullptr;
          for (const auto& ci : drug.contraindications()) {
            if (ci.hypersensitivity()) {
              hyper = &ci;
            }
          }
          auto& alert = NewAlert(v1::ALERT_KIND_ALLERGY, v1::SEVERITY_CONTRAINDICATED,
                                 {"direct|", drug.id(), "|", NormalizeName(allergy.substance())});
          alert.add_drug_ids(drug.id());
          alert.set_rule_origin("curated");
          if (hyper != nullptr) {
            alert.set_rule_id(hyper->id());
            alert.set_summary(Clamp(hyper->summary(), kMaxSummaryBytes));
            alert.set_detail(hyper->detail());
            alert.set_recommendation(hyper->recommendation());
            AddSources(alert, hyper->sources());
          } else {
            alert.set_summary(Clamp(absl::StrCat(drug.name(), ": the patient is allergic to ", target_name, "."), kMaxSummaryBytes));
            alert.set_detail(absl::StrCat(
                drug.name(), " is ",
                target.kind == Kind::kDrug    ? "the substance of a recorded allergy."
                : target.kind == Kind::kClass ? absl::StrCat("a member of ", target_name, ", a class of a recorded allergy.")
                                              : absl::StrCat("an ingredient of ", target_name, ", a product of a recorded allergy.")));
            alert.set_recommendation(std::string("Do not give; choose an alternative outside the allergy's class."));
            AddSources(alert, drug.sources());
          }
          evidence(alert);
          AddMedEvidence(alert, *m);
          continue;
        }
        // Declared cross-sensitivity between the allergy and the drug.
        for (const auto& group : kb_.cross_sensitivities()) {
          if (!std::binary_search(group.drugs.begin(), group.drugs.end(), d)) {
            continue;
          }
          bool allergy_in_group = false;
          if (target.kind == Kind::kDrug) {
            allergy_in_group = std::binary_search(group.drugs.begin(), group.drugs.end(), target.index);
          } else if (target.kind == Kind::kProduct) {
            for (DrugIndex member : *ingredients) {
              allergy_in_group = allergy_in_group || std::binary_search(group.drugs.begin(), group.drugs.end(), member);
            }
          } else {
            for (DrugIndex member : kb_.drug_class(target.index).members) {
              allergy_in_group = allergy_in_group || std::binary_search(group.drugs.begin(), group.drugs.end(), member);
            }
          }
          if (!allergy_in_group) {
            continue;
          }
          // The severity follows what the record says of the reaction: a
          // severe or high-criticality reaction is at least major; a
          // low-criticality mild one at most moderate. Where the group
          // needs a true allergy (reaction terms) and the record does not
          // say, the alert says the cross-reactivity is uncertain.
          const bool severe = allergy.criticality() == v1::ALLERGY_CRITICALITY_HIGH || IsSevereReaction(allergy.reaction());
          bool uncertain = false;
          if (!group.proto.reaction_terms().empty() && !severe) {
            bool named = false;
            for (const auto& term : group.proto.reaction_terms()) {
              named = named || ContainsIgnoreCase(allergy.reaction(), term);
            }
            if (!named && !allergy.reaction().empty()) {
              continue;  // An intolerance the group does not cross.
            }
            uncertain = !named;
          }
          v1::Severity severity = group.proto.severity();
          absl::string_view why;
          if (uncertain) {
            severity = v1::SEVERITY_MINOR;
            why = " The record does not say what the reaction was; cross-reactivity is expected only after a true "
                  "allergic reaction, so it is uncertain here.";
          } else if (severe) {
            severity = std::max(severity, v1::SEVERITY_MAJOR);
            why = " The recorded reaction was severe or of high criticality.";
          } else if (allergy.criticality() == v1::ALLERGY_CRITICALITY_LOW) {
            severity = std::min(severity, v1::SEVERITY_MODERATE);
            why = " The recorded reaction was of low criticality.";
          }
          auto& alert = NewAlert(v1::ALERT_KIND_ALLERGY, severity,
                                 {"cross|", group.proto.id(), "|", drug.id(), "|",
                                  NormalizeName(allergy.substance())});
          alert.add_drug_ids(drug.id());
          alert.set_rule_id(group.proto.id());
          alert.set_rule_origin("curated");
          alert.set_summary(Clamp(group.proto.summary(), kMaxSummaryBytes));
          alert.set_detail(absl::StrCat(group.proto.detail(), " The patient is allergic to ", target_name, ".", why));
          alert.set_recommendation(group.proto.recommendation());
          evidence(alert);
          AddMedEvidence(alert, *m);
          AddSources(alert, group.proto.sources());
          break;
        }
      }
    }
  }

  void CheckInteractions() {
    // Each unordered pair of distinct drugs, at least one screened, once:
    // canonical medications only, and a pair of two screened drugs from the
    // earlier one.
    for (size_t i = 0; i < meds_.size(); ++i) {
      const Med& p = meds_[i];
      if (!p.proposed || !p.canonical) {
        continue;
      }
      for (size_t j = 0; j < meds_.size(); ++j) {
        const Med& x = meds_[j];
        // Ingredients of one product are given together by design.
        if (j == i || !x.canonical || (x.proposed && j < i) || x.order_index == p.order_index) {
          continue;
        }
        PairAlert(p, x);
      }
    }
  }

  void PairAlert(const Med& p, const Med& x) {
    const DrugIndex pd = *p.drug;
    const DrugIndex xd = *x.drug;
    // Most severe first; then drug-specific over class rules; then id.
    const absl::Span<const uint32_t> matched = kb_.RulesForPair(pd, xd);
    if (matched.empty()) {
      // Curated rules win; an imported interaction is used only when no
      // curated rule covers the pair.
      if (const ImportedInteraction* imported = kb_.FindImported(pd, xd); imported != nullptr) {
        ImportedPairAlert(p, x, *imported);
      }
      return;
    }
    const auto& rules = kb_.interactions();
    const auto& primary = rules[matched.front()].proto;
    const auto& pdrug = kb_.drug(pd).proto;
    const auto& xdrug = kb_.drug(xd).proto;
    const auto ids = std::minmax(pdrug.id(), xdrug.id());
    auto& alert = NewAlert(v1::ALERT_KIND_DRUG_INTERACTION, primary.severity(), {ids.first, "+", ids.second});
    // Sized once: a repeated field grown one element at a time reallocates.
    alert.mutable_drug_ids()->Reserve(2);
    alert.mutable_evidence()->Reserve(2);
    alert.mutable_sources()->Reserve(static_cast<int>(matched.size()));
    alert.add_drug_ids(pdrug.id());
    alert.add_drug_ids(xdrug.id());
    alert.set_rule_id(primary.id());
    alert.set_rule_origin(rules[matched.front()].origin_name);
    // The summary names this patient's drugs: the rule's own when it names
    // both already, else "<drug> with <drug>: " before it.
    if (ContainsIgnoreCase(primary.summary(), pdrug.name()) && ContainsIgnoreCase(primary.summary(), xdrug.name())) {
      alert.set_summary(Clamp(primary.summary(), kMaxSummaryBytes));
    } else {
      std::string summary;
      summary.reserve(pdrug.name().size() + xdrug.name().size() + primary.summary().size() + 8);
      absl::StrAppend(&summary, pdrug.name(), " with ", xdrug.name(), ": ", primary.summary());
      alert.set_summary(Clamp(std::move(summary), kMaxSummaryBytes));
    }
    // One allocation: the text's size is known before it is written.
    size_t size = pdrug.name().size() + xdrug.name().size() + primary.effect().size() + primary.mechanism().size() +
                  primary.interpretation().size() + 64;
    for (size_t k = 1; k < matched.size(); ++k) {
      const auto& also = rules[matched[k]].proto;
      size += also.id().size() + also.summary().size() + 48;
    }
    std::string detail;
    detail.reserve(size);
    absl::StrAppend(&detail, pdrug.name(), " and ", xdrug.name(), ". ");
    if (!primary.effect().empty()) {
      absl::StrAppend(&detail, "Effect: ", primary.effect(), " ");
    }
    if (!primary.mechanism().empty()) {
      absl::StrAppend(&detail, "Mechanism: ", primary.mechanism(), " ");
    }
    for (size_t k = 1; k < matched.size(); ++k) {
      absl::StrAppend(&detail, "Also: ", rules[matched[k]].proto.summary(), " ");
    }
    for (const Med* local : {&p, &x}) {
      if (local->local_route) {
        absl::StrAppend(&detail, kb_.drug(*local->drug).proto.name(),
                        " is ordered for the skin, eye or ear: its systemic exposure, and so the risk of this "
                        "interaction, is usually lower than by mouth. ");
      }
    }
    while (!detail.empty() && detail.back() == ' ') {
      detail.pop_back();
    }
    alert.set_detail(std::move(detail));
    alert.set_recommendation(primary.management());
    alert.set_interpretation(primary.interpretation());
    AddMedEvidence(alert, p);
    AddMedEvidence(alert, x);
    // The sources behind this pair: the primary rule's, then the others'
    // while there is room (a handful, not every label of a group).
    for (uint32_t r : matched) {
      for (const auto& id : rules[r].proto.sources()) {
        if (alert.sources_size() >= kMaxSources) {
          break;
        }
        AddSource(alert, id);
      }
    }
  }

  void ImportedPairAlert(const Med& p, const Med& x, const ImportedInteraction& imported) {
    const auto& info = kb_.imports()[imported.import_index];
    const std::string& level = info.levels[imported.level];
    const auto& pdrug = kb_.drug(*p.drug).proto;
    const auto& xdrug = kb_.drug(*x.drug).proto;
    const auto ids = std::minmax(pdrug.id(), xdrug.id());
    auto& alert = NewAlert(v1::ALERT_KIND_DRUG_INTERACTION, imported.severity, {ids.first, "+", ids.second});
    alert.mutable_drug_ids()->Reserve(2);
    alert.mutable_evidence()->Reserve(2);
    alert.add_drug_ids(pdrug.id());
    alert.add_drug_ids(xdrug.id());
    alert.set_rule_id(absl::StrCat(info.name, ":", ids.first, "+", ids.second));
    alert.set_rule_origin(info.name);
    const bool ungraded = level == "Unknown";
    // (As string_views: a ternary of a literal and a std::string would copy
    // one of them into a temporary.)
    std::string summary = absl::StrCat(pdrug.name(), " with ", xdrug.name(), ": ",
                                       ungraded ? absl::string_view("interaction of ungraded severity")
                                                : absl::string_view(level),
                                       ungraded ? "" : " interaction", " (", info.name, ").");
    if (!ungraded) {
      // The level as a word in the sentence: "Major" -> "major".
      const size_t at = pdrug.name().size() + xdrug.name().size() + 8;
      for (size_t i = at; i < at + level.size(); ++i) {
        summary[i] = absl::ascii_tolower(static_cast<unsigned char>(summary[i]));
      }
    }
    alert.set_summary(Clamp(std::move(summary), kMaxSummaryBytes));
    alert.set_detail(absl::StrCat(
        info.name, " lists an interaction between ", pdrug.name(), " and ", xdrug.name(), " at level '", level, "'",
        ungraded ? ", meaning its severity was not graded: it is shown as moderate so that it is reviewed" : "",
        ". The imported table carries no mechanism or management text; no curated rule covers this pair."));
    alert.set_recommendation(std::string(
        "Review the combination in a full interaction monograph; monitor the patient or choose an alternative."));
    AddMedEvidence(alert, p);
    AddMedEvidence(alert, x);
    AddSource(alert, info.source_id);
  }

  void CheckDuplicates() {
    // The same drug more than once: runs of by_drug (sorted by drug, then
    // medication order).
    const auto& by_drug = scratch_.by_drug;
    auto& list = scratch_.group;
    for (size_t k = 0; k < by_drug.size();) {
      const DrugIndex d = by_drug[k].first;
      list.clear();
      for (; k < by_drug.size() && by_drug[k].first == d; ++k) {
        list.push_back(&meds_[by_drug[k].second]);
      }
      const bool any_proposed = std::any_of(list.begin(), list.end(), [](const Med* m) { return m->proposed; });
      if (list.size() < 2 || !any_proposed) {
        continue;
      }
      const auto& drug = kb_.drug(d).proto;
      auto& alert = NewAlert(v1::ALERT_KIND_DUPLICATE_THERAPY, v1::SEVERITY_MODERATE, {"same|", drug.id()});
      alert.add_drug_ids(drug.id());
      const bool already_current =
          !review_mode_ && std::any_of(list.begin(), list.end(), [](const Med* m) { return !m->proposed; });
      alert.set_summary(Clamp(already_current
                                  ? absl::StrCat(drug.name(), " is already on the patient's current medication list.")
                                  : absl::StrCat(drug.name(), " is listed ", list.size(), " times."),
                              kMaxSummaryBytes));
      alert.set_detail(absl::StrCat("The same drug appears ", list.size(),
                                    " times among the proposed and current medications (references: ",
                                    absl::StrJoin(list, ", ", [](std::string* out, const Med* m) {
                                      absl::StrAppend(out, "'", Clamp(m->order->drug(), 64), "'");
                                    }),
                                    ")."));
      alert.set_recommendation(std::string("Confirm that a second order of the same drug is intended; otherwise cancel one."));
      for (const Med* m : list) {
        AddMedEvidence(alert, *m);
      }
      AddSources(alert, drug.sources());
    }
    // Two different drugs of a duplicate-sensitive class: (class, canonical
    // medication) pairs, sorted, so each class's drugs come in medication
    // order.
    auto& by_class = scratch_.by_class;
    by_class.clear();
    for (uint32_t i = 0; i < meds_.size(); ++i) {
      // A drug on the skin, in the eye or the ear is not systemic therapy of
      // its class (topical diclofenac is not a second oral NSAID).
      if (!meds_[i].canonical || meds_[i].local_route) {
        continue;
      }
      for (ClassIndex c : kb_.drug(*meds_[i].drug).all_classes) {
        if (kb_.drug_class(c).proto.duplicate_sensitive()) {
          by_class.emplace_back(c, i);
        }
      }
    }
    std::sort(by_class.begin(), by_class.end());
    for (size_t k = 0; k < by_class.size();) {
      const ClassIndex c = by_class[k].first;
      list.clear();
      bool any_proposed = false;
      for (; k < by_class.size() && by_class[k].first == c; ++k) {
        const Med& canonical = meds_[by_class[k].second];
        list.push_back(&canonical);
        // Any medication of the drug, not only the canonical one.
        for (auto it = std::lower_bound(by_drug.begin(), by_drug.end(), std::make_pair(*canonical.drug, 0u));
             it != by_drug.end() && it->first == *canonical.drug; ++it) {
          any_proposed = any_proposed || meds_[it->second].proposed;
        }
      }
      // Two ingredients of one product are one therapy.
      const bool several_orders = std::any_of(list.begin(), list.end(), [&list](const Med* m) {
        return m->order_index != list.front()->order_index;
      });
      if (list.size() < 2 || !any_proposed || !several_orders) {
        continue;
      }
      const auto& cls = kb_.drug_class(c).proto;
      auto& alert = NewAlert(v1::ALERT_KIND_DUPLICATE_THERAPY, v1::SEVERITY_MODERATE,
                             {"class|", cls.id(), "|", SortedIdList(list)});
      std::string names;
      for (const Med* m : list) {
        const auto& drug = kb_.drug(*m->drug).proto;
        alert.add_drug_ids(drug.id());
        absl::StrAppend(&names, names.empty() ? "" : ", ", drug.name());
      }
      alert.set_rule_id(cls.id());
      alert.set_rule_origin("curated");
      alert.set_summary(Clamp(absl::StrCat("Duplicate therapy: ", list.size(), " ", cls.name(), " at once (", names, ")."),
                              kMaxSummaryBytes));
      alert.set_detail(absl::StrCat(names, " all belong to ", cls.name(),
                                    ", a class in which two drugs at once are usually duplicate therapy. ",
                                    cls.description()));
      alert.set_recommendation(std::string("Confirm that more than one drug of this class is intended (for example a cross-taper); otherwise stop one."));
      for (const Med* m : list) {
        AddMedEvidence(alert, *m);
      }
      AddSources(alert, cls.sources());
    }
  }

  // The knowledge-base ids of the drugs of `meds`, sorted and joined with
  // "+" into scratch memory (valid until the next call).
  absl::string_view SortedIdList(const std::vector<const Med*>& meds) {
    auto& order = scratch_.order;
    order.clear();
    for (const Med* m : meds) {
      order.push_back(*m->drug);
    }
    std::sort(order.begin(), order.end(),
              [this](uint32_t a, uint32_t b) { return kb_.drug(a).proto.id() < kb_.drug(b).proto.id(); });
    std::string& out = scratch_.id_list;
    out.clear();
    for (uint32_t d : order) {
      absl::StrAppend(&out, out.empty() ? "" : "+", kb_.drug(d).proto.id());
    }
    return out;
  }

  void CheckAdditiveEffects() {
    auto& list = scratch_.group;
    for (const auto& rule : kb_.additive_rules()) {
      list.clear();
      bool any_proposed = false;
      int total = 0;
      for (const auto& m : meds_) {
        if (!m.drug.has_value() || m.local_route) {
          continue;
        }
        const int score = kb_.drug(*m.drug).EffectScore(rule.effect());
        if (score == 0) {
          continue;
        }
        any_proposed = any_proposed || m.proposed;
        if (m.canonical) {
          list.push_back(&m);
          total += score;
        }
      }
      if (static_cast<int>(list.size()) < rule.min_drugs() || !any_proposed ||
          (rule.min_score() > 0 && total < rule.min_score())) {
        continue;
      }
      auto& alert = NewAlert(v1::ALERT_KIND_DRUG_INTERACTION, rule.severity(),
                             {"additive|", rule.id(), "|", SortedIdList(list)});
      std::string names;
      for (const Med* m : list) {
        const auto& entry = kb_.drug(*m->drug);
        alert.add_drug_ids(entry.proto.id());
        absl::StrAppend(&names, names.empty() ? "" : ", ", entry.proto.name());
        if (rule.min_score() > 0) {
          absl::StrAppend(&names, " (", entry.EffectScore(rule.effect()), ")");
        }
      }
      alert.set_rule_id(rule.id());
      alert.set_rule_origin("curated");
      // The summary names the drugs that add up where there is room (the
      // detail always does).
      if (names.size() + rule.summary().size() + 2 <= kMaxSummaryBytes) {
        alert.set_summary(absl::StrCat(names, ": ", rule.summary()));
      } else {
        alert.set_summary(Clamp(rule.summary(), kMaxSummaryBytes));
      }
      alert.set_detail(rule.min_score() > 0
                           ? absl::StrCat(list.size(), " drugs that add up to a score of ", total, ": ", names, ". ",
                                          rule.detail())
                           : absl::StrCat(list.size(), " drugs that add up: ", names, ". ", rule.detail()));
      alert.set_recommendation(rule.recommendation());
      for (const Med* m : list) {
        AddMedEvidence(alert, *m);
      }
      AddSources(alert, rule.sources());
    }
  }

  void Finish() {
    // Most severe first, then by kind, then by id.
    auto& order = scratch_.order;
    order.resize(static_cast<size_t>(alerts_.size()));
    for (uint32_t i = 0; i < order.size(); ++i) {
      order[i] = i;
    }
    std::sort(order.begin(), order.end(), [this](uint32_t x, uint32_t y) {
      const v1::Alert& a = alerts_[static_cast<int>(x)];
      const v1::Alert& b = alerts_[static_cast<int>(y)];
      if (a.severity() != b.severity()) {
        return a.severity() > b.severity();
      }
      if (a.kind() != b.kind()) {
        return a.kind() < b.kind();
      }
      if (a.id() != b.id()) {
        return a.id() < b.id();
      }
      return x < y;
    });
    // The same finding can be reached twice (e.g. a drug proposed twice):
    // keep the first in that order.
    auto& by_id = scratch_.by_id;
    by_id.resize(order.size());
    for (uint32_t rank = 0; rank < order.size(); ++rank) {
      by_id[rank] = rank;
    }
    auto id_at = [this, &order](uint32_t rank) -> const std::string& {
      return alerts_[static_cast<int>(order[rank])].id();
    };
    std::sort(by_id.begin(), by_id.end(), [&id_at](uint32_t x, uint32_t y) {
      const std::string& a = id_at(x);
      const std::string& b = id_at(y);
      return a != b ? a < b : x < y;
    });
    auto& dropped = scratch_.dropped;
    dropped.assign(order.size(), false);
    size_t dropped_count = 0;
    for (size_t k = 1; k < by_id.size(); ++k) {
      if (id_at(by_id[k]) == id_at(by_id[k - 1])) {
        dropped[by_id[k]] = true;
        ++dropped_count;
      }
    }
    // Put the alerts in that order in place (the field owns them, on the
    // result's arena if it has one): the kept ones first, the dropped ones
    // after them, then remove those from the end.
    auto& ranked = scratch_.ranked;
    ranked.clear();
    const auto slots = alerts_.pointer_begin();
    for (uint32_t rank = 0; rank < order.size(); ++rank) {
      if (!dropped[rank]) {
        ranked.push_back(slots[order[rank]]);
      }
    }
    for (uint32_t rank = 0; rank < order.size(); ++rank) {
      if (dropped[rank]) {
        ranked.push_back(slots[order[rank]]);
      }
    }
    std::copy(ranked.begin(), ranked.end(), alerts_.pointer_begin());
    for (size_t k = 0; k < dropped_count; ++k) {
      alerts_.RemoveLast();
    }
    auto& summary = *out_.mutable_summary();
    summary.set_alert_count(alerts_.size());
    summary.mutable_screened_drug_ids()->Reserve(static_cast<int>(scratch_.by_drug.size()));
    for (const auto& m : meds_) {
      if (m.canonical) {
        summary.add_screened_drug_ids(kb_.drug(*m.drug).proto.id());
      }
    }
    for (const Med* m : scratch_.unresolved) {
      summary.add_unresolved_references(std::string(UnresolvedName(*m)));
    }
    summary.set_knowledge_base_version(kb_.version());
    summary.set_complete(!incomplete_);
  }

  // The patient's age in completed years on `as_of`; nullopt without a
  // birth date.
  static std::optional<int> AgeOn(absl::string_view birth_date, absl::CivilDay as_of) {
    const auto birth = ParseIsoDate(birth_date);
    if (!birth.has_value()) {
      return std::nullopt;
    }
    int years = static_cast<int>(as_of.year() - birth->year());
    if (as_of.month() < birth->month() || (as_of.month() == birth->month() && as_of.day() < birth->day())) {
      --years;
    }
    return std::max(years, 0);
  }

  const KnowledgeBase& kb_;
  const v1::Patient& patient_;
  const absl::CivilDay as_of_;
  const std::optional<int> age_years_;
  const bool review_mode_;
  const IdHash patient_hash_ = PatientIdHash(patient_.id());
  std::array<std::optional<IdHash>, 16> kind_hashes_;
  Scratch& scratch_;
  std::vector<Med>& meds_;
  std::vector<const Med*>& screened_;
  v1::CheckMedicationsResult& out_;
  google::protobuf::RepeatedPtrField<v1::Alert>& alerts_;
  bool incomplete_ = false;
};

}  // namespace

std::string MakeAlertId(absl::string_view patient_id, absl::string_view finding_key) {
  return PatientIdHash(patient_id).Update(finding_key).Id();
}

ScreenOptions ScreenOptions::Today() {
  ScreenOptions options;
  options.as_of = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
  return options;
}

std::optional<absl::CivilDay> ParseIsoDate(absl::string_view s) {
  if (s.size() < 10 || s[4] != '-' || s[7] != '-' || (s.size() > 10 && s[10] != 'T' && s[10] != ' ')) {
    return std::nullopt;
  }
  for (size_t i : {0u, 1u, 2u, 3u, 5u, 6u, 8u, 9u}) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) {
      return std::nullopt;
    }
  }
  const int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
  const int month = (s[5] - '0') * 10 + (s[6] - '0');
  const int day = (s[8] - '0') * 10 + (s[9] - '0');
  // CivilDay normalizes out-of-range fields (February 30 becomes March 1 or
  // 2), so a date that does not survive the round trip does not exist.
  const absl::CivilDay civil(year, month, day);
  if (civil.year() != year || civil.month() != month || civil.day() != day) {
    return std::nullopt;
  }
  return civil;
}

void ScreenInto(const KnowledgeBase& kb, const v1::Patient& patient,
                const google::protobuf::RepeatedPtrField<v1::MedicationOrder>& proposed,
                v1::CheckMedicationsResult* result, const ScreenOptions& options) {
  Screener(kb, patient, proposed, result, options).Run();
}

ScreeningResult Screen(const KnowledgeBase& kb, const v1::Patient& patient,
                       const google::protobuf::RepeatedPtrField<v1::MedicationOrder>& proposed,
                       const ScreenOptions& options) {
  v1::CheckMedicationsResult screened;
  ScreenInto(kb, patient, proposed, &screened, options);
  ScreeningResult result;
  result.alerts.reserve(static_cast<size_t>(screened.alerts_size()));
  for (auto& alert : *screened.mutable_alerts()) {
    result.alerts.push_back(std::move(alert));
  }
  result.summary = std::move(*screened.mutable_summary());
  return result;
}

}  // namespace vigil
