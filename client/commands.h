// The commands of the `vigil` client and the CLI11 helpers they share.
//
// Each Add*Commands function adds its subcommands (and their options) to the
// app and appends, per runnable subcommand, what to run once the command line
// is parsed and the channel is open.
#ifndef VIGIL_CLIENT_COMMANDS_H_
#define VIGIL_CLIENT_COMMANDS_H_

#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "client/common.h"
#include "grpcpp/grpcpp.h"

namespace vigil_client {

// A runnable subcommand: `run` is called when `app` was chosen.
struct Command {
  CLI::App* app = nullptr;
  std::function<int(const GlobalOptions&, const std::shared_ptr<grpc::Channel>&)> run;
};
using Commands = std::vector<Command>;

void AddCheckCommands(CLI::App& app, Commands* commands);    // check, demo (check.cc)
void AddDrugCommands(CLI::App& app, Commands* commands);     // drug, search, kb (drugs.cc)
void AddPatientCommands(CLI::App& app, Commands* commands);  // patient put|get|delete (patients.cc)
void AddFeedCommands(CLI::App& app, Commands* commands);     // subscribe, ack, alerts (feed.cc)
void AddAdminCommands(CLI::App& app, Commands* commands);    // reload, audit (admin.cc)

inline constexpr char kGlobalOptionsNote[] =
    "Global options (--server, --token, --ca_cert, --cert, --key, --insecure, --json, --timeout)\n"
    "may come before or after the command; see `vigil --help`.";

// Adds subcommand `name` of `parent`; its help ends with a note on the
// global options.
inline CLI::App* AddCommand(CLI::App& parent, const std::string& name, const std::string& description) {
  CLI::App* command = parent.add_subcommand(name, description);
  command->group("Commands");
  command->footer(kGlobalOptionsNote);
  return command;
}

// An option that may be given many times, one value each time (never
// swallowing the next word, which may be a positional argument).
inline CLI::Option* AddRepeated(CLI::App* app, const std::string& name, std::vector<std::string>* values,
                                const std::string& description) {
  return app
      ->add_option_function<std::string>(
          name, [values](const std::string& value) { values->push_back(value); }, description)
      ->trigger_on_parse();
}

// Checks that an integer option is `min` or more; else the error is
// "--option: needs `what`".
inline CLI::Validator AtLeast(int64_t min, const std::string& what) {
  return CLI::Validator(
      [min, what](std::string& value) -> std::string {
        int64_t n = 0;
        return absl::SimpleAtoi(value, &n) && n >= min ? "" : "needs " + what;
      },
      "");
}

// Notes on stderr, once per spelling, that `old_name` is deprecated.
inline void NoteDeprecated(const std::string& old_name, const std::string& new_name) {
  static std::set<std::string> noted;
  if (noted.insert(old_name).second) {
    std::cerr << "vigil: " << old_name << " is deprecated; use " << new_name << "\n";
  }
}

// The old kebab-case spelling of option `new_name` (snake_case, like the
// server's flags): hidden from --help, it sets the same value and notes
// that it is deprecated. Accepted for one release.
template <typename T>
void AddDeprecatedAlias(CLI::App* app, const std::string& old_name, const std::string& new_name, T* value) {
  app->add_option_function<T>(old_name,
                              [old_name, new_name, value](const T& v) {
                                NoteDeprecated(old_name, new_name);
                                *value = v;
                              })
      ->group("")
      ->trigger_on_parse();
}

}  // namespace vigil_client

#endif  // VIGIL_CLIENT_COMMANDS_H_
