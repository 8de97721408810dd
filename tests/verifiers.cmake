# Verifiers and evaluation (issue 4): included by tests/CMakeLists.txt.

# SHA-256 against the FIPS 180-2 vectors (it ties references and run logs to their networks).
ns_test(test_sha256)
add_test(NAME sha256 COMMAND test_sha256 ${CMAKE_CURRENT_BINARY_DIR})

# Each verifier on hand-made inputs, batch invariance, ensemble ranks, roles.
ns_test(test_verifier)
target_link_libraries(test_verifier PRIVATE ns_verifiers)
add_test(NAME verifier COMMAND test_verifier ${CMAKE_CURRENT_BINARY_DIR})

# noisesearch reference / eval end to end on a tiny evaluator trained for a
# few steps: FID of the test set to itself, FID and KID against numpy on the
# same features, a fake run log, error exits.
add_test(NAME eval
         COMMAND ${NS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_eval.py $<TARGET_FILE:noisesearch>
                 ${CMAKE_CURRENT_BINARY_DIR}/eval)
set_tests_properties(eval PROPERTIES LABELS reference)
