/* Smoke test: build an engine, decide, reserve, settle, read a snapshot; prints "N passed, N failed". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ratewise.h"

static int passed, failed;
#define CHECK(cond) do { if (cond) passed++; else { failed++; printf("FAILED %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, rw_last_error_message()); } } while (0)

int main(void) {
  static const char config[] =
      "{\"providers\": [{\"name\": \"gpt-4o\", \"quotas\": [{\"dimension\": \"tokens\", \"limit\": 100000}]},"
      "                 {\"name\": \"claude\", \"quotas\": [{\"dimension\": \"requests\", \"limit\": 50}]}],"
      " \"capabilities\": [{\"name\": \"chat\", \"providers\": [{\"provider\": \"gpt-4o\", \"priority\": 10},"
      "                                                      {\"provider\": \"claude\", \"priority\": 8}]}]}";
  CHECK(strcmp(rw_version(), RATEWISE_VERSION) == 0);
  rw_clock *clock = NULL;
  CHECK(rw_clock_new_manual(1000, &clock) == RW_RESULT_OK);
  rw_engine *engine = NULL;
  CHECK(rw_engine_new_from_json(config, strlen(config), clock, &engine) == RW_RESULT_OK);

  rw_request req = {NULL, 1000, 500, NULL, 0};
  rw_decision *d = NULL;
  CHECK(rw_engine_select(engine, "chat", &req, &d) == RW_RESULT_OK);
  CHECK(strcmp(rw_decision_provider(d), "gpt-4o") == 0);
  CHECK(rw_decision_score(d) > 0.0 && rw_decision_score(d) <= 1.0);
  double b[5];
  CHECK(rw_decision_breakdown(d, b) == RW_RESULT_OK && fabs(b[2] - 1.0) < 1e-12);
  CHECK(rw_decision_alternatives_len(d) == 1);
  const char *alt = NULL;
  double alt_score = 0;
  CHECK(rw_decision_alternative(d, 0, &alt, &alt_score) == RW_RESULT_OK && strcmp(alt, "claude") == 0);
  rw_decision_free(d);

  uint64_t permit = 0;
  CHECK(rw_engine_acquire(engine, "chat", &req, &permit, NULL) == RW_RESULT_OK && permit != 0);
  int64_t left = 0;
  bool has = false;
  CHECK(rw_engine_remaining(engine, "gpt-4o", "tokens", &left, &has) == RW_RESULT_OK && has && left == 98500);
  const char *names[] = {"x-ratelimit-remaining-tokens"};
  const char *values[] = {"4000"};
  rw_outcome o = {"success", 0, 120, 900, 100, -1, -1, names, values, 1, -1};
  CHECK(rw_engine_complete(engine, permit, &o, NULL) == RW_RESULT_OK);
  CHECK(rw_engine_remaining(engine, "gpt-4o", "tokens", &left, &has) == RW_RESULT_OK && left == 4000);
  CHECK(rw_engine_remaining(engine, "claude", "tokens", &left, &has) == RW_RESULT_OK && !has);

  rw_outcome overloaded = {NULL, 529, 0, -1, -1, -1, -1, NULL, NULL, 0, -1};
  CHECK(rw_engine_observe(engine, "gpt-4o", &overloaded, 1) == RW_RESULT_OK);
  CHECK(rw_engine_select(engine, "chat", NULL, &d) == RW_RESULT_OK && strcmp(rw_decision_provider(d), "claude") == 0);
  const char *skipped = NULL, *reason = NULL;
  CHECK(rw_decision_skipped_len(d) == 1 && rw_decision_skipped(d, 0, &skipped, &reason) == RW_RESULT_OK &&
        strcmp(reason, "held") == 0);
  rw_decision_free(d);

  double health = 0;
  const char *circuit = NULL;
  CHECK(rw_engine_health(engine, "gpt-4o", &health) == RW_RESULT_OK && fabs(health - 0.9) < 1e-12);
  CHECK(rw_engine_circuit(engine, "gpt-4o", &circuit) == RW_RESULT_OK && strcmp(circuit, "closed") == 0);
  CHECK(rw_clock_advance(clock, 2000) == RW_RESULT_OK);
  int64_t now = 0;
  CHECK(rw_clock_now_ms(clock, &now) == RW_RESULT_OK && now == 3000);

  char *snapshot = NULL;
  CHECK(rw_engine_snapshot(engine, &snapshot) == RW_RESULT_OK && strstr(snapshot, "\"kind\":\"memory\"") != NULL);
  rw_string_free(snapshot);

  static const char provider[] = "{\"name\": \"mini\", \"quotas\": [{\"dimension\": \"requests\", \"limit\": 10}]}";
  static const char capability[] = "{\"name\": \"cheap\", \"providers\": [{\"provider\": \"mini\"}]}";
  CHECK(rw_engine_upsert_provider(engine, provider, strlen(provider)) == RW_RESULT_OK);
  CHECK(rw_engine_upsert_capability(engine, capability, strlen(capability)) == RW_RESULT_OK);
  CHECK(rw_engine_remove_capability(engine, "cheap") == RW_RESULT_OK);
  CHECK(rw_engine_remove_provider(engine, "mini") == RW_RESULT_OK);

  const char *cls = NULL;
  CHECK(rw_status_from_http(429, "insufficient_quota", &cls) == RW_RESULT_OK && strcmp(cls, "forbidden") == 0);
  CHECK(rw_status_from_http(503, NULL, &cls) == RW_RESULT_OK && strcmp(cls, "overloaded") == 0);
  bool again = false;
  CHECK(rw_status_is_retryable("overloaded", &again) == RW_RESULT_OK && again);
  CHECK(rw_status_is_retryable("client_error", &again) == RW_RESULT_OK && !again);
  CHECK(rw_status_is_retryable("nonsense", &again) == RW_RESULT_INVALID_ARGUMENT);

  rw_engine_free(engine);
  rw_clock_free(clock);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
