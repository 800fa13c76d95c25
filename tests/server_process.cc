#include "tests/server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace vigil::testing {
namespace {

std::vector<char*> ArgvOf(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& a : args) {
    out.push_back(a.data());
  }
  out.push_back(nullptr);
  return out;
}

}  // namespace

ServerProcess::ServerProcess(const std::vector<std::string>& args) {
  int fds[2];
  if (pipe(fds) != 0) {
    return;
  }
  std::vector<std::string> full = {VIGIL_SERVER_BIN, "--listen=127.0.0.1:0"};
  bool has_db = false;
  for (const auto& a : args) {
    has_db = has_db || absl::StartsWith(a, "--db=");
  }
  if (!has_db) {
    // Each server gets its own database unless the test names one.
    std::string pattern = "/tmp/vigil-db-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) {
      db_dir_ = pattern;
      full.push_back(absl::StrCat("--db=", db_dir_, "/vigil.db"));
    }
  }
  full.insert(full.end(), args.begin(), args.end());
  pid_ = fork();
  if (pid_ == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    auto argv = ArgvOf(full);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  stderr_fd_ = fds[0];
  // Read the log until the "listening" line (or exit, or 20 s).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string pending;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{stderr_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 200) <= 0) {
      continue;
    }
    char buffer[4096];
    const ssize_t n = read(stderr_fd_, buffer, sizeof buffer);
    if (n <= 0) {
      break;  // The server exited.
    }
    log_.append(buffer, static_cast<size_t>(n));
    const size_t at = log_.find("\"event\":\"listening\"");
    if (at != std::string::npos) {
      const size_t port_at = log_.find("\"port\":\"", at);
      const size_t end = log_.find('"', port_at + 8);
      if (port_at != std::string::npos && end != std::string::npos) {
        int port = 0;
        if (absl::SimpleAtoi(log_.substr(port_at + 8, end - port_at - 8), &port)) {
          port_ = port;
        }
      }
      break;
    }
  }
  // Keep draining the server's log in the background so it never blocks.
  fcntl(stderr_fd_, F_SETFL, fcntl(stderr_fd_, F_GETFL) | O_NONBLOCK);
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    Stop(SIGKILL, 5);
  }
  if (stderr_fd_ >= 0) {
    close(stderr_fd_);
  }
  if (!db_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(db_dir_, ec);
  }
}

std::string ServerProcess::address() const { return absl::StrCat("127.0.0.1:", port_); }

int ServerProcess::LoggedPort(const std::string& event) const {
  const size_t at = log_.find(absl::StrCat("\"event\":\"", event, "\""));
  if (at == std::string::npos) {
    return 0;
  }
  const size_t port_at = log_.find("\"port\":\"", at);
  if (port_at == std::string::npos) {
    return 0;
  }
  const size_t end = log_.find('"', port_at + 8);
  int port = 0;
  return absl::SimpleAtoi(log_.substr(port_at + 8, end - port_at - 8), &port) ? port : 0;
}

void ServerProcess::Signal(int signal) {
  if (pid_ > 0) {
    kill(pid_, signal);
  }
}

int ServerProcess::Stop(int signal, int timeout_seconds) {
  if (pid_ <= 0) {
    return -1;
  }
  kill(pid_, signal);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    char buffer[4096];
    ssize_t n = 0;
    while ((n = read(stderr_fd_, buffer, sizeof buffer)) > 0) {
      log_.append(buffer, static_cast<size_t>(n));
    }
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

CommandResult RunCommand(const std::vector<std::string>& argv_in) {
  CommandResult result;
  int fds[2];
  if (pipe(fds) != 0) {
    return result;
  }
  std::vector<std::string> args = argv_in;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    auto argv = ArgvOf(args);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  char buffer[4096];
  ssize_t n = 0;
  while ((n = read(fds[0], buffer, sizeof buffer)) > 0) {
    result.output.append(buffer, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace vigil::testing
