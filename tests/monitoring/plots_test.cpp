// tests/monitoring/plots_test.cpp — gnuplot PNGs decoded and inspected; progress display output.
#include "fl/results/results_reader.hpp"
#include "fl/results/results_writer.hpp"
#include "monitoring/plots.hpp"
#include "monitoring/progress_display.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint32_t be32(const std::string& s, std::size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) |
         (uint32_t(uint8_t(s[at + 2])) << 8) | uint32_t(uint8_t(s[at + 3]));
}

// What a PNG shows, enough to tell a drawn plot from a blank or broken image.
struct PngStats {
  uint32_t width = 0, height = 0;
  std::size_t distinct_colours = 0;
  std::size_t non_white = 0; // pixels that are neither white nor fully transparent
  std::size_t coloured = 0;  // clearly saturated pixels: data lines, not black/grey axes and text
};

// A small PNG decoder: chunks with CRCs, IHDR, PLTE, IDAT inflated with zlib, the five
// per-row filters undone. Non-interlaced only (gnuplot writes those). Fails the test on error.
void decode_png(const fs::path& path, PngStats& out) {
  const std::string s = read_bytes(path);
  ASSERT_GE(s.size(), 8u) << path;
  ASSERT_EQ(s.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << path;
  std::size_t at = 8;
  std::string idat, palette;
  int depth = 0, colour_type = -1, interlace = 0;
  bool seen_end = false;
  while (at + 12 <= s.size()) {
    const uint32_t len = be32(s, at);
    ASSERT_LE(at + 12 + len, s.size()) << path << ": chunk runs past the end";
    const std::string type = s.substr(at + 4, 4);
    const std::string data = s.substr(at + 8, len);
    const uint32_t crc = be32(s, at + 8 + len);
    const uLong want = crc32(0, reinterpret_cast<const Bytef*>(s.data() + at + 4), len + 4);
    ASSERT_EQ(crc, want) << path << ": bad CRC in " << type;
    if (type == "IHDR") {
      ASSERT_EQ(len, 13u);
      out.width = be32(data, 0);
      out.height = be32(data, 4);
      depth = uint8_t(data[8]);
      colour_type = uint8_t(data[9]);
      interlace = uint8_t(data[12]);
    } else if (type == "PLTE") {
      palette = data;
    } else if (type == "IDAT") {
      idat += data;
    } else if (type == "IEND") {
      seen_end = true;
      break;
    }
    at += 12 + len;
  }
  ASSERT_TRUE(seen_end) << path << ": no IEND";
  ASSERT_EQ(interlace, 0) << path;
  int channels = 0;
  switch (colour_type) {
  case 0: channels = 1; break;
  case 2: channels = 3; break;
  case 3: channels = 1; break;
  case 4: channels = 2; break;
  case 6: channels = 4; break;
  default: FAIL() << path << ": colour type " << colour_type;
  }
  ASSERT_TRUE(depth == 8 || (colour_type == 3 && (depth == 1 || depth == 2 || depth == 4)))
      << path << ": bit depth " << depth << " colour type " << colour_type;
  const std::size_t bits_per_pixel = static_cast<std::size_t>(channels * depth);
  const std::size_t row_bytes = (out.width * bits_per_pixel + 7) / 8;
  const std::size_t bpp = std::max<std::size_t>(1, bits_per_pixel / 8);
  std::vector<uint8_t> raw((row_bytes + 1) * out.height);
  uLongf raw_len = raw.size();
  ASSERT_EQ(uncompress(raw.data(), &raw_len, reinterpret_cast<const Bytef*>(idat.data()), idat.size()),
            Z_OK)
      << path;
  ASSERT_EQ(raw_len, raw.size()) << path;

  std::vector<uint8_t> prev(row_bytes, 0), row(row_bytes);
  std::set<uint32_t> colours;
  for (uint32_t y = 0; y < out.height; ++y) {
    const uint8_t* line = raw.data() + y * (row_bytes + 1);
    const int filter = line[0];
    for (std::size_t i = 0; i < row_bytes; ++i) {
      const int a = i >= bpp ? row[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
      int pred = 0;
      switch (filter) {
      case 0: pred = 0; break;
      case 1: pred = a; break;
      case 2: pred = b; break;
      case 3: pred = (a + b) / 2; break;
      case 4: {
        const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
        pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
        break;
      }
      default: FAIL() << path << ": filter " << filter << " in row " << y;
      }
      row[i] = static_cast<uint8_t>(line[1 + i] + pred);
    }
    for (uint32_t x = 0; x < out.width; ++x) {
      uint8_t r, g, bl, alpha = 255;
      if (colour_type == 3) {
        const std::size_t bit = x * depth;
        const int index = (row[bit / 8] >> (8 - depth - bit % 8)) & ((1 << depth) - 1);
        ASSERT_LT(static_cast<std::size_t>(3 * index + 2), palette.size()) << path;
        r = uint8_t(palette[3 * index]), g = uint8_t(palette[3 * index + 1]),
        bl = uint8_t(palette[3 * index + 2]);
      } else {
        const uint8_t* px = row.data() + x * channels;
        if (channels <= 2) r = g = bl = px[0];
        else r = px[0], g = px[1], bl = px[2];
        if (channels == 2) alpha = px[1];
        if (channels == 4) alpha = px[3];
      }
      colours.insert((uint32_t(r) << 24) | (uint32_t(g) << 16) | (uint32_t(bl) << 8) | alpha);
      if (alpha != 0 && !(r == 255 && g == 255 && bl == 255)) ++out.non_white;
      const int hi = std::max({r, g, bl}), lo = std::min({r, g, bl});
      if (alpha != 0 && hi - lo >= 80) ++out.coloured;
    }
    std::swap(prev, row);
  }
  out.distinct_colours = colours.size();
}

// PATH replaced for one scope.
class ScopedPath {
public:
  explicit ScopedPath(const std::string& value) {
    if (const char* old = std::getenv("PATH")) old_ = old;
    ::setenv("PATH", value.c_str(), 1);
  }
  ~ScopedPath() {
    if (old_) ::setenv("PATH", old_->c_str(), 1);
    else ::unsetenv("PATH");
  }

private:
  std::optional<std::string> old_;
};

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

class Plots : public ::testing::Test {
protected:

  // A finished run on disk: `clients` clients, before + `rounds` rounds, accuracy rising
  // with the round at a strategy-dependent pace.
  // `measured`: the run also has a global test (0.4 + pace·round) and a task metric
  // exact_match (pace·round, from round 1).
  void make_run(const std::string& strategy, int clients, int rounds, double pace, bool measured = false) {
    RunInfo info;
    info.experiment = "plots";
    info.run = "plots/clients=" + std::to_string(clients) + ",strategy=" + strategy + ",seed=0";
    info.strategy = strategy;
    info.sweep = {{"federation.clients", std::to_string(clients)}, {"seed", "0"}};
    info.clients = clients;
    info.rounds = rounds;
    ResultsWriter w(dir_ / "runs" / (strategy + "_" + std::to_string(clients)), info);
    for (int round = 0; round <= rounds; ++round) {
      for (int c = 0; c < clients; ++c) {
        ClientRoundRecord r;
        r.run = info.run;
        r.strategy = strategy;
        r.client = c;
        r.round = round;
        r.phase = round == 0 ? kPhaseBefore : kPhaseRound;
        r.accuracy = 0.3 + 0.05 * c + pace * round;
        r.f1 = r.accuracy - 0.02;
        r.loss = 2.0 - 0.4 * pace * round * 10 + 0.1 * c;
        r.test_samples = 50;
        r.train_samples = 200;
        r.bytes_up = round ? 4096 : 0;
        r.participated = round > 0;
        if (measured && round > 0) r.task_metrics["exact_match"] = pace * round + 0.01 * c;
        w.client_evaluated(r);
      }
      RoundSummary s;
      s.run = info.run;
      s.round = round;
      s.total_rounds = rounds;
      if (measured) s.global_accuracy = 0.4 + pace * round;
      w.round_finished(s);
    }
    w.finish(kStatusCompleted);
  }

  fedvlm::testing::TempDir tmp_{"fedvlm-plots"};
  const fs::path dir_ = tmp_.path();
};

TEST_F(Plots, WritesPngsWithRealContent) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot not installed";
  make_run("plora", 3, 4, 0.08);
  make_run("flora", 4, 4, 0.05);
  const auto runs = load_results({dir_ / "runs"});
  ASSERT_EQ(runs.size(), 2u);

  const fs::path out = dir_ / "plots";
  const auto pngs = write_plots(runs, out);
  std::set<std::string> names;
  for (const auto& p : pngs) names.insert(p.filename().string());
  EXPECT_EQ(names, (std::set<std::string>{
                       "run_plots_clients=3_strategy=plora_seed=0_accuracy.png",
                       "run_plots_clients=3_strategy=plora_seed=0_loss.png",
                       "run_plots_clients=4_strategy=flora_seed=0_accuracy.png",
                       "run_plots_clients=4_strategy=flora_seed=0_loss.png",
                       "comparison_accuracy.png", "sweep_federation.clients.png"}));

  // Data and script stay for users to tweak.
  ASSERT_TRUE(fs::exists(out / "plots.gp"));
  const std::string script = read_bytes(out / "plots.gp");
  EXPECT_NE(script.find("pngcairo"), std::string::npos);
  EXPECT_NE(script.find("size 1000,600"), std::string::npos);
  EXPECT_NE(script.find("\"plora clients=3\""), std::string::npos) << script;
  EXPECT_NE(script.find("\"flora clients=4\""), std::string::npos) << script;
  EXPECT_TRUE(fs::exists(out / "comparison_accuracy.dat"));
  const std::string sweep = read_bytes(out / "sweep_federation.clients.dat");
  // Final mean accuracy, mean over clients of 0.3 + 0.05c + pace·4: plora 0.67, flora 0.575.
  std::map<double, double> points;
  {
    std::istringstream in(sweep);
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      double x = 0, y = 0;
      ASSERT_EQ(std::sscanf(line.c_str(), "%lf %lf", &x, &y), 2) << line;
      points[x] = y;
    }
  }
  ASSERT_EQ(points.size(), 2u) << sweep;
  EXPECT_NEAR(points[3], 0.67, 1e-12) << sweep;
  EXPECT_NEAR(points[4], 0.575, 1e-12) << sweep;

  for (const auto& p : pngs) {
    SCOPED_TRACE(p.string());
    PngStats st;
    decode_png(p, st);
    if (HasFatalFailure()) return;
    EXPECT_EQ(st.width, 1000u);
    EXPECT_EQ(st.height, 600u);
    EXPECT_GE(st.distinct_colours, 3u);
    EXPECT_GE(st.non_white, 1000u * 600u / 100) << "non-white pixels: " << st.non_white;
    // Axes, grid and text are black or grey; data lines and markers are coloured.
    EXPECT_GE(st.coloured, 300u) << "no coloured data lines: " << st.coloured;
  }
}

