/* test_crash.c — a writer killed with SIGKILL at random points leaves each file wholly old
 * or wholly new, and the next write removes the temporary files the dead writers left.
 *
 * 200 rounds: a forked child keeps replacing f.txt (write_file in even rounds, read_file +
 * edit_file in odd ones) with one of two contents; once it says it has started, the
 * parent kills it after a random delay of up to 8 ms, reaps it and checks the file. */
#include "tests/tools/tt.h"

#include <signal.h>
#include <time.h>

#define ROUNDS 200
#define LINES 200

static char *content(char c) {
  qc_buf b;
  qc_buf_init(&b, 0);
  for (int i = 0; i < LINES; i++) qc_buf_printf(&b, "%c%c%c line %03d of the %c version\n", c, c, c, i, c);
  return qc_buf_detach(&b, NULL);
}

/* The writer: replaces f.txt until killed. `ws` was opened by the parent before the fork
 * (opening one costs more than many writes). */
static void child(tool_ws *ws, int edit, const char *A, const char *B, int ready_fd) {
  /* the agent's view of the file: what the parent just put there. This first call also
   * pays for the copy-on-write faults after fork (large under ASan), before "ready". */
  tool_result r0;
  json_t *a0 = json_pack("{s:s}", "path", "f.txt");
  tool_call(ws, "read_file", a0, NULL, &r0);
  if (!r0.ok) _exit(5);
  tool_result_release(&r0);
  json_decref(a0);
  if (write(ready_fd, "r", 1) != 1) _exit(4);
  for (int i = 0;; i++) {
    tool_result r;
    json_t *a;
    if (!edit) {
      a = json_pack("{s:s, s:s}", "path", "f.txt", "content", (i % 2) ? A : B);
      tool_call(ws, "write_file", a, NULL, &r);
    } else {
      a = json_pack("{s:s}", "path", "f.txt");
      tool_call(ws, "read_file", a, NULL, &r);
      tool_result_release(&r);
      json_decref(a);
      /* swap every line's prefix, AAA -> BBB or back, in one replace_all edit */
      int to_b = (i % 2) == 0;
      a = json_pack("{s:s, s:s, s:s, s:b}", "path", "f.txt", "old_string", to_b ? "AAA" : "BBB",
                    "new_string", to_b ? "BBB" : "AAA", "replace_all", 1);
      tool_call(ws, "edit_file", a, NULL, &r);
    }
    if (!r.ok) _exit(5);
    /* one byte per finished replacement, read by the parent after the kill */
    if (write(ready_fd, "w", 1) != 1) _exit(6);
    tool_result_release(&r);
    json_decref(a);
  }
}

/* A directory on tmpfs when there is one: a SIGKILL tests rename atomicity, not the
 * disk, and fsyncs on a real disk (ms each) would make 200 rounds slow. */
static char *shm_dir;
static void rm_shm_dir(void) {
  if (!shm_dir) return;
  char *cmd = qc_asprintf("rm -rf '%s'", shm_dir);
  if (cmd && system(cmd) != 0) { /* best effort */ }
  free(cmd);
}

static char *fast_dir(int *own) {
  char tmpl[] = "/dev/shm/qct-crash-XXXXXX";
  if (access("/dev/shm", W_OK) == 0 && mkdtemp(tmpl)) {
    *own = 1;
    shm_dir = strdup(tmpl);
    atexit(rm_shm_dir);
    return strdup(tmpl);
  }
  *own = 0;
  return qct_tempdir("crash");
}

