/* The C conformance runner: reads `conformance/suite flatten` on stdin, replays every scenario
 * through libratewise, prints one line per scenario and "N passed, N failed", and writes the
 * transcript to $RATEWISE_TRANSCRIPT (conformance/README.md).
 *
 * Configuration and run-time objects reach the library as the JSON text the suite wrote; the
 * small JSON reader below is for argument values, expectations and the snapshot only. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratewise.h"

/* ---------- a small JSON value ---------- */

typedef enum { J_NULL, J_BOOL, J_INT, J_FLOAT, J_STR, J_ARR, J_OBJ } jtype;
typedef struct jv {
  jtype t;
  int b;
  long long i;
  double f;
  char *s;         /* J_STR */
  struct jv **v;   /* J_ARR items, J_OBJ values */
  char **k;        /* J_OBJ keys */
  size_t n, cap;
} jv;

static jv *jnew(jtype t) {
  jv *x = calloc(1, sizeof *x);
  if (!x) abort();
  x->t = t;
  return x;
}

static void jpush(jv *a, const char *key, jv *val) {
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 4;
    a->v = realloc(a->v, a->cap * sizeof *a->v);
    if (a->t == J_OBJ) a->k = realloc(a->k, a->cap * sizeof *a->k);
    if (!a->v || (a->t == J_OBJ && !a->k)) abort();
  }
  if (a->t == J_OBJ) a->k[a->n] = strdup(key);
  a->v[a->n++] = val;
}

static void jfree(jv *x) {
  if (!x) return;
  for (size_t i = 0; i < x->n; i++) {
    jfree(x->v[i]);
    if (x->t == J_OBJ) free(x->k[i]);
  }
  free(x->v);
  free(x->k);
  free(x->s);
  free(x);
}

static jv *jget(const jv *o, const char *key) {
  if (!o || o->t != J_OBJ) return NULL;
  for (size_t i = 0; i < o->n; i++)
    if (strcmp(o->k[i], key) == 0) return o->v[i];
  return NULL;
}

static jv *jstr(const char *s) { jv *x = jnew(J_STR); x->s = strdup(s); return x; }
static jv *jint(long long i) { jv *x = jnew(J_INT); x->i = i; return x; }
static jv *jflt(double f) { jv *x = jnew(J_FLOAT); x->f = f; return x; }

typedef struct { const char *p; } reader;

static void ws(reader *r) { while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r') r->p++; }

static void put_utf8(char **o, unsigned cp) {
  char *q = *o;
  if (cp < 0x80) *q++ = (char)cp;
  else if (cp < 0x800) { *q++ = (char)(0xC0 | (cp >> 6)); *q++ = (char)(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) { *q++ = (char)(0xE0 | (cp >> 12)); *q++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *q++ = (char)(0x80 | (cp & 0x3F)); }
  else { *q++ = (char)(0xF0 | (cp >> 18)); *q++ = (char)(0x80 | ((cp >> 12) & 0x3F)); *q++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *q++ = (char)(0x80 | (cp & 0x3F)); }
  *o = q;
}

static char *parse_string(reader *r) {
  const char *p = r->p + 1; /* after the quote */
  char *out = malloc(strlen(p) + 1), *o = out;
  if (!out) abort();
  while (*p && *p != '"') {
    if (*p == '\\') {
      p++;
      switch (*p) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
          unsigned cp = (unsigned)strtoul((char[]){p[1], p[2], p[3], p[4], 0}, NULL, 16);
          p += 4;
          if (cp >= 0xD800 && cp < 0xDC00 && p[1] == '\\' && p[2] == 'u') {
            unsigned lo = (unsigned)strtoul((char[]){p[3], p[4], p[5], p[6], 0}, NULL, 16);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
          }
          put_utf8(&o, cp);
          break;
        }
        default: *o++ = *p; /* " \ / */
      }
      p++;
    } else {
      *o++ = *p++;
    }
  }
  *o = 0;
  r->p = *p ? p + 1 : p;
  return out;
}

