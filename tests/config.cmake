# Run configs (coordinator/config.c): parsing, errors, overrides, round trip,
# weight-file roles, cross-key checks, the shipped configs (seconds).
ns_test(test_config)
target_link_libraries(test_config PRIVATE ns_coordinator ns_verifiers)
add_test(NAME config COMMAND test_config ${CMAKE_CURRENT_BINARY_DIR}/config ${CMAKE_SOURCE_DIR})
# configs/reference.yaml is what `noisesearch config --reference` prints now.
add_test(NAME config_reference COMMAND test_config --reference ${CMAKE_SOURCE_DIR}/configs/reference.yaml)
# The config command: resolved YAML and exit 0, one error line and exit 2.
add_test(NAME config_cli COMMAND test_config --cli $<TARGET_FILE:noisesearch> ${CMAKE_CURRENT_BINARY_DIR}/config_cli)
set_tests_properties(config config_reference config_cli PROPERTIES LABELS unit)
