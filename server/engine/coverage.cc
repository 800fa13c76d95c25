// Coverage: the medications, drugs and facts that could not be screened, so
// that an answer never passes silently over them.
#include "server/engine/check.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace vigil::engine_internal {

void CheckCoverage(CheckInput& in, AlertBuilder& out) {
  // Each unresolved name once (there are few: a linear search).
  auto& seen = in.scratch.unresolved_names;
  size_t seen_count = 0;
  std::string& key = in.scratch.name;
  for (const auto& m : in.meds) {
    if (m.drug.has_value()) {
      continue;
    }
    NormalizeNameTo(in.UnresolvedName(m), &key);
    if (std::find(seen.begin(), seen.begin() + static_cast<std::ptrdiff_t>(seen_count), key) !=
        seen.begin() + static_cast<std::ptrdiff_t>(seen_count)) {
      continue;
    }
    if (seen_count == seen.size()) {
      seen.emplace_back();
    }
    seen[seen_count++].assign(key);
    const bool proposed = m.proposed && !in.review_mode;
    auto& alert = out.NewAlert(v1::ALERT_KIND_UNSCREENED_DRUG,
                           proposed ? v1::SEVERITY_MAJOR : v1::SEVERITY_MODERATE, {key});
    const std::string ref = Clamp(std::string(in.UnresolvedName(m)), kMaxReferenceInSummary);
    if (proposed) {
      alert.set_summary(Clamp(absl::StrCat("'", ref, "' is not in the knowledge base: it was NOT screened."), kMaxSummaryBytes));
      alert.set_detail(std::string(
          "Vigil could not resolve this medication reference to a drug of its knowledge base, so it was not "
          "checked for contraindications, interactions, allergies or duplicate therapy."));
      alert.set_recommendation(std::string(
          "Review this drug manually for contraindications, interactions, allergies and duplicate therapy before "
          "ordering; if the order names the drug wrongly, correct it and check again."));
    } else {
      alert.set_summary(Clamp(absl::StrCat("Current medication '", ref, "' is not in the knowledge base: not screened."), kMaxSummaryBytes));
      alert.set_detail(std::string(
          "Vigil could not resolve this current medication, so the other medications were not checked against it "
          "for interactions or duplicate therapy."));
      alert.set_recommendation(std::string("Review interactions with this medication manually."));
    }
    alert.add_unresolved_references(std::string(in.UnresolvedName(m)));
    out.AddMedEvidence(alert, m);
    in.scratch.unresolved.push_back(&m);
    out.MarkIncomplete();
  }
  // Drugs known only from an imported interaction table.
  for (const Med* m : in.screened) {
    if (!in.kb.IsImportOnly(*m->drug)) {
      continue;
    }
    const auto& drug = in.kb.drug(*m->drug).proto;
    auto& alert = out.NewAlert(v1::ALERT_KIND_UNSCREENED_DRUG, v1::SEVERITY_MODERATE,
                           {"import-only|", drug.id()});
    alert.add_drug_ids(drug.id());
    alert.set_summary(Clamp(absl::StrCat(drug.name(), " was screened for interactions only: no monograph on file."),
                            kMaxSummaryBytes));
    alert.set_detail(std::string(
        "This drug is known only from an imported interaction table. Its contraindications, allergy classes and "
        "duplicate therapy were not screened."));
    alert.set_recommendation(std::string("Check contraindications and allergies for this drug in another reference."));
    out.AddMedEvidence(alert, *m);
    out.MarkIncomplete();
  }
  // Drugs that are known but have no interaction data on file, proposed
  // or current: every pair with such a drug went unscreened, so a silence
  // about it would be a false "no interaction".
  for (const Med& m : in.meds) {
    if (!m.canonical || !in.kb.InteractionsUnreviewed(*m.drug)) {
      continue;
    }
    const auto& drug = in.kb.drug(*m.drug).proto;
    auto& alert = out.NewAlert(v1::ALERT_KIND_UNSCREENED_DRUG, v1::SEVERITY_MODERATE,
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
    out.AddMedEvidence(alert, m);
    out.MarkIncomplete();
  }
}

}  // namespace vigil::engine_internal
