/* Fleet worker (C): as worker.py. Usage: worker CONFIG_FILE START_MS STOP_MS. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ratewise.h"

static void sleep_ms(int64_t ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

static int64_t now(const rw_engine *e) {
  int64_t t = 0;
  if (rw_engine_now_ms(e, &t) != RW_RESULT_OK) {
    fprintf(stderr, "now: %s\n", rw_last_error_message());
    exit(1);
  }
  return t;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: worker CONFIG_FILE START_MS STOP_MS\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 1;
  }
  static char text[1 << 16];
  size_t len = fread(text, 1, sizeof text, f);
  fclose(f);
  int64_t start_ms = atoll(argv[2]), stop_ms = atoll(argv[3]);
  rw_engine *engine = NULL;
  if (rw_engine_new_from_json(text, len, NULL, &engine) != RW_RESULT_OK) {
    fprintf(stderr, "engine: %s\n", rw_last_error_message());
    return 1;
  }
  while (now(engine) < start_ms) sleep_ms(1);
  long admitted = 0;
  rw_outcome ok;
  memset(&ok, 0, sizeof ok);
  ok.status = "success";
  ok.latency_ms = 1;
  ok.input_tokens = -1;
  ok.output_tokens = -1;
  ok.cached_input_tokens = -1;
  ok.cache_write_input_tokens = -1;
  ok.retry_after_ms = -1;
  while (now(engine) < stop_ms) {
    uint64_t permit = 0;
    rw_result r = rw_engine_acquire(engine, "chat", NULL, &permit, NULL);
    if (r == RW_RESULT_NO_AVAILABLE_PROVIDER) {
      int64_t wait = rw_last_error_retry_after_ms();
      sleep_ms(wait < 1 ? 1 : (wait > 50 ? 50 : wait));
      continue;
    }
    if (r != RW_RESULT_OK) {
      fprintf(stderr, "acquire: %s\n", rw_last_error_message());
      return 1;
    }
    admitted++;
    if (rw_engine_complete(engine, permit, &ok, NULL) != RW_RESULT_OK) {
      fprintf(stderr, "complete: %s\n", rw_last_error_message());
      return 1;
    }
  }
  char *snap = NULL;
  rw_engine_snapshot(engine, &snap);
  const char *mode = snap && strstr(snap, "\"mode\":\"shared\"") ? "shared" : "other";
  printf("{\"lang\": \"c\", \"admitted\": %ld, \"end_ms\": %lld, \"mode\": \"%s\"}\n", admitted,
         (long long)now(engine), mode);
  rw_string_free(snap);
  rw_engine_free(engine);
  return 0;
}
