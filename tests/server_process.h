// Runs the real vigil-server binary for end-to-end tests.
#ifndef VIGIL_TESTS_SERVER_PROCESS_H_
#define VIGIL_TESTS_SERVER_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace vigil::testing {

class ServerProcess {
 public:
  // Starts vigil-server with `args` plus --listen=127.0.0.1:0 and waits
  // until it logs that it is listening. `ok()` tells whether it started.
  explicit ServerProcess(const std::vector<std::string>& args);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string address() const;
  // Everything the server logged so far (read when it stops).
  const std::string& log() const { return log_; }
  // The port a "..._listening" event of the log names ("metrics_listening",
  // "health_listening"); 0 when the log has no such event.
  int LoggedPort(const std::string& event) const;

  // Sends `signal` without waiting.
  void Signal(int signal);

  // Sends `signal` and waits for the exit; returns the exit status as from
  // waitpid, or -1 on timeout.
  int Stop(int signal, int timeout_seconds = 20);

 private:
  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  int port_ = 0;
  std::string log_;
  std::string db_dir_;
};

// The output and exit code of a command.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs `argv` (no shell), capturing standard output, and waits for it.
CommandResult RunCommand(const std::vector<std::string>& argv);

}  // namespace vigil::testing

#endif  // VIGIL_TESTS_SERVER_PROCESS_H_
