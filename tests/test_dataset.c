// Fashion-MNIST through the gzipped IDX reader: sizes, label balance, pixel
// range of the real files; clear errors for a missing file, a truncated
// file, a wrong magic number and mismatched counts.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "model/dataset.h"

static int failures;

static void check(const char *what, int ok, const char *detail) {
    printf("  %-34s %s %s\n", what, ok ? "ok  " : "FAIL", detail);
    failures += !ok;
}

static void expect_error(const char *what, ns_status st, const char *needle) {
    const char *msg = ns_error_message();
    check(what, st != NS_OK && strstr(msg, needle) != NULL, st ? msg : "(no error)");
}

// Write bytes as a gzip file.
static void write_gz(const char *path, const unsigned char *data, size_t n) {
    gzFile f = gzopen(path, "wb");
    NS_CHECK(f && gzwrite(f, data, (unsigned)n) == (int)n);
    gzclose(f);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    char detail[256];
    dataset train, test;
    if (dataset_load_fashion_mnist(&train, NULL, 1) || dataset_load_fashion_mnist(&test, NULL, 0)) {
        fprintf(stderr, "FAILED: %s\n", ns_error_message());
        return 1;
    }
    snprintf(detail, sizeof detail, "train %d, test %d images of %dx%d", train.count, test.count, train.height,
             train.width);
    check("sizes", train.count == 60000 && test.count == 10000 && train.height == 28 && train.width == 28, detail);
    int per_class[10] = {0};
    for (int i = 0; i < test.count; i++) per_class[test.labels[i]]++;
    int balanced = test.num_classes == 10;
    for (int k = 0; k < 10; k++) balanced &= per_class[k] == 1000;
    check("test set: 1000 images per class", balanced, "");
    float lo = 1e9f, hi = -1e9f;
    double mean = 0;
    for (size_t i = 0; i < (size_t)train.count * 784; i++) {
        float v = train.images[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        mean += v;
    }
    mean /= (double)train.count * 784;
    snprintf(detail, sizeof detail, "min %.3f max %.3f mean %.4f", lo, hi, mean);
    // Fashion-MNIST's mean pixel is 0.286 of full scale: 0.286*2 - 1 = -0.428.
    check("pixels scaled to [-1, 1]", lo == -1.0f && hi == 1.0f && mean > -0.44 && mean < -0.41, detail);

    char img[4096], lab[4096];
    snprintf(img, sizeof img, "%s/ds_images.gz", dir);
    snprintf(lab, sizeof lab, "%s/ds_labels.gz", dir);
    unsigned char header[16 + 2 * 4] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 255, 255, 0, 1, 2, 3, 4};
    unsigned char labels[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 3, 7};
    write_gz(img, header, sizeof header);
    write_gz(lab, labels, sizeof labels);
    dataset small;
    ns_status st = dataset_load_idx(&small, img, lab);
    check("hand-made 2x2x2 file", st == NS_OK && small.count == 2 && small.images[1] == 1.0f &&
                                      small.labels[1] == 7 && small.num_classes == 8,
          st ? ns_error_message() : "");
    if (!st) dataset_free(&small);

    expect_error("missing file", dataset_load_fashion_mnist(&small, "/nonexistent", 1),
                 "apt-get install dataset-fashion-mnist");
    write_gz(img, header, sizeof header - 3);
    expect_error("truncated pixels", dataset_load_idx(&small, img, lab), "truncated or corrupt");
    unsigned char bad_magic[16] = {0, 0, 8, 1, 0, 0, 0, 2};
    write_gz(img, bad_magic, sizeof bad_magic);
    expect_error("wrong magic", dataset_load_idx(&small, img, lab), "IDX magic 0x00000801, expected 0x00000803");
    write_gz(img, header, sizeof header);
    labels[7] = 3;
    write_gz(lab, labels, sizeof labels);
    expect_error("count mismatch", dataset_load_idx(&small, img, lab), "has 2 images but");

    dataset_free(&train);
    dataset_free(&test);
    remove(img);
    remove(lab);
    printf("%s: %d failures\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}
