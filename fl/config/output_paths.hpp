// fl/config/output_paths.hpp — check, before any work, that a run's results and caches can be written.
//
// A results directory that turns out to be a file, or a cache directory nobody may write, used
// to surface as raw filesystem text after minutes of data loading or pretraining. These checks
// run first and name the experiment key at fault.
#pragma once

#include "fl/config/experiment_config.hpp"

#include <filesystem>
#include <string>

namespace fedvlm {

/// Where pretrained checkpoints are cached: pretrain.cache_dir, relative to output_dir unless
/// absolute.
[[nodiscard]] std::filesystem::path resolved_cache_dir(const ExperimentConfig& c);

/// Creates `dir` (and its parents) when absent, then checks that it is a directory in which
/// this process can create a file (by creating and removing one: permission bits say nothing
/// for root, read-only mounts or pseudo file systems). Throws ConfigError
/// "KEY: 'PATH' ...: REASON" naming `key`, the path and the OS reason.
void check_writable_dir(const std::filesystem::path& dir, const std::string& key);

/// check_writable_dir for output_dir and, when pretraining is on, the resolved pretrain.cache_dir.
void check_output_paths(const ExperimentConfig& c);

} // namespace fedvlm
