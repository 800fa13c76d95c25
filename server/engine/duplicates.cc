// Duplicate therapy: the same drug more than once, and two drugs of a
// duplicate-sensitive class at once.
#include "server/engine/check.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace vigil::engine_internal {

void CheckDuplicates(CheckInput& in, AlertBuilder& out) {
  // The same drug more than once: runs of by_drug (sorted by drug, then
  // medication order).
  const auto& by_drug = in.scratch.by_drug;
  auto& list = in.scratch.group;
  for (size_t k = 0; k < by_drug.size();) {
    const DrugIndex d = by_drug[k].first;
    list.clear();
    for (; k < by_drug.size() && by_drug[k].first == d; ++k) {
      list.push_back(&in.meds[by_drug[k].second]);
    }
    const bool any_proposed = std::any_of(list.begin(), list.end(), [](const Med* m) { return m->proposed; });
    if (list.size() < 2 || !any_proposed) {
      continue;
    }
    const auto& drug = in.kb.drug(d).proto;
    auto& alert = out.NewAlert(v1::ALERT_KIND_DUPLICATE_THERAPY, v1::SEVERITY_MODERATE, {"same|", drug.id()});
    alert.add_drug_ids(drug.id());
    const bool already_current =
        !in.review_mode && std::any_of(list.begin(), list.end(), [](const Med* m) { return !m->proposed; });
    alert.set_summary(Clamp(already_current
                                ? absl::StrCat(drug.name(), " is already on the patient's current medication list.")
                                : absl::StrCat(drug.name(), " is listed ", list.size(), " times."),
                            kMaxSummaryBytes));
    alert.set_detail(absl::StrCat("The same drug appears ", list.size(),
                                  " times among the proposed and current medications (references: ",
                                  absl::StrJoin(list, ", ", [&in](std::string* text, const Med* m) {
                                    absl::StrAppend(text, "'", Clamp(std::string(in.Reference(*m)), 64), "'");
                                  }),
                                  ")."));
    alert.set_recommendation(std::string("Confirm that a second order of the same drug is intended; otherwise cancel one."));
    for (const Med* m : list) {
      out.AddMedEvidence(alert, *m);
    }
    out.AddSources(alert, drug.sources());
  }
  // Two different drugs of a duplicate-sensitive class: (class, canonical
  // medication) pairs, sorted, so each class's drugs come in medication
  // order.
  auto& by_class = in.scratch.by_class;
  by_class.clear();
  for (uint32_t i = 0; i < in.meds.size(); ++i) {
    // A drug on the skin, in the eye or the ear is not systemic therapy of
    // its class (topical diclofenac is not a second oral NSAID).
    if (!in.meds[i].canonical || in.meds[i].local_route) {
      continue;
    }
    for (ClassIndex c : in.kb.drug(*in.meds[i].drug).all_classes) {
      if (in.kb.drug_class(c).proto.duplicate_sensitive()) {
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
      const Med& canonical = in.meds[by_class[k].second];
      list.push_back(&canonical);
      // Any medication of the drug, not only the canonical one.
      for (auto it = std::lower_bound(by_drug.begin(), by_drug.end(), std::make_pair(*canonical.drug, 0u));
           it != by_drug.end() && it->first == *canonical.drug; ++it) {
        any_proposed = any_proposed || in.meds[it->second].proposed;
      }
    }
    // Two ingredients of one product are one therapy.
    const bool several_orders = std::any_of(list.begin(), list.end(), [&list](const Med* m) {
      return m->order_index != list.front()->order_index;
    });
    if (list.size() < 2 || !any_proposed || !several_orders) {
      continue;
    }
    const auto& cls = in.kb.drug_class(c).proto;
    auto& alert = out.NewAlert(v1::ALERT_KIND_DUPLICATE_THERAPY, v1::SEVERITY_MODERATE,
                           {"class|", cls.id(), "|", in.SortedIdList(list)});
    std::string names;
    for (const Med* m : list) {
      const auto& drug = in.kb.drug(*m->drug).proto;
      alert.add_drug_ids(drug.id());
      absl::StrAppend(&names, names.empty() ? "" : ", ", drug.name());
    }
    alert.set_rule_id(cls.id());
    alert.set_rule_origin(v1::RULE_ORIGIN_CURATED);
    alert.set_summary(Clamp(absl::StrCat("Duplicate therapy: ", list.size(), " ", cls.name(), " at once (", names, ")."),
                            kMaxSummaryBytes));
    alert.set_detail(absl::StrCat(names, " all belong to ", cls.name(),
                                  ", a class in which two drugs at once are usually duplicate therapy. ",
                                  cls.description()));
    alert.set_recommendation(std::string("Confirm that more than one drug of this class is intended (for example a cross-taper); otherwise stop one."));
    for (const Med* m : list) {
      out.AddMedEvidence(alert, *m);
    }
    out.AddSources(alert, cls.sources());
  }
}

}  // namespace vigil::engine_internal