TEST(killed_writers_leave_old_or_new_and_no_temp_files) {
  int own = 0;
  char *d = fast_dir(&own);
  char *A = content('A'), *B = content('B');
  /* edit rounds swap the prefixes only: "BBB line 000 of the A version" (AB) is the other
   * whole state there */
  char *AB = strdup(A);
  for (char *p = AB; (p = strstr(p, "AAA")); p += 3) memcpy(p, "BBB", 3);
  char *path = tt_path(d, "f.txt");
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  srand(seed);
  int with_temp = 0, changed = 0, ops = 0;
  tool_ws *ws = tt_open_opts(d, TOOL_SANDBOX_PREFER, NULL, 1);
  /* warm up before forking: the first hash initialises OpenSSL (~20 ms), which would
   * otherwise eat every child's time before its first write */
  tool_result w;
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"f.txt\",\"content\":\"warm\"}", &w), TOOL_OK);
  tool_result_release(&w);
  for (int round = 0; round < ROUNDS; round++) {
    int edit = round % 2;
    ASSERT(qct_write_file(path, A) == 0);
    fflush(NULL);
    int pfd[2];
    ASSERT(pipe(pfd) == 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
      close(pfd[0]);
      child(ws, edit, A, B, pfd[1]);
    }
    close(pfd[1]);
    char c;
    ASSERT(read(pfd[0], &c, 1) == 1);
    usleep((useconds_t)(rand() % 8000));
    kill(pid, SIGKILL);
    int st;
    ASSERT(waitpid(pid, &st, 0) == pid);
    char buf[4096];
    ssize_t got;
    while ((got = read(pfd[0], buf, sizeof buf)) > 0) ops += (int)got;
    close(pfd[0]);
    ASSERT_MSG(WIFSIGNALED(st), "round %d: the writer stopped by itself (status %d)", round, st);
    char *now = qct_read_file(path, NULL);
    ASSERT_MSG(now != NULL, "round %d: the file is gone", round);
    int whole = strcmp(now, A) == 0 || (edit ? strcmp(now, AB) == 0 : strcmp(now, B) == 0);
    ASSERT_MSG(whole, "round %d (seed %u): the file is neither the old nor the new content (%zu bytes)", round,
               seed, strlen(now));
    if (strcmp(now, A) != 0) changed++;
    free(now);
    if (tt_count_names(d, ".qcoder-") > 0) with_temp++;
  }
  /* the writers made progress (else this would prove nothing) */
  ASSERT_MSG(ops >= ROUNDS / 2, "only %d replacements finished in %d rounds", ops, ROUNDS);
  /* the next write (here, in this process) removes every stale temp file */
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "read_file", "{\"path\":\"f.txt\"}", &r), TOOL_OK);
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"f.txt\",\"content\":\"final\\n\"}", &r), TOOL_OK);
  tool_result_release(&r);
  ASSERT_EQ_INT(tt_count_names(d, ".qcoder-"), 0);
  char *s = tt_read(d, "f.txt");
  ASSERT_STR_EQ(s, "final\n");
  free(s);
  fprintf(stderr, "  %d rounds (seed %u): %d replacements finished, %d rounds changed the file, %d left a temp file\n",
          ROUNDS, seed, ops, changed, with_temp);
  tool_ws_close(ws);
  free(path);
  free(A);
  free(B);
  free(AB);
  free(d);
}

TEST(a_live_writers_temp_file_is_not_removed) {
  char *d = qct_tempdir("crash2");
  /* a temp file named for a live process (pid 1) stays; one of a dead process goes */
  tt_write(d, ".f.txt.qcoder-1-0000abcd.tmp", "in flight");
  tt_write(d, ".f.txt.qcoder-2147483646-0000abcd.tmp", "dead");
  tt_write(d, ".unrelated.tmp", "not ours");
  tool_ws *ws = tt_open_opts(d, TOOL_SANDBOX_PREFER, NULL, 1);
  tool_result r;
  ASSERT_EQ_INT(tt_call(ws, "write_file", "{\"path\":\"f.txt\",\"content\":\"x\"}", &r), TOOL_OK);
  tool_result_release(&r);
  ASSERT(tt_exists(d, ".f.txt.qcoder-1-0000abcd.tmp"));
  ASSERT(!tt_exists(d, ".f.txt.qcoder-2147483646-0000abcd.tmp"));
  ASSERT(tt_exists(d, ".unrelated.tmp"));
  tool_ws_close(ws);
  free(d);
}

QC_TEST_MAIN
