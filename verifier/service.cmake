# rlpost::verifier: the VerifierService over the checkers, and rlpost-verifier.
add_library(rlpost_verifier STATIC verifier_service.cc)
add_library(rlpost::verifier ALIAS rlpost_verifier)
target_link_libraries(rlpost_verifier PUBLIC
  rlpost::verifier_math rlpost::proto rlpost::grpc_common
  absl::status absl::statusor absl::strings absl::time)

add_executable(rlpost-verifier main.cc)
set_target_properties(rlpost-verifier PROPERTIES OUTPUT_NAME rlpost-verifier)
target_link_libraries(rlpost-verifier PRIVATE rlpost::verifier)
