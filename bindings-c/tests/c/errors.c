/* Error paths: NULL arguments, bad JSON, unknown names, a permit completed twice, refusals with
 * their retry-after; every *_free(NULL) is a no-op. Prints "N passed, N failed". */
#include <stdio.h>
#include <string.h>

#include "ratewise.h"

static int passed, failed;
#define CHECK(cond) do { if (cond) passed++; else { failed++; printf("FAILED %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, rw_last_error_message()); } } while (0)

int main(void) {
  rw_engine *engine = NULL;
  rw_decision *d = NULL;
  static const char bad_json[] = "{\"providers\": [";
  CHECK(rw_engine_new_from_json(bad_json, strlen(bad_json), NULL, &engine) == RW_RESULT_INVALID_CONFIG && engine == NULL);
  static const char bad_limit[] = "{\"providers\": [{\"name\": \"a\", \"quotas\": [{\"dimension\": \"tokens\", \"limit\": 0}]}]}";
  CHECK(rw_engine_new_from_json(bad_limit, strlen(bad_limit), NULL, &engine) == RW_RESULT_INVALID_CONFIG);
  CHECK(strcmp(rw_last_error_message(), "providers[0].quotas[0].limit: must be > 0") == 0);
  CHECK(strstr(rw_last_error_json(), "\"code\":\"invalid_config\"") != NULL);
  CHECK(rw_engine_new_from_json(NULL, 0, NULL, &engine) == RW_RESULT_NULL_PARAMETER);
  static const char redis[] =
      "{\"store\": {\"kind\": \"redis\", \"url\": \"redis://127.0.0.1:1/0\", \"on_error\": \"closed\"}}";
  CHECK(rw_engine_new_from_json(redis, strlen(redis), NULL, &engine) == RW_RESULT_STORE_UNAVAILABLE);

  static const char config[] =
      "{\"providers\": [{\"name\": \"a\", \"quotas\": [{\"dimension\": \"requests\", \"limit\": 1, \"window\": \"second\"}]}],"
      " \"capabilities\": [{\"name\": \"chat\", \"providers\": [{\"provider\": \"a\"}]}]}";
  rw_clock *clock = NULL;
  CHECK(rw_clock_new_manual(0, &clock) == RW_RESULT_OK);
  CHECK(rw_engine_new_from_json(config, strlen(config), clock, NULL) == RW_RESULT_NULL_PARAMETER);
  CHECK(rw_engine_new_from_json(config, strlen(config), clock, &engine) == RW_RESULT_OK);

  CHECK(rw_engine_select(NULL, "chat", NULL, &d) == RW_RESULT_NULL_PARAMETER);
  CHECK(rw_engine_select(engine, NULL, NULL, &d) == RW_RESULT_NULL_PARAMETER);
  CHECK(rw_engine_select(engine, "chat", NULL, NULL) == RW_RESULT_NULL_PARAMETER);
  CHECK(rw_engine_select(engine, "nope", NULL, &d) == RW_RESULT_UNKNOWN_CAPABILITY && d == NULL);
  rw_request vip = {"vip", 0, 0, NULL, 0};
  CHECK(rw_engine_select(engine, "chat", &vip, &d) == RW_RESULT_INVALID_ARGUMENT);
  rw_request bad_exclude = {NULL, 0, 0, NULL, 2};
  CHECK(rw_engine_select(engine, "chat", &bad_exclude, &d) == RW_RESULT_NULL_PARAMETER);
  double h = 0;
  CHECK(rw_engine_health(engine, "nobody", &h) == RW_RESULT_UNKNOWN_PROVIDER);
  CHECK(rw_engine_health(engine, "a", NULL) == RW_RESULT_NULL_PARAMETER);
  int64_t left = 0;
  bool has = false;
  CHECK(rw_engine_remaining(engine, "a", "bytes", &left, &has) == RW_RESULT_INVALID_ARGUMENT);

  uint64_t permit = 0;
  CHECK(rw_engine_acquire(engine, "chat", NULL, &permit, NULL) == RW_RESULT_OK);
  CHECK(rw_engine_acquire(engine, "chat", NULL, &permit, NULL) == RW_RESULT_NO_AVAILABLE_PROVIDER);
  CHECK(rw_last_error_retry_after_ms() == 1000);
  CHECK(strstr(rw_last_error_json(), "\"reason\":\"quota:requests\"") != NULL);
  rw_outcome bad_status = {"exploded", 0, 0, -1, -1, -1, -1, NULL, NULL, 0, -1};
  CHECK(rw_engine_complete(engine, permit, &bad_status, NULL) == RW_RESULT_INVALID_ARGUMENT);
  rw_outcome out_of_range = {NULL, 600, 0, -1, -1, -1, -1, NULL, NULL, 0, -1};
  CHECK(rw_engine_complete(engine, permit, &out_of_range, NULL) == RW_RESULT_INVALID_ARGUMENT);
  rw_outcome ok = {"success", 0, 10, -1, -1, -1, -1, NULL, NULL, 0, -1};
  CHECK(rw_engine_complete(engine, permit, NULL, NULL) == RW_RESULT_NULL_PARAMETER);
  CHECK(rw_engine_complete(engine, permit, &ok, NULL) == RW_RESULT_OK);
  CHECK(rw_engine_complete(engine, permit, &ok, NULL) == RW_RESULT_UNKNOWN_PERMIT);
  CHECK(rw_engine_cancel(engine, permit, NULL) == RW_RESULT_UNKNOWN_PERMIT);
  CHECK(rw_engine_complete(engine, 987654321, &ok, NULL) == RW_RESULT_UNKNOWN_PERMIT);
  CHECK(rw_engine_remove_provider(engine, "nobody") == RW_RESULT_UNKNOWN_PROVIDER);
  CHECK(rw_engine_upsert_provider(engine, "{", 1) == RW_RESULT_INVALID_CONFIG);
  CHECK(rw_clock_advance(clock, -5) == RW_RESULT_INVALID_ARGUMENT);
  const char *cls = NULL;
  CHECK(rw_status_from_http(99, NULL, &cls) == RW_RESULT_INVALID_ARGUMENT);
  CHECK(strcmp(rw_result_name(RW_RESULT_UNKNOWN_PERMIT), "unknown_permit") == 0);
  CHECK(strcmp(rw_result_name(RW_RESULT_NULL_PARAMETER), "null_parameter") == 0);
  CHECK(strcmp(rw_result_name(RW_RESULT_OK), "ok") == 0);
  /* Any integer is safe: a value that is not an rw_result is named "unknown". */
  CHECK(strcmp(rw_result_name(12345), "unknown") == 0);
  CHECK(strcmp(rw_result_name(0xFFFFFFFFu), "unknown") == 0);
  CHECK(strcmp(rw_result_name(9), "unknown") == 0);
  CHECK(rw_decision_score(NULL) != rw_decision_score(NULL)); /* NaN */
  CHECK(strcmp(rw_decision_provider(NULL), "") == 0);

  uint64_t ticket = 0;
  rw_polled *polled = NULL;
  CHECK(rw_engine_enqueue(engine, "chat", NULL, 0, &ticket, NULL) == RW_RESULT_INVALID_ARGUMENT);
  CHECK(rw_engine_enqueue(engine, "chat", NULL, 100, NULL, NULL) == RW_RESULT_NULL_PARAMETER);
  CHECK(rw_engine_enqueue(engine, "nope", NULL, 100, &ticket, NULL) == RW_RESULT_UNKNOWN_CAPABILITY);
  CHECK(rw_engine_poll(engine, NULL) == RW_RESULT_NULL_PARAMETER);
  int64_t wake = 0;
  bool waking = true;
  CHECK(rw_engine_next_wake(engine, &wake, &waking) == RW_RESULT_OK && !waking);
  CHECK(rw_engine_enqueue(engine, "chat", NULL, 5000, &ticket, &polled) == RW_RESULT_OK && ticket != 0);
  CHECK(rw_polled_granted_len(polled) == 0 && rw_polled_expired_len(polled) == 0 && rw_polled_granted(polled, 0) == 0);
  rw_polled_free(polled);
  CHECK(rw_engine_next_wake(engine, &wake, &waking) == RW_RESULT_OK && waking && wake == 1000);
  CHECK(rw_clock_advance(clock, 1000) == RW_RESULT_OK);
  CHECK(rw_engine_poll(engine, &polled) == RW_RESULT_OK && rw_polled_granted_len(polled) == 1 && rw_polled_granted(polled, 0) == ticket);
  rw_polled_free(polled);
  CHECK(rw_engine_complete(engine, ticket, &ok, NULL) == RW_RESULT_OK);
  rw_polled_free(NULL);
  rw_engine_free(NULL);
  rw_clock_free(NULL);
  rw_decision_free(NULL);
  rw_string_free(NULL);
  rw_engine_free(engine);
  rw_clock_free(clock);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
