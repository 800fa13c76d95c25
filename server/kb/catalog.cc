#include "server/kb/catalog.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/api/defaults.h"
#include "server/common/page_token.h"
#include "server/common/text.h"

namespace vigil {
namespace {


void AddSourceRefs(const KnowledgeBase& kb, const google::protobuf::RepeatedPtrField<std::string>& ids,
                   google::protobuf::RepeatedPtrField<v1::SourceRef>* out) {
  for (const auto& id : ids) {
    auto* ref = out->Add();
    ref->set_id(id);
    if (const auto* s = kb.FindSource(id); s != nullptr) {
      ref->set_title(s->title());
      ref->set_url(s->url());
    }
  }
}

std::string ParticipantName(const KnowledgeBase& kb, const kb::v1::Participant& p) {
  if (p.has_drug()) {
    if (auto d = kb.FindDrug(p.drug()); d.has_value()) {
      return kb.drug(*d).proto.name();
    }
    return p.drug();
  }
  if (auto c = kb.FindClass(p.drug_class()); c.has_value()) {
    return kb.drug_class(*c).proto.name();
  }
  return p.drug_class();
}

}  // namespace

v1::Drug DescribeDrug(const KnowledgeBase& kb, DrugIndex d, bool full) {
  const DrugEntry& entry = kb.drug(d);
  const auto& drug = entry.proto;
  v1::Drug out;
  out.set_id(drug.id());
  out.set_name(drug.name());
  *out.mutable_synonyms() = drug.synonyms();
  *out.mutable_brand_names() = drug.brand_names();
  for (const auto& code : drug.codes()) {
    auto* c = out.add_codes();
    c->set_system(code.system());
    c->set_code(code.code());
    c->set_display(code.display());
  }
  for (ClassIndex ci : entry.all_classes) {
    const auto& cls = kb.drug_class(ci).proto;
    auto* ref = out.add_classes();
    ref->set_id(cls.id());
    ref->set_name(cls.name());
    ref->set_inherited(std::find(drug.classes().begin(), drug.classes().end(), cls.id()) == drug.classes().end());
  }
  out.set_import_only(kb.IsImportOnly(d));
  switch (drug.interaction_review()) {
    case kb::v1::INTERACTION_REVIEW_REVIEWED:
      out.set_interaction_screening(v1::INTERACTION_SCREENING_REVIEWED);
      break;
    case kb::v1::INTERACTION_REVIEW_REVIEWED_NONE_KNOWN:
      out.set_interaction_screening(v1::INTERACTION_SCREENING_REVIEWED_NONE_KNOWN);
      break;
    default:
      out.set_interaction_screening(kb.InteractionsUnreviewed(d) ? v1::INTERACTION_SCREENING_NOT_REVIEWED
                                                                 : v1::INTERACTION_SCREENING_REVIEWED);
  }
  if (!full) {
    return out;
  }
  out.set_mechanism(drug.mechanism());
  for (const auto& ind : drug.indications()) {
    out.add_indications(ind.description());
  }
  for (const auto& se : drug.side_effects()) {
    auto* s = out.add_side_effects();
    s->set_name(se.name());
    s->set_frequency(static_cast<v1::SideEffectFrequency>(se.frequency()));
  }
  for (const auto& ci : drug.contraindications()) {
    auto* c = out.add_contraindications();
    c->set_id(ci.id());
    c->set_severity(ci.severity());
    c->set_summary(ci.summary());
    c->set_recommendation(ci.recommendation());
    c->set_interpretation(ci.interpretation());
    if (ci.hypersensitivity()) {
      c->set_condition("Hypersensitivity");
    } else if (const auto* set = kb.FindConditionSet(ci.condition_set()); set != nullptr) {
      c->set_condition(set->name());
    }
    AddSourceRefs(kb, ci.sources(), c->mutable_sources());
  }
  for (const RuleRef& ref : kb.RulesFor(d)) {
    const auto& rule = kb.interactions()[ref.rule].proto;
    auto* info = out.add_interactions();
    info->set_id(rule.id());
    info->set_severity(rule.severity());
    info->set_summary(rule.summary());
    info->set_management(rule.management());
    // The other side of the rule, from this drug's point of view.
    // A drug on both sides (silperisone is itself a muscle relaxant) is
    // not listed as interacting with itself.
    std::vector<std::string> others;
    auto add_side = [&](const google::protobuf::RepeatedPtrField<kb::v1::Participant>& side) {
      for (const auto& p : side) {
        if (p.has_drug() && p.drug() == drug.id()) {
          continue;
        }
        others.push_back(ParticipantName(kb, p));
      }
    };
    if (ref.side_a) {
      add_side(rule.b());
    }
    if (ref.side_b) {
      add_side(rule.a());
    }
    std::sort(others.begin(), others.end());
    others.erase(std::unique(others.begin(), others.end()), others.end());
    for (auto& o : others) {
      info->add_interacts_with(std::move(o));
    }
    AddSourceRefs(kb, rule.sources(), info->mutable_sources());
  }
  AddSourceRefs(kb, drug.sources(), out.mutable_sources());
  out.set_interpretation(drug.interpretation());
  out.set_imported_interaction_count(static_cast<int32_t>(kb.ImportedCountFor(d)));
  out.set_import_only(kb.IsImportOnly(d));
  return out;
}

absl::StatusOr<v1::Drug> GetDrug(const KnowledgeBase& kb, const v1::GetDrugRequest& request) {
  if (absl::StripAsciiWhitespace(request.name()).empty()) {
    return absl::InvalidArgumentError("name: is required and is empty");
  }
  if (request.name().size() > 1024 || !IsValidUtf8(request.name())) {
    return absl::InvalidArgumentError("name: must be valid UTF-8 of at most 1024 bytes");
  }
  const auto d = kb.FindDrug(request.name());
  if (!d.has_value()) {
    return absl::NotFoundError(absl::StrCat("name: no drug '", request.name().substr(0, 128),
                                            "' in the knowledge base (try SearchDrugs)"));
  }
  if (!v1::DrugView_IsValid(request.view())) {
    return absl::InvalidArgumentError(absl::StrCat("view: unknown view ", request.view()));
  }
  return DescribeDrug(kb, *d, /*full=*/request.view() != v1::DRUG_VIEW_BASIC);
}

absl::StatusOr<v1::SearchDrugsResponse> SearchDrugs(const KnowledgeBase& kb,
                                                    const v1::SearchDrugsRequest& request) {
  const std::string query = NormalizeName(request.query());
  if (query.empty() && request.class_id().empty()) {
    return absl::InvalidArgumentError("query: is required unless class_id is set");
  }
  if (request.query().size() > 1024 || !IsValidUtf8(request.query())) {
    return absl::InvalidArgumentError("query: must be valid UTF-8 of at most 1024 bytes");
  }
  if (request.page_size() < 0 || request.page_size() > api::kMaxDrugsPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be from 0 to ", api::kMaxDrugsPageSize));
  }
  std::optional<ClassIndex> cls;
  if (!request.class_id().empty()) {
    cls = kb.FindClass(request.class_id());
    if (!cls.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("class_id: unknown class '", request.class_id().substr(0, 128), "'"));
    }
  }
  if (!v1::DrugView_IsValid(request.view())) {
    return absl::InvalidArgumentError(absl::StrCat("view: unknown view ", request.view()));
  }
  const bool full = request.view() == v1::DRUG_VIEW_FULL;
  const std::string search = absl::StrCat(query, "\x1f", request.class_id());
  std::string after;
  if (!request.page_token().empty()) {
    auto key = DecodePageToken(request.page_token(), search, 1, "page_token");
    if (!key.ok()) {
      return key.status();
    }
    after = (*key)[0];
  }
  const int page_size = request.page_size() == 0 ? api::kDefaultDrugsPageSize : request.page_size();
  std::vector<DrugIndex> hits;
  for (DrugIndex d = 0; d < kb.drug_count(); ++d) {
    if (cls.has_value() && !kb.IsMember(d, *cls)) {
      continue;
    }
    const auto& drug = kb.drug(d).proto;
    if (!after.empty() && drug.id() <= after) {
      continue;
    }
    bool match = query.empty();
    auto consider = [&](const std::string& name) { match = match || absl::StrContains(NormalizeName(name), query); };
    consider(drug.id());
    consider(drug.name());
    for (const auto& s : drug.synonyms()) {
      consider(s);
    }
    for (const auto& b : drug.brand_names()) {
      consider(b);
    }
    if (match) {
      hits.push_back(d);
    }
  }
  std::sort(hits.begin(), hits.end(),
            [&](DrugIndex a, DrugIndex b) { return kb.drug(a).proto.id() < kb.drug(b).proto.id(); });
  v1::SearchDrugsResponse response;
  const size_t size = static_cast<size_t>(page_size);
  for (size_t i = 0; i < hits.size() && i < size; ++i) {
    *response.add_drugs() = DescribeDrug(kb, hits[i], full);
  }
  if (hits.size() > size) {
    response.set_next_page_token(EncodePageToken(search, {kb.drug(hits[size - 1]).proto.id()}));
  }
  return response;
}

}  // namespace vigil

