// tests/fl/federation/plan_text_test.cpp — the plan a run prints lists 20 training clients and sums up the rest in a line.
#include "fl/federation/run_setup.hpp"

#include <gtest/gtest.h>

#include <string>

namespace fedvlm {
namespace {

RunSetup setup_of(int clients, int holdout) {
  RunSetup s;
  for (int k = 0; k < clients; ++k) {
    LocalSplit split;
    split.train.assign(static_cast<std::size_t>(10 + k), 0); // 10, 11, ... samples
    split.test.assign(static_cast<std::size_t>(k % 3), 0);
    s.splits.push_back(split);
  }
  for (int k = 0; k < holdout; ++k) s.holdout_splits.push_back(LocalSplit{{1, 2, 3}, {4}});
  return s;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(PlanText, ListsTwentyTrainingClientsAndSumsUpTheRest) {
  ExperimentConfig c;
  c.evaluation.holdout_every = 2;
  const std::string many = describe_plan(c, setup_of(30, 1));
  EXPECT_NE(many.find("               19     29 "), std::string::npos) << many;           // client 19: 29 samples
  EXPECT_EQ(many.find("               20     30 "), std::string::npos) << many;           // not listed
  EXPECT_NE(many.find("... and 10 more clients (ids 20-29): train samples 30-39 (median 35), test samples 0-2"),
            std::string::npos) << many;
  EXPECT_EQ(count(many, "(holdout: never trains"), 1u) << many; // the holdout client is still listed
  EXPECT_NE(many.find("               30      3 "), std::string::npos) << many;
  // 21 clients: a line for one client would say no less than the client itself.
  const std::string few = describe_plan(c, setup_of(21, 0));
  EXPECT_EQ(few.find("more clients"), std::string::npos) << few;
  EXPECT_NE(few.find("               20     30 "), std::string::npos) << few;
}

} // namespace
} // namespace fedvlm
