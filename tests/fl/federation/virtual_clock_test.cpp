// tests/fl/federation/virtual_clock_test.cpp — the virtual clock on known inputs: transfers, traces, availability, selection, a round's deadline and overcommit.
#include "fl/federation/virtual_clock.hpp"

#include "fl/config/device_trace.hpp"
#include "fl/federation/round.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace {

using namespace fedvlm;

TEST(VirtualClock, TransfersTakeLatencyPlusBytesOverBandwidth) {
  NetworkSettings n;
  n.down_mbps = 8;   // 1e6 bytes/s
  n.up_mbps = 1;     // 125000 bytes/s
  n.latency_s = 0.1;
  FederationSettings f;
  f.client_seconds = 2;
  const ClientClock clock(f, n, /*local_epochs=*/1, FaultSettings{}, 1, {10, 10});
  EXPECT_DOUBLE_EQ(clock.transfer_seconds(0, 2'000'000, 250'000), 0.1 + 2.0 + 0.1 + 2.0);
  EXPECT_DOUBLE_EQ(clock.job_seconds(1, 3, 2'000'000, 250'000), 2.0 + 4.2);
  // Unlimited links (the default): transfers take nothing, a job is its compute alone.
  const ClientClock free(f, NetworkSettings{}, 1, FaultSettings{}, 1, {10, 10});
  EXPECT_EQ(free.job_seconds(0, 1, 1 << 30, 1 << 30), free.compute_seconds(0, 1));
}

TEST(VirtualClock, BandwidthFactorsLastPerClientAndComeFromTheSeed) {
  NetworkSettings n;
  n.down_mbps = 8;
  n.up_mbps = 8;
  n.bandwidth_sigma = 1.0;
  const ClientClock a(FederationSettings{}, n, 1, FaultSettings{}, 5, {1, 1, 1, 1});
  const ClientClock b(FederationSettings{}, n, 1, FaultSettings{}, 5, {1, 1, 1, 1});
  EXPECT_NE(a.link(0).down_bytes_per_s, a.link(1).down_bytes_per_s);
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(a.link(k).down_bytes_per_s, b.link(k).down_bytes_per_s);
    EXPECT_EQ(a.link(k).down_bytes_per_s, a.link(k).up_bytes_per_s); // one factor for both directions
    EXPECT_EQ(a.speed_factor(k), 1.0); // speed_sigma 0: equal devices
  }
}

const char* const kTrace = "# two devices\n"
                           "client,speed_factor,down_mbps,up_mbps,latency_s,available\n"
                           "0, 2.0, 16, 4, 0.05, *\n"
                           "1, 0.5, 0, 0, 0, 100-200 300-400\n";

TEST(VirtualClock, ATraceGivesEachClientItsDeviceRowKModRows) {
  NetworkSettings n;
  n.devices = parse_device_trace(kTrace, "t.csv");
  n.trace_period_s = 1000;
  FederationSettings f;
  f.client_seconds = 10;
  const ClientClock clock(f, n, 1, FaultSettings{}, 1, {5, 5, 5});
  EXPECT_EQ(clock.speed_factor(0), 2.0);
  EXPECT_EQ(clock.speed_factor(1), 0.5);
  EXPECT_EQ(clock.speed_factor(2), 2.0); // client 2 takes device 0
  EXPECT_DOUBLE_EQ(clock.compute_seconds(0, 1), 20.0);
  EXPECT_DOUBLE_EQ(clock.link(0).down_bytes_per_s, 2e6);
  EXPECT_DOUBLE_EQ(clock.link(0).up_bytes_per_s, 5e5);
  EXPECT_TRUE(clock.available(0, 0, 1e9));
  EXPECT_FALSE(clock.available(1, 50, 50));
  EXPECT_TRUE(clock.available(1, 100, 199));
  EXPECT_FALSE(clock.available(1, 150, 250)); // goes offline at 200
  EXPECT_TRUE(clock.available(1, 1350, 1390)); // the windows repeat every 1000 s
  EXPECT_FALSE(clock.available(1, 1250, 1250));
}

TEST(DeviceTrace, ErrorsNameTheFileLineAndWhatWasExpected) {
  auto message = [](const std::string& text) {
    try {
      (void)parse_device_trace(text, "t.csv");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::string header = "client,speed_factor,down_mbps,up_mbps,latency_s,available\n";
  EXPECT_NE(message("client,speed\n0,1\n").find("t.csv:1: expected the header"), std::string::npos);
  EXPECT_NE(message(header + "0,1,1,1,0\n").find("t.csv:2: expected 6 columns"), std::string::npos);
  EXPECT_NE(message(header + "1,1,1,1,0,*\n").find("t.csv:2: column client: expected 0"), std::string::npos);
  EXPECT_NE(message(header + "0,0,1,1,0,*\n").find("column speed_factor: expected a positive number"), std::string::npos);
  EXPECT_NE(message(header + "0,1,-1,1,0,*\n").find("column down_mbps"), std::string::npos);
  EXPECT_NE(message(header + "0,1,1,1,0,5-3\n").find("must end after it starts"), std::string::npos);
  EXPECT_NE(message(header + "0,1,1,1,0,0-10 5-20\n").find("ascending and disjoint"), std::string::npos);
  EXPECT_NE(message(header).find("no devices"), std::string::npos);
  EXPECT_EQ(message(header + "0,1,1,1,0,0-10 10-20\n"), "accepted");
}

TEST(VirtualClock, UnavailableClientsAreNeverSelectedAndOvercommitSelectsMore) {
  NetworkSettings n;
  n.devices = parse_device_trace(kTrace, "t.csv");
  FederationSettings f;
  f.clients_per_round = 2;
  const ClientClock clock(f, n, 1, FaultSettings{}, 1, std::vector<int64_t>(10, 5));
  int wanted = 0;
  for (int round = 1; round <= 20; ++round) {
    const std::vector<int> at0 = select_on_clock(f, clock, 7, round, /*now=*/0, wanted);
    EXPECT_EQ(at0.size(), 2u);
    EXPECT_EQ(wanted, 2);
    for (int id : at0) EXPECT_EQ(id % 2, 0) << "odd clients are device 1, offline at 0 s";
  }
  f.overcommit = 1.3; // ceil(2 × 1.3) = 3 selected, 2 kept
  const std::vector<int> over = select_on_clock(f, clock, 7, 1, 150, wanted);
  EXPECT_EQ(over.size(), 3u);
  EXPECT_EQ(wanted, 2);
  // With every client available and no overcommit it is the plain seeded sample.
  const ClientClock always(f, NetworkSettings{}, 1, FaultSettings{}, 1, std::vector<int64_t>(10, 5));
  f.overcommit = 1;
  EXPECT_EQ(select_on_clock(f, always, 7, 4, 0, wanted), select_clients(10, 2, 7, 4));
}

TEST(VirtualClock, TheDeadlineDropsLateClientsAndTheRoundLastsUntilIt) {
  FederationSettings f;
  const ClientClock clock(f, NetworkSettings{}, 1, FaultSettings{}, 1, std::vector<int64_t>(4, 5));
  const std::map<int, double> finish{{0, 5}, {1, 12}, {2, 3}, {3, 8}};
  RoundTiming t = time_round(f, clock, 0, finish, 4, false);
  EXPECT_EQ(t.kept, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_DOUBLE_EQ(t.duration, 12); // no deadline: the last answer
  f.round_deadline_s = 10;
  t = time_round(f, clock, 0, finish, 4, false);
  EXPECT_EQ(t.kept, (std::vector<int>{0, 2, 3}));
  ASSERT_EQ(t.dropped.size(), 1u);
  EXPECT_NE(t.dropped.at(1).find("round_deadline_s"), std::string::npos);
  EXPECT_DOUBLE_EQ(t.duration, 10); // the server waited until the deadline
  f.round_deadline_s = 20;
  t = time_round(f, clock, 0, finish, 5, /*any_failed=*/true); // a fifth never answered: wait it out
  EXPECT_DOUBLE_EQ(t.duration, 20);
  t = time_round(f, clock, 0, finish, 4, false); // all answered in time: the last answer
  EXPECT_DOUBLE_EQ(t.duration, 12);
}

TEST(VirtualClock, OvercommitKeepsTheFirstToFinish) {
  FederationSettings f;
  const ClientClock clock(f, NetworkSettings{}, 1, FaultSettings{}, 1, std::vector<int64_t>(5, 5));
  const std::map<int, double> finish{{0, 5}, {1, 12}, {2, 3}, {3, 8}, {4, 5}};
  const RoundTiming t = time_round(f, clock, 0, finish, 3, false);
  EXPECT_EQ(t.kept, (std::vector<int>{0, 2, 4})); // 3, 5, 5 (a tie by client id)
  EXPECT_EQ(t.dropped.size(), 2u);
  EXPECT_DOUBLE_EQ(t.duration, 5);
}

TEST(VirtualClock, WhenNobodyIsAvailableTheRoundWaitsForTheNextWindow) {
  NetworkSettings n;
  n.devices = parse_device_trace("client,speed_factor,down_mbps,up_mbps,latency_s,available\n"
                                 "0,1,0,0,0,100-200 300-400\n1,1,0,0,0,250-260\n",
                                 "t.csv");
  const ClientClock once(FederationSettings{}, n, 1, FaultSettings{}, 1, {5, 5});
  EXPECT_EQ(once.next_available(0), 100);
  EXPECT_EQ(once.next_available(210), 250);
  EXPECT_TRUE(std::isinf(once.next_available(400)));
  n.trace_period_s = 1000;
  const ClientClock daily(FederationSettings{}, n, 1, FaultSettings{}, 1, {5, 5});
  EXPECT_EQ(daily.next_available(400), 1100);
  FederationSettings f;
  EXPECT_DOUBLE_EQ(time_round(f, daily, 410, {}, 0, false).duration, 1100 - 410);
  f.round_deadline_s = 60;
  EXPECT_DOUBLE_EQ(time_round(f, daily, 410, {}, 0, false).duration, 60);
}

TEST(VirtualClock, AClientThatGoesOfflineBeforeFinishingIsDropped) {
  NetworkSettings n;
  n.devices = parse_device_trace(kTrace, "t.csv");
  const ClientClock clock(FederationSettings{}, n, 1, FaultSettings{}, 1, {5, 5});
  const RoundTiming t = time_round(FederationSettings{}, clock, 150, {{0, 80}, {1, 80}}, 2, false);
  EXPECT_EQ(t.kept, (std::vector<int>{0}));
  EXPECT_NE(t.dropped.at(1).find("went offline"), std::string::npos); // its window ends at 200 < 230
}

TEST(VirtualClock, ClockRoundMovesDroppedUpdatesToFailed) {
  RoundSettings s;
  s.strategy = StrategyKind::flora;
  s.federation.clients = 3;
  s.federation.client_seconds = 1;
  s.federation.round_deadline_s = 3;
  s.network.up_mbps = 8;   // 1e6 bytes/s
  s.network.down_mbps = 8;
  s.faults.slow_clients = {2};
  s.faults.slow_seconds = 100;
  const ClientClock clock(s.federation, s.network, 1, s.faults, 1, {4, 4, 4});
  RoundInFlight r;
  r.round = 1;
  r.selected = {0, 1, 2};
  for (int id : r.selected) {
    ClientUpdate up;
    up.client = id;
    up.bytes = id == 1 ? 1'500'000 : 500'000; // client 1: 1 + 1.5 + 1.5 = 4 s, past the deadline
    r.updates.emplace(id, up);
  }
  const RoundTiming t = clock_round(s, clock, r, 0);
  EXPECT_EQ(t.kept, (std::vector<int>{0}));
  EXPECT_DOUBLE_EQ(t.finish.at(0), 1 + 0.5 + 0.5);
  EXPECT_DOUBLE_EQ(t.finish.at(1), 4);
  EXPECT_DOUBLE_EQ(t.finish.at(2), 1 + 100 + 1);
  EXPECT_EQ(r.updates.size(), 1u);
  EXPECT_EQ(r.failed, (std::set<int>{1, 2}));
  EXPECT_DOUBLE_EQ(r.virtual_duration, 3);
}

} // namespace