static jv *parse_value(reader *r) {
  ws(r);
  char c = *r->p;
  if (c == '{' || c == '[') {
    jv *x = jnew(c == '{' ? J_OBJ : J_ARR);
    r->p++;
    ws(r);
    if (*r->p == (c == '{' ? '}' : ']')) { r->p++; return x; }
    for (;;) {
      char *key = NULL;
      if (c == '{') {
        ws(r);
        key = parse_string(r);
        ws(r);
        r->p++; /* : */
      }
      jpush(x, key, parse_value(r));
      free(key);
      ws(r);
      if (*r->p++ != ',') return x;
    }
  }
  if (c == '"') { jv *x = jnew(J_STR); x->s = parse_string(r); return x; }
  if (strncmp(r->p, "true", 4) == 0) { r->p += 4; jv *x = jnew(J_BOOL); x->b = 1; return x; }
  if (strncmp(r->p, "false", 5) == 0) { r->p += 5; return jnew(J_BOOL); }
  if (strncmp(r->p, "null", 4) == 0) { r->p += 4; return jnew(J_NULL); }
  const char *start = r->p;
  int is_float = 0;
  while (*r->p && strchr("+-0123456789.eE", *r->p)) {
    if (strchr(".eE", *r->p)) is_float = 1;
    r->p++;
  }
  if (is_float) return jflt(strtod(start, NULL));
  return jint(strtoll(start, NULL, 10));
}

static jv *parse(const char *text) { reader r = {text}; return parse_value(&r); }

/* ---------- canonical writing (docs/design.md section 12) ---------- */

typedef struct { char *s; size_t n, cap; } buf;

static void bput(buf *b, const char *s) {
  size_t m = strlen(s);
  if (b->n + m + 1 > b->cap) {
    b->cap = (b->n + m + 1) * 2;
    b->s = realloc(b->s, b->cap);
    if (!b->s) abort();
  }
  memcpy(b->s + b->n, s, m + 1);
  b->n += m;
}

static void bstr(buf *b, const char *s) {
  char tmp[8];
  bput(b, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
      case '"': bput(b, "\\\""); break;
      case '\\': bput(b, "\\\\"); break;
      case '\n': bput(b, "\\n"); break;
      case '\r': bput(b, "\\r"); break;
      case '\t': bput(b, "\\t"); break;
      case '\b': bput(b, "\\b"); break;
      case '\f': bput(b, "\\f"); break;
      default:
        if (*p < 0x20) { snprintf(tmp, sizeof tmp, "\\u%04x", *p); bput(b, tmp); }
        else { tmp[0] = (char)*p; tmp[1] = 0; bput(b, tmp); }
    }
  }
  bput(b, "\"");
}

static const char **sort_keys;
static int by_key(const void *a, const void *b) {
  return strcmp(sort_keys[*(const size_t *)a], sort_keys[*(const size_t *)b]);
}

static void canonical(buf *b, const jv *x) {
  char tmp[64];
  switch (x->t) {
    case J_NULL: bput(b, "null"); break;
    case J_BOOL: bput(b, x->b ? "true" : "false"); break;
    case J_INT: snprintf(tmp, sizeof tmp, "%lld", x->i); bput(b, tmp); break;
    case J_FLOAT:
      snprintf(tmp, sizeof tmp, "%.9f", x->f);
      bput(b, strcmp(tmp, "-0.000000000") == 0 ? "0.000000000" : tmp);
      break;
    case J_STR: bstr(b, x->s); break;
    case J_ARR:
      bput(b, "[");
      for (size_t i = 0; i < x->n; i++) { if (i) bput(b, ","); canonical(b, x->v[i]); }
      bput(b, "]");
      break;
    case J_OBJ: {
      size_t *order = malloc((x->n + 1) * sizeof *order);
      if (!order) abort();
      for (size_t i = 0; i < x->n; i++) order[i] = i;
      sort_keys = (const char **)x->k;
      qsort(order, x->n, sizeof *order, by_key);
      bput(b, "{");
      for (size_t i = 0; i < x->n; i++) {
        if (i) bput(b, ",");
        bstr(b, x->k[order[i]]);
        bput(b, ":");
        canonical(b, x->v[order[i]]);
      }
      bput(b, "}");
      free(order);
      break;
    }
  }
}

/* ---------- expectations ---------- */

static int is_num(const jv *x) { return x && (x->t == J_INT || x->t == J_FLOAT); }
static double num(const jv *x) { return x->t == J_INT ? (double)x->i : x->f; }

