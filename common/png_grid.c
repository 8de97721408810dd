// PNG grids of samples (see png_grid.h). libpng's longjmp error handling is
// confined to write_rows(); everything else returns ns_status.
#include "png_grid.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char to_byte(float v) {
    float s = (v + 1.0f) * 127.5f;
    if (!(s > 0.0f)) return 0;  // also NaN
    if (s > 255.0f) return 255;
    return (unsigned char)(s + 0.5f);
}

// Render the whole grid into an 8-bit buffer (rows of width*px bytes).
static unsigned char *render(const float *images, const png_grid_layout *g, int px, int *out_w, int *out_h) {
    int tile_w = g->width * g->zoom, tile_h = g->height * g->zoom;
    int W = g->cols * tile_w + (g->cols + 1) * g->pad;
    int H = g->rows * tile_h + (g->rows + 1) * g->pad;
    unsigned char *buf = ns_calloc((size_t)W * H, (size_t)px, "png grid");
    memset(buf, 255, (size_t)W * H * px);  // white border
    size_t plane = (size_t)g->height * g->width, img = plane * g->channels;
    for (int r = 0; r < g->rows; r++)
        for (int c = 0; c < g->cols; c++) {
            const float *im = images + (size_t)(r * g->cols + c) * img;
            int x0 = g->pad + c * (tile_w + g->pad), y0 = g->pad + r * (tile_h + g->pad);
            for (int y = 0; y < tile_h; y++)
                for (int x = 0; x < tile_w; x++) {
                    size_t src = (size_t)(y / g->zoom) * g->width + x / g->zoom;
                    unsigned char *dst = buf + ((size_t)(y0 + y) * W + x0 + x) * px;
                    for (int k = 0; k < px; k++) dst[k] = to_byte(im[k * plane + src]);
                }
        }
    *out_w = W;
    *out_h = H;
    return buf;
}

static int write_rows(FILE *fp, const unsigned char *buf, int W, int H, int px) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, px == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < H; y++) png_write_row(png, buf + (size_t)y * W * px);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

ns_status png_grid_write(const char *path, const float *images, const png_grid_layout *g) {
    if (g->rows < 1 || g->cols < 1 || g->channels < 1 || g->height < 1 || g->width < 1 || g->zoom < 1 || g->pad < 0)
        return ns_error_set(NS_ERR_ARG, "%s: invalid grid layout", path);
    int px = g->channels == 3 ? 3 : 1, W, H;
    unsigned char *buf = render(images, g, px, &W, &H);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        free(buf);
        return ns_error_set(NS_ERR_IO, "%s: cannot create file: %s", path, strerror(errno));
    }
    int bad = write_rows(fp, buf, W, H, px);
    free(buf);
    bad |= fclose(fp) != 0;
    if (bad || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return ns_error_set(NS_ERR_IO, "%s: writing the PNG failed: %s", path, err ? strerror(err) : "libpng error");
    }
    return NS_OK;
}
