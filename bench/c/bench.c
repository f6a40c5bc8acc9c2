/* select + observe (and acquire + complete) through the C ABI: the Python benchmark's scenario
 * (3 providers with requests, tokens and concurrency quotas; a manual clock +1 ms per pair).
 * Build and run: bench/c/run.sh */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ratewise.h"

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  long pairs = argc > 1 ? atol(argv[1]) : 1000000;
  int runs = argc > 2 ? atoi(argv[2]) : 5;
  static const char quotas[] =
      "[{\"dimension\": \"requests\", \"limit\": 1000000, \"window\": \"minute\"},"
      " {\"dimension\": \"tokens\", \"limit\": 100000000, \"window\": \"minute\"},"
      " {\"dimension\": \"concurrency\", \"limit\": 100}]";
  char config[1024];
  snprintf(config, sizeof config,
           "{\"providers\": [{\"name\": \"p1\", \"quotas\": %s}, {\"name\": \"p2\", \"quotas\": %s}, {\"name\": \"p3\", \"quotas\": %s}],"
           " \"capabilities\": [{\"name\": \"chat\", \"providers\": [{\"provider\": \"p1\", \"priority\": 10},"
           " {\"provider\": \"p2\", \"priority\": 8}, {\"provider\": \"p3\", \"priority\": 5}]}]}",
           quotas, quotas, quotas);
  double so[16], ac[16];
  for (int run = 0; run < runs && run < 16; run++) {
    rw_clock *clock = NULL;
    rw_engine *engine = NULL;
    rw_clock_new_manual(0, &clock);
    if (rw_engine_new_from_json(config, strlen(config), clock, &engine) != RW_RESULT_OK) return 1;
    rw_request req = {NULL, 100, 50, NULL, 0};
    rw_outcome o = {"success", 0, 120, 100, 50, -1, -1, NULL, NULL, 0, -1};
    double t0 = now_ns();
    for (long i = 0; i < pairs; i++) {
      rw_decision *d = NULL;
      rw_clock_advance(clock, 1);
      if (rw_engine_select(engine, "chat", &req, &d) != RW_RESULT_OK) return 1;
      if (rw_engine_observe(engine, rw_decision_provider(d), &o, 1) != RW_RESULT_OK) return 1;
      rw_decision_free(d);
    }
    so[run] = (now_ns() - t0) / (double)pairs;
    t0 = now_ns();
    for (long i = 0; i < pairs; i++) {
      uint64_t permit;
      rw_clock_advance(clock, 1);
      if (rw_engine_acquire(engine, "chat", &req, &permit, NULL) != RW_RESULT_OK) return 1;
      if (rw_engine_complete(engine, permit, &o, NULL) != RW_RESULT_OK) return 1;
    }
    ac[run] = (now_ns() - t0) / (double)pairs;
    rw_engine_free(engine);
    rw_clock_free(clock);
  }
  qsort(so, (size_t)runs, sizeof so[0], cmp);
  qsort(ac, (size_t)runs, sizeof ac[0], cmp);
  printf("%ld pairs, median of %d runs, manual clock +1 ms per pair\n\n", pairs, runs);
  printf("%-28s %9s %8s  verdict\n", "benchmark", "ns/pair", "budget");
  printf("%-28s %9.0f %8s  %s\n", "select+observe (C ABI)", so[runs / 2], "<= 600", so[runs / 2] <= 600 ? "met" : "MISSED");
  printf("%-28s %9.0f\n", "acquire+complete (C ABI)", ac[runs / 2]);
  return 0;
}
