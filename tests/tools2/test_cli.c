/* test_cli.c — `qcoder checkpoint` and `qcoder repomap` end to end (the real binary). */
#include "tests/test.h"
#include "common/common.h"

#include <jansson.h>


TEST(checkpoint_cli_round_trip_in_a_plain_directory) {
  char *d = qct_tempdir("clicp");
  char *state = qct_tempdir("clistate");
  char *p = qc_path_join(d, "main.py");
  qct_write_file(p, "print('v1')\n");
  char *out = NULL;
  /* use the state dir explicitly for every call */
  char *base = qc_asprintf("QCODER_STATE_DIR='%s' %s", state, qct_qcoder_bin());
  char *cmd = qc_asprintf("%s checkpoint list --workspace '%s'", base, d);
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  ASSERT_CONTAINS(out, "no checkpoints");
  free(out);
  free(cmd);
  cmd = qc_asprintf("%s checkpoint create -m first --workspace '%s' --json", base, d);
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  free(cmd);
  json_t *j = json_loads(out, 0, NULL);
  ASSERT_MSG(j, "not JSON: %s", out);
  char *id = strdup(json_string_value(json_object_get(j, "id")));
  json_decref(j);
  free(out);
  qct_write_file(p, "print('v2')\n");
  char *q = qc_path_join(d, "extra.txt");
  qct_write_file(q, "new\n");
  cmd = qc_asprintf("%s checkpoint diff %s --workspace '%s'", base, id, d);
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  free(cmd);
  ASSERT_CONTAINS(out, "-print('v1')\n+print('v2')\n");
  ASSERT_CONTAINS(out, "+++ b/extra.txt");
  free(out);
  cmd = qc_asprintf("%s checkpoint restore %.12s --workspace '%s' --json", base, id, d);
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  free(cmd);
  j = json_loads(out, 0, NULL);
  ASSERT_MSG(j, "not JSON: %s", out);
  ASSERT_EQ_INT(json_integer_value(json_object_get(j, "removed")), 1);
  ASSERT(json_string_value(json_object_get(j, "saved_as")));
  json_decref(j);
  free(out);
  char *c = qct_read_file(p, NULL);
  ASSERT_STR_EQ(c, "print('v1')\n");
  free(c);
  ASSERT(access(q, F_OK) != 0);
  /* list: the first checkpoint and the one saved before restoring */
  cmd = qc_asprintf("%s checkpoint list --workspace '%s' --json", base, d);
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  free(cmd);
  j = json_loads(out, 0, NULL);
  ASSERT_EQ_INT(json_array_size(j), 2);
  json_decref(j);
  free(out);
  cmd = qc_asprintf("%s checkpoint prune --keep 1 --days 0 --workspace '%s' --json", base, d);
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  free(cmd);
  j = json_loads(out, 0, NULL);
  ASSERT_EQ_INT(json_integer_value(json_object_get(j, "removed")), 1);
  json_decref(j);
  free(out);
  /* bad input */
  cmd = qc_asprintf("%s checkpoint restore nosuchid --workspace '%s' 2>&1", base, d);
  ASSERT_EQ_INT(qct_run(cmd, &out), 1);
  ASSERT_CONTAINS(out, "no checkpoint 'nosuchid'");
  free(cmd);
  free(out);
  cmd = qc_asprintf("%s checkpoint frobnicate --workspace '%s' 2>&1", base, d);
  ASSERT_EQ_INT(qct_run(cmd, &out), 2);
  free(cmd);
  free(out);
  /* the directory itself gained nothing */
  char *dotgit = qc_path_join(d, ".git");
  ASSERT(access(dotgit, F_OK) != 0);
  free(dotgit);
  free(base);
  free(id);
  free(p);
  free(q);
  free(state);
  free(d);
}

TEST(repomap_cli) {
  char *d = qct_tempdir("clirm");
  char *p = qc_path_join(d, "lib.c");
  qct_write_file(p, "int shared_helper_fn(int x) { return x; }\n");
  free(p);
  p = qc_path_join(d, "main.c");
  qct_write_file(p, "int main(void) { return shared_helper_fn(1); }\n");
  free(p);
  char *cmd = qc_asprintf("%s repomap --workspace '%s' --budget 100", qct_qcoder_bin(), d);
  char *out = NULL;
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  ASSERT(strncmp(out, "lib.c:\n  1: int shared_helper_fn(int x) { return x; }\n", 52) == 0);
  free(out);
  free(cmd);
  cmd = qc_asprintf("%s repomap --workspace '%s' --focus main.c", qct_qcoder_bin(), d);
  ASSERT_EQ_INT(qct_run(cmd, &out), 0);
  ASSERT(!strstr(out, "main.c"));
  free(out);
  free(cmd);
  cmd = qc_asprintf("%s repomap --budget nope 2>/dev/null", qct_qcoder_bin());
  ASSERT_EQ_INT(qct_run(cmd, NULL), 2);
  free(cmd);
  free(d);
}

QC_TEST_MAIN
