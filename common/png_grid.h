// Write a grid of images to a PNG file (libpng): rows x cols tiles, each a
// (C, H, W) float image in [-1, 1] (values outside are clipped). C == 3 is
// written as RGB, any other C as grayscale of channel 0. Tiles are separated
// by a pad-pixel border and magnified by an integer zoom factor.
#ifndef NS_PNG_GRID_H
#define NS_PNG_GRID_H

#include "status.h"

typedef struct {
    int rows, cols;   // tile (r, c) is images[(r * cols + c) * C*H*W]
    int channels, height, width;
    int zoom;         // >= 1
    int pad;          // border pixels between tiles (in output pixels)
} png_grid_layout;

// The file is written under a temporary name and renamed when complete.
ns_status png_grid_write(const char *path, const float *images, const png_grid_layout *layout);

#endif
