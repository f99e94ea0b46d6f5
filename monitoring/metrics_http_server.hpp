// monitoring/metrics_http_server.hpp — a minimal HTTP server for Prometheus' GET /metrics.
//
// prometheus-cpp's Exposer (civetweb) fails to start in a process that has OpenBLAS loaded
// (civetweb's mg_init_library returns 0, seen with Debian's libopenblas0-*), and LibTorch
// loads it. Scrapes need one request, one response: this server does exactly that.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace fedvlm {

class MetricsHttpServer {
public:
  /// Binds `listen` ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464"; port 0 picks a free one)
  /// and answers GET/HEAD /metrics with `render()` on its own thread. Throws
  /// std::runtime_error naming the address when it cannot bind.
  MetricsHttpServer(const std::string& listen, std::function<std::string()> render);
  ~MetricsHttpServer(); ///< stops serving within ~0.2 s
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  [[nodiscard]] int port() const { return port_; }

private:
  void serve();
  void answer(int client);

  std::function<std::string()> render_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> running_{true};
  std::thread thread_;
};

} // namespace fedvlm
