// fl/config/device_trace.hpp — reads a device trace: each device's compute speed, links and availability windows.
//
// The format (README "Deployment realism"): a CSV with the header
// `client,speed_factor,down_mbps,up_mbps,latency_s,available`, `#` comments, one row per
// device numbered 0, 1, ...; `available` is `*` (always) or space-separated windows `start-end`
// in simulated seconds, ascending and disjoint. Client k of a run takes device k mod rows.
#pragma once

#include "fl/config/experiment_config.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace fedvlm {

/// Parses trace text; `name` names it in errors ("file:line: what was expected"). Throws
/// std::invalid_argument.
[[nodiscard]] std::vector<DeviceProfile> parse_device_trace(const std::string& text, const std::string& name);

/// Reads and parses `file`. Throws std::invalid_argument (also when it cannot be read).
[[nodiscard]] std::vector<DeviceProfile> read_device_trace(const std::filesystem::path& file);

} // namespace fedvlm
