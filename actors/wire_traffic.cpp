// actors/wire_traffic.cpp — TCP_INFO byte counters of the connections of one port, from /proc/self/fd.
#include "actors/wire_traffic.hpp"

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/tcp.h>
#endif

#include <cstdlib>
#include <functional>

namespace fedvlm {
namespace {

uint16_t port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return 0;
}

/// Calls visit(fd, inode, bytes) for every connected TCP socket of this process on `port`.
void for_each_connection(uint16_t port, const std::function<void(int, uint64_t, const WireBytes&)>& visit) {
#ifdef __linux__
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return;
  const int own = ::dirfd(dir);
  while (const dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == own) continue;
    struct stat st {};
    if (::fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage local{}, peer{};
    socklen_t len = sizeof local;
    if (::getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &len) != 0) continue;
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6) continue;
    len = sizeof peer;
    if (::getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue; // listening
    if (port_of(local) != port && port_of(peer) != port) continue;
    tcp_info info{};
    len = sizeof info;
    if (::getsockopt(static_cast<int>(fd), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) continue;
    visit(static_cast<int>(fd), static_cast<uint64_t>(st.st_ino),
          WireBytes{static_cast<int64_t>(info.tcpi_bytes_sent), static_cast<int64_t>(info.tcpi_bytes_received)});
  }
  ::closedir(dir);
#else
  (void)port;
  (void)visit;
#endif
}

} // namespace

WireBytes tcp_bytes_on_port(uint16_t port) {
  WireBytes total;
  for_each_connection(port, [&](int, uint64_t, const WireBytes& b) {
    total.sent += b.sent;
    total.received += b.received;
  });
  return total;
}

WireBytes WireTrafficMeter::take() {
  WireBytes delta;
  std::map<std::pair<int, uint64_t>, WireBytes> now;
  for_each_connection(port_, [&](int fd, uint64_t inode, const WireBytes& b) {
    const auto key = std::make_pair(fd, inode);
    const auto it = last_.find(key);
    const WireBytes before = it == last_.end() ? WireBytes{} : it->second;
    delta.sent += b.sent - before.sent;
    delta.received += b.received - before.received;
    now[key] = b;
  });
  last_ = std::move(now);
  return delta;
}

} // namespace fedvlm
