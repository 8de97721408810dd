// Checked HDF5 helpers (see h5util.h).
#include "h5util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ns_status h5u_open_read(hid_t *file, const char *path) {
    *file = H5I_INVALID_HID;
    if (access(path, R_OK) != 0)
        return ns_error_set(NS_ERR_IO, "%s: cannot read file: %s", path, strerror(errno));
    htri_t is_h5;
    H5E_BEGIN_TRY { is_h5 = H5Fis_hdf5(path); }
    H5E_END_TRY;
    if (is_h5 <= 0) return ns_error_set(NS_ERR_FORMAT, "%s: not an HDF5 file", path);
    H5E_BEGIN_TRY { *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (*file < 0) return ns_error_set(NS_ERR_FORMAT, "%s: cannot open HDF5 file (truncated or corrupt?)", path);
    return NS_OK;
}

void h5u_close_file(hid_t file) {
    if (file < 0) return;
    H5E_BEGIN_TRY { H5Fclose(file); }
    H5E_END_TRY;
}

static ns_status attr_read(hid_t obj, const char *path, const char *name, hid_t mem_type, void *out) {
    ns_status st = NS_OK;
    hid_t attr = H5I_INVALID_HID, space = H5I_INVALID_HID;
    H5E_BEGIN_TRY {
        if (H5Aexists(obj, name) <= 0) {
            st = ns_error_set(NS_ERR_FORMAT, "%s: missing attribute '%s'", path, name);
        } else if ((attr = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (space = H5Aget_space(attr)) < 0 ||
                   H5Sget_simple_extent_npoints(space) != 1) {
            st = ns_error_set(NS_ERR_FORMAT, "%s: attribute '%s' is not a scalar", path, name);
        } else if (H5Aread(attr, mem_type, out) < 0) {
            st = ns_error_set(NS_ERR_FORMAT, "%s: attribute '%s' is not a number", path, name);
        }
        if (space >= 0) H5Sclose(space);
        if (attr >= 0) H5Aclose(attr);
    }
    H5E_END_TRY;
    return st;
}

ns_status h5u_attr_read_int(hid_t obj, const char *path, const char *name, int *out) {
    long long v = 0;
    ns_status st = attr_read(obj, path, name, H5T_NATIVE_LLONG, &v);
    if (st) return st;
    if (v < -2147483647LL || v > 2147483647LL)
        return ns_error_set(NS_ERR_FORMAT, "%s: attribute '%s' = %lld is out of range", path, name, v);
    *out = (int)v;
    return NS_OK;
}

ns_status h5u_attr_read_double(hid_t obj, const char *path, const char *name, double *out) {
    return attr_read(obj, path, name, H5T_NATIVE_DOUBLE, out);
}

ns_status h5u_attr_read_string(hid_t obj, const char *path, const char *name, char *buf, size_t size) {
    ns_status st = NS_OK;
    hid_t attr = H5I_INVALID_HID, ftype = H5I_INVALID_HID, mtype = H5I_INVALID_HID;
    buf[0] = '\0';
    H5E_BEGIN_TRY {
        if (H5Aexists(obj, name) <= 0) {
            st = ns_error_set(NS_ERR_FORMAT, "%s: missing attribute '%s'", path, name);
        } else if ((attr = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (ftype = H5Aget_type(attr)) < 0 ||
                   H5Tget_class(ftype) != H5T_STRING) {
            st = ns_error_set(NS_ERR_FORMAT, "%s: attribute '%s' is not a string", path, name);
        } else if (H5Tis_variable_str(ftype) > 0) {
            char *value = NULL;
            mtype = H5Tcopy(H5T_C_S1);
            H5Tset_size(mtype, H5T_VARIABLE);
            H5Tset_cset(mtype, H5Tget_cset(ftype));  // no ASCII <-> UTF-8 conversion exists
            if (H5Aread(attr, mtype, &value) < 0 || !value) {
                st = ns_error_set(NS_ERR_FORMAT, "%s: cannot read attribute '%s'", path, name);
            } else {
                snprintf(buf, size, "%s", value);
                H5free_memory(value);
            }
        } else {
            size_t n = H5Tget_size(ftype);
            char *tmp = ns_calloc(n + 1, 1, name);
            mtype = H5Tcopy(H5T_C_S1);
            H5Tset_size(mtype, n + 1);
            H5Tset_cset(mtype, H5Tget_cset(ftype));
            if (H5Aread(attr, mtype, tmp) < 0) st = ns_error_set(NS_ERR_FORMAT, "%s: cannot read attribute '%s'", path, name);
            else snprintf(buf, size, "%s", tmp);
            free(tmp);
        }
        if (mtype >= 0) H5Tclose(mtype);
        if (ftype >= 0) H5Tclose(ftype);
        if (attr >= 0) H5Aclose(attr);
    }
    H5E_END_TRY;
    return st;
}

static ns_status attr_write(hid_t obj, const char *path, const char *name, hid_t file_type, hid_t mem_type,
                            const void *value) {
    ns_status st = NS_OK;
    hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    H5E_BEGIN_TRY {
        if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
        if ((space = H5Screate(H5S_SCALAR)) < 0 ||
            (attr = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
            H5Awrite(attr, mem_type, value) < 0)
            st = ns_error_set(NS_ERR_IO, "%s: cannot write attribute '%s'", path, name);
        if (attr >= 0) H5Aclose(attr);
        if (space >= 0) H5Sclose(space);
    }
    H5E_END_TRY;
    return st;
}

ns_status h5u_attr_write_int(hid_t obj, const char *path, const char *name, long long value) {
    return attr_write(obj, path, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &value);
}

ns_status h5u_attr_write_double(hid_t obj, const char *path, const char *name, double value) {
    return attr_write(obj, path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

// Variable-length UTF-8, which h5py reads back as str (fixed-length gives bytes).
ns_status h5u_attr_write_string(hid_t obj, const char *path, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    ns_status st = attr_write(obj, path, name, type, type, &value);
    H5Tclose(type);
    return st;
}

static ns_status write_dataset(hid_t loc, const char *path, const char *name, int ndim, const hsize_t *dims,
                               hid_t file_type, hid_t mem_type, const void *data) {
    ns_status st = NS_OK;
    hid_t space = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    H5E_BEGIN_TRY {
        if ((space = H5Screate_simple(ndim, dims, NULL)) < 0 ||
            (dset = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
            H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
            st = ns_error_set(NS_ERR_IO, "%s: cannot write dataset '%s' (disk full or unwritable?)", path, name);
        if (dset >= 0) H5Dclose(dset);
        if (space >= 0) H5Sclose(space);
    }
    H5E_END_TRY;
    return st;
}

ns_status h5u_write_floats(hid_t loc, const char *path, const char *name, int ndim, const hsize_t *dims,
                           const float *data) {
    return write_dataset(loc, path, name, ndim, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data);
}

ns_status h5u_write_ints(hid_t loc, const char *path, const char *name, int ndim, const hsize_t *dims,
                         const int *data) {
    return write_dataset(loc, path, name, ndim, dims, H5T_STD_I32LE, H5T_NATIVE_INT, data);
}

static ns_status read_dataset(hid_t loc, const char *path, const char *name, int ndim, hsize_t *dims,
                              hid_t mem_type, size_t elem, void **out) {
    ns_status st = NS_OK;
    hid_t dset = H5I_INVALID_HID, space = H5I_INVALID_HID;
    *out = NULL;
    H5E_BEGIN_TRY {
        if (H5Lexists(loc, name, H5P_DEFAULT) <= 0 || (dset = H5Dopen2(loc, name, H5P_DEFAULT)) < 0 ||
            (space = H5Dget_space(dset)) < 0) {
            st = ns_error_set(NS_ERR_FORMAT, "%s: missing dataset '%s'", path, name);
        } else if (H5Sget_simple_extent_ndims(space) != ndim) {
            st = ns_error_set(NS_ERR_FORMAT, "%s: dataset '%s' has rank %d, expected %d", path, name,
                              H5Sget_simple_extent_ndims(space), ndim);
        } else {
            H5Sget_simple_extent_dims(space, dims, NULL);
            size_t n = 1;
            for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
            *out = ns_malloc(n * elem, name);
            if (H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
                st = ns_error_set(NS_ERR_FORMAT, "%s: cannot read dataset '%s' (truncated or corrupt?)", path, name);
                free(*out);
                *out = NULL;
            }
        }
        if (space >= 0) H5Sclose(space);
        if (dset >= 0) H5Dclose(dset);
    }
    H5E_END_TRY;
    return st;
}

ns_status h5u_write_doubles(hid_t loc, const char *path, const char *name, int ndim, const hsize_t *dims,
                            const double *data) {
    return write_dataset(loc, path, name, ndim, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data);
}

ns_status h5u_read_doubles(hid_t loc, const char *path, const char *name, int ndim, hsize_t *dims, double **out) {
    return read_dataset(loc, path, name, ndim, dims, H5T_NATIVE_DOUBLE, sizeof(double), (void **)out);
}

ns_status h5u_read_floats(hid_t loc, const char *path, const char *name, int ndim, hsize_t *dims, float **out) {
    return read_dataset(loc, path, name, ndim, dims, H5T_NATIVE_FLOAT, sizeof(float), (void **)out);
}

ns_status h5u_read_ints(hid_t loc, const char *path, const char *name, int ndim, hsize_t *dims, int **out) {
    return read_dataset(loc, path, name, ndim, dims, H5T_NATIVE_INT, sizeof(int), (void **)out);
}

ns_status h5u_atomic_create(h5u_atomic_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->file = H5I_INVALID_HID;
    if (strlen(path) >= sizeof f->path) return ns_error_set(NS_ERR_ARG, "output path too long: %s", path);
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->tmp_path, sizeof f->tmp_path, "%s.tmp.%ld", path, (long)getpid());
    H5E_BEGIN_TRY { f->file = H5Fcreate(f->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT); }
    H5E_END_TRY;
    if (f->file < 0) {
        int err = errno;
        return ns_error_set(NS_ERR_IO, "%s: cannot create file: %s", path, err ? strerror(err) : "HDF5 error");
    }
    return NS_OK;
}

ns_status h5u_atomic_finish(h5u_atomic_file *f, ns_status st) {
    herr_t closed;
    H5E_BEGIN_TRY { closed = H5Fclose(f->file); }
    H5E_END_TRY;
    f->file = H5I_INVALID_HID;
    if (!st && closed < 0) st = ns_error_set(NS_ERR_IO, "%s: closing the file failed (disk full?)", f->path);
    if (!st && rename(f->tmp_path, f->path) != 0)
        st = ns_error_set(NS_ERR_IO, "%s: cannot move the finished file into place: %s", f->path, strerror(errno));
    if (st) unlink(f->tmp_path);
    return st;
}
