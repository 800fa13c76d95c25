// Loading and validating knowledge-base files.
#ifndef VIGIL_SERVER_KB_LOADER_H_
#define VIGIL_SERVER_KB_LOADER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/kb/knowledge_base.h"

namespace vigil {

// What a knowledge base is built from.
struct KnowledgeBaseSpec {
  // Curated .textproto files or folders of them.
  std::vector<std::string> curated;
  // Bulk interaction imports: DDInter CSV files
  // (DDInterID_A,Drug_A,DDInterID_B,Drug_B,Level) or folders of *.csv.
  std::vector<std::string> imports;
};

// Loads a knowledge base from curated files and bulk imports. Import rows are
// mapped onto curated drugs by name and synonym; names no curated drug has
// become import-only drugs. Curated rules win over imported ones for the
// same pair. A malformed row refuses the whole base with "file:line: reason":
// nothing is half-loaded.
absl::StatusOr<std::shared_ptr<const KnowledgeBase>> LoadKnowledgeBase(const KnowledgeBaseSpec& spec);

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
