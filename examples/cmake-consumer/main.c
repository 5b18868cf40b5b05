/* Runs the KAT block compiled by moka_add_model() on N x 64 float32 values
 * read from IN and writes the N x 64 results to OUT (raw little-endian
 * float32). Also checks that bad arguments come back as errors. */

#include "kat_block.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int expect_error(moka_status status, moka_status expected,
                        const char *what) {
  if (status != expected) {
    fprintf(stderr, "consumer: %s: status %d, expected %d\n", what, status,
            expected);
    return 1;
  }
  if (strlen(moka_last_error()) == 0) {
    fprintf(stderr, "consumer: %s: no error message\n", what);
    return 1;
  }
  printf("rejected %s: %s\n", what, moka_last_error());
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: consumer IN OUT N\n");
    return 2;
  }
  long n = atol(argv[3]);
  size_t count = (size_t)n * 64;
  float *x = malloc(count * sizeof(float) + 1);
  FILE *in = fopen(argv[1], "rb");
  if (!x || !in || fread(x, sizeof(float), count, in) != count) {
    fprintf(stderr, "consumer: cannot read %zu floats from %s\n", count,
            argv[1]);
    return 1;
  }
  fclose(in);

  int64_t shape[2] = {n, 64};
  moka_tensor input = moka_tensor_view(x, MOKA_DTYPE_F32, 2, shape);
  moka_tensor output;
  if (kat_block_forward(&input, &output) != MOKA_OK) {
    fprintf(stderr, "consumer: %s\n", moka_last_error());
    return 1;
  }
  if (output.rank != 2 || output.shape[0] != n || output.shape[1] != 64 ||
      output.dtype != MOKA_DTYPE_F32) {
    fprintf(stderr, "consumer: unexpected result type\n");
    return 1;
  }
  FILE *out = fopen(argv[2], "wb");
  if (!out || fwrite(output.data, sizeof(float), count, out) != count) {
    fprintf(stderr, "consumer: cannot write %s\n", argv[2]);
    return 1;
  }
  fclose(out);
  moka_tensor_release(&output);

  /* Bad arguments: errors, not crashes. */
  int failures = 0;
  failures += expect_error(kat_block_forward(NULL, &output),
                           MOKA_ERROR_INVALID_ARGUMENT, "a null argument");
  int64_t wrong[2] = {n, 63};
  moka_tensor bad = moka_tensor_view(x, MOKA_DTYPE_F32, 2, wrong);
  failures += expect_error(kat_block_forward(&bad, &output),
                           MOKA_ERROR_INVALID_ARGUMENT, "a wrong dimension");
  bad = moka_tensor_view(x, MOKA_DTYPE_F64, 2, shape);
  failures += expect_error(kat_block_forward(&bad, &output),
                           MOKA_ERROR_INVALID_ARGUMENT, "a wrong dtype");
  bad = moka_tensor_view(x, MOKA_DTYPE_F32, 1, shape);
  failures += expect_error(kat_block_forward(&bad, &output),
                           MOKA_ERROR_INVALID_ARGUMENT, "a wrong rank");
  free(x);
  return failures ? 1 : 0;
}
