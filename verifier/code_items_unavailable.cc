// CodeItemJudge::CreateDefault for builds without verifier/code/.
#include "absl/status/status.h"
#include "verifier/code_items.h"

namespace rlpost {

absl::StatusOr<std::unique_ptr<CodeItemJudge>> CodeItemJudge::CreateDefault(int /*warm_sandboxes*/) {
  return absl::UnimplementedError(
      "code verifier not built: this rlpost-verifier was built without verifier/code/");
}

}  // namespace rlpost