static int matches(const jv *want, const jv *got) {
  jv null_value = {0};
  if (!got) got = &null_value;
  switch (want->t) {
    case J_NULL: return got->t == J_NULL;
    case J_BOOL: return got->t == J_BOOL && got->b == want->b;
    case J_STR: return got->t == J_STR && strcmp(got->s, want->s) == 0;
    case J_INT:
    case J_FLOAT: return is_num(got) && fabs(num(got) - num(want)) <= 1e-9;
    case J_ARR:
      if (got->t != J_ARR || got->n != want->n) return 0;
      for (size_t i = 0; i < want->n; i++) if (!matches(want->v[i], got->v[i])) return 0;
      return 1;
    case J_OBJ: {
      const jv *min = jget(want, "min"), *max = jget(want, "max");
      if (want->n == 2 && min && max && is_num(got)) return num(got) >= num(min) && num(got) <= num(max);
      if (got->t != J_OBJ) return 0;
      for (size_t i = 0; i < want->n; i++) if (!matches(want->v[i], jget(got, want->k[i]))) return 0;
      return 1;
    }
  }
  return 0;
}

/* ---------- scenarios ---------- */

typedef struct { char *op; jv *args; jv *expect; } step;
typedef struct { char *id; char *setup; long long start_ms; char *expect_error; step *steps; size_t n, cap; } scenario;

typedef struct { char *name; uint64_t id; } binding;
static binding *bindings;
static size_t nbindings;

static uint64_t permit_of(const char *name) {
  for (size_t i = 0; name && i < nbindings; i++)
    if (strcmp(bindings[i].name, name) == 0) return bindings[i].id;
  return 0; /* never bound: no permit at all */
}

static void bind(const char *name, uint64_t id) {
  for (size_t i = 0; i < nbindings; i++)
    if (strcmp(bindings[i].name, name) == 0) { bindings[i].id = id; return; }
  bindings = realloc(bindings, (nbindings + 1) * sizeof *bindings);
  if (!bindings) abort();
  bindings[nbindings].name = strdup(name);
  bindings[nbindings++].id = id;
}

static const char *arg_str(const step *s, const char *key) {
  jv *x = jget(s->args, key);
  return x && x->t == J_STR ? x->s : NULL;
}

static long long arg_int(const step *s, const char *key, long long dflt) {
  jv *x = jget(s->args, key);
  return x && x->t == J_INT ? x->i : dflt;
}

/* The step's request (lane, input_tokens, output_tokens, exclude); free with request_free. */
static rw_request request_of(const step *s) {
  jv *ex = jget(s->args, "exclude");
  const char **exclude = calloc((ex ? ex->n : 0) + 1, sizeof *exclude);
  if (!exclude) abort();
  for (size_t i = 0; ex && i < ex->n; i++) exclude[i] = ex->v[i]->s;
  rw_request req = {arg_str(s, "lane"), (uint64_t)arg_int(s, "input_tokens", 0), (uint64_t)arg_int(s, "output_tokens", 0),
                    exclude, ex ? ex->n : 0};
  return req;
}

static void request_free(rw_request *req) { free((void *)req->exclude); }

static jv *skipped_from_error(void) {
  jv *err = parse(rw_last_error_json());
  jv *sk = jget(err, "skipped");
  jv *out = jnew(J_ARR);
  for (size_t i = 0; sk && i < sk->n; i++) {
    jv *o = jnew(J_OBJ);
    jpush(o, "provider", jstr(jget(sk->v[i], "provider")->s));
    jpush(o, "reason", jstr(jget(sk->v[i], "reason")->s));
    jpush(out, NULL, o);
  }
  jfree(err);
  return out;
}

static jv *error_result(rw_result r) {
  jv *o = jnew(J_OBJ);
  jpush(o, "error", jstr(rw_result_name(r)));
  if (r == RW_RESULT_NO_AVAILABLE_PROVIDER) {
    long long ra = rw_last_error_retry_after_ms();
    jpush(o, "retry_after_ms", ra < 0 ? jnew(J_NULL) : jint(ra));
    jpush(o, "skipped", skipped_from_error());
  }
  return o;
}

