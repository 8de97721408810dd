// gzipped IDX reader (see dataset.h). Format: big-endian 32-bit magic
// (0x00000800 | element type << 8 | ndim; type 0x08 = unsigned byte), then
// ndim big-endian 32-bit sizes, then the data in row-major order.
#include "dataset.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_MAX_DIMS 3

// Read exactly n bytes; a short read means a truncated or corrupt file.
static ns_status read_exact(gzFile f, const char *path, void *buf, size_t n, const char *what) {
    unsigned char *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            return ns_error_set(NS_ERR_FORMAT, "%s: truncated or corrupt file while reading %s (%s)", path, what,
                                zerr != Z_OK && zerr != Z_STREAM_END ? msg : "unexpected end of data");
        }
        p += got;
        n -= (size_t)got;
    }
    return NS_OK;
}

// Open an IDX file, check its magic and rank, return the sizes.
static ns_status idx_open(gzFile *out, const char *path, int ndim, uint32_t dims[IDX_MAX_DIMS]) {
    if (access(path, R_OK) != 0)
        return ns_error_set(NS_ERR_IO,
                            "%s: cannot read file: %s (Fashion-MNIST comes from the Debian package "
                            "dataset-fashion-mnist: apt-get install dataset-fashion-mnist)",
                            path, strerror(errno));
    gzFile f = gzopen(path, "rb");
    if (!f) return ns_error_set(NS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char header[4 + 4 * IDX_MAX_DIMS];
    ns_status st = read_exact(f, path, header, 4 + 4 * (size_t)ndim, "the IDX header");
    uint32_t magic = st ? 0 : (uint32_t)header[0] << 24 | header[1] << 16 | header[2] << 8 | header[3];
    if (!st && magic != (0x800u | (uint32_t)ndim))
        st = ns_error_set(NS_ERR_FORMAT, "%s: IDX magic 0x%08x, expected 0x%08x (unsigned-byte data of rank %d)", path,
                          magic, 0x800u | (uint32_t)ndim, ndim);
    for (int i = 0; i < ndim && !st; i++) {
        const unsigned char *b = header + 4 + 4 * i;
        dims[i] = (uint32_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
        if (dims[i] == 0 || dims[i] > 100000000u)
            st = ns_error_set(NS_ERR_FORMAT, "%s: implausible size %u in dimension %d of the IDX header", path,
                              dims[i], i);
    }
    if (st) {
        gzclose(f);
        return st;
    }
    *out = f;
    return NS_OK;
}

ns_status dataset_load_idx(dataset *d, const char *images_gz, const char *labels_gz) {
    memset(d, 0, sizeof *d);
    uint32_t idims[IDX_MAX_DIMS], ldims[IDX_MAX_DIMS];
    gzFile fi = NULL, fl = NULL;
    unsigned char *raw = NULL;
    ns_status st = idx_open(&fi, images_gz, 3, idims);
    if (!st) st = idx_open(&fl, labels_gz, 1, ldims);
    if (!st && ldims[0] != idims[0])
        st = ns_error_set(NS_ERR_FORMAT, "%s has %u images but %s has %u labels", images_gz, idims[0], labels_gz,
                          ldims[0]);
    if (!st && (size_t)idims[1] * idims[2] > (1u << 24))
        st = ns_error_set(NS_ERR_FORMAT, "%s: images of %ux%u are implausibly large", images_gz, idims[1], idims[2]);
    if (st) goto done;
    d->count = (int)idims[0];
    d->channels = 1;
    d->height = (int)idims[1];
    d->width = (int)idims[2];
    size_t pixels = (size_t)d->count * d->height * d->width;
    raw = ns_malloc(pixels > (size_t)d->count ? pixels : (size_t)d->count, "IDX data");
    if ((st = read_exact(fi, images_gz, raw, pixels, "the pixels"))) goto done;
    d->images = ns_malloc(pixels * sizeof(float), "dataset images");
    for (size_t i = 0; i < pixels; i++) d->images[i] = (float)raw[i] / 127.5f - 1.0f;
    if ((st = read_exact(fl, labels_gz, raw, (size_t)d->count, "the labels"))) goto done;
    d->labels = ns_malloc(sizeof(int) * d->count, "dataset labels");
    for (int i = 0; i < d->count; i++) {
        d->labels[i] = raw[i];
        if (raw[i] + 1 > d->num_classes) d->num_classes = raw[i] + 1;
    }
done:
    free(raw);
    if (fi) gzclose(fi);
    if (fl) gzclose(fl);
    if (st) dataset_free(d);
    return st;
}

ns_status dataset_load_fashion_mnist(dataset *d, const char *dir, int train) {
    char images[4096], labels[4096];
    if (!dir) dir = DATASET_FASHION_MNIST_DIR;
    const char *split = train ? "train" : "t10k";
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", dir, split);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    ns_status st = dataset_load_idx(d, images, labels);
    if (!st && (d->height != 28 || d->width != 28 || d->num_classes > 10)) {
        st = ns_error_set(NS_ERR_FORMAT, "%s: expected 28x28 Fashion-MNIST images with labels 0..9, got %dx%d, %d classes",
                          images, d->height, d->width, d->num_classes);
        dataset_free(d);
    }
    return st;
}

void dataset_free(dataset *d) {
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}
