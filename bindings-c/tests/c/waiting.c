/* Waiting in real time: threads block in rw_engine_acquire_wait on one engine with a single
 * concurrency slot and are granted in lane order as each completes. Order, completeness and what
 * is held afterwards are checked, never timings. Prints "N passed, N failed". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ratewise.h"

static int passed, failed;
#define CHECK(cond) do { if (cond) passed++; else { failed++; printf("FAILED %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, rw_last_error_message()); } } while (0)

#define WAITERS 9
static const char *lanes[] = {"critical", "normal", "batch"};
static rw_engine *engine;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int order[WAITERS], granted;
static rw_result results[WAITERS];

/* The sum of every lane's "waiting" in the snapshot. */
static long waiting(void) {
  char *s = NULL;
  if (rw_engine_snapshot(engine, &s) != RW_RESULT_OK) return -1;
  long n = 0;
  for (const char *p = strstr(s, "\"waiting\":"); p; p = strstr(p + 1, "\"waiting\":")) n += strtol(p + 10, NULL, 10);
  rw_string_free(s);
  return n;
}

static void *wait_for_permit(void *arg) {
  int i = (int)(long)arg;
  rw_request req = {lanes[i % 3], 0, 0, NULL, 0};
  uint64_t permit = 0;
  results[i] = rw_engine_acquire_wait(engine, "c", &req, 60000, &permit, NULL);
  if (results[i] != RW_RESULT_OK) return NULL;
  pthread_mutex_lock(&lock);
  order[granted++] = i % 3;
  pthread_mutex_unlock(&lock);
  rw_outcome ok = {"success", 0, 1, -1, -1, -1, -1, NULL, NULL, 0, -1};
  rw_engine_complete(engine, permit, &ok, NULL); /* frees the slot for the next waiter */
  return NULL;
}

int main(void) {
  static const char config[] =
      "{\"providers\": [{\"name\": \"a\", \"quotas\": [{\"dimension\": \"concurrency\", \"limit\": 1}]}],"
      " \"capabilities\": [{\"name\": \"c\", \"providers\": [{\"provider\": \"a\"}]}],"
      " \"lanes\": [{\"name\": \"critical\"}, {\"name\": \"normal\"}, {\"name\": \"batch\"}]}";
  CHECK(rw_engine_new_from_json(config, strlen(config), NULL, &engine) == RW_RESULT_OK);
  uint64_t held = 0;
  CHECK(rw_engine_acquire(engine, "c", NULL, &held, NULL) == RW_RESULT_OK);

  /* A wait that cannot be served times out with the predicted wait; nothing is left queued. */
  uint64_t permit = 0;
  CHECK(rw_engine_acquire_wait(engine, "c", NULL, 30, &permit, NULL) == RW_RESULT_NO_AVAILABLE_PROVIDER);
  CHECK(waiting() == 0);
  CHECK(rw_engine_acquire_wait(engine, "c", NULL, 0, &permit, NULL) == RW_RESULT_INVALID_ARGUMENT);
  CHECK(rw_engine_acquire_wait(engine, "c", NULL, 10, NULL, NULL) == RW_RESULT_NULL_PARAMETER);
  CHECK(rw_engine_acquire_wait(engine, "nope", NULL, 10, &permit, NULL) == RW_RESULT_UNKNOWN_CAPABILITY);

  pthread_t threads[WAITERS];
  for (long i = 0; i < WAITERS; i++) pthread_create(&threads[i], NULL, wait_for_permit, (void *)i);
  /* Setup only: every waiter must be queued before the slot frees. */
  for (int k = 0; k < 30000 && waiting() < WAITERS; k++) nanosleep(&(struct timespec){0, 1000000}, NULL);
  CHECK(waiting() == WAITERS);
  rw_outcome ok = {"success", 0, 1, -1, -1, -1, -1, NULL, NULL, 0, -1};
  CHECK(rw_engine_complete(engine, held, &ok, NULL) == RW_RESULT_OK);
  for (int i = 0; i < WAITERS; i++) pthread_join(threads[i], NULL);

  int all_ok = 1, in_order = 1;
  for (int i = 0; i < WAITERS; i++) all_ok &= results[i] == RW_RESULT_OK;
  for (int i = 1; i < granted; i++) in_order &= order[i - 1] <= order[i];
  CHECK(all_ok);
  CHECK(granted == WAITERS);
  CHECK(in_order);
  int64_t left = 0;
  bool has = false;
  CHECK(rw_engine_remaining(engine, "a", "concurrency", &left, &has) == RW_RESULT_OK && has && left == 1);
  CHECK(waiting() == 0);

  rw_engine_free(engine);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
