// fl/config/experiment_checks.hpp — the checks across keys that ranges alone cannot make, and the "has no effect" warnings.
//
// Internal to fl/config. Single keys are checked against their range as they are read
// (fl/config/experiment_schema); what is here relates keys to each other and to the tables.
#pragma once

#include "fl/config/experiment_schema.hpp"

#include <map>
#include <string>

namespace fedvlm::config_detail {

/// Where each key of a run was written: the file position, or the --set option.
using KeyPlaces = std::map<std::string, Where>;

/// Why `s` cannot be one directory name under output_dir ("" when it can): the run name and
/// the sweep labels become OUTPUT_DIR/NAME/LABEL, which must stay inside OUTPUT_DIR.
[[nodiscard]] std::string dir_name_problem(const std::string& s);

/// Checks across keys, and fills what depends on others (defaults per model or dataset, the
/// partition's client count and seed). Throws ConfigError naming the key at fault.
void validate(ExperimentConfig& c, const KeyPlaces& where, const std::string& file);

/// A key that does nothing in some run: the message, and in how many of the plan's runs.
struct NoEffect {
  std::string message;
  std::size_t runs = 0;
};

/// Keys set (to other than their default) where they do nothing in run `c`: "key X has no
/// effect because Y", counted per key into `found`. Runs on the validated config, so every
/// condition reads settled values.
void check_keys_have_effect(const ExperimentConfig& c, const KeyPlaces& where, std::map<std::string, NoEffect>& found);

} // namespace fedvlm::config_detail