static jv *decision_result(const rw_decision *d) {
  jv *o = jnew(J_OBJ);
  double b[5];
  rw_decision_breakdown(d, b);
  jv *bd = jnew(J_OBJ);
  const char *names[5] = {"quota", "health", "priority", "latency", "cost"};
  for (int i = 0; i < 5; i++) jpush(bd, names[i], jflt(b[i]));
  jv *alts = jnew(J_ARR), *scores = jnew(J_ARR), *sk = jnew(J_ARR);
  for (size_t i = 0; i < rw_decision_alternatives_len(d); i++) {
    const char *p;
    double s;
    rw_decision_alternative(d, i, &p, &s);
    jpush(alts, NULL, jstr(p));
    jpush(scores, NULL, jflt(s));
  }
  for (size_t i = 0; i < rw_decision_skipped_len(d); i++) {
    const char *p, *reason;
    rw_decision_skipped(d, i, &p, &reason);
    jv *e = jnew(J_OBJ);
    jpush(e, "provider", jstr(p));
    jpush(e, "reason", jstr(reason));
    jpush(sk, NULL, e);
  }
  jpush(o, "alternative_scores", scores);
  jpush(o, "alternatives", alts);
  jpush(o, "breakdown", bd);
  jpush(o, "model", jstr(rw_decision_model(d)));
  jpush(o, "provider", jstr(rw_decision_provider(d)));
  jpush(o, "score", jflt(rw_decision_score(d)));
  jpush(o, "skipped", sk);
  return o;
}

/* Header names and values of a step's "headers" object (values that are not strings are their JSON text). */
typedef struct { const char **names, **values; size_t n; buf *owned; } headers_t;

static headers_t headers_of(const step *s) {
  headers_t h = {0};
  jv *x = jget(s->args, "headers");
  if (!x || x->t != J_OBJ) return h;
  h.n = x->n;
  h.names = calloc(x->n + 1, sizeof *h.names);
  h.values = calloc(x->n + 1, sizeof *h.values);
  h.owned = calloc(x->n + 1, sizeof *h.owned);
  if (!h.names || !h.values || !h.owned) abort();
  for (size_t i = 0; i < x->n; i++) {
    h.names[i] = x->k[i];
    if (x->v[i]->t == J_STR) h.values[i] = x->v[i]->s;
    else { canonical(&h.owned[i], x->v[i]); h.values[i] = h.owned[i].s; }
  }
  return h;
}

static void headers_free(headers_t *h) {
  for (size_t i = 0; h->owned && i < h->n; i++) free(h->owned[i].s);
  free(h->names); free(h->values); free(h->owned);
}

static rw_outcome outcome_of(const step *s, const headers_t *h, long long token_default) {
  rw_outcome o;
  memset(&o, 0, sizeof o);
  jv *st = jget(s->args, "status");
  if (st && st->t == J_STR) o.status = st->s;
  else if (st && st->t == J_INT) o.http_status = (int32_t)st->i;
  o.latency_ms = (uint64_t)arg_int(s, "latency_ms", 0);
  o.input_tokens = arg_int(s, "input_tokens", token_default);
  o.output_tokens = arg_int(s, "output_tokens", token_default);
  o.cached_input_tokens = arg_int(s, "cached_input_tokens", -1);
  o.cache_write_input_tokens = arg_int(s, "cache_write_input_tokens", -1);
  o.retry_after_ms = arg_int(s, "retry_after_ms", -1);
  o.header_names = h->names;
  o.header_values = h->values;
  o.headers_len = h->n;
  return o;
}

static jv *ticket_name(uint64_t id) {
  for (size_t i = 0; i < nbindings; i++)
    if (bindings[i].id == id) return jstr(bindings[i].name);
  return jint((long long)id);
}

/* {expired, granted} as ticket names; frees the report. */
static jv *polled_result(rw_polled *p) {
  jv *o = jnew(J_OBJ), *g = jnew(J_ARR), *x = jnew(J_ARR);
  for (size_t i = 0; i < rw_polled_granted_len(p); i++) jpush(g, NULL, ticket_name(rw_polled_granted(p, i)));
  for (size_t i = 0; i < rw_polled_expired_len(p); i++) jpush(x, NULL, ticket_name(rw_polled_expired(p, i)));
  jpush(o, "expired", x);
  jpush(o, "granted", g);
  rw_polled_free(p);
  return o;
}

