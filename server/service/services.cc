#include "server/service/services.h"

#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "server/common/log.h"
#include "server/engine/screening.h"
#include "server/engine/validation.h"
#include "server/kb/catalog.h"
#include "server/service/grpc_status.h"

namespace vigil {
namespace {

// Streams a list of responses, one write in flight at a time, then
// finishes. Start() may be called from any thread, once.
class ResponseStreamer final : public grpc::ServerWriteReactor<v1::CheckMedicationsResponse> {
 public:
  void Start(std::vector<v1::CheckMedicationsResponse> responses, grpc::Status final_status) {
    responses_ = std::move(responses);
    final_status_ = std::move(final_status);
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

std::vector<v1::CheckMedicationsResponse> ToResponses(ScreeningResult result) {
  std::vector<v1::CheckMedicationsResponse> responses(result.alerts.size() + 1);
  for (size_t i = 0; i < result.alerts.size(); ++i) {
    *responses[i].mutable_alert() = std::move(result.alerts[i]);
  }
  *responses.back().mutable_summary() = std::move(result.summary);
  return responses;
}

// Runs `work` on `worker` and finishes a unary call with its status.
template <typename Response>
grpc::ServerUnaryReactor* OnWorker(grpc::CallbackServerContext* context, Worker* worker, Response* response,
                                   std::function<absl::StatusOr<Response>()> work) {
  auto* reactor = context->DefaultReactor();
  worker->Post([reactor, response, work = std::move(work)] {
    auto result = work();
    if (!result.ok()) {
      reactor->Finish(ToGrpcStatus(result.status()));
      return;
    }
    *response = *std::move(result);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

// The caller, from the call's "authorization" metadata, if it may act as `role`
// (any authenticated caller when `role` is empty).
absl::StatusOr<Caller> Authorize(const Authenticator& auth, grpc::CallbackServerContext* context,
                                 std::optional<Role> role) {
  const auto& metadata = context->client_metadata();
  const auto it = metadata.find("authorization");
  const absl::string_view header = it == metadata.end() ? absl::string_view()
                                                        : absl::string_view(it->second.data(), it->second.size());
  return role.has_value() ? auth.Authorize(header, *role) : auth.Authenticate(header);
}

grpc::ServerUnaryReactor* Rejected(grpc::CallbackServerContext* context, const absl::Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// One subscription's stream: pulls messages from the domain Subscription,
// one write in flight at a time.
class SubscribeReactor final : public grpc::ServerWriteReactor<v1::SubscribeResponse> {
 public:
  SubscribeReactor(grpc::CallbackServerContext* context, EventHub* hub) : context_(context), hub_(hub) {}

  void Begin(std::shared_ptr<Subscription> sub) {
    sub_ = std::move(sub);
    sub_->Attach([this] { Kick(); }, [this] { context_->TryCancel(); });
    Kick();
  }

  void Reject(const grpc::Status& status) { Finish(status); }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        if (!finished_) {
          finished_ = true;
          Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed by the client"));
        }
        return;
      }
    }
    sub_->Delivered(current_);
    Kick();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (!writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "subscription cancelled"));
    }
  }

  void OnDone() override {
    if (sub_ != nullptr) {
      sub_->Detach();
      hub_->Unsubscribe(sub_.get());
    }
    delete this;
  }

 private:
  void Kick() {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_ || cancelled_) {
      return;
    }
    Subscription::Action action = sub_->Next();
    switch (action.kind) {
      case Subscription::Action::Kind::kWrite:
        writing_ = true;
        current_ = std::move(action.message);
        StartWrite(&current_);
        break;
      case Subscription::Action::Kind::kFinish:
        finished_ = true;
        Finish(ToGrpcStatus(action.status));
        break;
      case Subscription::Action::Kind::kNothing:
        break;
    }
  }

