// vigil: the command-line client of the Vigil decision-support server.
//
// Run `vigil help` for usage. Exit codes are meant for scripts:
//   0  screened completely, no alerts        1  alerts, none major or worse
//   2  at least one major or contraindicated  3  screening incomplete, nothing major
//   64 usage error   65 request rejected (INVALID_ARGUMENT)   66 not found
//   69 server unavailable or deadline exceeded   70 other error
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/drug_catalog.grpc.pb.h"
#include "vigil/v1/admin.grpc.pb.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"
#include "client/demo.h"

namespace {

using vigil::v1::Alert;
using vigil::v1::CheckMedicationsRequest;
using vigil::v1::CheckMedicationsResponse;

constexpr int kExitClean = 0;
constexpr int kExitAlerts = 1;
constexpr int kExitMajor = 2;
constexpr int kExitIncomplete = 3;
constexpr int kExitUsage = 64;
constexpr int kExitRejected = 65;
constexpr int kExitNotFound = 66;
constexpr int kExitUnavailable = 69;
constexpr int kExitError = 70;

constexpr char kUsage[] = R"(usage: vigil [--server=HOST:PORT] [--json] [--timeout=SECONDS] COMMAND [ARGS]

Commands:
  check [OPTIONS] DRUG...   screen the proposed DRUGs for a patient
      --patient=FILE        patient context as JSON (vigil.v1.Patient, e.g. {"id": "p1", "conditions": [...]})
      --patient-id=ID       the patient's id (alert ids are stable per patient)
      --stored=ID           check against the stored context of patient ID (see `patient put`)
      --condition=CODE      a condition: ICD-10-CM code (N18.4), or snomed:CODE, or SYSTEM|CODE
      --allergy=SUBSTANCE   an allergy to a drug or class
      --current=DRUG        a current medication
      --lab=LOINC=VALUE UNIT  a lab result, e.g. --lab="62238-1=24 mL/min/{1.73_m2}"
      --egfr=VALUE          shorthand for an eGFR (LOINC 62238-1) in mL/min/{1.73_m2}
      --unary               use CheckMedicationsUnary (the whole answer in one message)
    With no DRUG, the current medications are reviewed as a whole.
  drug NAME                 show a drug's monograph (id, name, brand or SYSTEM|CODE)
  search TEXT [--class=ID]  find drugs by name
  demo                      run the silperisone monograph's situations and check the alerts
  kb                        show the serving knowledge base: version, sources, size
  patient put FILE          store a patient's context (vigil.v1.Patient JSON); prints alerts raised/resolved
  patient get ID            print a stored patient's context as JSON
  patient delete ID         delete a stored patient (their alerts are resolved)
  subscribe [OPTIONS]       follow the alert feed
      --patient=ID ...  --kind=contraindication|drug_interaction|allergy|duplicate_therapy|unscreened_drug|incomplete_data ...
      --min-severity=info|minor|moderate|major|contraindicated  --after=N (resume after event N; 0: all)
      --heartbeat=SECONDS  --count=N (exit after N events)
      --max-events-per-message=N (2 to 1000: the server may send up to N waiting events in one message;
        they are printed one by one as always)
  ack ALERT_ID --user=NAME --outcome=accepted|overridden [--reason=CODE] [--reason-system=URI] [--comment=TEXT]
  alerts PATIENT_ID [--all] list a patient's alerts with status and history (--all: resolved too)
  reload                    reload the knowledge base on the server (Admin; old one keeps serving on failure)
  audit [--after=N]         export the audit trail of patient-data access as JSON lines (Admin)
  help                      this text

Options:
  --server=HOST:PORT        server address (default 127.0.0.1:50051, or $VIGIL_SERVER)
  --ca_cert=FILE            use TLS, trusting this CA bundle (PEM)
  --cert=FILE --key=FILE    client certificate and key for mutual TLS (PEM)
  --token=TOKEN             bearer token (default $VIGIL_TOKEN); sent only over TLS or to this
                            machine, unless --insecure
  --insecure                allow sending the token without TLS to another machine (a network
                            you trust only: anyone on the path can read and replay it)
  --json                    print responses as JSON, one object a line
  --timeout=SECONDS         deadline of each call (default 10)

Exit codes: 0 no alerts; 1 alerts below major; 2 a major or contraindicated alert;
3 screening incomplete (nothing major); 64 usage; 65 rejected request; 66 not found;
69 server unavailable; 70 other error.
)";

