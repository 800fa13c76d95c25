// Checks of a loaded knowledge base's content that go beyond what the loader
// refuses: `vigil-kb validate` fails a base that has any, and the unit tests
// run them over the bundled base.
#ifndef VIGIL_SERVER_KB_LINT_H_
#define VIGIL_SERVER_KB_LINT_H_

#include <string>
#include <vector>

#include "server/kb/knowledge_base.h"

namespace vigil {

// Label closure: for every drug with label partners, every partner that the
// catalogue knows (a drug, or each member of a class) is covered by a curated
// interaction rule with the drug. One line per missing pair.
std::vector<std::string> LabelClosureGaps(const KnowledgeBase& kb);

// Notes that say a drug is "not in the catalogue" (or "not catalogued")
// while the catalogue has it: the label fact behind such a note was left
// out when the drug arrived. One line per note and drug.
std::vector<std::string> StaleCatalogueNotes(const KnowledgeBase& kb);

// Both of the above.
std::vector<std::string> LintKnowledgeBase(const KnowledgeBase& kb);

}  // namespace vigil

#endif  // VIGIL_SERVER_KB_LINT_H_
