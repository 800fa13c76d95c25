// Cumulative risk: drugs that add up to an effect (QT, serotonergic,
// anticholinergic score, bleeding, hyperkalaemia) across the whole list.
#include "server/engine/check.h"

#include "absl/strings/str_cat.h"

namespace vigil::engine_internal {

void CheckBurden(CheckInput& in, AlertBuilder& out) {
  auto& list = in.scratch.group;
  for (const auto& rule : in.kb.additive_rules()) {
    list.clear();
    bool any_proposed = false;
    int total = 0;
    for (const auto& m : in.meds) {
      if (!m.drug.has_value() || m.local_route) {
        continue;
      }
      const int score = in.kb.drug(*m.drug).EffectScore(rule.effect());
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
    auto& alert = out.NewAlert(v1::ALERT_KIND_DRUG_INTERACTION, rule.severity(),
                           {"additive|", rule.id(), "|", in.SortedIdList(list)});
    std::string names;
    for (const Med* m : list) {
      const auto& entry = in.kb.drug(*m->drug);
      alert.add_drug_ids(entry.proto.id());
      absl::StrAppend(&names, names.empty() ? "" : ", ", entry.proto.name());
      if (rule.min_score() > 0) {
        absl::StrAppend(&names, " (", entry.EffectScore(rule.effect()), ")");
      }
    }
    alert.set_rule_id(rule.id());
    alert.set_rule_origin(v1::RULE_ORIGIN_CURATED);
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
      out.AddMedEvidence(alert, *m);
    }
    out.AddSources(alert, rule.sources());
  }
}

}  // namespace vigil::engine_internal
