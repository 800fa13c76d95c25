#include "server/kb/knowledge_base.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/text.h"
#include "server/codes/clinical_codes.h"
#include "server/kb/order_text.h"

namespace vigil {

namespace {

// Looks `reference` up by "system|code" in `codes`, otherwise by normalized
// name in `names`.
std::optional<uint32_t> Lookup(const absl::flat_hash_map<std::string, uint32_t>& names,
                               const absl::flat_hash_map<std::string, uint32_t>& codes,
                               absl::string_view reference) {
  const size_t bar = reference.find('|');
  const auto& map = bar == absl::string_view::npos ? names : codes;
  // Lookups run on every check: the key is built in memory the thread keeps.
  thread_local std::string key;
  if (bar == absl::string_view::npos) {
    NormalizeNameTo(reference, &key);
  } else {
    key.assign(reference.data(), bar + 1);
    key.append(NormalizeCode(reference.substr(0, bar), reference.substr(bar + 1)));
  }
  const auto it = map.find(key);
  if (it == map.end()) {
    return std::nullopt;
  }
  return it->second;
}

}  // namespace

int DrugEntry::EffectScore(absl::string_view effect) const {
  if (!std::binary_search(additive_effects.begin(), additive_effects.end(), effect)) {
    return 0;
  }
  const auto it = std::lower_bound(effect_scores.begin(), effect_scores.end(), effect,
                                   [](const std::pair<std::string, int>& e, absl::string_view x) { return e.first < x; });
  return it != effect_scores.end() && it->first == effect ? it->second : 1;
}

std::optional<DrugIndex> KnowledgeBase::FindDrug(absl::string_view reference) const {
  return Lookup(drug_names_, drug_codes_, reference);
}

std::optional<ClassIndex> KnowledgeBase::FindClass(absl::string_view reference) const {
  return Lookup(class_names_, class_codes_, reference);
}

std::optional<ProductIndex> KnowledgeBase::FindProduct(absl::string_view reference) const {
  if (products_.empty()) {
    return std::nullopt;
  }
  return Lookup(product_names_, product_codes_, reference);
}

KnowledgeBase::ResolvedOrder KnowledgeBase::ResolveOrderText(absl::string_view text) const {
  ResolvedOrder out;
  const ParsedOrderText parsed = ParseOrderText(text);
  out.route = parsed.route;
  auto add = [&out](DrugIndex d) {
    if (std::find(out.drugs.begin(), out.drugs.end(), d) == out.drugs.end()) {
      out.drugs.push_back(d);
    }
  };
  // A name, with salt words dropped where needed: a drug, or a product's
  // ingredients.
  auto resolve_name = [&](absl::string_view name) {
    for (const std::string& variant : NameVariants(name)) {
      if (const auto d = FindDrug(variant); d.has_value()) {
        add(*d);
        return true;
      }
      if (const auto p = FindProduct(variant); p.has_value()) {
        for (DrugIndex d : products_[*p].ingredients) {
          add(d);
        }
        return true;
      }
    }
    return false;
  };
  // The brand names the product exactly; the ingredient names are checked
  // against it only by being resolved too.
  if (!parsed.brand.empty()) {
    resolve_name(parsed.brand);
  }
  for (const auto& name : parsed.ingredients) {
    if (!resolve_name(name)) {
      out.unresolved.push_back(name);
    }
  }
  return out;
}

KnowledgeBase::Resolved KnowledgeBase::Resolve(absl::string_view reference) const {
  Resolved r;
  if (auto d = FindDrug(reference); d.has_value()) {
    r.kind = Resolved::Kind::kDrug;
    r.index = *d;
  } else if (auto c = FindClass(reference); c.has_value()) {
    r.kind = Resolved::Kind::kClass;
    r.index = *c;
  } else if (auto p = FindProduct(reference); p.has_value()) {
    r.kind = Resolved::Kind::kProduct;
    r.index = *p;
  }
  return r;
}

bool KnowledgeBase::IsMember(DrugIndex d, ClassIndex c) const {
  const auto& all = drugs_[d].all_classes;
  return std::binary_search(all.begin(), all.end(), c);
}

bool KnowledgeBase::SideContains(const InteractionEntry& rule, bool side_a, DrugIndex d) const {
  const auto r = static_cast<size_t>(&rule - interactions_.data());
  const auto& side = side_a ? side_a_drugs_[r] : side_b_drugs_[r];
  return std::binary_search(side.begin(), side.end(), d);
}

const kb::v1::ConditionSet* KnowledgeBase::FindConditionSet(absl::string_view id) const {
  const auto it = condition_sets_.find(id);
  return it == condition_sets_.end() ? nullptr : &it->second;
}

const kb::v1::Source* KnowledgeBase::FindSource(absl::string_view id) const {
  const auto it = sources_.find(id);
  return it == sources_.end() ? nullptr : &it->second;
}

absl::Span<const uint32_t> KnowledgeBase::RulesForPair(DrugIndex a, DrugIndex b) const {
  const auto it = pair_rules_.find(PairKey(a, b));
  if (it == pair_rules_.end()) {
    return {};
  }
  return absl::MakeConstSpan(pair_rule_list_).subspan(it->second.offset, it->second.count);
}

const ImportedInteraction* KnowledgeBase::FindImported(DrugIndex a, DrugIndex b) const {
  if (imported_pairs_.empty()) {
    return nullptr;
  }
  const auto it = imported_pairs_.find(PairKey(a, b));
  return it == imported_pairs_.end() ? nullptr : &it->second;
}

bool KnowledgeBase::InteractionsUnreviewed(DrugIndex d) const {
  const auto review = drugs_[d].proto.interaction_review();
  if (review == kb::v1::INTERACTION_REVIEW_REVIEWED ||
      review == kb::v1::INTERACTION_REVIEW_REVIEWED_NONE_KNOWN) {
    return false;
  }
  return rules_by_drug_[d].empty() && ImportedCountFor(d) == 0;
}

}  // namespace vigil
