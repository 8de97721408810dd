// The HDF5 run log (runlog.h, docs/hdf5-layout.md). Rank 0 only, default
// sec2 driver: SWMR through MPI-IO hangs at close (docs environment.md).
//
// SWMR rules this file keeps: every dataset and attribute exists before
// H5Fstart_swmr_write; afterwards the writer only extends datasets, writes
// rows and rewrites the values of existing attributes in place (finished,
// status at close). Reopening without SWMR to write them would fail while a
// live reader holds the file (its shared lock), so it is never needed.
//
// Crash safety rests on one order, kept by runlog_flush: candidate and
// trajectory rows are written and H5Dflush'ed, then the /searches columns,
// /searches/search last. Integer columns have fill value -1, so a
// /searches/search row reads -1 until its data is on disk: the complete
// searches are the rows before the first -1, and everything they reference
// was flushed before them. runlog_add buffers rows in fixed-size buffers and
// touches the file only when one is full, so memory stays flat however long
// the run.
#include "runlog.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/h5util.h"
#include "../common/sha256.h"

#define RUNLOG_VERSION 1
#define TABLE_BUFFER_BYTES (2u << 20)  // rows held per table before they go to the file
#define CHUNK_BYTES (128u << 10)       // target chunk size; 4096 rows at most
#define COMPRESSED_CHUNK_BYTES (32u << 10)
#define GZIP_LEVEL 1                   // float tensors: shuffle + deflate 1
#define CHUNK_CACHE_CHUNKS 4           // chunks cached per column

#define TRY(call)                        \
    do {                                 \
        ns_status try_st_ = (call);      \
        if (try_st_) return try_st_;     \
    } while (0)

// ---------------------------------------------------------------------------
// The layout as tables: one row struct per table, one entry per column.

typedef enum { COL_I32, COL_I64, COL_U64, COL_F32, COL_F64 } col_type;
typedef enum { W_ONE, W_SCORES, W_SAMPLE, W_FID } col_width;  // trailing dims: -, (K), (C,H,W), (D)
typedef enum { ON_ALWAYS, ON_NOISE, ON_X1_HAT, ON_FID } col_when;

typedef struct {
    const char *name;
    col_type type;
    col_width width;
    size_t offset;  // of the value in the row struct; W_SAMPLE/W_FID: of a const float * (NULL: NaN row)
    col_when when;
    const char *units, *description;
} column;

typedef struct {
    runlog_search s;
    int64_t candidates, first_candidate_row;
} search_row;

typedef struct {
    int64_t candidate_row;
    float t;
    const float *state;
} trajectory_row;

#define CAND(f) offsetof(runlog_candidate, f)
#define SRCH(f) offsetof(search_row, f)

static const column candidate_cols[] = {
    {"search", COL_I64, W_ONE, CAND(search), ON_ALWAYS, "1",
     "search id (row of /searches once the search is complete), 0.. class-major"},
    {"candidate", COL_I64, W_ONE, CAND(candidate), ON_ALWAYS, "1",
     "candidate id within its search, 0.. in the order the algorithm created them"},
    {"label", COL_I32, W_ONE, CAND(label), ON_ALWAYS, "class", "conditioning class"},
    {"round", COL_I32, W_ONE, CAND(round), ON_ALWAYS, "1",
     "algorithm round that created the candidate (random: 0; zero_order: iteration; paths: branching round)"},
    {"parent", COL_I64, W_ONE, CAND(parent), ON_ALWAYS, "1",
     "candidate id this one was derived from (zero_order: pivot, paths: branched path); -1: none"},
    {"noise_stream", COL_U64, W_ONE, CAND(noise_stream), ON_ALWAYS, "1",
     "Philox stream of the candidate's fresh noise (key: the run seed)"},
    {"noise_base", COL_U64, W_ONE, CAND(noise_base), ON_ALWAYS, "1", "Philox counter the noise starts from"},
    {"t_a", COL_F32, W_ONE, CAND(t_a), ON_ALWAYS, "t (0 noise, 1 data)", "start of the integrated interval"},
    {"t_b", COL_F32, W_ONE, CAND(t_b), ON_ALWAYS, "t (0 noise, 1 data)", "end of the integrated interval"},
    {"nfe", COL_I32, W_ONE, CAND(nfe), ON_ALWAYS, "NFE",
     "denoiser forward passes spent on the candidate (guided steps count 2)"},
    {"scores", COL_F64, W_SCORES, CAND(scores), ON_ALWAYS, "verifier score",
     "score under each verifier kind (columns: root attribute score_names), higher is better; NaN: not computed"},
    {"score", COL_F64, W_ONE, CAND(score), ON_ALWAYS, "verifier score",
     "the value the algorithm compared (ensemble: weighted mean rank within the round)"},
    {"worker", COL_I32, W_ONE, CAND(worker), ON_ALWAYS, "1", "MPI rank that ran the candidate"},
    {"seconds", COL_F64, W_ONE, CAND(seconds), ON_ALWAYS, "s", "worker wall-clock seconds on the candidate"},
    {"verifier_seconds", COL_F64, W_ONE, CAND(verifier_seconds), ON_ALWAYS, "s",
     "of which scoring with the verifiers"},
    {"noise", COL_F32, W_SAMPLE, CAND(noise), ON_NOISE, "1 (standard normal)",
     "the candidate's start state: its initial noise (paths: the re-noised state it started from)"},
    {"x1_hat", COL_F32, W_SAMPLE, CAND(x1_hat), ON_X1_HAT, "pixel value in [-1, 1]",
     "the clean-sample prediction the verifiers scored"},
};

// Columns of /searches the code reads by position.
enum { S_SEARCH = 0, S_LABEL = 1, S_CANDIDATES = 4, S_FIRST_CANDIDATE_ROW = 5, S_FID_FEATURES = 13 };

