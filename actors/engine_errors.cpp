// actors/engine_errors.cpp — building and reading the engine's CAF errors.
#include "actors/engine_errors.hpp"

#include <caf/deep_to_string.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>
#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>

namespace fedvlm {

caf::error make_engine_error(EngineErrc code, const std::string& message) {
  return caf::error(static_cast<uint8_t>(code), kEngineErrorCategory, caf::make_message(message));
}

uint8_t engine_error_code(const caf::error& err) {
  return err && err.category() == kEngineErrorCategory ? err.code() : 0;
}

std::string describe_error(const caf::error& err) {
  if (engine_error_code(err) && err.context().match_elements<std::string>())
    return err.context().get_as<std::string>(0);
  std::string out;
  if (err.category() == caf::atom("system")) out = caf::to_string(static_cast<caf::sec>(err.code()));
  else if (err.category() == caf::atom("exit")) out = "exit: " + caf::to_string(static_cast<caf::exit_reason>(err.code()));
  else out = caf::to_string(err.category()) + " error " + std::to_string(err.code());
  if (!err.context().empty()) out += ": " + caf::deep_to_string(err.context());
  return out;
}

bool stops_the_run(const caf::error& err) {
  const uint8_t code = engine_error_code(err);
  return code == static_cast<uint8_t>(EngineErrc::non_finite_loss) || code == static_cast<uint8_t>(EngineErrc::job_failed) ||
         code == static_cast<uint8_t>(EngineErrc::interrupted);
}

bool is_request_timeout(const caf::error& err) {
  return err.category() == caf::atom("system") && err.code() == static_cast<uint8_t>(caf::sec::request_timeout);
}

} // namespace fedvlm