// The global test and a task metric get a comparison plot each, with only the runs that have them.
TEST_F(Plots, GlobalTestAndTaskMetricsPlotWhereMeasured) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot not installed";
  make_run("plora", 3, 2, 0.25, /*measured=*/true);
  make_run("flora", 4, 2, 0.05);
  const fs::path out = dir_ / "plots";
  const auto pngs = write_plots(load_results({dir_ / "runs"}), out);
  std::set<std::string> names;
  for (const auto& p : pngs) names.insert(p.filename().string());
  EXPECT_EQ(names.count("comparison_global_test.png"), 1u);
  EXPECT_EQ(names.count("comparison_exact_match.png"), 1u);
  for (const char* png : {"comparison_global_test.png", "comparison_exact_match.png"})
    EXPECT_GT(fs::file_size(out / png), 1000u) << png;
  // Data blocks in run order (flora's directory sorts first: it has no values): rounds 0–2 of
  // 0.4 + 0.25·round; exact_match from round 1, mean over clients of 0.25·round + 0.01c = +0.01.
  auto values = [&](const char* dat) {
    std::vector<std::pair<int, double>> out_values;
    std::istringstream in(read_bytes(out / dat));
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      int round = 0;
      double v = 0;
      EXPECT_EQ(std::sscanf(line.c_str(), "%d %lf", &round, &v), 2) << line;
      out_values.emplace_back(round, v);
    }
    return out_values;
  };
  const auto global = values("comparison_global_test.dat");
  ASSERT_EQ(global.size(), 3u);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(global[static_cast<std::size_t>(r)].first, r);
    EXPECT_NEAR(global[static_cast<std::size_t>(r)].second, 0.4 + 0.25 * r, 1e-12);
  }
  const auto em = values("comparison_exact_match.dat");
  ASSERT_EQ(em.size(), 2u);
  EXPECT_NEAR(em[0].second, 0.26, 1e-12);
  EXPECT_NEAR(em[1].second, 0.51, 1e-12);
}

