// Allergies: a recorded allergy to the drug, its class or a product it is in,
// and declared cross-sensitivity, graded by what the record says of the reaction.
#include "server/engine/check.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace vigil::engine_internal {

namespace {

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

// Evidence naming the recorded allergy, its reaction and criticality.
void AddAllergyEvidence(const v1::Allergy& allergy, v1::Alert& alert) {
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
}

}  // namespace

void CheckAllergies(CheckInput& in, AlertBuilder& out) {
  const auto& screened = in.screened;
  if (screened.empty() && in.meds.empty()) {
    return;
  }
  for (const auto& allergy : in.patient.allergies()) {
    const auto target = in.kb.Resolve(allergy.substance());
    auto evidence = [&allergy](v1::Alert& alert) { AddAllergyEvidence(allergy, alert); };
    if (target.kind == KnowledgeBase::Resolved::Kind::kNone) {
      if (screened.empty()) {
        continue;
      }
      auto& alert = out.NewAlert(v1::ALERT_KIND_INCOMPLETE_DATA, v1::SEVERITY_MODERATE,
                             {"allergy-unknown|", NormalizeName(allergy.substance())});
      for (const Med* m : screened) {
        alert.add_drug_ids(in.kb.drug(*m->drug).proto.id());
      }
      alert.set_summary(Clamp(absl::StrCat("Allergy to '", Clamp(allergy.substance(), kMaxReferenceInSummary),
                                           "' is not in the knowledge base: not screened."), kMaxSummaryBytes));
      alert.set_detail(std::string("Vigil could not resolve the allergy's substance to a drug or class, so the medications were not "
                       "checked against it."));
      alert.set_recommendation(std::string("Check the medications against this allergy manually, or record it by drug or class name."));
      alert.add_unresolved_references(allergy.substance());
      evidence(alert);
      out.MarkIncomplete();
      continue;
    }
    for (const Med* m : screened) {
      const DrugIndex d = *m->drug;
      const auto& drug = in.kb.drug(d).proto;
      using Kind = KnowledgeBase::Resolved::Kind;
      // The drugs the allergy's substance stands for: itself, or a
      // product's ingredients (an allergy to "Bactrim" is to each).
      const std::vector<DrugIndex>* ingredients =
          target.kind == Kind::kProduct ? &in.kb.product(target.index).ingredients : nullptr;
      const bool direct =
          target.kind == Kind::kDrug    ? target.index == d
          : target.kind == Kind::kClass ? in.kb.IsMember(d, target.index)
                                        : std::find(ingredients->begin(), ingredients->end(), d) != ingredients->end();
      const std::string& target_name = target.kind == Kind::kDrug    ? in.kb.drug(target.index).proto.name()
                                       : target.kind == Kind::kClass ? in.kb.drug_class(target.index).proto.name()
                                                                     : in.kb.product(target.index).proto.name();
      if (direct) {
        const kb::v1::Contraindication* hyper = nullptr;
        for (const auto& ci : drug.contraindications()) {
          if (ci.hypersensitivity()) {
            hyper = &ci;
          }
        }
        auto& alert = out.NewAlert(v1::ALERT_KIND_ALLERGY, v1::SEVERITY_CONTRAINDICATED,
                               {"direct|", drug.id(), "|", NormalizeName(allergy.substance())});
        alert.add_drug_ids(drug.id());
        alert.set_rule_origin(v1::RULE_ORIGIN_CURATED);
        if (hyper != nullptr) {
          alert.set_rule_id(hyper->id());
          alert.set_summary(Clamp(hyper->summary(), kMaxSummaryBytes));
          alert.set_detail(hyper->detail());
          alert.set_recommendation(hyper->recommendation());
          out.AddSources(alert, hyper->sources());
        } else {
          alert.set_summary(Clamp(absl::StrCat(drug.name(), ": the patient is allergic to ", target_name, "."), kMaxSummaryBytes));
          alert.set_detail(absl::StrCat(
              drug.name(), " is ",
              target.kind == Kind::kDrug    ? "the substance of a recorded allergy."
              : target.kind == Kind::kClass ? absl::StrCat("a member of ", target_name, ", a class of a recorded allergy.")
                                            : absl::StrCat("an ingredient of ", target_name, ", a product of a recorded allergy.")));
          alert.set_recommendation(std::string("Do not give; choose an alternative outside the allergy's class."));
          out.AddSources(alert, drug.sources());
        }
        evidence(alert);
        out.AddMedEvidence(alert, *m);
        continue;
      }
      // Declared cross-sensitivity between the allergy and the drug.
      for (const auto& group : in.kb.cross_sensitivities()) {
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
          for (DrugIndex member : in.kb.drug_class(target.index).members) {
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
        auto& alert = out.NewAlert(v1::ALERT_KIND_ALLERGY, severity,
                               {"cross|", group.proto.id(), "|", drug.id(), "|",
                                NormalizeName(allergy.substance())});
        alert.add_drug_ids(drug.id());
        alert.set_rule_id(group.proto.id());
        alert.set_rule_origin(v1::RULE_ORIGIN_CURATED);
        alert.set_summary(Clamp(group.proto.summary(), kMaxSummaryBytes));
        alert.set_detail(absl::StrCat(group.proto.detail(), " The patient is allergic to ", target_name, ".", why));
        alert.set_recommendation(group.proto.recommendation());
        evidence(alert);
        out.AddMedEvidence(alert, *m);
        out.AddSources(alert, group.proto.sources());
        break;
      }
    }
  }
}

}  // namespace vigil::engine_internal