// Whether `target` (HOST:PORT, or a gRPC target URI) is this machine: a
// token sent there in clear does not cross a network.
bool IsLocalTarget(std::string target) {
  for (const char* scheme : {"dns:///", "dns:", "ipv4:", "ipv6:"}) {
    if (absl::StartsWith(target, scheme)) {
      target = target.substr(std::string(scheme).size());
      break;
    }
  }
  if (absl::StartsWith(target, "unix:") || absl::StartsWith(target, "unix-abstract:")) {
    return true;
  }
  std::string host = target;
  if (absl::StartsWith(target, "[")) {
    host = target.substr(1, target.find(']') == std::string::npos ? std::string::npos : target.find(']') - 1);
  } else if (const size_t colon = target.rfind(':'); colon != std::string::npos) {
    host = target.substr(0, colon);
  }
  return host == "localhost" || absl::StartsWith(host, "127.") || host == "::1";
}

struct Options {
  std::string server = "127.0.0.1:50051";
  bool json = false;
  int timeout_seconds = 10;
  std::string ca_cert;
  std::string cert;
  std::string key;
  std::string token;
  bool insecure = false;
};

// The bearer token sent with every call (from --token or $VIGIL_TOKEN).
std::string& Token() {
  static std::string token;
  return token;
}

void AddAuth(grpc::ClientContext* context) {
  if (!Token().empty()) {
    context->AddMetadata("authorization", "Bearer " + Token());
  }
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) {
    return false;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return true;
}

int ExitForStatus(const grpc::Status& status) {
  std::cerr << "error: " << status.error_code() << " " << status.error_message() << "\n";
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return kExitRejected;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnavailable;
    default:
      return kExitError;
  }
}

// `every_field`: print fields that hold their default too (an audit export
// shows "outcome":"OK" rather than leaving it out).
std::string ToJson(const google::protobuf::Message& message, bool every_field = false) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = every_field;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

std::string SeverityLabel(vigil::v1::Severity s) {
  switch (s) {
    case vigil::v1::SEVERITY_CONTRAINDICATED:
      return "CONTRAINDICATED";
    case vigil::v1::SEVERITY_MAJOR:
      return "MAJOR";
    case vigil::v1::SEVERITY_MODERATE:
      return "MODERATE";
    case vigil::v1::SEVERITY_MINOR:
      return "MINOR";
    case vigil::v1::SEVERITY_INFO:
      return "INFO";
    default:
      return "UNSPECIFIED";
  }
}