  grpc::CallbackServerContext* const context_;
  EventHub* const hub_;
  std::shared_ptr<Subscription> sub_;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  v1::SubscribeResponse current_;
};

}  // namespace

grpc::ServerWriteReactor<v1::CheckMedicationsResponse>* DecisionSupportService::CheckMedications(
    grpc::CallbackServerContext* context, const v1::CheckMedicationsRequest* request) {
  auto* streamer = new ResponseStreamer();
  if (auto caller = Authorize(*auth_, context, Role::kEhr); !caller.ok()) {
    streamer->Start({}, ToGrpcStatus(caller.status()));
    return streamer;
  }
  if (auto status = ValidateCheckRequest(*request); !status.ok()) {
    streamer->Start({}, ToGrpcStatus(status));
    return streamer;
  }
  if (!request->patient_id().empty()) {
    // The stored context is read on the database worker.
    db_worker_->Post([this, streamer, request] {
      auto patient = registry_->GetPatient(request->patient_id());
      if (!patient.ok()) {
        streamer->Start({}, ToGrpcStatus(patient.status()));
        return;
      }
      const auto kb = kb_->Get();
      streamer->Start(ToResponses(Screen(*kb, *patient, request->proposed_medications())), grpc::Status::OK);
    });
    return streamer;
  }
  // Screening is CPU-only and bounded by the request limits (microseconds to
  // a few milliseconds), so it runs here without blocking on I/O.
  const auto kb = kb_->Get();
  streamer->Start(ToResponses(Screen(*kb, request->patient(), request->proposed_medications())), grpc::Status::OK);
  return streamer;
}

grpc::ServerUnaryReactor* DrugCatalogService::GetDrug(grpc::CallbackServerContext* context,
                                                      const v1::GetDrugRequest* request, v1::Drug* response) {
  if (auto caller = Authorize(*auth_, context, std::nullopt); !caller.ok()) {
    return Rejected(context, caller.status());
  }
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
  if (auto caller = Authorize(*auth_, context, std::nullopt); !caller.ok()) {
    return Rejected(context, caller.status());
  }
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
  if (auto caller = Authorize(*auth_, context, std::nullopt); !caller.ok()) {
    return Rejected(context, caller.status());
  }
  auto* reactor = context->DefaultReactor();
  *response = DescribeKnowledgeBase(*kb_->Get(), kb_->serving_since());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ReloadKnowledgeBase(grpc::CallbackServerContext* context,
                                                            const v1::ReloadKnowledgeBaseRequest* request,
                                                            v1::ReloadKnowledgeBaseResponse* response) {
  if (auto caller = Authorize(*auth_, context, Role::kAdmin); !caller.ok()) {
    return Rejected(context, caller.status());
  }
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

grpc::ServerUnaryReactor* PatientsService::PutPatient(grpc::CallbackServerContext* context,
                                                      const v1::PutPatientRequest* request,
                                                      v1::PutPatientResponse* response) {
  if (auto caller = Authorize(*auth_, context, Role::kEhr); !caller.ok()) {
    return Rejected(context, caller.status());
  }
  if (!request->has_patient()) {
    return Rejected(context, absl::InvalidArgumentError("patient: is required"));
  }
  if (auto st = ValidatePatientId(request->patient().id(), "patient.id"); !st.ok()) {
    return Rejected(context, st);
  }
  if (auto st = ValidatePatient(request->patient(), "patient"); !st.ok()) {
    return Rejected(context, st);
  }
  return OnWorker<v1::PutPatientResponse>(context, db_worker_, response,
                                          [this, request] { return registry_->PutPatient(request->patient()); });
}

grpc::ServerUnaryReactor* PatientsService::GetPatient(grpc::CallbackServerContext* context,
                                                      const v1::GetPatientRequest* request, v1::Patient* response) {
  if (auto caller = Authorize(*auth_, context, Role::kEhr); !caller.ok()) {
    return Rejected(context, caller.status());
  }
  if (auto st = ValidatePatientId(request->patient_id(), "patient_id"); !st.ok()) {
    return Rejected(context, st);
  }
  return OnWorker<v1::Patient>(context, db_worker_, response,
                               [this, request] { return registry_->GetPatient(request->patient_id()); });
}

grpc::ServerUnaryReactor* PatientsService::DeletePatient(grpc::CallbackServerContext* context,
                                                         const v1::DeletePatientRequest* request,
                                                         v1::DeletePatientResponse* response) {
  if (auto caller = Authorize(*auth_, context, Role::kEhr); !caller.ok()) {
    return Rejected(context, caller.status());
  }
  if (auto st = ValidatePatientId(request->patient_id(), "patient_id"); !st.ok()) {
    return Rejected(context, st);
  }
  return OnWorker<v1::DeletePatientResponse>(context, db_worker_, response,
                                             [this, request] { return registry_->DeletePatient(request->patient_id()); });
}

grpc::ServerWriteReactor<v1::SubscribeResponse>* AlertFeedService::Subscribe(grpc::CallbackServerContext* context,
                                                                             const v1::SubscribeRequest* request) {
  auto* reactor = new SubscribeReactor(context, hub_);
  if (auto caller = Authorize(*auth_, context, Role::kSubscriber); !caller.ok()) {
    reactor->Reject(ToGrpcStatus(caller.status()));
    return reactor;
  }
  if (auto st = ValidateSubscribeRequest(*request); !st.ok()) {
    reactor->Reject(ToGrpcStatus(st));
    return reactor;
  }
  EventFilter filter;
  filter.patient_ids.insert(request->patient_ids().begin(), request->patient_ids().end());
  for (int kind : request->kinds()) {
    filter.kinds.insert(kind);
  }
  filter.min_severity = request->min_severity();
  const int heartbeat = request->heartbeat_interval_seconds() == 0 ? 15 : request->heartbeat_interval_seconds();
  std::optional<int64_t> after;
  if (request->has_after_event_number()) {
    after = request->after_event_number();
  }
  auto sub = hub_->Subscribe(std::move(filter), after, absl::Seconds(heartbeat));
  if (!sub.ok()) {
    reactor->Reject(ToGrpcStatus(sub.status()));
    return reactor;
  }
  reactor->Begin(*std::move(sub));
  return reactor;
}

grpc::ServerUnaryReactor* AlertFeedService::AcknowledgeAlert(grpc::CallbackServerContext* context,
                                                             const v1::AcknowledgeAlertRequest* request,
                                                             v1::AcknowledgeAlertResponse* response) {
  if (auto caller = Authorize(*auth_, context, Role::kClinician); !caller.ok()) {
    return Rejected(context, caller.status());
  }
  if (auto st = ValidateAcknowledgeRequest(*request); !st.ok()) {
    return Rejected(context, st);
  }
  return OnWorker<v1::AcknowledgeAlertResponse>(context, db_worker_, response,
                                                [this, request] { return registry_->Acknowledge(*request); });
}

grpc::ServerUnaryReactor* AlertFeedService::ListAlerts(grpc::CallbackServerContext* context,
                                                       const v1::ListAlertsRequest* request,
                                                       v1::ListAlertsResponse* response) {
  if (auto caller = Authorize(*auth_, context, Role::kSubscriber); !caller.ok()) {
    return Rejected(context, caller.status());
  }
  if (auto st = ValidatePatientId(request->patient_id(), "patient_id"); !st.ok()) {
    return Rejected(context, st);
  }
  return OnWorker<v1::ListAlertsResponse>(context, db_worker_, response,
                                          [this, request] { return registry_->ListAlerts(*request); });
}

}  // namespace vigil
