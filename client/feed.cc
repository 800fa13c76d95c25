// `vigil subscribe` (follow the alert feed), `vigil ack` (acknowledge an
// alert) and `vigil alerts` (a patient's alerts): the AlertFeed service.
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/strip.h"
#include "client/commands.h"
#include "client/common.h"
#include "google/protobuf/util/time_util.h"
#include "vigil/v1/alert_feed.grpc.pb.h"

namespace vigil_client {
namespace {

// The arguments of `vigil subscribe`.
struct SubscribeArgs {
  std::vector<std::string> patients;
  std::vector<std::string> kinds;
  std::string min_severity;
  int64_t after = 0;
  int heartbeat = 0;
  int max_events_per_message = 0;
  int64_t count = -1;
};

// The request `args` ask for; false (with a message) on a usage error.
bool BuildSubscribeRequest(const SubscribeArgs& args, vigil::v1::SubscribeRequest* request) {
  for (const auto& patient : args.patients) {
    request->add_patient_ids(patient);
  }
  for (const auto& kind : args.kinds) {
    vigil::v1::AlertKind k;
    if (!vigil::v1::AlertKind_Parse("ALERT_KIND_" + Upper(kind), &k)) {
      std::cerr << "error: unknown kind " << kind << "\n";
      return false;
    }
    request->add_kinds(k);
  }
  if (!args.min_severity.empty()) {
    vigil::v1::Severity s;
    if (!vigil::v1::Severity_Parse("SEVERITY_" + Upper(args.min_severity), &s)) {
      std::cerr << "error: unknown severity " << args.min_severity << "\n";
      return false;
    }
    request->set_min_severity(s);
  }
  request->set_after_event_number(args.after);
  request->set_heartbeat_interval_seconds(args.heartbeat);
  // The server checks the range (0 to 1000) and names the field.
  request->set_max_events_per_message(args.max_events_per_message);
  return true;
}

void PrintFeedMessage(const GlobalOptions& options, const vigil::v1::SubscribeResponse& r) {
  if (options.json) {
    std::cout << ToJson(r) << std::endl;
  } else if (r.has_heartbeat()) {
    std::cout << "# heartbeat: latest event " << r.event_number() << std::endl;
  } else {
    const auto& e = r.alert_event();
    std::string type = vigil::v1::AlertEventType_Name(e.type());
    std::cout << r.event_number() << "  " << absl::StripPrefix(type, "ALERT_EVENT_TYPE_") << "  patient "
              << e.patient_id() << "  " << SeverityLabel(e.alert().severity()) << "  " << e.alert().summary() << "  ("
              << e.alert().id() << ")";
    if (e.has_acknowledgement()) {
      std::cout << "  by " << e.acknowledgement().user();
    }
    std::cout << std::endl;
  }
}

int CommandSubscribe(const GlobalOptions& options, const SubscribeArgs& args, vigil::v1::AlertFeed::Stub& stub) {
  vigil::v1::SubscribeRequest request;
  if (!BuildSubscribeRequest(args, &request)) {
    return kExitUsage;
  }
  grpc::ClientContext context;
  AddAuth(&context, options);
  auto reader = stub.Subscribe(&context, request);
  vigil::v1::SubscribeResponse response;
  int64_t events = 0;
  // Prints one event or heartbeat; true once --count events were printed.
  auto print = [&](const vigil::v1::SubscribeResponse& r) {
    PrintFeedMessage(options, r);
    return r.has_alert_event() && args.count > 0 && ++events >= args.count;
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

// The arguments of `vigil ack`.
struct AckArgs {
  CLI::App* app = nullptr;  // to tell whether --reason and --reason_system were given
  std::string alert_id;
  std::string user;
  std::string outcome;
  std::string reason;
  std::string reason_system;
  std::string comment;
};

int CommandAck(const GlobalOptions& options, const AckArgs& args, vigil::v1::AlertFeed::Stub& stub) {
  vigil::v1::AcknowledgeAlertRequest request;
  if (args.app->count("--outcome") > 0) {
    vigil::v1::AcknowledgementOutcome o;
    if (!vigil::v1::AcknowledgementOutcome_Parse("ACKNOWLEDGEMENT_OUTCOME_" + Upper(args.outcome), &o)) {
      std::cerr << "error: --outcome is accepted or overridden\n";
      return kExitUsage;
    }
    request.set_outcome(o);
  }
  if (args.app->count("--reason") > 0) {
    request.mutable_reason()->set_code(args.reason);
  }
  if (args.app->count("--reason_system") > 0 || args.app->count("--reason-system") > 0) {
    request.mutable_reason()->set_system(args.reason_system);
  }
  request.set_comment(args.comment);
  request.set_user(args.user);
  request.set_alert_id(args.alert_id);
  grpc::ClientContext context;
  PrepareCall(&context, options);
  vigil::v1::AcknowledgeAlertResponse response;
  const auto status = stub.AcknowledgeAlert(&context, request, &response);
  if (!status.ok()) {
    return ExitForStatus(status);
  }
  if (options.json) {
    std::cout << ToJson(response) << "\n";
  } else {
    std::cout << "acknowledged " << request.alert_id() << " (event " << response.event_number()
              << "): " << vigil::v1::AlertStatus_Name(response.alert().status()) << "\n";
  }
  return kExitClean;
}

void PrintAlertRecord(const vigil::v1::AlertRecord& record) {
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

// The arguments of `vigil alerts`.
struct AlertsArgs {
  std::string patient_id;
  bool all = false;
};

// Lists every page of the patient's alerts, so the output is the whole list.
int CommandAlerts(const GlobalOptions& options, const AlertsArgs& args, vigil::v1::AlertFeed::Stub& stub) {
  vigil::v1::ListAlertsRequest request;
  request.set_patient_id(args.patient_id);
  request.set_include_resolved(args.all);
  request.set_page_size(1000);
  while (true) {
    grpc::ClientContext context;
    PrepareCall(&context, options);
    vigil::v1::ListAlertsResponse response;
    const auto status = stub.ListAlerts(&context, request, &response);
    if (!status.ok()) {
      return ExitForStatus(status);
    }
    for (const auto& record : response.alerts()) {
      if (options.json) {
        std::cout << ToJson(record) << "\n";
      } else {
        PrintAlertRecord(record);
      }
    }
    if (response.next_page_token().empty()) {
      return kExitClean;
    }
    if (response.next_page_token() == request.page_token()) {
      std::cerr << "error: the server returned the same page token twice; the list may be incomplete\n";
      return kExitError;
    }
    request.set_page_token(response.next_page_token());
  }
}

void AddSubscribeCommand(CLI::App& app, Commands* commands) {
  auto args = std::make_shared<SubscribeArgs>();
  CLI::App* subscribe = AddCommand(app, "subscribe", "follow the alert feed (until interrupted, or --count events)");
  AddRepeated(subscribe, "--patient", &args->patients, "only this patient's events (repeatable)")->type_name("ID");
  AddRepeated(subscribe, "--kind", &args->kinds,
              "only alerts of this kind (repeatable): contraindication,\n"
              "drug_interaction, allergy, duplicate_therapy, unscreened_drug\n"
              "or incomplete_data")
      ->type_name("KIND");
  subscribe
      ->add_option("--min_severity", args->min_severity,
                   "only alerts this severe or more: info, minor, moderate,\nmajor or contraindicated")
      ->type_name("SEVERITY");
  AddDeprecatedAlias(subscribe, "--min-severity", "--min_severity", &args->min_severity);
  subscribe->add_option("--after", args->after, "resume after event N (0: the whole feed)")->type_name("N");
  subscribe->add_option("--heartbeat", args->heartbeat, "ask for a heartbeat every SECONDS of quiet")
      ->type_name("SECONDS");
  subscribe
      ->add_option("--max_events_per_message", args->max_events_per_message,
                   "2 to 1000: the server may send up to N waiting events in one\n"
                   "message (they are printed one by one as always)")
      ->type_name("N");
  AddDeprecatedAlias(subscribe, "--max-events-per-message", "--max_events_per_message",
                     &args->max_events_per_message);
  subscribe->add_option("--count", args->count, "exit after N (1 or more) events")
      ->type_name("N")
      ->check(AtLeast(1, "a positive number"));
  commands->push_back({subscribe, [args](const GlobalOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
                         auto stub = vigil::v1::AlertFeed::NewStub(channel);
                         return CommandSubscribe(options, *args, *stub);
                       }});
}

void AddAckCommand(CLI::App& app, Commands* commands) {
  auto args = std::make_shared<AckArgs>();
  CLI::App* ack = AddCommand(app, "ack", "acknowledge an alert: accepted, or overridden (with a reason)");
  args->app = ack;
  ack->add_option("ALERT_ID", args->alert_id, "the alert (as printed by check, alerts or subscribe)")->type_name("");
  ack->add_option("--user", args->user, "who acknowledges (required by the server)")->type_name("NAME");
  ack->add_option("--outcome", args->outcome, "accepted or overridden (required by the server)")
      ->type_name("OUTCOME");
  ack->add_option("--reason", args->reason, "the reason's code, e.g. for an override")->type_name("CODE");
  ack->add_option("--reason_system", args->reason_system, "the code system of --reason")->type_name("URI");
  AddDeprecatedAlias(ack, "--reason-system", "--reason_system", &args->reason_system);
  ack->add_option("--comment", args->comment, "free text")->type_name("TEXT");
  commands->push_back({ack, [args](const GlobalOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
                         auto stub = vigil::v1::AlertFeed::NewStub(channel);
                         return CommandAck(options, *args, *stub);
                       }});
}

}  // namespace

void AddFeedCommands(CLI::App& app, Commands* commands) {
  AddSubscribeCommand(app, commands);
  AddAckCommand(app, commands);

  auto args = std::make_shared<AlertsArgs>();
  CLI::App* alerts =
      AddCommand(app, "alerts", "list a patient's alerts with status and history (all pages)");
  alerts->add_option("PATIENT_ID", args->patient_id, "the patient's id")->type_name("");
  alerts->add_flag("--all", args->all, "resolved alerts too");
  commands->push_back({alerts, [args](const GlobalOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
                         auto stub = vigil::v1::AlertFeed::NewStub(channel);
                         return CommandAlerts(options, *args, *stub);
                       }});
}

}  // namespace vigil_client
