// support/enum_names.hpp — one table of names per enum, from which printing, parsing and help texts come.
//
// An enum's table lists each value once with its name (and, where a help text needs it, what it
// means); `name_of`, `parse_name`, `names_text` and `names_help` read it, so a new value is one
// row and no switch or hand-written list of choices can fall behind.
#pragma once

#include "support/join.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace fedvlm {

template <class E> struct EnumName {
  E value;
  const char* name;
  const char* meaning = ""; ///< shown in help texts after the name, e.g. "1/K, as the FedVLM equations"
};

template <class E> using EnumNames = std::vector<EnumName<E>>;

/// The name of `value` in `table`; "?" for a value the table lacks (a bug the tests catch).
template <class E> std::string name_of(const EnumNames<E>& table, E value) {
  for (const auto& row : table)
    if (row.value == value) return row.name;
  return "?";
}

/// "a, b or c": the table's names as a sentence lists them.
template <class E> std::string names_text(const EnumNames<E>& table) {
  return join_choices(table, [](const EnumName<E>& row) { return row.name; });
}

/// "a (meaning) | b | c": the choices for a key's help text.
template <class E> std::string names_help(const EnumNames<E>& table) {
  return join_with(table, " | ", [](const EnumName<E>& row) { return named_with_meaning(row.name, row.meaning); });
}

/// The value named `name`. Throws std::invalid_argument "unknown WHAT 'x' (expected a, b or c)".
template <class E> E parse_name(const EnumNames<E>& table, const std::string& name, const std::string& what) {
  for (const auto& row : table)
    if (name == row.name) return row.value;
  throw std::invalid_argument("unknown " + what + " '" + name + "' (expected " + names_text(table) + ")");
}

/// The name of a value of any enum with a table: `enum_names(E)` found next to the enum.
template <class E, class = decltype(enum_names(E{}))> [[nodiscard]] std::string to_string(E value) {
  return name_of(enum_names(E{}), value);
}

} // namespace fedvlm