namespace vigil {

v1::KnowledgeBase DescribeKnowledgeBase(const KnowledgeBase& kb, absl::Time serving_since) {
  v1::KnowledgeBase out;
  out.set_version(kb.version());
  for (const auto& f : kb.curated_files()) {
    auto* s = out.add_sources();
    s->set_kind("curated");
    s->set_path(f.path);
    s->set_sha256(f.sha256);
  }
  for (const auto& import : kb.imports()) {
    for (size_t i = 0; i < import.files.size(); ++i) {
      auto* s = out.add_sources();
      s->set_kind(import.name);
      s->set_path(import.files[i].first);
      s->set_sha256(import.files[i].second);
      if (i < import.file_rows.size()) {
        s->set_rows(static_cast<int32_t>(import.file_rows[i]));
      }
    }
  }
  size_t contraindications = 0;
  for (const auto& d : kb.drugs()) {
    contraindications += static_cast<size_t>(d.proto.contraindications_size());
  }
  out.set_drug_count(static_cast<int32_t>(kb.drug_count()));
  out.set_class_count(static_cast<int32_t>(kb.class_count()));
  out.set_curated_interaction_rule_count(static_cast<int32_t>(kb.interactions().size()));
  out.set_imported_interaction_count(static_cast<int32_t>(kb.imported_pair_count()));
  out.set_contraindication_count(static_cast<int32_t>(contraindications));
  out.set_load_millis(kb.load_millis());
  out.set_serving_since(absl::FormatTime(absl::RFC3339_sec, serving_since, absl::UTCTimeZone()));
  return out;
}

}  // namespace vigil
