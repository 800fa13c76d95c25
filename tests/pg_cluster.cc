#include "tests/pg_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace vigil::testing {
namespace {

// The user the cluster runs as when the tests run as root.
constexpr char kOwner[] = "nobody";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// The last `n` bytes of `text`.
std::string Tail(const std::string& text, size_t n = 2000) {
  return text.size() <= n ? text : text.substr(text.size() - n);
}

// PostgreSQL's bin folder: $VIGIL_PG_BINDIR, or the newest
// /usr/lib/postgresql/N/bin (Debian's layout) holding the server.
absl::StatusOr<std::string> FindBinDir() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("VIGIL_PG_BINDIR"); env != nullptr && *env != '\0') {
    candidates.push_back(env);
  } else {
    std::error_code ec;
    int best = -1;
    for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
      int version = 0;
      if (absl::SimpleAtoi(entry.path().filename().string(), &version) && version > best) {
        best = version;
        candidates.insert(candidates.begin(), (entry.path() / "bin").string());
      }
    }
  }
  for (const auto& dir : candidates) {
    if (access((dir + "/initdb").c_str(), X_OK) == 0 && access((dir + "/pg_ctl").c_str(), X_OK) == 0 &&
        access((dir + "/postgres").c_str(), X_OK) == 0) {
      return dir;
    }
  }
  return absl::FailedPreconditionError(
      "the PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed: looked in "
      "/usr/lib/postgresql/*/bin and $VIGIL_PG_BINDIR; install postgresql-15 (scripts/install-deps.sh)");
}

// A port of 127.0.0.1 free a moment ago.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// Runs `command` with /bin/sh; its output goes to `log`.
absl::Status Shell(const std::string& command, const std::string& log, const std::string& what) {
  const int rc = std::system((command + " >'" + log + "' 2>&1 </dev/null").c_str());
  if (rc != 0) {
    return absl::InternalError(absl::StrCat(what, " failed (status ", rc, "): ", command, "\n", Tail(ReadFile(log))));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Create() {
  auto bin = FindBinDir();
  if (!bin.ok()) {
    return bin.status();
  }
  // In /tmp, which the unprivileged owner can reach (TMPDIR may not be).
  std::string pattern = "/tmp/vigil-pg-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError("cannot create a temporary folder in /tmp");
  }
  std::unique_ptr<PgCluster> cluster(new PgCluster(*bin, pattern));
  cluster->StartWatchdog();
  if (auto st = cluster->Init(); !st.ok()) {
    return st;
  }
  if (auto st = cluster->Start(); !st.ok()) {
    return st;
  }
  return cluster;
}

absl::Status PgCluster::Init() {
  if (geteuid() == 0) {
    const passwd* owner = getpwnam(kOwner);
    if (owner == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("the tests run as root and there is no user ", kOwner,
                                                        " to run PostgreSQL as"));
    }
    if (chown(dir_.c_str(), owner->pw_uid, owner->pw_gid) != 0) {
      return absl::InternalError(absl::StrCat("cannot give ", dir_, " to ", kOwner));
    }
  }
  chmod(dir_.c_str(), 0700);
  return RunAsOwner(absl::StrCat("'", bin_, "/initdb' -D '", dir_, "/data' -U vigil --auth=trust -E UTF8 --no-locale "
                                 "--no-sync --no-instructions"),
                    "initdb");
}

absl::Status PgCluster::RunAsOwner(const std::string& command, const std::string& what) const {
  // The owner's own working folder: it may not be allowed into the caller's.
  std::string line = absl::StrCat("cd '", dir_, "' && ", command);
  if (geteuid() == 0) {
    line = absl::StrCat("runuser -u ", kOwner, " -- /bin/sh -c \"", line, "\"");
  }
  return Shell(line, absl::StrCat(dir_, "/", what, ".log"), what);
}

absl::Status PgCluster::Start() {
  if (running_) {
    return absl::OkStatus();
  }
  if (port_ != 0) {
    return StartOnce();  // a restart: the same port, which clients know
  }
  absl::Status st;
  for (int attempt = 0; attempt < 5; ++attempt) {  // another process may take the port meanwhile
    port_ = FreePort();
    st = StartOnce();
    if (st.ok()) {
      return st;
    }
  }
  port_ = 0;
  return st;
}

