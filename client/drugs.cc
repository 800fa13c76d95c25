// `vigil drug` (a drug's monograph), `vigil search` (find drugs by name) and
// `vigil kb` (the serving knowledge base): the DrugCatalog service.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "client/commands.h"
#include "client/common.h"
#include "vigil/v1/drug_catalog.grpc.pb.h"

namespace vigil_client {
namespace {

// The monograph's lists: side effects, contraindications, interactions.
void PrintDrugLists(const vigil::v1::Drug& drug) {
  if (!drug.side_effects().empty()) {
    std::cout << "  Side effects:\n";
    for (const auto& se : drug.side_effects()) {
      const std::string freq = vigil::v1::SideEffectFrequency_Name(se.frequency());
      std::cout << "    " << se.name() << " ("
                << absl::StrReplaceAll(absl::AsciiStrToLower(absl::StripPrefix(freq, "SIDE_EFFECT_FREQUENCY_")),
                                        {{"_", " "}})
                << ")\n";
    }
  }
  if (!drug.contraindications().empty()) {
    std::cout << "  Contraindications and warnings:\n";
    for (const auto& ci : drug.contraindications()) {
      std::cout << "    " << SeverityLabel(ci.severity()) << "  " << ci.condition() << ": " << ci.summary() << "\n";
    }
  }
  if (!drug.interactions().empty()) {
    std::cout << "  Interactions:\n";
    for (const auto& ix : drug.interactions()) {
      std::cout << "    " << SeverityLabel(ix.severity()) << "  with " << absl::StrJoin(ix.interacts_with(), ", ")
                << ": " << ix.summary() << "\n";
    }
  }
}

void PrintDrug(const vigil::v1::Drug& drug) {
  std::cout << drug.name() << " (" << drug.id() << ")\n";
  if (!drug.synonyms().empty()) {
    std::cout << "  Also: " << absl::StrJoin(drug.synonyms(), ", ") << "\n";
  }
  if (!drug.brand_names().empty()) {
    std::cout << "  Brands: " << absl::StrJoin(drug.brand_names(), ", ") << "\n";
  }
  std::vector<std::string> classes;
  for (const auto& c : drug.classes()) {
    classes.push_back(c.name());
  }
  std::cout << "  Classes: " << absl::StrJoin(classes, "; ") << "\n";
  if (!drug.mechanism().empty()) {
    std::cout << "  Mechanism: " << drug.mechanism() << "\n";
  }
  if (!drug.indications().empty()) {
    std::cout << "  Indications: " << absl::StrJoin(drug.indications(), "; ") << "\n";
  }
  PrintDrugLists(drug);
  std::vector<std::string> sources;
  for (const auto& s : drug.sources()) {
    sources.push_back(s.title());
  }
  std::cout << "  Sources: " << absl::StrJoin(sources, "; ") << "\n";
}

int CommandDrug(const GlobalOptions& options, const std::string& name, vigil::v1::DrugCatalog::Stub& stub) {
  grpc::ClientContext context;
  PrepareCall(&context, options);
  vigil::v1::GetDrugRequest request;
  request.set_name(name);
  vigil::v1::Drug drug;
  const auto status = stub.GetDrug(&context, request, &drug);
  if (!status.ok()) {
    return ExitForStatus(status);
  }
  if (options.json) {
    std::cout << ToJson(drug) << "\n";
  } else {
    PrintDrug(drug);
  }
  return kExitClean;
}

// The arguments of `vigil search`.
struct SearchArgs {
  std::vector<std::string> words;
  std::string class_id;
};

int CommandSearch(const GlobalOptions& options, const SearchArgs& args, vigil::v1::DrugCatalog::Stub& stub) {
  vigil::v1::SearchDrugsRequest request;
  request.set_query(absl::StrJoin(args.words, " "));
  request.set_class_id(args.class_id);
  request.set_page_size(100);
  while (true) {
    grpc::ClientContext context;
    PrepareCall(&context, options);
    vigil::v1::SearchDrugsResponse response;
    const auto status = stub.SearchDrugs(&context, request, &response);
    if (!status.ok()) {
      return ExitForStatus(status);
    }
    for (const auto& drug : response.drugs()) {
      if (options.json) {
        std::cout << ToJson(drug) << "\n";
      } else {
        std::cout << drug.id() << "\t" << drug.name()
                  << (drug.brand_names().empty() ? ""
                                                 : absl::StrCat("\t(", absl::StrJoin(drug.brand_names(), ", "), ")"))
                  << "\n";
      }
    }
    if (response.next_page_token().empty()) {
      break;
    }
    request.set_page_token(response.next_page_token());
  }
  return kExitClean;
}

int CommandKb(const GlobalOptions& options, vigil::v1::DrugCatalog::Stub& stub) {
  grpc::ClientContext context;
  PrepareCall(&context, options);
  vigil::v1::KnowledgeBase kb;
  const auto status = stub.GetKnowledgeBase(&context, vigil::v1::GetKnowledgeBaseRequest(), &kb);
  if (!status.ok()) {
    return ExitForStatus(status);
  }
  if (options.json) {
    std::cout << ToJson(kb) << "\n";
  } else {
    PrintKnowledgeBase(kb);
  }
  return kExitClean;
}

}  // namespace

void AddDrugCommands(CLI::App& app, Commands* commands) {
  auto name = std::make_shared<std::string>();
  CLI::App* drug = AddCommand(app, "drug", "show a drug's monograph");
  drug->add_option("NAME", *name, "the drug: id, name, brand or SYSTEM|CODE")->type_name("")->required();
  commands->push_back({drug, [name](const GlobalOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
                         auto stub = vigil::v1::DrugCatalog::NewStub(channel);
                         return CommandDrug(options, *name, *stub);
                       }});

  auto search_args = std::make_shared<SearchArgs>();
  CLI::App* search = AddCommand(app, "search", "find drugs by name (every page of results)");
  search->add_option("TEXT", search_args->words, "words of a drug's name, brand or synonym")->option_text("...");
  search->add_option("--class", search_args->class_id, "only drugs of this class")->type_name("ID");
  commands->push_back(
      {search, [search_args](const GlobalOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
         auto stub = vigil::v1::DrugCatalog::NewStub(channel);
         return CommandSearch(options, *search_args, *stub);
       }});

  CLI::App* kb = AddCommand(app, "kb", "show the serving knowledge base: version, sources, size");
  commands->push_back({kb, [](const GlobalOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
                         auto stub = vigil::v1::DrugCatalog::NewStub(channel);
                         return CommandKb(options, *stub);
                       }});
}

}  // namespace vigil_client
