// actors/messages.cpp — the message types' names for CAF's type registry.
#include "actors/messages.hpp"

#include "actors/cluster.hpp"

#include <caf/actor_system_config.hpp>

namespace fedvlm {

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<GlobalDown>("fedvlm::GlobalDown")
      .add_message_type<ClientUpdate>("fedvlm::ClientUpdate")
      .add_message_type<ClientEval>("fedvlm::ClientEval")
      .add_message_type<TrainJobMsg>("fedvlm::TrainJobMsg")
      .add_message_type<TrainDoneMsg>("fedvlm::TrainDoneMsg")
      .add_message_type<TrainGroupMsg>("fedvlm::TrainGroupMsg")
      .add_message_type<TrainGroupDoneMsg>("fedvlm::TrainGroupDoneMsg")
      .add_message_type<EvalJobMsg>("fedvlm::EvalJobMsg")
      .add_message_type<EvalResult>("fedvlm::EvalResult")
      .add_message_type<RunDone>("fedvlm::RunDone")
      .add_message_type<AdapterSnapshot>("fedvlm::AdapterSnapshot")
      .add_message_type<NodeAssignment>("fedvlm::NodeAssignment")
      .add_message_type<NodeReady>("fedvlm::NodeReady")
      .add_message_type<SetupFingerprint>("fedvlm::SetupFingerprint")
      .add_message_type<NodeSchedulerStats>("fedvlm::NodeSchedulerStats");
}

} // namespace fedvlm
