// Weight file I/O: a save/load round trip is bitwise exact, and every kind of
// bad file gives a one-line error that names the file and the problem
// (missing file, not HDF5, truncated, missing tensor, wrong shape, missing
// attribute, inconsistent attributes, unexpected extra tensor).
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/h5util.h"
#include "model/dit.h"

static int failures;

static void expect_error(const char *what, ns_status st, const char *needle) {
    const char *msg = ns_error_message();
    int ok = st != NS_OK && strstr(msg, needle) != NULL && strchr(msg, '\n') == NULL;
    printf("  %-26s %s: %s\n", what, ok ? "ok  " : "FAIL", st ? msg : "(no error)");
    failures += !ok;
}

// Open a saved file for editing with the raw HDF5 API.
static hid_t reopen(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    NS_CHECK(f >= 0);
    return f;
}

static void copy_file(const char *from, const char *to, long truncate_to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    NS_CHECK(in && out);
    char buf[65536];
    long total = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (truncate_to >= 0 && total + (long)n > truncate_to) n = (size_t)(truncate_to - total);
        fwrite(buf, 1, n, out);
        total += (long)n;
        if (truncate_to >= 0 && total >= truncate_to) break;
    }
    fclose(in);
    fclose(out);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    char good[4096], bad[4096];
    snprintf(good, sizeof good, "%s/io_good.h5", dir);
    snprintf(bad, sizeof bad, "%s/io_bad.h5", dir);

    dit_config c = {.input_size = 16, .in_channels = 4, .patch_size = 2, .depth = 2, .hidden_size = 32,
                    .num_heads = 2, .num_classes = 5, .learn_sigma = 1, .mlp_ratio = 4.0f};
    dit_model m, back;
    NS_CHECK(dit_model_init(&m, &c) == NS_OK);
    dit_model_randomize(&m, 3, 0.1f);
    NS_CHECK(dit_save(&m, good) == NS_OK);
    ns_status st = dit_load(&back, good);
    int same = st == NS_OK && back.num_params == m.num_params &&
               memcmp(back.memory, m.memory, m.num_params * sizeof(float)) == 0 &&
               memcmp(&back.cfg, &m.cfg, sizeof c) == 0;
    printf("  %-26s %s: %zu parameters, %d tensors\n", "round trip", same ? "ok  " : "FAIL", m.num_params,
           m.num_tensors);
    failures += !same;
    if (st == NS_OK) dit_model_free(&back);

    char missing[4200];
    snprintf(missing, sizeof missing, "%s/does_not_exist.h5", dir);
    expect_error("missing file", dit_load(&back, missing), "does_not_exist.h5: cannot read file");

    FILE *txt = fopen(bad, "w");
    fputs("this is not an HDF5 file\n", txt);
    fclose(txt);
    expect_error("not HDF5", dit_load(&back, bad), "not an HDF5 file");

    copy_file(good, bad, 20000);
    expect_error("truncated", dit_load(&back, bad), "io_bad.h5");

    copy_file(good, bad, -1);
    hid_t f = reopen(bad);
    H5Ldelete(f, "blocks.1.mlp.fc2.bias", H5P_DEFAULT);
    H5Fclose(f);
    expect_error("missing tensor", dit_load(&back, bad), "missing tensor blocks.1.mlp.fc2.bias (expected shape [32])");

    copy_file(good, bad, -1);
    f = reopen(bad);
    H5Ldelete(f, "blocks.0.attn.qkv.weight", H5P_DEFAULT);
    float wrong[64 * 32] = {0};
    hsize_t dims[2] = {64, 32};
    NS_CHECK(h5u_write_floats(f, bad, "blocks.0.attn.qkv.weight", 2, dims, wrong) == NS_OK);
    H5Fclose(f);
    expect_error("wrong shape", dit_load(&back, bad), "blocks.0.attn.qkv.weight has shape [64,32], expected [96,32]");

    copy_file(good, bad, -1);
    f = reopen(bad);
    H5Adelete(f, "num_heads");
    H5Fclose(f);
    expect_error("missing attribute", dit_load(&back, bad), "missing attribute 'num_heads'");

    copy_file(good, bad, -1);
    f = reopen(bad);
    NS_CHECK(h5u_attr_write_int(f, bad, "num_heads", 5) == NS_OK);
    H5Fclose(f);
    expect_error("inconsistent attributes", dit_load(&back, bad), "num_heads 5 must divide hidden_size 32");

    copy_file(good, bad, -1);
    f = reopen(bad);
    NS_CHECK(h5u_attr_write_int(f, bad, "depth", 1) == NS_OK);
    H5Fclose(f);
    expect_error("extra tensor", dit_load(&back, bad), "unexpected tensor 'blocks.1.");

    // A failed save leaves nothing behind.
    char unwritable[4200];
    snprintf(unwritable, sizeof unwritable, "%s/no_such_dir/w.h5", dir);
    expect_error("unwritable path", dit_save(&m, unwritable), "cannot create file");

    unlink(good);
    unlink(bad);
    dit_model_free(&m);
    printf("%s: %d failures\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}
