// actors/message_types.cpp — registers the message list with CAF's type registry.
#include "actors/message_types.hpp"

#include <caf/actor_system_config.hpp>

namespace fedvlm {

void register_message_types(caf::actor_system_config& cfg) {
  for_each_message_type([&cfg](auto tag, const char* name) {
    cfg.add_message_type<typename decltype(tag)::type>(name);
  });
}

} // namespace fedvlm
