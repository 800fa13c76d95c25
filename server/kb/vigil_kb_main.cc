// vigil-kb: checks and describes knowledge bases before they go live.
//
//   vigil-kb validate [PATH...]   exit 0 when the base loads, 1 with every problem otherwise
//   vigil-kb stats [PATH...]      counts of drugs, classes and rules, and the version
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "server/kb/loader.h"

namespace {

int Usage() {
  std::cerr << "usage: vigil-kb validate|stats [PATH...]\n"
               "  PATH: knowledge-base .textproto files or folders (default: the bundled base)\n";
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    return Usage();
  }
  const std::string command = argv[1];
  std::vector<std::string> paths(argv + 2, argv + argc);
  if (paths.empty()) {
    paths.push_back(VIGIL_DEFAULT_KB);
  }
  if (command != "validate" && command != "stats") {
    return Usage();
  }
  auto kb = vigil::LoadKnowledgeBase(paths);
  if (!kb.ok()) {
    std::cerr << kb.status().message() << "\n";
    return 1;
  }
  const auto& base = **kb;
  if (command == "validate") {
    std::cout << "ok: " << base.files().size() << " files, " << base.drug_count() << " drugs, version "
              << base.version() << "\n";
    return 0;
  }
  size_t contraindications = 0;
  size_t reviewed = 0;
  size_t unreviewed = 0;
  std::map<int, size_t> by_severity;
  for (vigil::DrugIndex d = 0; d < base.drug_count(); ++d) {
    contraindications += static_cast<size_t>(base.drug(d).proto.contraindications_size());
    if (base.InteractionsUnreviewed(d)) {
      ++unreviewed;
    } else {
      ++reviewed;
    }
  }
  for (const auto& rule : base.interactions()) {
    ++by_severity[rule.proto.severity()];
  }
  std::cout << "version: " << base.version() << "\n"
            << "files: " << base.files().size() << "\n"
            << "drugs: " << base.drug_count() << " (" << reviewed << " with interaction data, " << unreviewed
            << " without)\n"
            << "classes: " << base.class_count() << "\n"
            << "contraindications: " << contraindications << "\n"
            << "interaction rules: " << base.interactions().size() << "\n";
  for (const auto& [severity, count] : by_severity) {
    std::cout << "  " << vigil::v1::Severity_Name(static_cast<vigil::v1::Severity>(severity)) << ": " << count
              << "\n";
  }
  std::cout << "cross-sensitivity groups: " << base.cross_sensitivities().size() << "\n"
            << "additive-effect rules: " << base.additive_rules().size() << "\n";
  return 0;
}
