// common/sha256.c against the FIPS 180-2 example vectors (Appendix B: "abc",
// the 448-bit two-block message, one million 'a'), the empty message, every
// split of a message into two update calls (block-boundary handling), and
// sha256_hex_file on a written file and a missing one. Exits non-zero on
// failure.
// usage: test_sha256 [SCRATCH_DIR]
#include "common/sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"

static void check_vector(const char *name, const void *msg, size_t n, const char *want) {
    char hex[SHA256_HEX_SIZE];
    sha256_hex_buffer(hex, msg, n);
    int ok = !strcmp(hex, want);
    printf("  %-28s %s %s\n", name, hex, ok ? "ok" : "FAIL");
    EXPECT(ok, "%s: got %s, want %s", name, hex, want);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    printf("SHA-256 (FIPS 180-2 Appendix B vectors)\n");
    check_vector("\"abc\"", "abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_vector("448-bit message", two, strlen(two),
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    check_vector("empty message", "", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    size_t million = 1000000;
    char *a = malloc(million);
    NS_CHECK(a);
    memset(a, 'a', million);
    check_vector("one million 'a'", a, million, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    // Split updates: every cut of a 130-byte message gives the one-shot digest.
    char ref[SHA256_HEX_SIZE];
    unsigned char msg[130];
    for (int i = 0; i < 130; i++) msg[i] = (unsigned char)(i * 37 + 11);
    sha256_hex_buffer(ref, msg, sizeof msg);
    int splits_ok = 1;
    for (size_t cut = 0; cut <= sizeof msg; cut++) {
        sha256_ctx c;
        unsigned char d[32];
        sha256_init(&c);
        sha256_update(&c, msg, cut);
        sha256_update(&c, msg + cut, sizeof msg - cut);
        sha256_final(&c, d);
        char hex[SHA256_HEX_SIZE];
        for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
        splits_ok &= !strcmp(hex, ref);
    }
    printf("  every two-part split of 130 bytes equals one-shot: %s\n", splits_ok ? "yes" : "NO");
    EXPECT(splits_ok, "split updates");

    char path[4096], hex[SHA256_HEX_SIZE];
    snprintf(path, sizeof path, "%s/test_sha256.bin", dir);
    FILE *f = fopen(path, "wb");
    NS_CHECK(f && fwrite(a, 1, million, f) == million && fclose(f) == 0);
    ns_status st = sha256_hex_file(path, hex);
    int file_ok = st == NS_OK && !strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    printf("  sha256_hex_file (1e6 'a'):   %s\n", file_ok ? "ok" : "FAIL");
    EXPECT(file_ok, "file digest %s", hex);
    remove(path);
    st = sha256_hex_file(path, hex);
    int missing_ok = st == NS_ERR_IO && strstr(ns_error_message(), path);
    printf("  missing file:                %s\n", st ? ns_error_message() : "accepted (WRONG)");
    EXPECT(missing_ok, "missing file error names the path");
    free(a);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}