std::string KindLabel(vigil::v1::AlertKind k) {
  const std::string full = vigil::v1::AlertKind_Name(k);
  const absl::string_view name = absl::StripPrefix(full, "ALERT_KIND_");
  std::string out;
  for (char c : name) {
    out.push_back(c == '_' ? ' ' : static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

void PrintAlert(const Alert& alert) {
  std::cout << SeverityLabel(alert.severity()) << "  " << KindLabel(alert.kind());
  if (!alert.drug_ids().empty()) {
    std::cout << "  [" << absl::StrJoin(alert.drug_ids(), ", ") << "]";
  }
  std::cout << "\n  " << alert.summary() << "\n";
  for (const auto& e : alert.evidence()) {
    std::cout << "  - " << e.description() << "\n";
  }
  if (!alert.detail().empty()) {
    std::cout << "  Why: " << alert.detail() << "\n";
  }
  if (!alert.recommendation().empty()) {
    std::cout << "  Do: " << alert.recommendation() << "\n";
  }
  for (const auto& s : alert.sources()) {
    std::cout << "  Source: " << s.title() << (s.url().empty() ? "" : absl::StrCat(" <", s.url(), ">")) << "\n";
  }
  std::cout << "  (alert " << alert.id() << (alert.rule_id().empty() ? "" : absl::StrCat(", rule ", alert.rule_id()))
            << ")\n";
}

// The outcome of one check call.
struct CheckOutcome {
  grpc::Status status;
  std::vector<Alert> alerts;
  std::optional<vigil::v1::CheckSummary> summary;
};

// The unary form: one message, printed alert by alert like the stream.
CheckOutcome RunCheckUnary(vigil::v1::DecisionSupport::Stub& stub, const Options& options,
                           const CheckMedicationsRequest& request, bool print) {
  CheckOutcome outcome;
  grpc::ClientContext context;
  AddAuth(&context);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(options.timeout_seconds));
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
  for (const auto& alert : result.alerts()) {
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

CheckOutcome RunCheck(vigil::v1::DecisionSupport::Stub& stub, const Options& options,
                      const CheckMedicationsRequest& request, bool print, bool unary = false) {
  if (unary) {
    return RunCheckUnary(stub, options, request, print);
  }
  CheckOutcome outcome;
  grpc::ClientContext context;
  AddAuth(&context);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(options.timeout_seconds));
  auto reader = stub.CheckMedications(&context, request);
  CheckMedicationsResponse response;
  while (reader->Read(&response)) {
    if (print && options.json) {
      std::cout << ToJson(response) << "\n";
    }
    if (response.has_alert()) {
      if (print && !options.json) {
        PrintAlert(response.alert());
        std::cout << "\n";
      }
      outcome.alerts.push_back(response.alert());
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
  std::cout << summary.alert_count() << " alert" << (summary.alert_count() == 1 ? "" : "s")
            << "; screened: " << (summary.screened_drug_ids().empty() ? "none" : absl::StrJoin(summary.screened_drug_ids(), ", "));
  if (!summary.unresolved_references().empty()) {
    std::cout << "; NOT screened: " << absl::StrJoin(summary.unresolved_references(), ", ");
  }
  std::cout << "; knowledge base " << summary.knowledge_base_version().substr(0, 12)
            << (summary.complete() ? "; screening complete" : "; SCREENING INCOMPLETE") << "\n";
}

// Parses "--name=value" at argv[i]; returns the value when the name matches.
std::optional<std::string> FlagValue(const std::string& arg, absl::string_view name) {
  const std::string prefix = absl::StrCat("--", name, "=");
  if (absl::StartsWith(arg, prefix)) {
    return arg.substr(prefix.size());
  }
  return std::nullopt;
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

int CommandCheck(const Options& options, const std::vector<std::string>& args,
                 vigil::v1::DecisionSupport::Stub& stub) {
  CheckMedicationsRequest request;
  bool unary = false;
  auto* patient = request.mutable_patient();
  for (const auto& arg : args) {
    if (auto v = FlagValue(arg, "patient")) {
      std::ifstream in(*v);
      if (!in) {
        std::cerr << "error: cannot read patient file " << *v << "\n";
        return kExitUsage;
      }
      std::stringstream buffer;
      buffer << in.rdbuf();
      const auto st = google::protobuf::util::JsonStringToMessage(buffer.str(), patient);
      if (!st.ok()) {
        std::cerr << "error: " << *v << " is not a vigil.v1.Patient in JSON: " << st.message() << "\n";
        return kExitUsage;
      }
    }
  }
  for (const auto& arg : args) {
    if (FlagValue(arg, "patient")) {
      continue;
    } else if (arg == "--unary") {
      unary = true;
    } else if (auto stored = FlagValue(arg, "stored")) {
      request.set_patient_id(*stored);
    } else if (auto pid = FlagValue(arg, "patient-id")) {
      patient->set_id(*pid);
    } else if (auto cond = FlagValue(arg, "condition")) {
      if (!ParseCondition(*cond, patient->add_conditions()->mutable_code())) {
        std::cerr << "error: --condition needs a code\n";
        return kExitUsage;
      }
    } else if (auto allergy = FlagValue(arg, "allergy")) {
      patient->add_allergies()->set_substance(*allergy);
    } else if (auto current = FlagValue(arg, "current")) {
      patient->add_medications()->set_drug(*current);
    } else if (auto lab = FlagValue(arg, "lab")) {
      if (!ParseLab(*lab, patient->add_labs())) {
        std::cerr << "error: --lab must look like LOINC=VALUE UNIT, e.g. \"62238-1=24 mL/min/{1.73_m2}\"\n";
        return kExitUsage;
      }
    } else if (auto egfr = FlagValue(arg, "egfr")) {
      if (!ParseLab(absl::StrCat("62238-1=", *egfr, " mL/min/{1.73_m2}"), patient->add_labs())) {
        std::cerr << "error: --egfr needs a number\n";
        return kExitUsage;
      }
    } else if (absl::StartsWith(arg, "--")) {
      std::cerr << "error: unknown option " << arg << " for check\n";
      return kExitUsage;
    } else {
      request.add_proposed_medications()->set_drug(arg);
    }
  }
  if (!request.patient_id().empty()) {
    if (patient->ByteSizeLong() > 0) {
      std::cerr << "error: --stored checks the stored context; it cannot be combined with patient options\n";
      return kExitUsage;
    }
    request.clear_patient();
  }
  const CheckOutcome outcome = RunCheck(stub, options, request, /*print=*/true, unary);
  if (outcome.status.ok() && outcome.summary.has_value() && !options.json) {
    PrintSummary(*outcome.summary);
  }
  return ExitForOutcome(outcome);
}

int CommandDrug(const Options& options, const std::vector<std::string>& args,
                vigil::v1::DrugCatalog::Stub& stub) {
  if (args.size() != 1) {
    std::cerr << "usage: vigil drug NAME\n";
    return kExitUsage;
  }
  grpc::ClientContext context;
  AddAuth(&context);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(options.timeout_seconds));
  vigil::v1::GetDrugRequest request;
  request.set_name(args[0]);
  vigil::v1::Drug drug;
  const auto status = stub.GetDrug(&context, request, &drug);
  if (!status.ok()) {
    return ExitForStatus(status);
  }
  if (options.json) {
    std::cout << ToJson(drug) << "\n";
    return kExitClean;
  }
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
  std::vector<std::string> sources;
  for (const auto& s : drug.sources()) {
    sources.push_back(s.title());
  }
  std::cout << "  Sources: " << absl::StrJoin(sources, "; ") << "\n";
  return kExitClean;
}

int CommandSearch(const Options& options, const std::vector<std::string>& args,
                  vigil::v1::DrugCatalog::Stub& stub) {
  vigil::v1::SearchDrugsRequest request;
  for (const auto& arg : args) {
    if (auto v = FlagValue(arg, "class")) {
      request.set_class_id(*v);
    } else {
      request.set_query(request.query().empty() ? arg : absl::StrCat(request.query(), " ", arg));
    }
  }
  request.set_page_size(100);
  while (true) {
    grpc::ClientContext context;
  AddAuth(&context);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(options.timeout_seconds));
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
                  << (drug.brand_names().empty() ? "" : absl::StrCat("\t(", absl::StrJoin(drug.brand_names(), ", "), ")"))
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

int CommandDemo(const Options& options, vigil::v1::DecisionSupport::Stub& stub);

void PrintKnowledgeBase(const vigil::v1::KnowledgeBase& kb) {
  std::cout << "version: " << kb.version() << "\n"
            << "serving since: " << kb.serving_since() << " (loaded in " << kb.load_millis() << " ms)\n"
            << "drugs: " << kb.drug_count() << ", classes: " << kb.class_count()
            << ", contraindications: " << kb.contraindication_count()
            << ", curated interaction rules: " << kb.curated_interaction_rule_count()
            << ", imported interactions: " << kb.imported_interaction_count() << "\n";
  for (const auto& source : kb.sources()) {
    std::cout << "  " << source.kind() << "  " << source.path() << "  " << source.sha256().substr(0, 12);
    if (source.rows() > 0) {
      std::cout << "  " << source.rows() << " rows";
    }
    std::cout << "\n";
  }
}

int CommandKb(const Options& options, vigil::v1::DrugCatalog::Stub& stub) {
  grpc::ClientContext context;
  AddAuth(&context);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(options.timeout_seconds));
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

std::chrono::system_clock::time_point Deadline(const Options& options) {
  return std::chrono::system_clock::now() + std::chrono::seconds(options.timeout_seconds);
}

std::string Upper(std::string s) {
  for (auto& c : s) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return s;
}

int CommandPatient(const Options& options, const std::vector<std::string>& args,
                   vigil::v1::Patients::Stub& stub) {
  if (args.size() != 2 || (args[0] != "put" && args[0] != "get" && args[0] != "delete")) {
    std::cerr << "usage: vigil patient put FILE | get ID | delete ID\n";
    return kExitUsage;
  }
  grpc::ClientContext context;
  AddAuth(&context);
  context.set_deadline(Deadline(options));
  if (args[0] == "put") {
    std::ifstream in(args[1]);
    if (!in) {
      std::cerr << "error: cannot read " << args[1] << "\n";
      return kExitUsage;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    vigil::v1::PutPatientRequest request;
    if (const auto st = google::protobuf::util::JsonStringToMessage(buffer.str(), request.mutable_patient()); !st.ok()) {
      std::cerr << "error: " << args[1] << " is not a vigil.v1.Patient in JSON: " << st.message() << "\n";
      return kExitUsage;
    }
    vigil::v1::PutPatientResponse response;
    const auto status = stub.PutPatient(&context, request, &response);
    if (!status.ok()) {
      return ExitForStatus(status);
    }
    if (options.json) {
      std::cout << ToJson(response) << "\n";
      return kExitClean;
    }
    std::cout << (response.created() ? "created" : "updated") << " patient " << request.patient().id() << ": "
              << response.raised_size() << " raised, " << response.resolved_size() << " resolved, "
              << response.active_size() << " active; last event " << response.last_event_number() << "\n";
    for (const auto& a : response.raised()) {
      std::cout << "+ ";
      PrintAlert(a);
    }
    for (const auto& a : response.resolved()) {
      std::cout << "- resolved " << a.id() << ": " << a.summary() << "\n";
    }
    return kExitClean;
  }
  if (args[0] == "get") {
    vigil::v1::GetPatientRequest request;
    request.set_patient_id(args[1]);
    vigil::v1::Patient patient;
    const auto status = stub.GetPatient(&context, request, &patient);
    if (!status.ok()) {
      return ExitForStatus(status);
    }
    std::cout << ToJson(patient) << "\n";
    return kExitClean;
  }
  vigil::v1::DeletePatientRequest request;
  request.set_patient_id(args[1]);
  vigil::v1::DeletePatientResponse response;
  const auto status = stub.DeletePatient(&context, request, &response);
  if (!status.ok()) {
    return ExitForStatus(status);
  }
  if (options.json) {
    std::cout << ToJson(response) << "\n";
  } else {
    std::cout << "deleted patient " << args[1] << ": " << response.resolved_size() << " alerts resolved; last event "
              << response.last_event_number() << "\n";
  }
  return kExitClean;
}

int CommandSubscribe(const Options& options, const std::vector<std::string>& args,
                     vigil::v1::AlertFeed::Stub& stub) {
  vigil::v1::SubscribeRequest request;
  int64_t count = -1;
  for (const auto& arg : args) {
    if (auto patient = FlagValue(arg, "patient")) {
      request.add_patient_ids(*patient);
    } else if (auto kind = FlagValue(arg, "kind")) {
      vigil::v1::AlertKind k;
      if (!vigil::v1::AlertKind_Parse("ALERT_KIND_" + Upper(*kind), &k)) {
        std::cerr << "error: unknown kind " << *kind << "\n";
        return kExitUsage;
      }
      request.add_kinds(k);
    } else if (auto sev = FlagValue(arg, "min-severity")) {
      vigil::v1::Severity s;
      if (!vigil::v1::Severity_Parse("SEVERITY_" + Upper(*sev), &s)) {
        std::cerr << "error: unknown severity " << *sev << "\n";
        return kExitUsage;
      }
      request.set_min_severity(s);
    } else if (auto after = FlagValue(arg, "after")) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(*after, &n)) {
        std::cerr << "error: --after needs an event number\n";
        return kExitUsage;
      }
      request.set_after_event_number(n);
    } else if (auto hb = FlagValue(arg, "heartbeat")) {
      int n = 0;
      if (!absl::SimpleAtoi(*hb, &n)) {
        std::cerr << "error: --heartbeat needs seconds\n";
        return kExitUsage;
      }
      request.set_heartbeat_interval_seconds(n);
    } else if (auto batch = FlagValue(arg, "max-events-per-message")) {
      int n = 0;
      if (!absl::SimpleAtoi(*batch, &n)) {
        std::cerr << "error: --max-events-per-message needs a number of events\n";
        return kExitUsage;
      }
      // The server checks the range (0 to 1000) and names the field.
      request.set_max_events_per_message(n);
    } else if (auto c = FlagValue(arg, "count")) {
      if (!absl::SimpleAtoi(*c, &count) || count < 1) {
        std::cerr << "error: --count needs a positive number\n";
        return kExitUsage;
      }
    } else {
      std::cerr << "error: unknown option " << arg << " for subscribe\n";
      return kExitUsage;
    }
  }
  grpc::ClientContext context;
  AddAuth(&context);
  auto reader = stub.Subscribe(&context, request);
  vigil::v1::SubscribeResponse response;
  int64_t events = 0;
  // Prints one event or heartbeat; true once --count events were printed.
  auto print = [&](const vigil::v1::SubscribeResponse& r) {
    if (options.json) {
      std::cout << ToJson(r) << std::endl;
    } else if (r.has_heartbeat()) {
      std::cout << "# heartbeat: latest event " << r.event_number() << std::endl;
    } else {
      const auto& e = r.alert_event();
      std::string type = vigil::v1::AlertEventType_Name(e.type());
      std::cout << r.event_number() << "  " << absl::StripPrefix(type, "ALERT_EVENT_TYPE_") << "  patient "
                << e.patient_id() << "  " << SeverityLabel(e.alert().severity()) << "  " << e.alert().summary()
                << "  (" << e.alert().id() << ")";
      if (e.has_acknowledgement()) {
        std::cout << "  by " << e.acknowledgement().user();
      }
      std::cout << std::endl;
    }
    return r.has_alert_event() && count > 0 && ++events >= count;
  };
  while (reader->Read(&response)) {
    bool done = false;
    if (response.has_batch()) {
      // A batch prints as its events would have one by one.
      for (const auto& event : response.batch().events()) {
        if (print(event)) {
          done = true;
          break;
        }
      }
    } else {
      done = print(response);
    }
    if (done) {
      context.TryCancel();
      reader->Finish();
      return kExitClean;
    }
  }
  const auto status = reader->Finish();
  return status.ok() ? kExitClean : ExitForStatus(status);
}

int CommandAck(const Options& options, const std::vector<std::string>& args, vigil::v1::AlertFeed::Stub& stub) {
  vigil::v1::AcknowledgeAlertRequest request;
  for (const auto& arg : args) {
    if (auto outcome = FlagValue(arg, "outcome")) {
      vigil::v1::AcknowledgementOutcome o;
      if (!vigil::v1::AcknowledgementOutcome_Parse("ACKNOWLEDGEMENT_OUTCOME_" + Upper(*outcome), &o)) {
        std::cerr << "error: --outcome is accepted or overridden\n";
        return kExitUsage;
      }
      request.set_outcome(o);
    } else if (auto reason = FlagValue(arg, "reason")) {
      request.mutable_reason()->set_code(*reason);
    } else if (auto system = FlagValue(arg, "reason-system")) {
      request.mutable_reason()->set_system(*system);
    } else if (auto comment = FlagValue(arg, "comment")) {
      request.set_comment(*comment);
    } else if (auto user = FlagValue(arg, "user")) {
      request.set_user(*user);
    } else if (absl::StartsWith(arg, "--")) {
      std::cerr << "error: unknown option " << arg << " for ack\n";
      return kExitUsage;
    } else {
      request.set_alert_id(arg);
    }
  }
  grpc::ClientContext context;
  AddAuth(&context);
  context.set_deadline(Deadline(options));
  vigil::v1::AcknowledgeAlertResponse response;
  const auto status = stub.AcknowledgeAlert(&context, request, &response);
  if (!status.ok()) {
    return ExitForStatus(status);
  }
  if (options.json) {
    std::cout << ToJson(response) << "\n";
  } else {
    std::cout << "acknowledged " << request.alert_id() << " (event " << response.event_number() << "): "
              << vigil::v1::AlertStatus_Name(response.alert().status()) << "\n";
  }
  return kExitClean;
}

int CommandAlerts(const Options& options, const std::vector<std::string>& args, vigil::v1::AlertFeed::Stub& stub) {
  vigil::v1::ListAlertsRequest request;
  for (const auto& arg : args) {
    if (arg == "--all") {
      request.set_include_resolved(true);
    } else {
      request.set_patient_id(arg);
    }
  }
  grpc::ClientContext context;
  AddAuth(&context);
  context.set_deadline(Deadline(options));
  vigil::v1::ListAlertsResponse response;
  const auto status = stub.ListAlerts(&context, request, &response);
  if (!status.ok()) {
    return ExitForStatus(status);
  }
  for (const auto& record : response.alerts()) {
    if (options.json) {
      std::cout << ToJson(record) << "\n";
      continue;
    }
    const std::string st = vigil::v1::AlertStatus_Name(record.status());
    std::cout << absl::StripPrefix(st, "ALERT_STATUS_") << "  ";
    PrintAlert(record.alert());
    for (const auto& h : record.history()) {
      const std::string t = vigil::v1::AlertEventType_Name(h.type());
      std::cout << "    event " << h.event_number() << " " << absl::StripPrefix(t, "ALERT_EVENT_TYPE_") << " at "
                << google::protobuf::util::TimeUtil::ToString(h.event_time());
      if (h.has_acknowledgement()) {
        std::cout << " by " << h.acknowledgement().user();
        if (!h.acknowledgement().reason().code().empty()) {
          std::cout << " (reason " << h.acknowledgement().reason().code() << ")";
        }
      }
      std::cout << "\n";
    }
  }
  return kExitClean;
}

int CommandAudit(const Options& options, const std::vector<std::string>& args, vigil::v1::Admin::Stub& stub) {
  vigil::v1::ListAuditEventsRequest request;
  for (const auto& arg : args) {
    if (auto after = FlagValue(arg, "after")) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(*after, &n) || n < 0) {
        std::cerr << "error: --after needs an audit id\n";
        return kExitUsage;
      }
      request.set_after_id(n);
    } else {
      std::cerr << "error: unknown option " << arg << " for audit\n";
      return kExitUsage;
    }
  }
  request.set_page_size(1000);
  while (true) {
    grpc::ClientContext context;
    AddAuth(&context);
    context.set_deadline(Deadline(options));
    vigil::v1::ListAuditEventsResponse response;
    const auto status = stub.ListAuditEvents(&context, request, &response);
    if (!status.ok()) {
      return ExitForStatus(status);
    }
    for (const auto& e : response.events()) {
      std::cout << ToJson(e, /*every_field=*/true) << "\n";
    }
    if (response.events().empty()) {
      return kExitClean;
    }
    request.set_after_id(response.next_after_id());
  }
}

int CommandReload(const Options& options, vigil::v1::Admin::Stub& stub) {
  grpc::ClientContext context;
  AddAuth(&context);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(std::max(options.timeout_seconds, 60)));
  vigil::v1::ReloadKnowledgeBaseResponse response;
  const auto status = stub.ReloadKnowledgeBase(&context, vigil::v1::ReloadKnowledgeBaseRequest(), &response);
  if (!status.ok()) {
    return ExitForStatus(status);
  }
  if (options.json) {
    std::cout << ToJson(response) << "\n";
  } else {
    std::cout << (response.changed() ? "reloaded: " : "reloaded (content unchanged): ")
              << response.previous_version().substr(0, 12) << " -> "
              << response.knowledge_base().version().substr(0, 12) << "\n";
    PrintKnowledgeBase(response.knowledge_base());
  }
  return kExitClean;
}

}  // namespace



namespace {

int CommandDemo(const Options& options, vigil::v1::DecisionSupport::Stub& stub) {
  int failures = 0;
  const auto scenarios = vigil_client::DemoScenarios();
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
    if (!options.json) {
      std::cout << (problems.empty() ? "demo check: as expected" : absl::StrCat("demo check: FAILED: ", absl::StrJoin(problems, "; ")))
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

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const char* env = std::getenv("VIGIL_SERVER"); env != nullptr && *env != '\0') {
    options.server = env;
  }
  int i = 1;
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!absl::StartsWith(arg, "--")) {
      break;
    }
    if (auto v = FlagValue(arg, "server")) {
      options.server = *v;
    } else if (arg == "--json") {
      options.json = true;
    } else if (auto t = FlagValue(arg, "timeout")) {
      if (!absl::SimpleAtoi(*t, &options.timeout_seconds) || options.timeout_seconds <= 0) {
        std::cerr << "error: --timeout needs a positive number of seconds\n";
        return kExitUsage;
      }
    } else if (auto ca = FlagValue(arg, "ca_cert")) {
      options.ca_cert = *ca;
    } else if (auto cert = FlagValue(arg, "cert")) {
      options.cert = *cert;
    } else if (auto key = FlagValue(arg, "key")) {
      options.key = *key;
    } else if (auto token = FlagValue(arg, "token")) {
      options.token = *token;
    } else if (arg == "--insecure") {
      options.insecure = true;
    } else if (arg == "--help") {
      std::cout << kUsage;
      return kExitClean;
    } else {
      std::cerr << "error: unknown option " << arg << "\n" << kUsage;
      return kExitUsage;
    }
  }
  if (i >= argc) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  const std::string command = argv[i];
  std::vector<std::string> args;
  for (++i; i < argc; ++i) {
    // Options after the command may include the global ones.
    const std::string arg = argv[i];
    if (arg == "--json") {
      options.json = true;
    } else if (auto v = FlagValue(arg, "server")) {
      options.server = *v;
    } else {
      args.push_back(arg);
    }
  }
  if (command == "help") {
    std::cout << kUsage;
    return kExitClean;
  }
  if (options.token.empty()) {
    if (const char* env = std::getenv("VIGIL_TOKEN"); env != nullptr) {
      options.token = env;
    }
  }
  Token() = options.token;
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.ca_cert.empty() || !options.cert.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_cert.empty() && !ReadFile(options.ca_cert, &ssl.pem_root_certs)) {
      std::cerr << "error: cannot read --ca_cert " << options.ca_cert << "\n";
      return kExitUsage;
    }
    if (options.cert.empty() != options.key.empty()) {
      std::cerr << "error: --cert and --key go together\n";
      return kExitUsage;
    }
    if (!options.cert.empty() &&
        (!ReadFile(options.cert, &ssl.pem_cert_chain) || !ReadFile(options.key, &ssl.pem_private_key))) {
      std::cerr << "error: cannot read --cert or --key\n";
      return kExitUsage;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  if (!options.token.empty() && options.ca_cert.empty() && options.cert.empty() && !options.insecure &&
      !IsLocalTarget(options.server)) {
    std::cerr << "error: refusing to send a token without TLS to " << options.server
              << ": anyone on the network could read and replay it. Use --ca_cert (TLS), or --insecure on a "
                 "network you trust.\n";
    return kExitUsage;
  }
  auto channel = grpc::CreateChannel(options.server, credentials);
  if (command == "check") {
    auto stub = vigil::v1::DecisionSupport::NewStub(channel);
    return CommandCheck(options, args, *stub);
  }
  if (command == "drug") {
    auto stub = vigil::v1::DrugCatalog::NewStub(channel);
    return CommandDrug(options, args, *stub);
  }
  if (command == "search") {
    auto stub = vigil::v1::DrugCatalog::NewStub(channel);
    return CommandSearch(options, args, *stub);
  }
  if (command == "kb") {
    auto stub = vigil::v1::DrugCatalog::NewStub(channel);
    return CommandKb(options, *stub);
  }
  if (command == "reload") {
    auto stub = vigil::v1::Admin::NewStub(channel);
    return CommandReload(options, *stub);
  }
  if (command == "audit") {
    auto stub = vigil::v1::Admin::NewStub(channel);
    return CommandAudit(options, args, *stub);
  }
  if (command == "patient") {
    auto stub = vigil::v1::Patients::NewStub(channel);
    return CommandPatient(options, args, *stub);
  }
  if (command == "subscribe") {
    auto stub = vigil::v1::AlertFeed::NewStub(channel);
    return CommandSubscribe(options, args, *stub);
  }
  if (command == "ack") {
    auto stub = vigil::v1::AlertFeed::NewStub(channel);
    return CommandAck(options, args, *stub);
  }
  if (command == "alerts") {
    auto stub = vigil::v1::AlertFeed::NewStub(channel);
    return CommandAlerts(options, args, *stub);
  }
  if (command == "demo") {
    auto stub = vigil::v1::DecisionSupport::NewStub(channel);
    return CommandDemo(options, *stub);
  }
  std::cerr << "error: unknown command " << command << "\n" << kUsage;
  return kExitUsage;
}