absl::Status PgCluster::StartOnce() {
  auto st = RunAsOwner(absl::StrCat("'", bin_, "/pg_ctl' -D '", dir_, "/data' -l '", dir_, "/postgres.log' -w -t 30 ",
                                    "-o '-p ", port_, " -k ", dir_, " -c listen_addresses=127.0.0.1 -c fsync=off ",
                                    "-c synchronous_commit=off -c full_page_writes=off' start"),
                       "pg_ctl-start");
  if (!st.ok()) {
    return absl::InternalError(
        absl::StrCat(st.message(), "\npostgres.log:\n", Tail(ReadFile(dir_ + "/postgres.log"))));
  }
  running_ = true;
  return absl::OkStatus();
}

absl::Status PgCluster::Stop() {
  if (!running_) {
    return absl::OkStatus();
  }
  auto st = RunAsOwner(absl::StrCat("'", bin_, "/pg_ctl' -D '", dir_, "/data' -m fast -w -t 30 stop"), "pg_ctl-stop");
  if (st.ok()) {
    running_ = false;
  }
  return st;
}

PgCluster::~PgCluster() {
  if (running_ && !Stop().ok()) {
    // The postmaster's pid is the first line of postmaster.pid.
    int pid = 0;
    std::istringstream in(ReadFile(dir_ + "/data/postmaster.pid"));
    if (in >> pid && pid > 0) {
      kill(pid, SIGKILL);
    }
  }
  if (watchdog_ > 0) {
    kill(watchdog_, SIGKILL);
    waitpid(watchdog_, nullptr, 0);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void PgCluster::StartWatchdog() {
  // Polls this process; once it is gone (killed without its destructors),
  // shuts the postmaster down immediately (SIGQUIT, then SIGKILL) and
  // removes the folder. Its output goes nowhere, so that a runner waiting
  // for the test's output is not held by it.
  const std::string script = absl::StrCat(
      "while kill -0 ", getpid(), " 2>/dev/null; do sleep 1; done; ", "P=$(head -n1 '", dir_,
      "/data/postmaster.pid' 2>/dev/null); ", "if [ -n \"$P\" ]; then kill -QUIT \"$P\"; sleep 2; kill -KILL \"$P\"; fi; ",
      "rm -rf '", dir_, "'");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (int fd = 0; fd <= 2; ++fd) {
    posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
  }
  std::string sh = "/bin/sh";
  std::string c = "-c";
  char* argv[] = {sh.data(), c.data(), const_cast<char*>(script.c_str()), nullptr};
  pid_t pid = -1;
  if (posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, environ) == 0) {
    watchdog_ = pid;
  }
  posix_spawn_file_actions_destroy(&actions);
}

std::string PgCluster::Uri(const std::string& database) const {
  return absl::StrCat("postgresql://vigil@127.0.0.1:", port_, "/", database, "?sslmode=disable&connect_timeout=3");
}

absl::StatusOr<std::string> PgCluster::CreateDatabase() {
  const std::string name = absl::StrCat("vigil_test_", next_id_.fetch_add(1));
  if (auto st = Exec("postgres", absl::StrCat("CREATE DATABASE ", name)); !st.ok()) {
    return st;
  }
  return name;
}

absl::Status PgCluster::Exec(const std::string& database, const std::string& sql) {
  // psql needs no privilege: it connects over TCP as the cluster's superuser.
  // In the cluster's folder (root may write there), so that it goes with it.
  const std::string file = absl::StrCat(dir_, "/exec-", next_id_.fetch_add(1), ".sql");
  {
    std::ofstream out(file, std::ios::binary);
    out << sql;
  }
  auto st = Shell(absl::StrCat("'", bin_, "/psql' -X -q -v ON_ERROR_STOP=1 -d '", Uri(database), "' -f '", file, "'"),
                  file + ".log", "psql");
  std::error_code ec;
  std::filesystem::remove(file, ec);
  std::filesystem::remove(file + ".log", ec);
  return st;
}

}  // namespace vigil::testing
