# Run log (coordinator/runlog.c): the C test writes logs (and kills writers)
# into runlog/; the h5py check reads every column of them and tails a live one.
ns_test(test_runlog)
target_link_libraries(test_runlog PRIVATE ns_coordinator)
add_test(NAME runlog COMMAND test_runlog ${CMAKE_CURRENT_BINARY_DIR}/runlog)
set_tests_properties(runlog PROPERTIES FIXTURES_SETUP runlog_files LABELS unit)
add_test(NAME runlog_h5py
         COMMAND ${NS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_runlog.py $<TARGET_FILE:test_runlog>
                 ${CMAKE_CURRENT_BINARY_DIR}/runlog)
set_tests_properties(runlog_h5py PROPERTIES FIXTURES_REQUIRED runlog_files LABELS reference)
