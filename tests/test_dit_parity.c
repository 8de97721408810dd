// Numerical parity of the C denoiser with the independent PyTorch reference
// (tests/reference/dit_ref.py). For each fixture NAME written by
// make_parity_fixture.py: load NAME.weights.h5 (written through
// tools/convert_checkpoint.py), run the forward and the guided velocity on
// the fixture's inputs, compare with the float64 PyTorch outputs.
// Pass: relative error max|c - ref| / max|ref| <= 1e-4 for both.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/h5util.h"
#include "model/denoiser.h"
#include "model/gemm.h"
#include "fixture_main.h"

#define TOLERANCE 1e-4

static double compare(const char *what, const char *name, const float *got, const float *ref, size_t n) {
    double max_abs = 0.0, max_ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= max_abs)) max_abs = d;  // NaN propagates
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
    }
    double rel = max_abs / (max_ref > 0 ? max_ref : 1.0);
    printf("  %-12s %-6s max abs err %.3e  max |ref| %.3f  rel err %.3e  %s\n", name, what, max_abs, max_ref, rel,
           rel <= TOLERANCE ? "ok" : "FAIL");
    return rel;
}

static int check_fixture(const char *dir, const char *name) {
    char wpath[4096], fpath[4096];
    snprintf(wpath, sizeof wpath, "%s/%s.weights.h5", dir, name);
    snprintf(fpath, sizeof fpath, "%s/%s.fixture.h5", dir, name);
    dit_model m;
    if (dit_load(&m, wpath) != NS_OK) {
        printf("  %s: %s\n", name, ns_error_message());
        return 1;
    }
    hid_t f;
    hsize_t xd[4], td[1], yd[1], vd[4], gd[4];
    float *x = NULL, *t = NULL, *v = NULL, *vcfg = NULL;
    int *y = NULL, cfg_channels = 0;
    double cfg_scale = 1.0;
    NS_CHECK(h5u_open_read(&f, fpath) == NS_OK);
    NS_CHECK(h5u_read_floats(f, fpath, "x", 4, xd, &x) == NS_OK);
    NS_CHECK(h5u_read_floats(f, fpath, "t", 1, td, &t) == NS_OK);
    NS_CHECK(h5u_read_ints(f, fpath, "y", 1, yd, &y) == NS_OK);
    NS_CHECK(h5u_read_floats(f, fpath, "v", 4, vd, &v) == NS_OK);
    NS_CHECK(h5u_read_floats(f, fpath, "v_cfg", 4, gd, &vcfg) == NS_OK);
    NS_CHECK(h5u_attr_read_double(f, fpath, "cfg_scale", &cfg_scale) == NS_OK);
    NS_CHECK(h5u_attr_read_int(f, fpath, "cfg_channels", &cfg_channels) == NS_OK);
    h5u_close_file(f);
    int B = (int)xd[0], dim = dit_sample_dim(&m.cfg);
    NS_CHECK((size_t)xd[1] * xd[2] * xd[3] == (size_t)dim && td[0] == xd[0] && yd[0] == xd[0]);

    dit_workspace ws;
    sampler_workspace sws = {0};
    NS_CHECK(dit_workspace_init(&ws, &m.cfg, 2 * B, 0) == NS_OK);
    NS_CHECK(sampler_workspace_init(&sws, dim, B) == NS_OK);
    denoiser d = {&m, &ws};
    sampler_model sm = denoiser_sampler_model(&d);
    float *out = ns_malloc(sizeof(float) * B * dim, "out");
    printf("  %-12s config: %dx%dx%d patch %d depth %d width %d heads %d classes %d learn_sigma %d, B=%d\n", name,
           m.cfg.input_size, m.cfg.input_size, m.cfg.in_channels, m.cfg.patch_size, m.cfg.depth, m.cfg.hidden_size,
           m.cfg.num_heads, m.cfg.num_classes, m.cfg.learn_sigma, B);
    dit_forward(&m, &ws, out, x, t, y, B);
    int bad = compare("v", name, out, v, (size_t)B * dim) > TOLERANCE;
    int nfe = 0;
    NS_CHECK(sampler_velocity_cfg(&sm, &sws, out, x, t, y, B, (float)cfg_scale, cfg_channels, &nfe) == NS_OK);
    bad += compare("v_cfg", name, out, vcfg, (size_t)B * dim) > TOLERANCE;
    bad += nfe != 2;

    free(out), free(x), free(t), free(y), free(v), free(vcfg);
    sampler_workspace_free(&sws);
    dit_workspace_free(&ws);
    dit_model_free(&m);
    return bad;
}

int main(int argc, char **argv) { return fixture_test_main(argc, argv, check_fixture, TOLERANCE); }
