// Drug-drug interactions: each pair of distinct drugs with at least one
// screened, by curated rules, or by an imported table where no curated rule
// covers the pair.
#include "server/engine/check.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace vigil::engine_internal {

namespace {

// Sources cited on one interaction alert at most.
constexpr int kMaxSources = 5;

void ImportedPairAlert(AlertBuilder& out, const CheckInput& in, const Med& p, const Med& x,
                       const ImportedInteraction& imported) {
  const auto& info = in.kb.imports()[imported.import_index];
  const std::string& level = info.levels[imported.level];
  const auto& pdrug = in.kb.drug(*p.drug).proto;
  const auto& xdrug = in.kb.drug(*x.drug).proto;
  const auto ids = std::minmax(pdrug.id(), xdrug.id());
  auto& alert = out.NewAlert(v1::ALERT_KIND_DRUG_INTERACTION, imported.severity, {ids.first, "+", ids.second});
  alert.mutable_drug_ids()->Reserve(2);
  alert.add_drug_ids(pdrug.id());
  alert.add_drug_ids(xdrug.id());
  alert.set_rule_id(absl::StrCat(info.name, ":", ids.first, "+", ids.second));
  alert.set_rule_origin(v1::RULE_ORIGIN_IMPORTED);
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
  alert.set_recommendation(std::string(
      "Review the combination in a full interaction monograph; monitor the patient or choose an alternative."));
  if (!out.full()) {
    return;
  }
  alert.set_detail(absl::StrCat(
      info.name, " lists an interaction between ", pdrug.name(), " and ", xdrug.name(), " at level '", level, "'",
      ungraded ? ", meaning its severity was not graded: it is shown as moderate so that it is reviewed" : "",
      ". The imported table carries no mechanism or management text; no curated rule covers this pair."));
  out.AddMedEvidence(alert, p);
  out.AddMedEvidence(alert, x);
  out.AddSource(alert, info.source_id);
}

void PairAlert(AlertBuilder& out, const CheckInput& in, const Med& p, const Med& x) {
  const DrugIndex pd = *p.drug;
  const DrugIndex xd = *x.drug;
  // Most severe first; then drug-specific over class rules; then id.
  const absl::Span<const uint32_t> matched = in.kb.RulesForPair(pd, xd);
  if (matched.empty()) {
    // Curated rules win; an imported interaction is used only when no
    // curated rule covers the pair.
    if (const ImportedInteraction* imported = in.kb.FindImported(pd, xd); imported != nullptr) {
      ImportedPairAlert(out, in, p, x, *imported);
    }
    return;
  }
  const auto& rules = in.kb.interactions();
  const auto& primary = rules[matched.front()].proto;
  const auto& pdrug = in.kb.drug(pd).proto;
  const auto& xdrug = in.kb.drug(xd).proto;
  const auto ids = std::minmax(pdrug.id(), xdrug.id());
  auto& alert = out.NewAlert(v1::ALERT_KIND_DRUG_INTERACTION, primary.severity(), {ids.first, "+", ids.second});
  // Sized once: a repeated field grown one element at a time reallocates.
  alert.mutable_drug_ids()->Reserve(2);
  alert.add_drug_ids(pdrug.id());
  alert.add_drug_ids(xdrug.id());
  alert.set_rule_id(primary.id());
  alert.set_rule_origin(rules[matched.front()].origin_name == "curated" ? v1::RULE_ORIGIN_CURATED
                                                                        : v1::RULE_ORIGIN_IMPORTED);
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
  alert.set_recommendation(primary.management());
  if (!out.full()) {
    return;
  }
  alert.mutable_evidence()->Reserve(2);
  alert.mutable_sources()->Reserve(static_cast<int>(matched.size()));
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
      absl::StrAppend(&detail, in.kb.drug(*local->drug).proto.name(),
                      " is ordered for the skin, eye or ear: its systemic exposure, and so the risk of this "
                      "interaction, is usually lower than by mouth. ");
    }
  }
  while (!detail.empty() && detail.back() == ' ') {
    detail.pop_back();
  }
  alert.set_detail(std::move(detail));
  alert.set_interpretation(primary.interpretation());
  out.AddMedEvidence(alert, p);
  out.AddMedEvidence(alert, x);
  // The sources behind this pair: the primary rule's, then the others'
  // while there is room (a handful, not every label of a group).
  for (uint32_t r : matched) {
    for (const auto& id : rules[r].proto.sources()) {
      if (alert.sources_size() >= kMaxSources) {
        break;
      }
      out.AddSource(alert, id);
    }
  }
}

}  // namespace

void CheckInteractions(CheckInput& in, AlertBuilder& out) {
  // Each unordered pair of distinct drugs, at least one screened, once:
  // canonical medications only, and a pair of two screened drugs from the
  // earlier one.
  for (size_t i = 0; i < in.meds.size(); ++i) {
    const Med& p = in.meds[i];
    if (!p.proposed || !p.canonical) {
      continue;
    }
    for (size_t j = 0; j < in.meds.size(); ++j) {
      const Med& x = in.meds[j];
      // Ingredients of one product are given together by design.
      if (j == i || !x.canonical || (x.proposed && j < i) || x.order_index == p.order_index) {
        continue;
      }
      PairAlert(out, in, p, x);
    }
  }
}

}  // namespace vigil::engine_internal
