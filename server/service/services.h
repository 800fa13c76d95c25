// The gRPC services: thin layers that authorize, validate, call the domain,
// audit and translate. They never block on I/O: database work runs on
// threads the application owns.
#ifndef VIGIL_SERVER_SERVICE_SERVICES_H_
#define VIGIL_SERVER_SERVICE_SERVICES_H_

#include <functional>
#include <memory>

#include "server/common/metrics.h"
#include "server/common/worker.h"
#include "server/engine/screening.h"
#include "server/feed/event_hub.h"
#include "server/feed/registry.h"
#include "server/kb/holder.h"
#include "server/security/auth.h"
#include "server/security/rate_limiter.h"
#include "server/service/arena_pool.h"
#include "server/store/audit_log.h"
#include "vigil/v1/admin.grpc.pb.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/drug_catalog.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"

namespace vigil {

// What the services share. Every pointer outlives the server.
struct ServiceDeps {
  KnowledgeBaseHolder* kb = nullptr;
  PatientRegistry* registry = nullptr;
  EventHub* hub = nullptr;
  // Database work (registry calls).
  Worker* db_worker = nullptr;
  // Knowledge-base reloads and audit exports.
  Worker* admin_worker = nullptr;
  const Authenticator* auth = nullptr;
  AuditLog* audit = nullptr;
  Store* store = nullptr;
  Metrics* metrics = nullptr;
  // Per-caller request rate (may be null: no limit).
  RateLimiter* rate_limiter = nullptr;
  // Failed calls (no valid token, missing role) allowed per peer address
  // (may be null: no limit); past it calls are refused unrecorded.
  RateLimiter* failure_limiter = nullptr;
  // Most open subscriptions; past it Subscribe fails with RESOURCE_EXHAUSTED.
  size_t max_subscribers = 1000;
  // Subscriptions each caller may hold (may be null: no per-caller limit).
  CallerSlots* subscription_slots = nullptr;
  // Checks each caller may have in flight (may be null: no limit).
  CallerSlots* check_slots = nullptr;
};

// CheckMedications is a raw method (it reads the request's bytes and writes
// bytes), so that its request is parsed onto the call's pooled arena and each
// message is serialized straight into the slice gRPC sends: gRPC parses a
// typed streaming method's request on the heap (measured at 7% of the
// server's CPU). What goes over the wire is the same.
class DecisionSupportService final
    : public v1::DecisionSupport::WithRawCallbackMethod_CheckMedications<
          v1::DecisionSupport::WithCallbackMethod_CheckMedicationsUnary<v1::DecisionSupport::Service>> {
 public:
  explicit DecisionSupportService(const ServiceDeps& deps) : deps_(deps) {
    SetMessageAllocatorFor_CheckMedicationsUnary(&arenas_);
  }
  // `request` is a vigil.v1.CheckMedicationsRequest in wire format; each
  // message written is a vigil.v1.CheckMedicationsResponse.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* CheckMedications(grpc::CallbackServerContext* context,
                                                               const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* CheckMedicationsUnary(grpc::CallbackServerContext* context,
                                                  const v1::CheckMedicationsUnaryRequest* request,
                                                  v1::CheckMedicationsUnaryResponse* response) override;

 private:
  // Authorizes, validates, audits and screens a check (inline, or on the
  // database worker for a stored patient) into `result`; `done` runs once,
  // with OK or the error. The shared body of both check RPCs.
  // `CheckRequest`: CheckMedicationsRequest or CheckMedicationsUnaryRequest.
  template <typename CheckRequest>
  void RunCheck(grpc::CallbackServerContext* context, const CheckRequest* request,
                absl::string_view method, v1::CheckMedicationsUnaryResponse* result,
                std::function<void(const absl::Status&, CallerSlots::Held)> done);

  const ServiceDeps deps_;
  // Unary checks parse their request and build their answer on pooled arenas.
  PooledArenaAllocator<v1::CheckMedicationsUnaryRequest, v1::CheckMedicationsUnaryResponse> arenas_;
  // The streamed check's requests and answers.
  ArenaPool stream_arenas_;
};

class DrugCatalogService final : public v1::DrugCatalog::CallbackService {
 public:
  explicit DrugCatalogService(const ServiceDeps& deps) : deps_(deps) {}
  grpc::ServerUnaryReactor* GetDrug(grpc::CallbackServerContext* context, const v1::GetDrugRequest* request,
                                    v1::Drug* response) override;
  grpc::ServerUnaryReactor* SearchDrugs(grpc::CallbackServerContext* context, const v1::SearchDrugsRequest* request,
                                        v1::SearchDrugsResponse* response) override;
  grpc::ServerUnaryReactor* GetKnowledgeBase(grpc::CallbackServerContext* context,
                                             const v1::GetKnowledgeBaseRequest* request,
                                             v1::KnowledgeBase* response) override;

 private:
  const ServiceDeps deps_;
};

class AdminService final : public v1::Admin::CallbackService {
 public:
  explicit AdminService(const ServiceDeps& deps) : deps_(deps) {}
  grpc::ServerUnaryReactor* ReloadKnowledgeBase(grpc::CallbackServerContext* context,
                                                const v1::ReloadKnowledgeBaseRequest* request,
                                                v1::ReloadKnowledgeBaseResponse* response) override;
  grpc::ServerUnaryReactor* ListAuditEvents(grpc::CallbackServerContext* context,
                                            const v1::ListAuditEventsRequest* request,
                                            v1::ListAuditEventsResponse* response) override;

 private:
  const ServiceDeps deps_;
};

class PatientsService final : public v1::Patients::CallbackService {
 public:
  explicit PatientsService(const ServiceDeps& deps) : deps_(deps) {}
  grpc::ServerUnaryReactor* PutPatient(grpc::CallbackServerContext* context, const v1::PutPatientRequest* request,
                                       v1::PutPatientResponse* response) override;
  grpc::ServerUnaryReactor* GetPatient(grpc::CallbackServerContext* context, const v1::GetPatientRequest* request,
                                       v1::Patient* response) override;
  grpc::ServerUnaryReactor* DeletePatient(grpc::CallbackServerContext* context,
                                          const v1::DeletePatientRequest* request,
                                          v1::DeletePatientResponse* response) override;

 private:
  const ServiceDeps deps_;
};

// Subscribe is a raw method (it reads the request's bytes and writes bytes):
// the feed serializes each event once, when it is published, and every
// subscriber's stream writes those same bytes, alone or concatenated into a
// batch, instead of serializing a message per subscriber.
class AlertFeedService final
    : public v1::AlertFeed::WithRawCallbackMethod_Subscribe<
          v1::AlertFeed::WithCallbackMethod_AcknowledgeAlert<v1::AlertFeed::WithCallbackMethod_ListAlerts<
              v1::AlertFeed::Service>>> {
 public:
  explicit AlertFeedService(const ServiceDeps& deps) : deps_(deps) {}
  // `request` is a vigil.v1.SubscribeRequest in wire format; each message
  // written is a vigil.v1.SubscribeResponse.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* AcknowledgeAlert(grpc::CallbackServerContext* context,
                                             const v1::AcknowledgeAlertRequest* request,
                                             v1::AcknowledgeAlertResponse* response) override;
  grpc::ServerUnaryReactor* ListAlerts(grpc::CallbackServerContext* context, const v1::ListAlertsRequest* request,
                                       v1::ListAlertsResponse* response) override;

 private:
  const ServiceDeps deps_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_SERVICES_H_
