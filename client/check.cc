// `vigil check` (screen proposed drugs for a patient) and `vigil demo` (the
// silperisone monograph's situations, checked).
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "client/commands.h"
#include "client/common.h"
#include "client/demo.h"
#include "google/protobuf/util/json_util.h"
#include "vigil/v1/decision_support.grpc.pb.h"

namespace vigil_client {
namespace {

using vigil::v1::Alert;
using vigil::v1::CheckMedicationsRequest;
using vigil::v1::CheckMedicationsResponse;

// The outcome of one check call.
struct CheckOutcome {
  grpc::Status status;
  std::vector<Alert> alerts;
  std::optional<vigil::v1::CheckSummary> summary;
};

// Gives each source an alert cites its title and address from `known` (the
// sources an answer sent once, with CheckMedicationsRequest.
// sources_by_reference), so that an alert prints and is kept whole.
void ResolveSources(const absl::flat_hash_map<std::string, vigil::v1::SourceRef>& known, Alert* alert) {
  for (auto& ref : *alert->mutable_sources()) {
    if (auto it = known.find(ref.id()); it != known.end() && ref.title().empty()) {
      ref = it->second;
    }
  }
}

// The unary form: one message, printed alert by alert like the stream.
CheckOutcome RunCheckUnary(vigil::v1::DecisionSupport::Stub& stub, const GlobalOptions& options,
                           const CheckMedicationsRequest& request, bool print) {
  CheckOutcome outcome;
  grpc::ClientContext context;
  PrepareCall(&context, options);
  // CheckMedicationsUnaryRequest has CheckMedicationsRequest's fields.
  vigil::v1::CheckMedicationsUnaryRequest unary;
  unary.ParseFromString(request.SerializeAsString());
  vigil::v1::CheckMedicationsUnaryResponse result;
  outcome.status = stub.CheckMedicationsUnary(&context, unary, &result);
  if (!outcome.status.ok()) {
    return outcome;
  }
  if (print && options.json) {
    std::cout << ToJson(result) << "\n";
  }
  absl::flat_hash_map<std::string, vigil::v1::SourceRef> known;
  for (const auto& source : result.sources()) {
    known.emplace(source.id(), source);
  }
  for (auto& alert : *result.mutable_alerts()) {
    ResolveSources(known, &alert);
    if (print && !options.json) {
      PrintAlert(alert);
      std::cout << "\n";
    }
    outcome.alerts.push_back(alert);
  }
  if (result.has_summary()) {
    outcome.summary = result.summary();
  }
  return outcome;
}

CheckOutcome RunCheck(vigil::v1::DecisionSupport::Stub& stub, const GlobalOptions& options,
                      const CheckMedicationsRequest& request, bool print, bool unary = false) {
  if (unary) {
    return RunCheckUnary(stub, options, request, print);
  }
  CheckOutcome outcome;
  grpc::ClientContext context;
  PrepareCall(&context, options);
  auto reader = stub.CheckMedications(&context, request);
  CheckMedicationsResponse response;
  absl::flat_hash_map<std::string, vigil::v1::SourceRef> known;  // sources sent once
  auto take = [&](Alert* alert) {
    ResolveSources(known, alert);
    if (print && !options.json) {
      PrintAlert(*alert);
      std::cout << "\n";
    }
    outcome.alerts.push_back(std::move(*alert));
  };
  while (reader->Read(&response)) {
    if (print && options.json) {
      std::cout << ToJson(response) << "\n";
    }
    for (const auto& source : response.sources()) {
      known.emplace(source.id(), source);
    }
    if (response.has_alert()) {
      take(response.mutable_alert());
    } else if (response.has_alert_batch()) {
      for (auto& alert : *response.mutable_alert_batch()->mutable_alerts()) {
        take(&alert);
      }
      if (response.alert_batch().has_summary()) {
        outcome.summary = response.alert_batch().summary();
      }
    } else if (response.has_summary()) {
      outcome.summary = response.summary();
    }
  }
  outcome.status = reader->Finish();
  return outcome;
}

int ExitForOutcome(const CheckOutcome& outcome) {
  if (!outcome.status.ok()) {
    return ExitForStatus(outcome.status);
  }
  if (!outcome.summary.has_value()) {
    std::cerr << "error: the stream ended without a summary; treat the result as not screened\n";
    return kExitError;
  }
  bool major = false;
  for (const auto& a : outcome.alerts) {
    major = major || a.severity() >= vigil::v1::SEVERITY_MAJOR;
  }
  if (major) {
    return kExitMajor;
  }
  if (!outcome.summary->complete()) {
    return kExitIncomplete;
  }
  return outcome.alerts.empty() ? kExitClean : kExitAlerts;
}

void PrintSummary(const vigil::v1::CheckSummary& summary) {
  std::cout << summary.alert_count() << " alert" << (summary.alert_count() == 1 ? "" : "s") << "; screened: "
            << (summary.screened_drug_ids().empty() ? "none" : absl::StrJoin(summary.screened_drug_ids(), ", "));
  if (!summary.unresolved_references().empty()) {
    std::cout << "; NOT screened: " << absl::StrJoin(summary.unresolved_references(), ", ");
  }
  std::cout << "; knowledge base " << summary.knowledge_base_version().substr(0, 12)
            << (summary.complete() ? "; screening complete" : "; SCREENING INCOMPLETE") << "\n";
}

bool ParseCondition(const std::string& text, vigil::v1::Coding* coding) {
  std::string system = "http://hl7.org/fhir/sid/icd-10-cm";
  std::string code = text;
  if (const size_t bar = text.find('|'); bar != std::string::npos) {
    system = text.substr(0, bar);
    code = text.substr(bar + 1);
  } else if (absl::StartsWith(text, "snomed:")) {
    system = "http://snomed.info/sct";
    code = text.substr(7);
  } else if (absl::StartsWith(text, "icd10cm:")) {
    code = text.substr(8);
  }
  coding->set_system(system);
  coding->set_code(code);
  return !code.empty();
}

bool ParseLab(const std::string& text, vigil::v1::LabResult* lab) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    return false;
  }
  const std::string rest = text.substr(eq + 1);
  const size_t space = rest.find(' ');
  double value = 0;
  if (space == std::string::npos || !absl::SimpleAtod(rest.substr(0, space), &value)) {
    return false;
  }
  lab->mutable_code()->set_system("http://loinc.org");
  lab->mutable_code()->set_code(text.substr(0, eq));
  lab->set_value(value);
  lab->set_unit(std::string(absl::StripAsciiWhitespace(rest.substr(space + 1))));
  return true;
}

