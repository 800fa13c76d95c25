// `vigil reload` (reload the knowledge base) and `vigil audit` (export the
// audit trail): the Admin service.
#include <cstdint>
#include <iostream>
#include <string>

#include "client/commands.h"
#include "client/common.h"
#include "vigil/v1/admin.grpc.pb.h"

namespace vigil_client {
namespace {

int CommandReload(const GlobalOptions& options, vigil::v1::Admin::Stub& stub) {
  grpc::ClientContext context;
  AddAuth(&context, options);
  // Loading a knowledge base takes a while: at least a minute.
  context.set_deadline(Deadline(options, /*min_seconds=*/60));
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

// Exports every audit record after `after`, page by page, as JSON lines.
int CommandAudit(const GlobalOptions& options, int64_t after, vigil::v1::Admin::Stub& stub) {
  vigil::v1::ListAuditEventsRequest request;
  request.set_after_id(after);
  request.set_page_size(1000);
  while (true) {
    grpc::ClientContext context;
    PrepareCall(&context, options);
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

}  // namespace

void AddAdminCommands(CLI::App& app, Commands* commands) {
  CLI::App* reload =
      AddCommand(app, "reload", "reload the knowledge base on the server (Admin;\nthe old one keeps serving on failure)");
  commands->push_back({reload, [](const GlobalOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
                         auto stub = vigil::v1::Admin::NewStub(channel);
                         return CommandReload(options, *stub);
                       }});

  auto after = std::make_shared<int64_t>(0);
  CLI::App* audit =
      AddCommand(app, "audit", "export the audit trail of patient-data access as JSON lines (Admin)");
  audit->add_option("--after", *after, "only records after audit id N (0 or more; default 0: all)")
      ->type_name("N")
      ->check(AtLeast(0, "an audit id (0 or more)"));
  commands->push_back({audit, [after](const GlobalOptions& options, const std::shared_ptr<grpc::Channel>& channel) {
                         auto stub = vigil::v1::Admin::NewStub(channel);
                         return CommandAudit(options, *after, *stub);
                       }});
}

}  // namespace vigil_client
