// Loading and validating knowledge-base files.
#ifndef VIGIL_SERVER_KB_LOADER_H_
#define VIGIL_SERVER_KB_LOADER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/kb/knowledge_base.h"

namespace vigil {

// Loads a knowledge base from text-format files. Each path is a
// `.textproto` file or a folder whose `*.textproto` files are all loaded (in
// name order). The base is validated whole: syntax, unique ids, references to
// classes, drugs, condition sets and sources, codes, thresholds and summaries.
// On any problem it returns InvalidArgument listing every problem found as
// "file:line: reason", and no base: a base is never half-loaded.
absl::StatusOr<std::shared_ptr<const KnowledgeBase>> LoadKnowledgeBase(
    const std::vector<std::string>& paths);

}  // namespace vigil

#endif  // VIGIL_SERVER_KB_LOADER_H_
