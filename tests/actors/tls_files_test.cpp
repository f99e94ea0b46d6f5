// tests/actors/tls_files_test.cpp — --cert/--key/--ca checked up front: garbage, mismatched, unreadable files.
#include "actors/cluster.hpp"
#include "tests/test_support.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

namespace fedvlm {
namespace {

namespace fs = std::filesystem;

class TlsFilesCheck : public ::testing::Test {
protected:
  void SetUp() override {
    if (std::system("command -v openssl > /dev/null") != 0) GTEST_SKIP() << "openssl (the command) is not installed";
    // Two CAs; a and b signed by ca; a leaf used where a CA belongs; an expired certificate.
    const std::string d = "'" + dir_.string() + "'";
    std::string s = "set -e; cd " + d + "; ";
    for (const char* ca : {"ca", "other_ca"})
      s += std::string("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=") +
           ca + " -keyout " + ca + ".key -out " + ca + ".pem 2>/dev/null; ";
    for (const char* name : {"a", "b"})
      s += std::string("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=") + name +
           " -keyout " + name + ".key -out " + name + ".csr 2>/dev/null; openssl x509 -req -in " + name +
           ".csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 30 -out " + name + ".pem 2>/dev/null; ";
    // An encrypted key: the run cannot ask for its passphrase.
    s += "openssl pkey -in a.key -aes256 -passout pass:secret -out a_encrypted.key 2>/dev/null; ";
    ASSERT_EQ(std::system(s.c_str()), 0) << "openssl failed: " << s;
  }
  std::string p(const std::string& name) const { return (dir_ / name).string(); }
  fs::path write(const std::string& name, const std::string& text) const {
    testing::write_text_file(dir_ / name, text);
    return dir_ / name;
  }
  /// check_tls_files' message for these three files ("" when it accepts them).
  static std::string error_of(const std::string& cert, const std::string& key, const std::string& ca) {
    try {
      check_tls_files(TlsFiles{cert, key, ca});
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  }
  testing::TempDir tmp_{"fedvlm-tls"};
  const fs::path dir_ = tmp_.path();
};

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << "missing '" << (part) << "' in: " << (text)

TEST_F(TlsFilesCheck, MatchingFilesAreAccepted) {
  EXPECT_EQ(error_of(p("a.pem"), p("a.key"), p("ca.pem")), "");
  EXPECT_EQ(error_of(p("b.pem"), p("b.key"), p("ca.pem")), "");
  // A CA file may hold several CAs.
  write("both_cas.pem", testing::read_text_file(dir_ / "ca.pem") + testing::read_text_file(dir_ / "other_ca.pem"));
  EXPECT_EQ(error_of(p("a.pem"), p("a.key"), p("both_cas.pem")), "");
}

TEST_F(TlsFilesCheck, GarbageFilesAreRefusedNamingTheFlagAndFile) {
  write("garbage.pem", "this is not a certificate\n");
  write("empty.pem", "");
  write("cut.pem", testing::read_text_file(dir_ / "a.pem").substr(0, 200));
  for (const std::string bad : {"garbage.pem", "empty.pem", "cut.pem"}) {
    std::string m = error_of(p(bad), p("a.key"), p("ca.pem"));
    EXPECT_HAS(m, "--cert " + p(bad) + ": ");
    m = error_of(p("a.pem"), p(bad), p("ca.pem"));
    EXPECT_HAS(m, "--key " + p(bad) + ": ");
    m = error_of(p("a.pem"), p("a.key"), p(bad));
    EXPECT_HAS(m, "--ca " + p(bad) + ": ");
  }
  EXPECT_HAS(error_of(p("garbage.pem"), p("a.key"), p("ca.pem")), "holds no PEM certificate");
  EXPECT_HAS(error_of(p("empty.pem"), p("a.key"), p("ca.pem")), "is empty");
  // The right kinds of file in the wrong places.
  EXPECT_HAS(error_of(p("a.key"), p("a.key"), p("ca.pem")), "--cert " + p("a.key") + ": holds no PEM certificate");
  EXPECT_HAS(error_of(p("a.pem"), p("a.pem"), p("ca.pem")), "--key " + p("a.pem") + ": holds no unencrypted PEM private key");
  EXPECT_HAS(error_of(p("a.pem"), p("a_encrypted.key"), p("ca.pem")), "--key " + p("a_encrypted.key") + ": holds no unencrypted");
  EXPECT_HAS(error_of(p("a.pem"), p("a.key"), p("ca.key")), "--ca " + p("ca.key") + ": holds no PEM certificate");
  EXPECT_HAS(error_of(p("a.pem"), p("a.key"), p("b.pem")), "--ca " + p("b.pem") + ": certificate 1 in it is no CA certificate");
  // A good CA followed by a damaged one.
  write("ca_then_cut.pem", testing::read_text_file(dir_ / "ca.pem") + testing::read_text_file(dir_ / "other_ca.pem").substr(0, 300));
  EXPECT_HAS(error_of(p("a.pem"), p("a.key"), p("ca_then_cut.pem")), "--ca " + p("ca_then_cut.pem") + ": holds a damaged certificate");
}

TEST_F(TlsFilesCheck, KeyOfAnotherCertificateIsRefused) {
  for (const auto& [cert, key] : {std::pair<std::string, std::string>{"a.pem", "b.key"}, {"b.pem", "a.key"}, {"a.pem", "ca.key"}}) {
    const std::string m = error_of(p(cert), p(key), p("ca.pem"));
    EXPECT_HAS(m, "--key " + p(key) + ": does not belong to --cert " + p(cert));
  }
}

TEST_F(TlsFilesCheck, UnreadableOrMissingFilesAreRefused) {
  EXPECT_HAS(error_of(p("nope.pem"), p("a.key"), p("ca.pem")), "--cert " + p("nope.pem") + ": cannot be read (No such file");
  EXPECT_HAS(error_of(p("a.pem"), p("nope.key"), p("ca.pem")), "--key " + p("nope.key") + ": cannot be read");
  EXPECT_HAS(error_of(p("a.pem"), p("a.key"), dir_.string()), "--ca " + dir_.string() + ": is not a regular file");
  EXPECT_HAS(error_of(p("a.pem"), p("a.key"), "/dev/null"), "--ca /dev/null: is not a regular file");
  EXPECT_HAS(error_of(p("a.pem"), "", p("ca.pem")), "--key is missing");
  if (::geteuid() != 0) { // root reads a file whatever its mode
    ASSERT_EQ(::chmod(p("a.key").c_str(), 0), 0);
    EXPECT_HAS(error_of(p("a.pem"), p("a.key"), p("ca.pem")), "--key " + p("a.key") + ": cannot be read (Permission denied)");
  }
}

// The commands check the files before any socket: a node with a mismatched pair used to hang in
// the handshake, a server with garbage files to abort (exit 134) when a node reached it.
TEST_F(TlsFilesCheck, ServeAndNodeRefuseBadFilesBeforeConnecting) {
  write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
  write("exp.toml", "seed = 1\n");
  const std::string cli = "timeout 20 '" + std::string(FEDVLM_CLI) + "' ";
  auto run = [&](const std::string& args, int& status) {
    std::string out;
    FILE* pipe = ::popen((cli + args + " </dev/null 2>&1").c_str(), "r");
    char buf[4096];
    std::size_t n = 0;
    while (pipe != nullptr && (n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
    const int st = pipe != nullptr ? ::pclose(pipe) : -1;
    status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
  };
  int status = 0;
  // Port 1 on loopback: nothing listens; a node that got as far as connecting would wait there.
  std::string out = run("node --connect 127.0.0.1:1 --wait 30 --cert '" + p("a.pem") + "' --key '" + p("b.key") + "' --ca '" + p("ca.pem") + "'", status);
  EXPECT_EQ(status, 2) << out;
  EXPECT_HAS(out, "--key " + p("b.key") + ": does not belong to --cert " + p("a.pem"));
  out = run("serve '" + p("exp.toml") + "' --listen 127.0.0.1:1 --cert '" + p("garbage.pem") + "' --key '" + p("a.key") + "' --ca '" + p("ca.pem") + "'", status);
  EXPECT_EQ(status, 2) << out;
  EXPECT_HAS(out, "--cert " + p("garbage.pem") + ": holds no PEM certificate");
  out = run("serve '" + p("exp.toml") + "' --listen 127.0.0.1:1 --cert '" + p("a.pem") + "' --key '" + p("a.key") + "' --ca '" + p("a.pem") + "'", status);
  EXPECT_EQ(status, 2) << out;
  EXPECT_HAS(out, "--ca " + p("a.pem") + ": certificate 1 in it is no CA certificate");
}

} // namespace
} // namespace fedvlm
