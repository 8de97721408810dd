// Small checked helpers over the HDF5 C API, shared by every module that
// reads or writes HDF5 (weights, sample files, run logs). Each returns an
// ns_status with a message naming the file and the object; HDF5's own error
// stack printing is suppressed inside them.
#ifndef NS_H5UTIL_H
#define NS_H5UTIL_H

#include <hdf5.h>

#include "status.h"

// Open read-only. Distinguishes a missing file, a non-HDF5 file and a
// truncated/corrupt one in the message.
ns_status h5u_open_read(hid_t *file, const char *path);
void h5u_close_file(hid_t file);  // accepts H5I_INVALID_HID

// Root-or-object attributes (obj is a file or group id).
ns_status h5u_attr_read_int(hid_t obj, const char *path, const char *name, int *out);
ns_status h5u_attr_read_double(hid_t obj, const char *path, const char *name, double *out);
// A string attribute into buf (truncated to size - 1 characters).
ns_status h5u_attr_read_string(hid_t obj, const char *path, const char *name, char *buf, size_t size);
ns_status h5u_attr_write_int(hid_t obj, const char *path, const char *name, long long value);
ns_status h5u_attr_write_double(hid_t obj, const char *path, const char *name, double value);
ns_status h5u_attr_write_string(hid_t obj, const char *path, const char *name, const char *value);

// Whole datasets. write: contiguous, native type. read: the dataset must
// have rank ndim; its dims are stored in dims and *out is malloc'ed
// (caller frees).
ns_status h5u_write_floats(hid_t loc, const char *path, const char *name, int ndim, const hsize_t *dims,
                           const float *data);
ns_status h5u_write_ints(hid_t loc, const char *path, const char *name, int ndim, const hsize_t *dims,
                         const int *data);
ns_status h5u_write_doubles(hid_t loc, const char *path, const char *name, int ndim, const hsize_t *dims,
                            const double *data);
ns_status h5u_read_doubles(hid_t loc, const char *path, const char *name, int ndim, hsize_t *dims, double **out);
ns_status h5u_read_floats(hid_t loc, const char *path, const char *name, int ndim, hsize_t *dims, float **out);
ns_status h5u_read_ints(hid_t loc, const char *path, const char *name, int ndim, hsize_t *dims, int **out);

// A file written under a temporary name and renamed into place only when
// complete, so a failure or a kill never leaves a half-written file at path.
typedef struct {
    hid_t file;
    char path[4096];
    char tmp_path[4096 + 32];
} h5u_atomic_file;

ns_status h5u_atomic_create(h5u_atomic_file *f, const char *path);
// st == NS_OK: close and rename into place (returns the close/rename status);
// otherwise close, delete the temporary file and return st unchanged.
ns_status h5u_atomic_finish(h5u_atomic_file *f, ns_status st);

#endif
