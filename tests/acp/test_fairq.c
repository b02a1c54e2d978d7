/* test_fairq.c — the backend's fair queue (sessions.h): first come first served, a
 * cancelled waiter leaves the line without blocking the others, and two sessions that
 * keep calling the model take turns instead of one starving the other. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "daemon/sessions.h"
#include "tests/test.h"

static acp_fairq q;

static void wait_len(int n) {
  for (int i = 0; i < 500 && acp_fairq_length(&q) != n; i++) usleep(2000);
  ASSERT_EQ_INT(acp_fairq_length(&q), n);
}

typedef struct waiter {
  int id;
  atomic_int cancel;
  int rc;
  int *order;
  atomic_int *pos;
} waiter;

static void *enter_then_leave(void *arg) {
  waiter *w = arg;
  acp_fairq_waiter node;
  w->rc = acp_fairq_enter(&q, &node, &w->cancel);
  if (w->rc == 0) {
    w->order[atomic_fetch_add(w->pos, 1)] = w->id;
    usleep(1000);
    acp_fairq_leave(&q, &node);
  }
  return NULL;
}

TEST(first_come_first_served) {
  acp_fairq_init(&q);
  acp_fairq_waiter holder;
  ASSERT_EQ_INT(acp_fairq_enter(&q, &holder, NULL), 0);
  int order[6] = {0};
  atomic_int pos = 0;
  waiter w[6];
  pthread_t th[6];
  for (int i = 0; i < 6; i++) { /* queue them in a known order */
    w[i] = (waiter){.id = i + 1, .order = order, .pos = &pos};
    pthread_create(&th[i], NULL, enter_then_leave, &w[i]);
    wait_len(i + 2);
  }
  acp_fairq_leave(&q, &holder);
  for (int i = 0; i < 6; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 6; i++) ASSERT_EQ_INT(order[i], i + 1);
  ASSERT_EQ_INT(acp_fairq_length(&q), 0);
  ASSERT_EQ_INT((int)q.served, 7);
  acp_fairq_release_all(&q);
}

TEST(a_cancelled_waiter_leaves_the_line) {
  acp_fairq_init(&q);
  acp_fairq_waiter holder;
  ASSERT_EQ_INT(acp_fairq_enter(&q, &holder, NULL), 0);
  int order[2] = {0};
  atomic_int pos = 0;
  waiter a = {.id = 1, .order = order, .pos = &pos}, b = {.id = 2, .order = order, .pos = &pos};
  pthread_t ta, tb;
  pthread_create(&ta, NULL, enter_then_leave, &a);
  wait_len(2);
  pthread_create(&tb, NULL, enter_then_leave, &b);
  wait_len(3);
  uint64_t t0 = qc_now_ms();
  atomic_store(&a.cancel, 1); /* the first in line gives up … */
  acp_fairq_kick(&q);
  pthread_join(ta, NULL);
  ASSERT_EQ_INT(a.rc, 1);
  ASSERT(qc_now_ms() - t0 < 1000);
  wait_len(2);
  acp_fairq_leave(&q, &holder); /* … and the one behind it is served */
  pthread_join(tb, NULL);
  ASSERT_EQ_INT(b.rc, 0);
  ASSERT_EQ_INT(order[0], 2);
  acp_fairq_release_all(&q);
}

/* Two sessions that call the model 20 times each: once both are in line they alternate. */
typedef struct looper {
  char name;
  char *log;
  atomic_int *pos;
} looper;

static void *loop_calls(void *arg) {
  looper *l = arg;
  for (int i = 0; i < 20; i++) {
    acp_fairq_waiter node;
    ASSERT_EQ_INT(acp_fairq_enter(&q, &node, NULL), 0);
    l->log[atomic_fetch_add(l->pos, 1)] = l->name;
    usleep(500); /* a "model call" */
    acp_fairq_leave(&q, &node);
  }
  return NULL;
}

TEST(sessions_take_turns) {
  acp_fairq_init(&q);
  acp_fairq_waiter holder;
  ASSERT_EQ_INT(acp_fairq_enter(&q, &holder, NULL), 0);
  char log[41] = {0};
  atomic_int pos = 0;
  looper a = {'A', log, &pos}, b = {'B', log, &pos};
  pthread_t ta, tb;
  pthread_create(&ta, NULL, loop_calls, &a);
  wait_len(2);
  pthread_create(&tb, NULL, loop_calls, &b);
  wait_len(3);
  acp_fairq_leave(&q, &holder);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  ASSERT_STR_EQ(log, "ABABABABABABABABABABABABABABABABABABABAB");
  acp_fairq_release_all(&q);
}

QC_TEST_MAIN
