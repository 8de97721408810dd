// Group-level pieces of the weight-file format (docs/model.md), for files
// that hold more than one parameter set, e.g. training checkpoints (model,
// EMA and optimizer moments, each a group of state_dict-named datasets).
// dit_load / dit_save in dit.h are whole-file wrappers over these.
#ifndef NS_DIT_IO_H
#define NS_DIT_IO_H

#include <hdf5.h>

#include "dit.h"

// Architecture attributes on loc (a file or group); path names it in errors.
ns_status dit_config_read_attrs(hid_t loc, const char *path, dit_config *cfg);
ns_status dit_config_write_attrs(hid_t loc, const char *path, const dit_config *cfg);

// One dataset per tensor of m's table under loc; values in m's parameter
// layout (m->num_params floats: weights, gradients or optimizer moments).
// read checks every name and shape and refuses unexpected datasets.
ns_status dit_tensors_read(hid_t loc, const char *path, const dit_model *m, float *values);
ns_status dit_tensors_write(hid_t loc, const char *path, const dit_model *m, const float *values);

// The same as a new group `name` under loc (with the architecture attributes
// when with_config), and read back from an existing one; a missing group is
// NS_ERR_FORMAT naming it.
ns_status dit_group_write(hid_t loc, const char *path, const char *name, const dit_model *m, const float *values,
                          int with_config);
ns_status dit_group_read(hid_t loc, const char *path, const char *name, const dit_model *m, float *values);

#endif
