// The gRPC services: thin layers that validate, call the domain and
// translate. They never block on I/O.
#ifndef VIGIL_SERVER_SERVICE_SERVICES_H_
#define VIGIL_SERVER_SERVICE_SERVICES_H_

#include <memory>

#include "server/common/worker.h"
#include "server/kb/holder.h"
#include "vigil/v1/admin.grpc.pb.h"
#include "vigil/v1/decision_support.grpc.pb.h"
#include "vigil/v1/drug_catalog.grpc.pb.h"

namespace vigil {

class DecisionSupportService final : public v1::DecisionSupport::CallbackService {
 public:
  explicit DecisionSupportService(const KnowledgeBaseHolder* kb) : kb_(kb) {}

  grpc::ServerWriteReactor<v1::CheckMedicationsResponse>* CheckMedications(
      grpc::CallbackServerContext* context, const v1::CheckMedicationsRequest* request) override;

 private:
  const KnowledgeBaseHolder* kb_;
};

class DrugCatalogService final : public v1::DrugCatalog::CallbackService {
 public:
  explicit DrugCatalogService(const KnowledgeBaseHolder* kb) : kb_(kb) {}

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
};

class AdminService final : public v1::Admin::CallbackService {
 public:
  // Reloads run on `worker`, never on gRPC's threads.
  AdminService(KnowledgeBaseHolder* kb, Worker* worker) : kb_(kb), worker_(worker) {}

  grpc::ServerUnaryReactor* ReloadKnowledgeBase(grpc::CallbackServerContext* context,
                                                const v1::ReloadKnowledgeBaseRequest* request,
                                                v1::ReloadKnowledgeBaseResponse* response) override;

 private:
  KnowledgeBaseHolder* kb_;
  Worker* worker_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_SERVICES_H_
