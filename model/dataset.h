// Labelled image datasets in memory, read from gzipped IDX files (the
// MNIST / Fashion-MNIST format) with zlib. Pixels are scaled to [-1, 1], the
// range the denoiser is trained and sampled in. No MPI.
#ifndef NS_DATASET_H
#define NS_DATASET_H

#include "../common/status.h"

#define DATASET_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct {
    int count;        // N
    int channels;     // C (1 for IDX)
    int height, width;
    int num_classes;  // 1 + largest label
    float *images;    // (N, C, H, W) in [-1, 1]
    int *labels;      // (N,)
} dataset;

// Read an IDX image file (magic 0x803, unsigned bytes, N x H x W) and the
// matching IDX label file (magic 0x801, N bytes), both gzip-compressed.
// Headers, counts and sizes are checked; errors name the file.
ns_status dataset_load_idx(dataset *d, const char *images_gz, const char *labels_gz);

// Fashion-MNIST's training (60 000) or test (10 000) split from dir (NULL:
// DATASET_FASHION_MNIST_DIR, Debian package dataset-fashion-mnist).
ns_status dataset_load_fashion_mnist(dataset *d, const char *dir, int train);

void dataset_free(dataset *d);  // accepts a zeroed or half-built dataset

#endif
