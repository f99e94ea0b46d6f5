// tests/monitoring/metric_families_test.cpp — the family table is what is registered and what monitoring/README.md documents.
#include "monitoring/metric_families.hpp"
#include "monitoring/prometheus_exporter.hpp"
#include "tests/prometheus_harness.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>

namespace fedvlm {
namespace {

// The exporter registers every row with its type and help, and nothing else. (A family shows
// in the text only once it has a series: a synthetic run gives every one of them one.)
TEST(MetricFamilies, EveryRowIsRegisteredWithItsTypeAndHelp) {
  PrometheusExporter exporter(PrometheusSettings{});
  testing::feed_synthetic_run(exporter);
  const std::string text = exporter.metrics_text();
  std::map<std::string, std::string> types, helps;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      const auto sp = line.find(' ', 7);
      types[line.substr(7, sp - 7)] = line.substr(sp + 1);
    } else if (line.rfind("# HELP ", 0) == 0) {
      const auto sp = line.find(' ', 7);
      helps[line.substr(7, sp - 7)] = line.substr(sp + 1);
    }
  }
  std::set<std::string> names;
  for (const MetricFamily& f : metric_families()) {
    EXPECT_TRUE(names.insert(f.name).second) << f.name << " is declared twice";
    ASSERT_TRUE(types.count(f.name)) << f.name << " is declared but not registered";
    EXPECT_EQ(types[f.name], to_string(f.kind)) << f.name;
    EXPECT_EQ(helps[f.name], f.help) << f.name;
    EXPECT_EQ(std::string(f.name).rfind("fedvlm_", 0), 0u) << f.name;
  }
  EXPECT_EQ(types.size(), names.size()) << "a family is registered outside the table";
  EXPECT_EQ(names.size(), kMetricCount);
}

// monitoring/README.md shows exactly the table: a family added to the table without its
// documentation (or documented and removed) fails here.
TEST(MetricFamilies, TheReadmeTableIsTheTable) {
  const std::string readme = testing::read_text_file(std::string(FEDVLM_SOURCE_DIR) + "/monitoring/README.md");
  const std::string begin = "<!-- metric families:";
  const std::string end = "<!-- end of metric families -->";
  const auto b = readme.find(begin);
  const auto e = readme.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  const auto table = readme.find('\n', b) + 1;
  EXPECT_EQ(readme.substr(table, e - table), metric_families_markdown())
      << "monitoring/README.md's metric table differs from monitoring/metric_families.cpp; paste this:\n"
      << metric_families_markdown();
}

} // namespace
} // namespace fedvlm
