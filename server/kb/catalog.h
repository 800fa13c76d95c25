// Drug catalog queries over a knowledge base (the domain side of DrugCatalog).
#ifndef VIGIL_SERVER_KB_CATALOG_H_
#define VIGIL_SERVER_KB_CATALOG_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/kb/knowledge_base.h"
#include "vigil/v1/drug_catalog.pb.h"

namespace vigil {

// The monograph of drug `d`. `full` adds mechanism, indications, side
// effects, contraindications, interactions and sources.
v1::Drug DescribeDrug(const KnowledgeBase& kb, DrugIndex d, bool full);

// Looks a drug up by id, name, synonym, brand or "system|code".
// InvalidArgument for an empty name, NotFound when nothing matches.
absl::StatusOr<v1::Drug> GetDrug(const KnowledgeBase& kb, const v1::GetDrugRequest& request);

// Searches drugs by text and class. InvalidArgument names a bad field.
absl::StatusOr<v1::SearchDrugsResponse> SearchDrugs(const KnowledgeBase& kb,
                                                    const v1::SearchDrugsRequest& request);

// Describes a loaded base: version, sources, size.
v1::KnowledgeBase DescribeKnowledgeBase(const KnowledgeBase& kb, absl::Time serving_since);

}  // namespace vigil

#endif  // VIGIL_SERVER_KB_CATALOG_H_
