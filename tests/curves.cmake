# Scaling curves (issue 6): included by tests/CMakeLists.txt.

# noisesearch curves end to end on tiny models: five tiny searches, eval,
# the CSV / HDF5 table against the logs and /evaluation, the gnuplot data and
# PNGs, evaluation through eval's code path, and the one-line errors.
add_test(NAME curves
         COMMAND ${NS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_curves.py $<TARGET_FILE:noisesearch>
                 ${CMAKE_CURRENT_BINARY_DIR}/curves)
set_tests_properties(curves PROPERTIES LABELS reference)

# tools/study.sh (the study without Slurm) on tiny models: a 4-task grid to
# the curves; TERM mid-study exits 3 and a rerun ends bitwise identical.
add_test(NAME study
         COMMAND ${NS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_study.py $<TARGET_FILE:noisesearch>
                 ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/study)
set_tests_properties(study PROPERTIES LABELS "reference;mpi" TIMEOUT 600)
