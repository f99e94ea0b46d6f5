// actors/tls_files.cpp — the mutual-TLS files checked with OpenSSL before CAF is given them.
#include "actors/cluster.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace fedvlm {

namespace {

using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

[[noreturn]] void bad(const std::string& flag, const std::string& path, const std::string& why) {
  ERR_clear_error();
  throw std::invalid_argument(flag + " " + path + ": " + why);
}

/// OpenSSL's newest queued error, as text ("" when none), for the message's parenthesis.
std::string openssl_reason() {
  const unsigned long e = ERR_peek_last_error();
  if (e == 0) return "";
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? std::string(" (") + reason + ")" : "";
}

/// The file as a memory BIO: readable, a regular file (a FIFO would block the read), not empty.
Bio read_file(const std::string& flag, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) bad(flag, path, std::string("cannot be read (") + std::strerror(errno) + ")");
  if (!S_ISREG(st.st_mode)) bad(flag, path, "is not a regular file; expected a PEM file");
  Bio bio(BIO_new_file(path.c_str(), "rb"), &BIO_free);
  if (!bio) bad(flag, path, std::string("cannot be read (") + std::strerror(errno) + ")");
  if (st.st_size == 0) bad(flag, path, "is empty; expected a PEM file");
  return bio;
}

/// Never prompts on the terminal for an encrypted key's passphrase: the run cannot ask for it.
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

X509Ptr read_certificate(const std::string& flag, const std::string& path, const char* role) {
  Bio bio = read_file(flag, path);
  ERR_clear_error();
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, &no_passphrase, nullptr), &X509_free);
  if (!cert)
    bad(flag, path, std::string("holds no PEM certificate") + openssl_reason() + "; expected " + role +
                        " between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE-----");
  return cert;
}

} // namespace

void check_tls_files(const TlsFiles& tls) {
  if (!tls.enabled()) return;
  const std::pair<const char*, const std::string*> files[] = {
      {"--cert", &tls.certificate}, {"--key", &tls.key}, {"--ca", &tls.ca}};
  for (const auto& [flag, path] : files)
    if (path->empty())
      throw std::invalid_argument(std::string("TLS needs --cert, --key and --ca together; ") + flag + " is missing");

  const X509Ptr cert = read_certificate("--cert", tls.certificate, "this side's certificate");
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0)
    bad("--cert", tls.certificate, "the certificate has expired");
  if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) > 0)
    bad("--cert", tls.certificate, "the certificate is not valid yet (its notBefore is in the future)");

  {
    Bio bio = read_file("--key", tls.key);
    ERR_clear_error();
    const KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, &no_passphrase, nullptr), &EVP_PKEY_free);
    if (!key)
      bad("--key", tls.key, "holds no unencrypted PEM private key" + openssl_reason() +
                                "; expected -----BEGIN PRIVATE KEY----- (or an EC/RSA PRIVATE KEY) without a passphrase");
    if (X509_check_private_key(cert.get(), key.get()) != 1)
      bad("--key", tls.key, "does not belong to --cert " + tls.certificate +
                                " (the key is not the certificate's private key): give the key the certificate was made with");
  }

  // The CA file may hold a chain: every certificate in it must parse, and there must be one.
  Bio bio = read_file("--ca", tls.ca);
  int count = 0;
  for (;;) {
    ERR_clear_error();
    X509Ptr ca(PEM_read_bio_X509(bio.get(), nullptr, &no_passphrase, nullptr), &X509_free);
    if (!ca) {
      // The end of the file reads as "no start line"; anything else is a damaged certificate.
      const unsigned long e = ERR_peek_last_error();
      const bool at_end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
      if (count == 0 || !at_end)
        bad("--ca", tls.ca, std::string(count == 0 ? "holds no PEM certificate" : "holds a damaged certificate") +
                                openssl_reason() + "; expected the CA certificate(s) that signed the peer's certificate");
      break;
    }
    ++count;
    if (X509_check_ca(ca.get()) == 0)
      bad("--ca", tls.ca, "certificate " + std::to_string(count) +
                              " in it is no CA certificate (it may not sign others: no basicConstraints CA:TRUE)");
  }
  ERR_clear_error();
}

} // namespace fedvlm
