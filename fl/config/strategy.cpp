// fl/config/strategy.cpp — the strategy table: pLoRA, FLoRA (FedIT), FFA-LoRA, FedSA-LoRA, RoLoRA, FedEx-LoRA, stacking, FlexLoRA, HetLoRA, local, centralized.
#include "fl/config/strategy.hpp"
#include "model/name_affixes.hpp"

#include "model/lora.hpp"

#include <array>
#include <stdexcept>

namespace fedvlm {

namespace {

// clang-format off
const std::array<StrategySpec, 13> kStrategies = {{
  //  kind                     name          summary                                                          trainA trainB shareA shareB commonA central
  {StrategyKind::plora,       "plora",      "pLoRA (FedVLM): A private per client, B averaged",               true,  true,  false, true,  false,  false},
  {StrategyKind::flora,       "flora",      "FLoRA / FedIT: FedAvg of both A and B",                          true,  true,  true,  true,  true,   false},
  {StrategyKind::ffa_lora,    "ffa_lora",   "FFA-LoRA: A frozen at a shared init, only B trained and averaged", false, true,  false, true,  true,   false},
  {StrategyKind::fedsa_lora,  "fedsa_lora", "FedSA-LoRA: A averaged, B private (the mirror of pLoRA)",        true,  true,  true,  false, true,   false},
  {StrategyKind::local,       "local",      "local only: no aggregation",                                      true,  true,  false, false, false,  false},
  {StrategyKind::centralized, "centralized","centralized LoRA on the union of client data",                    true,  true,  true,  true,  true,   true},
  {StrategyKind::rolora,      "rolora",     "RoLoRA: rounds alternate, B trained and averaged, then A (exact)",  true,  true,  true,  true,  true,   false, true},
  //                                                                                                  trainA trainB shareA shareB commonA central altern. rule                      fresh
  {StrategyKind::fedex_lora,  "fedex_lora", "FedEx-LoRA: FedIT plus the exact residual, folded into each client's weight", true, true, true, true, true, false, false, AggregationRule::fedex,    false},
  {StrategyKind::stacking,    "stacking",   "stacking (FLoRA, Wang et al.): factors stacked, exact product merged, fresh adapters", true, true, true, true, false, false, false, AggregationRule::stack,  true},
  {StrategyKind::flexlora,    "flexlora",   "FlexLoRA: the mean product SVD-truncated to each client's rank",  true,  true,  true,  true,  true,   false, false, AggregationRule::flexlora, false},
  {StrategyKind::hetlora,     "hetlora",    "HetLoRA: zero-padded to the largest rank, averaged, truncated per client", true, true, true, true, true, false, false, AggregationRule::hetlora, false},
  //                                                                                                  trainA trainB shareA shareB commonA central altern. rule                    fresh  trainBase shareBase
  {StrategyKind::full,        "full",       "FedFFT: full fine-tuning of the trained modules' weights, FedAvg of them (no LoRA)", false, false, false, false, false, false, false, AggregationRule::average, false, true, true},
  //                                                                                                  trainA trainB shareA shareB commonA central altern. rule                    fresh  trainBase shareBase trainHead shareHead
  {StrategyKind::linear_probe, "linear_probe", "FedLC: a linear classifier on the frozen features, FedAvg-averaged", false, false, false, false, false, false, false, AggregationRule::average, false, false, false, true, true},
}};
// clang-format on

} // namespace

const StrategySpec& strategy_spec(StrategyKind kind) {
  for (const auto& s : kStrategies)
    if (s.kind == kind) return s;
  throw std::logic_error("strategy_spec: unknown strategy kind");
}

StrategySpec spec_in_round(const StrategySpec& spec, int round) {
  if (!spec.alternating) return spec;
  StrategySpec s = spec;
  const bool b_round = round % 2 == 1;
  s.train_a = s.share_a = !b_round;
  s.train_b = s.share_b = b_round;
  return s;
}

bool supports_client_ranks(const StrategySpec& spec) {
  return spec.kind == StrategyKind::local || spec.rule == AggregationRule::stack || spec.rule == AggregationRule::flexlora ||
         spec.rule == AggregationRule::hetlora;
}

std::vector<std::string> strategy_names() {
  std::vector<std::string> names;
  for (const auto& s : kStrategies) names.emplace_back(s.name);
  return names;
}

const EnumNames<StrategyKind>& enum_names(StrategyKind) {
  static const EnumNames<StrategyKind> names = [] {
    EnumNames<StrategyKind> out;
    for (const auto& s : kStrategies) out.push_back({s.kind, s.name});
    return out;
  }();
  return names;
}

StrategyKind strategy_from_string(const std::string& name) {
  return parse_name(enum_names(StrategyKind{}), name, "strategy");
}

TensorKind tensor_kind(const std::string& name) {
  if (name == kProbeWeight || name == kProbeBias) return TensorKind::head;
  if (ends_with(name, kLoraA)) return TensorKind::lora_a;
  if (ends_with(name, kLoraB)) return TensorKind::lora_b;
  if (ends_with(name, kLoraDelta)) return TensorKind::lora_delta;
  const auto dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == name.size()) return TensorKind::unknown;
  if (name.find(".lora_") != std::string::npos) return TensorKind::unknown;
  return TensorKind::base;
}

bool shares_anything(const StrategySpec& spec) { return spec.share_a || spec.share_b || spec.share_base || spec.share_head; }

bool is_trainable(const StrategySpec& spec, const std::string& tensor_name) {
  switch (tensor_kind(tensor_name)) {
  case TensorKind::lora_a: return spec.train_a;
  case TensorKind::lora_b: return spec.train_b;
  case TensorKind::base: return spec.train_base;
  case TensorKind::head: return spec.train_head;
  default: return false;
  }
}

bool is_shared(const StrategySpec& spec, const std::string& tensor_name) {
  switch (tensor_kind(tensor_name)) {
  case TensorKind::lora_a: return spec.share_a;
  case TensorKind::lora_b: return spec.share_b;
  case TensorKind::base: return spec.share_base;
  case TensorKind::head: return spec.share_head;
  default: return false;
  }
}

TensorMap shared_part(const StrategySpec& spec, const TensorMap& adapters) {
  TensorMap out;
  for (const auto& [name, t] : adapters)
    if (is_shared(spec, name)) out.emplace(name, t);
  return out;
}

} // namespace fedvlm
