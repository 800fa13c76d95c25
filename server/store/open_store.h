// Opens the store a --db flag names: a PostgreSQL URI (postgresql://... or
// postgres://..., the store shared by several replicas) or an SQLite file
// ("sqlite:PATH" or a plain path).
#ifndef VIGIL_SERVER_STORE_OPEN_STORE_H_
#define VIGIL_SERVER_STORE_OPEN_STORE_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace vigil {

// True when `db` names a PostgreSQL database.
bool IsPostgresUri(const std::string& db);

// Opens (creating or migrating as needed) the store `db` names.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& db);

// The schema version of a store OpenStore opened; nullopt for another Store.
std::optional<int> StoreSchemaVersion(const Store& store);

// `db` as it may be logged: a URI without its password.
std::string StoreNameForLog(const std::string& db);

}  // namespace vigil

#endif  // VIGIL_SERVER_STORE_OPEN_STORE_H_
