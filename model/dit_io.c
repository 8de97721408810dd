// Weight files of the denoiser: HDF5, one float32 dataset per PyTorch
// state_dict key at the root, the architecture as root attributes
// (docs/model.md). Every HDF5 call is checked; failures become one-line
// messages naming the file and the tensor or attribute.
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dit_io.h"
#include "../common/h5util.h"

#define FORMAT_NAME "noisesearch-dit"
#define FORMAT_VERSION 1

static void shape_string(char *buf, size_t n, int ndim, const hsize_t *dims) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%llu", i ? "," : "", (unsigned long long)dims[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

ns_status dit_config_read_attrs(hid_t loc, const char *path, dit_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    struct {
        const char *name;
        int *dst;
    } ints[] = {{"input_size", &cfg->input_size}, {"in_channels", &cfg->in_channels},
                {"patch_size", &cfg->patch_size}, {"depth", &cfg->depth},
                {"hidden_size", &cfg->hidden_size}, {"num_heads", &cfg->num_heads},
                {"num_classes", &cfg->num_classes}, {"learn_sigma", &cfg->learn_sigma}};
    ns_status st = NS_OK;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !st; i++)
        st = h5u_attr_read_int(loc, path, ints[i].name, ints[i].dst);
    double ratio = 4.0;
    if (!st) st = h5u_attr_read_double(loc, path, "mlp_ratio", &ratio);
    cfg->mlp_ratio = (float)ratio;
    if (!st && (st = dit_config_check(cfg)))
        st = ns_error_set(NS_ERR_FORMAT, "%s: architecture attributes are inconsistent: %s", path,
                          ns_error_message());
    return st;
}

ns_status dit_config_write_attrs(hid_t loc, const char *path, const dit_config *c) {
    struct {
        const char *name;
        long long value;
    } ints[] = {{"input_size", c->input_size}, {"in_channels", c->in_channels}, {"patch_size", c->patch_size},
                {"depth", c->depth},           {"hidden_size", c->hidden_size}, {"num_heads", c->num_heads},
                {"num_classes", c->num_classes}, {"learn_sigma", c->learn_sigma},
                {"format_version", FORMAT_VERSION}};
    ns_status st = NS_OK;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !st; i++)
        st = h5u_attr_write_int(loc, path, ints[i].name, ints[i].value);
    if (!st) st = h5u_attr_write_double(loc, path, "mlp_ratio", (double)c->mlp_ratio);
    if (!st) st = h5u_attr_write_string(loc, path, "format", FORMAT_NAME);
    return st;
}

ns_status dit_config_read(dit_config *cfg, const char *path) {
    hid_t file = H5I_INVALID_HID;
    ns_status st = h5u_open_read(&file, path);
    if (st) return st;
    st = dit_config_read_attrs(file, path, cfg);
    h5u_close_file(file);
    return st;
}

typedef struct {
    const dit_model *m;
    const char *path;
    ns_status st;
} extra_check;

// Any root dataset that is not in the model's table means the attributes
// and the tensors disagree (e.g. a depth-12 file whose attributes say 6).
static herr_t check_known_dataset(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    extra_check *ec = data;
    H5O_info_t oinfo;
    if (H5Oget_info_by_name2(group, name, &oinfo, H5O_INFO_BASIC, H5P_DEFAULT) < 0 || oinfo.type != H5O_TYPE_DATASET)
        return 0;
    for (int i = 0; i < ec->m->num_tensors; i++)
        if (strcmp(ec->m->tensors[i].name, name) == 0) return 0;
    ec->st = ns_error_set(NS_ERR_FORMAT,
                          "%s: unexpected tensor '%s' for the architecture in the file's attributes (depth %d, "
                          "hidden_size %d); the file is inconsistent",
                          ec->path, name, ec->m->cfg.depth, ec->m->cfg.hidden_size);
    return 1;
}

