// Contraindications: drug-condition rules matched on the patient's coded
// conditions, lab results (the latest of each, estimated eGFR) and age.
#include "server/engine/check.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/codes/clinical_codes.h"

namespace vigil::engine_internal {

namespace {

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

// For an eGFR threshold without an eGFR result: the eGFR of the latest
// serum creatinine by the CKD-EPI 2021 creatinine equation (Inker et al.,
// N Engl J Med 2021), from age and sex. Adds to `matched` when the estimate
// meets the threshold, to `unreadable` when it cannot be computed, to
// `stale` when the creatinine is too old.
void EstimateFromCreatinine(const CheckInput& in, const kb::v1::LabThreshold& threshold,
                              google::protobuf::RepeatedPtrField<v1::Evidence>* matched,
                              google::protobuf::RepeatedPtrField<v1::Evidence>* unreadable,
                              google::protobuf::RepeatedPtrField<v1::Evidence>* stale) {
  const v1::LabResult* latest = nullptr;
  for (const auto& lab : in.patient.labs()) {
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
    if (when.has_value() && in.as_of - *when > threshold.max_age_days()) {
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
  const bool female = in.patient.sex() == v1::SEX_FEMALE;
  const bool male = in.patient.sex() == v1::SEX_MALE;
  if (!in.age_years.has_value() || (!female && !male) || !(scr > 0)) {
    absl::StrAppend(describe(*unreadable->Add()), ": ", threshold.name(),
                    " cannot be estimated without the patient's age and sex (CKD-EPI 2021)");
    return;
  }
  const double kappa = female ? 0.7 : 0.9;
  const double alpha = female ? -0.241 : -0.302;
  const double ratio = scr / kappa;
  double egfr = 142.0 * std::pow(std::min(ratio, 1.0), alpha) * std::pow(std::max(ratio, 1.0), -1.200) *
                std::pow(0.9938, *in.age_years);
  if (female) {
    egfr *= 1.012;
  }
  egfr = std::round(egfr);
  if (Compare(threshold.comparator(), egfr, threshold.value())) {
    absl::StrAppend(describe(*matched->Add()), " gives an estimated ", threshold.name(), " of ", FormatNumber(egfr),
                    " ", threshold.unit(), " (CKD-EPI 2021, age ", *in.age_years, ", ", female ? "female" : "male",
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
AgeFit MatchConditionSet(CheckInput& in, const kb::v1::ConditionSet& set,
                         google::protobuf::RepeatedPtrField<v1::Evidence>* matched_out,
                         google::protobuf::RepeatedPtrField<v1::Evidence>* unreadable,
                         google::protobuf::RepeatedPtrField<v1::Evidence>* stale) {
  auto& matched = *matched_out;
  matched.Clear();
  unreadable->Clear();
  stale->Clear();
  AgeFit fit = AgeFit::kNoRange;
  if (set.has_age() && (set.age().min_years() != 0 || set.age().below_years() != 0)) {
    if (!in.age_years.has_value()) {
      fit = AgeFit::kUnknown;
    } else {
      const bool in_range = *in.age_years >= set.age().min_years() &&
                            (set.age().below_years() == 0 || *in.age_years < set.age().below_years());
      fit = in_range ? AgeFit::kInRange : AgeFit::kOutOfRange;
    }
  }
  if (fit == AgeFit::kOutOfRange) {
    return fit;
  }
  for (int i = 0; i < in.patient.conditions_size(); ++i) {
    const auto& coding = in.patient.conditions(i).code();
    const std::string& code = in.scratch.condition_codes[static_cast<size_t>(i)];
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
    auto& deciding = in.scratch.deciding_labs;
    deciding.clear();
    const std::string* latest = nullptr;
    bool undated = false;
    for (int i = 0; i < in.patient.labs_size(); ++i) {
      const auto& lab = in.patient.labs(i);
      if (std::find(codes.begin(), codes.end(), lab.code().code()) == codes.end()) {
        continue;
      }
      if (lab.effective_time().empty()) {
        undated = true;
      } else if (latest == nullptr || lab.effective_time() > *latest) {
        latest = &lab.effective_time();
      }
    }
    for (int i = 0; i < in.patient.labs_size(); ++i) {
      const auto& lab = in.patient.labs(i);
      if (std::find(codes.begin(), codes.end(), lab.code().code()) == codes.end()) {
        continue;
      }
      if (lab.effective_time().empty() || lab.effective_time() == *latest) {
        deciding.push_back(i);
      }
    }
    if (deciding.empty() && threshold.estimate_from_creatinine()) {
      EstimateFromCreatinine(in, threshold, &matched, unreadable, stale);
      continue;
    }
    if (!undated && latest != nullptr && threshold.max_age_days() > 0) {
      const auto when = ParseIsoDate(*latest);
      if (when.has_value() && in.as_of - *when > threshold.max_age_days()) {
        for (int i : deciding) {
          const auto& lab = in.patient.labs(i);
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
      const auto& lab = in.patient.labs(i);
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
    absl::StrAppend(description, "Age ", *in.age_years, " on ", absl::FormatCivilTime(in.as_of), " (born ",
                    in.patient.birth_date(), ")");
  }
  return fit;
}

}  // namespace

void CheckContraindications(CheckInput& in, AlertBuilder& out) {
  const auto& screened = in.screened;
  // Conditions in a code system Vigil cannot match.
  bool any_condition_rules = false;
  for (const Med* m : screened) {
    for (const auto& ci : in.kb.drug(*m->drug).proto.contraindications()) {
      any_condition_rules = any_condition_rules || !ci.condition_set().empty();
    }
  }
  if (any_condition_rules) {
    absl::flat_hash_set<std::string> seen;
    for (const auto& condition : in.patient.conditions()) {
      const auto& coding = condition.code();
      if (IsConditionSystem(coding.system()) || !seen.insert(coding.system() + "|" + coding.code()).second) {
        continue;
      }
      auto& alert = out.NewAlert(v1::ALERT_KIND_INCOMPLETE_DATA, v1::SEVERITY_MODERATE,
                             {"condition-system|", coding.system(), "|", coding.code()});
      for (const Med* m : screened) {
        alert.add_drug_ids(in.kb.drug(*m->drug).proto.id());
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
      out.MarkIncomplete();
    }
  }
  for (const Med* m : screened) {
    const auto& drug = in.kb.drug(*m->drug).proto;
    for (const auto& ci : drug.contraindications()) {
      if (ci.condition_set().empty()) {
        continue;
      }
      const auto* set = in.kb.FindConditionSet(ci.condition_set());
      if (set == nullptr) {
        continue;  // The loader guarantees this does not happen.
      }
      auto& matched = in.scratch.matched;
      auto& unreadable = in.scratch.unreadable;
      auto& stale = in.scratch.stale;
      const AgeFit fit = MatchConditionSet(in, *set, &matched, &unreadable, &stale);
      if (fit == AgeFit::kUnknown && (!matched.empty() || (set->codes().empty() && set->labs().empty()))) {
        // The rule applies at some ages only and the patient's is unknown:
        // never a silent pass.
        auto& alert = out.NewAlert(v1::ALERT_KIND_INCOMPLETE_DATA, std::min(ci.severity(), v1::SEVERITY_MAJOR),
                               {"age-unknown|", ci.id()});
        alert.add_drug_ids(drug.id());
        alert.set_rule_id(ci.id());
        alert.set_rule_origin(v1::RULE_ORIGIN_CURATED);
        alert.set_summary(Clamp(absl::StrCat("Could not check ", drug.name(), " against ", set->name(),
                                             ": no birth date."), kMaxSummaryBytes));
        alert.set_detail(absl::StrCat("This rule depends on the patient's age and the record has no birth date: ",
                                      ci.summary()));
        alert.set_recommendation(std::string("Check the patient's age against this rule, or send the birth date."));
        alert.mutable_evidence()->MergeFrom(matched);
        auto* e = alert.add_evidence();
        e->set_type(v1::EVIDENCE_TYPE_PATIENT);
        e->set_description(std::string("No birth date on record"));
        out.AddMedEvidence(alert, *m);
        out.AddSources(alert, ci.sources());
        out.MarkIncomplete();
      } else if (!matched.empty()) {
        auto& alert = out.NewAlert(v1::ALERT_KIND_CONTRAINDICATION, ci.severity(), {ci.id()});
        alert.add_drug_ids(drug.id());
        alert.set_rule_id(ci.id());
        alert.set_rule_origin(v1::RULE_ORIGIN_CURATED);
        alert.set_summary(Clamp(ci.summary(), kMaxSummaryBytes));
        alert.set_recommendation(ci.recommendation());
        if (!out.full()) {
          continue;
        }
        alert.mutable_evidence()->Reserve(static_cast<int>(matched.size()) + 1);
        alert.mutable_sources()->Reserve(ci.sources_size());
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
        alert.mutable_evidence()->MergeFrom(matched);
        out.AddMedEvidence(alert, *m);
        out.AddSources(alert, ci.sources());
      } else if (!unreadable.empty()) {
        const v1::Severity severity = std::min(ci.severity(), v1::SEVERITY_MAJOR);
        auto& alert = out.NewAlert(v1::ALERT_KIND_INCOMPLETE_DATA, severity, {"lab-unit|", ci.id()});
        alert.add_drug_ids(drug.id());
        alert.set_rule_id(ci.id());
        alert.set_rule_origin(v1::RULE_ORIGIN_CURATED);
        alert.set_summary(Clamp(absl::StrCat("Could not check ", drug.name(), " against ", set->name(),
                                             ": a lab result could not be read."), kMaxSummaryBytes));
        alert.set_detail(absl::StrCat("A lab result this rule depends on could not be interpreted (its unit, or what an "
                                      "estimate needs, is missing), so the rule '", ci.summary(), "' was not evaluated."));
        alert.set_recommendation(std::string(
            "Check the lab result against the rule manually, or resend it in a UCUM unit with the patient's age and sex."));
        alert.mutable_evidence()->MergeFrom(unreadable);
        out.AddMedEvidence(alert, *m);
        out.AddSources(alert, ci.sources());
        out.MarkIncomplete();
      } else if (!stale.empty()) {
        const v1::Severity severity = std::min(ci.severity(), v1::SEVERITY_MAJOR);
        auto& alert = out.NewAlert(v1::ALERT_KIND_INCOMPLETE_DATA, severity, {"lab-stale|", ci.id()});
        alert.add_drug_ids(drug.id());
        alert.set_rule_id(ci.id());
        alert.set_rule_origin(v1::RULE_ORIGIN_CURATED);
        alert.set_summary(Clamp(absl::StrCat("Could not check ", drug.name(), " against ", set->name(),
                                             ": the latest result is too old."), kMaxSummaryBytes));
        alert.set_detail(absl::StrCat("The latest lab result this rule depends on is older than the rule allows, so "
                                      "it did not decide: ", ci.summary()));
        alert.set_recommendation(std::string("Check a current result before ordering."));
        alert.mutable_evidence()->MergeFrom(stale);
        out.AddMedEvidence(alert, *m);
        out.AddSources(alert, ci.sources());
        out.MarkIncomplete();
      }
    }
  }
}

}  // namespace vigil::engine_internal
