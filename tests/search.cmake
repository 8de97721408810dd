# The search end to end on tiny real models: determinism over ranks and
# batch sizes, none == sample, SIGKILL/SIGUSR1 + resume, config errors.
add_test(NAME search
         COMMAND ${NS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_search.py $<TARGET_FILE:noisesearch>
                 ${MPIEXEC_EXECUTABLE} ${CMAKE_CURRENT_BINARY_DIR}/search)
set_tests_properties(search PROPERTIES LABELS "mpi" TIMEOUT 900)

# Task/result wire format round trip and the executor against a direct sampler run.
ns_test(test_task)
target_link_libraries(test_task PRIVATE ns_coordinator)
add_test(NAME task COMMAND test_task)

# The search state machine alone on a synthetic executor (300 random
# configurations x 3 result orders), search.c built with AddressSanitizer.
add_executable(test_search_machine test_search_machine.c ${CMAKE_SOURCE_DIR}/coordinator/search.c)
target_compile_options(test_search_machine PRIVATE -fsanitize=address -fno-omit-frame-pointer)
target_link_options(test_search_machine PRIVATE -fsanitize=address)
target_link_libraries(test_search_machine PRIVATE ns_coordinator)
add_test(NAME search_machine COMMAND test_search_machine)
