#pragma once
// Bearer tokens for the control API: mutating calls to a controller started
// with --token-file must carry "authorization: Bearer <token>" metadata.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grpc {
class ClientContext;
class ServerContext;
}  // namespace grpc

namespace rlpost {

// The token in `path`: its content with surrounding whitespace removed.
// NOT_FOUND when the file cannot be read, INVALID_ARGUMENT when it is empty,
// each naming the file.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Adds the authorization metadata to an outgoing call (nothing when empty).
void AttachBearerToken(grpc::ClientContext* context, const std::string& token);

// Whether the call carries `token` (compared in constant time). An empty
// `token` accepts every call.
bool HasBearerToken(const grpc::ServerContext& context, absl::string_view token);

}  // namespace rlpost