static jv *raw_arg_json(const step *s, const char *key, buf *out) {
  jv *x = jget(s->args, key);
  if (x) canonical(out, x);
  else bput(out, "null");
  return x;
}

/* Runs one step; *unsupported is set for an op this runner does not know. */
static jv *run_step(rw_engine *e, rw_clock *clock, const step *s, int *unsupported) {
  const char *op = s->op;
  rw_result r = RW_RESULT_OK;
  if (strcmp(op, "advance") == 0) {
    rw_clock_advance(clock, arg_int(s, "ms", 0));
    return jnew(J_OBJ);
  }
  if (strcmp(op, "select") == 0 || strcmp(op, "acquire") == 0) {
    rw_request req = request_of(s);
    rw_decision *d = NULL;
    if (op[0] == 's') {
      r = rw_engine_select(e, arg_str(s, "capability"), &req, &d);
    } else {
      uint64_t id = 0;
      r = rw_engine_acquire(e, arg_str(s, "capability"), &req, &id, &d);
      if (r == RW_RESULT_OK && arg_str(s, "permit")) bind(arg_str(s, "permit"), id);
    }
    request_free(&req);
    if (r != RW_RESULT_OK) return error_result(r);
    jv *out = decision_result(d);
    rw_decision_free(d);
    return out;
  }
  if (strcmp(op, "complete") == 0 || strcmp(op, "observe") == 0) {
    headers_t h = headers_of(s);
    rw_polled *polled = NULL;
    if (op[0] == 'c') {
      rw_outcome o = outcome_of(s, &h, -1);
      r = rw_engine_complete(e, permit_of(arg_str(s, "permit")), &o, &polled);
    } else {
      rw_outcome o = outcome_of(s, &h, 0);
      r = rw_engine_observe(e, arg_str(s, "provider"), &o, (uint64_t)arg_int(s, "requests", 1));
    }
    headers_free(&h);
    if (r != RW_RESULT_OK) return error_result(r);
    return op[0] == 'c' ? polled_result(polled) : jnew(J_OBJ);
  }
  if (strcmp(op, "cancel") == 0) {
    rw_polled *polled = NULL;
    r = rw_engine_cancel(e, permit_of(arg_str(s, "permit")), &polled);
    return r == RW_RESULT_OK ? polled_result(polled) : error_result(r);
  }
  if (strcmp(op, "enqueue") == 0) {
    rw_request req = request_of(s);
    uint64_t ticket = 0;
    rw_polled *polled = NULL;
    r = rw_engine_enqueue(e, arg_str(s, "capability"), &req, arg_int(s, "timeout_ms", 0), &ticket, &polled);
    request_free(&req);
    if (r != RW_RESULT_OK) return error_result(r);
    if (arg_str(s, "ticket")) bind(arg_str(s, "ticket"), ticket);
    return polled_result(polled);
  }
  if (strcmp(op, "poll") == 0) {
    rw_polled *polled = NULL;
    r = rw_engine_poll(e, &polled);
    return r == RW_RESULT_OK ? polled_result(polled) : error_result(r);
  }
  if (strcmp(op, "headers") == 0) {
    headers_t h = headers_of(s);
    r = rw_engine_sync_headers(e, arg_str(s, "provider"), h.names, h.values, h.n);
    headers_free(&h);
    return r == RW_RESULT_OK ? jnew(J_OBJ) : error_result(r);
  }
  if (strcmp(op, "health") == 0 || strcmp(op, "remaining") == 0 || strcmp(op, "circuit") == 0) {
    jv *o = jnew(J_OBJ);
    jv *value = NULL;
    if (op[0] == 'h') {
      double v;
      r = rw_engine_health(e, arg_str(s, "provider"), &v);
      value = jflt(v);
    } else if (op[0] == 'r') {
      int64_t v;
      bool has = false;
      r = rw_engine_remaining(e, arg_str(s, "provider"), arg_str(s, "dimension"), &v, &has);
      value = has ? jint(v) : jnew(J_NULL);
    } else {
      const char *c = NULL;
      r = rw_engine_circuit(e, arg_str(s, "provider"), &c);
      value = jstr(c ? c : "");
    }
    if (r != RW_RESULT_OK) { jfree(o); jfree(value); return error_result(r); }
    jpush(o, "value", value);
    return o;
  }
  if (strcmp(op, "snapshot") == 0) {
    char *text = NULL;
    rw_engine_snapshot(e, &text);
    jv *snap = parse(text);
    rw_string_free(text);
    jv *values = jnew(J_OBJ);
    for (size_t i = 0; s->expect && i < s->expect->n; i++) {
      const char *pointer = s->expect->k[i];
      jv *node = snap;
      char *copy = strdup(pointer), *save = NULL;
      for (char *tok = strtok_r(copy + 1, "/", &save); node && tok; tok = strtok_r(NULL, "/", &save)) {
        if (node->t == J_OBJ) node = jget(node, tok);
        else if (node->t == J_ARR) { char *end; unsigned long idx = strtoul(tok, &end, 10); node = (*end || idx >= node->n) ? NULL : node->v[idx]; }
        else node = NULL;
      }
      free(copy);
      buf b = {0};
      if (node) canonical(&b, node); else bput(&b, "null");
      jpush(values, pointer, parse(b.s));
      free(b.s);
    }
    jfree(snap);
    jv *o = jnew(J_OBJ);
    jpush(o, "value", values);
    return o;
  }
  if (strcmp(op, "estimate") == 0) {
    buf b = {0};
    uint64_t n = 0;
    raw_arg_json(s, "messages", &b);
    r = rw_estimate_tokens(b.s, b.n, &n);
    free(b.s);
    if (r != RW_RESULT_OK) return error_result(r);
    jv *o = jnew(J_OBJ);
    jpush(o, "value", jint((long long)n));
    return o;
  }
  if (strcmp(op, "upsert_provider") == 0 || strcmp(op, "upsert_capability") == 0) {
    buf b = {0};
    int provider = strcmp(op, "upsert_provider") == 0;
    raw_arg_json(s, provider ? "provider" : "capability", &b);
    r = provider ? rw_engine_upsert_provider(e, b.s, b.n) : rw_engine_upsert_capability(e, b.s, b.n);
    free(b.s);
    return r == RW_RESULT_OK ? jnew(J_OBJ) : error_result(r);
  }
  if (strcmp(op, "remove_provider") == 0) {
    r = rw_engine_remove_provider(e, arg_str(s, "provider"));
    return r == RW_RESULT_OK ? jnew(J_OBJ) : error_result(r);
  }
  if (strcmp(op, "remove_capability") == 0) {
    r = rw_engine_remove_capability(e, arg_str(s, "capability"));
    return r == RW_RESULT_OK ? jnew(J_OBJ) : error_result(r);
  }
  *unsupported = 1;
  return jnew(J_OBJ);
}

