// fl/results/record_fields.cpp — the field lists of ClientRoundRecord, RoundSummary and RunInfo.
#include "fl/results/record_fields.hpp"

#include <algorithm>

namespace fedvlm {

const std::vector<RecordField<ClientRoundRecord>>& client_record_field_list() {
  using R = ClientRoundRecord;
  static const std::vector<RecordField<R>> fields = {
      {"run", &R::run},
      {"strategy", &R::strategy},
      {"client", &R::client},
      {"round", &R::round},
      {"phase", &R::phase},
      {"accuracy", &R::accuracy},
      {"precision", &R::precision},
      {"recall", &R::recall},
      {"f1", &R::f1},
      {"loss", &R::loss},
      {"train_loss", &R::train_loss},
      {"test_samples", &R::test_samples},
      {"train_samples", &R::train_samples},
      {"bytes_up", &R::bytes_up},
      {"bytes_down", &R::bytes_down},
      {"participated", &R::participated},
      {"round_seconds", &R::round_seconds},
      {"drift", &R::drift, true},
      {"staleness", &R::staleness, true},
  };
  return fields;
}

const std::vector<RecordField<RoundSummary>>& round_summary_field_list() {
  using S = RoundSummary;
  static const std::vector<RecordField<S>> fields = {
      {"run", &S::run},
      {"strategy", &S::strategy},
      {"round", &S::round},
      {"total_rounds", &S::total_rounds},
      {"clients_answered", &S::clients_answered},
      {"clients_selected", &S::clients_selected},
      {"clients_failed", &S::clients_failed, true},
      {"clients_late", &S::clients_late, true},
      {"mean_accuracy", &S::mean_accuracy},
      {"min_accuracy", &S::min_accuracy},
      {"max_accuracy", &S::max_accuracy},
      {"seconds", &S::seconds},
      {"aggregation_error", &S::aggregation_error, true},
      {"epsilon", &S::epsilon, true},
      {"virtual_seconds", &S::virtual_seconds, true},
      {"mean_staleness", &S::mean_staleness, true},
      {"max_staleness", &S::max_staleness, true},
      {"round_virtual_seconds", &S::round_virtual_seconds, true},
      {"cumulative_bytes", &S::cumulative_bytes, true},
      {"global_accuracy", &S::global_accuracy, true},
      {"global_loss", &S::global_loss, true},
      {"wire_bytes_sent", &S::wire_bytes_sent, true},
      {"wire_bytes_received", &S::wire_bytes_received, true},
      {"p10_accuracy", &S::p10_accuracy, true},
      {"target_accuracy", &S::target_accuracy, true},
      {"global_rounds_to_target", &S::global_rounds_to_target, true},
      {"mean_rounds_to_target", &S::mean_rounds_to_target, true},
      {"virtual_seconds_to_target", &S::virtual_seconds_to_target, true},
      {"bytes_to_target", &S::bytes_to_target, true},
      {"holdout_accuracy", &S::holdout_accuracy, true},
      {"holdout_adapted_accuracy", &S::holdout_adapted_accuracy, true},
  };
  return fields;
}

const std::vector<RecordField<RunInfo>>& run_info_field_list() {
  using I = RunInfo;
  static const std::vector<RecordField<I>> fields = {
      {"experiment", &I::experiment},
      {"run", &I::run},
      {"strategy", &I::strategy},
      {"clients", &I::clients},
      {"rounds", &I::rounds},
      {"seed", &I::seed},
      {"resumed_from_round", &I::resumed_from_round, true},
  };
  return fields;
}

bool valid_task_metric_name(const std::string& name) {
  if (name.empty() || name.front() < 'a' || name.front() > 'z') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  const auto& fields = client_record_field_list();
  return std::none_of(fields.begin(), fields.end(), [&](const auto& f) { return name == f.name; });
}

} // namespace fedvlm
