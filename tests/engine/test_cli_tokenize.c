/* test_cli_tokenize.c — `qcoder tokenize` end to end: the real binary on the oracle's
 * vocabulary, text from the argument and from stdin, --json / --count / --no-special, and
 * the errors a user sees. */
#include "tests/test.h"

#include <jansson.h>

static char *vocab;  /* tests/data copy of the oracle's vocab-qwen3.gguf */
static char *dir;

static void setup(void) {
  if (!vocab) vocab = qct_data_path("oracle/models/vocab-qwen3.gguf");
  if (!dir) dir = qct_tempdir("tokcli");
  ASSERT(dir);
}

/* Run `qcoder tokenize ARGS` (stderr folded into the output); returns the exit status. */
static int run(const char *args, char **out) {
  setup();
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "'%s' tokenize %s 2>&1", qct_qcoder_bin(), args);
  return qct_run(cmd, out);
}

TEST(json_output_is_exact) {
  char *out = NULL, args[1024];
  setup();
  snprintf(args, sizeof args, "--model '%s' --json 'Hello world'", vocab);
  ASSERT_EQ_INT(run(args, &out), 0);
  ASSERT_STR_EQ(out, "{\"ids\": [9707, 1879]}\n");
  free(out);
  snprintf(args, sizeof args, "-m '%s' ' Hello world'", vocab);
  ASSERT_EQ_INT(run(args, &out), 0);
  ASSERT_STR_EQ(out, "21927 1879\n");
  free(out);
  snprintf(args, sizeof args, "-m '%s' --json --count 'Hello world'", vocab);
  ASSERT_EQ_INT(run(args, &out), 0);
  ASSERT_STR_EQ(out, "{\"count\": 2}\n");
  free(out);
  snprintf(args, sizeof args, "-m '%s' --json ''", vocab);
  ASSERT_EQ_INT(run(args, &out), 0);
  ASSERT_STR_EQ(out, "{\"ids\": []}\n");
  free(out);
}

TEST(stdin_and_special_tokens) {
  setup();
  char path[1024], args[2048], *out = NULL;
  snprintf(path, sizeof path, "%s/chat.txt", dir);
  ASSERT_EQ_INT(qct_write_file(path, "<|im_start|>user\nhi<|im_end|>\n"), 0);
  snprintf(args, sizeof args, "--model '%s' --json - < '%s'", vocab, path);
  ASSERT_EQ_INT(run(args, &out), 0);
  /* the final newline from the file is part of the text */
  ASSERT_STR_EQ(out, "{\"ids\": [151644, 872, 198, 6023, 151645, 198]}\n");
  free(out);
  snprintf(args, sizeof args, "--model '%s' < '%s'", vocab, path);  /* no TEXT: stdin */
  ASSERT_EQ_INT(run(args, &out), 0);
  ASSERT_STR_EQ(out, "151644 872 198 6023 151645 198\n");
  free(out);
  snprintf(args, sizeof args, "--model '%s' --no-special --json - < '%s'", vocab, path);
  ASSERT_EQ_INT(run(args, &out), 0);
  ASSERT_MSG(strstr(out, "151644") == NULL && strstr(out, "151645") == NULL,
             "control tokens were recognised with --no-special: %s", out);
  free(out);
}

/* The oracle's 4 KB C file through stdin gives the oracle's ids. */
TEST(oracle_c_file) {
  setup();
  char *p = qct_data_path("oracle/tokenizer/tokenizer-cases.json");
  json_error_t je;
  json_t *j = json_load_file(p, 0, &je);
  free(p);
  ASSERT_MSG(j, "%s", je.text);
  json_t *c, *want = NULL;
  size_t i;
  const char *hex = NULL;
  json_array_foreach(json_object_get(j, "cases"), i, c) {
    if (strcmp(json_string_value(json_object_get(c, "name")), "code_c_4kb") == 0) {
      hex = json_string_value(json_object_get(c, "text_hex"));
      want = json_object_get(c, "ids");
    }
  }
  ASSERT(hex && want);
  char path[1024], args[2048], *out = NULL;
  snprintf(path, sizeof path, "%s/file.c", dir);
  FILE *f = fopen(path, "wb");
  ASSERT(f);
  for (size_t k = 0; hex[2 * k]; k++) {
    unsigned v;
    sscanf(hex + 2 * k, "%2x", &v);
    fputc((int)v, f);
  }
  fclose(f);
  snprintf(args, sizeof args, "--model '%s' --json - < '%s'", vocab, path);
  ASSERT_EQ_INT(run(args, &out), 0);
  json_t *got = json_loads(out, 0, &je);
  ASSERT_MSG(got, "not JSON: %s", out);
  ASSERT(json_equal(json_object_get(got, "ids"), want));
  json_decref(got);
  json_decref(j);
  free(out);
}

TEST(errors) {
  setup();
  char path[1024], args[2048], *out = NULL;
  snprintf(path, sizeof path, "%s/bad.txt", dir);
  ASSERT_EQ_INT(qct_write_file(path, "ok \xff"), 0);
  snprintf(args, sizeof args, "--model '%s' - < '%s'", vocab, path);
  ASSERT_EQ_INT(run(args, &out), 1);
  ASSERT_CONTAINS(out, "not valid UTF-8: byte 0xff at offset 3");
  free(out);
  ASSERT_EQ_INT(run("--json x", &out), 2);
  ASSERT_CONTAINS(out, "--model FILE is required");
  free(out);
  snprintf(args, sizeof args, "--model '%s/missing.gguf' x", dir);
  ASSERT_EQ_INT(run(args, &out), 1);
  ASSERT_CONTAINS(out, "missing.gguf");
  free(out);
  snprintf(args, sizeof args, "--model '%s' --bogus x", vocab);
  ASSERT_EQ_INT(run(args, &out), 2);
  ASSERT_CONTAINS(out, "unknown option '--bogus'");
  free(out);
  ASSERT_EQ_INT(run("--help", &out), 0);
  ASSERT_CONTAINS(out, "usage: qcoder tokenize");
  free(out);
}

QC_TEST_MAIN