// The arguments of `vigil check`.
struct CheckArgs {
  std::string patient_file;
  std::string patient_id;
  std::string stored;
  std::vector<std::string> conditions;
  std::vector<std::string> allergies;
  std::vector<std::string> current;
  // --lab and --egfr in the order given: (is --egfr, value).
  std::vector<std::pair<bool, std::string>> labs;
  bool unary = false;
  std::string view;
  bool sources_by_reference = false;
  int max_alerts_per_message = 0;
  std::vector<std::string> drugs;
};

// Fills the patient of `request` from the options; false (with a message)
// on a usage error.
bool BuildPatient(const CheckArgs& args, vigil::v1::Patient* patient) {
  if (!args.patient_file.empty()) {
    std::string json;
    if (!ReadFile(args.patient_file, &json)) {
      std::cerr << "error: cannot read patient file " << args.patient_file << "\n";
      return false;
    }
    const auto st = google::protobuf::util::JsonStringToMessage(json, patient);
    if (!st.ok()) {
      std::cerr << "error: " << args.patient_file << " is not a vigil.v1.Patient in JSON: " << st.message() << "\n";
      return false;
    }
  }
  if (!args.patient_id.empty()) {
    patient->set_id(args.patient_id);
  }
  for (const auto& condition : args.conditions) {
    if (!ParseCondition(condition, patient->add_conditions()->mutable_code())) {
      std::cerr << "error: --condition needs a code\n";
      return false;
    }
  }
  for (const auto& allergy : args.allergies) {
    patient->add_allergies()->set_substance(allergy);
  }
  for (const auto& drug : args.current) {
    patient->add_medications()->set_drug(drug);
  }
  for (const auto& [egfr, text] : args.labs) {
    if (!egfr && !ParseLab(text, patient->add_labs())) {
      std::cerr << "error: --lab must look like LOINC=VALUE UNIT, e.g. \"62238-1=24 mL/min/{1.73_m2}\"\n";
      return false;
    }
    if (egfr && !ParseLab(absl::StrCat("62238-1=", text, " mL/min/{1.73_m2}"), patient->add_labs())) {
      std::cerr << "error: --egfr needs a number\n";
      return false;
    }
  }
  return true;
}