static FILE *transcript;

static void line(const char *id, const char *op, long step_index, jv *result) {
  if (!transcript) return;
  jv *o = jnew(J_OBJ);
  jpush(o, "op", jstr(op));
  jpush(o, "result", result);
  jpush(o, "scenario", jstr(id));
  jpush(o, "step", step_index < 0 ? jnew(J_NULL) : jint(step_index));
  buf b = {0};
  canonical(&b, o);
  fprintf(transcript, "%s\n", b.s);
  free(b.s);
  o->v[1] = NULL; /* the caller owns result */
  jfree(o);
}

/* Returns 1 when the scenario passes. */
static int run_scenario(const scenario *sc) {
  int ok = 1;
  rw_clock *clock = NULL;
  rw_engine *e = NULL;
  rw_clock_new_manual(sc->start_ms, &clock);
  rw_result r = rw_engine_new_from_json(sc->setup, strlen(sc->setup), clock, &e);
  if (r != RW_RESULT_OK) {
    jv *res = jnew(J_OBJ);
    jpush(res, "error", jstr(rw_result_name(r)));
    line(sc->id, "construct", -1, res);
    jfree(res);
    if (!sc->expect_error || strcmp(sc->expect_error, rw_result_name(r)) != 0) {
      printf("FAILED %s: construction failed with %s (%s)\n", sc->id, rw_result_name(r), rw_last_error_message());
      ok = 0;
    }
  } else if (sc->expect_error) {
    printf("FAILED %s: construction succeeded, expected %s\n", sc->id, sc->expect_error);
    ok = 0;
  } else {
    for (size_t i = 0; i < sc->n; i++) {
      const step *s = &sc->steps[i];
      int unsupported = 0;
      jv *res = run_step(e, clock, s, &unsupported);
      line(sc->id, s->op, (long)i, res);
      if (unsupported) {
        printf("FAILED %s: step %zu: op '%s' is not supported by this runner\n", sc->id, i, s->op);
        ok = 0;
      }
      jv *err = jget(res, "error");
      const jv *expect = s->expect;
      const char *problem = NULL;
      if (err && !jget(expect, "error")) problem = "unexpected error";
      for (size_t k = 0; !problem && expect && k < expect->n; k++) {
        const jv *got = strcmp(s->op, "snapshot") == 0 ? jget(jget(res, "value"), expect->k[k]) : jget(res, expect->k[k]);
        if (!matches(expect->v[k], got)) problem = expect->k[k];
      }
      if (problem) {
        buf b = {0};
        canonical(&b, res);
        printf("FAILED %s: step %zu (%s): %s; actual %s\n", sc->id, i, s->op, problem, b.s);
        free(b.s);
        ok = 0;
      }
      jfree(res);
    }
  }
  rw_engine_free(e);
  rw_clock_free(clock);
  for (size_t i = 0; i < nbindings; i++) free(bindings[i].name);
  free(bindings);
  bindings = NULL;
  nbindings = 0;
  if (ok) printf("ok %s\n", sc->id);
  return ok;
}

