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

/* Two sessions that call the model 20 times each: whenever one is served while the other
 * waits in line, the other is served next (a session that comes back at once queues
 * behind it). Whether the other is already waiting depends on the scheduler (a thread
 * preempted between two calls is simply not in line), so the turns are checked against
 * the line as each holder saw it, not against a fixed ABAB… string. */
typedef struct looper {
  char name;
  char *log;
  int *waiting; /* others in line when log[i] was served */
  atomic_int *pos;
} looper;

static void *loop_calls(void *arg) {
  looper *l = arg;
  for (int i = 0; i < 20; i++) {
    acp_fairq_waiter node;
    ASSERT_EQ_INT(acp_fairq_enter(&q, &node, NULL), 0);
    const int at = atomic_fetch_add(l->pos, 1);
    l->log[at] = l->name;
    usleep(500); /* a "model call"; the other may join the line meanwhile */
    l->waiting[at] = acp_fairq_length(&q) - 1;
    acp_fairq_leave(&q, &node);
  }
  return NULL;
}

TEST(sessions_take_turns) {
  acp_fairq_init(&q);
  acp_fairq_waiter holder;
  ASSERT_EQ_INT(acp_fairq_enter(&q, &holder, NULL), 0);
  char log[41] = {0};
  int waiting[40] = {0};
  atomic_int pos = 0;
  looper a = {'A', log, waiting, &pos}, b = {'B', log, waiting, &pos};
  pthread_t ta, tb;
  pthread_create(&ta, NULL, loop_calls, &a);
  wait_len(2);
  pthread_create(&tb, NULL, loop_calls, &b);
  wait_len(3);
  acp_fairq_leave(&q, &holder);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  /* both were in line when the holder let go: A (first in line) then B */
  ASSERT_EQ_INT(log[0], 'A');
  int turns = 0;
  for (int i = 0; i + 1 < 40; i++)
    if (waiting[i] > 0) {
      ASSERT_MSG(log[i + 1] != log[i], "%s: call %d of %c left %d waiting, yet %c was served again", log, i, log[i],
                 waiting[i], log[i]);
      turns++;
    }
  int na = 0;
  for (int i = 0; i < 40; i++) na += log[i] == 'A';
  ASSERT_EQ_INT(na, 20);
  ASSERT_MSG(turns > 0, "%s: the two were never in line together", log);
  acp_fairq_release_all(&q);
}

QC_TEST_MAIN
