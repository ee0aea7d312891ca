#include "common/tls.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"

namespace rlpost {
namespace {

struct TlsSetting {
  bool server = false;  // cert + key given
  bool client = false;  // ca or cert given
  std::string cert, key, ca;  // PEM text
};

TlsSetting& Setting() {
  static TlsSetting* s = new TlsSetting();
  return *s;
}

absl::Status ReadPem(const std::string& path, const char* flag, std::string* out) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " '", path, "' cannot be read"));
  }
  std::stringstream text;
  text << in.rdbuf();
  *out = text.str();
  if (out->find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " '", path, "' holds no PEM block (-----BEGIN ...)"));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<FlagSpec> TlsFlags(TlsFiles* files) {
  return {
      {"tls-cert", &files->cert, "PEM certificate: serve TLS (with --tls-key) and present it"},
      {"tls-key", &files->key, "PEM private key of --tls-cert"},
      {"tls-ca", &files->ca,
       "PEM CA bundle: verify the servers this process calls; on a server, also require client "
       "certificates signed by it (mutual TLS)"},
  };
}

absl::Status SetProcessTls(const TlsFiles& files) {
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError(files.cert.empty() ? "--tls-key needs --tls-cert"
                                                         : "--tls-cert needs --tls-key");
  }
  TlsSetting s;
  if (!files.cert.empty()) {
    absl::Status st = ReadPem(files.cert, "tls-cert", &s.cert);
    if (st.ok()) st = ReadPem(files.key, "tls-key", &s.key);
    if (!st.ok()) return st;
    s.server = true;
  }
  if (!files.ca.empty()) {
    absl::Status st = ReadPem(files.ca, "tls-ca", &s.ca);
    if (!st.ok()) return st;
  }
  s.client = !files.ca.empty() || !files.cert.empty();
  Setting() = std::move(s);
  return absl::OkStatus();
}

bool TlsEnabled() { return Setting().server || Setting().client; }

std::shared_ptr<grpc::ServerCredentials> ServerCredentials() {
  const TlsSetting& s = Setting();
  if (!s.server) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      s.ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                   : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = s.ca;
  options.pem_key_cert_pairs.push_back({s.key, s.cert});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() {
  const TlsSetting& s = Setting();
  if (!s.client) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = s.ca;  // empty: the system's roots
  if (s.server) {
    options.pem_private_key = s.key;
    options.pem_cert_chain = s.cert;
  }
  return grpc::SslCredentials(options);
}

}  // namespace rlpost