int CommandCheck(const GlobalOptions& options, const CheckArgs& args, vigil::v1::DecisionSupport::Stub& stub) {
  CheckMedicationsRequest request;
  auto* patient = request.mutable_patient();
  if (!BuildPatient(args, patient)) {
    return kExitUsage;
  }
  for (const auto& drug : args.drugs) {
    request.add_proposed_medications()->set_drug(drug);
  }
  if (args.view == "basic") {
    request.set_view(vigil::v1::ALERT_VIEW_BASIC);
  } else if (args.view == "full") {
    request.set_view(vigil::v1::ALERT_VIEW_FULL);
  }
  request.set_sources_by_reference(args.sources_by_reference);
  request.set_max_alerts_per_message(args.max_alerts_per_message);
  if (!args.stored.empty()) {
    if (patient->ByteSizeLong() > 0) {
      std::cerr << "error: --stored checks the stored context; it cannot be combined with patient options\n";
      return kExitUsage;
    }
    request.clear_patient();
    request.set_patient_id(args.stored);
  }
  const CheckOutcome outcome = RunCheck(stub, options, request, /*print=*/true, args.unary);
  if (outcome.status.ok() && outcome.summary.has_value() && !options.json) {
    PrintSummary(*outcome.summary);
  }
  return ExitForOutcome(outcome);
}

// What a demo scenario got wrong: expected alerts missing, unwanted ones
// raised.
std::vector<std::string> DemoProblems(const DemoScenario& scenario, const CheckOutcome& outcome) {
  std::vector<std::string> problems;
  auto present = [&](const std::string& want) {
    for (const auto& a : outcome.alerts) {
      if (a.rule_id() == want || absl::StrCat("kind:", vigil::v1::AlertKind_Name(a.kind())) == want) {
        return true;
      }
    }
    return false;
  };
  for (const auto& want : scenario.expect) {
    if (!present(want)) {
      problems.push_back(absl::StrCat("expected ", want, " but it was not raised"));
    }
  }
  for (const auto& unwanted : scenario.expect_absent) {
    if (unwanted == "*" ? !outcome.alerts.empty() : present(unwanted)) {
      problems.push_back(absl::StrCat("did not expect ", unwanted, " but it was raised"));
    }
  }
  return problems;
}

int CommandDemo(const GlobalOptions& options, vigil::v1::DecisionSupport::Stub& stub) {
  int failures = 0;
  const auto scenarios = DemoScenarios();
  for (size_t i = 0; i < scenarios.size(); ++i) {
    const auto& scenario = scenarios[i];
    if (!options.json) {
      std::cout << "=== " << (i + 1) << ". " << scenario.title << "\n\n";
    }
    const CheckOutcome outcome = RunCheck(stub, options, scenario.request, /*print=*/true);
    if (!outcome.status.ok()) {
      return ExitForStatus(outcome.status);
    }
    if (outcome.alerts.empty() && !options.json) {
      std::cout << "  No alerts.\n\n";
    }
    if (outcome.summary.has_value() && !options.json) {
      PrintSummary(*outcome.summary);
    }
    const std::vector<std::string> problems = DemoProblems(scenario, outcome);
    if (!options.json) {
      std::cout << (problems.empty() ? "demo check: as expected"
                                     : absl::StrCat("demo check: FAILED: ", absl::StrJoin(problems, "; ")))
                << "\n\n";
    } else if (!problems.empty()) {
      std::cerr << "demo scenario " << (i + 1) << " failed: " << absl::StrJoin(problems, "; ") << "\n";
    }
    failures += problems.empty() ? 0 : 1;
  }
  if (failures > 0) {
    std::cerr << failures << " demo scenario(s) did not give the expected alerts\n";
    return kExitError;
  }
  return kExitClean;
}

