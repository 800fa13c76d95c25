#include "server/service/services.h"

#include <utility>
#include <vector>

#include "server/common/log.h"
#include "server/engine/screening.h"
#include "server/engine/validation.h"
#include "server/kb/catalog.h"
#include "server/service/grpc_status.h"

namespace vigil {
namespace {

// Streams a prepared list of responses, one write in flight at a time, then
// finishes with `final_status`.
class ResponseStreamer final : public grpc::ServerWriteReactor<v1::CheckMedicationsResponse> {
 public:
  ResponseStreamer(std::vector<v1::CheckMedicationsResponse> responses, grpc::Status final_status)
      : responses_(std::move(responses)), final_status_(std::move(final_status)) {
    NextWrite();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      // The client went away or cancelled; nothing more can be delivered.
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed by the client"));
      return;
    }
    ++next_;
    NextWrite();
  }

  void OnDone() override { delete this; }

 private:
  void NextWrite() {
    if (next_ < responses_.size()) {
      StartWrite(&responses_[next_]);
    } else {
      Finish(final_status_);
    }
  }

  std::vector<v1::CheckMedicationsResponse> responses_;
  grpc::Status final_status_;
  size_t next_ = 0;
};

}  // namespace

grpc::ServerWriteReactor<v1::CheckMedicationsResponse>* DecisionSupportService::CheckMedications(
    grpc::CallbackServerContext* context, const v1::CheckMedicationsRequest* request) {
  if (auto status = ValidateCheckRequest(*request); !status.ok()) {
    return new ResponseStreamer({}, ToGrpcStatus(status));
  }
  // Screening is CPU-only and bounded by the request limits (microseconds to
  // a few milliseconds), so it runs here without blocking on I/O.
  const auto kb = kb_->Get();
  ScreeningResult result = Screen(*kb, request->patient(), request->proposed_medications());
  std::vector<v1::CheckMedicationsResponse> responses(result.alerts.size() + 1);
  for (size_t i = 0; i < result.alerts.size(); ++i) {
    *responses[i].mutable_alert() = std::move(result.alerts[i]);
  }
  *responses.back().mutable_summary() = std::move(result.summary);
  return new ResponseStreamer(std::move(responses), grpc::Status::OK);
}

grpc::ServerUnaryReactor* DrugCatalogService::GetDrug(grpc::CallbackServerContext* context,
                                                      const v1::GetDrugRequest* request, v1::Drug* response) {
  auto* reactor = context->DefaultReactor();
  const auto kb = kb_->Get();
  auto drug = vigil::GetDrug(*kb, *request);
  if (!drug.ok()) {
    reactor->Finish(ToGrpcStatus(drug.status()));
    return reactor;
  }
  *response = std::move(*drug);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* DrugCatalogService::SearchDrugs(grpc::CallbackServerContext* context,
                                                          const v1::SearchDrugsRequest* request,
                                                          v1::SearchDrugsResponse* response) {
  auto* reactor = context->DefaultReactor();
  const auto kb = kb_->Get();
  auto result = vigil::SearchDrugs(*kb, *request);
  if (!result.ok()) {
    reactor->Finish(ToGrpcStatus(result.status()));
    return reactor;
  }
  *response = std::move(*result);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* DrugCatalogService::GetKnowledgeBase(grpc::CallbackServerContext* context,
                                                               const v1::GetKnowledgeBaseRequest* request,
                                                               v1::KnowledgeBase* response) {
  auto* reactor = context->DefaultReactor();
  *response = DescribeKnowledgeBase(*kb_->Get(), kb_->serving_since());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ReloadKnowledgeBase(grpc::CallbackServerContext* context,
                                                            const v1::ReloadKnowledgeBaseRequest* request,
                                                            v1::ReloadKnowledgeBaseResponse* response) {
  auto* reactor = context->DefaultReactor();
  worker_->Post([this, reactor, response] {
    auto reloaded = kb_->Reload();
    if (!reloaded.ok()) {
      LogError("knowledge_base_reload_refused", {{"reason", std::string(reloaded.status().message())}});
      reactor->Finish(ToGrpcStatus(reloaded.status()));
      return;
    }
    LogInfo("knowledge_base_reloaded", {{"previous_version", reloaded->previous_version},
                                        {"version", reloaded->kb->version()},
                                        {"trigger", "rpc"}});
    response->set_previous_version(reloaded->previous_version);
    *response->mutable_knowledge_base() = DescribeKnowledgeBase(*reloaded->kb, kb_->serving_since());
    response->set_changed(reloaded->previous_version != reloaded->kb->version());
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

}  // namespace vigil
