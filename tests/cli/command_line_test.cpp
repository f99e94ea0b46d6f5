// The option table: each flag is accepted by exactly the commands its row names, with one rule
// for its value wherever it is taken, and `fedvlm-sim --help` documents every row.
#include "cli/command_line.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

using namespace fedvlm::cli;

namespace {

const std::vector<Command> kCommands = {Command::run, Command::resume, Command::serve, Command::node};

/// A value each row accepts.
std::string good_value(const OptionRow& row) {
  const std::string flag = row.flag;
  if (flag == "--listen" || flag == "--connect") return "127.0.0.1:4243";
  if (flag == "--nodes" || flag == "--slots") return "1";
  if (flag == "--wait") return "5";
  if (flag == "--set") return "federation.rounds=3";
  return "x";
}

/// The smallest valid command line of `c` with `extra` added.
std::vector<std::string> with(Command c, std::vector<std::string> extra) {
  std::vector<std::string> args;
  if (c == Command::node) args = {"--connect", "127.0.0.1:1"};
  else args = {"exp.toml"};
  // --force and --restart-missing-clients go with --resume where a command takes it.
  const bool needs_resume = std::find(extra.begin(), extra.end(), "--force") != extra.end() ||
                            std::find(extra.begin(), extra.end(), "--restart-missing-clients") != extra.end();
  if (needs_resume && (c == Command::run || c == Command::serve)) args.push_back("--resume");
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::string help_text() {
  std::string out;
  FILE* pipe = ::popen((std::string(FEDVLM_CLI) + " --help").c_str(), "r");
  char buf[4096];
  std::size_t n = 0;
  while (pipe != nullptr && (n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  if (pipe != nullptr) ::pclose(pipe);
  return out;
}

} // namespace

TEST(CommandLine, EachFlagIsTakenByTheCommandsOfItsRowOnly) {
  for (const auto& row : option_rows()) {
    for (Command c : kCommands) {
      std::vector<std::string> extra = {row.flag};
      if (row.value != nullptr) extra.push_back(good_value(row));
      const bool takes = std::find(row.commands.begin(), row.commands.end(), c) != row.commands.end();
      const auto args = with(c, extra);
      if (takes) {
        EXPECT_NO_THROW((void)parse_command_line(c, args)) << row.flag;
      } else {
        try {
          (void)parse_command_line(c, args);
          ADD_FAILURE() << row.flag << " must be refused by a command its row does not name";
        } catch (const UsageError& e) {
          EXPECT_NE(std::string(e.what()).find(row.flag), std::string::npos) << e.what();
        }
      }
    }
  }
}

TEST(CommandLine, WaitHasOneRuleForServeAndNode) {
  for (Command c : {Command::serve, Command::node}) {
    EXPECT_DOUBLE_EQ(parse_command_line(c, with(c, {"--wait", "0.5"})).wait_seconds, 0.5);
    for (const char* bad : {"0", "-1", "nan", "1e10", "soon"}) {
      try {
        (void)parse_command_line(c, with(c, {"--wait", bad}));
        ADD_FAILURE() << "--wait " << bad << " must be refused";
      } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("expected seconds > 0 and at most a year"), std::string::npos) << e.what();
      }
    }
  }
  // Defaults: a server waits 120 s for its nodes, a node 60 s for its server.
  EXPECT_DOUBLE_EQ(parse_command_line(Command::serve, with(Command::serve, {})).options.serve->wait_seconds, 120);
  EXPECT_DOUBLE_EQ(parse_command_line(Command::node, with(Command::node, {})).wait_seconds, 60);
}

TEST(CommandLine, ValuesLandWhereTheRunReadsThem) {
  const CommandLine l = parse_command_line(
      Command::serve, {"exp.toml", "--listen", "127.0.0.1:5000", "--nodes", "3", "--wait", "9", "--only", "a", "--set",
                       "seed=4", "--strict", "-q", "--output-dir", "out dir"});
  EXPECT_EQ(l.target, "exp.toml");
  EXPECT_EQ(l.options.serve->host, "127.0.0.1");
  EXPECT_EQ(l.options.serve->port, 5000);
  EXPECT_EQ(l.options.serve->nodes, 3);
  EXPECT_DOUBLE_EQ(l.options.serve->wait_seconds, 9);
  EXPECT_EQ(l.options.only, (std::vector<std::string>{"a"}));
  EXPECT_EQ(l.overrides, (std::vector<std::string>{"seed=4", "strict=true", "output_dir=\"out dir\""}));
  EXPECT_TRUE(l.quiet);
  EXPECT_THROW((void)parse_command_line(Command::run, {"a.toml", "b.toml"}), UsageError);
  EXPECT_THROW((void)parse_command_line(Command::run, {"a.toml", "--force"}), UsageError); // needs --resume
  EXPECT_THROW((void)parse_command_line(Command::node, {}), UsageError);                    // needs --connect
  EXPECT_THROW((void)parse_command_line(Command::run, {"a.toml", "--set"}), UsageError);    // needs its value
}

TEST(CommandLine, HelpDocumentsEveryFlag) {
  const std::string help = help_text();
  ASSERT_FALSE(help.empty()) << "no --help output from " << FEDVLM_CLI;
  for (const auto& row : option_rows()) EXPECT_NE(help.find(row.flag), std::string::npos) << row.flag;
}
