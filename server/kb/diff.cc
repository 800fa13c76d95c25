#include "server/kb/diff.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"

namespace vigil {
namespace {

using google::protobuf::Message;

// Top-level fields whose values differ between two messages of one type.
std::vector<std::string> ChangedFields(const Message& a, const Message& b) {
  std::vector<std::string> out;
  const auto* descriptor = a.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const auto* field = descriptor->field(i);
    google::protobuf::util::MessageDifferencer differencer;
    std::vector<const google::protobuf::FieldDescriptor*> fields = {field};
    if (!differencer.CompareWithFields(a, b, fields, fields)) {
      out.push_back(field->name());
    }
  }
  return out;
}

// Compares two id -> message maps of one kind.
void CompareMaps(const std::string& kind, const std::map<std::string, const Message*>& before,
                 const std::map<std::string, const Message*>& after, KnowledgeBaseDiff* diff) {
  for (const auto& [id, message] : after) {
    const auto it = before.find(id);
    if (it == before.end()) {
      diff->added.push_back(DiffEntry{kind, id, {}});
    } else if (!google::protobuf::util::MessageDifferencer::Equals(*it->second, *message)) {
      diff->changed.push_back(DiffEntry{kind, id, ChangedFields(*it->second, *message)});
    }
  }
  for (const auto& [id, message] : before) {
    if (after.find(id) == after.end()) {
      diff->removed.push_back(DiffEntry{kind, id, {}});
    }
  }
}

struct Collected {
  std::map<std::string, std::map<std::string, const Message*>> by_kind;
};

Collected Collect(const KnowledgeBase& kb) {
  Collected c;
  for (DrugIndex d = 0; d < kb.drug_count(); ++d) {
    if (kb.IsImportOnly(d)) {
      continue;  // Compared through the imported pairs.
    }
    const auto& drug = kb.drug(d).proto;
    c.by_kind["drug"][drug.id()] = &drug;
    for (const auto& ci : drug.contraindications()) {
      c.by_kind["contraindication"][ci.id()] = &ci;
    }
  }
  for (const auto& cls : kb.classes()) {
    c.by_kind["class"][cls.proto.id()] = &cls.proto;
  }
  for (const auto& [id, set] : kb.condition_sets()) {
    c.by_kind["condition set"][id] = &set;
  }
  for (const auto& [id, source] : kb.sources()) {
    c.by_kind["source"][id] = &source;
  }
  for (const auto& rule : kb.interactions()) {
    c.by_kind["interaction"][rule.proto.id()] = &rule.proto;
  }
  for (const auto& cs : kb.cross_sensitivities()) {
    c.by_kind["cross-sensitivity"][cs.proto.id()] = &cs.proto;
  }
  for (const auto& rule : kb.additive_rules()) {
    c.by_kind["additive rule"][rule.id()] = &rule;
  }
  return c;
}

// Imported pairs keyed by drug ids, so bases with different indexes compare.
std::map<std::pair<std::string, std::string>, std::string> ImportedPairs(const KnowledgeBase& kb) {
  std::map<std::pair<std::string, std::string>, std::string> out;
  for (DrugIndex a = 0; a < kb.drug_count(); ++a) {
    if (kb.ImportedCountFor(a) == 0) {
      continue;
    }
    for (DrugIndex b = a + 1; b < kb.drug_count(); ++b) {
      if (const auto* imported = kb.FindImported(a, b); imported != nullptr) {
        const auto& info = kb.imports()[imported->import_index];
        auto ids = std::minmax(kb.drug(a).proto.id(), kb.drug(b).proto.id());
        out[{ids.first, ids.second}] = absl::StrCat(info.name, ":", info.levels[imported->level]);
      }
    }
  }
  return out;
}

}  // namespace

KnowledgeBaseDiff Diff(const KnowledgeBase& before, const KnowledgeBase& after) {
  KnowledgeBaseDiff diff;
  const Collected a = Collect(before);
  const Collected b = Collect(after);
  std::map<std::string, std::map<std::string, const Message*>> empty;
  for (const char* kind : {"source", "class", "condition set", "drug", "contraindication", "interaction",
                           "cross-sensitivity", "additive rule"}) {
    const auto ia = a.by_kind.find(kind);
    const auto ib = b.by_kind.find(kind);
    static const std::map<std::string, const Message*> kNone;
    CompareMaps(kind, ia == a.by_kind.end() ? kNone : ia->second, ib == b.by_kind.end() ? kNone : ib->second, &diff);
  }
  if (before.imported_pair_count() > 0 || after.imported_pair_count() > 0) {
    const auto pa = ImportedPairs(before);
    const auto pb = ImportedPairs(after);
    for (const auto& [key, level] : pb) {
      const auto it = pa.find(key);
      if (it == pa.end()) {
        ++diff.imported_added;
      } else if (it->second != level) {
        ++diff.imported_changed;
      }
    }
    for (const auto& [key, level] : pa) {
      if (pb.find(key) == pb.end()) {
        ++diff.imported_removed;
      }
    }
  }
  return diff;
}

std::string FormatDiff(const KnowledgeBaseDiff& diff) {
  std::string out;
  for (const auto& e : diff.added) {
    absl::StrAppend(&out, "+ ", e.kind, " ", e.id, "\n");
  }
  for (const auto& e : diff.removed) {
    absl::StrAppend(&out, "- ", e.kind, " ", e.id, "\n");
  }
  for (const auto& e : diff.changed) {
    absl::StrAppend(&out, "~ ", e.kind, " ", e.id, " (", absl::StrJoin(e.fields, ", "), ")\n");
  }
  if (diff.imported_added + diff.imported_removed + diff.imported_changed > 0) {
    absl::StrAppend(&out, "imported pairs: +", diff.imported_added, " -", diff.imported_removed, " ~",
                    diff.imported_changed, "\n");
  }
  absl::StrAppend(&out, diff.added.size(), " added, ", diff.removed.size(), " removed, ", diff.changed.size(),
                  " changed\n");
  return out;
}

}  // namespace vigil
