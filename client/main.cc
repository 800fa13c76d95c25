// vigil: the command-line client of the Vigil decision-support server.
//
// This file wires the command line (CLI11); the commands live in check.cc,
// drugs.cc, patients.cc, feed.cc and admin.cc. Run `vigil --help` for usage,
// `vigil COMMAND --help` for a command's. Exit codes are meant for scripts:
//   0  screened completely, no alerts        1  alerts, none major or worse
//   2  at least one major or contraindicated  3  screening incomplete, nothing major
//   64 usage error   65 request rejected (INVALID_ARGUMENT)   66 not found
//   69 server unavailable or deadline exceeded   70 other error
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "client/commands.h"
#include "client/common.h"

namespace vigil_client {
namespace {

constexpr char kFooter[] =
    "Flags are snake_case, like the server's (--patient_id). The old kebab-case spellings\n"
    "(--patient-id, --min-severity, --max-events-per-message, --reason-system) still work\n"
    "for this release, with a deprecation note on stderr.\n\n"
    "Exit codes: 0 no alerts; 1 alerts below major; 2 a major or contraindicated alert;\n"
    "3 screening incomplete (nothing major); 64 usage; 65 rejected request; 66 not found;\n"
    "69 server unavailable; 70 other error.";

constexpr char kGlobal[] = "Global options (before or after the command)";

void AddGlobalOptions(CLI::App& app, GlobalOptions* options) {
  app.add_option("--server", options->server, "server address")
      ->type_name("HOST:PORT")
      ->envname("VIGIL_SERVER")
      ->capture_default_str()
      ->group(kGlobal);
  app.add_option("--ca_cert", options->ca_cert, "use TLS, trusting this CA bundle (PEM)")
      ->type_name("FILE")
      ->group(kGlobal);
  app.add_option("--cert", options->cert, "client certificate for mutual TLS (PEM); with --key")
      ->type_name("FILE")
      ->group(kGlobal);
  app.add_option("--key", options->key, "the client certificate's private key (PEM)")->type_name("FILE")->group(kGlobal);
  app.add_option("--token", options->token,
                 "bearer token; sent only over TLS or to this machine,\nunless --insecure")
      ->type_name("TOKEN")
      ->envname("VIGIL_TOKEN")
      ->group(kGlobal);
  app.add_flag("--insecure", options->insecure,
               "allow sending the token without TLS to another machine\n"
               "(a network you trust only: anyone on the path can read\nand replay it)")
      ->group(kGlobal);
  app.add_flag("--json", options->json, "print responses as JSON, one object a line")->group(kGlobal);
  app.add_option("--timeout", options->timeout_seconds, "deadline of each call")
      ->type_name("SECONDS")
      ->check(AtLeast(1, "a positive number of seconds"))
      ->capture_default_str()
      ->group(kGlobal);
}

// `vigil help [COMMAND...]`: the help of the app or of a command.
int Help(const CLI::App& app, const std::vector<std::string>& words) {
  const CLI::App* command = &app;
  std::string prev;
  for (const auto& word : words) {
    try {
      prev = prev.empty() ? command->get_name() : prev + " " + command->get_name();
      command = command->get_subcommand(word);
    } catch (const CLI::OptionNotFound&) {
      std::cerr << "error: unknown command " << word << "; run `vigil --help` for the commands\n";
      return kExitUsage;
    }
  }
  std::cout << (command == &app ? app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal)
                                : command->help(prev));
  return kExitClean;
}

// The chosen command's path, e.g. "vigil patient put".
std::string CommandPath(const CLI::App& app) {
  std::string path = app.get_name();
  for (const CLI::App* command = &app; !command->get_subcommands().empty();) {
    command = command->get_subcommands().front();
    path += " " + command->get_name();
  }
  return path;
}

// An option given with nothing after its "=" ("--patient="): a usage error,
// never a silently ignored option (a check without the patient file meant
// would answer for no patient at all). Returns the option, or empty.
std::string EmptyValuedOption(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") {
      break;
    }
    if (arg.size() > 3 && arg.compare(0, 2, "--") == 0 && arg.back() == '=') {
      return arg.substr(0, arg.size() - 1);
    }
  }
  return "";
}

int Run(int argc, char** argv) {
  if (const std::string empty = EmptyValuedOption(argc, argv); !empty.empty()) {
    std::cerr << "error: " << empty << " needs a value\nRun `vigil --help` for usage.\n";
    return kExitUsage;
  }
  CLI::App app("vigil: the command-line client of the Vigil decision-support server.", "vigil");
  // Set before anything is added, so that every command inherits them: a
  // repeated option keeps its last value, and global options may follow the
  // command's name.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.fallthrough();
  app.require_subcommand(0, 1);
  app.get_formatter()->column_width(30);
  app.get_formatter()->label("SUBCOMMAND", "COMMAND");
  app.footer(kFooter);

  app.get_help_ptr()->group(kGlobal);
  GlobalOptions options;
  AddGlobalOptions(app, &options);
  Commands commands;
  AddCheckCommands(app, &commands);
  AddDrugCommands(app, &commands);
  AddPatientCommands(app, &commands);
  AddFeedCommands(app, &commands);
  AddAdminCommands(app, &commands);
  std::vector<std::string> help_words;
  CLI::App* help = app.add_subcommand("help", "this text, or a command's help");
  help->group("Commands");
  help->add_option("COMMAND", help_words, "the command, e.g. check or patient put")->option_text("...");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\nRun `" << CommandPath(app) << " --help` for usage.\n";
    return kExitUsage;
  }
  if (help->parsed()) {
    return Help(app, help_words);
  }
  for (const Command& command : commands) {
    if (!command.app->parsed()) {
      continue;
    }
    std::shared_ptr<grpc::Channel> channel;
    if (const int code = OpenChannel(options, &channel); code != kExitClean) {
      return code;
    }
    return command.run(options, channel);
  }
  std::cerr << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
  return kExitUsage;
}

}  // namespace
}  // namespace vigil_client

int main(int argc, char** argv) { return vigil_client::Run(argc, argv); }