TEST_F(Plots, MissingGnuplotSaysHowToInstall) {
  make_run("plora", 2, 1, 0.1);
  const auto runs = load_results({dir_ / "runs"});
  fs::create_directories(dir_ / "empty_bin");
  ScopedPath path((dir_ / "empty_bin").string());
  try {
    write_plots(runs, dir_ / "plots");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install gnuplot-nox"), std::string::npos)
        << e.what();
  }
}

TEST_F(Plots, GnuplotFailureReportsStatusAndOutput) {
  make_run("plora", 2, 1, 0.1);
  const auto runs = load_results({dir_ / "runs"});
  const fs::path bin = dir_ / "fake_bin";
  fs::create_directories(bin);
  {
    std::ofstream f(bin / "gnuplot");
    f << "#!/bin/sh\necho '\"plots.gp\" line 9: undefined variable: foo' >&2\nexit 3\n";
  }
  ::chmod((bin / "gnuplot").c_str(), 0755);
  ScopedPath path(bin.string());
  try {
    write_plots(runs, dir_ / "plots");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("exit status 3"), std::string::npos) << m;
    EXPECT_NE(m.find("undefined variable: foo"), std::string::npos) << m;
    EXPECT_NE(m.find("plots.gp"), std::string::npos) << m;
  }
}

