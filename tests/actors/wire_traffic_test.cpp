// tests/actors/wire_traffic_test.cpp — the kernel's byte counts of a port's connections, against bytes we wrote.
#include "actors/wire_traffic.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace fedvlm {
namespace {

/// A loopback listener, one connection to it, and the accepted end.
struct Pair {
  int listener = -1, client = -1, server = -1;
  uint16_t port = 0;
  Pair() {
    listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listener, 1), 0);
    EXPECT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port = ntohs(addr.sin_port);
    client = ::socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    server = ::accept(listener, nullptr, nullptr);
  }
  ~Pair() {
    for (int fd : {client, server, listener})
      if (fd >= 0) ::close(fd);
  }
};

void send_and_drain(int from, int to, std::size_t n) {
  const std::string bytes(n, 'x');
  std::size_t sent = 0, got = 0;
  char buf[4096];
  while (got < n) {
    if (sent < n) {
      const auto w = ::send(from, bytes.data() + sent, std::min<std::size_t>(n - sent, 4096), 0);
      ASSERT_GT(w, 0);
      sent += static_cast<std::size_t>(w);
    }
    const auto r = ::recv(to, buf, sizeof buf, 0);
    ASSERT_GT(r, 0);
    got += static_cast<std::size_t>(r);
  }
}

/// The counters once the peer has acknowledged everything (loopback: within milliseconds).
WireBytes settled(uint16_t port, int64_t expect_sent) {
  WireBytes b;
  for (int i = 0; i < 200; ++i) {
    b = tcp_bytes_on_port(port);
    if (b.sent >= expect_sent) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return b;
}

TEST(WireTraffic, CountsWhatCrossedTheConnectionsOfAPort) {
  Pair p;
  ASSERT_GE(p.server, 0);
  send_and_drain(p.client, p.server, 10000);
  // Both ends are in this process: 10000 bytes sent (by the client end), 10000 received.
  const WireBytes b = settled(p.port, 10000);
  EXPECT_EQ(b.sent, 10000);
  EXPECT_EQ(b.received, 10000);
  // Another port sees none of it.
  Pair other;
  EXPECT_EQ(tcp_bytes_on_port(other.port).sent, 0);
  EXPECT_EQ(tcp_bytes_on_port(other.port).received, 0);
}

TEST(WireTraffic, TheMeterGivesTheBytesBetweenTwoReadings) {
  Pair p;
  ASSERT_GE(p.server, 0);
  WireTrafficMeter meter(p.port);
  send_and_drain(p.client, p.server, 3000);
  (void)settled(p.port, 3000);
  WireBytes d = meter.take();
  EXPECT_EQ(d.sent, 3000);
  EXPECT_EQ(d.received, 3000);
  send_and_drain(p.server, p.client, 500);
  (void)settled(p.port, 3500);
  d = meter.take();
  EXPECT_EQ(d.sent, 500);
  EXPECT_EQ(d.received, 500);
  d = meter.take();
  EXPECT_EQ(d.sent, 0);
  EXPECT_EQ(d.received, 0);
}

} // namespace
} // namespace fedvlm