static const column search_cols[] = {
    // /searches/search is the commit marker: written and flushed last (see the top of the file).
    [S_SEARCH] = {"search", COL_I64, W_ONE, SRCH(s.search), ON_ALWAYS, "1", "search id, 0.. class-major; -1: row not yet written"},
    [S_LABEL] = {"label", COL_I32, W_ONE, SRCH(s.label), ON_ALWAYS, "class", "conditioning class"},
    {"index", COL_I32, W_ONE, SRCH(s.index), ON_ALWAYS, "1", "sample index within the class"},
    {"chosen", COL_I64, W_ONE, SRCH(s.chosen), ON_ALWAYS, "1",
     "candidate id of the chosen candidate (its row: first_candidate_row + chosen); -1: none"},
    [S_CANDIDATES] = {"candidates", COL_I64, W_ONE, SRCH(candidates), ON_ALWAYS, "1", "number of the search's rows in /candidates"},
    [S_FIRST_CANDIDATE_ROW] = {"first_candidate_row", COL_I64, W_ONE, SRCH(first_candidate_row), ON_ALWAYS, "1",
     "the search's candidates are rows [first_candidate_row, first_candidate_row + candidates) of /candidates"},
    {"search_nfe", COL_I64, W_ONE, SRCH(s.search_nfe), ON_ALWAYS, "NFE", "denoiser NFEs of all the search's candidates"},
    {"final_nfe", COL_I64, W_ONE, SRCH(s.final_nfe), ON_ALWAYS, "NFE", "denoiser NFEs of the final denoising"},
    {"verifier_nfe", COL_F64, W_ONE, SRCH(s.verifier_nfe), ON_ALWAYS, "NFE (denoiser-forward equivalents)",
     "verifier cost: FLOPs of the verifier forwards over the FLOPs of one denoiser forward"},
    {"verifier_seconds", COL_F64, W_ONE, SRCH(s.verifier_seconds), ON_ALWAYS, "s", "seconds spent in verifiers"},
    {"wall_seconds", COL_F64, W_ONE, SRCH(s.wall_seconds), ON_ALWAYS, "s",
     "wall-clock seconds from the search's first task to its final sample"},
    {"score", COL_F64, W_ONE, SRCH(s.score), ON_ALWAYS, "verifier score",
     "verifier score of the final sample; NaN where not defined (ensemble, fid_oracle)"},
    {"sample", COL_F32, W_SAMPLE, SRCH(s.sample), ON_ALWAYS, "pixel value in [-1, 1]", "the final sample"},
    [S_FID_FEATURES] = {"fid_features", COL_F32, W_FID, SRCH(s.fid_features), ON_FID, "1",
     "evaluator features of the chosen candidate (fid_oracle runs); NaN: none"},
};

static const column trajectory_cols[] = {
    {"candidate_row", COL_I64, W_ONE, offsetof(trajectory_row, candidate_row), ON_ALWAYS, "1",
     "row of /candidates the state belongs to"},
    {"t", COL_F32, W_ONE, offsetof(trajectory_row, t), ON_ALWAYS, "t (0 noise, 1 data)", "time of the state"},
    {"state", COL_F32, W_SAMPLE, offsetof(trajectory_row, state), ON_ALWAYS, "pixel scale (x_t)",
     "sampler state x_t (every trajectory_stride-th step)"},
};

typedef enum { T_CAND, T_SRCH, T_TRAJ, T_COUNT } table_id;

typedef struct {
    const char *group;
    const column *cols;
    int n;
} table_def;

static const table_def tables[T_COUNT] = {
    {"candidates", candidate_cols, (int)(sizeof candidate_cols / sizeof candidate_cols[0])},
    {"searches", search_cols, (int)(sizeof search_cols / sizeof search_cols[0])},
    {"trajectories", trajectory_cols, (int)(sizeof trajectory_cols / sizeof trajectory_cols[0])},
};

static runlog_table *table_of(runlog *l, table_id t) {
    return t == T_CAND ? &l->cand : t == T_SRCH ? &l->srch : &l->traj;
}

static int table_on(const runlog *l, table_id t) { return t != T_TRAJ || l->log_trajectories; }

static int col_on(const runlog *l, const column *c) {
    switch (c->when) {
    case ON_NOISE: return l->log_noise;
    case ON_X1_HAT: return l->log_x1_hat;
    case ON_FID: return l->fid_dim > 0;
    default: return 1;
    }
}

static size_t type_size(col_type t) { return t == COL_I32 || t == COL_F32 ? 4 : 8; }

static hid_t file_type(col_type t) {
    switch (t) {
    case COL_I32: return H5T_STD_I32LE;
    case COL_I64: return H5T_STD_I64LE;
    case COL_U64: return H5T_STD_U64LE;
    case COL_F32: return H5T_IEEE_F32LE;
    default: return H5T_IEEE_F64LE;
    }
}

static hid_t mem_type(col_type t) {
    switch (t) {
    case COL_I32: return H5T_NATIVE_INT32;
    case COL_I64: return H5T_NATIVE_INT64;
    case COL_U64: return H5T_NATIVE_UINT64;
    case COL_F32: return H5T_NATIVE_FLOAT;
    default: return H5T_NATIVE_DOUBLE;
    }
}

// Values per row, and the dataset's dims after the row dim (returns the rank).
static int64_t col_values(const runlog *l, const column *c) {
    return c->width == W_SCORES ? VERIFIER_KINDS : c->width == W_SAMPLE ? l->dim : c->width == W_FID ? l->fid_dim : 1;
}

static int col_dims(const runlog *l, const column *c, int64_t rows, hsize_t dims[4]) {
    dims[0] = (hsize_t)rows;
    switch (c->width) {
    case W_SCORES: dims[1] = VERIFIER_KINDS; return 2;
    case W_FID: dims[1] = (hsize_t)l->fid_dim; return 2;
    case W_SAMPLE:
        dims[1] = (hsize_t)l->meta.channels, dims[2] = (hsize_t)l->meta.height, dims[3] = (hsize_t)l->meta.width;
        return 4;
    default: return 1;
    }
}

static size_t col_row_bytes(const runlog *l, const column *c) { return (size_t)col_values(l, c) * type_size(c->type); }

// Tensor columns: a const float * in the row struct, stored shuffled + gzip.
static int tensor_col(const column *c) { return c->width == W_SAMPLE || c->width == W_FID; }

// A SWMR writer never reuses freed file space, and every flush rewrites the
// last, partial chunk of a compressed column elsewhere: small chunks there
// bound the dead space a flush leaves (docs/hdf5-layout.md).
static int64_t chunk_rows(const runlog *l, const column *c) {
    int64_t rows = (int64_t)((tensor_col(c) ? COMPRESSED_CHUNK_BYTES : CHUNK_BYTES) / col_row_bytes(l, c));
    return rows < 1 ? 1 : rows > 4096 ? 4096 : rows;
}

// ---------------------------------------------------------------------------
// Small HDF5 pieces h5util lacks: array attributes, in-place string update,
// row ranges.

// NS_HDF5_ERRORS=1 in the environment prints HDF5's own error stack first.
static ns_status io_error(const runlog *l, const char *what) {
    if (getenv("NS_HDF5_ERRORS")) H5Eprint2(H5E_DEFAULT, stderr);
    return ns_error_set(NS_ERR_IO, "%s: %s (disk full or unwritable?)", l->path, what);
}

