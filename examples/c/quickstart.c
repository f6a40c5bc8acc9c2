/* ratewise from C: decide, reserve, call, settle.
 *
 * Dynamic:  gcc -std=c11 quickstart.c -I bindings-c/include -L target/release -lratewise \
 *               -Wl,-rpath,"$PWD/target/release" -o quickstart
 * Static:   gcc -std=c11 quickstart.c -I bindings-c/include target/release/libratewise.a \
 *               -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o quickstart
 */
#include <stdio.h>
#include <string.h>

#include "ratewise.h"

int main(void) {
  static const char config[] =
      "{\"providers\": ["
      "   {\"name\": \"gpt-4o\", \"quotas\": [{\"dimension\": \"tokens\", \"limit\": 150000, \"window\": \"minute\"}]},"
      "   {\"name\": \"claude\", \"quotas\": [{\"dimension\": \"requests\", \"limit\": 50, \"window\": \"minute\"}]}],"
      " \"capabilities\": [{\"name\": \"chat\", \"providers\": [{\"provider\": \"gpt-4o\", \"priority\": 10},"
      "                                                      {\"provider\": \"claude\", \"priority\": 8}]}]}";
  rw_engine *engine = NULL;
  if (rw_engine_new_from_json(config, strlen(config), NULL, &engine) != RW_RESULT_OK) {
    fprintf(stderr, "config: %s\n", rw_last_error_message());
    return 1;
  }
  rw_request request = {NULL, 1200, 400, NULL, 0}; /* lane, input and output token estimates, exclude */
  uint64_t permit = 0;
  rw_decision *decision = NULL;
  rw_result r = rw_engine_acquire(engine, "chat", &request, &permit, &decision);
  if (r == RW_RESULT_NO_AVAILABLE_PROVIDER) {
    printf("wait %lld ms: %s\n", (long long)rw_last_error_retry_after_ms(), rw_last_error_json());
  } else if (r == RW_RESULT_OK) {
    printf("call %s (score %.3f)\n", rw_decision_provider(decision), rw_decision_score(decision));
    /* ... make the call; then report what it used and the response's rate-limit headers: */
    const char *names[] = {"x-ratelimit-remaining-tokens"};
    const char *values[] = {"148000"};
    rw_outcome outcome = {"success", 0, 850, 1150, 310, -1, -1, names, values, 1, -1};
    r = rw_engine_complete(engine, permit, &outcome, NULL);
    printf("complete: %s\n", rw_result_name(r));
  } else {
    fprintf(stderr, "%s: %s\n", rw_result_name(r), rw_last_error_message());
  }
  rw_decision_free(decision);
  rw_engine_free(engine);
  return r == RW_RESULT_OK ? 0 : 1;
}
