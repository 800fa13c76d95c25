// The shared part of every check: text helpers, the resolved medications of
// the check (CheckInput) and the AlertBuilder.
#include "server/engine/check.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/codes/clinical_codes.h"
#include "server/kb/order_text.h"

namespace vigil::engine_internal {
namespace {

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

// The patient's age in completed years on `as_of`; nullopt without a
// birth date.
std::optional<int> AgeOn(absl::string_view birth_date, absl::CivilDay as_of) {
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

}  // namespace

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

// The LOINC system URI as a string the evidence can copy (a literal would
// go through a temporary string in protobuf 3.21's setter).
const std::string& LoincSystem() {
  static const std::string* const system = new std::string(kLoincSystem);
  return *system;
}

std::string FormatNumber(double v) { return absl::StrFormat("%g", v); }

std::string IdHash::Id() const {
  std::string id;
  id.reserve(35);
  id.append("al-");
  AppendHex64(h1_.value(), &id);
  AppendHex64(h2_.value(), &id);
  return id;
}

// The hash state after the prefix of every id of `patient_id`:
// "<size of the patient id>:<patient id>|".
IdHash PatientIdHash(absl::string_view patient_id) {
  char size[24];
  const int n = std::snprintf(size, sizeof(size), "%zu", patient_id.size());
  IdHash hash;
  hash.Update(absl::string_view(size, static_cast<size_t>(n))).Update(":").Update(patient_id).Update("|");
  return hash;
}

CheckInput::CheckInput(const KnowledgeBase& kb_in, const v1::Patient& patient_in,
                       const google::protobuf::RepeatedPtrField<v1::MedicationOrder>& proposed,
                       const ScreenOptions& options)
    : kb(kb_in),
      patient(patient_in),
      as_of(options.as_of),
      age_years(AgeOn(patient_in.birth_date(), options.as_of)),
      review_mode(proposed.empty()),
      full_view(options.shape.view != v1::ALERT_VIEW_BASIC),
      scratch(ThreadScratch()),
      meds(scratch.meds),
      screened(scratch.screened) {
  meds.clear();
  screened.clear();
  auto& codes = scratch.condition_codes;
  codes.resize(static_cast<size_t>(patient.conditions_size()));
  for (int i = 0; i < patient.conditions_size(); ++i) {
    const auto& coding = patient.conditions(i).code();
    codes[static_cast<size_t>(i)] = NormalizeCode(coding.system(), coding.code());
  }
  scratch.unresolved.clear();
  scratch.ingredient_names.clear();
  scratch.references.clear();
  uint32_t order_index = 0;
  for (const auto& order : proposed) {
    AddOrder(order, true, order_index++);
  }
  for (const auto& order : patient.medications()) {
    // In review mode, the current list is screened as if proposed.
    AddOrder(order, review_mode, order_index++);
  }
  // The medications of each drug, in order; the first one is canonical.
  // meds no longer changes.
  auto& by_drug = scratch.by_drug;
  by_drug.clear();
  for (uint32_t i = 0; i < meds.size(); ++i) {
    if (meds[i].drug.has_value()) {
      by_drug.emplace_back(*meds[i].drug, i);
    }
  }
  std::sort(by_drug.begin(), by_drug.end());
  for (size_t k = 0; k < by_drug.size(); ++k) {
    meds[by_drug[k].second].canonical = k == 0 || by_drug[k - 1].first != by_drug[k].first;
  }
  // The drugs that are screened: proposed (or, in review mode, all
  // current), each resolved drug once.
  for (const auto& m : meds) {
    if (m.proposed && m.canonical) {
      screened.push_back(&m);
    }
  }
}

// The medications of one order: its drug, a product's ingredients, or
// what its text resolves to (strength, dose form and brand parsed out). An
// order an EHR codes (`coding`, `text`) resolves by its code first, then by
// the coding's display, then by its text; the evidence says which.
void CheckInput::AddOrder(const v1::MedicationOrder& order, bool proposed, uint32_t order_index) {
  const bool local = !order.route().empty() && IsLocalRoute(RouteOf(order.route()));
  Med base{&order, proposed, std::nullopt, false, order_index, local};
  absl::string_view reference = order.drug();
  if (reference.empty() && !order.coding().code().empty()) {
    scratch.references.push_back(absl::StrCat(order.coding().system(), "|", order.coding().code()));
    base.ref_index = static_cast<int>(scratch.references.size() - 1);
    reference = scratch.references.back();
  }
  if (!reference.empty() && AddResolved(base, reference, !order.drug().empty())) {
    return;
  }
  for (const auto& [text, via] : {std::pair<const std::string&, Med::Via>{order.coding().display(), Med::Via::kCodingDisplay},
                                  {order.text(), Med::Via::kText}}) {
    if (absl::StripAsciiWhitespace(text).empty()) {
      continue;
    }
    base.via = via;
    if (AddResolved(base, text, true)) {
      return;
    }
  }
  // Nothing of it resolved: the reference as sent is what is unknown.
  base.via = Med::Via::kReference;
  meds.push_back(base);
}

bool CheckInput::AddResolved(const Med& base, absl::string_view reference, bool as_text) {
  if (auto d = kb.FindDrug(reference); d.has_value()) {
    meds.push_back(base);
    meds.back().drug = d;
    return true;
  }
  if (auto p = kb.FindProduct(reference); p.has_value()) {
    const auto& product = kb.product(*p);
    const bool product_local =
        base.local_route || (base.order->route().empty() && IsLocalRoute(product.proto.route()));
    for (DrugIndex d : product.ingredients) {
      meds.push_back(base);
      meds.back().drug = d;
      meds.back().local_route = product_local;
    }
    return true;
  }
  if (!as_text || !MayBeOrderText(reference)) {
    return false;
  }
  const KnowledgeBase::ResolvedOrder resolved = kb.ResolveOrderText(reference);
  if (resolved.drugs.empty() && resolved.unresolved.size() <= 1) {
    return false;
  }
  const bool text_local = base.local_route || (base.order->route().empty() && IsLocalRoute(resolved.route));
  for (DrugIndex d : resolved.drugs) {
    meds.push_back(base);
    meds.back().drug = d;
    meds.back().local_route = text_local;
  }
  for (const auto& name : resolved.unresolved) {
    scratch.ingredient_names.push_back(name);
    meds.push_back(base);
    meds.back().local_route = text_local;
    meds.back().name_index = static_cast<int>(scratch.ingredient_names.size() - 1);
  }
  return true;
}

absl::string_view CheckInput::Reference(const Med& m) const {
  if (m.ref_index >= 0) {
    return scratch.references[static_cast<size_t>(m.ref_index)];
  }
  const v1::MedicationOrder& order = *m.order;
  if (!order.drug().empty()) {
    return order.drug();
  }
  return order.coding().display().empty() ? absl::string_view(order.text())
                                          : absl::string_view(order.coding().display());
}

absl::string_view CheckInput::ResolvedFrom(const Med& m) {
  switch (m.via) {
    case Med::Via::kCodingDisplay:
      return m.order->coding().display();
    case Med::Via::kText:
      return m.order->text();
    case Med::Via::kReference:
      break;
  }
  return {};
}

// The name of an unresolved medication: the ingredient that did not
// resolve, or the reference as sent.
absl::string_view CheckInput::UnresolvedName(const Med& m) const {
  return m.name_index < 0 ? Reference(m)
                          : absl::string_view(scratch.ingredient_names[static_cast<size_t>(m.name_index)]);
}

// The knowledge-base ids of the drugs of `meds`, sorted and joined with
// "+" into scratch memory (valid until the next call).
absl::string_view CheckInput::SortedIdList(const std::vector<const Med*>& list) {
  auto& order = scratch.order;
  order.clear();
  for (const Med* m : list) {
    order.push_back(*m->drug);
  }
  std::sort(order.begin(), order.end(),
            [this](uint32_t a, uint32_t b) { return kb.drug(a).proto.id() < kb.drug(b).proto.id(); });
  std::string& out = scratch.id_list;
  out.clear();
  for (uint32_t d : order) {
    absl::StrAppend(&out, out.empty() ? "" : "+", kb.drug(d).proto.id());
  }
  return out;
}

AlertBuilder::AlertBuilder(const CheckInput& in, v1::CheckMedicationsUnaryResponse* out)
    : in_(in), patient_hash_(PatientIdHash(in.patient.id())), out_(*out), alerts_(*out->mutable_alerts()) {
  alerts_.Clear();
  out_.clear_summary();
}

// A new alert for the finding whose key is the concatenation of `key`.
v1::Alert& AlertBuilder::NewAlert(v1::AlertKind kind, v1::Severity severity, std::initializer_list<absl::string_view> key) {
  // The finding key is "<KIND>|" and the pieces of `key`.
  IdHash hash = KindIdHash(kind);
  for (absl::string_view piece : key) {
    hash.Update(piece);
  }
  v1::Alert& alert = *alerts_.Add();
  alert.set_id(hash.Id());
  alert.set_kind(kind);
  alert.set_severity(severity);
  alert.set_involves_proposed(!in_.review_mode);
  return alert;
}

// The id hash state after "<patient prefix><KIND>|", cached per kind.
IdHash AlertBuilder::KindIdHash(v1::AlertKind kind) {
  const auto index = static_cast<size_t>(kind);
  if (index >= kind_hashes_.size()) {
    return IdHash(patient_hash_).Update(v1::AlertKind_Name(kind)).Update("|");
  }
  if (!kind_hashes_[index].has_value()) {
    kind_hashes_[index] = IdHash(patient_hash_).Update(v1::AlertKind_Name(kind)).Update("|");
  }
  return *kind_hashes_[index];
}

void AlertBuilder::AddSources(v1::Alert& alert, const google::protobuf::RepeatedPtrField<std::string>& ids) {
  for (const auto& id : ids) {
    AddSource(alert, id);
  }
}

// Cites source `id` on the alert, once.
void AlertBuilder::AddSource(v1::Alert& alert, const std::string& id) {
  if (!full()) {
    return;
  }
  for (const auto& s : alert.sources()) {
    if (s.id() == id) {
      return;
    }
  }
  auto* ref = alert.add_sources();
  ref->set_id(id);
  if (const auto* source = in_.kb.FindSource(id); source != nullptr) {
    ref->set_title(source->title());
    ref->set_url(source->url());
  }
}

void AlertBuilder::AddMedEvidence(v1::Alert& alert, const Med& med) {
  if (!full()) {
    return;
  }
  auto* e = alert.add_evidence();
  e->set_type(med.proposed && !in_.review_mode ? v1::EVIDENCE_TYPE_PROPOSED_MEDICATION
                                            : v1::EVIDENCE_TYPE_CURRENT_MEDICATION);
  const absl::string_view reference = in_.Reference(med);
  e->set_reference(reference.data(), reference.size());
  const size_t cut = CutPoint(reference, 256);
  const bool known = med.drug.has_value();
  e->set_description(absl::StrCat(med.proposed && !in_.review_mode ? "Proposed: " : "Current: ",
                                  reference.substr(0, cut), cut == absl::string_view::npos ? "" : "...",
                                  known ? " (" : "", known ? in_.kb.drug(*med.drug).proto.id() : "", known ? ")" : ""));
  const absl::string_view from = CheckInput::ResolvedFrom(med);
  if (!from.empty()) {
    // Identified by text, not by code: the prescriber should know.
    const size_t from_cut = CutPoint(from, 256);
    absl::StrAppend(e->mutable_description(), ", identified from its ",
                    med.via == Med::Via::kCodingDisplay ? "coded name" : "text", " '", from.substr(0, from_cut),
                    from_cut == absl::string_view::npos ? "" : "...", "'",
                    med.ref_index >= 0 ? " because the knowledge base does not hold its code" : "");
  }
}

void AlertBuilder::Finish() {
  // Most severe first, then by kind, then by id.
  auto& order = in_.scratch.order;
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
  auto& by_id = in_.scratch.by_id;
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
  auto& dropped = in_.scratch.dropped;
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
  auto& ranked = in_.scratch.ranked;
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
  summary.mutable_screened_drug_ids()->Reserve(static_cast<int>(in_.scratch.by_drug.size()));
  for (const auto& m : in_.meds) {
    if (m.canonical) {
      summary.add_screened_drug_ids(in_.kb.drug(*m.drug).proto.id());
    }
  }
  for (const Med* m : in_.scratch.unresolved) {
    summary.add_unresolved_references(std::string(in_.UnresolvedName(*m)));
  }
  summary.set_knowledge_base_version(in_.kb.version());
  summary.set_complete(!incomplete_);
}

}  // namespace vigil::engine_internal
