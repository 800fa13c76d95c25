// The gRPC services: thin layers that validate, call the domain and
// translate. They never block on I/O.
#ifndef VIGIL_SERVER_SERVICE_SERVICES_H_
#define VIGIL_SERVER_SERVICE_SERVICES_H_

#include <memory>

#include "server/common/worker.h"
#include "server/feed/event_hub.h"
#include "server/feed/registry.h"
#include "server/kb/holder.h"
#include "server/security/auth.h"
#include "vigil/v1/alert_feed.grpc.pb.h"
#include "vigil/v1/patients.grpc.pb.h"
#include "vigil/v1/admin.grpc.pb.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/drug_catalog.grpc.pb.h"

namespace vigil {

class DecisionSupportService final : public v1::DecisionSupport::CallbackService {
 public:
  // `registry` and `db_worker` serve checks by patient_id (stored context).
  DecisionSupportService(const KnowledgeBaseHolder* kb, PatientRegistry* registry, Worker* db_worker,
                         const Authenticator* auth)
      : kb_(kb), registry_(registry), db_worker_(db_worker), auth_(auth) {}

  grpc::ServerWriteReactor<v1::CheckMedicationsResponse>* CheckMedications(
      grpc::CallbackServerContext* context, const v1::CheckMedicationsRequest* request) override;

 private:
  const KnowledgeBaseHolder* kb_;
  PatientRegistry* registry_;
  Worker* db_worker_;
  const Authenticator* auth_;
};

// Database work runs on `db_worker`, never on gRPC's threads.
class PatientsService final : public v1::Patients::CallbackService {
 public:
  PatientsService(PatientRegistry* registry, Worker* db_worker, const Authenticator* auth)
      : registry_(registry), db_worker_(db_worker), auth_(auth) {}

  grpc::ServerUnaryReactor* PutPatient(grpc::CallbackServerContext* context, const v1::PutPatientRequest* request,
                                       v1::PutPatientResponse* response) override;
  grpc::ServerUnaryReactor* GetPatient(grpc::CallbackServerContext* context, const v1::GetPatientRequest* request,
                                       v1::Patient* response) override;
  grpc::ServerUnaryReactor* DeletePatient(grpc::CallbackServerContext* context,
                                          const v1::DeletePatientRequest* request,
                                          v1::DeletePatientResponse* response) override;

 private:
  PatientRegistry* registry_;
  Worker* db_worker_;
  const Authenticator* auth_;
};

class AlertFeedService final : public v1::AlertFeed::CallbackService {
 public:
  AlertFeedService(PatientRegistry* registry, EventHub* hub, Worker* db_worker, const Authenticator* auth)
      : registry_(registry), hub_(hub), db_worker_(db_worker), auth_(auth) {}

  grpc::ServerWriteReactor<v1::SubscribeResponse>* Subscribe(grpc::CallbackServerContext* context,
                                                            const v1::SubscribeRequest* request) override;
  grpc::ServerUnaryReactor* AcknowledgeAlert(grpc::CallbackServerContext* context,
                                             const v1::AcknowledgeAlertRequest* request,
                                             v1::AcknowledgeAlertResponse* response) override;
  grpc::ServerUnaryReactor* ListAlerts(grpc::CallbackServerContext* context, const v1::ListAlertsRequest* request,
                                       v1::ListAlertsResponse* response) override;

 private:
  PatientRegistry* registry_;
  EventHub* hub_;
  Worker* db_worker_;
  const Authenticator* auth_;
};

class DrugCatalogService final : public v1::DrugCatalog::CallbackService {
 public:
  DrugCatalogService(const KnowledgeBaseHolder* kb, const Authenticator* auth) : kb_(kb), auth_(auth) {}

  grpc::ServerUnaryReactor* GetDrug(grpc::CallbackServerContext* context, const v1::GetDrugRequest* request,
                                    v1::Drug* response) override;
  grpc::ServerUnaryReactor* SearchDrugs(grpc::CallbackServerContext* context,
                                        const v1::SearchDrugsRequest* request,
                                        v1::SearchDrugsResponse* response) override;
  grpc::ServerUnaryReactor* GetKnowledgeBase(grpc::CallbackServerContext* context,
                                             const v1::GetKnowledgeBaseRequest* request,
                                             v1::KnowledgeBase* response) override;

 private:
  const KnowledgeBaseHolder* kb_;
  const Authenticator* auth_;
};

class AdminService final : public v1::Admin::CallbackService {
 public:
  // Reloads run on `worker`, never on gRPC's threads.
  AdminService(KnowledgeBaseHolder* kb, Worker* worker, const Authenticator* auth)
      : kb_(kb), worker_(worker), auth_(auth) {}

  grpc::ServerUnaryReactor* ReloadKnowledgeBase(grpc::CallbackServerContext* context,
                                                const v1::ReloadKnowledgeBaseRequest* request,
                                                v1::ReloadKnowledgeBaseResponse* response) override;

 private:
  KnowledgeBaseHolder* kb_;
  Worker* worker_;
  const Authenticator* auth_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_SERVICES_H_
