// fl/config/experiment_toml.hpp — read an experiment TOML file into validated ExperimentConfigs.
//
// A scalar key written as an array is a sweep axis: `clients = [2, 4, 6, 8]` under
// [federation] yields four runs; several axes yield their full grid, in file order.
#pragma once

#include "fl/config/config_error.hpp"
#include "fl/config/experiment_config.hpp"

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fedvlm {

/// The most runs one experiment file may expand to (the product of its sweep axes' lengths).
inline constexpr std::size_t kMaxSweepRuns = 10000;


struct ExperimentPlan {
  std::vector<ExperimentConfig> runs;   ///< one per sweep point, in grid order
  std::vector<std::string> sweep_keys;  ///< the swept keys, e.g. {"federation.clients"}
  /// "FILE:LINE:COL: key 'X' has no effect because ...", once per key (and run, in a sweep),
  /// for keys set to a value other than their default where they do nothing; the caller shows
  /// them. With `strict = true` the first of them is a ConfigError instead.
  std::vector<std::string> warnings;
};

/// Parses and validates `file`. Throws ConfigError, also for a directory and for a file that
/// sets nothing (empty, blank or comments only: most likely the wrong file).
///
/// `overrides` are `--set` options, "KEY=VALUE" each, applied in order over the file's keys
/// before validation: VALUE is a TOML value (a bare word that is no TOML value is taken as a
/// string), checked exactly like the same key in the file; an array makes a sweep axis. Their
/// errors name "--set KEY=VALUE" where the file's name FILE:LINE:COL.
[[nodiscard]] ExperimentPlan load_experiment(const std::filesystem::path& file,
                                             const std::vector<std::string>& overrides = {});
/// The same from text; `source_name` is used in messages. Empty text gives the defaults.
[[nodiscard]] ExperimentPlan parse_experiment(std::string_view text,
                                              const std::filesystem::path& source_name,
                                              const std::vector<std::string>& overrides = {});

/// The "KEY=VALUE" override that sets `key` to the string `value` exactly (TOML-quoted), for
/// options such as --output-dir DIR.
[[nodiscard]] std::string string_override(const std::string& key, const std::string& value);

/// Every key with its type, default and meaning, for `--help` and the README.
[[nodiscard]] std::string describe_experiment_keys();

/// Every key at its default, as a run's resolved config.toml writes it: what a key that a run
/// written by an older version lacks meant (resume reads it so).
[[nodiscard]] std::string default_resolved_toml();

} // namespace fedvlm
