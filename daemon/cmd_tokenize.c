/* cmd_tokenize.c — `qcoder tokenize`: text → token ids with a model's own tokenizer.
 *
 * Loads only the vocabulary (vocab_only: no tensors are touched, so it is quick even for
 * an 18 GB model) and prints the ids the engine will feed the model — the same ids the
 * model's Hugging Face tokenizer gives. Text comes from the argument or from stdin ('-'
 * or no argument), byte for byte: a trailing newline on stdin is part of the text.
 */
#include "daemon/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "engine/engine.h"

const char cmd_tokenize_usage[] =
    "usage: qcoder tokenize --model FILE [--json] [--no-special] [--count] [TEXT | -]\n"
    "\n"
    "Print the token ids of TEXT (or of stdin, with '-' or no TEXT) as the model's own\n"
    "tokenizer gives them. Only the vocabulary is loaded.\n"
    "\n"
    "  -m, --model FILE  a GGUF model (the first part of a split model)\n"
    "  --json            print {\"ids\": [...]} (with --count: {\"count\": N})\n"
    "  --no-special      treat control tokens written in the text (<|im_start|>, ...) as\n"
    "                    plain text; <tool_call>, <think> and the other user-defined tokens\n"
    "                    are still recognised, as llama.cpp does\n"
    "  --count           print only the number of tokens\n"
    "\n"
    "Stdin is read byte for byte (a final newline is part of the text). The text must be\n"
    "valid UTF-8. Exit status: 0 success, 1 the model or text was refused, 2 usage.\n";

/* Text read from stdin; the tokenizer itself takes up to 1 GiB, more than any prompt. */
#define TOKENIZE_MAX_STDIN (256u << 20)

static int read_stdin(qc_buf *b) {
  char chunk[65536];
  for (;;) {
    size_t n = fread(chunk, 1, sizeof chunk, stdin);
    if (n && qc_buf_append(b, chunk, n)) return QC_ETOOBIG;
    if (n < sizeof chunk) return ferror(stdin) ? QC_EIO : QC_OK;
  }
}

int cmd_tokenize(int argc, char **argv) {
  const char *model = NULL, *text = NULL;
  int json = 0, special = 1, count = 0, have_text = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--model") == 0 || strcmp(a, "-m") == 0) {
      if (++i >= argc) return qc_cmd_usage_error("tokenize", "%s needs a file", a);
      model = argv[i];
    } else if (strncmp(a, "--model=", 8) == 0) {
      model = a + 8;
    } else if (strcmp(a, "--json") == 0) {
      json = 1;
    } else if (strcmp(a, "--no-special") == 0) {
      special = 0;
    } else if (strcmp(a, "--count") == 0) {
      count = 1;
    } else if (strcmp(a, "--") == 0) {
      if (i + 1 < argc) text = argv[++i], have_text = 1;
      if (i + 1 < argc) return qc_cmd_usage_error("tokenize", "give the text as one argument");
    } else if (a[0] == '-' && a[1] != '\0') {
      return qc_cmd_usage_error("tokenize", "unknown option '%s'", a);
    } else if (have_text) {
      return qc_cmd_usage_error("tokenize", "give the text as one argument (quote it)");
    } else {
      text = a;
      have_text = 1;
    }
  }
  if (!model) return qc_cmd_usage_error("tokenize", "--model FILE is required");

  int rc = 1;
  eng_model *m = NULL;
  int32_t *ids = NULL;
  size_t n_ids = 0;
  qc_buf in;
  qc_buf_init(&in, TOKENIZE_MAX_STDIN);
  size_t len;
  if (!have_text || strcmp(text, "-") == 0) {
    int r = read_stdin(&in);
    if (r) {
      fprintf(stderr, "qcoder tokenize: cannot read stdin: %s\n",
              r == QC_ETOOBIG ? "more than 256 MiB of text" : qc_strerror(r));
      goto out;
    }
    text = in.data;
    len = in.len;
  } else {
    len = strlen(text);
  }

  eng_model_opts opts = {.vocab_only = 1};
  eng_error err = {0};
  if (eng_model_open(model, &opts, &m, &err)) {
    fprintf(stderr, "qcoder tokenize: %s\n", err.msg[0] ? err.msg : eng_strerror(err.code));
    goto out;
  }
  if (eng_tokenize(m, text, len, special, &ids, &n_ids, &err)) {
    fprintf(stderr, "qcoder tokenize: %s\n", err.msg[0] ? err.msg : eng_strerror(err.code));
    goto out;
  }
  if (count) {
    printf(json ? "{\"count\": %zu}\n" : "%zu\n", n_ids);
  } else {
    fputs(json ? "{\"ids\": [" : "", stdout);
    for (size_t i = 0; i < n_ids; i++) printf(i ? (json ? ", %d" : " %d") : "%d", (int)ids[i]);
    fputs(json ? "]}\n" : "\n", stdout);
  }
  rc = fflush(stdout) == 0 ? 0 : 1;
out:
  free(ids);
  if (m) eng_model_close(m);
  qc_buf_release(&in);
  return rc;
}
