#include "server/store/open_store.h"

#include <utility>

#include "absl/strings/match.h"
#include "server/store/postgres_store.h"
#include "server/store/sqlite_store.h"

namespace vigil {
namespace {

constexpr char kSqlitePrefix[] = "sqlite:";

}  // namespace

bool IsPostgresUri(const std::string& db) {
  return absl::StartsWith(db, "postgresql://") || absl::StartsWith(db, "postgres://");
}

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& db) {
  if (IsPostgresUri(db)) {
    auto opened = PostgresStore::Open(db);
    if (!opened.ok()) {
      return opened.status();
    }
    return std::unique_ptr<Store>(*std::move(opened));
  }
  const std::string path = absl::StartsWith(db, kSqlitePrefix) ? db.substr(sizeof(kSqlitePrefix) - 1) : db;
  if (path.empty()) {
    return absl::InvalidArgumentError("no database: give an SQLite file or a postgresql:// URI");
  }
  auto opened = SqliteStore::Open(path);
  if (!opened.ok()) {
    return opened.status();
  }
  return std::unique_ptr<Store>(*std::move(opened));
}

std::optional<int> StoreSchemaVersion(const Store& store) {
  if (const auto* postgres = dynamic_cast<const PostgresStore*>(&store)) {
    return postgres->schema_version();
  }
  if (const auto* sqlite = dynamic_cast<const SqliteStore*>(&store)) {
    return sqlite->schema_version();
  }
  return std::nullopt;
}

std::string StoreNameForLog(const std::string& db) {
  return IsPostgresUri(db) ? UriWithoutPassword(db) : db;
}

}  // namespace vigil
