# slurm/*.sbatch on a one-node Slurm that tests/slurm/cluster.sh starts and
# stops around the test (munged, slurmctld, slurmd; needs root and the
# slurm-wlm and munge packages): completion, requeue + resume, the USR1
# warning, a sweep array + collect. About a minute on 2 cores.
add_test(NAME slurm
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/slurm/cluster.sh
                 ${NS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_slurm.py $<TARGET_FILE:noisesearch>
                 ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/slurm)
set_tests_properties(slurm PROPERTIES LABELS "slurm;mpi" TIMEOUT 400)