static ns_status read_tensor(hid_t file, const char *path, const dit_tensor *t, float *dst) {
    hid_t dset = H5I_INVALID_HID, space = H5I_INVALID_HID, type = H5I_INVALID_HID;
    ns_status st = NS_OK;
    hsize_t expected[4], dims[8];
    for (int i = 0; i < t->ndim; i++) expected[i] = (hsize_t)t->shape[i];
    char want[96], got[96];
    shape_string(want, sizeof want, t->ndim, expected);
    H5E_BEGIN_TRY {
        if (H5Lexists(file, t->name, H5P_DEFAULT) <= 0) {
            st = ns_error_set(NS_ERR_FORMAT, "%s: missing tensor %s (expected shape %s)", path, t->name, want);
            goto done;
        }
        dset = H5Dopen2(file, t->name, H5P_DEFAULT);
        if (dset < 0 || (space = H5Dget_space(dset)) < 0 || (type = H5Dget_type(dset)) < 0) {
            st = ns_error_set(NS_ERR_FORMAT, "%s: %s is not a readable dataset", path, t->name);
            goto done;
        }
        if (H5Tget_class(type) != H5T_FLOAT) {
            st = ns_error_set(NS_ERR_FORMAT, "%s: %s is not a floating-point tensor", path, t->name);
            goto done;
        }
        int ndim = H5Sget_simple_extent_ndims(space);
        if (ndim < 0 || ndim > 8) {
            st = ns_error_set(NS_ERR_FORMAT, "%s: %s has an unsupported shape", path, t->name);
            goto done;
        }
        H5Sget_simple_extent_dims(space, dims, NULL);
        int same = ndim == t->ndim;
        for (int i = 0; same && i < ndim; i++) same = dims[i] == expected[i];
        if (!same) {
            shape_string(got, sizeof got, ndim, dims);
            st = ns_error_set(NS_ERR_FORMAT, "%s: %s has shape %s, expected %s", path, t->name, got, want);
            goto done;
        }
        if (H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
            st = ns_error_set(NS_ERR_FORMAT, "%s: reading %s failed (file truncated or corrupt?)", path, t->name);
    done:
        if (type >= 0) H5Tclose(type);
        if (space >= 0) H5Sclose(space);
        if (dset >= 0) H5Dclose(dset);
    }
    H5E_END_TRY;
    return st;
}

ns_status dit_tensors_read(hid_t loc, const char *path, const dit_model *m, float *values) {
    ns_status st = NS_OK;
    for (int i = 0; i < m->num_tensors && !st; i++)
        st = read_tensor(loc, path, &m->tensors[i], values + m->tensors[i].offset);
    if (st) return st;
    extra_check ec = {m, path, NS_OK};
    H5E_BEGIN_TRY { H5Literate(loc, H5_INDEX_NAME, H5_ITER_INC, NULL, check_known_dataset, &ec); }
    H5E_END_TRY;
    return ec.st;
}

ns_status dit_tensors_write(hid_t loc, const char *path, const dit_model *m, const float *values) {
    ns_status st = NS_OK;
    for (int i = 0; i < m->num_tensors && !st; i++) {
        const dit_tensor *t = &m->tensors[i];
        hsize_t dims[4];
        for (int k = 0; k < t->ndim; k++) dims[k] = (hsize_t)t->shape[k];
        st = h5u_write_floats(loc, path, t->name, t->ndim, dims, values + t->offset);
    }
    return st;
}

ns_status dit_load(dit_model *m, const char *path) {
    dit_config cfg;
    memset(m, 0, sizeof *m);
    hid_t file = H5I_INVALID_HID;
    ns_status st = h5u_open_read(&file, path);
    if (!st) st = dit_config_read_attrs(file, path, &cfg);
    if (!st) st = dit_model_init(m, &cfg);
    if (!st) st = dit_tensors_read(file, path, m, m->memory);
    h5u_close_file(file);
    if (st) dit_model_free(m);
    return st;
}

ns_status dit_save(const dit_model *m, const char *path) {
    h5u_atomic_file out;
    ns_status st = h5u_atomic_create(&out, path);
    if (st) return st;
    st = dit_config_write_attrs(out.file, out.tmp_path, &m->cfg);
    if (!st) st = dit_tensors_write(out.file, out.tmp_path, m, m->memory);
    return h5u_atomic_finish(&out, st);
}

ns_status dit_group_write(hid_t loc, const char *path, const char *name, const dit_model *m, const float *values,
                          int with_config) {
    hid_t g;
    H5E_BEGIN_TRY { g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); }
    H5E_END_TRY;
    if (g < 0) return ns_error_set(NS_ERR_IO, "%s: cannot create group %s", path, name);
    ns_status st = with_config ? dit_config_write_attrs(g, path, &m->cfg) : NS_OK;
    if (!st) st = dit_tensors_write(g, path, m, values);
    H5Gclose(g);
    return st;
}

ns_status dit_group_read(hid_t loc, const char *path, const char *name, const dit_model *m, float *values) {
    hid_t g;
    H5E_BEGIN_TRY { g = H5Gopen2(loc, name, H5P_DEFAULT); }
    H5E_END_TRY;
    if (g < 0) return ns_error_set(NS_ERR_FORMAT, "%s: missing group '%s'", path, name);
    char where[4200];
    snprintf(where, sizeof where, "%s:/%s", path, name);
    ns_status st = dit_tensors_read(g, where, m, values);
    H5Gclose(g);
    return st;
}
