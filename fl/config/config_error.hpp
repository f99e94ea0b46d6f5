// fl/config/config_error.hpp — the error a bad experiment file (or --set option) raises.
#pragma once

#include <stdexcept>

namespace fedvlm {

/// A bad experiment file. what() reads "FILE:LINE:COL: key 'section.key' ...: reason".
class ConfigError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

} // namespace fedvlm
