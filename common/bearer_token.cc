#include "common/bearer_token.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace rlpost {
namespace {

constexpr char kHeader[] = "authorization";
constexpr char kPrefix[] = "Bearer ";

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read token file '", path, "'"));
  std::ostringstream text;
  text << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("token file '", path, "' is empty"));
  }
  return token;
}

void AttachBearerToken(grpc::ClientContext* context, const std::string& token) {
  if (!token.empty()) context->AddMetadata(kHeader, absl::StrCat(kPrefix, token));
}

bool HasBearerToken(const grpc::ServerContext& context, absl::string_view token) {
  if (token.empty()) return true;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kHeader);
  if (it == metadata.end()) return false;
  const std::string expected = absl::StrCat(kPrefix, token);
  const grpc::string_ref got = it->second;
  // Constant time in the token's content.
  unsigned char diff = got.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const char c = i < got.size() ? got.data()[i] : 0;
    diff |= static_cast<unsigned char>(c ^ expected[i]);
  }
  return diff == 0;
}

}  // namespace rlpost