void AddCheckOptions(CLI::App* check, CheckArgs* args) {
  check->add_option("--patient", args->patient_file,
                    "patient context as JSON (vigil.v1.Patient, e.g.\n"
                    "{\"id\": \"p1\", \"conditions\": [...]}); the options below add to it")
      ->type_name("FILE");
  check->add_option("--patient_id", args->patient_id, "the patient's id (alert ids are stable per patient)")
      ->type_name("ID");
  AddDeprecatedAlias(check, "--patient-id", "--patient_id", &args->patient_id);
  check->add_option("--stored", args->stored,
                    "check against the stored context of patient ID\n"
                    "(see `vigil patient put`); not with the patient options")
      ->type_name("ID");
  AddRepeated(check, "--condition", &args->conditions,
              "a condition: ICD-10-CM code (N18.4), or snomed:CODE,\nor SYSTEM|CODE (repeatable)")
      ->type_name("CODE");
  AddRepeated(check, "--allergy", &args->allergies, "an allergy to a drug or class (repeatable)")
      ->type_name("SUBSTANCE");
  AddRepeated(check, "--current", &args->current, "a current medication (repeatable)")->type_name("DRUG");
  check
      ->add_option_function<std::string>(
          "--lab", [args](const std::string& v) { args->labs.emplace_back(false, v); },
          "a lab result, e.g. --lab=\"62238-1=24 mL/min/{1.73_m2}\" (repeatable)")
      ->type_name("LOINC=VALUE UNIT")
      ->trigger_on_parse();
  check
      ->add_option_function<std::string>(
          "--egfr", [args](const std::string& v) { args->labs.emplace_back(true, v); },
          "shorthand for an eGFR (LOINC 62238-1) in mL/min/{1.73_m2}")
      ->type_name("VALUE")
      ->trigger_on_parse();
  check->add_flag("--unary", args->unary, "use CheckMedicationsUnary (the whole answer in one message)");
  check->add_option("--view", args->view, "how much of each alert: full (the default) or basic\n(no detail, evidence or sources)")
      ->type_name("VIEW")
      ->check(CLI::IsMember({"basic", "full"}));
  check->add_flag("--sources_by_reference", args->sources_by_reference,
                  "each cited source travels once per answer (printed in full as before)");
  check->add_option("--max_alerts_per_message", args->max_alerts_per_message,
                    "stream alerts in batches of at most N (0 or 1: one per message)")
      ->type_name("N")
      ->check(CLI::Range(0, 1000));
  check->add_option("DRUG", args->drugs,
                    "the proposed drugs (id, name, brand or SYSTEM|CODE);\n"
                    "with none, the current medications are reviewed as a whole")
      ->option_text("...");
}

}  // namespace

void AddCheckCommands(CLI::App& app, Commands* commands) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* check = AddCommand(app, "check", "screen the proposed DRUGs for a patient");
  check->footer(absl::StrCat(
      "Exit codes: 0 no alerts; 1 alerts below major; 2 a major or contraindicated alert;\n"
      "3 screening incomplete (nothing major); 64 usage; 65 rejected request; 66 not found;\n"
      "69 server unavailable; 70 other error.\n\n",
      kGlobalOptionsNote));
  AddCheckOptions(check, args.get());
  commands->push_back({check, [args](const GlobalOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
                         auto stub = vigil::v1::DecisionSupport::NewStub(channel);
                         return CommandCheck(options, *args, *stub);
                       }});

  CLI::App* demo = AddCommand(app, "demo", "run the silperisone monograph's situations and check the alerts");
  commands->push_back({demo, [](const GlobalOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
                         auto stub = vigil::v1::DecisionSupport::NewStub(channel);
                         return CommandDemo(options, *stub);
                       }});
}

}  // namespace vigil_client
