// fl/data/dataset_table.cpp — the datasets fedvlm-sim reads, one row each.
#include "fl/data/dataset_table.hpp"
#include "fl/data/image_dataset.hpp"
#include "support/join.hpp"

#include <stdexcept>

namespace fedvlm {

const std::vector<DatasetRow>& dataset_rows() {
  static const std::vector<DatasetRow> rows = {
      //  name            vqa    generated  default path                           train   loader
      {"fashion_mnist", false, false, "/usr/share/datasets/fashion-mnist", 60000, load_fashion_mnist, ""},
      {"mnist", false, false, "/usr/share/datasets/mnist", 60000, load_mnist, ""},
      {"cifar10", false, false, "", 50000, load_cifar10, "binary version"},
      {"vqa_folder", true, false, "", 0, nullptr, "metadata.jsonl + images"},
      {"synthetic_vqa", true, true, "", 0, nullptr, "generated from the seed"},
  };
  return rows;
}

const DatasetRow* find_dataset(const std::string& name) {
  for (const auto& row : dataset_rows())
    if (name == row.name) return &row;
  return nullptr;
}

std::string dataset_names_text() {
  return join_choices(dataset_rows(), [](const DatasetRow& row) { return row.name; });
}

const DatasetRow& dataset_row(const std::string& name) {
  if (const DatasetRow* row = find_dataset(name)) return *row;
  throw std::invalid_argument("expected " + dataset_names_text() + ", got \"" + name + "\"");
}

std::string dataset_help() {
  return join_with(dataset_rows(), " | ", [](const DatasetRow& row) { return named_with_meaning(row.name, row.summary); });
}

} // namespace fedvlm
