#pragma once
// Transport security of every rlpost gRPC server and client, set once per
// process from the --tls-cert / --tls-key / --tls-ca flags (TlsFlags):
//
//   server: --tls-cert + --tls-key serve TLS; with --tls-ca as well, clients
//           must present a certificate signed by that CA (mutual TLS).
//   client: --tls-ca verifies the servers it calls (TLS on); --tls-cert +
//           --tls-key present a client certificate (for mutual TLS).
//
// A process calls both sides (a controller serves rlctl and calls the
// workers), so the same three files configure both. No flag: plaintext, as
// before. ServerHost::Start and MakeChannel (grpc_util.h) read the setting.
//
// Thread-safety: SetProcessTls before any server or channel is made; the
// getters are then safe from any thread.

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/status.h"

namespace rlpost {

struct FlagSpec;

struct TlsFiles {
  std::string cert;  // PEM certificate chain of this process
  std::string key;   // PEM private key of `cert`
  std::string ca;    // PEM CA bundle that signs the peers
  bool empty() const { return cert.empty() && key.empty() && ca.empty(); }
};

// The three flags, bound to `files`, to append to a binary's FlagSpec list.
std::vector<FlagSpec> TlsFlags(TlsFiles* files);

// Reads the files and makes them this process's setting. INVALID_ARGUMENT
// naming the flag for a cert without a key (or the reverse) or a file that
// cannot be read or holds no PEM block.
absl::Status SetProcessTls(const TlsFiles& files);

std::shared_ptr<grpc::ServerCredentials> ServerCredentials();
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials();
bool TlsEnabled();

}  // namespace rlpost
