// Differences between two knowledge bases, for reviewing a content update
// before it goes live.
#ifndef VIGIL_SERVER_KB_DIFF_H_
#define VIGIL_SERVER_KB_DIFF_H_

#include <string>
#include <vector>

#include "server/kb/knowledge_base.h"

namespace vigil {

// One changed entity.
struct DiffEntry {
  // "drug", "class", "condition set", "source", "interaction",
  // "contraindication", "cross-sensitivity", "additive rule", "imported pair".
  std::string kind;
  std::string id;
  // For changes: the top-level fields that differ.
  std::vector<std::string> fields;
};

struct KnowledgeBaseDiff {
  std::vector<DiffEntry> added;
  std::vector<DiffEntry> removed;
  std::vector<DiffEntry> changed;
  // Imported pairs (by drug ids) added, removed or re-graded.
  size_t imported_added = 0;
  size_t imported_removed = 0;
  size_t imported_changed = 0;

  bool empty() const {
    return added.empty() && removed.empty() && changed.empty() && imported_added == 0 && imported_removed == 0 &&
           imported_changed == 0;
  }
};

// What changed from `before` to `after`, each list sorted by kind then id.
KnowledgeBaseDiff Diff(const KnowledgeBase& before, const KnowledgeBase& after);

// A readable report of a diff.
std::string FormatDiff(const KnowledgeBaseDiff& diff);

}  // namespace vigil

#endif  // VIGIL_SERVER_KB_DIFF_H_
