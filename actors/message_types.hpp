// actors/message_types.hpp — the one list of message types that cross a process boundary.
//
// Registration (register_message_types) and its test both walk this list, so a new message is
// one line here and is registered and round-trip tested at once.
#pragma once

#include "actors/cluster_protocol.hpp"
#include "actors/messages.hpp"

#include <caf/fwd.hpp>

namespace fedvlm {

/// A type in the list, passed by value to a visitor (it carries no data).
template <class T>
struct message_type_tag {
  using type = T;
};

/// Calls visit(message_type_tag<T>{}, "fedvlm::T") for every message type, in a fixed order.
template <class Visitor>
void for_each_message_type(Visitor&& visit) {
  visit(message_type_tag<GlobalDown>{}, "fedvlm::GlobalDown");
  visit(message_type_tag<ClientUpdate>{}, "fedvlm::ClientUpdate");
  visit(message_type_tag<ClientEval>{}, "fedvlm::ClientEval");
  visit(message_type_tag<TrainJobMsg>{}, "fedvlm::TrainJobMsg");
  visit(message_type_tag<TrainDoneMsg>{}, "fedvlm::TrainDoneMsg");
  visit(message_type_tag<TrainGroupMsg>{}, "fedvlm::TrainGroupMsg");
  visit(message_type_tag<TrainGroupDoneMsg>{}, "fedvlm::TrainGroupDoneMsg");
  visit(message_type_tag<EvalJobMsg>{}, "fedvlm::EvalJobMsg");
  visit(message_type_tag<EvalResult>{}, "fedvlm::EvalResult");
  visit(message_type_tag<NewcomerJob>{}, "fedvlm::NewcomerJob");
  visit(message_type_tag<NewcomerScore>{}, "fedvlm::NewcomerScore");
  visit(message_type_tag<RunDone>{}, "fedvlm::RunDone");
  visit(message_type_tag<AdapterSnapshot>{}, "fedvlm::AdapterSnapshot");
  visit(message_type_tag<NodeAssignment>{}, "fedvlm::NodeAssignment");
  visit(message_type_tag<NodeReady>{}, "fedvlm::NodeReady");
  visit(message_type_tag<SetupFingerprint>{}, "fedvlm::SetupFingerprint");
  visit(message_type_tag<NodeSchedulerStats>{}, "fedvlm::NodeSchedulerStats");
}

/// Names every type of for_each_message_type in `cfg` (add_message_type), as CAF needs for a
/// type to cross a process boundary. Call before constructing the actor system.
void register_message_types(caf::actor_system_config& cfg);

} // namespace fedvlm
