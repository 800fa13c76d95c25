// The gRPC services: thin layers that validate, call the domain and
// translate. They never block on I/O.
#ifndef VIGIL_SERVER_SERVICE_SERVICES_H_
#define VIGIL_SERVER_SERVICE_SERVICES_H_

#include <memory>

#include "server/kb/holder.h"
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

 private:
  const KnowledgeBaseHolder* kb_;
};

}  // namespace vigil

#endif  // VIGIL_SERVER_SERVICE_SERVICES_H_
