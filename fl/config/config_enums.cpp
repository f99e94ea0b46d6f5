// fl/config/config_enums.cpp — the names of the experiment's enums, each written once.
//
// Printing (`to_string`), parsing the TOML keys and their help texts all read these tables; the
// meanings appear in `fedvlm-sim --keys`.
#include "fl/config/experiment_config.hpp"

namespace fedvlm {

const EnumNames<OptimizerKind>& enum_names(OptimizerKind) {
  static const EnumNames<OptimizerKind> names = {
      {OptimizerKind::sgd, "sgd"},
      {OptimizerKind::adam, "adam"},
      {OptimizerKind::adamw, "adamw"},
  };
  return names;
}

const EnumNames<Weighting>& enum_names(Weighting) {
  static const EnumNames<Weighting> names = {
      {Weighting::samples, "samples", "FedAvg by sample count"},
      {Weighting::uniform, "uniform", "1/K, as the FedVLM equations"},
  };
  return names;
}

const EnumNames<CompressionKind>& enum_names(CompressionKind) {
  static const EnumNames<CompressionKind> names = {
      {CompressionKind::none, "none"},
      {CompressionKind::float16, "float16"},
      {CompressionKind::int8, "int8", "one scale per tensor"},
      {CompressionKind::int8_row, "int8_row", "a scale per row"},
      {CompressionKind::topk, "topk", "the largest entries of the update"},
  };
  return names;
}

const EnumNames<FederationMode>& enum_names(FederationMode) {
  static const EnumNames<FederationMode> names = {
      {FederationMode::sync, "sync", "rounds"},
      {FederationMode::async, "async", "FedBuff: buffered asynchronous aggregation on a virtual clock"},
  };
  return names;
}

const EnumNames<StalenessRule>& enum_names(StalenessRule) {
  static const EnumNames<StalenessRule> names = {
      {StalenessRule::inverse_sqrt, "inverse_sqrt", "1/sqrt(1+s)"},
      {StalenessRule::constant, "constant", "1"},
      {StalenessRule::polynomial, "polynomial", "1/(1+s)^a"},
  };
  return names;
}

const EnumNames<DelayDistribution>& enum_names(DelayDistribution) {
  static const EnumNames<DelayDistribution> names = {
      {DelayDistribution::fixed, "fixed", "exactly slow_seconds"},
      {DelayDistribution::exponential, "exponential", "mean slow_seconds"},
      {DelayDistribution::lognormal, "lognormal", "mean slow_seconds"},
  };
  return names;
}

const EnumNames<PrivacyMode>& enum_names(PrivacyMode) {
  static const EnumNames<PrivacyMode> names = {
      {PrivacyMode::central, "central", "noise once on the average: std sigma C / K"},
      {PrivacyMode::local, "local", "noise on every update"},
  };
  return names;
}

} // namespace fedvlm
