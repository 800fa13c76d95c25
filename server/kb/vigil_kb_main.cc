// vigil-kb: checks, describes and compares knowledge bases before they go live.
//
//   vigil-kb validate [--import=PATH,...] [PATH...]
//       exit 0 when the base loads and passes the content checks (label closure,
//       no note calling a catalogued drug absent); 1 and every problem as
//       file:line: reason otherwise
//   vigil-kb stats [--import=PATH,...] [PATH...]
//       counts of drugs, classes and rules, imports, and the version
//   vigil-kb diff [--import=PATH,...] [--import-after=PATH,...] BEFORE AFTER
//       added, removed and changed drugs, rules and classes (BEFORE and AFTER are
//       comma-separated files or folders); exit 0 when equal, 1 when they differ
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "server/kb/diff.h"
#include "server/kb/lint.h"
#include "server/kb/loader.h"

namespace {

constexpr int kUsageExit = 64;

int Usage() {
  std::cerr << "usage: vigil-kb validate|stats [--import=PATH,...] [PATH...]\n"
               "       vigil-kb diff [--import=PATH,...] [--import-after=PATH,...] BEFORE AFTER\n"
               "  PATH: knowledge-base .textproto files or folders (default: the bundled base)\n"
               "  --import: DDInter CSV files or folders to import\n";
  return kUsageExit;
}

std::vector<std::string> SplitList(const std::string& s) { return absl::StrSplit(s, ',', absl::SkipEmpty()); }

int Stats(const vigil::KnowledgeBase& base) {
  size_t contraindications = 0;
  size_t with_data = 0;
  size_t import_only = 0;
  std::map<int, size_t> by_severity;
  for (vigil::DrugIndex d = 0; d < base.drug_count(); ++d) {
    contraindications += static_cast<size_t>(base.drug(d).proto.contraindications_size());
    with_data += base.InteractionsUnreviewed(d) ? 0u : 1u;
    import_only += base.IsImportOnly(d) ? 1u : 0u;
  }
  for (const auto& rule : base.interactions()) {
    ++by_severity[rule.proto.severity()];
  }
  std::cout << "version: " << base.version() << "\n"
            << "load time: " << base.load_millis() << " ms\n"
            << "curated files: " << base.curated_files().size() << "\n"
            << "drugs: " << base.drug_count() << " (" << (base.drug_count() - import_only) << " curated, "
            << import_only << " from imports; " << with_data << " with interaction data, "
            << (base.drug_count() - with_data) << " without)\n"
            << "classes: " << base.class_count() << "\n"
            << "contraindications: " << contraindications << "\n"
            << "curated interaction rules: " << base.interactions().size() << "\n";
  for (const auto& [severity, count] : by_severity) {
    std::cout << "  " << vigil::v1::Severity_Name(static_cast<vigil::v1::Severity>(severity)) << ": " << count << "\n";
  }
  std::cout << "cross-sensitivity groups: " << base.cross_sensitivities().size() << "\n"
            << "additive-effect rules: " << base.additive_rules().size() << "\n"
            << "products: " << base.products().size() << "\n"
            << "drugs with label partners written down: " << base.label_interactions().size() << "\n";
  for (const auto& import : base.imports()) {
    std::cout << "import " << import.name << ": " << import.files.size() << " files, " << import.rows << " rows, "
              << import.pairs << " pairs, " << import.mapped_drugs << " drugs mapped onto curated ones, "
              << import.created_drugs << " created\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    return Usage();
  }
  const std::string command = argv[1];
  std::vector<std::string> positional;
  std::vector<std::string> imports;
  std::vector<std::string> imports_after;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "--import=")) {
      imports = SplitList(arg.substr(9));
    } else if (absl::StartsWith(arg, "--import-after=")) {
      imports_after = SplitList(arg.substr(15));
    } else if (absl::StartsWith(arg, "--")) {
      return Usage();
    } else {
      positional.push_back(arg);
    }
  }
  if (command == "validate" || command == "stats") {
    vigil::KnowledgeBaseSpec spec{positional, imports};
    if (spec.curated.empty()) {
      spec.curated.push_back(VIGIL_DEFAULT_KB);
    }
    auto kb = vigil::LoadKnowledgeBase(spec);
    if (!kb.ok()) {
      std::cerr << kb.status().message() << "\n";
      return 1;
    }
    if (command == "stats") {
      return Stats(**kb);
    }
    const auto problems = vigil::LintKnowledgeBase(**kb);
    if (!problems.empty()) {
      std::cerr << "knowledge base loads but fails " << problems.size() << " content check"
                << (problems.size() == 1 ? "" : "s") << ":\n";
      for (const auto& p : problems) {
        std::cerr << "  " << p << "\n";
      }
      return 1;
    }
    std::cout << "ok: " << (*kb)->curated_files().size() << " files, " << (*kb)->drug_count() << " drugs, "
              << (*kb)->interactions().size() << " curated rules, " << (*kb)->imported_pair_count()
              << " imported pairs; version " << (*kb)->version() << "\n";
    return 0;
  }
  if (command == "diff") {
    if (positional.size() != 2) {
      return Usage();
    }
    auto before = vigil::LoadKnowledgeBase(vigil::KnowledgeBaseSpec{SplitList(positional[0]), imports});
    if (!before.ok()) {
      std::cerr << "before: " << before.status().message() << "\n";
      return 2;
    }
    auto after = vigil::LoadKnowledgeBase(
        vigil::KnowledgeBaseSpec{SplitList(positional[1]), imports_after.empty() ? imports : imports_after});
    if (!after.ok()) {
      std::cerr << "after: " << after.status().message() << "\n";
      return 2;
    }
    const auto diff = vigil::Diff(**before, **after);
    std::cout << "before: " << (*before)->version() << "\nafter:  " << (*after)->version() << "\n"
              << vigil::FormatDiff(diff);
    return diff.empty() ? 0 : 1;
  }
  return Usage();
}
