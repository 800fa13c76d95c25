// `vigil patient put|get|delete`: stored patient contexts (the Patients
// service).
#include <iostream>
#include <string>

#include "client/commands.h"
#include "client/common.h"
#include "google/protobuf/util/json_util.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil_client {
namespace {

int CommandPut(const GlobalOptions& options, const std::string& file, vigil::v1::Patients::Stub& stub) {
  std::string json;
  if (!ReadFile(file, &json)) {
    std::cerr << "error: cannot read " << file << "\n";
    return kExitUsage;
  }
  vigil::v1::PutPatientRequest request;
  if (const auto st = google::protobuf::util::JsonStringToMessage(json, request.mutable_patient()); !st.ok()) {
    std::cerr << "error: " << file << " is not a vigil.v1.Patient in JSON: " << st.message() << "\n";
    return kExitUsage;
  }
  grpc::ClientContext context;
  PrepareCall(&context, options);
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

int CommandGet(const GlobalOptions& options, const std::string& id, vigil::v1::Patients::Stub& stub) {
  grpc::ClientContext context;
  PrepareCall(&context, options);
  vigil::v1::GetPatientRequest request;
  request.set_patient_id(id);
  vigil::v1::Patient patient;
  const auto status = stub.GetPatient(&context, request, &patient);
  if (!status.ok()) {
    return ExitForStatus(status);
  }
  std::cout << ToJson(patient) << "\n";
  return kExitClean;
}

int CommandDelete(const GlobalOptions& options, const std::string& id, vigil::v1::Patients::Stub& stub) {
  grpc::ClientContext context;
  PrepareCall(&context, options);
  vigil::v1::DeletePatientRequest request;
  request.set_patient_id(id);
  vigil::v1::DeletePatientResponse response;
  const auto status = stub.DeletePatient(&context, request, &response);
  if (!status.ok()) {
    return ExitForStatus(status);
  }
  if (options.json) {
    std::cout << ToJson(response) << "\n";
  } else {
    std::cout << "deleted patient " << id << ": " << response.resolved_size() << " alerts resolved; last event "
              << response.last_event_number() << "\n";
  }
  return kExitClean;
}

using PatientCall = int (*)(const GlobalOptions&, const std::string&, vigil::v1::Patients::Stub&);

// Adds `vigil patient NAME ARG`, which runs `call` with ARG.
void AddPatientCommand(CLI::App* patient, Commands* commands, const std::string& name, const std::string& description,
                       const std::string& arg_name, const std::string& arg_description, PatientCall call) {
  auto arg = std::make_shared<std::string>();
  CLI::App* command = AddCommand(*patient, name, description);
  command->add_option(arg_name, *arg, arg_description)->type_name("")->required();
  commands->push_back({command, [arg, call](const GlobalOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
                         auto stub = vigil::v1::Patients::NewStub(channel);
                         return call(options, *arg, *stub);
                       }});
}

}  // namespace

void AddPatientCommands(CLI::App& app, Commands* commands) {
  CLI::App* patient = AddCommand(app, "patient", "store, show or delete a patient's context\n(put FILE | get ID | delete ID)");
  patient->require_subcommand(1);
  AddPatientCommand(patient, commands, "put",
                    "store a patient's context (vigil.v1.Patient JSON);\nprints the alerts raised and resolved", "FILE",
                    "the patient as JSON (vigil.v1.Patient)", CommandPut);
  AddPatientCommand(patient, commands, "get", "print a stored patient's context as JSON", "ID", "the patient's id",
                    CommandGet);
  AddPatientCommand(patient, commands, "delete", "delete a stored patient (their alerts are resolved)", "ID",
                    "the patient's id", CommandDelete);
}

}  // namespace vigil_client
