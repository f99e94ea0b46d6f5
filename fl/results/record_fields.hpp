// fl/results/record_fields.hpp — the one list of a results record's named fields: JSON keys, CSV columns, reader (run.json's too).
//
// The results writer, the results reader and the CSV header all walk these lists, so a new
// field of ClientRoundRecord or RoundSummary is one line here, not one line in each of them.
// A task's own metrics (exact match, ...) are not fields: they travel by name in
// ClientRoundRecord::task_metrics and become extra keys / columns after the fields.
#pragma once

#include "fl/results/run_records.hpp"

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace fedvlm {

template <class Record>
struct RecordField {
  using Member = std::variant<std::string Record::*, int Record::*, int64_t Record::*, uint64_t Record::*, double Record::*, bool Record::*>;
  const char* name;
  Member member;
  /// Added after the first results format: files written before lack it, and the reader
  /// then keeps the struct's default (NaN for measurements, 0 for counts).
  bool optional = false;
};

/// ClientRoundRecord's fields in struct order (without task_metrics).
[[nodiscard]] const std::vector<RecordField<ClientRoundRecord>>& client_record_field_list();
/// RoundSummary's scalar fields in struct order (aggregation_error_by_layer is a map: JSON only).
[[nodiscard]] const std::vector<RecordField<RoundSummary>>& round_summary_field_list();

/// RunInfo's scalar fields in run.json (the sweep is a map: written and read beside them).
[[nodiscard]] const std::vector<RecordField<RunInfo>>& run_info_field_list();

/// Calls `visit(name, value)` for every field of `record`, value as its typed member.
template <class Record, class Visit>
void for_each_field(const Record& record, const std::vector<RecordField<Record>>& fields, Visit&& visit) {
  for (const auto& f : fields)
    std::visit([&](auto member) { visit(f.name, record.*member); }, f.member);
}

/// True for a name that may be a task metric: lower-case letters, digits and '_', starting
/// with a letter, and not the name of a ClientRoundRecord field (it would shadow it in files).
[[nodiscard]] bool valid_task_metric_name(const std::string& name);

} // namespace fedvlm
