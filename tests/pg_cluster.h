// A throwaway PostgreSQL cluster for tests: initdb into a temporary folder,
// postgres on a free port of 127.0.0.1 (and a unix socket in the folder),
// trust authentication for the superuser "vigil", fsync off.
//
// PostgreSQL refuses to run as root: when the tests run as root, the folder
// is given to the unprivileged user "nobody" and initdb, pg_ctl and postgres
// run as it (runuser). The destructor always stops the server (fast, then
// kill -9) and removes the folder; a watchdog process does the same within a
// second if the test process dies without its destructors (kill -9).
#ifndef VIGIL_TESTS_PG_CLUSTER_H_
#define VIGIL_TESTS_PG_CLUSTER_H_

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vigil::testing {

class PgCluster {
 public:
  // Creates and starts a cluster. Fails with a clear message when the
  // PostgreSQL server binaries are missing (scripts/install-deps.sh installs
  // them) or the server does not start.
  static absl::StatusOr<std::unique_ptr<PgCluster>> Create();

  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // Stops the server (fast shutdown: connections are closed) and starts it
  // again on the same port, keeping the data.
  absl::Status Stop();
  absl::Status Start();
  bool running() const { return running_; }

  int port() const { return port_; }
  // A connection URI for `database`, as the superuser over TCP, with a
  // connect timeout of 3 s.
  std::string Uri(const std::string& database) const;
  // Creates an empty database of its own and returns its name.
  absl::StatusOr<std::string> CreateDatabase();
  // Runs `sql` on `database` with psql; the error carries psql's output.
  absl::Status Exec(const std::string& database, const std::string& sql);

 private:
  PgCluster(std::string bin, std::string dir) : bin_(std::move(bin)), dir_(std::move(dir)) {}
  absl::Status Init();
  absl::Status StartOnce();
  // Runs `command` through the shell as the cluster's user, its output to
  // a log whose end an error carries.
  absl::Status RunAsOwner(const std::string& command, const std::string& what) const;
  void StartWatchdog();

  const std::string bin_;  // PostgreSQL's bin folder
  const std::string dir_;  // the cluster's folder: data/, socket, logs
  int port_ = 0;
  bool running_ = false;
  pid_t watchdog_ = -1;
  std::atomic<int> next_id_{0};
};

}  // namespace vigil::testing

#endif  // VIGIL_TESTS_PG_CLUSTER_H_
