// fl/results/config_diff.hpp — which keys of two resolved configurations differ, for resuming safely.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace fedvlm {

/// Every key of a TOML text, flattened ("federation.rounds") → its value as TOML text.
/// Comments and formatting do not matter. Throws std::runtime_error naming `origin` on bad TOML.
[[nodiscard]] std::map<std::string, std::string> config_values(std::string_view toml_text, const std::string& origin);

/// "federation.rounds: 5 -> 10", one per key that differs (or exists on one side only), sorted.
[[nodiscard]] std::vector<std::string> config_differences(const std::map<std::string, std::string>& before,
                                                          const std::map<std::string, std::string>& after);

/// The differences (as config_differences) in keys that decide what a run's saved state means:
/// the strategy, model, data, partition, LoRA shape, pretraining, seed and client count. Such a
/// change makes a checkpoint another run's, so `--force` (for extending runs) may not accept it.
/// Keys that only say where files are (data.path, model.weights, ...) are not among them.
[[nodiscard]] std::vector<std::string> state_meaning_differences(const std::map<std::string, std::string>& before,
                                                                 const std::map<std::string, std::string>& after);

/// A hash of the key/value listing: equal for configurations that differ only in comments or
/// layout, different as soon as one value does.
[[nodiscard]] uint64_t config_fingerprint(const std::map<std::string, std::string>& values);

} // namespace fedvlm