TEST_F(Plots, NothingToPlotIsAnError) {
  RunResults empty;
  empty.info.run = "empty";
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot not installed";
  EXPECT_THROW(write_plots({empty}, dir_ / "plots"), std::runtime_error);
}

// ---- ProgressDisplay ----

std::string file_text(std::FILE* f) {
  std::fflush(f);
  const long size = std::ftell(f);
  std::string text(static_cast<std::size_t>(std::max(0L, size)), '\0');
  std::rewind(f);
  const std::size_t n = std::fread(text.data(), 1, text.size(), f);
  text.resize(n);
  std::fseek(f, 0, SEEK_END);
  return text;
}

// Captures what spdlog's default logger prints while alive.
class CaptureLog {
public:
  CaptureLog() : old_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    sink->set_pattern("%v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~CaptureLog() { spdlog::set_default_logger(old_); }
  std::string text() const { return stream_.str(); }

private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::logger> old_;
};

RoundSummary round_one() {
  RoundSummary s;
  s.run = "r";
  s.round = 1;
  s.total_rounds = 2;
  s.clients_answered = 2;
  s.clients_selected = 2;
  s.mean_accuracy = 0.8125;
  s.min_accuracy = 0.7;
  s.max_accuracy = 0.905;
  s.seconds = 2.1;
  return s;
}

TEST(ProgressDisplay, InteractiveDrawsStatusLineAndClearsAtEnd) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  CaptureLog log;
  {
    ProgressDisplay d(f, true);
    d.run_started("quick/plora", "plora", 2, 2);
    d.round_started("quick/plora", 1, 2);
    d.client_finished_training("quick/plora", 1, 0);
    const std::string text = file_text(f);
    EXPECT_NE(text.find("round 1/2"), std::string::npos) << text;
    EXPECT_NE(text.find("clients 1/2"), std::string::npos) << text;
    EXPECT_NE(text.find("quick/plora"), std::string::npos) << text;
    EXPECT_NE(text.find("\r\033[K"), std::string::npos) << text;
    EXPECT_EQ(text.find('\n'), std::string::npos) << "a status line must not scroll";

    d.client_finished_training("quick/plora", 1, 1);
    d.client_finished_training("quick/plora", 1, 1); // repeated event counts once
    EXPECT_NE(d.status_text().find("clients 2/2"), std::string::npos) << d.status_text();
    d.round_finished(round_one());
    // One round of 2.1 s done, one to go.
    EXPECT_NE(d.status_text().find("ETA 0:02"), std::string::npos) << d.status_text();
    d.run_finished("quick/plora");
    const std::string end = file_text(f);
    ASSERT_GE(end.size(), 4u);
    EXPECT_EQ(end.substr(end.size() - 4), "\r\033[K") << "status line not cleared at the end";
  }
  EXPECT_NE(log.text().find("round 1/2: accuracy mean 0.812 min 0.700 max 0.905 (2/2 clients, 2.1 s)"),
            std::string::npos)
      << log.text();
  std::fclose(f);
}

TEST(ProgressDisplay, NonInteractiveWritesNothingButStillLogs) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  CaptureLog log;
  {
    ProgressDisplay d(f, false);
    d.run_started("r", "plora", 2, 2);
    d.round_started("r", 1, 2);
    d.client_finished_training("r", 1, 0);
    d.round_finished(round_one());
    d.run_finished("r");
  }
  EXPECT_EQ(file_text(f), "");
  EXPECT_NE(log.text().find("round 1/2: accuracy mean 0.812"), std::string::npos) << log.text();
  std::fclose(f);
}

} // namespace
} // namespace fedvlm