static void reset(scenario *sc) {
  free(sc->id); free(sc->setup); free(sc->expect_error);
  for (size_t i = 0; i < sc->n; i++) { free(sc->steps[i].op); jfree(sc->steps[i].args); jfree(sc->steps[i].expect); }
  free(sc->steps);
  memset(sc, 0, sizeof *sc);
}

int main(void) {
  const char *path = getenv("RATEWISE_TRANSCRIPT");
  if (path && *path) {
    transcript = fopen(path, "w");
    if (!transcript) { perror(path); return 2; }
  }
  char *lineptr = NULL;
  size_t cap = 0;
  ssize_t len;
  scenario sc;
  memset(&sc, 0, sizeof sc);
  int passed = 0, failed = 0;
  while ((len = getline(&lineptr, &cap, stdin)) > 0) {
    if (lineptr[len - 1] == '\n') lineptr[--len] = 0;
    char *tab = strchr(lineptr, '\t');
    char *rest = tab ? tab + 1 : lineptr + len;
    if (tab) *tab = 0;
    if (strcmp(lineptr, "scenario") == 0) { reset(&sc); sc.id = strdup(rest); }
    else if (strcmp(lineptr, "setup") == 0) sc.setup = strdup(rest);
    else if (strcmp(lineptr, "start_ms") == 0) sc.start_ms = strtoll(rest, NULL, 10);
    else if (strcmp(lineptr, "expect_error") == 0) sc.expect_error = strdup(rest);
    else if (strcmp(lineptr, "step") == 0) {
      char *op = strchr(rest, '\t');
      if (sc.n == sc.cap) { sc.cap = sc.cap ? sc.cap * 2 : 8; sc.steps = realloc(sc.steps, sc.cap * sizeof *sc.steps); if (!sc.steps) abort(); }
      sc.steps[sc.n].op = strdup(op ? op + 1 : "");
      sc.steps[sc.n].args = jnew(J_OBJ);
      sc.steps[sc.n].expect = jnew(J_OBJ);
      sc.n++;
    } else if (strcmp(lineptr, "arg") == 0 || strcmp(lineptr, "expect") == 0) {
      char *value = strchr(rest, '\t');
      if (!value || sc.n == 0) continue;
      *value++ = 0;
      jpush(lineptr[0] == 'a' ? sc.steps[sc.n - 1].args : sc.steps[sc.n - 1].expect, rest, parse(value));
    } else if (strcmp(lineptr, "end") == 0) {
      if (run_scenario(&sc)) passed++; else failed++;
    }
  }
  reset(&sc);
  free(lineptr);
  if (transcript) fclose(transcript);
  if (passed + failed == 0) { printf("no scenarios on stdin\n"); return 1; }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