static ns_status attr_write_array(hid_t obj, const char *path, const char *name, hid_t ftype, hid_t mtype,
                                  hsize_t n, const void *values) {
    ns_status st = NS_OK;
    hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    H5E_BEGIN_TRY {
        if ((space = H5Screate_simple(1, &n, NULL)) < 0 ||
            (attr = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
            H5Awrite(attr, mtype, values) < 0)
            st = ns_error_set(NS_ERR_IO, "%s: cannot write attribute '%s'", path, name);
        if (attr >= 0) H5Aclose(attr);
        if (space >= 0) H5Sclose(space);
    }
    H5E_END_TRY;
    return st;
}

static hid_t utf8_string_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

// The attributes rewritten while SWMR writing (status, finished, resumed)
// are fixed-length strings: rewriting one is a single in-place write of its
// object-header message, while a variable-length value goes through the
// global heap, which a kill in the middle of an update left unreadable
// (measured). h5py reads them as bytes.
#define STATUS_CHARS 512
#define TIME_CHARS 32

static ns_status attr_create_fixed(hid_t obj, const char *path, const char *name, size_t size, const char *value) {
    ns_status st = NS_OK;
    char *buf = ns_calloc(size, 1, "attribute");
    snprintf(buf, size, "%s", value);
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    H5Tset_size(type, size);
    H5Tset_strpad(type, H5T_STR_NULLTERM);
    H5Tset_cset(type, H5T_CSET_UTF8);
    H5E_BEGIN_TRY {
        if ((attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 || H5Awrite(attr, type, buf) < 0)
            st = ns_error_set(NS_ERR_IO, "%s: cannot write attribute '%s'", path, name);
        if (attr >= 0) H5Aclose(attr);
    }
    H5E_END_TRY;
    H5Tclose(type), H5Sclose(space);
    free(buf);
    return st;
}

// Rewrite a fixed-length string attribute in place (truncated to its size).
static ns_status attr_update_string(hid_t obj, const char *path, const char *name, const char *value) {
    ns_status st = NS_OK;
    hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID;
    char *buf = NULL;
    H5E_BEGIN_TRY {
        size_t size = 0;
        if ((attr = H5Aopen(obj, name, H5P_DEFAULT)) >= 0 && (type = H5Aget_type(attr)) >= 0 &&
            !H5Tis_variable_str(type))
            size = H5Tget_size(type);
        if (size) {
            buf = ns_calloc(size, 1, "attribute");
            snprintf(buf, size, "%s", value);
        }
        if (!size || H5Awrite(attr, type, buf) < 0)
            st = ns_error_set(NS_ERR_IO, "%s: cannot update attribute '%s'", path, name);
        if (type >= 0) H5Tclose(type);
        if (attr >= 0) H5Aclose(attr);
    }
    H5E_END_TRY;
    free(buf);
    return st;
}

static ns_status attr_update_int(hid_t obj, const char *path, const char *name, long long value) {
    ns_status st = NS_OK;
    hid_t attr = H5I_INVALID_HID;
    H5E_BEGIN_TRY {
        if ((attr = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || H5Awrite(attr, H5T_NATIVE_LLONG, &value) < 0)
            st = ns_error_set(NS_ERR_IO, "%s: cannot update attribute '%s'", path, name);
        if (attr >= 0) H5Aclose(attr);
    }
    H5E_END_TRY;
    return st;
}

// A string attribute of any length, malloc'ed (NULL after an error).
static ns_status attr_read_string_alloc(hid_t obj, const char *path, const char *name, char **out) {
    ns_status st = NS_OK;
    hid_t attr = H5I_INVALID_HID, ftype = H5I_INVALID_HID, mtype = utf8_string_type();
    char *value = NULL;
    *out = NULL;
    H5E_BEGIN_TRY {
        if (H5Aexists(obj, name) <= 0 || (attr = H5Aopen(obj, name, H5P_DEFAULT)) < 0 ||
            (ftype = H5Aget_type(attr)) < 0 || H5Tis_variable_str(ftype) <= 0 || H5Aread(attr, mtype, &value) < 0 ||
            !value)
            st = ns_error_set(NS_ERR_FORMAT, "%s: missing or unreadable string attribute '%s'", path, name);
        if (ftype >= 0) H5Tclose(ftype);
        if (attr >= 0) H5Aclose(attr);
    }
    H5E_END_TRY;
    H5Tclose(mtype);
    if (!st) {
        size_t n = strlen(value) + 1;
        *out = ns_malloc(n, name);
        memcpy(*out, value, n);
    }
    if (value) H5free_memory(value);
    return st;
}

// Rows [row, row + count) of a column into out (native type).
static ns_status read_rows(const runlog *l, hid_t dset, const column *c, int64_t row, int64_t count, void *out) {
    ns_status st = NS_OK;
    hsize_t start[4] = {(hsize_t)row, 0, 0, 0}, dims[4];
    int rank = col_dims(l, c, count, dims);
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    H5E_BEGIN_TRY {
        if ((fspace = H5Dget_space(dset)) < 0 ||
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, dims, NULL) < 0 ||
            (mspace = H5Screate_simple(rank, dims, NULL)) < 0 ||
            H5Dread(dset, mem_type(c->type), mspace, fspace, H5P_DEFAULT, out) < 0)
            st = ns_error_set(NS_ERR_FORMAT, "%s: cannot read rows %lld..%lld of '%s' (truncated or corrupt?)", l->path,
                              (long long)row, (long long)(row + count - 1), c->name);
        if (mspace >= 0) H5Sclose(mspace);
        if (fspace >= 0) H5Sclose(fspace);
    }
    H5E_END_TRY;
    return st;
}

static int64_t dset_rows(hid_t dset) {
    hsize_t dims[4] = {0};
    hid_t space = H5Dget_space(dset);
    if (space < 0) return -1;
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    return (int64_t)dims[0];
}

static ns_status set_rows(runlog *l, hid_t dset, const column *c, int64_t rows) {
    hsize_t dims[4];
    col_dims(l, c, rows, dims);
    herr_t e;
    H5E_BEGIN_TRY { e = H5Dset_extent(dset, dims); }
    H5E_END_TRY;
    return e < 0 ? io_error(l, "cannot resize a dataset") : NS_OK;
}

// ---------------------------------------------------------------------------
// Open state.

static void reset(runlog *l) {
    memset(l, 0, sizeof *l);
    l->file = H5I_INVALID_HID;
    for (int t = 0; t < T_COUNT; t++)
        for (int i = 0; i < RUNLOG_MAX_COLUMNS; i++) table_of(l, t)->dset[i] = H5I_INVALID_HID;
}

static void close_tables(runlog *l) {
    for (int t = 0; t < T_COUNT; t++) {
        runlog_table *tb = table_of(l, t);
        for (int i = 0; i < RUNLOG_MAX_COLUMNS; i++) {
            if (tb->dset[i] > 0) {
                H5E_BEGIN_TRY { H5Dclose(tb->dset[i]); }
                H5E_END_TRY;
            }
            tb->dset[i] = H5I_INVALID_HID;
        }
    }
}

static void free_all(runlog *l) {
    close_tables(l);
    if (l->file > 0) h5u_close_file(l->file);
    l->file = H5I_INVALID_HID;
    for (int t = 0; t < T_COUNT; t++)
        for (int i = 0; i < RUNLOG_MAX_COLUMNS; i++) free(table_of(l, t)->buf[i]), table_of(l, t)->buf[i] = NULL;
}

// Copy what the log needs from m and check it.
static ns_status setup(runlog *l, const char *path, const runlog_meta *m) {
    if (strlen(path) >= sizeof l->path) return ns_error_set(NS_ERR_ARG, "run log path too long: %s", path);
    snprintf(l->path, sizeof l->path, "%s", path);
    if (m->channels < 1 || m->height < 1 || m->width < 1 || (int64_t)m->channels * m->height * m->width > (1 << 24))
        return ns_error_set(NS_ERR_ARG, "%s: bad sample shape (%d, %d, %d)", path, m->channels, m->height, m->width);
    if (m->fid_dim < 0 || m->fid_dim > (1 << 20))
        return ns_error_set(NS_ERR_ARG, "%s: bad fid feature dimension %d", path, m->fid_dim);
    for (int t = 0; t < T_COUNT; t++) NS_CHECK(tables[t].n <= RUNLOG_MAX_COLUMNS);
    l->meta = *m;
    l->dim = m->channels * m->height * m->width;
    l->fid_dim = m->fid_dim;
    l->log_noise = m->log_noise != 0;
    l->log_x1_hat = m->log_x1_hat != 0;
    l->log_trajectories = m->log_trajectories != 0;
    return NS_OK;
}

// Row buffers sized so each table holds about TABLE_BUFFER_BYTES.
static void alloc_buffers(runlog *l) {
    for (int t = 0; t < T_COUNT; t++) {
        if (!table_on(l, t)) continue;
        runlog_table *tb = table_of(l, t);
        size_t row = 0;
        for (int i = 0; i < tables[t].n; i++)
            if (col_on(l, &tables[t].cols[i])) row += col_row_bytes(l, &tables[t].cols[i]);
        int64_t cap = (int64_t)(TABLE_BUFFER_BYTES / row);
        tb->cap = cap < 16 ? 16 : cap > 4096 ? 4096 : cap;
        for (int i = 0; i < tables[t].n; i++)
            if (col_on(l, &tables[t].cols[i]))
                tb->buf[i] = ns_malloc((size_t)tb->cap * col_row_bytes(l, &tables[t].cols[i]), tables[t].cols[i].name);
    }
}

static htri_t link_exists(hid_t file, const char *name) {
    htri_t e;
    H5E_BEGIN_TRY { e = H5Lexists(file, name, H5P_DEFAULT); }
    H5E_END_TRY;
    return e > 0;
}

// Open every column this log has, checking that shape and type are what
// this run would write (a resumed log must match its run exactly).
static ns_status open_column(runlog *l, table_id t, int i) {
    const column *c = &tables[t].cols[i];
    hid_t *dset = &table_of(l, t)->dset[i];
    char name[128];
    snprintf(name, sizeof name, "/%s/%s", tables[t].group, c->name);
    int exists = link_exists(l->file, name);
    if (!col_on(l, c)) {
        if (exists)
            return ns_error_set(NS_ERR_FORMAT, "%s: has %s, which this run does not log (log.* or verifier differ)",
                                l->path, name);
        return NS_OK;
    }
    if (exists) {
        // Rows are only appended, so a column needs its last few chunks
        // cached, not HDF5's default 1 MiB each (31 columns' worth of
        // cache would grow with the log to ~30 MiB). w0 = 1: full chunks go first.
        hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
        H5Pset_chunk_cache(dapl, 13, (size_t)CHUNK_CACHE_CHUNKS * (size_t)chunk_rows(l, c) * col_row_bytes(l, c), 1.0);
        H5E_BEGIN_TRY { *dset = H5Dopen2(l->file, name, dapl); }
        H5E_END_TRY;
        H5Pclose(dapl);
    }
    if (*dset < 0) return ns_error_set(NS_ERR_FORMAT, "%s: missing dataset %s", l->path, name);
    hsize_t want[4], dims[4] = {0};
    int rank = col_dims(l, c, 0, want);
    hid_t space = H5Dget_space(*dset), type = H5Dget_type(*dset);
    int ok = space >= 0 && type >= 0 && H5Sget_simple_extent_ndims(space) == rank &&
             H5Tequal(type, file_type(c->type)) > 0;
    if (ok) H5Sget_simple_extent_dims(space, dims, NULL);
    for (int d = 1; ok && d < rank; d++) ok = dims[d] == want[d];
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (!ok) return ns_error_set(NS_ERR_FORMAT, "%s: dataset %s has a shape or type this run does not write", l->path, name);
    return NS_OK;
}

static ns_status open_tables(runlog *l) {
    for (int t = 0; t < T_COUNT; t++) {
        int exists = link_exists(l->file, tables[t].group);
        if (!table_on(l, t) && exists)
            return ns_error_set(NS_ERR_FORMAT, "%s: has /%s, which this run does not log", l->path, tables[t].group);
        if (!table_on(l, t)) continue;
        if (!exists) return ns_error_set(NS_ERR_FORMAT, "%s: missing group /%s", l->path, tables[t].group);
        for (int i = 0; i < tables[t].n; i++) TRY(open_column(l, t, i));
    }
    return NS_OK;
}

// ---------------------------------------------------------------------------
// Create.

static void iso_now(char out[32]) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *or_empty(const char *s) { return s ? s : ""; }

// The weight files the run reads, with their SHA-256 ("" when unused).
typedef struct {
    const char *key, *path;
    char sha[SHA256_HEX_SIZE];
} input_file;

static ns_status hash_inputs(const runlog_meta *m, input_file in[4]) {
    const char *keys[4] = {"model", "classifier", "evaluator", "reference"};
    const char *paths[4] = {m->model_path, m->classifier_path, m->evaluator_path, m->reference_path};
    for (int i = 0; i < 4; i++) {
        in[i].key = keys[i];
        in[i].path = or_empty(paths[i]);
        in[i].sha[0] = '\0';
        if (in[i].path[0]) TRY(runlog_sha256_file(in[i].path, in[i].sha));
    }
    return NS_OK;
}

static ns_status write_root_attrs(runlog *l, const input_file in[4]) {
    const runlog_meta *m = &l->meta;
    hid_t f = l->file;
    const char *p = l->path;
    char started[32];
    iso_now(started);
    struct {
        const char *name, *value;
    } strs[] = {{"format", RUNLOG_FORMAT},          {"config_yaml", or_empty(m->config_yaml)},
                {"resolved_config", or_empty(m->resolved_yaml)}, {"results_config", or_empty(m->results_yaml)},
                {"overrides", or_empty(m->overrides)},
                {"algorithm", or_empty(m->algorithm)}, {"verifier", or_empty(m->verifier)},
                {"started", started}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        TRY(h5u_attr_write_string(f, p, strs[i].name, strs[i].value));
    TRY(attr_create_fixed(f, p, "finished", TIME_CHARS, ""));
    TRY(attr_create_fixed(f, p, "status", STATUS_CHARS, "running"));
    TRY(attr_create_fixed(f, p, "resumed", TIME_CHARS, ""));
    TRY(h5u_attr_write_int(f, p, "resumes", 0));
    for (int i = 0; i < 4; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s_path", in[i].key);
        TRY(h5u_attr_write_string(f, p, key, in[i].path));
        snprintf(key, sizeof key, "%s_sha256", in[i].key);
        TRY(h5u_attr_write_string(f, p, key, in[i].sha));
    }
    TRY(h5u_attr_write_int(f, p, "version", RUNLOG_VERSION));
    TRY(h5u_attr_write_int(f, p, "ranks", m->ranks));
    TRY(h5u_attr_write_int(f, p, "oracle", m->oracle != 0));
    TRY(h5u_attr_write_double(f, p, "denoiser_flops", m->denoiser_flops));
    int64_t shape[3] = {m->channels, m->height, m->width};
    TRY(attr_write_array(f, p, "sample_shape", H5T_STD_I64LE, H5T_NATIVE_INT64, 3, shape));
    const char *names[VERIFIER_KINDS];
    for (int k = 0; k < VERIFIER_KINDS; k++) names[k] = verifier_kind_name((verifier_kind)k);
    hid_t stype = utf8_string_type();
    ns_status st = attr_write_array(f, p, "score_names", stype, stype, VERIFIER_KINDS, names);
    H5Tclose(stype);
    return st;
}

static ns_status create_column(runlog *l, hid_t group, const column *c) {
    ns_status st = NS_OK;
    hsize_t dims[4], maxdims[4], chunk[4];
    int rank = col_dims(l, c, 0, dims);
    col_dims(l, c, 0, maxdims);
    col_dims(l, c, 0, chunk);
    maxdims[0] = H5S_UNLIMITED;
    chunk[0] = (hsize_t)chunk_rows(l, c);
    // Fill values mark rows whose data never reached the disk: -1 for the ids, NaN for floats.
    int64_t fill_i = -1;
    uint64_t fill_u = 0;
    float fill_f = NAN;
    double fill_d = NAN;
    const void *fill = c->type == COL_U64 ? (const void *)&fill_u : c->type == COL_F32 ? (const void *)&fill_f
                     : c->type == COL_F64 ? (const void *)&fill_d : (const void *)&fill_i;
    hid_t fill_type = c->type == COL_I32 ? H5T_NATIVE_INT64 : mem_type(c->type);
    hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    H5E_BEGIN_TRY {
        int ok = (space = H5Screate_simple(rank, dims, maxdims)) >= 0 && (dcpl = H5Pcreate(H5P_DATASET_CREATE)) >= 0 &&
                 H5Pset_chunk(dcpl, rank, chunk) >= 0 && H5Pset_fill_value(dcpl, fill_type, fill) >= 0;
        if (ok && tensor_col(c))
            ok = H5Pset_shuffle(dcpl) >= 0 && H5Pset_deflate(dcpl, GZIP_LEVEL) >= 0;
        if (ok)
            ok = (dset = H5Dcreate2(group, c->name, file_type(c->type), space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) >= 0;
        if (!ok) st = io_error(l, "cannot create a dataset");
        if (!st) st = h5u_attr_write_string(dset, l->path, "units", c->units);
        if (!st) st = h5u_attr_write_string(dset, l->path, "description", c->description);
        if (dset >= 0) H5Dclose(dset);
        if (dcpl >= 0) H5Pclose(dcpl);
        if (space >= 0) H5Sclose(space);
    }
    H5E_END_TRY;
    return st;
}

static ns_status create_tables(runlog *l) {
    for (int t = 0; t < T_COUNT; t++) {
        if (!table_on(l, t)) continue;
        hid_t g;
        H5E_BEGIN_TRY { g = H5Gcreate2(l->file, tables[t].group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); }
        H5E_END_TRY;
        if (g < 0) return io_error(l, "cannot create a group");
        ns_status st = NS_OK;
        for (int i = 0; i < tables[t].n && !st; i++)
            if (col_on(l, &tables[t].cols[i])) st = create_column(l, g, &tables[t].cols[i]);
        H5Gclose(g);
        if (st) return st;
    }
    return NS_OK;
}

static hid_t latest_fapl(int clear_status_flags, int skip_eof_check) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    // HDF5's own (private) properties behind `h5clear -s`: a writer killed
    // while SWMR writing leaves the superblock marked open, and its
    // allocator may have reserved space past the end of the file.
    hbool_t yes = 1;
    H5E_BEGIN_TRY {
        if (clear_status_flags) H5Pset(fapl, "clear_status_flags", &yes);
        if (skip_eof_check) H5Pset(fapl, "skip_eof_check", &yes);
    }
    H5E_END_TRY;
    return fapl;
}

// Only datasets may be open at H5Fstart_swmr_write; none are here.
static ns_status start_swmr(runlog *l) {
    herr_t e;
    H5E_BEGIN_TRY { e = H5Fstart_swmr_write(l->file); }
    H5E_END_TRY;
    return e < 0 ? io_error(l, "cannot start SWMR writing") : NS_OK;
}

static void begin_appending(runlog *l) {
    alloc_buffers(l);
    l->last_flush = ns_now();
}

ns_status runlog_create(runlog *l, const char *path, const runlog_meta *m, int overwrite) {
    reset(l);
    TRY(setup(l, path, m));
    if (!overwrite && access(path, F_OK) == 0)
        return ns_error_set(NS_ERR_ARG, "%s exists; pass --resume to continue it or --overwrite to replace it", path);
    input_file in[4];
    TRY(hash_inputs(m, in));
    // Built under a temporary name and renamed into place once complete: a
    // failed create leaves nothing, and --overwrite keeps the old log until then.
    char tmp[4096 + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    hid_t fapl = latest_fapl(0, 0);
    errno = 0;
    H5E_BEGIN_TRY { l->file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl); }
    H5E_END_TRY;
    H5Pclose(fapl);
    if (l->file < 0) {
        int err = errno;
        unlink(tmp);  // H5Fcreate may fail after creating it (disk full)
        return ns_error_set(NS_ERR_IO, "%s: cannot create the run log: %s", path, err ? strerror(err) : "HDF5 error");
    }
    ns_status st = write_root_attrs(l, in);
    if (!st) st = create_tables(l);
    herr_t e = 0;
    if (!st) {
        H5E_BEGIN_TRY { e = H5Fflush(l->file, H5F_SCOPE_GLOBAL); }
        H5E_END_TRY;
        if (e < 0) st = io_error(l, "cannot write the new run log");
    }
    if (!st) st = start_swmr(l);
    if (!st) st = open_tables(l);
    if (!st && rename(tmp, path) != 0)
        st = ns_error_set(NS_ERR_IO, "%s: cannot move the new run log into place: %s", path, strerror(errno));
    if (st) {
        free_all(l);
        unlink(tmp);
    } else {
        begin_appending(l);
    }
    return st;
}

// ---------------------------------------------------------------------------
// Append.

static ns_status fail_io(runlog *l, const char *what) {
    l->failed = 1;
    return io_error(l, what);
}

// Buffered rows of table t to the file: extend each column, write its new
// rows, optionally H5Dflush it. /searches goes commit marker (column 0) last.
static ns_status table_write(runlog *l, table_id t, int flush) {
    runlog_table *tb = table_of(l, t);
    const table_def *def = &tables[t];
    if (!tb->pending && !flush) return NS_OK;
    for (int k = 0; k < def->n; k++) {
        int i = t == T_SRCH ? (k + 1) % def->n : k;
        const column *c = &def->cols[i];
        if (!col_on(l, c)) continue;
        if (tb->pending) {
            hsize_t start[4] = {(hsize_t)tb->in_file, 0, 0, 0}, count[4];
            int rank = col_dims(l, c, tb->pending, count);
            if (set_rows(l, tb->dset[i], c, tb->in_file + tb->pending)) {
                l->failed = 1;
                return NS_ERR_IO;
            }
            hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
            int ok;
            H5E_BEGIN_TRY {
                ok = (fspace = H5Dget_space(tb->dset[i])) >= 0 &&
                     H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
                     (mspace = H5Screate_simple(rank, count, NULL)) >= 0 &&
                     H5Dwrite(tb->dset[i], mem_type(c->type), mspace, fspace, H5P_DEFAULT, tb->buf[i]) >= 0;
                if (mspace >= 0) H5Sclose(mspace);
                if (fspace >= 0) H5Sclose(fspace);
            }
            H5E_END_TRY;
            if (!ok) return fail_io(l, "cannot append to the run log");
        }
        if (flush) {
            herr_t e;
            H5E_BEGIN_TRY { e = H5Dflush(tb->dset[i]); }
            H5E_END_TRY;
            if (e < 0) return fail_io(l, "cannot flush the run log");
        }
    }
    tb->in_file += tb->pending;
    tb->pending = 0;
    return NS_OK;
}

// Copy one row struct into the buffers of table t (the caller makes room).
static void table_push(runlog *l, table_id t, const void *row) {
    runlog_table *tb = table_of(l, t);
    NS_CHECK(tb->pending < tb->cap);
    for (int i = 0; i < tables[t].n; i++) {
        const column *c = &tables[t].cols[i];
        if (!col_on(l, c)) continue;
        size_t n = col_row_bytes(l, c);
        unsigned char *dst = tb->buf[i] + (size_t)tb->pending * n;
        if (tensor_col(c)) {
            const float *src = *(const float *const *)((const char *)row + c->offset);
            if (src) {
                memcpy(dst, src, n);
            } else {
                float *d = (float *)dst;
                for (int64_t j = 0; j < col_values(l, c); j++) d[j] = NAN;
            }
        } else {
            memcpy(dst, (const char *)row + c->offset, n);
        }
    }
    tb->pending++;
}

// fsync, so flushed rows survive a node crash too (H5Fflush does not sync).
static ns_status sync_file(runlog *l) {
    void *handle = NULL;
    if (H5Fget_vfd_handle(l->file, H5P_DEFAULT, &handle) < 0 || !handle) return fail_io(l, "cannot sync the run log");
    if (fsync(*(int *)handle) != 0 && errno != EINVAL) return fail_io(l, "cannot sync the run log");
    return NS_OK;
}

ns_status runlog_flush(runlog *l) {
    NS_CHECK(l->file > 0);
    if (l->failed) return ns_error_set(NS_ERR_IO, "%s: an earlier write to the run log failed", l->path);
    TRY(table_write(l, T_CAND, 1));
    if (l->log_trajectories) TRY(table_write(l, T_TRAJ, 1));
    if (l->srch.pending) {
        TRY(sync_file(l));  // candidates on disk before the searches that reference them
        TRY(table_write(l, T_SRCH, 1));
    }
    herr_t e;
    H5E_BEGIN_TRY { e = H5Fflush(l->file, H5F_SCOPE_GLOBAL); }
    H5E_END_TRY;
    if (e < 0) return fail_io(l, "cannot flush the run log");
    TRY(sync_file(l));
    l->last_flush = ns_now();
    return NS_OK;
}

ns_status runlog_add(runlog *l, const runlog_search *s, const runlog_candidate *c, int n) {
    NS_CHECK(l->file > 0 && n >= 0 && (n == 0 || c));
    if (l->failed) return ns_error_set(NS_ERR_IO, "%s: an earlier write to the run log failed", l->path);
    int64_t first = l->n_candidates;
    for (int i = 0; i < n; i++) {
        // Candidate and trajectory rows may reach the file before their
        // search's row: they count only once the /searches row exists.
        if (l->cand.pending == l->cand.cap) TRY(table_write(l, T_CAND, 0));
        table_push(l, T_CAND, &c[i]);
        NS_CHECK(c[i].n_trajectory >= 0 && (c[i].n_trajectory == 0 || (c[i].trajectory && c[i].trajectory_t)));
        NS_CHECK(l->log_trajectories || c[i].n_trajectory == 0);
        for (int j = 0; j < c[i].n_trajectory; j++) {
            if (l->traj.pending == l->traj.cap) TRY(table_write(l, T_TRAJ, 0));
            trajectory_row r = {first + i, c[i].trajectory_t[j], c[i].trajectory + (size_t)j * (size_t)l->dim};
            table_push(l, T_TRAJ, &r);
            l->n_trajectory_rows++;
        }
        l->n_candidates++;
    }
    if (l->srch.pending == l->srch.cap) TRY(runlog_flush(l));
    search_row r = {*s, n, first};
    table_push(l, T_SRCH, &r);
    l->n_searches++;
    return NS_OK;
}

ns_status runlog_read_search(runlog *l, int64_t row, int64_t *search, int32_t *label, float *fid_features) {
    NS_CHECK(l->file > 0);
    if (row < 0 || row >= l->n_searches)
        return ns_error_set(NS_ERR_ARG, "%s: no search row %lld (the log has %lld)", l->path, (long long)row,
                            (long long)l->n_searches);
    if (fid_features && !l->fid_dim)
        return ns_error_set(NS_ERR_ARG, "%s: the log has no fid_features (not a fid_oracle run)", l->path);
    void *out[3] = {search, label, fid_features};
    const int cols[3] = {S_SEARCH, S_LABEL, S_FID_FEATURES};
    for (int k = 0; k < 3; k++) {
        const column *c = &search_cols[cols[k]];
        if (!out[k]) continue;
        if (row < l->srch.in_file) {
            TRY(read_rows(l, l->srch.dset[cols[k]], c, row, 1, out[k]));
        } else {
            size_t n = col_row_bytes(l, c);
            memcpy(out[k], l->srch.buf[cols[k]] + (size_t)(row - l->srch.in_file) * n, n);
        }
    }
    return NS_OK;
}

// ---------------------------------------------------------------------------
// Close.

ns_status runlog_close(runlog *l, const char *status) {
    if (l->file <= 0) {  // never opened, or a failed create (reset() made it -1)
        free_all(l);
        return NS_OK;
    }
    // The first failure is the one reported; the rest is best effort so the
    // log still says how the run ended.
    ns_status st = l->failed ? ns_error_set(NS_ERR_IO, "%s: an earlier write to the run log failed", l->path)
                             : runlog_flush(l);
    char first[1024] = "";
    if (st) snprintf(first, sizeof first, "%s", ns_error_message());
    char finished[32];
    iso_now(finished);
    ns_status st2 = attr_update_string(l->file, l->path, "finished", finished);
    if (!st2) st2 = attr_update_string(l->file, l->path, "status", status ? status : "complete");
    close_tables(l);
    herr_t e;
    H5E_BEGIN_TRY { e = H5Fclose(l->file); }
    H5E_END_TRY;
    l->file = H5I_INVALID_HID;
    if (!st2 && e < 0) st2 = io_error(l, "closing the run log failed");
    free_all(l);
    if (st) return ns_error_set(st, "%s", first);
    return st2;
}

// ---------------------------------------------------------------------------
// Resume.

static ns_status open_for_resume(runlog *l) {
    const char *path = l->path;
    if (access(path, R_OK | W_OK) != 0)
        return ns_error_set(NS_ERR_IO, "%s: cannot open the run log to resume it: %s", path, strerror(errno));
    htri_t is_h5;
    H5E_BEGIN_TRY { is_h5 = H5Fis_hdf5(path); }
    H5E_END_TRY;
    if (is_h5 <= 0) return ns_error_set(NS_ERR_FORMAT, "%s: not an HDF5 file, so not a run log", path);
    // Read-only: a cleanly closed log opens plainly, one whose writer was
    // killed (still marked open for SWMR writing) as a SWMR reader.
    H5E_BEGIN_TRY {
        l->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (l->file < 0) l->file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    }
    H5E_END_TRY;
    if (l->file < 0)
        return ns_error_set(NS_ERR_FORMAT, "%s: cannot open the run log (truncated or corrupt?)", path);
    return NS_OK;
}

// Reopen for writing directly in SWMR mode, so a kill at any moment of the
// resume still leaves a log that SWMR readers (and the next resume) open.
static ns_status reopen_for_writing(runlog *l) {
    const char *path = l->path;
    close_tables(l);
    h5u_close_file(l->file);
    l->file = H5I_INVALID_HID;
    // A killed writer's superblock is still marked open for writing: clear
    // the flags (h5clear -s), and if need be skip the end-of-file check.
    int attempt;
    for (attempt = 0; attempt < 3 && l->file < 0; attempt++) {
        hid_t fapl = latest_fapl(attempt >= 1, attempt >= 2);
        H5E_BEGIN_TRY { l->file = H5Fopen(path, H5F_ACC_RDWR | H5F_ACC_SWMR_WRITE, fapl); }
        H5E_END_TRY;
        H5Pclose(fapl);
    }
    if (l->file < 0)
        return ns_error_set(NS_ERR_IO,
                            "%s: cannot open the run log for writing (is another process reading or writing it? "
                            "close live readers before resuming)",
                            path);
    // Its superblock also holds a stale end-of-allocation: chunks written
    // later lie past it, and truncating reads them. Move it to the real end
    // of the file (h5clear --increment).
    herr_t e = 0;
    if (attempt > 1) {
        H5E_BEGIN_TRY { e = H5Fincrement_filesize(l->file, 0); }
        H5E_END_TRY;
    }
    return e < 0 ? io_error(l, "cannot repair the end of the killed run's log") : NS_OK;
}

// NS_ERR_ARG naming the first line where the logged results config and
// this run's differ.
static ns_status compare_config(const char *path, const char *logged, const char *now) {
    int line = 1;
    const char *a = logged, *b = now;
    for (;;) {
        size_t na = strcspn(a, "\n"), nb = strcspn(b, "\n");
        if (na != nb || memcmp(a, b, na) != 0 || (!a[na]) != (!b[nb])) {
            if (!*a && !*b) return NS_OK;
            return ns_error_set(NS_ERR_ARG,
                                "%s: this run's config differs from the logged run's at line %d of results_config: "
                                "the log has '%.*s', this run has '%.*s'; resume with the same config and overrides",
                                path, line, (int)na, a, (int)nb, b);
        }
        if (!a[na]) return NS_OK;
        a += na + 1, b += nb + 1, line++;
    }
}

static ns_status check_header(runlog *l, const input_file in[4]) {
    const char *p = l->path;
    char buf[256];
    int version = 0;
    if (h5u_attr_read_string(l->file, p, "format", buf, sizeof buf) || strcmp(buf, RUNLOG_FORMAT) != 0)
        return ns_error_set(NS_ERR_FORMAT, "%s: not a noisesearch run log (no format attribute '%s')", p, RUNLOG_FORMAT);
    TRY(h5u_attr_read_int(l->file, p, "version", &version));
    if (version != RUNLOG_VERSION)
        return ns_error_set(NS_ERR_FORMAT, "%s: run log version %d, this program writes version %d", p, version,
                            RUNLOG_VERSION);
    char *resolved;
    TRY(attr_read_string_alloc(l->file, p, "results_config", &resolved));
    ns_status st = compare_config(p, resolved, or_empty(l->meta.results_yaml));
    free(resolved);
    if (st) return st;
    for (int i = 0; i < 4; i++) {
        char key[64], logged[SHA256_HEX_SIZE];
        snprintf(key, sizeof key, "%s_sha256", in[i].key);
        TRY(h5u_attr_read_string(l->file, p, key, logged, sizeof logged));
        if (strcmp(logged, in[i].sha) != 0)
            return ns_error_set(NS_ERR_ARG, "%s: the %s file %s changed since the run started (SHA-256 %.12s..., "
                                "the log has %.12s...); resume with the same files",
                                p, in[i].key, in[i].path[0] ? in[i].path : "(none)", in[i].sha[0] ? in[i].sha : "none",
                                logged[0] ? logged : "none");
    }
    int64_t shape[3] = {0};
    hid_t attr = H5I_INVALID_HID, space = H5I_INVALID_HID;
    int ok;
    H5E_BEGIN_TRY {
        ok = (attr = H5Aopen(l->file, "sample_shape", H5P_DEFAULT)) >= 0 && (space = H5Aget_space(attr)) >= 0 &&
             H5Sget_simple_extent_npoints(space) == 3 && H5Aread(attr, H5T_NATIVE_INT64, shape) >= 0;
        if (space >= 0) H5Sclose(space);
        if (attr >= 0) H5Aclose(attr);
    }
    H5E_END_TRY;
    if (!ok) return ns_error_set(NS_ERR_FORMAT, "%s: missing or bad attribute 'sample_shape'", p);
    if (shape[0] != l->meta.channels || shape[1] != l->meta.height || shape[2] != l->meta.width)
        return ns_error_set(NS_ERR_ARG, "%s: the log's samples are (%lld, %lld, %lld), this model's (%d, %d, %d)", p,
                            (long long)shape[0], (long long)shape[1], (long long)shape[2], l->meta.channels,
                            l->meta.height, l->meta.width);
    return NS_OK;
}

#define SCAN_BLOCK 4096

// The complete searches: rows of /searches/search before the first -1 (a row
// whose data never reached the disk), copied into *done.
static ns_status scan_searches(runlog *l, int64_t **done, int64_t *n_done) {
    int64_t rows = INT64_MAX;
    for (int i = 0; i < tables[T_SRCH].n; i++)
        if (l->srch.dset[i] > 0) {
            int64_t r = dset_rows(l->srch.dset[i]);
            if (r < rows) rows = r;
        }
    int64_t *ids = ns_malloc((size_t)(rows > 0 ? rows : 1) * sizeof *ids, "done searches");
    int64_t n = 0;
    for (int64_t at = 0; at < rows && n == at; at += SCAN_BLOCK) {
        int64_t k = rows - at < SCAN_BLOCK ? rows - at : SCAN_BLOCK;
        ns_status st = read_rows(l, l->srch.dset[S_SEARCH], &search_cols[S_SEARCH], at, k, ids + at);
        if (st) {
            free(ids);
            return st;
        }
        while (n < at + k && ids[n] >= 0) n++;
    }
    *done = ids;
    *n_done = n;
    return NS_OK;
}

// The end of the trajectory rows of complete searches: after the last row
// whose candidate_row lies in [0, cand_end) (rows past it belong to a cut
// search or never reached the disk).
static ns_status scan_trajectories(runlog *l, int64_t cand_end, int64_t *traj_end) {
    int64_t rows = INT64_MAX;
    for (int i = 0; i < tables[T_TRAJ].n; i++) {
        int64_t r = dset_rows(l->traj.dset[i]);
        if (r < rows) rows = r;
    }
    int64_t buf[SCAN_BLOCK];
    *traj_end = 0;
    for (int64_t end = rows; end > 0; end -= SCAN_BLOCK) {
        int64_t k = end < SCAN_BLOCK ? end : SCAN_BLOCK;
        TRY(read_rows(l, l->traj.dset[0], &trajectory_cols[0], end - k, k, buf));
        for (int64_t j = k - 1; j >= 0; j--)
            if (buf[j] >= 0 && buf[j] < cand_end) {
                *traj_end = end - k + j + 1;
                return NS_OK;
            }
    }
    return NS_OK;
}

// Cut every column of table t to rows; returns how many rows the longest had beyond it.
static ns_status truncate_table(runlog *l, table_id t, int64_t rows, int64_t *dropped) {
    runlog_table *tb = table_of(l, t);
    int64_t most = 0;
    for (int i = 0; i < tables[t].n; i++) {
        if (tb->dset[i] <= 0) continue;
        int64_t r = dset_rows(tb->dset[i]);
        if (r < rows)
            return ns_error_set(NS_ERR_FORMAT, "%s: /%s/%s has %lld rows, the complete searches need %lld (corrupt?)",
                                l->path, tables[t].group, tables[t].cols[i].name, (long long)r, (long long)rows);
        if (r > most) most = r;
        if (r > rows) TRY(set_rows(l, tb->dset[i], &tables[t].cols[i], rows));
    }
    tb->in_file = rows;
    if (dropped) *dropped = most - rows;
    return NS_OK;
}

// Drop the rows of a search cut short; set the counters.
static ns_status cut_to_complete(runlog *l, int64_t n_srch) {
    int64_t cand_end = 0;
    if (n_srch > 0) {
        int64_t first, count, id, last_cand = -1;
        TRY(read_rows(l, l->srch.dset[S_FIRST_CANDIDATE_ROW], &search_cols[S_FIRST_CANDIDATE_ROW], n_srch - 1, 1,
                      &first));
        TRY(read_rows(l, l->srch.dset[S_CANDIDATES], &search_cols[S_CANDIDATES], n_srch - 1, 1, &count));
        TRY(read_rows(l, l->srch.dset[S_SEARCH], &search_cols[S_SEARCH], n_srch - 1, 1, &id));
        cand_end = first + count;
        if (first < 0 || count < 0 || cand_end > dset_rows(l->cand.dset[0]))
            return ns_error_set(NS_ERR_FORMAT, "%s: search row %lld references candidate rows the log lacks (corrupt?)",
                                l->path, (long long)(n_srch - 1));
        if (count > 0) TRY(read_rows(l, l->cand.dset[0], &candidate_cols[0], cand_end - 1, 1, &last_cand));
        if (count > 0 && last_cand != id)
            return ns_error_set(NS_ERR_FORMAT, "%s: candidate row %lld belongs to search %lld, expected %lld (corrupt?)",
                                l->path, (long long)(cand_end - 1), (long long)last_cand, (long long)id);
    }
    TRY(truncate_table(l, T_SRCH, n_srch, NULL));
    TRY(truncate_table(l, T_CAND, cand_end, &l->dropped_candidates));
    if (l->log_trajectories) {
        int64_t traj_end;
        TRY(scan_trajectories(l, cand_end, &traj_end));
        TRY(truncate_table(l, T_TRAJ, traj_end, &l->dropped_trajectory_rows));
    }
    l->n_searches = n_srch;
    l->n_candidates = cand_end;
    l->n_trajectory_rows = l->traj.in_file;
    return NS_OK;
}

static ns_status mark_resumed(runlog *l) {
    char now[32];
    iso_now(now);
    int resumes = 0;
    TRY(h5u_attr_read_int(l->file, l->path, "resumes", &resumes));
    ns_status st = attr_update_string(l->file, l->path, "resumed", now);
    if (!st) st = attr_update_int(l->file, l->path, "resumes", resumes + 1);
    if (!st) st = attr_update_string(l->file, l->path, "status", "running");
    if (!st) st = attr_update_string(l->file, l->path, "finished", "");
    if (!st) st = attr_update_int(l->file, l->path, "ranks", l->meta.ranks);
    return st;
}

ns_status runlog_resume(runlog *l, const char *path, const runlog_meta *m, int64_t **done, int64_t *n_done) {
    reset(l);
    *done = NULL;
    *n_done = 0;
    TRY(setup(l, path, m));
    input_file in[4];
    TRY(hash_inputs(m, in));
    // Every check that can refuse runs on a read-only open, so a refused
    // resume leaves the file as it was.
    ns_status st = open_for_resume(l);
    if (!st) st = check_header(l, in);
    if (!st) st = open_tables(l);
    if (!st) st = reopen_for_writing(l);
    if (!st) st = open_tables(l);
    if (!st) st = scan_searches(l, done, n_done);
    if (!st) st = cut_to_complete(l, *n_done);
    if (!st) st = mark_resumed(l);
    if (!st) st = runlog_flush(l);
    if (!st) begin_appending(l);
    if (st) {
        free_all(l);
        free(*done);
        *done = NULL;
        *n_done = 0;
    }
    return st;
}

ns_status runlog_sha256_file(const char *path, char hex[65]) { return sha256_hex_file(path, hex); }
